"""children: the processes a step started end with it; processes from before the step stay."""

from __future__ import annotations

import importlib
import multiprocessing
import os
import subprocess
import sys
import threading
import time

import psutil
import pytest

from nbscale.kernels.children import (
    OWNER_ENV,
    end_orphans_of,
    end_step_children,
    marked_for_owner,
    owner_marker,
    step_children,
)


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _sleeping_orphan(path) -> int:
    """A `sleep` whose parent shell has exited (as `!cmd &` leaves it); its pid."""
    subprocess.run(["sh", "-c", f"sleep 600 & echo $! > {path}"], check=True)
    return int(path.read_text())


def test_a_popen_left_running_ends_with_the_step_and_older_ones_stay():
    older = subprocess.Popen(["sleep", "600"])
    try:
        with step_children():
            left = subprocess.Popen(["sleep", "600"])
        assert _gone(left.pid)
        assert older.poll() is None, "a process from before the step is not the step's"
    finally:
        older.kill()
        older.wait()


def test_a_process_another_thread_starts_in_its_own_session_is_not_the_steps():
    # as the kfp-local engine of a run in another thread starts kfp.local while this step runs
    with step_children():
        detached = subprocess.Popen(["sleep", "600"], start_new_session=True)
    try:
        assert detached.poll() is None, "a process in a session of its own is not the step's"
    finally:
        detached.kill()
        detached.wait()


def test_a_process_ignoring_sigterm_is_killed():
    code = ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print('ready', flush=True); time.sleep(600)")
    with step_children():
        stubborn = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        assert stubborn.stdout.readline().strip() == "ready"
        assert end_step_children(wait=0.5) == [stubborn.pid]
        # not reaped by nbscale while the step runs: the step's own wait sees how it ended
        assert stubborn.wait(timeout=10) == -9
        stubborn.stdout.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="orphans are found through a Linux subreaper")
def test_an_orphan_left_by_a_shell_ends_too(tmp_path):
    with step_children():
        pid = _sleeping_orphan(tmp_path / "pid")
        assert psutil.Process(pid).is_running()
    assert _gone(pid)


def test_children_end_when_the_step_fails():
    with pytest.raises(RuntimeError), step_children():
        left = subprocess.Popen(["sleep", "600"])
        raise RuntimeError("step failed")
    assert _gone(left.pid)


def test_end_step_children_from_another_thread_ends_the_running_steps_processes():
    ended = []
    with step_children():
        child = subprocess.Popen(["sleep", "600"])
        timer = threading.Timer(0.5, lambda: ended.extend(end_step_children()))
        timer.start()
        start = time.monotonic()
        child.wait(timeout=60)  # the step's blocking wait returns once the child is ended
        timer.join()
    assert child.pid in ended and time.monotonic() - start < 60


def test_end_step_children_without_a_running_step_ends_nothing():
    other = subprocess.Popen(["sleep", "600"])
    try:
        assert end_step_children() == []
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


def _loky_workers() -> list[psutil.Process]:
    return [p for p in psutil.Process().children(recursive=True) if "popen_loky_posix" in " ".join(p.cmdline())]


def test_joblibs_reusable_pool_serves_later_steps_and_a_cancel_ends_it():
    import warnings

    joblib = importlib.import_module("joblib")  # a test dependency: an ImportError must fail, not skip
    workers = []
    for _ in range(2):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a resource tracker ended with the step would warn here
            with step_children():
                assert joblib.Parallel(n_jobs=2)(joblib.delayed(abs)(-i) for i in range(4)) == [0, 1, 2, 3]
        workers.append({p.pid for p in _loky_workers()})
    assert workers[0] and workers[0] == workers[1], "the second step reused the pool the first one made"
    from joblib.externals.loky import get_reusable_executor

    get_reusable_executor().shutdown(wait=True, kill_workers=True)  # the next step makes a pool of its own
    with step_children():
        joblib.Parallel(n_jobs=2)(joblib.delayed(abs)(-i) for i in range(4))
        new = [p for p in _loky_workers() if p.pid not in workers[0]]
        ended = end_step_children(wait=5)
    assert new and all(p.pid in ended and _gone(p.pid) for p in new)


