"""A step's Dask task beyond its code (kernels/engines/dask_lifecycle.py), on real clusters: a
worker that dies under a step (out of memory, `os._exit`) is a failed step with a reason, retried
only as `retries:` says; Cancel (Ctrl-C of `nbscale run`) stops the step on its worker, ends its
child processes, and leaves other clients' workers alone.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import psutil
import pytest
from conftest import HOLDS_THE_INTERPRETER, make_notebook, wait_for
from test_dask import (
    late_worker_preload,
    process_cluster,  # noqa: F401 - the `dask scheduler` + `dask worker` processes fixture
)

from nbscale.kernels.engines.dask_lifecycle import death_reason
from nbscale.kernels.runner import RunOptions, default_run_store, run_notebook

DEADLINE_S = 60


@pytest.fixture(scope="module")
def limited_cluster():
    """Two single-threaded worker processes with nannies and a memory limit each."""
    import dask
    from distributed import LocalCluster

    # on a busy machine a restarted worker may take longer than LocalCluster's 15 s to come back
    with dask.config.set({"distributed.deploy.lost-worker-timeout": "120s"}):
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                               host="127.0.0.1", memory_limit="400MB")
        yield cluster.scheduler_address
        cluster.close()


def _lines(path):
    return path.read_text().splitlines() if path.exists() else []


def _dying_step(log, body, tags=()):
    """A step that notes each start in `log` (its side effect), then runs `body`."""
    return (f"import os\nwith open({str(log)!r}, 'a') as f:\n    f.write('start\\n')\n{body}\nx = 1",
            ["step:dies", *tags])


# --- a worker that dies under a step ----------------------------------------------------------------


def test_a_step_over_its_workers_memory_limit_fails_once_with_the_limit(tmp_path, limited_cluster):
    log = tmp_path / "starts.txt"
    notebook = make_notebook(tmp_path, [_dying_step(log, "blob = b'x' * (1500 * 2**20)"),
                                        ("y = x + 1", ["step:after"]), ("z = 2", ["step:other"])])
    result = run_notebook(notebook, options=RunOptions(scheduler=limited_cluster, use_cache=False))
    assert result.status == "failed"
    status = {s["name"]: s["status"] for s in result.steps}
    assert status == {"dies": "failed", "after": "upstream_failed", "other": "succeeded"}
    error = result.step("dies")["error"]
    assert error["ename"] == "WorkerDied"
    assert error["evalue"].startswith("the worker running this step died"), error
    assert "memory limit 381.47 MiB" in error["evalue"] and "last seen using" in error["evalue"], error
    assert _lines(log) == ["start"], "the step ran again after its worker died"


def test_os_exit_in_a_step_fails_it_and_its_dependents(tmp_path, limited_cluster):
    log = tmp_path / "starts.txt"
    notebook = make_notebook(tmp_path, [("a = 1", ["step:first"]), _dying_step(log, "os._exit(1)"),
                                        ("y = x + a", ["step:after"])])
    result = run_notebook(notebook, options=RunOptions(scheduler=limited_cluster, use_cache=False))
    assert result.status == "failed"
    assert [s["status"] for s in result.steps] == ["succeeded", "failed", "upstream_failed"]
    assert result.step("dies")["error"]["evalue"].startswith("the worker running this step died on tcp://")
    assert result.step("dies")["attempts"] == 1
    assert _lines(log) == ["start"]


def test_a_crash_in_compiled_code_or_os_exit_names_the_cell_and_line_the_worker_died_at(tmp_path, limited_cluster):
    # before: "the worker running this step died on tcp://…; memory limit 381.47 MiB", as if it were memory
    notebook = make_notebook(tmp_path, [("a = 1", ["step:first"]),
                                        ("import ctypes\nx = a\nctypes.string_at(0)", ["step:crashes"]),
                                        ("import os\n\nos._exit(3)", ["step:exits"])])
    result = run_notebook(notebook, options=RunOptions(scheduler=limited_cluster, use_cache=False))
    crashed, exited = result.step("crashes")["error"], result.step("exits")["error"]
    assert crashed["ename"] == exited["ename"] == "WorkerDied"
    assert re.fullmatch(r"the worker running this step died on tcp://\S+: Segmentation fault at cell 2, line 3 "
                        r"\(in string_at, __init__\.py:\d+\)", crashed["evalue"]), crashed
    assert re.fullmatch(r"the worker running this step died on tcp://\S+: os\._exit\(3\) called by the step's "
                        r"code at cell 3, line 3", exited["evalue"]), exited


@pytest.mark.parametrize("cluster", ["given", "embedded"])
def test_parallel_steps_that_end_every_worker_at_once_fail_and_the_run_ends(tmp_path, limited_cluster, cluster):
    # Dask parked both tasks with no worker left, and the new workers never took them: the run waited for ever
    # (the embedded cluster: one worker per core, 2 here, or per parallel step)
    notebook = make_notebook(tmp_path, [("import os, time\ntime.sleep(0.5)\nos._exit(1)", ["step:one"]),
                                        ("import os, time\ntime.sleep(0.5)\nos._exit(2)", ["step:two"]),
                                        ("z = 1", ["step:after", "after:one"])])
    ended = {}
    runner = threading.Thread(target=lambda: ended.setdefault("result", run_notebook(
        notebook, options=RunOptions(scheduler=limited_cluster if cluster == "given" else None, workers=2,
                                     use_cache=False))), daemon=True)
    runner.start()
    runner.join(DEADLINE_S)
    assert "result" in ended, f"the run did not end within {DEADLINE_S} s"
    result = ended["result"]
    assert {s["name"]: s["status"] for s in result.steps} == {"one": "failed", "two": "failed",
                                                              "after": "upstream_failed"}
    said = {result.step(name)["error"]["evalue"].rsplit(": ", 1)[-1] for name in ("one", "two")}
    assert said == {f"os._exit({n}) called by the step's code at cell {n}, line 3" for n in (1, 2)}


def test_a_keyboard_interrupt_the_step_raises_fails_it_once_and_leaves_its_worker(tmp_path, limited_cluster):
    # re-raised on the worker, it killed the worker and the step started again on the next, without end
    log = tmp_path / "starts.txt"
    notebook = make_notebook(tmp_path, [("a = 1", ["step:first"]), _dying_step(log, "raise KeyboardInterrupt('x')"),
                                        ("y = a + 1", ["step:other"])])
    result = run_notebook(notebook, options=RunOptions(scheduler=limited_cluster, use_cache=False))
    assert [s["status"] for s in result.steps] == ["succeeded", "failed", "succeeded"]
    assert result.step("dies")["error"]["ename"] == "KeyboardInterrupt" and result.step("dies")["attempts"] == 1
    assert _lines(log) == ["start"]


def test_a_step_killing_its_worker_at_its_first_statement_is_blamed_not_the_step_before(tmp_path, limited_cluster):
    """The step's start leaves the worker before its code runs (no time for anything else to send
    it), and the scheduler has it before it learns of the death: the dying step is blamed, every
    time, and the step before it in the chain (one task) succeeded."""
    for attempt in range(3):
        notebook = make_notebook(tmp_path, [("a = 1", ["step:first"]),
                                            ("__import__('os')._exit(1)\nx = a", ["step:dies"])])
        result = run_notebook(notebook, options=RunOptions(scheduler=limited_cluster, use_cache=False))
        assert [(s["name"], s["status"]) for s in result.steps] == [("first", "succeeded"), ("dies", "failed")], attempt
        assert result.step("dies")["error"]["ename"] == "WorkerDied", attempt
        assert result.step("dies")["attempts"] == 1, attempt


def test_a_step_whose_worker_died_under_it_ran_until_then(tmp_path, limited_cluster):
    """Its outcome came from the task run again (or Dask's KilledWorker) after the death, and took
    its start from then: the run store, `show` and `cost` said it ran 0.00 s."""
    notebook = make_notebook(tmp_path, [("import os, time\ntime.sleep(1.5)\nos._exit(1)", ["step:dies"])])
    result = run_notebook(notebook, options=RunOptions(scheduler=limited_cluster, use_cache=False))
    dies = result.step("dies")
    assert (dies["status"], dies["error"]["ename"]) == ("failed", "WorkerDied")
    assert dies["duration_s"] >= 1.5
    (row,) = default_run_store(notebook).get_run(result.run_id)["steps"]
    assert row["duration_s"] >= 1.5


def test_a_dropped_connection_to_the_scheduler_is_made_again_for_the_next_steps(tmp_path, limited_cluster):
    """The worker's own line to the scheduler (`SchedulerLine`) breaks between two steps of a chain
    (a dropped connection): the next step's start connects again, and every step's record and
    event arrive (the run sees each step start and succeed)."""
    drop = ("from distributed import get_worker\n"
            "from nbscale.kernels.engines.dask_lifecycle import SchedulerLine\n"
            "line = SchedulerLine.of(get_worker())\n"
            "dropped = line.comm is not None and not line.comm.closed()\n"
            "line.comm.abort()\n")
    notebook = make_notebook(tmp_path, [("a = 1", ["step:first"]), (drop + "b = a + 1", ["step:drops"]),
                                        ("c = b + 1", ["step:after"]), ("d = c + 1", ["step:last"])])
    events = []
    result = run_notebook(notebook, options=RunOptions(scheduler=limited_cluster, use_cache=False),
                          on_event=lambda kind, step, payload=None: events.append((kind, step)))
    assert [(s["name"], s["status"]) for s in result.steps] == [
        ("first", "succeeded"), ("drops", "succeeded"), ("after", "succeeded"), ("last", "succeeded")]
    assert result.load("drops", ["dropped"]) == {"dropped": True}  # it had a live connection to drop
    assert result.load("last", ["d"]) == {"d": 4}
    for step in ("after", "last"):
        assert ("step_started", step) in events and ("step_finished", step) in events


def test_a_died_worker_is_retried_as_retries_says(tmp_path, limited_cluster):
    log = tmp_path / "starts.txt"
    notebook = make_notebook(tmp_path, [_dying_step(log, "os._exit(1)", ["retries:1"])])
    result = run_notebook(notebook, options=RunOptions(scheduler=limited_cluster, use_cache=False))
    assert result.status == "failed"
    assert _lines(log) == ["start", "start"]
    assert result.step("dies")["attempts"] == 2
    assert "the worker running this step died" in result.step("dies")["error"]["evalue"]


def test_an_error_and_a_death_share_the_retries(tmp_path, limited_cluster):
    log = tmp_path / "starts.txt"
    body = f"if len(open({str(log)!r}).readlines()) == 1:\n    raise ValueError('first')\nos._exit(1)"
    notebook = make_notebook(tmp_path, [_dying_step(log, body, ["retries:1"])])
    result = run_notebook(notebook, options=RunOptions(scheduler=limited_cluster, use_cache=False))
    assert _lines(log) == ["start", "start"]
    assert result.step("dies")["status"] == "failed" and result.step("dies")["attempts"] == 2
    assert result.step("dies")["error"]["ename"] == "WorkerDied"


def test_a_chain_counts_each_steps_deaths_also_across_deaths_under_another_step(tmp_path, limited_cluster):
    """A chain is one task with one record: `b` dies under it, then `a` (run again to hand `b` its
    input) dies on its second run; `b` still has its first death counted, so retries:1 gives it
    exactly one more attempt."""
    log_a, log_b = tmp_path / "a.txt", tmp_path / "b.txt"
    note = "with open({!r}, 'a') as f:\n    f.write('start\\n')\n"
    notebook = make_notebook(tmp_path, [
        ("import os\n" + note.format(str(log_a))
         + f"if len(open({str(log_a)!r}).readlines()) == 2:\n    os._exit(3)\na = 1", ["step:a", "retries:1"]),
        ("import os\n" + note.format(str(log_b)) + "os._exit(3)\nb = a", ["step:b", "retries:1"]),
    ])
    result = run_notebook(notebook, options=RunOptions(scheduler=limited_cluster, use_cache=False))
    # `a` runs in the task's first 3 runs; the last one finds `b` out of attempts and runs neither
    # (`a` ended in an earlier run: `ended_before_the_last_attempt`)
    assert _lines(log_a) == ["start"] * 3 and _lines(log_b) == ["start"] * 2
    assert result.step("a")["status"] == "succeeded"
    assert (result.step("b")["status"], result.step("b")["attempts"]) == ("failed", 2)
    assert result.step("b")["error"]["ename"] == "WorkerDied"


def test_a_step_out_of_attempts_stays_so_when_its_task_runs_again(limited_cluster):
    """A task whose step `x` was found out of attempts (its worker died under it), run again to
    compute its lost result, finds `x` died as before: the task's end kept its deaths."""
    from distributed import Client

    def task_line_deaths(run_id):  # what a run of the task finds, then its end (no step began)
        from distributed import get_worker

        from nbscale.kernels.engines.dask_lifecycle import TaskLine

        line = TaskLine(get_worker(), run_id, "x")
        died = dict(line.died)
        line.close()
        return died

    with Client(limited_cluster, timeout="20s") as client:
        client.set_metadata(["nbscale", "run-a", "x"], {"step": "x", "attempts": 1, "worker": "tcp://w:1",
                                                        "running": True, "died": {}})
        first = client.submit(task_line_deaths, "run-a", pure=False).result()
        again = client.submit(task_line_deaths, "run-a", pure=False).result()
    assert first["x"]["attempts"] == 1 and first["x"]["worker"] == "tcp://w:1"
    assert again == first


def test_a_tasks_records_and_events_reach_the_scheduler_in_the_order_posted(limited_cluster):
    """Posted from two threads of a worker (the step's, the memory sampler's) and in batches, the
    writes and events arrive in each thread's order; `close` returns once the scheduler has them
    all. An event msgpack cannot send is refused where it is posted, as `Worker.log_event` does."""
    from distributed import Client

    def post(run_id, topic, n):
        import threading

        from distributed import get_worker

        from nbscale.kernels.engines.dask_lifecycle import TaskLine

        line = TaskLine(get_worker(), run_id, "head")
        refused = False
        try:
            line.log(topic, ["step_output", "s", {"not msgpack": object()}])
        except TypeError:
            refused = True
        other = threading.Thread(target=lambda: [line.write([*line.record.keys, "other"], i) for i in range(n)])
        other.start()
        for i in range(n):
            line.write([*line.record.keys, "count"], i)
            line.log(topic, ["step_output", "s", {"i": i}])
            if i % 50 == 0:
                line.flush()
        other.join()
        line.close()
        return refused

    with Client(limited_cluster, timeout="20s") as client:
        refused = client.submit(post, "run-order", "nbscale-order", 500, pure=False).result()
        record = client.get_metadata(["nbscale", "run-order", "head"])
        events = [msg for _, msg in client.get_events("nbscale-order")]
    assert refused
    assert (record["count"], record["other"], record["running"]) == (499, 499, False)
    assert [e[2]["i"] for e in events] == list(range(500))


def test_a_step_killing_its_worker_once_succeeds_on_its_retry(tmp_path, process_cluster):  # noqa: F811
    marker = tmp_path / "killed-once"
    notebook = make_notebook(tmp_path, [
        ("x = 21", ["step:first"]),
        (f"import os, pathlib\nm = pathlib.Path({str(marker)!r})\nif not m.exists():\n"
         "    m.write_text(str(os.getpid()))\n    os.kill(os.getpid(), 9)\ny = x * 2", ["step:killer", "retries:1"]),
        ("z = y + 1", ["step:last"]),
    ])
    result = run_notebook(notebook, options=RunOptions(scheduler_file=process_cluster, use_cache=False))
    assert marker.exists(), "the step never killed its worker"
    assert result.ok, result.steps
    assert result.step("killer")["attempts"] == 2
    assert result.load("last")["z"] == 43
    from distributed import Client

    with Client(scheduler_file=process_cluster, timeout="20s") as client:
        client.wait_for_workers(2, timeout=30)  # the nanny brought the worker back


def test_dask_giving_up_first_is_the_same_failed_step(tmp_path):
    """An external cluster whose scheduler allows no worker death: Dask raises KilledWorker at
    once; the step fails with the same reason, its dependents are upstream_failed."""
    import dask
    from distributed import LocalCluster

    log = tmp_path / "starts.txt"
    notebook = make_notebook(tmp_path, [_dying_step(log, "os._exit(3)", ["retries:2"]), ("y = x", ["step:after"])])
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), LocalCluster(
            n_workers=1, threads_per_worker=1, dashboard_address=None, host="127.0.0.1") as cluster:
        result = run_notebook(notebook, options=RunOptions(scheduler=cluster.scheduler_address, use_cache=False))
    assert [s["status"] for s in result.steps] == ["failed", "upstream_failed"]
    assert result.step("dies")["error"]["evalue"].startswith("the worker running this step died on tcp://")
    assert _lines(log) == ["start"]


