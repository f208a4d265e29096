"""What the CLI prints and its exit codes: one mapping from error classes; one sanitiser of what a
notebook controls."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from nbscale.compiler import compile_source
from nbscale.compiler.errors import NotebookReadError
from nbscale.errors import PluginError
from nbscale.kernels.errors import HungUp, RunStoreCorrupt, Terminated
from nbscale.reporting import (
    EXIT_BAD_INPUT,
    EXIT_CANCELLED,
    error_counts,
    error_headline,
    exit_code_for,
    fail,
    literal,
    literal_lines,
    print_diagnostics,
    reporting_errors,
)


def run_command(body):
    @click.command()
    def command():
        with reporting_errors():
            body()

    return CliRunner().invoke(command, [])


def test_nbscale_errors_become_one_line_and_their_exit_code():
    def unknown():
        raise PluginError("unknown engine 'warp'; choose one of dask, local")

    result = run_command(unknown)
    assert result.exit_code == EXIT_BAD_INPUT
    assert result.output == "error: unknown engine 'warp'; choose one of dask, local\n"
    assert exit_code_for(NotebookReadError("x.ipynb", "not JSON")) == EXIT_BAD_INPUT


def test_ctrl_c_exits_130_and_other_exceptions_are_not_swallowed():
    def interrupted():
        raise KeyboardInterrupt

    assert run_command(interrupted).exit_code == EXIT_CANCELLED

    def bug():
        raise ZeroDivisionError

    assert isinstance(run_command(bug).exception, ZeroDivisionError)


def test_diagnostics_and_step_errors_are_printed_alike(capsys):
    pipeline = compile_source(["y = undefined_name"], name="nb")
    print_diagnostics(pipeline, "nb.ipynb", err=False)
    out = capsys.readouterr().out
    assert out.startswith("nb.ipynb:cell 1:1:5: error[undefined-name]: name 'undefined_name'")  # index 0
    assert error_counts(pipeline) == (1, 0)
    error = {"cell": 2, "line": 3, "ename": "KeyError", "evalue": "'x'"}
    assert error_headline(error) == "at cell 3, line 3: KeyError: 'x'"  # index 2, as JupyterLab numbers it
    assert error_headline({**error, "line": None}) == "at cell 3: KeyError: 'x'"
    died = {"cell": None, "line": None, "ename": "WorkerDied", "evalue": "the worker running this step died"}
    assert error_headline(died) == "WorkerDied: the worker running this step died"


@pytest.mark.parametrize("code", [EXIT_BAD_INPUT])
def test_an_error_may_name_its_own_exit_code(code):
    class Refused(PluginError):
        exit_code = 1

    assert exit_code_for(Refused("no")) == 1 and exit_code_for(PluginError("x")) == code


def test_sigterm_sighup_and_a_damaged_run_store_have_their_own_words():
    def terminated():
        raise Terminated()

    result = run_command(terminated)
    assert result.exit_code == 143 and result.output == "cancelled: stopped by SIGTERM\n"

    def hung_up():
        raise HungUp()

    result = run_command(hung_up)
    assert result.exit_code == 129 and result.output == "cancelled: stopped by SIGHUP\n"

    def damaged():
        raise RunStoreCorrupt("/x/.nbscale/runs.sqlite", "file is not a database")

    result = run_command(damaged)
    assert result.exit_code == EXIT_BAD_INPUT
    assert result.output.startswith("error: the run store /x/.nbscale/runs.sqlite is damaged (file is not a database)")


def test_literal_escapes_control_and_bidi_characters():
    assert literal("a\x1bb\x9b\x07\u202e[bold]é") == "a\\x1bb\\x9b\\x07\\u202e[bold]é"
    assert literal("a\nb\tc") == "a\\nb\\tc"  # one line stays one line


def test_literal_lines_keeps_lines_and_tabs_and_escapes_the_rest():
    traceback = "Traceback:\n\tcell 1\nValueError: x\x1b]0;PWNED\x07\r"
    assert literal_lines(traceback) == "Traceback:\n\tcell 1\nValueError: x\\x1b]0;PWNED\\x07\\r"
    assert literal_lines(literal_lines(traceback)) == literal_lines(traceback)  # printing twice is harmless


def test_an_error_quoting_a_notebooks_value_shows_its_escapes():
    def hostile():
        raise PluginError("unknown engine '\x1b]0;PWNED\x07'")

    result = run_command(hostile)
    assert result.output == "error: unknown engine '\\x1b]0;PWNED\\x07'\n"


def test_fail_writes_what_it_quotes_with_escapes():
    # a path or a server's answer in the message: any text
    result = run_command(lambda: fail("error: cannot write /tmp/\x1b]0;PWNED\x07/out.yaml\nsecond line"))
    assert result.output == "error: cannot write /tmp/\\x1b]0;PWNED\\x07/out.yaml\nsecond line\n"
