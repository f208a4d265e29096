"""`nbscale diff`: real runs of a real notebook (local engine) in a real run store, compared as text
and JSON; unknown, ambiguous and missing ids; hostile values printed literally."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner
from conftest import make_notebook

from nbscale.cli import main
from nbscale.diff_commands import print_model
from nbscale.kernels.compare import CACHED_REASON, KEY_CHANGED, NOT_STORED, compare_runs
from nbscale.kernels.contract import SUCCEEDED
from nbscale.kernels.runner import RunOptions, default_run_store, run_notebook

LOCAL = RunOptions(engine="local")
HOSTILE = "\x1b[31mred[bold red]x[/]\u202e\x9b31m"


def cli(*args, env=None):
    return CliRunner(env=env).invoke(main, [str(a) for a in args], catch_exceptions=False)


def sweep_notebook(tmp_path):
    return make_notebook(tmp_path, [
        ("alpha = 1\nbeta = 10\nlabel = 'plain'", ["parameters"]),
        ("data = list(range(20))", ["step:load"]),
        ("scaled = [x * alpha for x in data]", ["step:scale"]),
        ("loss = sum(scaled) / 100\naccuracy = 0.5 + alpha / 10\nuptime = beta * 2", ["step:evaluate"]),
        ("shown = label", ["step:labelled"]),
        ("loss\naccuracy\nuptime", ["metrics"]),
    ], name="sweep")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Three runs: the notebook's values, alpha changed, the label changed to a hostile string."""
    nb = sweep_notebook(tmp_path_factory.mktemp("diff"))
    results = [run_notebook(nb, given, options=LOCAL) for given in ({}, {"alpha": 2}, {"label": HOSTILE})]
    assert all(result.ok for result in results)
    return nb, [result.run_id for result in results]


def lines_with(output: str, start: str) -> list[str]:
    return [line.strip() for line in output.splitlines() if line.strip().startswith(start)]


def flat(output: str) -> str:
    """The output's words one space apart: a reason wrapped in its column reads as one line."""
    return " ".join(output.split())


def test_diff_names_the_changed_parameter_the_re_run_steps_and_the_metric_deltas(runs):
    nb, (first, second, _) = runs
    result = cli("diff", first[:8], second[:8], "--notebook", nb)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert f"#1   {first[:12]}   sweep.ipynb" in out and f"#2   {second[:12]}   sweep.ipynb" in out
    assert out.count(SUCCEEDED) >= 2  # the runs' statuses
    # parameters: alpha changed (marked), beta not
    assert lines_with(out, "* alpha")[0].split() == ["*", "alpha", "1", "2"]
    assert lines_with(out, "beta")[0].split() == ["beta", "10", "10"]
    # steps: load reused its result in #2; scale and evaluate ran again because their key changed
    assert lines_with(out, "load")[0].split() == ["load", "succeeded", lines_with(out, "load")[0].split()[2],
                                                  "cached"]
    assert lines_with(out, "* scale") and lines_with(out, "* evaluate")
    assert f"scale #2 {KEY_CHANGED}" in flat(out) and f"evaluate #2 {KEY_CHANGED}" in flat(out)
    assert CACHED_REASON not in out  # a reused result needs no reason
    assert not lines_with(out, "load       #2")
    # metrics: loss is lower-is-better and doubled (worse), accuracy rose (better), uptime the same
    assert "lower    1.9   3.8" in out and "+1.9 (+100.0%) worse" in out
    assert "higher   0.6   0.7" in out and "+0.1 (+16.7%) better" in out
    assert "higher   20    20" in out and "same" in out
    assert all(len(line) <= 80 and line == line.rstrip() for line in out.splitlines())


def test_the_first_run_is_the_reference(runs):
    nb, (first, second, _) = runs
    out = cli("diff", second, first, "--notebook", nb).stdout
    assert "lower    3.8   1.9" in out and "-1.9 (-50.0%) better" in out
    # load ran in #2 (the older run) but was reused in #1: against #1 it ran again, with nothing stored
    assert lines_with(out, "* load")[0].split()[:4] == ["*", "load", "cached", "succeeded"]
    assert f"load #2 {NOT_STORED}" in flat(out)


def test_json_is_the_comparison_model(runs):
    nb, (first, second, third) = runs
    result = cli("diff", first, second[:6], third, "--notebook", nb, "--output", "json")
    assert result.exit_code == 0, result.output
    with default_run_store(nb) as store:
        assert json.loads(result.stdout) == compare_runs(store, [first, second, third])
    assert list(json.loads(result.stdout)) == ["notebook", "runs", "parameters", "steps", "metrics"]


def test_three_runs_side_by_side(runs):
    nb, (first, second, third) = runs
    out = cli("diff", first, second, third, "--notebook", nb).stdout
    assert "#3   " + third[:12] in out
    assert lines_with(out, "* label")[0].split()[:4] == ["*", "label", '"plain"', '"plain"']
    assert f"labelled #3 {KEY_CHANGED}" in flat(out)
    assert not lines_with(out, "labelled   #2")  # alpha does not reach it: reused
    assert all(len(line) <= 80 for line in out.splitlines())