def test_dask_giving_up_on_a_chain_fails_the_step_that_ran_in_it(tmp_path):
    """As above, with the step that dies second in its chain (the task's record is its first step's)."""
    import dask
    from distributed import LocalCluster

    log = tmp_path / "starts.txt"
    dies = _dying_step(log, "b = a\nos._exit(3)", ["retries:2"])
    notebook = make_notebook(tmp_path, [("a = 1", ["step:first"]), dies, ("y = x", ["step:after"])])
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), LocalCluster(
            n_workers=1, threads_per_worker=1, dashboard_address=None, host="127.0.0.1") as cluster:
        result = run_notebook(notebook, options=RunOptions(scheduler=cluster.scheduler_address, use_cache=False))
    assert [s["status"] for s in result.steps] == ["succeeded", "failed", "upstream_failed"]
    assert result.step("dies")["error"]["evalue"].startswith("the worker running this step died on tcp://")
    assert result.step("dies")["attempts"] == 1
    assert _lines(log) == ["start"]


def test_the_cli_reports_a_died_worker_without_a_killedworker_traceback(tmp_path, limited_cluster):
    notebook = make_notebook(tmp_path, [_dying_step(tmp_path / "log.txt", "os._exit(1)")])
    run = subprocess.run([sys.executable, "-m", "nbscale", "run", str(notebook), "--scheduler", limited_cluster],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1, run.stderr
    assert "the worker running this step died" in run.stdout + run.stderr
    assert "KilledWorker" not in run.stderr and "Traceback" not in run.stderr, run.stderr


def test_death_reason_says_what_is_known():
    record = {"worker": "tcp://w:1", "memory_limit": 2**30, "memory": 2**29}
    restarts = [{"worker": "tcp://w:1", "rss": 1.3 * 2**30}, {"worker": "tcp://other:2", "rss": 9 * 2**30}]
    assert death_reason(record, restarts) == ("the worker running this step died (its nanny restarted it for going "
                                              "over its memory limit) on tcp://w:1; memory limit 1.00 GiB, "
                                              "last seen using 1.30 GiB")
    assert death_reason({"worker": "tcp://w:1"}) == "the worker running this step died on tcp://w:1"


def test_death_reason_tells_what_the_workers_fault_file_says_written_on_this_host_only(tmp_path):
    fault = tmp_path / "faults" / "w-7.log"
    fault.parent.mkdir()
    fault.write_text("Fatal Python error: Aborted\n\nCurrent thread 0x1 (most recent call first):\n"
                     '  File "<cell 7 [0123456789ab]>", line 4 in <module>\n')
    record = {"worker": "tcp://w:1", "memory_limit": 2**30, "fault_file": str(fault), "host": socket.gethostname()}
    assert death_reason(record) == "the worker running this step died on tcp://w:1: Aborted at cell 7, line 4"
    elsewhere = {**record, "host": "another-host"}
    assert death_reason(elsewhere) == "the worker running this step died on tcp://w:1; memory limit 1.00 GiB"


# --- a step that outlives its timeout is stopped from outside --------------------------------------


@pytest.mark.parametrize("body", ["import time\ntime.sleep(600)", HOLDS_THE_INTERPRETER],
                         ids=["sleeping", "stuck_in_c_code"])
def test_a_step_that_does_not_return_to_python_is_stopped_at_its_timeout(tmp_path, limited_cluster, body):
    """Its worker never raises the timeout (no bytecode runs): the run stops it from outside
    (`StepDeadlines`), and the task run again reports the timeout, not a death; before, the step
    ran until the call returned (a sleep of 600 s, a C loop for hours) and the run with it."""
    log = tmp_path / "starts.txt"
    notebook = make_notebook(tmp_path, [_dying_step(log, body, ["timeout:1s"]), ("y = x + 1", ["step:after"])])
    started = time.monotonic()
    result = run_notebook(notebook, options=RunOptions(scheduler=limited_cluster, use_cache=False))
    assert time.monotonic() - started < DEADLINE_S
    dies = result.step("dies")
    assert (dies["status"], dies["error"]["ename"], dies["attempts"]) == ("failed", "StepTimeout", 1)
    assert "timeout of 1 s" in dies["error"]["evalue"] and "worker was restarted" in dies["error"]["evalue"]
    assert dies["duration_s"] >= 1
    assert result.step("after")["status"] == "upstream_failed"
    assert _lines(log) == ["start"]  # not run again as its task was


def test_a_step_stopped_at_its_timeout_is_retried_as_retries_says(tmp_path, limited_cluster):
    log = tmp_path / "starts.txt"
    notebook = make_notebook(tmp_path, [_dying_step(log, "import time\ntime.sleep(600)", ["timeout:1s", "retries:1"])])
    result = run_notebook(notebook, options=RunOptions(scheduler=limited_cluster, use_cache=False))
    dies = result.step("dies")
    assert (dies["status"], dies["error"]["ename"], dies["attempts"]) == ("failed", "StepTimeout", 2)
    assert _lines(log) == ["start", "start"]


def test_a_step_stopped_at_its_timeout_in_a_chain_does_not_run_the_steps_before_it_again(tmp_path, limited_cluster):
    """The chain a → b → c is one Dask task, run again after b's worker was restarted: a ran again
    (its side effect twice, the run waiting for it), and was recorded from that second run."""
    log = tmp_path / "a.txt"
    notebook = make_notebook(tmp_path, [
        (f"with open({str(log)!r}, 'a') as f:\n    f.write('a ran\\n')\nx = 1", ["step:a", "cache:off"]),
        ("import time\ntime.sleep(600)\ny = x + 1", ["step:b", "timeout:1s"]),
        ("z = y", ["step:c"])])
    result = run_notebook(notebook, options=RunOptions(scheduler=limited_cluster, use_cache=False))
    assert [(s["name"], s["status"]) for s in result.steps] == [
        ("a", "succeeded"), ("b", "failed"), ("c", "upstream_failed")]
    assert result.step("b")["error"]["ename"] == "StepTimeout"
    assert _lines(log) == ["a ran"]


def test_a_chains_step_whose_code_ended_in_time_is_not_stopped_while_the_next_one_gets_ready(tmp_path):
    """a's end is reported with b's start, after b copied its (big) input: the run took a for still
    running 2 s past its timeout and restarted the worker under b, which has no timeout."""
    notebook = make_notebook(tmp_path, [
        # (its code ends at 3.5 s; b's copy of its input takes seconds more)
        ("import time\nt0 = time.time()\nrows = [{'i': i, 's': str(i)} for i in range(3_000_000)]\n"
         "time.sleep(max(0, 3.5 - (time.time() - t0)))", ["step:a", "timeout:4s"]),
        ("n = len(rows)", ["step:b"])])
    result = run_notebook(notebook, options=RunOptions(use_cache=False))
    assert [(s["name"], s["status"]) for s in result.steps] == [("a", "succeeded"), ("b", "succeeded")], result.steps
    assert result.load("b", ["n"]) == {"n": 3_000_000}


def test_a_step_that_ends_at_its_timeout_itself_is_not_stopped_from_outside(tmp_path, limited_cluster):
    """Python code raises the timeout in the step: the cell and line are known and the worker stays."""
    notebook = make_notebook(tmp_path, [("import os\npid = os.getpid()", ["step:first"]),
                                        ("n = pid\nwhile True:\n    n += 1", ["step:spins", "timeout:1s"])])
    events = []
    result = run_notebook(notebook, options=RunOptions(scheduler=limited_cluster, use_cache=False),
                          on_event=lambda kind, step, payload=None: events.append((kind, step, payload)))
    error = result.step("spins")["error"]
    assert error["ename"] == "StepTimeout" and error["line"] in (2, 3)
    assert not [e for e in events if e[0] == "warning" and "restarting worker" in str(e[2])]


# --- Cancel stops the step where it runs ---------------------------------------------------------


def _sleeper(tmp_path, name="sleeper", wait="time.sleep(600)", tags=()):
    """A notebook whose step starts a child process, notes both pids, and sleeps (or `wait`s)."""
    pids = tmp_path / f"{name}-pids.txt"
    source = (f"import os, subprocess, time\nchild = subprocess.Popen(['sleep', '600'])\n"
              f"open({str(pids)!r}, 'w').write(f'{{os.getpid()}} {{child.pid}}')\n{wait}\nx = 1")
    folder = tmp_path / name
    folder.mkdir()
    return make_notebook(folder, [(source, ["step:sleeps", *tags])], name=name), pids


def _cancel_cli_run(notebook, pids, flag, target):
    """`nbscale run` until the step started, then Ctrl-C; returns its output and the step's pids."""
    code, output = _interrupted([sys.executable, "-m", "nbscale", "run", str(notebook), flag, target],
                                _step_started(pids), "the step to start")
    return code, output, [int(p) for p in pids.read_text().split()]


def _step_started(pids):
    """Whether `_sleeper`'s step noted its two pids."""
    return lambda: pids.exists() and len(pids.read_text().split()) == 2


def _interrupted(command, started, what, **popen) -> tuple[int, str]:
    """Run `command` until `started()`, then Ctrl-C it; its exit code and output."""
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)
    try:
        wait_for(started, what)
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=DEADLINE_S)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, output


