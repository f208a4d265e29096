"""What the work a step hands to other processes reads and writes there: the step's dependencies.

`joblib.Parallel(n_jobs=2)(delayed(load)(m) for m in months)` reads `data/{m}.csv` in loky's worker
processes, where no audit hook of the step's sees it (and a loky pool outlives the step: the next
step reuses its processes). So while a step records, the function it hands to a process pool
(`concurrent.futures.ProcessPoolExecutor`, `multiprocessing.Pool`, loky's executor behind joblib)
goes wrapped (`InOtherProcess`): in the worker process, the call is recorded as a step's is
(`dependencies.Recording`), and what it read, tested, listed, wrote and which variables it read is
written to a report in a folder of the step's recording; as the step ends its recording takes the
reports in as its own (`take_reports`). A `multiprocessing.pool.ThreadPool`'s work is lent to the
step's recording, as a `ThreadPoolExecutor`'s is (its threads may have run before the step).

A step's process killed before it took its reports in (a worker restarted under a Cancel) leaves
its folder; the next process to record a step on the machine removes it
(`_remove_those_of_dead_processes`).

Work still running as the step ends (handed on and not waited for) would report too late: the
step's recording says so (`incomplete`), and its result is not reused. Not seen: pools of other
kinds, and processes the step starts by other means than `multiprocessing.Process` (whose target
is recorded so too; one ended by a signal reports nothing, and the step's result is not reused):
`subprocess`, whose arguments' named files count.
"""

from __future__ import annotations

import json
import multiprocessing.pool
import multiprocessing.process
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from contextlib import suppress
from functools import lru_cache

from . import dependencies as deps

FOLDER_PREFIX = "nbscale-elsewhere-"  # a recording's folder of reports (`folder_of`)
LOKY_EXECUTOR = "joblib.externals.loky.process_executor"  # joblib's copy of loky: its `ProcessPoolExecutor`
DEAD_FOLDER_AGE_S = 600  # a dead process's report folder untouched this long goes
_HANDED: dict[str, list] = {}  # report folder → the futures, async results and imap iterators of its work


@lru_cache(maxsize=1)
def folders_root() -> str:
    """What every report folder's path begins with: no step's dependency."""
    return os.path.join(tempfile.gettempdir(), FOLDER_PREFIX)


class InOtherProcess:
    """A function a step hands to another process; it pickles as `fn` does, by reference to this class."""

    def __init__(self, fn, cwd: str, folder: str):
        self.fn, self.cwd, self.folder, self.pid = fn, cwd, folder, os.getpid()

    def __call__(self, *args, **kwargs):
        if os.getpid() == self.pid:  # (run in the step's own process after all: its recording sees it)
            return self.fn(*args, **kwargs)
        return recorded_here(self.fn, args, kwargs, self.cwd, self.folder)


def recorded_here(fn, args, kwargs, cwd: str, folder: str):
    """Call `fn` recorded, in this process (a pool's worker), and report what it used to `folder`."""
    if threading.get_ident() in deps._ACTIVE:  # (a worker recording already: a step's own process)
        return fn(*args, **kwargs)
    recording = deps.Recording(cwd)
    deps._start(recording)
    try:
        return fn(*args, **kwargs)
    finally:
        deps._stop(recording)
        take_reports(recording)  # (of work it handed on in turn)
        recording._stated_files()
        _write_report(recording, folder)