POOLS_LEFT_SCRIPT = """
import concurrent.futures, contextlib, multiprocessing, psutil, joblib, subprocess
from nbscale.kernels.children import marked_for_owner, step_children

LEFT = []  # what the steps keep: nothing shuts these pools down before the process exits

@contextlib.contextmanager
def step():  # as a worker runs a step of a run
    with step_children(), marked_for_owner("1:2.0"):
        yield

def steps(pids, kept):  # in a multiprocessing child, as a Dask worker is: steps leaving their pools running
    with step():
        joblib.Parallel(n_jobs=2)(joblib.delayed(abs)(-i) for i in range(4))
    with step():
        LEFT.append(concurrent.futures.ProcessPoolExecutor(2))
        assert list(LEFT[-1].map(abs, [-1, -2])) == [1, 2]
    with step():  # left the step's session on purpose: it stays
        kept.put(subprocess.Popen(["sleep", "60"], start_new_session=True).pid)
    for process in psutil.Process().children(recursive=True):
        pids.put(process.pid)
    pids.put(None)

def alive(pid):  # (an exiting process's command line reads empty: the resource tracker's as it ends)
    try:
        process = psutil.Process(pid)
        command = " ".join(process.cmdline())
        return process.status() != psutil.STATUS_ZOMBIE and command != "" and "resource_tracker" not in command
    except psutil.Error:
        return False

context = multiprocessing.get_context("fork")
pids, kept = context.Queue(), context.Queue()
child = context.Process(target=steps, args=(pids, kept))
child.start()
own_session = kept.get(timeout=60)
started = [pid for pid in iter(lambda: pids.get(timeout=60), None) if pid != own_session]
child.join(timeout=20)
hung = child.exitcode is None
if hung:
    child.kill()
print("started", len(started), "hung", hung, "exit", child.exitcode, "alive", sum(map(alive, started)),
      "own-session", alive(own_session))
psutil.Process(own_session).kill()
"""


def test_the_pools_steps_leave_end_as_a_multiprocessing_child_exits(tmp_path):
    # multiprocessing's exit joins a child's non-daemon processes and skips the hooks that shut the
    # pools down: a Dask worker waited for them until its nanny killed it, and they lived on (in a
    # fresh process: a child forked from this one's threads could hang on a lock one of them held)
    importlib.import_module("joblib")  # a test dependency: an ImportError must fail, not skip
    out, err = tmp_path / "out.txt", tmp_path / "err.txt"
    with out.open("w") as stdout, err.open("w") as stderr:  # (not pipes, which processes left would hold)
        done = subprocess.run([sys.executable, "-c", POOLS_LEFT_SCRIPT], stdout=stdout, stderr=stderr, timeout=180)
    assert done.returncode == 0, err.read_text()
    words = out.read_text().split()
    assert int(words[1]) > 0, words  # the steps' pools had processes
    assert words[2:] == ["hung", "False", "exit", "0", "alive", "0", "own-session", "True"], words


POOL_LEFT_OPEN_SCRIPT = """
import gc, multiprocessing, psutil
from nbscale.kernels.children import step_children

with step_children():
    pool = multiprocessing.get_context("fork").Pool(2)
    assert pool.map(abs, [-1, -2]) == [1, 2]
    workers = [worker.pid for worker in pool._pool]
del pool  # (as the step's namespace goes)
gc.collect()
print("ended", sum(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE for pid in workers))
"""


def test_a_pool_the_step_leaves_open_is_ended_with_the_step_and_its_finalizer_does_not_hang(tmp_path):
    # `pool = multiprocessing.Pool(2)` never closed: the step's end killed its workers, an idle one
    # holding the pool's queue lock, and the pool's finalizer then waited for that lock for ever (the
    # run hung after the step, on every engine)
    out = tmp_path / "out.txt"
    with out.open("w") as stdout:  # (not a pipe, which processes left would hold)
        done = subprocess.run([sys.executable, "-c", POOL_LEFT_OPEN_SCRIPT], stdout=stdout, stderr=subprocess.STDOUT,
                              timeout=60)
    assert done.returncode == 0 and out.read_text().split() == ["ended", "0"], out.read_text()


def test_an_ended_child_from_before_the_step_is_left_to_its_owner_to_wait_for():
    older = subprocess.Popen(["sh", "-c", "exit 3"])
    deadline = time.monotonic() + 30
    while not _gone(older.pid) and time.monotonic() < deadline:  # a zombie nobody waited for yet
        time.sleep(0.02)
    with step_children():
        pass
    assert older.wait(timeout=10) == 3, "nbscale must not reap a child it did not end"


