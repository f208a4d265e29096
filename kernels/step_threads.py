"""Threads a step leaves running.

A process cannot end a thread. A non-daemon thread a step starts and leaves running (a
`threading.Thread` never joined, a server's loop) would make the process that ran the step wait
for it at exit, for ever: `nbscale run --engine local`, a script calling `nbscale.run()`. After the
step such threads are named in a warning and no longer waited for at exit, as a daemon thread is
not (CPython 3.10–3.12 keep what exit waits for in `threading._shutdown_locks`; where it does not,
the warning says that the process will wait). Threads of an executor that stops them at exit
itself are left alone: a thread pool's idle workers (`concurrent.futures`), and the thread that
manages a process pool's workers (`ProcessPoolExecutor`, and joblib's loky executor, which
scikit-learn's `n_jobs=` keeps for reuse). The step cannot join those, and need not.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

__all__ = ["left_threads_message", "step_threads"]


@contextmanager
def step_threads():
    """Run the block as a step; the list it yields holds, once it ends, the names of the
    non-daemon threads it left running (no longer waited for at exit, where that can be said)."""
    before = set(threading.enumerate())
    left: list[str] = []
    try:
        yield left
    finally:
        threads = [t for t in threading.enumerate() if t not in before and t.is_alive() and not t.daemon
                   and not _stops_at_exit(t)]
        waited = [t.name for t in threads if not _not_waited_for(t)]
        left.extend(t.name for t in threads)
        left.extend(f"{name} (waited for at exit)" for name in waited)


def left_threads_message(names: list[str]) -> str:
    return (f"the step left {'a thread' if len(names) == 1 else 'threads'} running ({', '.join(names)}): nbscale "
            "cannot end a thread, and does not wait for it at exit; join it in the step, or make it a daemon")


# The module and class of process pools' manager threads; each module registers (with
# `threading._register_atexit`) a function that wakes them to end before exit joins them.
_MANAGER_THREADS = frozenset({
    ("concurrent.futures.process", "_ExecutorManagerThread"),
    ("joblib.externals.loky.process_executor", "_ExecutorManagerThread"),
    ("loky.process_executor", "_ExecutorManagerThread"),
})


def _stops_at_exit(thread: threading.Thread) -> bool:
    """A pool's thread that its executor ends at interpreter exit (before exit waits for threads)."""
    target = getattr(thread, "_target", None)
    if getattr(target, "__module__", None) == "concurrent.futures.thread":
        return True
    kind = type(thread)
    return (kind.__module__, kind.__qualname__) in _MANAGER_THREADS


def _not_waited_for(thread: threading.Thread) -> bool:
    """Take the thread off what interpreter exit waits for; False where CPython does not say how."""
    locks, guard = getattr(threading, "_shutdown_locks", None), getattr(threading, "_shutdown_locks_lock", None)
    lock = getattr(thread, "_tstate_lock", None)
    if locks is None or guard is None or lock is None:
        return False
    with guard:
        locks.discard(lock)
    return True