def test_the_current_folder_holds_the_runs_without_notebook(runs, monkeypatch):
    nb, (first, second, _) = runs
    monkeypatch.chdir(nb.parent)
    assert cli("diff", first, second).exit_code == 0


@pytest.mark.parametrize("force_colour", [False, True])
def test_hostile_values_are_printed_literally(runs, force_colour):
    nb, (first, _, third) = runs
    colours = {"FORCE_COLOR": "1", "TERM": "xterm-256color"} if force_colour else {"FORCE_COLOR": None}
    result = cli("diff", first, third, "--notebook", nb, env={**colours, "NO_COLOR": None})
    assert result.exit_code == 0, result.output
    # the escapes (7- and 8-bit) and the bidi override are shown as text, the markup as written
    assert '"\\u001b[31mred[bold red]x[/]\\u202e\\x9b31m"' in result.stdout
    assert not {"\u202e", "\x9b"} & set(result.stdout) and "\x1b[31mred" not in result.stdout
    assert ("\x1b[" in result.stdout) == force_colour  # colours are rich's own, on request only


def test_a_hostile_notebook_name_is_printed_literally(tmp_path):
    nb = sweep_notebook(tmp_path).rename(tmp_path / "[bold]nb\x1b[31m.ipynb")
    ids = [run_notebook(nb, given, options=LOCAL).run_id for given in ({}, {"alpha": 3})]
    result = cli("diff", *ids, "--notebook", nb)
    assert result.exit_code == 0, result.output
    assert "runs of [bold]nb\\x1b[31m.ipynb" in result.stdout and "\x1b" not in result.stdout


def test_an_unknown_id_is_an_error_naming_it(runs):
    nb, (first, _, _) = runs
    result = cli("diff", first, "0123456789abcdef", "not-an-id", "--notebook", nb)
    assert result.exit_code == 2 and result.stdout == ""
    assert "no run '0123456789abcdef'" in result.stderr and "no run 'not-an-id'" in result.stderr
    assert "nbscale runs" in result.stderr


def test_an_ambiguous_prefix_is_an_error(tmp_path):
    nb = sweep_notebook(tmp_path)
    assert run_notebook(nb, options=LOCAL).ok
    # more runs than hex digits: two of them share a first character (pigeonhole)
    with default_run_store(nb) as store:
        ids = [store.list_runs()[0]["id"]]
        while len({run_id[0] for run_id in ids}) == len(ids):
            run_id = store.create_run(str(nb), "sweep", "local", {}, [])
            store.finish_run(run_id, SUCCEEDED)
            ids.append(run_id)
    shared = ids[-1][0]
    result = cli("diff", shared, ids[0], "--notebook", nb)
    assert result.exit_code == 2 and result.stdout == ""
    assert f"run id prefix '{shared}' is ambiguous: give more of its characters" in result.stderr


def test_one_run_is_not_a_comparison(runs):
    nb, (first, _, _) = runs
    result = cli("diff", first, "--notebook", nb)
    assert result.exit_code == 2 and result.stdout == ""
    assert "needs two or more runs" in result.stderr
    nothing = cli("diff", "--notebook", nb)
    assert nothing.exit_code == 2 and nothing.stdout == ""
    itself = cli("diff", first[:8], first, "--notebook", nb)  # (compared with itself, it showed no change)
    assert itself.exit_code == 2 and itself.stdout == ""
    assert f"'{first}' names the same run as '{first[:8]}'" in itself.stderr


def test_a_folder_without_runs_is_an_error(tmp_path):
    nb = sweep_notebook(tmp_path)
    result = cli("diff", "abc", "def", "--notebook", nb)
    assert result.exit_code == 2 and result.stdout == ""
    assert "no run store at" in result.stderr


def test_diff_as_a_real_process_piped(runs):
    nb, (first, second, _) = runs
    done = subprocess.run([sys.executable, "-m", "nbscale", "diff", first, second, "--notebook", str(nb)],
                          capture_output=True, text=True, env={**os.environ, "COLUMNS": "80"})
    assert done.returncode == 0, done.stderr
    assert "* alpha" in done.stdout and "\x1b" not in done.stdout
    assert all(len(line) <= 80 for line in done.stdout.splitlines())


def test_a_section_the_model_gains_later_is_printed_only_when_it_has_rows(runs, capsys):
    nb, (first, second, _) = runs
    with default_run_store(nb) as store:
        model = compare_runs(store, [first, second])
    print_model(model)
    assert "Data drift" not in capsys.readouterr().out
    model["data_drift"] = [{"column": "[red]age", "score": 0.31, "drifted": True}]
    print_model(model)
    out = capsys.readouterr().out
    assert "Data drift" in out and lines_with(out, '"[red]age"')[0].split() == ['"[red]age"', "0.31", "true"]
    assert out.index("Data drift") > out.index("Metrics")
