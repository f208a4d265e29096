"""`nbscale run`, `nbscale runs`, `nbscale show`: in-process (CliRunner) and as real subprocesses."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time

import nbformat
import psutil
import pytest
from click.testing import CliRunner
from conftest import EXAMPLES_DIR, make_immutable, make_notebook, wait_for

from nbscale.cli import main
from nbscale.kernels.contract import OWNER_STOPPED, OWNER_STOPPED_EARLY, STOPPED_BY_SIGTERM, STOPPED_TWICE_BY_SIGTERM
from nbscale.kernels.errors import RunStoreError
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
    assert set(data) == {"run_id", "status", "steps", "metrics", "regressions", "cost"}
    assert data["status"] == "succeeded"
    assert [s["name"] for s in data["steps"]] == ["load", "split", "train_lr", "train_rf", "evaluate", "metrics"]
    for step in data["steps"]:
        assert {"name", "status", "duration_s", "cached"} <= set(step)
        assert step["status"] == "succeeded" and step["duration_s"] is not None
    assert set(data["metrics"]) == {"acc_lr", "acc_rf"} and 0.8 < data["metrics"]["acc_lr"] <= 1
    again = json.loads(cli("run", nb, "--engine", "local", "--output", "json", "-p", "n_estimators=10").stdout)
    assert {s["status"] for s in again["steps"]} == {"cached"} and again["metrics"] == data["metrics"]
    assert again["drift"]["reference"] == data["run_id"] and again["drift"]["columns_drifted"] == 0
    rerun = json.loads(cli("run", nb, "--engine", "local", "--output", "json", "--no-cache",
                           "-p", "n_estimators=10").stdout)
    assert {s["status"] for s in rerun["steps"]} == {"succeeded"}


def test_a_nan_metric_is_printed_as_such_and_the_run_succeeds(tmp_path):
    nb = make_notebook(tmp_path, [("score = float('nan')\nok = 0.5", ["step:fit"]), ("score\nok", ["metrics"])])
    result = cli("run", nb, "--engine", "local")
    assert result.exit_code == 0, result.output
    assert "metric score = none (NaN or infinite)" in result.output and "metric ok = 0.5" in result.output


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
    assert "second failed at cell 3, line 2" in result.output  # index 2, as JupyterLab numbers it
    assert "KeyError" in result.output and "nope" in result.output
    data = json.loads(cli("run", nb, "--engine", "local", "--output", "json").stdout)
    assert data["status"] == "failed"
    statuses = {s["name"]: s["status"] for s in data["steps"]}
    assert statuses == {"first": "cached", "second": "failed", "third": "upstream_failed"}


def test_a_failed_step_names_its_cell_as_jupyterlab_does_and_json_keeps_the_index(tmp_path):
    nb = make_notebook(tmp_path, [nbformat.v4.new_markdown_cell("# Title"), ("x = 1", ["step:a"]),
                                  ("raise KeyError('nope')", [])], name="titled")
    result = cli("run", nb, "--engine", "local")
    assert result.exit_code == 1
    assert "a failed at cell 3, line 1: KeyError: 'nope'" in result.output  # JupyterLab's "Cell 3/3"
    assert "  cell 3, line 1, in <module>" in result.output  # the traceback numbers it alike
    data = json.loads(cli("run", nb, "--engine", "local", "--output", "json").stdout)
    [step] = data["steps"]
    assert (step["error"]["cell"], step["error"]["line"]) == (2, 1)  # JSON: the 0-based index


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
    assert "error at cell 3, line 2: KeyError" in shown.output
    assert "nope" in shown.output.split("error at cell")[1]  # the traceback follows
    assert "first says hi" in shown.output  # logs
    shown_ok = cli("show", ok["run_id"][:8], "--notebook", metrics_nb)
    assert "metric acc = 0.5" in shown_ok.output and "succeeded" in shown_ok.output
    assert cli("show", "ffffffff", "--notebook", nb).exit_code == 2
    assert CliRunner().invoke(main, ["runs", str(tmp_path / "elsewhere" / "x.ipynb")]).exit_code == 2
    assert cli("runs", nb, "--limit", "0").exit_code == 2  # (it said "no runs yet")


def test_show_prints_a_damaged_stores_step_name_and_duration_literally(tmp_path):
    nb = make_notebook(tmp_path, [("a = 1", ["step:train"])])
    run_id = json.loads(cli("run", nb, "--engine", "local", "--output", "json").stdout)["run_id"]
    db = sqlite3.connect(tmp_path / ".nbscale" / "runs.sqlite")
    db.execute("UPDATE step_runs SET step = 'tr' || char(27) || ']0;PWN' || char(7) || 'ain', duration_s = 'abc'")
    db.commit()
    db.close()
    shown = cli("show", run_id[:8], "--notebook", nb, "--no-logs")
    assert shown.exit_code == 0, shown.output  # (a text duration was a ValueError traceback)
    assert "tr\\x1b]0;PWN\\x07ain" in shown.output and " -\n" in shown.output
    assert "\x1b" not in shown.output and "\x07" not in shown.output


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
    assert "bad.ipynb:cell 2:2:" in result.output and "syntax error" in result.output
    result = CliRunner().invoke(main, ["run", str(nb), "--engine", "nope"])
    assert result.exit_code == 2 and "unknown engine" in result.output


def test_parameters_file_option(tmp_path):
    nb = make_notebook(tmp_path, [("alpha = 1\nname = 'x'\ntag = None", ["parameters"]),
                                  ("b = alpha * 2\ntag_is_text = int(isinstance(tag, str))", ["step:a"]),
                                  ("b\ntag_is_text", ["metrics"])])
    (tmp_path / "params.yaml").write_text("alpha: 4\nname: '5'\ntag: '12'\n")
    data = json.loads(cli("run", nb, "--engine", "local", "--output", "json", "-f", tmp_path / "params.yaml").stdout)
    assert data["metrics"] == {"b": 8.0, "tag_is_text": 1.0}  # a YAML string, as papermill's -f gives it
    data = json.loads(cli("run", nb, "--engine", "local", "--output", "json", "-f", tmp_path / "params.yaml",
                          "-p", "alpha=10", "-p", "tag=12").stdout)
    assert data["metrics"] == {"b": 20.0, "tag_is_text": 0.0}  # -p wins over -f; its text is read


def test_a_bad_parameters_file_is_a_one_line_error_for_run_and_submit(tmp_path):
    nb = make_notebook(tmp_path, [("alpha = 1", ["parameters"]), ("b = alpha * 2", ["step:a"])])
    bad = tmp_path / "params.yaml"
    bad.write_text("alpha: [1\n")
    for command in (["run", str(nb), "--engine", "local"], ["submit", str(nb), "--host", "http://127.0.0.1:9"]):
        result = CliRunner().invoke(main, [*command, "-f", str(bad)])
        assert result.exit_code == 2, result.output
        assert f"{bad}, line 2, column 1: expected ',' or ']'" in result.output
        assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)  # (not a crash)
    assert not (tmp_path / ".nbscale").exists()  # nothing ran, nothing recorded


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


def _slow(tmp_path, seconds=30):
    return make_notebook(tmp_path, [("import time", ["imports"]), (f"time.sleep({seconds})\nx = 1", ["step:slow"]),
                                    ("y = x", ["step:after"])], name="slow")


def _start_run(nb, *args):
    return subprocess.Popen(NBSCALE + ["run", str(nb), "--engine", "local", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=nb.parent)


def _running(db_path, step="slow", timeout=60):
    """The id of the run whose `step` is running, once it is."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        time.sleep(0.1)
        if db_path.exists():
            try:
                with RunStore(db_path) as store:
                    for run in store.list_runs():
                        steps = store.get_run(run["id"])["steps"]
                        if any(s["step"] == step and s["status"] == "running" for s in steps):
                            return run["id"]
            except RunStoreError:
                pass  # created a moment ago: not all there yet
    raise AssertionError(f"step {step!r} never started")


