"""Which run's step holds this process's step shell, and the runs stopped while theirs waited for it.

The steps of one process take turns at its one shell (`shell.step_shell`): on a Dask worker of
several threads, a second step's task waits there, its code not started, while another run's step
runs. Stopping a run (Cancel, a step past its timeout) restarts the worker of a step whose code
runs; a worker where the run's tasks only wait needs no restart, which would kill the other run's
step: the run is noted stopped here instead (`stop_unstarted`), and its waiting steps end with
`StepStopped` as they get the shell (`held_for_run`), before their code runs. A light module: asked
of workers while a run is cancelled, on a process that may not have loaded IPython.
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager

from .errors import StepStopped

_LOCK = threading.Lock()  # never held long: the shell's own lock is, for a whole step
_HELD_FOR = [""]  # the run whose step holds the shell now ("": none, or a step of no run)
_STOPPED_RUNS: dict[str, None] = {}  # newest last
STOPPED_KEPT = 1000


def _fresh_after_fork() -> None:
    """A forked child (a worker a cluster forks) runs no step yet, whatever its parent ran."""
    global _LOCK
    _LOCK = threading.Lock()
    _HELD_FOR[0] = ""


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_fresh_after_fork)


@contextmanager
def held_for_run(run: str):
    """While the block runs (a step holding the shell), `run` holds it; StepStopped at once if that
    run was stopped while the step waited for the shell."""
    with _LOCK:
        if run and run in _STOPPED_RUNS:
            raise StepStopped(run)
        _HELD_FOR[0] = run
    try:
        yield
    finally:
        with _LOCK:
            _HELD_FOR[0] = ""


def stop_unstarted(run: str) -> bool:
    """When a step of another run holds this process's shell now, keep the steps of `run` from ever
    starting here, and say True: its tasks here only wait, and stopping it needs no restart of the
    process. With no step holding the shell, a task of `run` may be between its steps, or a step's
    thread may still run: False, as when its own step holds it."""
    with _LOCK:
        if not run or _HELD_FOR[0] in ("", run):
            return False
        _STOPPED_RUNS[run] = None
        while len(_STOPPED_RUNS) > STOPPED_KEPT:
            del _STOPPED_RUNS[next(iter(_STOPPED_RUNS))]
        return True
