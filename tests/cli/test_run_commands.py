"""`nbscale run`, `nbscale runs`, `nbscale show`: in-process (CliRunner) and as real subprocesses."""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import time

from click.testing import CliRunner
from conftest import EXAMPLES_DIR, make_notebook

from nbscale.cli import main
from nbscale.kernels.runstore import RunStore

NBSCALE = [sys.executable, "-m", "nbscale"]


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_run_json_output(tmp_path):
    nb = tmp_path / "iris.ipynb"
    shutil.copy(EXAMPLES_DIR / "iris.ipynb", nb)
    result = cli("run", nb, "--engine", "local", "--output", "json", "-p", "n_estimators=10")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == {"run_id", "status", "steps", "metrics"}
    assert data["status"] == "succeeded"
    assert [s["name"] for s in data["steps"]] == ["load", "split", "train_lr", "train_rf", "evaluate", "metrics"]
    for step in data["steps"]:
        assert {"name", "status", "duration_s", "cached"} <= set(step)
        assert step["status"] == "succeeded" and step["duration_s"] is not None
    assert set(data["metrics"]) == {"acc_lr", "acc_rf"} and 0.8 < data["metrics"]["acc_lr"] <= 1
    again = json.loads(cli("run", nb, "--engine", "local", "--output", "json", "-p", "n_estimators=10").stdout)
    assert {s["status"] for s in again["steps"]} == {"cached"} and again["metrics"] == data["metrics"]
    rerun = json.loads(cli("run", nb, "--engine", "local", "--output", "json", "--no-cache",
                           "-p", "n_estimators=10").stdout)
    assert {s["status"] for s in rerun["steps"]} == {"succeeded"}


def _failing(tmp_path):
    return make_notebook(tmp_path, [
        ("x = 1\nprint('first says hi')", ["step:first"]),
        ("y = x + 1", ["step:second"]),
        ("z = y\nraise KeyError('nope')", []),
        ("w = z", ["step:third"]),
    ], name="failing")


def test_failed_run_exits_1_and_names_cell_and_line(tmp_path):
    nb = _failing(tmp_path)
    result = cli("run", nb, "--engine", "local")
    assert result.exit_code == 1
    assert "second failed at cell 2, line 2" in result.output
    assert "KeyError" in result.output and "nope" in result.output
    data = json.loads(cli("run", nb, "--engine", "local", "--output", "json").stdout)
    assert data["status"] == "failed"
    statuses = {s["name"]: s["status"] for s in data["steps"]}
    assert statuses == {"first": "cached", "second": "failed", "third": "upstream_failed"}


def test_runs_and_show(tmp_path):
    nb = _failing(tmp_path)
    cli("run", nb, "--engine", "local")
    metrics_nb = make_notebook(tmp_path, [("acc = 0.5", ["step:fit"]), ("acc", ["metrics"])], name="m")
    ok = json.loads(cli("run", metrics_nb, "--engine", "local", "--output", "json").stdout)
    listing = cli("runs", nb)
    assert listing.exit_code == 0
    assert "failed" in listing.output and "failing.ipynb" in listing.output and "m.ipynb" not in listing.output
    run_id = RunStore(tmp_path / ".nbscale" / "runs.sqlite").list_runs(str(nb.resolve()))[0]["id"]
    assert run_id[:12] in listing.output
    shown = cli("show", run_id[:8], "--notebook", nb)
    assert shown.exit_code == 0
    assert f"run {run_id}  failed" in shown.output
    assert "second" in shown.output and "upstream_failed" in shown.output
    assert "error in cell 2, line 2: KeyError" in shown.output
    assert "nope" in shown.output.split("error in cell")[1]  # the traceback follows
    assert "first says hi" in shown.output  # logs
    shown_ok = cli("show", ok["run_id"][:8], "--notebook", metrics_nb)
    assert "metric acc = 0.5" in shown_ok.output and "succeeded" in shown_ok.output
    assert cli("show", "ffffffff", "--notebook", nb).exit_code == 2
    assert CliRunner().invoke(main, ["runs", str(tmp_path / "elsewhere" / "x.ipynb")]).exit_code == 2


