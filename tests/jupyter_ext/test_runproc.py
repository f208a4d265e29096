"""The run process's line protocol, spoken to it directly as the server does (`supervisor.py`)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import make_notebook
from warm_harness import end_clusters

from nbscale.kernels import warm_cluster
from nbscale.kernels.contract import (
    CANCELLED,
    CANCELLED_BY_USER,
    CLUSTER_STARTED,
    CLUSTER_STARTING,
    RUNNING,
    SERVER_WENT_AWAY,
    STEP_OUTPUT,
    STOPPED_BY_SIGTERM,
    SUCCEEDED,
    artifacts_url,
)
from nbscale.kernels.runner import RunResult, default_run_store


def talk(notebook, parameters=None, engine="local", timeout=120) -> list[dict]:
    """The messages of one run; stdin stays open until the end (its end would cancel the run)."""
    spec = {"notebook": str(notebook), "parameters": parameters or {},
            "options": {"engine": engine, "use_cache": False}, "cluster_factory": None}
    with subprocess.Popen([sys.executable, "-P", "-m", "nbscale.jupyter_ext.runproc"], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=notebook.parent) as proc:
        proc.stdin.write(json.dumps(spec) + "\n")
        proc.stdin.flush()
        messages = [json.loads(line) for line in proc.stdout]
        proc.stdin.close()
        assert proc.wait(timeout) in (0, 2)
    return messages


def test_a_run_reports_its_id_its_events_and_its_end(tmp_path):
    nb = make_notebook(tmp_path, [("k = 2", ["parameters"]), ("print('noise')\nx = k", ["step:a"])], name="nb")
    messages = talk(nb, {"k": 3})
    assert [m["type"] for m in messages[:2]] == ["created", "event"]
    run_id = messages[0]["run_id"]
    assert messages[1]["kind"] == "run_started" and len(run_id) >= 12
    finished = next(m for m in messages if m.get("kind") == "step_finished")
    assert finished["step"] == "a" and finished["payload"]["status"] == SUCCEEDED
    assert set(finished["payload"]) == {"status", "duration_s", "error", "attempts", "started", "finished"}
    assert messages[-1] == {"type": "done", "status": SUCCEEDED}
    # the step's prints reach the channel only as its live output (step_output: shown, never stored)
    noisy = [m for m in messages if "noise" in json.dumps(m)]
    assert noisy and all(m["type"] == "event" and m["kind"] == STEP_OUTPUT and m["step"] == "a" for m in noisy)
    assert noisy[0]["payload"]["stream"] == "stdout"
    assert default_run_store(nb).get_run(run_id)["status"] == SUCCEEDED


def test_bad_input_is_reported_as_such(tmp_path):
    nb = make_notebook(tmp_path, [("k = 2", ["parameters"]), ("x = k", ["step:a"])], name="nb")
    (message,) = talk(nb, {"nope": 1})
    assert message["type"] == "error" and message["input"] is True and "unknown parameter" in message["message"]


SLEEPS = "time.sleep(60)\nx = 1"
# cleans up and raises a KeyboardInterrupt of its own: why the run stopped is still the interrupt asked for
REPLACES_THE_INTERRUPT = ("try:\n    time.sleep(60)\nexcept KeyboardInterrupt:\n"
                          "    raise KeyboardInterrupt('cleaned up')\nx = 1")


def _sigterm(proc):
    proc.send_signal(signal.SIGTERM)


def _cancel_line(proc):
    proc.stdin.write("cancel\n")
    proc.stdin.flush()


def _server_gone(proc):
    proc.stdin.close()


@pytest.mark.parametrize("stop, code, reason", [(_sigterm, 143, STOPPED_BY_SIGTERM),
                                                (_cancel_line, 130, CANCELLED_BY_USER),
                                                (_server_gone, 130, SERVER_WENT_AWAY)],
                         ids=["SIGTERM", "a cancel line", "the end of stdin"])
@pytest.mark.parametrize("step", [SLEEPS, REPLACES_THE_INTERRUPT], ids=["a step", "a step raising one of its own"])
def test_sigterm_a_cancel_line_and_the_server_going_away_cancel_the_run_each_said_as_itself(tmp_path, stop, code,
                                                                                            reason, step):
    nb = make_notebook(tmp_path, [("import time", ["imports"]), (step, ["step:slow"])], name="nb")
    spec = {"notebook": str(nb), "parameters": {}, "options": {"engine": "local", "use_cache": False},
            "cluster_factory": None}
    with subprocess.Popen([sys.executable, "-P", "-m", "nbscale.jupyter_ext.runproc"], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=tmp_path) as proc:
        proc.stdin.write(json.dumps(spec) + "\n")
        proc.stdin.flush()
        run_id = json.loads(proc.stdout.readline())["run_id"]
        store = default_run_store(nb)
        deadline = time.monotonic() + 60
        while store.get_run(run_id)["steps"][0]["status"] != RUNNING and time.monotonic() < deadline:
            time.sleep(0.1)
        stop(proc)
        messages = [json.loads(line) for line in proc.stdout]
        if not proc.stdin.closed:
            proc.stdin.close()
        assert proc.wait(30) == code
    assert messages[-1] == {"type": "done", "status": CANCELLED}
    run = store.get_run(run_id)
    assert run["status"] == CANCELLED and run["error"] == reason


def test_a_dask_run_says_while_its_own_cluster_starts(tmp_path):
    nb = make_notebook(tmp_path, [("x = 1", ["step:a"])], name="nb")
    messages = talk(nb, engine="dask")
    kinds = [m.get("kind") for m in messages if m["type"] == "event"]
    assert kinds.index(CLUSTER_STARTING) < kinds.index(CLUSTER_STARTED) < kinds.index("step_started"), kinds
    started = next(m for m in messages if m.get("kind") == CLUSTER_STARTED)
    assert started["step"] is None and started["payload"]["scheduler_address"].startswith("tcp://")
    assert messages[-1] == {"type": "done", "status": SUCCEEDED}
    # live only: the run store does not keep them
    stored = default_run_store(nb).events_since(messages[0]["run_id"])
    assert not {CLUSTER_STARTING, CLUSTER_STARTED} & {e["kind"] for e in stored}


def test_a_dask_run_the_server_starts_shares_the_folders_warm_cluster(tmp_path):
    folder = tmp_path / "project"
    folder.mkdir()
    nb = make_notebook(folder, [("import os\nparent = os.getppid()", ["step:where"])], name="nb")
    try:
        cluster, _ = warm_cluster.start(folder, workers=1, idle_timeout=600)
        messages = talk(nb, engine="dask")
        assert messages[-1] == {"type": "done", "status": SUCCEEDED}
        kinds = [m.get("kind") for m in messages if m["type"] == "event"]
        assert CLUSTER_STARTING not in kinds, "the run started a cluster of its own"
        started = next(m for m in messages if m.get("kind") == CLUSTER_STARTED)
        assert started["payload"]["scheduler_address"] == cluster.address and started["payload"]["shared"] is True
        store = default_run_store(nb)
        run_id = messages[0]["run_id"]
        assert store.get_run(run_id)["status"] == SUCCEEDED
        hashes = {s["step"]: s["hash"] for s in store.get_run(run_id)["steps"]}
        result = RunResult(run_id, SUCCEEDED, [], {}, artifacts_url(nb), hashes)
        assert result.load("where")["parent"] == cluster.pid, "the step did not run on the warm cluster's workers"
        assert warm_cluster.lookup(folder).live, "the run closed the shared cluster"
    finally:
        end_clusters(folder)


@pytest.mark.parametrize("line", ["", "{not json", "[1, 2]", '{"notebook": "nb.ipynb"}',
                                  '{"notebook": "nb.ipynb", "options": {"warp": 9}}',
                                  '{"notebook": "nb.ipynb", "options": {"workers": 0}}'])
def test_a_spec_line_that_is_not_one_is_an_input_error_on_the_channel_not_a_traceback(tmp_path, line):
    done = subprocess.run([sys.executable, "-P", "-m", "nbscale.jupyter_ext.runproc"], input=line + "\n",
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    (message,) = [json.loads(out) for out in done.stdout.splitlines()]
    assert done.returncode == 2 and message["type"] == "error" and message["input"] is True, (done, message)
    assert "Traceback" not in done.stderr


# swallows every interrupt, and started a process of its own: only the end of its process stops it
SWALLOWS_EVERY_INTERRUPT = ("import subprocess\nchild = subprocess.Popen(['sleep', '600'])\n"
                            "open('child.pid', 'w').write(str(child.pid))\n"
                            "while True:\n    try:\n        with open('beat.txt', 'a') as f:\n"
                            "            f.write('.')\n        time.sleep(0.05)\n"
                            "    except BaseException:\n        pass\nx = 1")


@pytest.mark.parametrize("cancelled_first", [False, True], ids=["server gone", "cancelled, then the server gone"])
def test_a_run_that_swallows_the_interrupt_ends_itself_once_no_server_watches_it(tmp_path, cancelled_first):
    """The server killed (SIGKILL: nothing ends its run processes, nobody kills them past the cancel's
    grace time): the run must not stay `running` for ever with its process, and the step's, alive."""
    nb = make_notebook(tmp_path, [("import time", ["imports"]), (SWALLOWS_EVERY_INTERRUPT, ["step:stubborn"])],
                       name="nb")
    spec = {"notebook": str(nb), "parameters": {}, "options": {"engine": "local", "use_cache": False},
            "cluster_factory": None, "cancel_grace_s": 1}
    beat = tmp_path / "beat.txt"
    with subprocess.Popen([sys.executable, "-P", "-m", "nbscale.jupyter_ext.runproc"], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=tmp_path) as proc:
        try:
            proc.stdin.write(json.dumps(spec) + "\n")
            proc.stdin.flush()
            run_id = json.loads(proc.stdout.readline())["run_id"]
            deadline = time.monotonic() + 60
            while not (tmp_path / "child.pid").exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            child = int((tmp_path / "child.pid").read_text())
            if cancelled_first:
                _cancel_line(proc)
                time.sleep(1.5)  # the server would kill it after its grace time: it is killed first
            proc.stdin.close()
            proc.wait(30)
        finally:
            if proc.poll() is None:
                proc.kill()
                if (tmp_path / "child.pid").exists():  # (what the old code left running)
                    os.kill(int((tmp_path / "child.pid").read_text()), signal.SIGKILL)
    size = beat.stat().st_size
    time.sleep(0.5)
    assert beat.stat().st_size == size, "the step still runs"
    assert not _alive(child), "the step's process still runs"
    run = default_run_store(nb).get_run(run_id)
    assert run["status"] == CANCELLED and run["steps"][0]["status"] == CANCELLED


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_a_jupyter_server_killed_mid_run_leaves_no_run_running_for_ever(tmp_path):
    """A real `jupyter server`, SIGKILLed while a run's step swallows every interrupt: the run process
    ends the step (and what it started) itself, and the run is recorded cancelled."""
    import socket
    import urllib.request

    nb = make_notebook(tmp_path, [("import os, time", ["imports"]),
                                  ("open('proc.pid', 'w').write(str(os.getpid()))\n" + SWALLOWS_EVERY_INTERRUPT,
                                   ["step:stubborn"])], name="nb")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    token = "t" * 32
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter_server", "--no-browser", "--allow-root", f"--port={port}",
         f"--ServerApp.token={token}", f"--ServerApp.root_dir={tmp_path}", "--ServerApp.port_retries=0",
         "--ServerApp.jpserver_extensions={'nbscale.jupyter_ext': True}",
         "--Nbscale.default_engine=local", "--Nbscale.cancel_grace=1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)
    pids = []
    try:
        def call(method, endpoint, body=None):
            request = urllib.request.Request(f"http://127.0.0.1:{port}/nbscale/api/{endpoint}", method=method,
                                             data=None if body is None else json.dumps(body).encode(),
                                             headers={"Authorization": f"token {token}"})
            with urllib.request.urlopen(request, timeout=60) as response:
                return json.loads(response.read())

        deadline = time.monotonic() + 60
        while True:
            try:
                call("GET", "cluster")
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None, "the server did not start"
                time.sleep(0.3)
        run_id = call("POST", "runs", {"path": "nb.ipynb"})["run_id"]
        while not (tmp_path / "child.pid").exists() or not (tmp_path / "proc.pid").exists():
            assert time.monotonic() < deadline, "the step did not start"
            time.sleep(0.1)
        pids = [int((tmp_path / name).read_text()) for name in ("proc.pid", "child.pid")]
        server.kill()
        server.wait(30)
        deadline = time.monotonic() + 30
        while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(pids[0]), "the run's process still runs the step, its server gone"
        assert not _alive(pids[1]), "the step's process still runs"
        run = default_run_store(nb).get_run(run_id)
        assert run["status"] == CANCELLED and run["steps"][0]["status"] == CANCELLED, run["status"]
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(30)
        for pid in pids:  # (what the old code left running)
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