def _write_report(recording, folder: str) -> None:
    report = {
        "reads": sorted(recording.reads), "writes": sorted(recording.writes),
        "appended": sorted(recording.appended), "changed_by_step": sorted(recording.changed_by_step),
        "unread_maybe": sorted(recording.unread_maybe), "listings": sorted(recording.listings),
        "globs": sorted(recording.globs), "tested": recording.tested, "env": recording.env,
        "network": sorted(recording.network), "problems": recording.problems,
        "first_seen": {path: _look_to_json(look) for path, look in recording.first_seen.items()},
    }
    if not any(report.values()):  # (pure computing, a model's fit: no file to make)
        return
    name = os.path.join(folder, f"{os.getpid()}-{uuid.uuid4().hex}")
    try:
        # (0600: the values of the variables it read are there until the step takes the report in)
        with open(os.open(name + ".part", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w", encoding="utf-8") as out:
            json.dump(report, out)
        os.replace(name + ".part", name + ".json")  # (the step reads whole reports only)
    except OSError:  # the step ended and took its reports in already: this one is too late
        with suppress(OSError):
            os.unlink(name + ".part")


def folder_of(recording) -> str | None:
    """The folder the work `recording`'s step hands to other processes reports to, made once; None
    once the step ended (a thread of its handing work on later: its report would come too late)."""
    with deps._guard(recording):
        if recording.elsewhere is None and recording.active:
            recording.elsewhere = tempfile.mkdtemp(prefix=f"{FOLDER_PREFIX}{os.getpid()}-")
            _HANDED[recording.elsewhere] = []
        return recording.elsewhere if recording.active else None


@lru_cache(maxsize=1)  # (once per process)
def _remove_those_of_dead_processes() -> None:
    """The report folders of steps whose process died (a worker killed under a cancelled step: its
    step never took them in) go as the next process records its first step (`wrap_pools`: not
    during a step, whose listing of the temp folder it would be); only those untouched for a while
    (a process of another PID namespace sharing the temp folder looks dead from here)."""
    root, prefix = os.path.split(folders_root())
    with suppress(OSError):
        for name in os.listdir(root):
            pid = name[len(prefix):].partition("-")[0] if name.startswith(prefix) else ""
            path = os.path.join(root, name)
            if pid.isdigit() and not _alive(int(pid)) and _untouched_for(path, DEAD_FOLDER_AGE_S):
                shutil.rmtree(path, ignore_errors=True)


def _untouched_for(path: str, seconds: float) -> bool:
    try:
        return time.time() - os.stat(path).st_mtime > seconds
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # (another user's: alive)
        return True
    return True


def take_reports(recording) -> None:
    """Take in what the step's work in other processes reported as the step's own; then the folder
    goes (a report written later, by work that outlived the step, finds no folder)."""
    folder, recording.elsewhere = recording.elsewhere, None
    if folder is None:
        return
    handed = _HANDED.pop(folder, [])
    running = sum(1 for pending in handed if not _finished(pending))
    if running:
        recording.problems.append(f"{running} piece(s) of work handed to other processes were still running as the "
                                  "step ended: what they read and write is not known")
    killed = [p for p in handed if isinstance(p, multiprocessing.process.BaseProcess) and (p.exitcode or 0) < 0]
    if killed:  # (ended by a signal: its report was never written)
        recording.problems.append(f"{len(killed)} process(es) the step started ended by a signal before they could "
                                  "report what they read and wrote")
    try:
        names = sorted(os.listdir(folder))
    except OSError as exc:  # (gone: the step removed it, or a clean-up of the temp folder)
        names = []
        recording.problems.append(f"what work in other processes reported: {type(exc).__name__}: {exc}")
    for name in names:
        if name.endswith(".json"):
            _take_file(recording, os.path.join(folder, name))
    shutil.rmtree(folder, ignore_errors=True)


def _take_file(recording, path: str) -> None:
    try:
        with open(path, encoding="utf-8") as report:
            _take(recording, json.load(report))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:  # (not a report of ours)
        recording.problems.append(f"what work in other processes reported: {type(exc).__name__}: {exc}")


def _take(recording, report: dict) -> None:
    for name in ("reads", "writes", "appended", "changed_by_step", "unread_maybe", "listings"):
        getattr(recording, name).update(report[name])
    recording.globs.update(tuple(g) for g in report["globs"])
    recording.network.update(report["network"])
    for path, look in report["first_seen"].items():
        recording.first_seen.setdefault(path, _look_from_json(look))
    for path, was in report["tested"].items():
        recording.tested.setdefault(path, was)
    for name, value in report["env"].items():
        recording.env.setdefault(name, value)
    recording.problems.extend(f"in another process: {p}" for p in report["problems"] if p not in recording.problems)


def _look_to_json(look):
    """A `dependencies._look`: a file's stat key, a folder's names, or None (absent)."""
    if isinstance(look, frozenset):
        return {"names": sorted(look)}
    return list(look) if isinstance(look, tuple) else None


def _look_from_json(look):
    if isinstance(look, dict):
        return frozenset(look["names"])
    return tuple(look) if isinstance(look, list) else None


def _finished(pending) -> bool:
    """Whether the work behind a pool's future, async result or imap iterator, or a process, has
    ended (its report, written before its result goes back, is there)."""
    if isinstance(pending, multiprocessing.process.BaseProcess):
        return pending.exitcode is not None
    if hasattr(pending, "done"):  # concurrent.futures (loky's too)
        return pending.done()
    if hasattr(pending, "ready"):  # multiprocessing's apply_async, map_async
        return pending.ready()
    length = getattr(pending, "_length", None)  # an imap iterator: all its results arrived
    return length is not None and getattr(pending, "_index", length) >= length


# --- the pools -------------------------------------------------------------------------------------

def _handed_on(fn, frame):
    """`fn` as the pool should get it: wrapped when a recording step hands it on (not nbscale)."""
    recording = deps._recording_here()
    if recording is None or deps._asked_by_nbscale(frame):
        return fn
    folder = folder_of(recording)
    return fn if folder is None else InOtherProcess(fn, recording.cwd, folder)


def _track(fn, pending):
    """Keep what a pool returned for work it got wrapped: the step's end looks whether it ended
    (the list is gone once the step took its reports in)."""
    handed = _HANDED.get(fn.folder) if isinstance(fn, InOtherProcess) else None
    if handed is not None:
        handed.append(pending)
    return pending


def _wrapped_submit(real):
    def submit(executor, fn, /, *args, **kwargs):
        handed = _handed_on(fn, sys._getframe(1))
        return _track(handed, real(executor, handed, *args, **kwargs))

    submit.__wrapped__ = real
    return submit


def _wrapped_pool_method(real):
    """A `multiprocessing.pool.Pool` method taking the function first (`apply_async`, `_map_async`,
    `imap`, `imap_unordered`: `map`, `starmap` and `apply` go through them)."""
    def method(pool, func, *args, **kwargs):
        if isinstance(pool, multiprocessing.pool.ThreadPool):  # its threads may have run before the step
            recording = deps._recording_here()
            if recording is not None and not deps._asked_by_nbscale(sys._getframe(1)):
                func = deps._lent_to(recording, func)
        else:
            func = _handed_on(func, sys._getframe(1))
        return _track(func, real(pool, func, *args, **kwargs))

    method.__wrapped__ = real
    return method


def _wrapped_start(real):
    """`multiprocessing.Process(target=load).start()` in a step: its target goes wrapped, as a
    pool's function does; not a pool's own worker processes (their work is wrapped as it is handed on)."""
    def start(process):
        target = getattr(process, "_target", None)
        if target is not None and not isinstance(target, InOtherProcess) and \
                not str(getattr(target, "__module__", None) or "").startswith(_POOL_MODULES):
            handed = _handed_on(target, sys._getframe(1))
            if handed is not target:
                process._target = handed
                _track(handed, process)
        return real(process)

    start.__wrapped__ = real
    return start


_POOL_MODULES = ("multiprocessing.", "concurrent.futures.", "joblib.", "loky.", "distributed.", "dask.")


def _wrap(cls, name: str, wrapper) -> None:
    real = cls.__dict__.get(name)
    if real is not None and not hasattr(real, "__wrapped__"):
        setattr(cls, name, wrapper(real))


def wrap_pools() -> None:
    """Wrap the standard library's process pools, once per process; the wrappers pass everything on
    untouched while no step records."""
    _remove_those_of_dead_processes()
    _wrap(ProcessPoolExecutor, "submit", _wrapped_submit)
    for name in ("apply_async", "_map_async", "imap", "imap_unordered"):
        _wrap(multiprocessing.pool.Pool, name, _wrapped_pool_method)
    _wrap(multiprocessing.process.BaseProcess, "start", _wrapped_start)
    wrap_loky_if_loaded()


def wrap_loky_if_loaded() -> None:
    """Wrap loky's executor once joblib has loaded it (as a step imports joblib, its import events
    after loky's call this)."""
    module = sys.modules.get(LOKY_EXECUTOR)
    executor = getattr(module, "ProcessPoolExecutor", None)
    if executor is not None:
        _wrap(executor, "submit", _wrapped_submit)
