"""The processes a step starts end with the step.

A step may leave processes behind: `subprocess.Popen(["sleep", "600"])` never waited for, a shell
command that puts one in the background (IPython refuses `!cmd &`, but not
`!nohup cmd > log 2>&1 & echo started`). On a shared worker they would outlive the step, its run
and a Cancel. `step_children()` wraps one step: it
records the processes below this one when the step starts and, when it ends (success, failure,
timeout, interrupt), ends those that are new and in this process's session (a process another
thread starts in a session of its own is not the step's): SIGTERM, a short wait, then SIGKILL, and
reaps them.
multiprocessing's resource tracker and fork server are left: they serve the whole process, not
the step, and end with it; so is joblib's reusable worker pool (loky), which ends itself when
idle (300 s) and is shared by later steps — `end_step_children()` (a cancel) ends it too, and so
does the exit of the process that ran the steps (`_end_pools_at_exit`): a Dask worker exits
through multiprocessing, which skips loky's exit hook and then waits for the pool's processes.

On Linux this process is made a *child subreaper* while the step runs, so a process orphaned by
its parent (the shell that put it in the background exits at once) is re-parented here instead of
to init, and is still found among this process's descendants. Elsewhere such orphans are not
found. One step at a time per process: `task.isolated_step` holds the process's step shell.

`end_step_children()` ends the new processes of the step running now; it may be called from
another thread while the step runs (the Dask engine calls it when a run is cancelled), and then
the step's blocking wait on its child returns.

A process killed outright (`kill -9` of `nbscale run`) ends nothing: what its steps started lives
on, re-parented to init. So a step's processes carry its run's owner in their environment
(`OWNER_ENV`, set by `marked_for_owner` around the step), and `end_orphans_of()`, called by the
run store when it finds the owner gone, ends those still in the step's session. A process forked
without exec (a `fork` pool's worker) shows the environment its parent was started with, without
the mark: it carries the mark in its name instead (`/proc/PID/comm`, `_forked_name`).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import multiprocessing.pool
import multiprocessing.util
import os
import sys
import threading
import time
import weakref
from contextlib import contextmanager

import psutil

from .liveness import START_TIME_TOLERANCE_S, process_start_time

__all__ = ["OWNER_ENV", "TERMINATE_WAIT_S", "end_orphans_of", "end_step_children", "marked_for_owner", "owner_marker",
           "step_children"]

TERMINATE_WAIT_S = 2.0  # after SIGTERM, before SIGKILL
POLL_S = 0.02
PROC_TASKS = "/proc/self/task"
# multiprocessing's (and loky's) resource tracker and fork server serve the whole process and end
# with it; ending them makes their next user warn that resources may leak.
SERVICE_MARKERS = ("resource_tracker import main", "forkserver import main")
# joblib's reusable worker pool (loky) outlives the call that made it and ends itself when idle;
# ended under it, the next step's first call can fail before loky notices. Ended on cancel only.
POOL_MARKERS = ("popen_loky_posix",)
PR_SET_CHILD_SUBREAPER, PR_GET_CHILD_SUBREAPER = 36, 37
PR_SET_PDEATHSIG = 1
PR_SET_NAME = 15
# "<owner pid>:<owner start time>:<the step's session>" in the environment of what a step starts
OWNER_ENV = "NBSCALE_STEP_OWNER"
FORKED_NAME_PREFIX = "nbscale-"  # and 7 hex digits of the mark: a process's name holds 15 bytes

_lock = threading.Lock()
_before: set[tuple[int, float]] | None = None  # (pid, start time) of the descendants when the step started
_ends_pools_at_exit: int | None = None  # the pid of the process `_end_pools_at_exit` is registered in
_step_pools: weakref.WeakSet = weakref.WeakSet()  # the `multiprocessing.Pool`s made while the step runs
# where loky keeps its reusable pool: joblib's copy, and loky installed on its own
LOKY_POOLS = ("joblib.externals.loky.reusable_executor", "loky.reusable_executor")


@contextmanager
def step_children():
    """Run the block as a step: the processes it starts are ended when it ends."""
    global _before
    _register_end_of_pools()
    _note_pools()
    was_subreaper = _set_subreaper(True)
    with _lock:
        _before = {_identity(p) for p in _descendants()}
    try:
        yield
    finally:
        try:
            _end_pools_left_open()
            _end_new_processes(keep_pools=True)
            _reap_new()  # the step is over: nobody else will wait for what it left
        finally:
            with _lock:
                _before = None
            if was_subreaper is False:
                _set_subreaper(False)


def _register_end_of_pools() -> None:
    """Once per process (a forked one starts with no exit handlers of multiprocessing's)."""
    global _ends_pools_at_exit
    with _lock:
        if _ends_pools_at_exit == os.getpid():
            return
        _ends_pools_at_exit = os.getpid()
    # run by multiprocessing's exit before it joins the process's children (priority >= 0), both when
    # a Dask worker exits and at the interpreter's exit
    multiprocessing.util.Finalize(None, _end_pools_at_exit, exitpriority=100)


def _end_pools_at_exit() -> None:
    """End joblib's reusable pool (loky) and remove its memory-mapped folders, as loky's own exit hook
    would. A Dask worker exits through multiprocessing, which skips that hook and then waits for the
    pool's processes: the worker waited until its nanny killed it, 4 s at the end of every run that
    used `n_jobs`, and the pool lived on, re-parented to init. (Any other process a step starts ends
    with the step, a `multiprocessing.Pool`'s daemonic workers as the process exits.)"""
    for name in LOKY_POOLS:
        pool = getattr(sys.modules.get(name), "_executor", None)
        if pool is not None:
            try:
                (pool.terminate if hasattr(pool, "terminate") else pool.shutdown)(kill_workers=True)
            except Exception:  # noqa: BLE001 - a broken pool: nothing more can be done at exit
                pass


def _note_pools() -> None:
    """Keep each `multiprocessing.Pool` (a ThreadPool too) made while a step runs (`_step_pools`)."""
    made = multiprocessing.pool.Pool.__init__
    if hasattr(made, "__wrapped__"):
        return

    def __init__(pool, *args, **kwargs):
        made(pool, *args, **kwargs)
        if _before is not None:
            _step_pools.add(pool)

    __init__.__wrapped__ = made
    multiprocessing.pool.Pool.__init__ = __init__


def _end_pools_left_open(wait: float = TERMINATE_WAIT_S) -> None:
    """End each pool the step left open (`pool = Pool(2)`, never closed) as its finalizer would at
    exit, while its workers live. Killed first (`_end_new_processes`), an idle worker holding the
    pool's task queue lock took it with it, and the finalizer, run as the pool went, waited for that
    lock for ever: the step never ended. (In a thread: a pool whose workers died meanwhile, by a
    Ctrl-C that reached them too, would wait so as well; it is then left to the kill.)"""
    pools = [pool for pool in list(_step_pools) if pool._state != multiprocessing.pool.TERMINATE]
    _step_pools.clear()
    for pool in pools:
        ending = threading.Thread(target=pool.terminate, name="nbscale-end-pool", daemon=True)
        ending.start()
        ending.join(wait)


def owner_marker(pid: int, started: float) -> str:
    """How a run's owner is named in the environment of its steps' processes."""
    return f"{pid}:{started!r}"


@contextmanager
def marked_for_owner(owner: str):
    """Run the block (a step of the run owned by `owner`, an `owner_marker`) with the owner and this
    process's session in the environment its processes inherit; put back afterwards."""
    if not owner:
        yield
        return
    previous = os.environ.get(OWNER_ENV)
    os.environ[OWNER_ENV] = f"{owner}:{os.getsid(0)}"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(OWNER_ENV, None)
        else:
            os.environ[OWNER_ENV] = previous


def end_orphans_of(pid: int, started: float, wait: float = TERMINATE_WAIT_S, *, orphaned_only: bool = False
                   ) -> list[int]:
    """End the processes the steps of a run started, once its owner (`pid` started at `started`) is
    gone without ending them: those whose environment names that owner and that are still in the
    step's session (one started in a session of its own left it on purpose, as `step_children`
    has it). SIGTERM, then SIGKILL after `wait` seconds. The pids ended.

    `orphaned_only`: the owner is this process, at the end of a run that did not end cleanly (a
    worker restarted under a cancelled step leaves what the step started to init): only those
    re-parented to init, not the processes of another run's step going on in this process."""
    orphans = [p for p in psutil.process_iter() if _left_by(p, pid, started)
               and (not orphaned_only or _orphaned(p))]
    _terminate_then_kill(orphans, wait)
    return [p.pid for p in orphans]


def _orphaned(process: psutil.Process) -> bool:
    try:
        return process.ppid() == 1
    except psutil.Error:
        return False


def _left_by(process: psutil.Process, pid: int, started: float) -> bool:
    try:
        marker = process.environ().get(OWNER_ENV)
    except psutil.Error:  # gone, a zombie, or not ours to read
        return False
    marker = marker or _forked_marker(process, pid, started)
    try:
        owner_pid, owner_started, session = marker.split(":")
        same_owner = int(owner_pid) == int(pid) and abs(float(owner_started) - float(started)) <= START_TIME_TOLERANCE_S
        in_session = os.getsid(process.pid) == int(session)
    except (AttributeError, ValueError, OSError):
        return False
    return same_owner and in_session and process.pid != os.getpid() and not _runs_any(
        process, SERVICE_MARKERS + POOL_MARKERS)


def _forked_name(marker: str) -> bytes:
    """The name of a process forked while a step marked `marker` (an `OWNER_ENV` value) ran."""
    return (FORKED_NAME_PREFIX + hashlib.blake2b(marker.encode(), digest_size=4).hexdigest()[:7]).encode()


def _forked_marker(process: psutil.Process, pid: int, started: float) -> str | None:
    """The mark of the owner `pid` started at `started`, if `process` carries it in its name (see
    `_forked_name`; the session it was forked in is part of the mark, and must be its own still)."""
    try:
        marker = f"{owner_marker(pid, started)}:{os.getsid(process.pid)}"
        with open(f"/proc/{process.pid}/comm", "rb") as comm:
            name = comm.read().rstrip(b"\n")
    except OSError:
        return None
    return marker if name == _forked_name(marker) else None


def _name_forked_child() -> None:
    """(in a process just forked) Carry the step's owner mark in the name, where the run store can
    read it: the environment it shows is the parent's as it was started (Linux only)."""
    marker, prctl = os.environ.get(OWNER_ENV), _prctl()
    if marker and prctl is not None:
        prctl(PR_SET_NAME, ctypes.c_char_p(_forked_name(marker)), 0, 0, 0)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_name_forked_child)


