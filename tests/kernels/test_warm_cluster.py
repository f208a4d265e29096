"""The warm cluster of a folder (kernels/warm_cluster.py, kernels/warm_cluster_serve.py), with real
processes: the detached cluster process, runs that share it (in this process and as `nbscale run`
subprocesses), kill -9 of the cluster and of a run's process, stale and hostile files.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading

import psutil
import pytest
from conftest import HOLDS_THE_INTERPRETER, install_library, make_notebook
from warm_harness import DEADLINE_S, NBSCALE, end_clusters, gone, serving_pids, wait_for

from nbscale.kernels import own_code, warm_cluster
from nbscale.kernels.contract import CLUSTER_STARTED, OWNER_STOPPED, WARNING
from nbscale.kernels.runner import RunOptions, default_run_store, run_notebook


@pytest.fixture
def warm_folder(tmp_path):
    """A project folder whose clusters are stopped (and their processes gone) at the end."""
    folder = tmp_path / "project"
    folder.mkdir()
    yield folder
    end_clusters(folder)
    assert not serving_pids(folder)


@pytest.fixture(scope="module")
def shared_warm(tmp_path_factory):
    """One live warm cluster of two workers for the tests that only use it."""
    folder = tmp_path_factory.mktemp("shared") / "project"
    folder.mkdir()
    try:
        cluster, started = warm_cluster.start(folder, workers=2, idle_timeout=600)
        assert started
        yield folder, cluster
    finally:
        end_clusters(folder)
    assert not serving_pids(folder)


def events_of(notebook, **options):
    seen = []
    result = run_notebook(notebook, options=RunOptions(use_cache=False, **options),
                          on_event=lambda kind, step, payload: seen.append((kind, step, payload)))
    return result, seen


# --- sharing it ------------------------------------------------------------------------------------


def test_a_run_shares_the_warm_cluster_says_so_and_leaves_it_running(shared_warm):
    folder, cluster = shared_warm
    notebook = make_notebook(folder, [("import os\nparent = os.getppid()", ["step:where"])], name="where")
    result, seen = events_of(notebook)
    assert result.ok
    assert result.load("where")["parent"] == cluster.pid, "the step did not run on the warm cluster's workers"
    notes = [p for kind, _, p in seen if kind == CLUSTER_STARTED]
    assert notes == [{"scheduler_address": cluster.address, "shared": True,
                      "message": f"on the warm cluster of {folder} at {cluster.address} (nbscale cluster status)"}]
    found = warm_cluster.lookup(folder)
    assert found.live and found.cluster.pid == cluster.pid
    assert warm_cluster.status(folder)["workers"] == 2


def test_a_step_on_the_warm_cluster_sees_the_runs_environment_and_a_change_to_it_runs_it_again(
        shared_warm, monkeypatch):
    """Its workers have the variables `nbscale cluster start` had: a step read those, and a cached one
    was reused after the variable it read changed in the shell running the pipeline."""
    folder, cluster = shared_warm
    notebook = make_notebook(folder, [("import os\nmode = os.environ.get('NBS_MODE')\nparent = os.getppid()",
                                       ["step:read"])], name="environ")

    def mode_seen():
        result = run_notebook(notebook)
        assert result.ok and result.load("read")["parent"] == cluster.pid  # on the warm cluster
        return result.load("read")["mode"], result.step("read")["status"]

    monkeypatch.setenv("NBS_MODE", "2")
    assert mode_seen() == ("2", "succeeded")
    assert mode_seen() == ("2", "cached")
    monkeypatch.setenv("NBS_MODE", "3")
    assert mode_seen() == ("3", "succeeded")
    monkeypatch.delenv("NBS_MODE")
    assert mode_seen() == (None, "succeeded")  # (the workers' own environment is back after a step)


def test_a_warm_cluster_started_with_another_pythonpath_is_not_used(shared_warm, monkeypatch, tmp_path):
    """Its workers' sys.path holds the PYTHONPATH it started with: `import util` would load another file."""
    folder, cluster = shared_warm
    started_with = os.pathsep.join(warm_cluster.pythonpath_entries())
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    notebook = make_notebook(folder, [("import os\nparent = os.getppid()", ["step:where"])], name="pythonpath")
    result, seen = events_of(notebook)
    assert result.ok and result.load("where")["parent"] == os.getpid()  # on a cluster of its own
    warnings = [p["message"] for kind, _, p in seen if kind == WARNING]
    assert warnings == [f"not using the warm cluster of {folder}: it was started with PYTHONPATH="
                        f"{started_with or '(unset)'}, this run has PYTHONPATH={tmp_path}; "
                        "running on a cluster of its own"]