def test_bad_input_exits_2(tmp_path):
    nb = make_notebook(tmp_path, [("alpha = 1", ["parameters"]), ("b = alpha", ["step:a"])])
    result = CliRunner().invoke(main, ["run", str(nb), "--engine", "local", "-p", "beta=2"])
    assert result.exit_code == 2 and "beta" in result.output and "alpha" in result.output
    result = CliRunner().invoke(main, ["run", str(nb), "--engine", "local", "-p", "alpha=x"])
    assert result.exit_code == 2 and "alpha" in result.output
    bad = make_notebook(tmp_path, [("ok = 1", ["step:a"]), ("x = (1,\ny = ]", ["step:b"])], name="bad")
    result = CliRunner().invoke(main, ["run", str(bad), "--engine", "local"])
    assert result.exit_code == 2
    assert "bad.ipynb has 1 error(s)" in result.output
    assert "bad.ipynb:cell 1:2:" in result.output and "syntax error" in result.output
    result = CliRunner().invoke(main, ["run", str(nb), "--engine", "nope"])
    assert result.exit_code == 2 and "unknown engine" in result.output


def test_parameters_file_option(tmp_path):
    nb = make_notebook(tmp_path, [("alpha = 1\nname = 'x'", ["parameters"]), ("b = alpha * 2", ["step:a"]),
                                  ("b", ["metrics"])])
    (tmp_path / "params.yaml").write_text("alpha: 4\nname: '5'\n")
    data = json.loads(cli("run", nb, "--engine", "local", "--output", "json", "-f", tmp_path / "params.yaml").stdout)
    assert data["metrics"] == {"b": 8.0}
    data = json.loads(cli("run", nb, "--engine", "local", "--output", "json", "-f", tmp_path / "params.yaml",
                          "-p", "alpha=10").stdout)
    assert data["metrics"] == {"b": 20.0}  # -p wins over -f


def test_concurrent_runs_in_one_folder(tmp_path):
    cells = [("import time", ["imports"]), ("a = 1\ntime.sleep(0.3)", ["step:one"]), ("b = a + 1", ["step:two"])]
    nbs = [make_notebook(tmp_path, cells, name=f"copy{i}") for i in range(2)]
    procs = [subprocess.Popen(NBSCALE + ["run", str(nb), "--engine", "local", "--output", "json"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
             for nb in nbs]
    outs = [proc.communicate(timeout=60) for proc in procs]
    for proc, (out, err) in zip(procs, outs):
        assert proc.returncode == 0, err
        assert json.loads(out)["status"] == "succeeded"
    db = sqlite3.connect(tmp_path / ".nbscale" / "runs.sqlite")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()
    listing = CliRunner().invoke(main, ["runs", str(nbs[0])])
    assert "copy0.ipynb" in listing.output
    store = RunStore(tmp_path / ".nbscale" / "runs.sqlite")
    rows = store.list_runs()
    assert sorted(r["notebook"].rsplit("/", 1)[-1] for r in rows) == ["copy0.ipynb", "copy1.ipynb"]
    assert {r["status"] for r in rows} == {"succeeded"}


def test_ctrl_c_cancels_run(tmp_path):
    nb = make_notebook(tmp_path, [("import time", ["imports"]), ("time.sleep(30)\nx = 1", ["step:slow"]),
                                  ("y = x", ["step:after"])], name="slow")
    proc = subprocess.Popen(NBSCALE + ["run", str(nb), "--engine", "local"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    db_path = tmp_path / ".nbscale" / "runs.sqlite"
    deadline = time.time() + 30
    run_id = None
    while time.time() < deadline and run_id is None:
        time.sleep(0.1)
        if db_path.exists():
            try:
                for run in RunStore(db_path).list_runs():
                    steps = RunStore(db_path).get_run(run["id"])["steps"]
                    if any(s["step"] == "slow" and s["status"] == "running" for s in steps):
                        run_id = run["id"]
            except sqlite3.OperationalError:
                pass
    assert run_id, "the step never started"
    sent = time.time()
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=10)
    assert proc.returncode == 130
    assert time.time() - sent < 5
    run = RunStore(db_path).get_run(run_id)
    assert run["status"] == "cancelled"
    assert {s["step"]: s["status"] for s in run["steps"]} == {"slow": "cancelled", "after": "cancelled"}