def end_step_children(wait: float = TERMINATE_WAIT_S) -> list[int]:
    """End the processes started by the step running in this process (none if none runs), its
    worker pools included (what the step does is being cancelled).

    Safe to call from any thread. SIGTERM first, SIGKILL for those still alive after `wait`
    seconds. Ended children are not reaped here, so that the step's own `Popen.wait()` still
    sees how they ended (-15, -9). Returns the pids that were ended.
    """
    return _end_new_processes(wait, keep_pools=False)


def _end_new_processes(wait: float = TERMINATE_WAIT_S, *, keep_pools: bool) -> list[int]:
    with _lock:
        before = _before
    if before is None:
        return []
    kept = SERVICE_MARKERS + (POOL_MARKERS if keep_pools else ())
    new = [p for p in _descendants() if _identity(p) not in before and not _runs_any(p, kept) and _ours(p)]
    _terminate_then_kill(new, wait)
    return [p.pid for p in new]


def _terminate_then_kill(processes: list[psutil.Process], wait: float) -> None:
    """SIGTERM, then SIGKILL for those still running after `wait` seconds; returns once they ended
    (or `wait` more seconds passed), without reaping them."""
    for process in processes:
        _signal(process, psutil.Process.terminate)
    alive = _wait_until_ended(processes, wait)
    for process in alive:
        _signal(process, psutil.Process.kill)
    _wait_until_ended(alive, wait)