def test_pythonpath_entries_are_the_folders_python_puts_on_sys_path(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PYTHONPATH", raising=False)
    assert warm_cluster.pythonpath_entries() == []
    monkeypatch.setenv("PYTHONPATH", "")
    assert warm_cluster.pythonpath_entries() == []  # (as unset: no message "(unset)" against "(unset)")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(["lib", "", "/abs", "lib"]))
    assert warm_cluster.pythonpath_entries() == [str(tmp_path / "lib"), str(tmp_path), "/abs"]
    done = subprocess.run([sys.executable, "-c", "import sys; print(sys.path)"], capture_output=True, text=True,
                          cwd=tmp_path, check=True)
    assert all(entry in done.stdout for entry in warm_cluster.pythonpath_entries())


def test_nbscale_run_and_papermill_share_it_too(shared_warm, tmp_path):
    import nbscale

    folder, cluster = shared_warm
    notebook = make_notebook(folder, [("import os\nparent = os.getppid()\nprint('parent', parent)", ["step:where"])],
                             name="entry")
    assert nbscale.run(notebook, use_cache=False).load("where")["parent"] == cluster.pid
    out = tmp_path / "out.ipynb"
    done = subprocess.run([sys.executable, "-m", "papermill", "--engine", "nbscale", str(notebook), str(out)],
                          capture_output=True, text=True, timeout=DEADLINE_S, cwd=folder)
    assert done.returncode == 0, done.stderr
    assert f"parent {cluster.pid}" in out.read_text()


def test_workers_or_a_scheduler_given_means_a_cluster_of_its_own(shared_warm):
    folder, cluster = shared_warm
    notebook = make_notebook(folder, [("import os\nparent = os.getppid()", ["step:where"])], name="own")
    result, seen = events_of(notebook, workers=1)
    assert result.ok and result.load("where")["parent"] == os.getpid()
    assert not [kind for kind, _, _ in seen if kind == CLUSTER_STARTED]


def test_two_runs_at_once_on_the_warm_cluster_both_finish_with_their_values(shared_warm):
    folder, _ = shared_warm
    notebook = make_notebook(folder, [("n = 1", ["parameters"]), ("import time\ntime.sleep(1)\ny = n * 10", ["step:a"]),
                                      ("z = y + n", ["step:b"]), ("z", ["metrics"])], name="twice")
    procs = [subprocess.Popen([*NBSCALE, "run", str(notebook), "-p", f"n={n}", "--no-cache", "--output", "json"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for n in (2, 3)]
    answers = [p.communicate(timeout=DEADLINE_S) for p in procs]
    for proc, (_, err) in zip(procs, answers):
        assert proc.returncode == 0, err
    metrics = [json.loads(out)["metrics"] for out, _ in answers]
    assert metrics == [{"z": 22}, {"z": 33}]
    assert warm_cluster.lookup(folder).live


def test_status_names_the_runs_on_it(shared_warm, tmp_path):
    folder, _ = shared_warm
    flag = tmp_path / "go"
    notebook = make_notebook(folder, [(f"import os, time\nwhile not os.path.exists({str(flag)!r}): time.sleep(0.1)\n"
                                       "x = 1", ["step:waits"])], name="waits")
    proc = subprocess.Popen([*NBSCALE, "run", str(notebook), "--no-cache"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: runs_of(notebook), "the run to be recorded")
        run_id = runs_of(notebook)[0]["id"]
        wait_for(lambda: run_id in warm_cluster.status(folder)["runs"], "the run to show in status")
        flag.write_text("")
        assert proc.wait(timeout=DEADLINE_S) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    wait_for(lambda: run_id not in warm_cluster.status(folder)["runs"], "the finished run to leave status")


def runs_of(notebook) -> list[dict]:
    return default_run_store(notebook).list_runs(str(notebook.resolve()))


# --- stopping a run's steps on the shared cluster --------------------------------------------------


def sleeper(folder, tmp_path, name="sleeper", wait="time.sleep(600)"):
    """A notebook whose step starts a child process, notes both pids, and sleeps (or `wait`s)."""
    pids = tmp_path / f"{name}-pids.txt"
    source = (f"import os, subprocess, time\nchild = subprocess.Popen(['sleep', '600'])\n"
              f"open({str(pids)!r}, 'w').write(f'{{os.getpid()}} {{child.pid}}')\n{wait}\nx = 1")
    return make_notebook(folder, [(source, ["step:sleeps"])], name=name), pids


def started_run(notebook, pids):
    proc = subprocess.Popen([*NBSCALE, "run", str(notebook), "--no-cache"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    wait_for(lambda: pids.exists() and len(pids.read_text().split()) == 2 or proc.poll() is not None,
             "the step to start")
    assert proc.poll() is None, proc.stdout.read()
    return proc, [int(p) for p in pids.read_text().split()]


def test_ctrl_c_stops_only_that_runs_step_and_leaves_the_cluster_up(shared_warm, tmp_path):
    folder, cluster = shared_warm
    notebook, pids = sleeper(folder, tmp_path)
    proc, (worker_pid, child_pid) = started_run(notebook, pids)
    other = psutil.Process(cluster.pid).children()
    other = [p.pid for p in other if p.pid != worker_pid]
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=DEADLINE_S)
    assert proc.returncode == 130, out
    wait_for(lambda: gone(worker_pid) and gone(child_pid), "the cancelled step's worker and child to end")
    assert all(not gone(pid) for pid in other), "a worker without the run's step was restarted"
    wait_for(lambda: warm_cluster.status(folder).get("workers") == 2, "the restarted worker to come back")
    assert warm_cluster.lookup(folder).cluster.pid == cluster.pid
    assert runs_of(notebook)[0]["status"] == "cancelled"
    quick = make_notebook(folder, [("q = 1", ["step:quick"])], name="quick")
    assert events_of(quick)[0].ok


@pytest.mark.parametrize("wait", ["time.sleep(600)", HOLDS_THE_INTERPRETER], ids=["sleeps", "stuck_in_c_code"])
def test_a_killed_runs_step_is_stopped_by_the_cluster_and_the_run_ends(shared_warm, tmp_path, wait):
    """A step stuck in C code that holds the interpreter cannot answer what its worker executes: the
    run's records say it runs the step, and its nanny kills it."""
    folder, cluster = shared_warm
    notebook, pids = sleeper(folder, tmp_path, name="orphan", wait=wait)
    proc, (worker_pid, child_pid) = started_run(notebook, pids)
    proc.kill()
    proc.wait()
    # without the scheduler plugin the step would go on for 10 minutes (hours) on the shared worker
    wait_for(lambda: gone(worker_pid) and gone(child_pid), "the orphaned step's worker and child to end")
    wait_for(lambda: warm_cluster.status(folder).get("workers") == 2, "the restarted worker to come back")
    assert warm_cluster.lookup(folder).cluster.pid == cluster.pid
    run = runs_of(notebook)[0]
    assert (run["status"], run["error"]) == ("failed", OWNER_STOPPED)
    wait_for(lambda: not [r for r in warm_cluster.status(folder).get("runs", []) if r[:8] == run["id"][:8]],
             "the killed run to leave the cluster's status")
    assert events_of(make_notebook(folder, [("q = 1", ["step:quick"])], name="after_orphan"))[0].ok


@pytest.mark.parametrize("ended", [True, False])
def test_a_warm_up_still_running_when_its_run_ended_restarts_no_worker(shared_warm, ended):
    # a run that ended as runs end leaves an idle worker's warm-up (its key ends in the run's id) to
    # finish: its client going away is no killed run, whose steps the cluster stops; a cancelled run
    # (not ended) stays the stopper's, in case stopping its steps did not go through
    import time

    from distributed import Client

    from nbscale.kernels.engines.dask_lifecycle import forget_run

    folder, cluster = shared_warm
    wait_for(lambda: warm_cluster.status(folder).get("workers") == 2, "two workers")
    workers = sorted(p.pid for p in psutil.Process(cluster.pid).children())
    run_id = ("abcdef12" if ended else "fedcba21") + "0" * 24
    client = Client(cluster.address, timeout=30, security=warm_cluster.cluster_security(cluster))
    try:
        warm_up = client.submit(time.sleep, 4, key=f"nbscale-warm-up-0-{run_id[:8]}", pure=False)
        wait_for(lambda: any(client.processing().values()) and warm_up.status == "pending",
                 "the warm-up to execute")
        time.sleep(0.5)
        forget_run(client, run_id, ended=ended)
    finally:
        client.close()
    time.sleep(2)  # the orphaned-step stopper answers a client that went away at once
    restarted = sorted(p.pid for p in psutil.Process(cluster.pid).children()) != workers
    assert restarted is not ended
    wait_for(lambda: warm_cluster.status(folder).get("workers") == 2, "the workers to be back")


# --- stale and hostile files -----------------------------------------------------------------------


def test_a_killed_cluster_is_stale_and_a_run_falls_back_to_its_own(warm_folder):
    cluster, _ = warm_cluster.start(warm_folder, workers=1, idle_timeout=600)
    os.kill(cluster.pid, signal.SIGKILL)
    wait_for(lambda: gone(cluster.pid), "the cluster process to die")
    found = warm_cluster.lookup(warm_folder)
    assert (found.state, found.reason) == (warm_cluster.STALE, f"its process {cluster.pid} is gone")
    notebook = make_notebook(warm_folder, [("import os\nparent = os.getppid()", ["step:where"])], name="after")
    result, seen = events_of(notebook)
    assert result.ok and result.load("where")["parent"] == os.getpid()
    warnings = [p["message"] for kind, _, p in seen if kind == WARNING]
    assert warnings == [f"not using the warm cluster of {warm_folder}: its process {cluster.pid} is gone; running "
                        "on a cluster of its own (`nbscale cluster start` replaces it)"]
    again, started = warm_cluster.start(warm_folder, workers=1, idle_timeout=600)
    assert started and again.pid != cluster.pid and warm_cluster.lookup(warm_folder).live


def test_a_frozen_cluster_does_not_hang_a_run(warm_folder):
    """Its port still accepts connections (the kernel does that), but its scheduler says nothing."""
    cluster, _ = warm_cluster.start(warm_folder, workers=1, idle_timeout=600)
    os.kill(cluster.pid, signal.SIGSTOP)
    try:
        notebook = make_notebook(warm_folder, [("x = 1", ["step:a"])], name="frozen")
        result, seen = events_of(notebook)
        assert result.ok
        assert [p["message"] for kind, _, p in seen if kind == WARNING] == [
            f"not using the warm cluster of {warm_folder}: its scheduler at {cluster.address} does not answer; "
            "running on a cluster of its own (`nbscale cluster start` replaces it)"]
        assert warm_cluster.status(warm_folder)["state"] == warm_cluster.STALE
    finally:
        os.kill(cluster.pid, signal.SIGCONT)


def test_a_file_naming_a_live_port_but_another_process_is_stale(warm_folder):
    """A pid that is not this folder's cluster (pid reuse, a copied folder) is never trusted."""
    import socket

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        write_info(warm_folder, address=f"tcp://127.0.0.1:{listener.getsockname()[1]}", pid=os.getpid())
        found = warm_cluster.lookup(warm_folder)
    assert found.state == warm_cluster.STALE
    assert found.reason == f"its process {os.getpid()} is gone (pid {os.getpid()} is now another program)"


def write_info(folder, **fields):
    data = {"address": "tcp://127.0.0.1:1", "pid": 1, "workers": 1, "started": 0.0, "scheduler_file": "x",
            **fields}
    warm_cluster.state_folder(folder).mkdir(parents=True, exist_ok=True)
    warm_cluster.info_path(folder).write_text(json.dumps(data))


@pytest.mark.parametrize("content, reason", [
    ("{not json", "is not a warm cluster file (not JSON)"),
    ("[1, 2]", "is not a warm cluster file (it needs address, pid, workers, started, scheduler_file)"),
    (json.dumps({"address": "tcp://203.0.113.9:8786", "pid": 1, "workers": 1, "started": 0, "scheduler_file": "x"}),
     "names the address 'tcp://203.0.113.9:8786', which is not on this machine: a warm cluster is only used on "
     "the machine that runs it"),
    (json.dumps({"address": "tcp://example.org:8786", "pid": 1, "workers": 1, "started": 0, "scheduler_file": "x"}),
     "names the address 'tcp://example.org:8786', which is not on this machine: a warm cluster is only used on "
     "the machine that runs it"),
])
def test_a_hostile_file_is_refused_with_what_is_wrong_and_a_run_still_runs(warm_folder, content, reason):
    path = warm_cluster.info_path(warm_folder)
    path.parent.mkdir(parents=True)
    path.write_text(content)
    found = warm_cluster.lookup(warm_folder)
    assert (found.state, found.reason) == (warm_cluster.INVALID, f"{path} {reason}")
    notebook = make_notebook(warm_folder, [("x = 1", ["step:a"])], name="hostile")
    result, seen = events_of(notebook)
    assert result.ok
    assert [p["message"] for kind, _, p in seen if kind == WARNING] == [
        f"not using the warm cluster of {warm_folder}: {path} {reason}; running on a cluster of its own "
        "(`nbscale cluster start` replaces it)"]
    assert warm_cluster.stop(warm_folder).state == warm_cluster.INVALID
    assert not path.exists()


def test_stop_never_signals_a_process_the_file_names_unless_it_is_the_cluster(warm_folder):
    bystander = subprocess.Popen(["sleep", "600"])
    try:
        write_info(warm_folder, pid=bystander.pid)
        assert warm_cluster.stop(warm_folder).state == warm_cluster.STALE
        assert bystander.poll() is None
        assert not warm_cluster.info_path(warm_folder).exists()
    finally:
        bystander.kill()
        bystander.wait()


def test_only_addresses_of_this_machine_are_local():
    assert warm_cluster.is_local_address("tcp://127.0.0.1:8786")
    assert warm_cluster.is_local_address("tcp://localhost:8786")
    assert warm_cluster.is_local_address("tcp://[::1]:8786")
    assert not warm_cluster.is_local_address("tcp://10.255.255.1:8786")
    assert warm_cluster.is_local_address("tls://127.0.0.1:8786")  # (a warm cluster listens over TLS)
    assert not warm_cluster.is_local_address("ws://127.0.0.1:8786")
    assert not warm_cluster.is_local_address("tcp://127.0.0.1")
    assert not warm_cluster.is_local_address("not an address")


# --- its life --------------------------------------------------------------------------------------


def test_two_starts_at_once_give_one_cluster(warm_folder):
    import threading

    answers = []
    threads = [threading.Thread(target=lambda: answers.append(warm_cluster.start(warm_folder, workers=1)))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(started for _, started in answers) == [False, True]
    assert answers[0][0].pid == answers[1][0].pid
    assert serving_pids(warm_folder) == [answers[0][0].pid]


def test_the_idle_timeout_waits_for_a_connected_run_that_runs_no_task(warm_folder):
    """A run whose steps ended, writing its values to a slow store: no task runs, and Dask's idle
    timeout closed the cluster under it (the run failed with a CommClosedError traceback)."""
    import time

    cluster, _ = warm_cluster.start(warm_folder, workers=1, idle_timeout=1)
    client, _ = warm_cluster.connect(make_notebook(warm_folder, [("x = 1", ["step:a"])], name="holder"))
    try:
        time.sleep(4)  # four idle timeouts without a task
        assert not gone(cluster.pid) and client.run(os.getpid)
    finally:
        client.close()
    wait_for(lambda: gone(cluster.pid), "the cluster to stop once the run let go")


def test_the_idle_timeout_waits_until_the_last_of_two_connected_runs_leaves(warm_folder):
    import time

    cluster, _ = warm_cluster.start(warm_folder, workers=1, idle_timeout=1)
    first, _ = warm_cluster.connect(make_notebook(warm_folder, [("x = 1", ["step:a"])], name="first"))
    second, _ = warm_cluster.connect(make_notebook(warm_folder, [("y = 1", ["step:b"])], name="second"))
    try:
        first.close()  # one run leaves; the other is still writing its values
        time.sleep(4)
        assert not gone(cluster.pid) and second.run(os.getpid)
    finally:
        first.close()
        second.close()
    wait_for(lambda: gone(cluster.pid), "the cluster to stop once the last run let go")


def test_the_idle_timeout_ends_the_cluster_and_removes_its_files(warm_folder):
    cluster, _ = warm_cluster.start(warm_folder, workers=1, idle_timeout=2)
    wait_for(lambda: gone(cluster.pid), "the idle cluster to stop itself")
    assert warm_cluster.lookup(warm_folder).state == warm_cluster.NONE
    assert not warm_cluster.scheduler_file_path(warm_folder).exists()


def test_ctrl_c_while_the_cluster_starts_leaves_no_cluster(warm_folder):
    # it said "cancelled", and the detached cluster came up a second later, for its idle timeout
    import signal
    import subprocess
    import sys
    import time

    command = [sys.executable, "-m", "nbscale", "cluster", "start", "--workers", "1"]
    starting = subprocess.Popen(command, cwd=warm_folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: serving_pids(warm_folder), "the cluster's process to be spawned", timeout=60)
    starting.send_signal(signal.SIGINT)
    _, err = starting.communicate(timeout=60)
    assert starting.returncode == 130, err
    time.sleep(2)  # past the moment it would have come up
    assert not serving_pids(warm_folder)
    assert warm_cluster.lookup(warm_folder).state == warm_cluster.NONE


def test_stop_ends_the_cluster_and_its_workers(warm_folder):
    cluster, _ = warm_cluster.start(warm_folder, workers=2)
    workers = [p.pid for p in psutil.Process(cluster.pid).children(recursive=True)]
    assert len(workers) >= 2
    assert warm_cluster.stop(warm_folder).state == warm_cluster.LIVE
    assert gone(cluster.pid) and all(gone(pid) for pid in workers)
    assert warm_cluster.lookup(warm_folder).state == warm_cluster.NONE


# --- folders above, and whose files and processes ---------------------------------------------------


def test_a_run_in_a_subfolder_uses_the_live_cluster_above_past_a_stale_file(shared_warm, tmp_path):
    folder, cluster = shared_warm
    deeper = folder / "sub" / "deeper"
    deeper.mkdir(parents=True)
    bystander = subprocess.Popen(["sleep", "600"])
    try:
        write_info(folder / "sub", pid=bystander.pid)  # stale: it does not hide the live one above
        notebook = make_notebook(deeper, [("import os\nparent = os.getppid()", ["step:where"])], name="deep")
        result, seen = events_of(notebook)
        assert result.ok and result.load("where")["parent"] == cluster.pid
        assert not [p for kind, _, p in seen if kind == WARNING]
        facts = warm_cluster.status(deeper)
        assert (facts["state"], facts["folder"], facts["asked"]) == ("live", str(folder), str(deeper))
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def test_the_nearest_live_cluster_wins_and_stop_with_a_pid_stops_only_that_one(warm_folder):
    sub = warm_folder / "sub"
    sub.mkdir()
    above, _ = warm_cluster.start(warm_folder, workers=1, idle_timeout=600)
    own, _ = warm_cluster.start(sub, workers=1, idle_timeout=600)
    other = warm_folder / "other"
    other.mkdir()
    assert warm_cluster.find(sub).cluster.pid == own.pid
    assert warm_cluster.find(other).cluster.pid == above.pid
    assert warm_cluster.stop(sub, pid=above.pid).cluster.pid == own.pid  # the file names another: untouched
    assert warm_cluster.lookup(sub).live
    assert warm_cluster.stop(sub).cluster.pid == own.pid and gone(own.pid)
    assert warm_cluster.find(sub).cluster.pid == above.pid  # now the one above serves the subfolder
    found = warm_cluster.stop(sub)  # stops what runs in sub use: the one above
    assert found.folder == str(warm_folder) and gone(above.pid)


def test_a_fifo_planted_as_a_folders_cluster_file_is_passed_over_without_blocking(warm_folder):
    # (a blocking open of it held `cluster status` and every run below that folder for ever)
    sub = warm_folder / "sub"
    sub.mkdir()
    warm_cluster.state_folder(warm_folder).mkdir()
    os.mkfifo(warm_cluster.info_path(warm_folder))
    found = {}
    looking = threading.Thread(target=lambda: found.update(own=warm_cluster.lookup(warm_folder),
                                                            below=warm_cluster.find(sub)), daemon=True)
    looking.start()
    looking.join(10)
    assert not looking.is_alive(), "the lookup blocked on the FIFO"
    assert (found["own"].state, found["own"].reason) == (
        warm_cluster.INVALID, f"{warm_cluster.info_path(warm_folder)} is not a regular file")
    assert found["below"].state == warm_cluster.NONE


def test_the_cluster_files_are_the_owners_alone(warm_folder):
    """Another user who could read the lock could hold it (and block start and stop); the files name
    the scheduler's address."""
    lock = warm_cluster.state_folder(warm_folder) / warm_cluster.LOCK_NAME
    lock.parent.mkdir()
    lock.touch(mode=0o644)  # as an older nbscale left it
    warm_cluster.start(warm_folder, workers=1, idle_timeout=600)
    for path in (lock, warm_cluster.info_path(warm_folder), warm_cluster.scheduler_file_path(warm_folder),
                 warm_cluster.tls_path(warm_folder)):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_a_client_without_the_clusters_certificate_is_refused(shared_warm):
    """Any local user could connect to the scheduler's port and run code as the cluster's owner."""
    from distributed import Client
    from distributed.security import Security

    folder, cluster = shared_warm
    assert cluster.address.startswith("tls://")
    # (asked as the lookup asks, on a loop of its own: a refused Dask Client can leave the
    # process's client loop unable to start the next one)
    for security in (None, Security.temporary()):  # no TLS, or another certificate
        assert not warm_cluster.answers(cluster.address, timeout=5, security=security)
    assert warm_cluster.answers(cluster.address, timeout=5, security=warm_cluster.cluster_security(cluster))
    with Client(cluster.address, timeout="10s", set_as_default=False,
                security=warm_cluster.cluster_security(cluster)) as client:
        assert client.run(os.getpid)  # the owner's certificate (its file is 0600) connects


def test_a_file_of_another_user_is_refused(warm_folder):
    """A run sends its code and data to the cluster a file names, and loads what comes back."""
    cluster, _ = warm_cluster.start(warm_folder, workers=1, idle_timeout=600)
    path = warm_cluster.info_path(warm_folder)
    os.chown(path, 65534, 65534)  # the tests run as root (as CI does): hand the file to nobody
    found = warm_cluster.lookup(warm_folder)
    assert (found.state, found.reason) == (warm_cluster.INVALID, f"{path} belongs to another user (uid 65534): only "
                                                                 "a file of yours names a cluster to run on")


def test_a_process_of_another_user_that_looks_like_a_cluster_is_not_trusted(warm_folder):
    lookalike = subprocess.Popen(["sh", "-c", "sleep 600; :", warm_cluster.SERVE_MODULE, str(warm_folder)],
                                 user=65534)  # as nobody (the tests run as root, as CI does)
    try:
        wait_for(lambda: warm_cluster.SERVE_MODULE in psutil.Process(lookalike.pid).cmdline(), "it to start")
        write_info(warm_folder, pid=lookalike.pid)
        found = warm_cluster.lookup(warm_folder)
        assert (found.state, found.reason) == (
            warm_cluster.STALE, f"its process {lookalike.pid} is not this folder's warm cluster (it belongs to another "
                                "user)")
        assert warm_cluster.stop(warm_folder).state == warm_cluster.STALE and lookalike.poll() is None
    finally:
        lookalike.kill()
        lookalike.wait()


def test_a_file_naming_the_clusters_pid_but_another_port_is_stale(warm_folder):
    import socket

    cluster, _ = warm_cluster.start(warm_folder, workers=1, idle_timeout=600)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        address = f"tcp://127.0.0.1:{listener.getsockname()[1]}"
        write_info(warm_folder, address=address, pid=cluster.pid)
        found = warm_cluster.lookup(warm_folder)
    assert found.state == warm_cluster.STALE
    assert found.reason == f"its process {cluster.pid} does not listen at {address}"


def test_a_cluster_whose_process_listens_no_more_is_said_to_be_closing(warm_folder):
    """Closing at its idle timeout, the cluster's process outlives its scheduler a moment: a lookup
    then said "does not listen at ADDRESS", as of a file naming another program's port."""
    closing = subprocess.Popen(["sh", "-c", "sleep 600; :", warm_cluster.SERVE_MODULE, str(warm_folder)])
    try:
        wait_for(lambda: warm_cluster.SERVE_MODULE in psutil.Process(closing.pid).cmdline(), "it to start")
        write_info(warm_folder, pid=closing.pid)
        found = warm_cluster.lookup(warm_folder)
        assert (found.state, found.reason) == (warm_cluster.STALE, f"it is closing: its process {closing.pid} "
                                                                   "listens no more")
    finally:
        closing.kill()
        closing.wait()


def test_a_cluster_of_another_python_environment_is_not_used_and_the_run_says_why(warm_folder):
    cluster, _ = warm_cluster.start(warm_folder, workers=1, idle_timeout=600)
    assert cluster.prefix == sys.prefix  # the file names the environment its workers run
    # the same cluster as one started from another virtual environment would describe itself (a real
    # second environment with nbscale installed would take minutes to build)
    info = warm_cluster.info_path(warm_folder)
    data = json.loads(info.read_text())
    info.write_text(json.dumps({**data, "prefix": "/opt/other-venv"}))
    assert warm_cluster.lookup(warm_folder).live  # still a live cluster: not replaced, not stopped
    notebook = make_notebook(warm_folder, [("import os\nparent = os.getppid()", ["step:where"])], name="env")
    result, seen = events_of(notebook)
    assert result.ok and result.load("where")["parent"] == os.getpid(), "the step ran on the other environment"
    warnings = [p["message"] for kind, _, p in seen if kind == WARNING]
    assert warnings == [f"not using the warm cluster of {warm_folder}: it runs the Python environment "
                        f"/opt/other-venv, this run {sys.prefix}; running on a cluster of its own"]
    assert psutil.pid_exists(cluster.pid)


def test_a_run_whose_warm_cluster_stops_under_it_ends_failed_saying_so(warm_folder):
    # it waited for ever: Dask cancels every future when the scheduler goes, and the run asked a
    # cancelled step's worker for its outcome through a client with no scheduler
    warm_cluster.start(warm_folder, workers=1, idle_timeout=600)
    started = warm_folder / "started"
    notebook = make_notebook(warm_folder, [
        (f"import pathlib, time\npathlib.Path({str(started)!r}).touch()\ntime.sleep(60)\nx = 1", ["step:slow"]),
        ("y = x + 1", ["step:after"])], name="gone")
    run = subprocess.Popen([*NBSCALE, "run", str(notebook), "--no-cache"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    try:
        wait_for(started.exists, "the step to start on the warm cluster")
        warm_cluster.stop(warm_folder)
        out, err = run.communicate(timeout=DEADLINE_S)
    finally:
        run.kill()
    assert run.returncode == 1, err
    assert "the connection to the Dask scheduler at tls://" in out + err and "was lost" in out + err
    with default_run_store(notebook) as store:
        latest = store.list_runs(limit=1)[0]
        steps = {s["step"]: s for s in store.get_run(latest["id"])["steps"]}
    assert latest["status"] == "failed" and steps["slow"]["status"] == "failed"
    assert steps["after"]["status"] in ("failed", "upstream_failed")


def test_the_dask_collection_modules_a_notebook_names_are_imported_on_the_scheduler_as_it_starts(warm_folder):
    # the first compute of a collection from a step imported dask.dataframe there, on its critical path
    from distributed import Client

    def _loaded_here(module, dask_scheduler=None):  # nested: pickled by value, as the scheduler lacks this file
        import sys

        return module in sys.modules

    cluster, _ = warm_cluster.start(warm_folder, workers=1, idle_timeout=600)
    plain = make_notebook(warm_folder, [("x = 1", ["step:a"]), ("y = x + 1", ["step:b"])], name="plain")
    frames = make_notebook(warm_folder, [("import dask.dataframe as dd\nimport pandas as pd", ["imports"]),
                                         ("ddf = dd.from_pandas(pd.DataFrame({'k': [1, 2]}), npartitions=1)",
                                          ["step:build"]),
                                         ("n = ddf.npartitions", ["step:use"])], name="frames")
    with Client(cluster.address, set_as_default=False, security=warm_cluster.cluster_security(cluster)) as client:
        assert run_notebook(plain, options=RunOptions(use_cache=False)).ok
        assert not client.run_on_scheduler(_loaded_here, "dask.dataframe")  # not for a notebook without them
        result = run_notebook(frames, options=RunOptions(use_cache=False))  # no compute: no graph reaches it
        assert result.ok and result.load("use")["n"] == 1
        wait_for(lambda: client.run_on_scheduler(_loaded_here, "dask.dataframe"), "dask.dataframe on the scheduler")


def test_a_library_reinstalled_since_a_worker_imported_it_restarts_that_idle_worker(warm_folder, tmp_path, library,
                                                                                   monkeypatch):
    # `pip install -U lib` between two runs: the warm worker holds the old lib, which it cannot import again
    site, name = library
    monkeypatch.setenv("PYTHONPATH", str(site))  # the cluster's workers and this run's agree on it
    warm_cluster.start(warm_folder, workers=1, idle_timeout=600)
    notebook = make_notebook(warm_folder, [(f"import os\nv = (__import__({name!r}).VALUE, os.getpid())", ["step:use"])],
                             name="lib")
    result, seen = events_of(notebook)
    assert result.ok and result.load("use")["v"][0] == 1
    worker_pid = result.load("use")["v"][1]
    assert not [p for kind, _, p in seen if kind == WARNING]
    install_library(site, name, "2.0", 2)
    result, seen = events_of(notebook)
    assert result.ok and result.load("use")["v"][0] == 2, "the step ran the library's old code"
    assert result.load("use")["v"][1] != worker_pid and gone(worker_pid)
    warnings = [p["message"] for kind, _, p in seen if kind == WARNING]
    assert len(warnings) == 1 and f"({name} 1.0 → 2.0)" in warnings[0] and warnings[0].startswith("restarting worker")
    result, seen = events_of(notebook)
    assert result.ok and result.load("use")["v"][0] == 2 and not [p for kind, _, p in seen if kind == WARNING]


def test_a_worker_busy_with_another_runs_step_is_not_restarted_and_a_step_landing_there_says_why(
        warm_folder, tmp_path, library, monkeypatch):
    site, name = library
    monkeypatch.setenv("PYTHONPATH", str(site))
    warm_cluster.start(warm_folder, workers=1, idle_timeout=600)
    started, go_on = tmp_path / "started", tmp_path / "go-on"
    long = make_notebook(warm_folder, [(
        f"import os, time\nv = __import__({name!r}).VALUE\nopen({str(started)!r}, 'w').close()\n"
        f"while not os.path.exists({str(go_on)!r}):\n    time.sleep(0.05)", ["step:long"])], name="long")
    proc = subprocess.Popen([*NBSCALE, "run", str(long), "--no-cache"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: started.exists() or proc.poll() is not None, "the long step to start")
        assert proc.poll() is None, proc.stdout.read()
        install_library(site, name, "2.0", 2)  # while the long step runs with 1.0
        other = make_notebook(warm_folder, [(f"w = __import__({name!r}).VALUE", ["step:other"])], name="other")
        go_on_later = threading.Timer(3.0, go_on.touch)  # the other run's step waits for the one worker
        go_on_later.start()
        result, seen = events_of(other)
        out, _ = proc.communicate(timeout=DEADLINE_S)
    finally:
        go_on.touch()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out  # the long step was not killed by the other run
    assert not [p for kind, _, p in seen if kind == WARNING and p["message"].startswith("restarting worker")]
    error = result.step("other")["error"]
    assert error["ename"] == "OutdatedLibraries" and f"{name} 1.0 (installed now: 2.0)" in error["evalue"]


# --- a cluster of other nbscale code ---------------------------------------------------------------


def as_started_by_other_code(folder) -> None:
    """The live cluster's file as a cluster started before nbscale was installed again describes
    itself: no digest of its code, as a release before `own_code` wrote (installing a second
    nbscale in this environment under a running test would change the code the tests run)."""
    info = warm_cluster.info_path(folder)
    data = json.loads(info.read_text())
    del data["code"]
    info.write_text(json.dumps(data))


def test_a_cluster_of_other_nbscale_code_is_not_used_and_start_replaces_it_once_no_run_uses_it(warm_folder):
    cluster, _ = warm_cluster.start(warm_folder, workers=1, idle_timeout=600)
    assert cluster.code == own_code.IMPORTED
    as_started_by_other_code(warm_folder)
    other_code = ("it runs other nbscale code than this run (nbscale was installed again or edited since it "
                  "started; `nbscale cluster start` replaces it once no run uses it)")
    notebook = make_notebook(warm_folder, [("import os\nparent = os.getppid()", ["step:where"])], name="code")
    result, seen = events_of(notebook)
    assert result.ok and result.load("where")["parent"] == os.getpid(), "the step ran on the old code"
    assert [p["message"] for kind, _, p in seen if kind == WARNING] == [
        f"not using the warm cluster of {warm_folder}: {other_code}; running on a cluster of its own"]
    assert warm_cluster.status(warm_folder)["not_used"] == other_code
    said = []
    replaced, started = warm_cluster.start(warm_folder, workers=1, idle_timeout=600, say=said.append)
    assert started and replaced.pid != cluster.pid and replaced.code == own_code.IMPORTED
    assert said == [f"replacing the warm cluster of {warm_folder}: it runs other nbscale code than this one "
                    "(installed again or edited since it started)"]
    wait_for(lambda: gone(cluster.pid), "the old cluster's process to end")
    result, seen = events_of(notebook)
    assert result.ok and result.load("where")["parent"] == replaced.pid
    assert warm_cluster.status(warm_folder)["not_used"] is None


def test_a_cluster_of_other_nbscale_code_with_a_run_on_it_is_left_running(warm_folder):
    from distributed import Client

    cluster, _ = warm_cluster.start(warm_folder, workers=1, idle_timeout=600)
    as_started_by_other_code(warm_folder)
    security = warm_cluster.cluster_security(cluster)
    with Client(cluster.address, set_as_default=False, security=security) as client:  # a run of the old code's process
        running = client.submit(__import__("time").sleep, 60, key="nbscale-step-0123abcd")
        wait_for(lambda: warm_cluster.status(warm_folder).get("runs"), "the task to be on the cluster")
        kept, started = warm_cluster.start(warm_folder, workers=1, idle_timeout=600)
        assert not started and kept.pid == cluster.pid and not running.done()
        running.cancel()


def test_a_process_that_imported_nbscale_before_it_was_replaced_neither_uses_nor_replaces_a_current_cluster(
        warm_folder, monkeypatch):
    """A kernel or a server started before nbscale was installed again: the cluster runs the code
    installed now, which this process does not. Replacing it would start the same code again, for
    ever (the JupyterLab server's panel starts its cluster through `start_or_find`)."""
    cluster, _ = warm_cluster.start(warm_folder, workers=1, idle_timeout=600)
    monkeypatch.setattr(own_code, "IMPORTED", "the code this process imported before the files changed")
    found, started = warm_cluster.start_or_find(warm_folder, 1, 600)
    assert not started and found.pid == cluster.pid
    assert warm_cluster.environment_difference(found) == (
        "this process imported nbscale before it was installed again or edited, and the cluster runs the code "
        "there now: start this process again (the kernel, the server) to use it")