PROBE_CHILDREN = """
import subprocess, threading, time
from nbscale.kernels.children import _descendants, _has_children
seen = [_has_children(), len(_descendants())]
child = []
thread = threading.Thread(target=lambda: child.append(subprocess.Popen(["sleep", "30"])))
thread.start(); thread.join()  # started by a thread that has ended since
seen += [_has_children(), [p.pid for p in _descendants()] == [child[0].pid]]
child[0].kill()
time.sleep(0.5)  # ended, not waited for: still a child, and still there to wait for
seen += [_has_children(), _has_children()]
seen.append(child[0].wait(timeout=10))
seen.append(_has_children())
print(seen)
"""


def test_the_check_for_children_sees_any_threads_running_or_ended_child_and_reaps_none():
    out = subprocess.run([sys.executable, "-c", PROBE_CHILDREN], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[False, 0, True, True, True, True, -9, False]"


def test_a_steps_processes_name_its_runs_owner_and_its_session_and_the_mark_goes_afterwards():
    assert OWNER_ENV not in os.environ
    with marked_for_owner(owner_marker(123, 4.5)):
        seen = subprocess.run([sys.executable, "-c", f"import os; print(os.environ[{OWNER_ENV!r}])"],
                              capture_output=True, text=True, check=True).stdout.strip()
    assert seen == f"123:4.5:{os.getsid(0)}"
    assert OWNER_ENV not in os.environ


def _sleep_marked(owner: str, **options) -> subprocess.Popen:
    with marked_for_owner(owner):
        return subprocess.Popen(["sleep", "600"], **options)


def test_the_orphans_of_a_gone_owner_end_and_no_other_process():
    orphan = _sleep_marked(owner_marker(123, 4.5))
    detached = _sleep_marked(owner_marker(123, 4.5), start_new_session=True)  # left the step on purpose
    other_run = _sleep_marked(owner_marker(124, 4.5))
    unmarked = subprocess.Popen(["sleep", "600"])
    processes = (orphan, detached, other_run, unmarked)
    try:
        assert end_orphans_of(123, 99.0) == [], "pid 123 started at another time is another owner"
        assert end_orphans_of(123, 4.5) == [orphan.pid]
        assert orphan.wait(timeout=10) == -15
        assert [p.poll() for p in processes[1:]] == [None, None, None]
    finally:
        for process in processes:
            process.kill()
            process.wait()


def test_an_orphan_ignoring_sigterm_is_killed():
    code = ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print('ready', flush=True); time.sleep(600)")
    with marked_for_owner(owner_marker(123, 4.5)):
        stubborn = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert stubborn.stdout.readline().strip() == "ready"
    assert end_orphans_of(123, 4.5, wait=0.5) == [stubborn.pid]
    assert stubborn.wait(timeout=10) == -9
    stubborn.stdout.close()


def _fork_marked(owner: str | None, *, own_session: bool = False):
    """A forked child (no exec: its environment in /proc is this process's at exec) sleeping."""
    def sleep():
        if own_session:
            os.setsid()
        time.sleep(600)

    child = multiprocessing.get_context("fork").Process(target=sleep, daemon=True)
    if owner is None:
        child.start()
    else:
        with marked_for_owner(owner):
            child.start()
    return child


def test_a_forked_orphan_carries_its_owner_in_its_name_and_ends_with_its_gone_owner():
    forked = _fork_marked(owner_marker(123, 4.5))
    detached = _fork_marked(owner_marker(123, 4.5), own_session=True)
    other_run, unmarked = _fork_marked(owner_marker(124, 4.5)), _fork_marked(None)
    processes = (forked, detached, other_run, unmarked)
    try:
        time.sleep(0.3)  # (the detached one's setsid)
        assert OWNER_ENV not in psutil.Process(forked.pid).environ()
        assert psutil.Process(forked.pid).name().startswith("nbscale-")
        assert end_orphans_of(123, 99.0) == []
        assert end_orphans_of(123, 4.5) == [forked.pid]
        forked.join(timeout=10)
        assert forked.exitcode == -15
        assert [p.is_alive() for p in processes[1:]] == [True, True, True]
    finally:
        for process in processes:
            process.kill()
            process.join()