def _executing(client) -> dict:
    return client.run(lambda dask_worker: sorted(str(ts.key) for ts in dask_worker.state.executing))


def _gone(pid) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_ctrl_c_while_the_runs_own_cluster_still_starts_workers_stops_its_first_step_cleanly(tmp_path):
    """The first step runs while the other workers start: Ctrl-C then lets the start end, and cancels
    as at any other time (cut short, the start left half-started workers: exit 1 after 20 s and
    their tracebacks)."""
    notebook, pids = _sleeper(tmp_path)
    preload, late_worker_up = late_worker_preload(tmp_path, delay=3.0)
    env = {**os.environ, "DASK_DISTRIBUTED__WORKER__PRELOAD": repr([preload])}
    proc = subprocess.Popen([sys.executable, "-m", "nbscale", "run", str(notebook), "--workers", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        wait_for(_step_started(pids), "the step to start")
        assert not late_worker_up.exists()  # Ctrl-C comes while the other worker starts
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=DEADLINE_S)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, output
    assert "cancelled" in output and "Traceback" not in output, output
    assert late_worker_up.exists()  # the start ended before the cancel went on
    worker_pid, child_pid = (int(p) for p in pids.read_text().split())
    wait_for(lambda: _gone(worker_pid) and _gone(child_pid), "the step's processes to end")
    assert default_run_store(notebook).list_runs()[0]["status"] == "cancelled"


def test_ctrl_c_stops_a_running_steps_code_at_once_not_after_the_nannys_grace(tmp_path):
    """The nanny's restart asks the worker to close and waits 4 s for the step's thread before it
    kills the process: the step went on writing for those 4 s. Now the worker is killed half a
    second after it was told; the file stops growing well before that grace would have ended."""
    ticks = tmp_path / "ticks.txt"
    source = (f"import time\nfor i in range(2000):\n    with open({str(ticks)!r}, 'a') as f:\n"
              f"        f.write(f'{{i}}\\n')\n    time.sleep(0.05)\nx = 1")
    folder = tmp_path / "ticker"
    folder.mkdir()
    notebook = make_notebook(folder, [(source, ["step:ticks"])], name="ticker")
    proc = subprocess.Popen([sys.executable, "-m", "nbscale", "run", str(notebook), "--no-cache"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: ticks.exists() and len(ticks.read_text().split()) >= 5, "the step to write")
        proc.send_signal(signal.SIGINT)
        at_signal = len(ticks.read_text().split())
        output, _ = proc.communicate(timeout=DEADLINE_S)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, output
    after_exit = len(ticks.read_text().split())
    time.sleep(0.5)
    assert len(ticks.read_text().split()) == after_exit  # stopped before the run returned
    # 20 lines a second: the nanny's 4 s grace wrote about 80 more; half a second, about 10, and the
    # cancel's own work (finding the busy workers, ending child processes) a few more
    assert after_exit - at_signal < 40, (at_signal, after_exit)


def test_ctrl_c_stops_a_step_stuck_in_c_code_that_holds_the_interpreter(tmp_path):
    """The worker cannot say what it executes, end its step's processes or kill itself: the cancel
    waited for it for as long as the C call ran (hours). It is killed through its nanny."""
    notebook, pids = _sleeper(tmp_path, "stuck", wait=HOLDS_THE_INTERPRETER)
    started = time.monotonic()
    code, output = _interrupted([sys.executable, "-m", "nbscale", "run", str(notebook)], _step_started(pids),
                                "the step to start")
    assert code == 130 and "cancelled" in output, output
    assert "stopping step 'sleeps'" in output and "broadcast" not in output and "Traceback" not in output, output
    worker_pid, child_pid = (int(p) for p in pids.read_text().split())
    wait_for(lambda: _gone(worker_pid) and _gone(child_pid), "the stuck step's worker and child to end")
    assert time.monotonic() - started < DEADLINE_S
    assert default_run_store(notebook).list_runs()[0]["status"] == "cancelled"


@pytest.mark.parametrize("signum, code", [(signal.SIGHUP, 129), (signal.SIGTERM, 143)], ids=["SIGHUP", "SIGTERM"])
def test_a_signal_to_the_runs_whole_process_group_cancels_it_cleanly(tmp_path, signum, code):
    """A closed terminal sends SIGHUP to its foreground process group, systemd SIGTERM to the whole
    service: the run's own cluster's workers get it too and die at once. SIGHUP killed the run
    unrecorded; both then printed the scheduler's KeyError traceback and "could not stop the run's
    steps" for the workers already gone."""
    notebook, pids = _sleeper(tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "nbscale", "run", str(notebook)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        wait_for(_step_started(pids), "the step to start")
        os.killpg(proc.pid, signum)
        output, _ = proc.communicate(timeout=DEADLINE_S)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code, output
    assert f"cancelled: stopped by {signum.name}" in output, output
    assert "Traceback" not in output and "could not" not in output and "ERROR" not in output, output
    run = default_run_store(notebook).list_runs()[0]
    assert (run["status"], run["error"]) == ("cancelled", f"stopped by {signum.name}")
    worker_pid, child_pid = (int(p) for p in pids.read_text().split())
    wait_for(lambda: _gone(worker_pid) and _gone(child_pid), "the step's processes to end")


def test_a_killed_runs_worker_stuck_in_c_code_dies_with_it(tmp_path):
    """kill -9 of `nbscale run`: Dask's watch for a parent gone is a thread of the worker, which never
    runs while the step holds the interpreter; the kernel kills the worker with its nanny."""
    notebook, pids = _sleeper(tmp_path, "stuck_killed", wait=HOLDS_THE_INTERPRETER)
    proc = subprocess.Popen([sys.executable, "-m", "nbscale", "run", str(notebook)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(_step_started(pids), "the step to start")
    finally:
        proc.kill()
        proc.wait()
    worker_pid, child_pid = (int(p) for p in pids.read_text().split())
    wait_for(lambda: _gone(worker_pid), "the stuck step's worker to die with the run")
    assert default_run_store(notebook).list_runs()[0]["status"] == "failed"  # (the next look)
    wait_for(lambda: _gone(child_pid), "the step's child to end at that look")


def test_cancel_restarts_the_busy_worker_and_the_next_run_starts_at_once(tmp_path, limited_cluster):
    from distributed import Client

    notebook, pids = _sleeper(tmp_path)
    code, output, (worker_pid, child_pid) = _cancel_cli_run(notebook, pids, "--scheduler", limited_cluster)
    assert code != 0, output
    with Client(limited_cluster, timeout="20s") as client:
        wait_for(lambda: not any(_executing(client).values()) and len(client.scheduler_info()["workers"]) == 2,
                  "the worker to stop executing the cancelled step")
    assert _gone(worker_pid) and _gone(child_pid)
    store = default_run_store(notebook)
    run = store.list_runs()[0]
    assert run["status"] == "cancelled"
    warnings = [e["payload"] for e in store.events_since(run["id"]) if e["kind"] == "warning"]
    assert any("stopping step 'sleeps': restarting worker tcp://" in str(w) for w in warnings), warnings
    quick = make_notebook(tmp_path, [("q = 1", ["step:quick"])], name="quick")
    assert run_notebook(quick, options=RunOptions(scheduler=limited_cluster, use_cache=False)).ok


def test_cancel_on_an_external_cluster_leaves_other_clients_workers_alone(tmp_path, process_cluster):  # noqa: F811
    from distributed import Client

    stop = tmp_path / "stop-other"

    def others_task(path):
        import pathlib
        import time

        end = time.time() + 120
        while not pathlib.Path(path).exists() and time.time() < end:
            time.sleep(0.1)
        return "other done"

    with Client(scheduler_file=process_cluster, timeout="20s") as other:
        future = other.submit(others_task, str(stop), key="another-clients-task", pure=False)
        wait_for(lambda: any("another-clients-task" in keys for keys in _executing(other).values()),
                  "the other client's task to run")
        other_worker = next(w for w, keys in _executing(other).items() if "another-clients-task" in keys)
        before = other.run(os.getpid)
        notebook, pids = _sleeper(tmp_path)
        code, output, (worker_pid, child_pid) = _cancel_cli_run(notebook, pids, "--scheduler-file",
                                                                process_cluster)
        assert code != 0, output
        wait_for(lambda: not any(k.startswith("nbscale-") for keys in _executing(other).values() for k in keys),
                  "the cancelled step to stop")
        assert _gone(worker_pid) and _gone(child_pid)
        assert other.run(os.getpid)[other_worker] == before[other_worker], "the other client's worker was restarted"
        assert "another-clients-task" in _executing(other)[other_worker]
        stop.write_text("")
        assert future.result(timeout=DEADLINE_S) == "other done"
        other.wait_for_workers(2, timeout=DEADLINE_S)
    quick = make_notebook(tmp_path, [("q = 1", ["step:quick"])], name="quick")
    assert run_notebook(quick, options=RunOptions(scheduler_file=process_cluster, use_cache=False)).ok


@pytest.fixture(scope="module")
def threaded_cluster():
    """One worker process of two threads with a nanny, as `dask worker` makes by default on two
    cores: two runs' steps (or two steps of one run) run in one process."""
    import dask
    from distributed import LocalCluster

    with dask.config.set({"distributed.deploy.lost-worker-timeout": "120s"}):
        cluster = LocalCluster(n_workers=1, threads_per_worker=2, processes=True, dashboard_address=None,
                               host="127.0.0.1")
        yield cluster.scheduler_address
        cluster.close()


def _noting_step(log, name="notes"):
    """A step that notes each start of its code in `log`."""
    return f"with open({str(log)!r}, 'a') as f:\n    f.write('start\\n')\nw = 1", [f"step:{name}"]


def _waiting_for_the_shell(client, step: str):
    """Wait until the other thread of the cluster's one worker executes `step`'s task: it waits
    there for the step before it to end (the steps of one process run one at a time)."""
    wait_for(lambda: any(k.startswith(f"nbscale-{step}-") for keys in _executing(client).values() for k in keys),
             f"step {step!r} to wait on the worker")


def _rerun_warnings(store, run_id) -> list[str]:
    return [e["payload"]["message"] for e in store.events_since(run_id)
            if e["kind"] == "warning" and "runs again from its start" in e["payload"].get("message", "")]


@pytest.mark.parametrize("stop", ["cancel", "timeout"])
def test_another_runs_step_on_a_worker_restarted_to_stop_a_step_runs_and_succeeds(tmp_path, threaded_cluster, stop):
    """Cancel, or a step past its timeout, restarts the worker that runs the step; on a worker of
    many threads another run's step waits there for it (a process runs one step at a time). That
    step did nothing wrong: it runs, saying why, and its run succeeds. Before, it failed:
    "WorkerDied: the worker running this step died ... last seen using 160 MiB"."""
    from distributed import Client

    log = tmp_path / "other-starts.txt"
    other = make_notebook(tmp_path, [_noting_step(log)], name="other")
    notebook, pids = _sleeper(tmp_path, tags=["timeout:3s"] if stop == "timeout" else [])
    stopped = subprocess.Popen([sys.executable, "-m", "nbscale", "run", str(notebook), "--scheduler", threaded_cluster],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        with Client(threaded_cluster, timeout="20s") as client:
            wait_for(_step_started(pids), "the step to stop to start")
            proc = subprocess.Popen([sys.executable, "-m", "nbscale", "run", str(other), "--scheduler",
                                     threaded_cluster, "--no-cache"],
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            _waiting_for_the_shell(client, "notes")
            assert _lines(log) == []
            if stop == "cancel":
                stopped.send_signal(signal.SIGINT)
            out, _ = proc.communicate(timeout=DEADLINE_S)
        stopped_out, _ = stopped.communicate(timeout=DEADLINE_S)
    finally:
        for p in (stopped, proc):
            if p.poll() is None:
                p.kill()
    assert proc.returncode == 0, out
    assert _lines(log) == ["start"]  # its code ran once, after the restart
    store = default_run_store(other)
    run = store.list_runs()[0]
    assert run["status"] == "succeeded"
    ended = default_run_store(notebook).list_runs()[0]
    assert ended["status"] == ("cancelled" if stop == "cancel" else "failed"), stopped_out
    [warning] = _rerun_warnings(store, run["id"])
    assert warning.startswith("step 'notes' runs again from its start: its worker tcp://127.0.0.1:"), warning
    assert warning.endswith(f"was restarted to stop step 'sleeps' of run {ended['id'][:8]} (cancelled, or past "
                            "its timeout)"), warning


def test_cancel_of_a_run_whose_step_waits_for_another_runs_step_leaves_that_step_running(tmp_path, threaded_cluster):
    """The cancelled run's task only waits on the worker (another run's step holds its shell): the
    worker is not restarted, the other step goes on undisturbed, and the cancelled step never runs,
    not even once the other step has ended."""
    from distributed import Client

    log, go = tmp_path / "other-starts.txt", tmp_path / "go"
    other = make_notebook(tmp_path, [(f"import os, time\nwith open({str(log)!r}, 'a') as f:\n"
                                      f"    f.write(f'{{os.getpid()}}\\n')\nwhile not os.path.exists({str(go)!r}):\n"
                                      "    time.sleep(0.05)\nw = 1", ["step:holds"])], name="other")
    notebook, pids = _sleeper(tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "nbscale", "run", str(other), "--scheduler", threaded_cluster,
                             "--no-cache"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    cancelled = None
    try:
        with Client(threaded_cluster, timeout="20s") as client:
            wait_for(lambda: len(_lines(log)) == 1, "the other run's step to start")
            cancelled = subprocess.Popen([sys.executable, "-m", "nbscale", "run", str(notebook), "--scheduler",
                                          threaded_cluster], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                         text=True)
            _waiting_for_the_shell(client, "sleeps")
            cancelled.send_signal(signal.SIGINT)
            cancelled_out, _ = cancelled.communicate(timeout=DEADLINE_S)
            go.write_text("")
            out, _ = proc.communicate(timeout=DEADLINE_S)
            wait_for(lambda: not any(k.startswith("nbscale-") for keys in _executing(client).values() for k in keys),
                      "the cancelled step's task to end")
            assert list(client.run(os.getpid).values()) == [int(_lines(log)[0])]  # the worker was not restarted
    finally:
        for p in (cancelled, proc):
            if p is not None and p.poll() is None:
                p.kill()
    assert cancelled.returncode != 0, cancelled_out
    assert proc.returncode == 0, out
    assert len(_lines(log)) == 1  # the other step ran once
    assert not pids.exists()  # the cancelled step's code never ran
    run = default_run_store(notebook).list_runs()[0]
    assert run["status"] == "cancelled"
    warnings = [e["payload"]["message"] for e in default_run_store(notebook).events_since(run["id"])
                if e["kind"] == "warning"]
    assert [w for w in warnings if "restarting" in w] == []
    assert any(w.startswith("stopping step 'sleeps': it waits on worker tcp://") and w.endswith("will not start")
               for w in warnings), warnings
    assert _rerun_warnings(default_run_store(other), default_run_store(other).list_runs()[0]["id"]) == []


def test_cancel_on_the_runs_own_cluster_never_runs_the_host_script_again(tmp_path):
    """`nbscale.run()` in a script without a main guard, interrupted: the worker restarted for the
    Cancel is forked as the first ones were. Spawned, it ran the script's top-level code again (its
    side effects twice more, and runs nobody asked for)."""
    notebook, pids = _sleeper(tmp_path)
    ran_in = tmp_path / "ran-in.txt"
    script = tmp_path / "host.py"
    script.write_text(f"import os\nopen({str(ran_in)!r}, 'a').write(f'{{os.getpid()}}\\n')\nimport nbscale\n"
                      f"try:\n    nbscale.run({str(notebook)!r}, engine='dask', use_cache=False)\n"
                      "except KeyboardInterrupt:\n    print('interrupted')\n")
    _, output = _interrupted([sys.executable, str(script)], _step_started(pids), "the step to start", cwd=tmp_path)
    assert "interrupted" in output, output
    worker_pid, child_pid = (int(p) for p in pids.read_text().split())
    wait_for(lambda: _gone(worker_pid) and _gone(child_pid), "the step's processes to end")
    assert len(ran_in.read_text().split()) == 1  # the host alone
    assert default_run_store(notebook).list_runs()[0]["status"] == "cancelled"


@pytest.fixture(scope="module")
def step_cluster():
    """Two single-threaded worker processes that declare the step resource, as a warm cluster's do:
    a step's computes run on the cluster (`dask_collections`), not in the step's own process."""
    from distributed import LocalCluster

    from nbscale.kernels.engines.dask_collections import STEP_RESOURCE

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                           host="127.0.0.1", resources={STEP_RESOURCE: 1})
    yield cluster.scheduler_address
    cluster.close()


def test_cancel_stops_what_the_step_computes_on_other_workers_of_a_shared_cluster(tmp_path, step_cluster):
    """A step's own `dask.compute` runs on the other worker of a cluster that outlives the run (a warm
    cluster): Cancel restarts that worker too, or the computation went on after the run ended."""
    beats = [tmp_path / f"beat{i}.txt" for i in range(2)]  # (one on each worker)
    source = (f"import dask, os, time\ndef beats(n):\n    for _ in range(3000):\n"
              f"        open(os.path.join({str(tmp_path)!r}, f'beat{{n}}.txt'), 'a').write('.')\n"
              "        time.sleep(0.05)\n    return n\n"
              "done = dask.compute(*[dask.delayed(beats)(n) for n in range(2)])")
    folder = tmp_path / "computes"
    folder.mkdir()
    notebook = make_notebook(folder, [(source, ["step:computes"])], name="computes")
    code, output = _interrupted([sys.executable, "-m", "nbscale", "run", str(notebook), "--scheduler", step_cluster],
                                lambda: all(b.exists() and b.stat().st_size > 5 for b in beats),
                                "the computation to start")
    assert code == 130, output
    wait_for(lambda: all(_still(b) for b in beats), "the computation to stop")
    store = default_run_store(notebook)
    run = store.list_runs()[0]
    warnings = [str(e["payload"]) for e in store.events_since(run["id"]) if e["kind"] == "warning"]
    assert run["status"] == "cancelled" and any("computed on the cluster" in w for w in warnings), warnings


def _still(path, wait: float = 0.5) -> bool:
    before = path.stat().st_size
    time.sleep(wait)
    return path.stat().st_size == before