def _nbscale(*args, cwd=None):
    return subprocess.run(NBSCALE + [str(a) for a in args], capture_output=True, text=True, cwd=cwd, timeout=120)


def test_ctrl_c_cancels_run(tmp_path):
    nb = _slow(tmp_path)
    proc = _start_run(nb)
    db_path = tmp_path / ".nbscale" / "runs.sqlite"
    run_id = _running(db_path)
    sent = time.time()
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=10)
    assert proc.returncode == 130
    assert time.time() - sent < 5
    run = RunStore(db_path).get_run(run_id)
    assert run["status"] == "cancelled"
    assert {s["step"]: s["status"] for s in run["steps"]} == {"slow": "cancelled", "after": "cancelled"}


@pytest.mark.parametrize("engine", ["local", "dask"])
def test_what_a_cancelled_step_printed_before_is_kept_in_its_log_and_shown(tmp_path, engine):
    """A step stopped while it ran handed back nothing: what it printed before was lost."""
    tick = tmp_path / "tick"
    nb = make_notebook(tmp_path, [("import time", ["imports"]), (
        f"print('loading shard 7', flush=True)\nwhile True:\n    open({str(tick)!r}, 'a').write('x')\n"
        "    time.sleep(0.1)", ["step:slow"])], name="printing")
    proc = subprocess.Popen(NBSCALE + ["run", str(nb), "--engine", engine], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=nb.parent)
    try:
        run_id = _running(tmp_path / ".nbscale" / "runs.sqlite")
        wait_for(lambda: tick.exists() and len(tick.read_text()) >= 5, "the step's loop")  # (its print sent)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    shown = _nbscale("show", run_id[:12], cwd=tmp_path)
    assert "| loading shard 7" in shown.stdout, shown.stdout
    log = tmp_path / ".nbscale" / "logs" / run_id / "slow.log"
    assert log.read_text() == "loading shard 7\n"
    (step,) = RunStore(tmp_path / ".nbscale" / "runs.sqlite").get_run(run_id)["steps"]
    assert step["status"] == "cancelled" and step["duration_s"] >= 0.5


