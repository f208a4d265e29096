"""SIGTERM handled like Ctrl-C.

While `sigterm_interrupts()` is active, SIGTERM raises `Terminated` (a KeyboardInterrupt) in the
main thread, so a run stopped by `kill`, a service manager or a batch scheduler is cancelled and
recorded ("stopped by SIGTERM") instead of dying mid-step. A second SIGTERM ends the process at once.
A process forked from it (by a step's code) ends on SIGTERM as any process does: it is not the run.
Both Ctrl-C and SIGTERM are noted (`interrupt_requested`): a step whose own code swallows the
KeyboardInterrupt still cancels the run when it ends.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from .errors import Terminated


@contextmanager
def sigterm_interrupts() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set signal handlers
        return

    owner = os.getpid()

    def terminated(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # while cleaning up, another SIGTERM ends it
        if os.getpid() != owner:  # a child a step forked, ended with the step: not the run's process
            os.kill(os.getpid(), signal.SIGTERM)
            return
        _REQUESTED.append(Terminated)
        raise Terminated()

    def interrupted(signum, frame):
        if os.getpid() == owner:
            _REQUESTED.append(KeyboardInterrupt)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, terminated)
    # noted only where Ctrl-C raises KeyboardInterrupt (not in a job that ignores it)
    previous_int = signal.getsignal(signal.SIGINT)
    if previous_int is signal.default_int_handler:
        signal.signal(signal.SIGINT, interrupted)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        if previous_int is signal.default_int_handler:
            signal.signal(signal.SIGINT, previous_int)
        _REQUESTED.clear()


_REQUESTED: list[type[KeyboardInterrupt]] = []  # interrupts asked for while `sigterm_interrupts` is on


def interrupt_requested() -> type[KeyboardInterrupt] | None:
    """The interrupt (KeyboardInterrupt, Terminated) asked for in this process while
    `sigterm_interrupts` is on, or None: a step that swallowed it (`except BaseException`) has not
    cancelled the run, and its engine must, before the next step starts."""
    return _REQUESTED[-1] if _REQUESTED else None
