"""Tests for nbscale.kernels.tracebacks: code and failures mapped back to notebook cell and line."""

from __future__ import annotations

import sys
from dataclasses import asdict

from test_executor import ok, run

from nbscale.compiler.ir import Prelude
from nbscale.kernels.contract import FAILED, error_dict
from nbscale.kernels.tracebacks import (
    CellCompiler,
    Frame,
    StepError,
    cell_location,
    format_exception,
    is_cell_code,
    step_error,
)


def raised(source: str, filename: str) -> BaseException:
    try:
        exec(compile(source, filename, "exec"), {})
    except Exception as exc:  # noqa: BLE001 - the failure under test
        return exc
    raise AssertionError("the code did not fail")


# --- code names ------------------------------------------------------------------------------


def test_code_names_locate_cell_and_line():
    assert is_cell_code("<cell 4 [0123456789ab]>") and is_cell_code("<cell 4 +2 [0123456789ab]>")
    assert not is_cell_code("<ipython-input-1-abc>") and not is_cell_code("/lib/module.py")
    # a code name numbers its cell as JupyterLab does (a person may read it); the location is the index
    assert cell_location("<cell 4 [0123456789ab]>", 3) == (3, 3)
    assert cell_location("<cell 4 +2 [0123456789ab]>", 1) == (3, 3)  # first line is the cell's third
    assert cell_location("<cell 4 [0123456789ab]>", None) == (3, None)
    assert cell_location("module.py", 3) is None


def test_the_code_of_a_cell_is_named_as_jupyterlab_numbers_the_cell():
    compiler = CellCompiler()
    compiler.current = (0, "x = 1")
    name = compiler.get_code_name("x = 1", "x = 1", 1)
    assert name.startswith("<cell 1 [") and cell_location(name, 1) == (0, 1)


def test_step_error_of_code_named_after_a_cell():
    source = "def f():\n    return 1 / 0\nf()"
    exc = raised(source, "<cell 7 +1 [0123456789ab]>")
    error = step_error(exc, 9, {6: "# a comment\n" + source}, before_exec=False)
    assert error.frames == [Frame(6, 4, "<module>"), Frame(6, 3, "f")]
    assert (error.cell, error.line, error.running_cell) == (6, 3, 9)
    assert "  cell 7, line 3, in f\n    return 1 / 0\n" in error.traceback
    assert error.traceback.endswith("ZeroDivisionError: division by zero\n")


def test_frames_outside_notebook_cells_are_kept_as_they_are():
    exc = raised("import json\njson.loads('{')", "<cell 1 [0123456789ab]>")
    text = format_exception(exc, {})
    assert "cell 1, line 2" in text and "json" in text and "decoder.py" in text


def test_step_error_has_the_contracts_error_shape():
    # the contract's plain error is a StepError without frames or running cell, field for field
    plain = error_dict("MarshalError", "cannot pickle", cell=3, line=1)
    assert asdict(StepError(**plain)) == {**plain, "running_cell": None}


# --- failures of a step ----------------------------------------------------------------------


def test_exception_reports_notebook_cell_and_line():
    result = run("a = 1", "b = 2\nc = 3\nd = 1 / 0\ne = 4", cells=[5, 7])
    assert result.status == FAILED
    err = result.error
    assert (err.cell, err.line, err.running_cell) == (7, 3, 7)
    assert (err.ename, err.evalue) == ("ZeroDivisionError", "division by zero")
    assert "cell 8, line 3" in err.traceback and "d = 1 / 0" in err.traceback  # index 7, numbered from 1
    if sys.version_info >= (3, 11):  # carets under the failing expression, as Python puts them
        assert "    d = 1 / 0\n        ~~^~~\n" in err.traceback
    assert "ipython-input" not in err.traceback and "\x1b[" not in err.traceback
    assert "interactiveshell" not in err.traceback  # IPython's own frames hidden


def test_an_exception_message_is_kept_whole_escape_codes_and_all():
    message = "A\x1b[2JB\x1b[31mC\x1b]0;T\x07D"  # shown as text where it is shown, never dropped
    err = run("x = 1", f"raise ValueError({message!r})").error
    assert err.evalue == message and f"ValueError: {message}" in err.traceback


def test_exception_in_prelude_function_names_both_cells():
    prelude = Prelude(cells=[1], source=["def helper(v):\n    scale = 0\n    return v / scale"])
    result = run("x = 1", "y = 2\nhelper(y)", cells=[4, 6], prelude=prelude)
    err = result.error
    assert err.running_cell == 6  # the step cell that called it
    assert err.frames == [Frame(cell=6, line=2, name="<module>"), Frame(cell=1, line=3, name="helper")]
    assert (err.cell, err.line) == (1, 3)  # the deepest frame in a notebook cell
    assert err.traceback.index("cell 7, line 2") < err.traceback.index("cell 2, line 3, in helper")


def test_line_numbers_survive_magics_and_leading_blank_lines():
    result = run("\n\n%time a = 1\n!true\nb = undefined_name", cells=[8])
    assert (result.error.cell, result.error.line) == (8, 5)


def test_failure_in_timed_cell_body_fails_the_step_at_its_line():
    result = run("%%time\nx = 1\nraise RuntimeError('late')\n", "print('next cell')", cells=[3, 4])
    # IPython 9 raises a failure of the timed code again; IPython 8 only showed it and let the cell
    # go on. Either way the step fails here, and the traceback is the step's error, not stderr.
    assert result.status == FAILED
    err = result.error
    assert (err.ename, err.evalue, err.cell, err.line, err.running_cell) == ("RuntimeError", "late", 3, 3, 3)
    assert "cell 4, line 3" in err.traceback and "raise RuntimeError('late')" in err.traceback
    assert result.stderr == "" and "next cell" not in result.stdout


def test_failure_in_timed_line_stops_its_cell():
    result = run("x = 1\n%time y = 1 / 0\nprint('after')", cells=[2])
    assert (result.error.ename, result.error.cell, result.error.line) == ("ZeroDivisionError", 2, 2)
    assert "after" not in result.stdout and result.stderr == ""


def test_failure_inside_capture_body_is_captured_and_mapped():
    result = ok(run("%%capture out\nx = 1\nraise ValueError('inside')", "text = out.stdout",
                    cells=[4, 5], outputs=["text"]))
    # as in Jupyter: %%capture swallows the failure, its traceback lands in the capture
    assert "cell 5, line 3" in result.outputs["text"]
    assert "ValueError: inside" in result.outputs["text"]


def test_syntax_error_reports_cell_and_line():
    result = run("ok = 1", "x = 1\ny = = 2", cells=[2, 9])
    err = result.error
    assert (err.ename, err.cell, err.line) == ("SyntaxError", 9, 2)
    assert "cell 10, line 2" in err.traceback and "y = = 2" in err.traceback


def test_chained_exception_traceback_shows_both():
    result = run("try:\n    {}['k']\nexcept KeyError as e:\n    raise ValueError('bad') from e")
    tb = result.error.traceback
    assert "KeyError: 'k'" in tb and "direct cause" in tb and tb.rstrip().endswith("ValueError: bad")