@pytest.mark.parametrize("to_group", [True, False], ids=["terminal", "process"])
def test_a_ctrl_c_on_dask_stores_nothing_a_step_ended_with_during_the_cancel(tmp_path, to_group):
    """A terminal's Ctrl-C goes to its whole process group: the workers and the step's `sleep` died
    with the run, the step ended on its own during the cancel, and its result (`code = -2`) was
    stored and reused by the next run; the workers printed tracebacks. To the run alone: the cancel
    ended the step's `sleep` first (`code = -15`), with the same end."""
    started = tmp_path / "started.txt"
    nb = make_notebook(tmp_path, [("import subprocess", ["imports"]), (
        f"open({str(started)!r}, 'w').close()\ncode = subprocess.run(['sleep', '8']).returncode", ["step:shell"])],
        name="group")
    proc = subprocess.Popen(NBSCALE + ["run", str(nb), "--engine", "dask"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=tmp_path, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        wait_for(started.exists, "the step")
        time.sleep(1)
        (os.killpg if to_group else os.kill)(proc.pid, signal.SIGINT)  # (to the group: a terminal's Ctrl-C)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130 and "Traceback" not in err, err
    again = _nbscale("run", nb, "--engine", "dask", "--output", "json", cwd=tmp_path)
    result = json.loads(again.stdout)
    assert [s["status"] for s in result["steps"]] == ["succeeded"]  # run again, not reused
    assert result["steps"][0]["cached"] is False


# --- every run ends in a final state ---------------------------------------------------------------


def test_a_killed_run_shows_failed_at_the_next_look(tmp_path):
    nb = _slow(tmp_path, 60)
    proc = _start_run(nb)
    run_id = _running(tmp_path / ".nbscale" / "runs.sqlite")
    proc.kill()  # SIGKILL: nothing in the process can record anything
    proc.communicate(timeout=30)
    listing = _nbscale("runs", nb)
    assert listing.returncode == 0, listing.stderr
    line = next(line for line in listing.stdout.splitlines() if line.startswith(run_id[:12]))
    assert " failed " in line and OWNER_STOPPED in line
    shown = _nbscale("show", run_id[:8], "--notebook", nb)
    assert f"why: {OWNER_STOPPED}" in shown.stdout
    assert "slow" in shown.stdout and "after" in shown.stdout and "cancelled" in shown.stdout


def _ended(process: psutil.Process) -> bool:
    try:
        return process.status() == psutil.STATUS_ZOMBIE  # ended; init has not collected it yet
    except psutil.NoSuchProcess:
        return True


@pytest.mark.parametrize("engine", ["local", "dask"])
def test_what_a_killed_runs_step_started_ends_at_the_next_look(tmp_path, engine):
    # kill -9 ends the step's code (on dask, its workers die with the run), not the processes it
    # started: re-parented to init, they would run on; the next look at the store ends them
    # (a forked one, a `fork` pool's worker, shows its parent's environment at exec, without the mark)
    cells = [("import multiprocessing, subprocess, time", ["imports"]),
             ("kept = subprocess.Popen(['sleep', '600'])\n"
              "left = subprocess.Popen(['sleep', '600'], start_new_session=True)\n"
              "forked = multiprocessing.get_context('fork').Process(target=time.sleep, args=(600,))\n"
              "forked.start()\n"
              "open('pids', 'w').write(f'{kept.pid} {left.pid} {forked.pid}')\n"
              "time.sleep(60)\nx = 1", ["step:slow"])]
    nb = make_notebook(tmp_path, cells, name="spawns")
    proc = subprocess.Popen(NBSCALE + ["run", str(nb), "--engine", engine], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, cwd=tmp_path)  # the step's processes hold pipes open
    pids = tmp_path / "pids"
    try:
        wait_for(lambda: pids.exists() and pids.read_text(), "the step's processes")
        kept, left, forked = (psutil.Process(int(pid)) for pid in pids.read_text().split())
        proc.kill()
        proc.wait(timeout=30)
        time.sleep(0.5)
        assert not _ended(kept), "nothing ends it before a look at the store"
        listing = _nbscale("runs", nb)
        assert listing.returncode == 0 and OWNER_STOPPED in listing.stdout, listing.stderr
        wait_for(lambda: _ended(kept) and _ended(forked), "the step's processes to end", timeout=10)
        assert not _ended(left), "a process the step put in a session of its own left the step on purpose"
    finally:
        proc.kill()
        for pid in (pids.read_text().split() if pids.exists() else ()):
            with contextlib.suppress(psutil.Error):
                psutil.Process(int(pid)).kill()



def test_what_a_step_blocked_on_a_subprocess_started_ends_when_the_run_is_cancelled(tmp_path):
    # the step waits in subprocess.run: the cancel restarts its worker, which leaves the child to
    # init; the run ends it before it exits
    beat = tmp_path / "beat"
    child = f"import time\nwhile True:\n    open({str(beat)!r}, 'w').write(str(time.time()))\n    time.sleep(0.2)"
    nb = make_notebook(tmp_path, [("import subprocess, sys", ["imports"]), ("x = 1", ["step:one"]),
                                  (f"subprocess.run([sys.executable, '-c', {child!r}])\ny = x", ["step:blocked"])],
                       name="blocked")
    proc = subprocess.Popen(NBSCALE + ["run", str(nb), "--no-cache"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=tmp_path)
    try:
        wait_for(beat.exists, "the step's child to start")
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 143 and "cancelled" in out, out
        time.sleep(1)
        before = beat.stat().st_mtime
        time.sleep(1.5)
        assert beat.stat().st_mtime == before, "the step's child runs on"
    finally:
        proc.kill()
        subprocess.run(["pkill", "-f", str(beat)], check=False)


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_local_step_whose_cleanup_waits_for_looping_threads_is_cancelled_and_the_process_ends(tmp_path, sig,
                                                                                                 code):
    # the interrupt lands in ex.map; leaving the `with` then joins workers that never return: the
    # interrupt is raised again until the step ends, and the process exits without waiting for them
    beat = tmp_path / "beat"
    nb = make_notebook(tmp_path, [
        ("import time\nfrom concurrent.futures import ThreadPoolExecutor", ["imports"]), ("x = 1", ["step:one"]),
        (f"def work(k):\n    while True:\n        time.sleep(0.1)\n        open({str(beat)!r}, 'w').write('x')\n"
         "with ThreadPoolExecutor(2) as ex:\n    list(ex.map(work, range(2)))\ny = x", ["step:pool"])], name="pool")
    proc = _start_run(nb, "--no-cache")
    try:
        wait_for(beat.exists, "the step's threads to start")
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == code and "cancelled" in err, (out, err)
        listing = _nbscale("runs", nb)
        assert "cancelled" in listing.stdout.splitlines()[0], listing.stdout
    finally:
        proc.kill()


@pytest.mark.parametrize("engine, code, said", [
    # under the local engine os._exit(0) ended nbscale's own process with 0: a pipeline that stopped
    # half-way looked like a success (on a worker it is the worker's death, tested with the engine)
    ("local", "os._exit(0)", "SystemExit: os._exit(0) would end the process running the step"),
    ("local", "raise KeyboardInterrupt", "KeyboardInterrupt"),  # nobody pressed Ctrl-C: the step failed
    ("dask", "raise KeyboardInterrupt", "KeyboardInterrupt"),
])
def test_a_step_that_exits_the_process_or_raises_keyboardinterrupt_fails_the_run(tmp_path, engine, code, said):
    nb = make_notebook(tmp_path, [("import os", ["imports"]), ("x = 1", ["step:one"]),
                                  (f"{code}\ny = x + 1", ["step:bad"]), ("z = y + 1", ["step:after"])], name="exits")
    done = _nbscale("run", nb, "--engine", engine, cwd=tmp_path)
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "bad failed at cell 3, line 1" in done.stdout and said in done.stdout, done.stdout
    assert "after  upstream_failed" in done.stdout


def test_a_step_ended_early_by_sys_exit_says_so_when_an_output_is_missing(tmp_path):
    nb = make_notebook(tmp_path, [("import sys", ["imports"]), ("x = 1", ["step:one"]),
                                  ("sys.exit(0)", ["step:bad"]), ("y = x + 1", ["step:bad"]),
                                  ("z = y + 1", ["step:after"])], name="early")
    done = _nbscale("run", nb, "--engine", "local", cwd=tmp_path)
    assert done.returncode == 1 and "(the step ended early: sys.exit() in cell 3)" in done.stdout, done.stdout

def test_sigterm_cancels_the_run_like_ctrl_c(tmp_path):
    nb = _slow(tmp_path, 60)
    proc = _start_run(nb)
    run_id = _running(tmp_path / ".nbscale" / "runs.sqlite")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143 and STOPPED_BY_SIGTERM in err and "Traceback" not in err
    run = RunStore(tmp_path / ".nbscale" / "runs.sqlite").get_run(run_id)
    assert run["status"] == "cancelled" and run["error"] == STOPPED_BY_SIGTERM
    assert {s["step"]: s["status"] for s in run["steps"]} == {"slow": "cancelled", "after": "cancelled"}


def _stubborn_run(tmp_path, engine):
    """A run whose step does not end when interrupted (its cleanup sleeps), once it runs; its id.
    On Dask the step's worker is killed half a second after the cancel tells it, whatever the step
    does: there the step also starts a process that ignores SIGTERM, which the cancel waits 2 s for
    (`children.TERMINATE_WAIT_S`) before it kills it."""
    inside, ignoring = tmp_path / "inside", ""
    if engine == "dask":  # (its pid noted for the test to end it: a second SIGTERM leaves it behind)
        # the child notes its pid once it ignores SIGTERM, and the step waits for that: a cancel
        # arriving while it still started would end it at once (ci73)
        pid_file = str(tmp_path / "ignoring.pid")
        ignoring = ("import os, subprocess, sys\nchild = subprocess.Popen([sys.executable, '-c', 'import os, signal, "
                    f"sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); open(sys.argv[1], \"w\").write("
                    f"str(os.getpid())); time.sleep(60)', {pid_file!r}], stdin=subprocess.DEVNULL, "
                    "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
                    f"while not os.path.exists({pid_file!r}):\n    time.sleep(0.01)\n")
    nb = make_notebook(tmp_path, [
        ("import time", ["imports"]),
        (f"{ignoring}try:\n    open({str(inside)!r}, 'w').close()\n    time.sleep(60)\n"
         "except BaseException:\n    time.sleep(60)  # a cleanup that does not end\nx = 1", ["step:slow"]),
        ("y = x", ["step:after"])], name="stubborn")
    proc = subprocess.Popen(NBSCALE + ["run", str(nb), "--engine", engine], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    run_id = _running(tmp_path / ".nbscale" / "runs.sqlite")
    wait_for(inside.exists, "the step to be inside its try")  # a signal before it ends the step at once
    return proc, run_id


@pytest.mark.parametrize(("engine", "sig"), [("local", signal.SIGTERM), ("dask", signal.SIGTERM),
                                             ("local", signal.SIGINT)])
def test_a_second_sigterm_or_ctrl_c_ends_the_process_and_the_run_is_recorded_cancelled(tmp_path, engine, sig):
    # (a second Ctrl-C did nothing: a local step that swallows its interrupts kept the process for good)
    proc, run_id = _stubborn_run(tmp_path, engine)
    try:
        proc.send_signal(sig)
        time.sleep(1.0)
        assert proc.poll() is None  # still cleaning up
        proc.send_signal(sig)
        proc.communicate(timeout=30)
    finally:
        if (tmp_path / "ignoring.pid").exists():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int((tmp_path / "ignoring.pid").read_text()), signal.SIGKILL)
    assert proc.returncode == -sig
    run = RunStore(tmp_path / ".nbscale" / "runs.sqlite").get_run(run_id)
    assert (run["status"], run["error"]) == ("cancelled", STOPPED_TWICE_BY_SIGTERM)
    assert {s["step"]: s["status"] for s in run["steps"]} == {"slow": "cancelled", "after": "cancelled"}


@pytest.mark.parametrize(("sig", "reason"), [(signal.SIGTERM, STOPPED_BY_SIGTERM),
                                             (signal.SIGINT, "cancelled by the user")])
def test_a_run_killed_after_it_was_asked_to_stop_is_found_cancelled_not_failed(tmp_path, sig, reason):
    # a service manager's or Kubernetes' way: SIGTERM, then SIGKILL after a grace time
    proc, run_id = _stubborn_run(tmp_path, "local")
    proc.send_signal(sig)
    time.sleep(1.0)
    proc.kill()
    proc.communicate(timeout=30)
    run = RunStore(tmp_path / ".nbscale" / "runs.sqlite").get_run(run_id)  # opening it finds the owner gone
    assert (run["status"], run["error"]) == ("cancelled", f"{reason} ({OWNER_STOPPED_EARLY})")
    assert {s["step"]: s["status"] for s in run["steps"]} == {"slow": "cancelled", "after": "cancelled"}


def test_a_step_that_ends_the_local_engine_process_leaves_a_failed_run(tmp_path):
    # (os._exit in a step fails the step: a real death of the process is a signal)
    nb = make_notebook(tmp_path, [("import os, signal\nx = 1", ["step:first"]),
                                  ("os.kill(os.getpid(), signal.SIGKILL)", ["step:exits"]),
                                  ("y = x", ["step:after"])], name="exits")
    result = _nbscale("run", nb, "--engine", "local")
    assert result.returncode == -9
    listing = _nbscale("runs", nb)
    assert "failed" in listing.stdout and OWNER_STOPPED in listing.stdout
    store = RunStore(tmp_path / ".nbscale" / "runs.sqlite")
    steps = {s["step"]: s["status"] for s in store.get_run(store.list_runs()[0]["id"])["steps"]}
    assert steps == {"first": "succeeded", "exits": "failed", "after": "cancelled"}


def test_deleting_the_state_folder_during_a_run_is_said_and_fails_the_run(tmp_path):
    nb = _slow(tmp_path, 4)
    proc = _start_run(nb)
    _running(tmp_path / ".nbscale" / "runs.sqlite")
    shutil.rmtree(tmp_path / ".nbscale")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    assert "! the state folder" in err  # the warning, while the run goes on
    assert "error: the state folder" in err and "history and the values it stored for reuse are lost" in err
    assert ": failed" in out


@pytest.fixture
def damaged(tmp_path):
    nb = make_notebook(tmp_path, [("x = 1", ["step:a"])], name="nb")
    (tmp_path / ".nbscale").mkdir()
    (tmp_path / ".nbscale" / "runs.sqlite").write_bytes(b"this is not a database " * 100)
    return nb


def test_a_damaged_run_store_is_explained_without_a_traceback(damaged):
    store = damaged.parent / ".nbscale" / "runs.sqlite"
    every_reader = (["runs", damaged], ["show", "abc", "--notebook", damaged], ["run", damaged, "--engine", "local"],
                    ["diff", "a", "b", "--notebook", damaged], ["cost", "abc", "--notebook", damaged],
                    ["lineage", "abc", "x", "--notebook", damaged], ["drift", "abc", "--notebook", damaged],
                    ["history", "a", "--notebook", damaged], ["baseline", "show", "--notebook", damaged])
    for args in every_reader:
        result = _nbscale(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.startswith(f"error: the run store {store} is damaged"), result.stderr
        assert "nbscale runs --repair" in result.stderr and "Traceback" not in result.stderr


def test_repair_moves_a_damaged_store_aside_and_starts_an_empty_one(damaged):
    state = damaged.parent / ".nbscale"
    broken = (state / "runs.sqlite").read_bytes()
    result = _nbscale("runs", "--repair", damaged)
    assert result.returncode == 0 and "moved the damaged run store to" in result.stdout
    (moved,) = state.glob("runs.sqlite.corrupt-*")
    assert moved.read_bytes() == broken
    assert _nbscale("runs", damaged).stdout.strip() == "no runs yet"
    assert "is sound: nothing moved" in _nbscale("runs", "--repair", damaged).stdout
    assert _nbscale("run", damaged, "--engine", "local").returncode == 0


def test_a_read_only_run_store_is_read_and_refuses_a_run_with_a_message(tmp_path):
    nb = make_notebook(tmp_path, [("x = 1", ["step:a"])], name="nb")
    assert _nbscale("run", nb, "--engine", "local").returncode == 0
    store = tmp_path / ".nbscale" / "runs.sqlite"
    make_immutable(store)
    try:
        listing = _nbscale("runs", nb)
        assert listing.returncode == 0 and "succeeded" in listing.stdout
        refused = _nbscale("run", nb, "--engine", "local", "--no-cache")
        assert refused.returncode == 2 and "Traceback" not in refused.stderr
        assert refused.stderr.startswith(f"error: cannot write the run store {store} (read-only")
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(store)])


# --- what a step prints and shows ------------------------------------------------------------------

PNG = b"\x89PNG\r\n\x1a\n" + bytes(16)


def _showing(tmp_path):
    return make_notebook(tmp_path, [
        ("import warnings\nfrom IPython.display import Image", ["imports"]),
        ("print('training')\nwarnings.warn('old API', FutureWarning)\n[1, 2, 3]", ["step:fit"]),
        (f"display(Image(data={PNG!r}, format='png'))\n'done'", []),
    ], name="showing")


def test_show_gives_warnings_results_images_and_where_the_log_is(tmp_path):
    nb = _showing(tmp_path)
    ran = cli("run", nb, "--engine", "local")
    assert ran.exit_code == 0, ran.output
    assert "! fit: cell 2, line 2: FutureWarning: old API" in ran.output  # in the progress, as it came
    run_id = RunStore(tmp_path / ".nbscale" / "runs.sqlite").list_runs()[0]["id"]
    logs = tmp_path.resolve() / ".nbscale" / "logs" / run_id
    assert f"logs: {logs}  (nbscale show {run_id[:12]})" in ran.output
    shown = cli("show", run_id[:8], "--notebook", nb).output
    assert "    ! cell 2, line 2: FutureWarning: old API" in shown
    image = logs / "fit-cell3-1.png"
    assert ("    | ── cell 2 ──\n    | training\n" in shown and "    | [1, 2, 3]\n    | ── cell 3 ──\n"
            f"    | [image/png saved to {image}]\n    | 'done'\n    log: {logs / 'fit.log'}\n") in shown
    assert image.read_bytes() == PNG
    data = json.loads(cli("run", nb, "--engine", "local", "--no-cache", "--output", "json").stdout)
    assert [w["message"] for w in data["steps"][0]["warnings"]] == ["cell 2, line 2: FutureWarning: old API"]
    assert data["steps"][0]["log"].endswith("fit.log")


def test_run_v_echoes_what_the_steps_print(tmp_path):
    nb = make_notebook(tmp_path, [("print('epoch 1')\nprint('epoch 2')", ["step:fit"])])
    quiet = cli("run", nb, "--engine", "local", "--no-cache")
    assert "epoch 1" not in quiet.output
    loud = cli("run", nb, "--engine", "local", "--no-cache", "-v")
    assert "  fit | epoch 1\n  fit | epoch 2\n" in loud.output
    on_dask = _nbscale("run", nb, "--no-cache", "--log", "--workers", "1")
    assert on_dask.returncode == 0, on_dask.stderr
    assert "  fit | epoch 1\n  fit | epoch 2\n" in on_dask.stderr


def test_an_empty_notebook_says_nothing_to_run(tmp_path):
    nb = make_notebook(tmp_path, [nbformat.v4.new_markdown_cell("# notes only")])
    done = subprocess.run([*NBSCALE, "run", str(nb)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "nothing to run" in done.stdout and "succeeded" not in done.stdout


# -- metric regressions and cost in the run summary; --fail-on-regression ------------------------------


def _scored(tmp_path, metrics="accuracy\nloss"):
    return make_notebook(tmp_path, [
        ("drop = 0.0", ["parameters"]),
        ("accuracy = 0.9 - drop\nloss = 0.1 + drop", ["step:score"]),
        (metrics, ["metrics"]),
    ], name="scored")


def test_fail_on_regression_exits_3_after_the_run_is_recorded(tmp_path):
    nb = _scored(tmp_path)
    first = cli("run", nb, "--engine", "local", "--fail-on-regression")
    assert first.exit_code == 0, first.output
    assert "regression:" not in first.stdout and "cost: " in first.stdout
    worse = cli("run", nb, "--engine", "local", "-p", "drop=0.2", "--fail-on-regression")
    assert worse.exit_code == 3, worse.output
    assert "regression: accuracy = 0.7 (-22.2% against the previous run" in worse.stdout
    assert "regression: loss = 0.3 (+200.0% against the previous run" in worse.stdout
    with RunStore(tmp_path / ".nbscale" / "runs.sqlite") as store:
        latest = store.list_runs(limit=1)[0]
    assert latest["status"] == "succeeded" and latest["finished"]  # recorded before the exit
    # without the flag the regression is shown, the exit code is the run's
    shown = cli("run", nb, "--engine", "local", "-p", "drop=0.3")
    assert shown.exit_code == 0 and "regression: accuracy" in shown.stdout
    better = cli("run", nb, "--engine", "local", "-p", "drop=-0.05", "--fail-on-regression")
    assert better.exit_code == 0 and "regression:" not in better.stdout
    lenient = cli("run", nb, "--engine", "local", "-p", "drop=0.0", "--fail-on-regression",
                  "--regression-threshold", "1.5")
    assert lenient.exit_code == 0, lenient.output  # -5 % accuracy, +100 % loss: within 150 %


def test_run_json_has_regressions_and_cost(tmp_path):
    nb = _scored(tmp_path)
    cli("run", nb, "--engine", "local")
    result = cli("run", nb, "--engine", "local", "-p", "drop=0.1", "--output", "json", "--fail-on-regression")
    assert result.exit_code == 3
    data = json.loads(result.stdout)
    assert data["regressions"]["regressed"] == ["accuracy", "loss"]
    assert {m["name"]: m["direction"] for m in data["regressions"]["metrics"]} == {"accuracy": "max", "loss": "min"}
    assert data["cost"]["run_id"] == data["run_id"] and data["cost"]["total"]["cpu_s"] > 0
    cached = json.loads(cli("run", nb, "--engine", "local", "-p", "drop=0.1", "--output", "json").stdout)
    assert cached["cost"]["total"]["saved_s"] > 0 and cached["cost"]["total"]["saved_cost"] > 0


def test_bad_regression_settings_run_nothing(tmp_path):
    nb = _scored(tmp_path)
    bad = cli("run", nb, "--engine", "local", "--regression-threshold", "-0.5")
    assert bad.exit_code == 2 and "--regression-threshold must be a number ≥ 0" in bad.stderr
    (tmp_path / "pyproject.toml").write_text("[tool.nbscale.regressions]\nthreshold = 'high'\n")
    bad = cli("run", nb, "--engine", "local")
    assert bad.exit_code == 2 and "[tool.nbscale.regressions] threshold must be a number" in bad.stderr
    assert not (tmp_path / ".nbscale" / "runs.sqlite").exists()


def test_a_hostile_metric_name_is_printed_literally(tmp_path):
    nb = _scored(tmp_path, metrics="{'\\x1b[31maccuracy\\u202e': accuracy}")
    cli("run", nb, "--engine", "local")
    result = cli("run", nb, "--engine", "local", "-p", "drop=0.5", "--fail-on-regression")
    assert result.exit_code == 3, result.output
    line = next(line for line in result.stdout.splitlines() if line.startswith("regression:"))
    assert "\x1b" not in line and "\u202e" not in line and "\\x1b[31maccuracy\\u202e" in line



OSC = "\x1b]0;PWNED\x07"  # sets the terminal's title
SHOWN = "\\x1b]0;PWNED\\x07"  # the title's escape as text


def _hostile(tmp_path):
    """A notebook whose printed output, warning, metric name and exception message hold escapes."""
    return make_notebook(tmp_path, [
        ("import warnings", ["imports"]),
        (f"print({'out' + OSC!r})\nwarnings.warn({'old' + OSC!r})\nscores = {{{'m' + OSC!r}: 1.0}}", ["step:train"]),
        ("scores", ["metrics"]),
        (f"raise ValueError({'boom' + OSC!r})", ["step:boom"]),
    ], name="hostile")


def test_escape_codes_a_notebook_prints_or_raises_are_shown_not_obeyed(tmp_path):
    nb = _hostile(tmp_path)
    ran = cli("run", nb, "--engine", "local", "-v")  # -v: the progress echoes what the steps print
    assert ran.exit_code == 1, ran.output
    run_id = RunStore(tmp_path / ".nbscale" / "runs.sqlite").list_runs()[0]["id"]
    shown = cli("show", run_id[:8], "--notebook", nb, "--logs")
    listing = cli("runs", nb)
    assert shown.exit_code == 0 and listing.exit_code == 0
    for output in (ran.output, shown.output, listing.output):
        assert "\x1b" not in output and "\x07" not in output
    boom = f"ValueError: boom{SHOWN}"
    assert f"boom failed at cell 4, line 1: {boom}\n" in ran.output
    assert f"\n{boom}\n" in ran.output  # the traceback's last line, its lines kept
    assert f"metric scores.m{SHOWN} = 1.0" in ran.output and f"train | out{SHOWN}" in ran.output
    assert f"UserWarning: old{SHOWN}" in ran.output
    assert f"    error at cell 4, line 1: {boom}\n" in shown.output and f"\n    {boom}\n" in shown.output
    assert f"    | out{SHOWN}\n" in shown.output and f"metric scores.m{SHOWN} = 1.0" in shown.output
    assert f"    ! cell 2, line 2: UserWarning: old{SHOWN}\n" in shown.output
    assert json.loads(cli("run", nb, "--engine", "local", "--output", "json").stdout)["metrics"] == \
        {"scores.m" + OSC: 1.0}  # JSON escapes by itself: the value is kept whole


def test_show_says_which_metrics_regressed_and_what_the_run_cost(tmp_path):
    nb = _scored(tmp_path)
    cli("run", nb, "--engine", "local")
    worse = json.loads(cli("run", nb, "--engine", "local", "-p", "drop=0.2", "--output", "json").stdout)
    shown = cli("show", worse["run_id"][:10], "--notebook", nb, "--no-logs")
    assert shown.exit_code == 0, shown.output
    assert "regression: accuracy = 0.7 (-22.2% against the previous run" in shown.stdout
    assert f"cost: {worse['cost']['total']['cost']:.3g} units" in shown.stdout


def test_a_step_that_closes_standard_output_leaves_the_run_and_its_summary_whole(tmp_path):
    nb = make_notebook(tmp_path, [
        ("import os, sys\nprint('kept')\nsys.stdout.close()\nos.close(1)\nx = 1", ["step:closes"]),
        ("y = x + 1\nprint('after', y)", ["step:after"]),
    ])
    proc = subprocess.run([*NBSCALE, "run", str(nb), "--engine", "local"], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "closes  succeeded" in proc.stdout and "after   succeeded" in proc.stdout  # printed after the step
    assert "standard output (file descriptor 1)" in proc.stderr
    steps = dict(sqlite3.connect(tmp_path / ".nbscale" / "runs.sqlite").execute("select step, stdout from step_runs"))
    assert steps == {"closes": "kept\n", "after": "after 2\n"}
