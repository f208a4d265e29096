"""SIGTERM handled like Ctrl-C.

While `sigterm_interrupts()` is active, SIGTERM raises `Terminated` (a KeyboardInterrupt) in the
main thread, so a run stopped by `kill`, a service manager or a batch scheduler is cancelled and
recorded ("stopped by SIGTERM") instead of dying mid-step. A second SIGTERM ends the process at once.
A process forked from it (by a step's code) ends on SIGTERM as any process does: it is not the run.
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
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
