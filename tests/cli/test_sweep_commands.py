"""`nbscale sweep`: real sweeps of a small notebook (local engine; one on Dask) in a real run store:
the grid, typing and the JSON form, refusals before any run, the best run by direction, failed runs,
one shared cluster, and Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from click.testing import CliRunner
from conftest import make_notebook, wait_for

from nbscale.cli import main
from nbscale.kernels.contract import CANCELLED, FINISHED, SUCCEEDED, run_store_path
from nbscale.kernels.runner import default_run_store

HOSTILE = "\x1b[31mred[bold]x[/]\u202e"


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def grid_notebook(tmp_path, extra_step=""):
    return make_notebook(tmp_path, [
        ("C = 1.0\nkernel = 'linear'\nlayers = [8]\nseed = 0", ["parameters"]),
        ("data = list(range(10))", ["step:load"]),
        ("loss = abs(C - 1) + len(layers) / 10\naccuracy = 1 / (1 + loss)\n"
         "if kernel == 'broken': raise ValueError('no such kernel')" + extra_step, ["step:fit"]),
        ("loss\naccuracy", ["metrics"]),
    ], name="grid")


def runs_of(nb) -> list[dict]:
    if not run_store_path(nb).exists():
        return []
    with default_run_store(nb) as store:
        return [store.get_run(row["id"]) for row in reversed(store.list_runs(str(nb.resolve())))]


def sweep_json(nb, *args):
    result = cli("sweep", nb, "--engine", "local", "--output", "json", *args)
    return result, json.loads(result.stdout) if result.stdout.strip() else None


def test_the_grid_runs_as_recorded_runs_and_the_best_follows_the_direction(tmp_path):
    nb = grid_notebook(tmp_path)
    result, summary = sweep_json(nb, "-p", "C=0.5,1,3", "-p", "layers=[[8], [8, 8]]")
    assert result.exit_code == 0, result.output
    runs = runs_of(nb)
    assert len(runs) == len(summary["runs"]) == 6 and all(r["status"] == SUCCEEDED for r in runs)
    # the first parameter varies slowest; values typed as `nbscale run -p` types them (1 → 1.0)
    assert [r["parameters"] for r in summary["runs"]] == [
        {"C": c, "layers": layers} for c in (0.5, 1.0, 3.0) for layers in ([8], [8, 8])]
    assert [r["parameters"]["C"] for r in runs] == [0.5, 0.5, 1.0, 1.0, 3.0, 3.0]
    assert [r["id"] for r in runs] == [r["run_id"] for r in summary["runs"]]
    # the notebook's first metric is `loss`: lower is better
    assert (summary["metric"], summary["direction"]) == ("loss", "min")
    best = next(r for r in summary["runs"] if r["run_id"] == summary["best"])
    assert best["parameters"] == {"C": 1.0, "layers": [8]} and best["metrics"]["loss"] == 0.1
    assert summary["compare"].startswith(f"nbscale diff {summary['best'][:12]} ")
    # accuracy is higher-is-better: the same run, chosen from the other side
    _, again = sweep_json(nb, "-p", "C=0.5,1,3", "--metric", "accuracy")
    assert again["direction"] == "max"
    assert next(r for r in again["runs"] if r["run_id"] == again["best"])["parameters"] == {"C": 1.0}


def test_text_output_marks_the_best_run_and_says_how_to_compare(tmp_path):
    nb = grid_notebook(tmp_path)
    result = cli("sweep", nb, "--engine", "local", "-p", "C=3,1", "-p", "kernel=linear")
    assert result.exit_code == 0, result.output
    out = result.stdout
    runs = runs_of(nb)
    best = next(r for r in runs if r["parameters"]["C"] == 1.0)["id"]
    assert [line.split()[:3] for line in out.splitlines() if line.strip().startswith("*")] == \
        [["*", best[:12], SUCCEEDED]]
    assert f"best: {best[:12]} (C=1.0 kernel=\"linear\") by loss (lower is better) = " in out
    assert f"compare: nbscale diff {best[:12]} {runs[0]['id'][:12]}" in out
    assert "press Compare" in out
    assert "[1/2] C=3.0 kernel=\"linear\"" in result.stderr


def test_a_comma_inside_a_value_uses_the_json_form_and_hostile_values_print_literally(tmp_path):
    nb = grid_notebook(tmp_path)
    result = cli("sweep", nb, "--engine", "local", "-p", "kernel=" + json.dumps(["a,b", HOSTILE]))
    assert result.exit_code == 0, result.output
    assert [r["parameters"]["kernel"] for r in runs_of(nb)] == ["a,b", HOSTILE]
    assert "\x1b" not in result.output and "\u202e" not in result.output
    assert '"a,b"' in result.stdout and "\\u001b[31mred[bold]x[/]" in result.stdout


def test_a_credential_value_is_shown_as_the_run_store_records_it_and_a_long_value_is_cut(tmp_path):
    # the sweep printed `-p token=sk-...` whole (progress, table, best line, JSON) where show, diff and
    # lineage give its digest; and a value of 100 000 characters filled the terminal in the best line
    nb = make_notebook(tmp_path, [("token = 'none'\nnote = ''", ["parameters"]),
                                  ("score = len(token) + len(note)", ["step:fit"]), ("score", ["metrics"])],
                       name="secret")
    secrets = ["sk-" + "A1b2C3d4" * 4, "sk-" + "Z9y8X7w6" * 4]
    result = cli("sweep", nb, "--engine", "local", "-p", "token=" + ",".join(secrets), "-p", "note=" + "n" * 5000)
    assert result.exit_code == 0, result.output
    assert not any(secret in result.output for secret in secrets)
    recorded = [r["parameters"]["token"] for r in runs_of(nb)]
    assert all(value.startswith("hidden:") for value in recorded)
    assert recorded[0][:20] in result.stderr  # the progress line: the recorded digest
    assert max(len(line) for line in result.stdout.splitlines()) < 400
    assert "(5002 chars)) by score" in result.stdout  # the best line, cut as the table cuts it
    _, summary = sweep_json(nb, "-p", "token=" + ",".join(secrets))
    assert [r["parameters"]["token"] for r in summary["runs"]] == recorded
    assert not any(secret in json.dumps(summary) for secret in secrets)


@pytest.mark.parametrize("args, message", [
    (["-p", "C=0.1,x"], "parameter 'C' is float: cannot read 'x' as float"),
    (["-p", "D=1,2"], "unknown parameter(s) D; parameters: C, kernel, layers, seed"),
    (["-p", "D\x1b[31m=1"], "unknown parameter(s) D\\x1b[31m;"),  # a hostile name is shown, not obeyed
    (["-p", "C=1", "-p", "C=2"], "parameter 'C' is given twice"),
    (["-p", "layers=1,2"], "-p layers=[[...], [...]]"),
    (["-p", "layers=[1, 2"], "must be a non-empty JSON list"),
    (["-p", "layers=[]"], "must be a non-empty JSON list"),
    (["-p", "seed=1.5"], "parameter 'seed' is int"),
    (["-p", "C"], "'C' is not NAME=VALUE"),
    (["-p", "C=1,2", "--metric", "nope"], 'unknown metric "nope"; the notebook\'s metrics: loss, accuracy'),
    (["-p", "C=1,2,3,4,5,6,7,8,9,10,11", "-p", "seed=1,2,3,4,5,6,7,8,9,10"],
     "the sweep has 110 runs (11 C x 10 seed), more than --max-runs 100"),
    (["-p", "C=1,2,3", "--max-runs", "2"], "more than --max-runs 2"),
    # typed, yet refused as a run starts: a later combination's value is checked before the first run
    (["-p", "C=1,nan", "-p", "kernel=a,b"], "parameter 'C' must be a finite number, got nan"),
    (["-p", "kernel=a,b", "-p", "C=1,-inf"], "parameter 'C' must be a finite number, got -inf"),
    (["-p", "layers=[[1], [NaN]]"], "parameter 'layers' must be a finite number, got nan"),
    (["-p", "kernel=a,b\udcff"], "parameter 'kernel' holds text that is not valid Unicode"),
])
def test_bad_input_is_refused_before_any_run(tmp_path, args, message):
    nb = grid_notebook(tmp_path)
    result = cli("sweep", nb, "--engine", "local", *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr and not result.stdout and "\x1b" not in result.stderr
    assert runs_of(nb) == []


def test_a_later_bad_value_of_an_untyped_parameter_runs_nothing(tmp_path):
    nb = make_notebook(tmp_path, [("anyv = None", ["parameters"]), ("x = anyv", ["step:a"])], name="untyped")
    for values in ("1,NaN", "[1, NaN]", "[1, [Infinity]]"):
        result = cli("sweep", nb, "--engine", "local", "-p", f"anyv={values}")
        assert result.exit_code == 2, result.output
        assert "parameter 'anyv' must be a finite number" in result.stderr and not result.stdout
        assert runs_of(nb) == []


def test_an_untyped_parameter_gets_each_value_as_run_p_gives_it(tmp_path):
    # (the sweep read `"5"` as the text 5, and the run read that text again: the int 5)
    nb = make_notebook(tmp_path, [("anyv = None", ["parameters"]), ("x = repr(anyv)", ["step:a"])], name="untyped")
    _, summary = sweep_json(nb, "-p", 'anyv=["5", 5, "a,b"]')
    assert [r["parameters"]["anyv"] for r in summary["runs"]] == ["5", 5, "a,b"]
    assert cli("run", nb, "--engine", "local", "-p", 'anyv="5"').exit_code == 0
    assert [r["parameters"]["anyv"] for r in runs_of(nb)] == ["5", 5, "a,b", "5"]


def test_a_notebook_with_errors_runs_nothing(tmp_path):
    nb = make_notebook(tmp_path, [("C = 1", ["parameters"]), ("x = C", ["step:a", "paramters"])], name="bad")
    result = cli("sweep", nb, "-p", "C=1,2", "--engine", "local")
    assert result.exit_code == 2 and "paramters" in result.stderr
    assert runs_of(nb) == []


def test_repeated_values_run_once_and_max_runs_allows_more(tmp_path):
    nb = grid_notebook(tmp_path)
    _, summary = sweep_json(nb, "-p", "C=1,1.0,2", "--max-runs", "2")
    assert [r["parameters"]["C"] for r in summary["runs"]] == [1.0, 2.0]


def test_a_failed_run_does_not_stop_the_sweep_and_exits_1(tmp_path):
    nb = grid_notebook(tmp_path)
    result, summary = sweep_json(nb, "-p", "kernel=linear,broken,rbf")
    assert result.exit_code == 1
    assert [r["status"] for r in summary["runs"]] == ["succeeded", "failed", "succeeded"]
    assert summary["best"] == summary["runs"][0]["run_id"]  # a failed run is never the best
    text = cli("sweep", nb, "--engine", "local", "-p", "kernel=broken")
    assert text.exit_code == 1
    assert "best: none (no succeeded run recorded loss)" in text.stdout
    assert 'failed: ' in text.stdout and '(kernel="broken"): fit failed at cell 3, line 3: ValueError: no such kernel' \
        in text.stdout
    assert summary["runs"][1]["error"] == "fit failed at cell 3, line 3: ValueError: no such kernel"


def test_the_runs_of_a_dask_sweep_share_one_cluster(tmp_path):
    nb = grid_notebook(tmp_path, extra_step="\nfrom distributed import get_worker\nworker = get_worker().address")
    result = cli("sweep", nb, "-p", "C=1,2,3", "--no-cache", "--workers", "1", "--output", "json")
    assert result.exit_code == 0, result.output
    runs = runs_of(nb)
    assert len(runs) == 3 and all(r["engine"] == "dask" for r in runs)
    with default_run_store(nb) as store:
        workers = {e["payload"].get("worker") for r in runs for e in store.events_since(r["id"])
                   if e["kind"] == "step_started"}
    assert len(workers) == 1 and None not in workers  # one worker of one cluster ran every step of the 3 runs


def test_ctrl_c_stops_the_sweep_and_leaves_every_started_run_final(tmp_path):
    nb = grid_notebook(tmp_path, extra_step="\nimport time\ntime.sleep(60)")
    process = subprocess.Popen([sys.executable, "-m", "nbscale", "sweep", str(nb), "--engine", "local",
                                "-p", "C=1,2,3"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        wait_for(lambda: any(s["status"] == "running" for r in runs_of(nb) for s in r["steps"]),
                 "the first run's fit step to start")
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130, err
    runs = runs_of(nb)
    assert len(runs) == 1 and runs[0]["status"] == CANCELLED
    assert all(s["status"] in FINISHED for s in runs[0]["steps"])
    assert "sweep stopped after 0 of 3 runs" in err


def test_a_notebook_changed_during_the_sweep_stops_it_naming_the_runs_that_ran(tmp_path):
    # the parameter swept was taken out of the notebook while the sweep ran: the next run was refused
    # with only "error: unknown parameter(s) C" and exit 2, which says nothing ran, while two had
    nb = grid_notebook(tmp_path, extra_step="\nimport time\ntime.sleep(2)")
    process = subprocess.Popen([sys.executable, "-m", "nbscale", "sweep", str(nb), "--engine", "local",
                                "-p", "C=1,2,3"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: any(r["status"] == SUCCEEDED for r in runs_of(nb)), "the first run to end")
        make_notebook(tmp_path, [("kernel = 'linear'", ["parameters"]), ("loss = 1", ["step:fit"]),
                                 ("loss", ["metrics"])], name="grid")
        out, err = process.communicate(timeout=120)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == 2, err
    ran = [r["id"][:12] for r in runs_of(nb)]
    assert len(ran) == 2
    assert f"sweep stopped after 2 of 3 runs: {' '.join(ran)}\n" in err
    assert err.endswith("error: unknown parameter(s) C; parameters: kernel\n") and out == ""