def _ours(process: psutil.Process) -> bool:
    """Whether the process is in this process's session. Another thread of this process (an engine
    driving kfp.local, a host application) starts its own helpers in sessions of their own
    (`start_new_session=True`): the step did not start those."""
    try:
        return os.getsid(process.pid) == os.getsid(0)
    except OSError:  # gone already
        return False


def _wait_until_ended(processes: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait for the processes to end, without reaping them; those still running."""
    deadline = time.monotonic() + timeout
    alive = processes
    while alive:
        alive = [p for p in alive if _running(p)]
        if not alive or time.monotonic() > deadline:
            break
        time.sleep(POLL_S)
    return alive


def _running(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _descendants() -> list[psutil.Process]:
    """The processes below this one. Linux lists each thread's children in /proc, which is a few
    small reads; psutil's way reads the parent of every process on the machine."""
    if not _has_children():  # a step that starts none, the common case, pays one system call
        return []
    if not os.path.isdir(PROC_TASKS):
        try:
            return psutil.Process().children(recursive=True)
        except psutil.Error:
            return []
    found, parents = [], [os.getpid()]
    while parents:
        children = [pid for parent in parents for pid in _proc_children(parent)]
        found.extend(children)
        parents = children
    processes = []
    for pid in found:
        try:
            processes.append(psutil.Process(pid))
        except psutil.Error:
            continue
    return processes


def _has_children() -> bool:
    """Whether this process has a child process, running or ended (any thread's; none is reaped)."""
    try:
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return False
    except OSError:
        return True
    return True


def _proc_children(pid: int) -> list[int]:
    pids = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return pids
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as listing:
                pids.extend(int(child) for child in listing.read().split())
        except (OSError, ValueError):
            continue
    return pids


def _identity(process: psutil.Process) -> tuple[int, float]:
    """A pid is reused after a process ends: with its start time it names one process."""
    return process.pid, process_start_time(process.pid) or 0.0


def _runs_any(process: psutil.Process, markers: tuple[str, ...]) -> bool:
    try:
        command = " ".join(process.cmdline())
    except psutil.Error:
        return False
    return any(marker in command for marker in markers)


def _signal(process: psutil.Process, send) -> None:
    try:
        send(process)
    except psutil.Error:  # already gone
        pass


def _reap_new() -> None:
    """Collect the ended children the step left (orphans re-parented here, Popens not waited for);
    children from before the step are whoever started them's to wait for."""
    with _lock:
        before = _before or set()
    for process in _descendants():
        try:
            if (process.ppid() == os.getpid() and _identity(process) not in before
                    and process.status() == psutil.STATUS_ZOMBIE):
                os.waitpid(process.pid, os.WNOHANG)
        except (psutil.Error, ChildProcessError):
            continue


def _set_subreaper(on: bool) -> bool | None:
    """Make this process a child subreaper (Linux) or stop it; the previous setting, None if unknown."""
    prctl = _prctl()
    if prctl is None:
        return None
    previous = ctypes.c_int(0)
    if prctl(PR_GET_CHILD_SUBREAPER, ctypes.byref(previous), 0, 0, 0) != 0:
        return None
    prctl(PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0)
    return bool(previous.value)


@functools.cache
def die_with_nanny(has_nanny: bool) -> None:
    """(on a Dask worker, before its first step) Be killed by the kernel the moment the nanny that
    started this worker process dies (`nbscale run` killed with -9: the embedded cluster's nannies live
    in it). Dask's own watch is a thread of this process, which never runs while a step's C code holds
    the interpreter: the step went on, orphaned. Not for a worker without a nanny, whose parent is
    whatever shell started it. Once per process."""
    import multiprocessing

    parent, prctl = multiprocessing.parent_process(), _prctl()
    if not has_nanny or parent is None or prctl is None:
        return
    prctl(PR_SET_PDEATHSIG, 9, 0, 0, 0)  # (SIGKILL; sent when the nanny's thread that forked this one ends)
    if os.getppid() != parent.pid:  # it died before the signal was set
        os._exit(1)


@functools.cache
def _prctl():
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
