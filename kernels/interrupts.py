"""SIGTERM (and SIGHUP) handled like Ctrl-C.

While `sigterm_interrupts()` is active, SIGTERM raises `Terminated` (a KeyboardInterrupt) in the
main thread, so a run stopped by `kill`, a service manager or a batch scheduler is cancelled and
recorded ("stopped by SIGTERM") instead of dying mid-step; so does SIGHUP (`HungUp`, "stopped by
SIGHUP": the terminal closed), unless the process ignores it (`nohup`). A second SIGTERM (or Ctrl-C,
after any first) ends the process at once, after its `last_words` (the runner's: the run is recorded
cancelled, not left for the next reader to find its owner gone and fail it).
A process forked from it (by a step's code) ends on SIGTERM as any process does: it is not the run.
Both Ctrl-C and SIGTERM are noted (`interrupt_requested`): a step whose own code swallows the
KeyboardInterrupt still cancels the run when it ends.

A step running in this process's main thread (`step_in_main_thread`: the local engine) may not end
on the interrupt: its cleanup can wait for ever (leaving `with ThreadPoolExecutor()` joins workers
that loop). The interrupt is then raised again every `REPEAT_S` seconds until the step ends;
`exit_without_waiting` then ends the process without waiting for the threads it left.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from .errors import HungUp, Terminated


@contextmanager
def sigterm_interrupts() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set signal handlers
        return

    owner = os.getpid()

    def ending(kind: type[Terminated]):
        def handler(signum, frame):
            if os.getpid() != owner:  # a child a step forked, ended with the step: not the run's process
                signal.signal(signum, signal.SIG_DFL)
                os.kill(os.getpid(), signum)
                return
            for watched in previous_ending:  # while cleaning up, another SIGTERM or SIGHUP ends it
                signal.signal(watched, ended_again)
            _requested(kind)
            raise kind()

        handler.in_forks_default = True  # (`_default_sigterm_in_forks`)
        return handler

    def ended_again(signum, frame):
        signal.signal(signum, signal.SIG_DFL)
        if os.getpid() == owner:
            _tell(_LAST_WORDS)
        os.kill(os.getpid(), signum)

    def interrupted(signum, frame):
        kind = _SIGINT_MEANS[-1] if _SIGINT_MEANS else KeyboardInterrupt
        if os.getpid() == owner:
            if _REQUESTED:  # asked again, as a second SIGTERM: a step that swallows the interrupt kept it running
                ended_again(signum, frame)
                return
            _requested(kind)
        raise kind

    def repeated(signum, frame):
        if os.getpid() == owner and _REQUESTED:
            raise _REQUESTED[-1]()

    previous_ending = {signal.SIGTERM: signal.signal(signal.SIGTERM, ending(Terminated))}
    # SIGHUP: the terminal of `nbscale run` closed (an ssh session ended); not under `nohup`, which ignores it
    if hasattr(signal, "SIGHUP") and signal.getsignal(signal.SIGHUP) is signal.SIG_DFL:
        previous_ending[signal.SIGHUP] = signal.signal(signal.SIGHUP, ending(HungUp))
    previous_repeat = signal.signal(REPEAT_SIGNAL, repeated)
    _WATCHING.append(owner)
    # noted only where Ctrl-C raises KeyboardInterrupt (not in a job that ignores it)
    previous_int = signal.getsignal(signal.SIGINT)
    if previous_int is signal.default_int_handler:
        signal.signal(signal.SIGINT, interrupted)
    try:
        yield
    finally:
        _WATCHING.pop()
        for watched, previous in previous_ending.items():
            signal.signal(watched, previous)
        signal.signal(REPEAT_SIGNAL, previous_repeat)
        if previous_int is signal.default_int_handler:
            signal.signal(signal.SIGINT, previous_int)
        _REQUESTED.clear()


_LAST_WORDS: list = []  # what a second SIGTERM does before the process ends (`last_words`)
_STOP_NOTES: list = []  # told of the first Ctrl-C or SIGTERM (`stop_requests_noted`)
_REQUESTED: list[type[KeyboardInterrupt]] = []  # interrupts asked for while `sigterm_interrupts` is on
_SIGINT_MEANS: list[type[KeyboardInterrupt]] = []  # what a SIGINT raises instead of KeyboardInterrupt (`interrupt_as`)
_WATCHING: list[int] = []  # while `sigterm_interrupts` is on: the process it is on in
REPEAT_S = 5.0  # a step in the main thread that has not ended this long after an interrupt gets it again
REPEAT_SIGNAL = getattr(signal, "SIGUSR2", signal.SIGTERM)
_STEPS: list[int] = []  # the number of the step running in the main thread, while one does
_REPEATING: set[int] = set()  # the steps whose interrupt is being repeated
_LEFT: set[threading.Thread] = set()  # threads an interrupted step left
_count = 0


def _default_sigterm_in_forks() -> None:
    """A process forked from the run's (a worker of its own cluster, a pool a step starts) ends on
    SIGTERM at once. With `terminated` inherited, a Python handler that runs only between bytecodes,
    a SIGTERM that came just before a blocking wait in C was never acted on: a pool worker about to
    wait on its queue's lock outlived `Pool.terminate`, which then waited for it for ever (1 run in
    about 40 of a step using `with multiprocessing.Pool(2)` on Dask)."""
    if os.getpid() in _WATCHING:
        return
    for watched in (signal.SIGTERM, getattr(signal, "SIGHUP", signal.SIGTERM)):
        if getattr(signal.getsignal(watched), "in_forks_default", False):
            signal.signal(watched, signal.SIG_DFL)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_default_sigterm_in_forks)


def interrupt_as(kind: type[KeyboardInterrupt]) -> None:
    """From now on a SIGINT under `sigterm_interrupts` raises `kind` (a KeyboardInterrupt of its own
    reason: the run process of a server that went away sends itself one)."""
    _SIGINT_MEANS.append(kind)


def _requested(kind: type[KeyboardInterrupt]) -> None:
    if not _REQUESTED:
        _tell(_STOP_NOTES, kind)
    _REQUESTED.append(kind)
    if _STEPS and _STEPS[-1] not in _REPEATING:  # one repeater per step
        _REPEATING.add(_STEPS[-1])
        threading.Thread(target=_repeat_until_ended, args=(_STEPS[-1],), name="nbscale-interrupt",
                         daemon=True).start()


def _repeat_until_ended(step: int) -> None:
    main = threading.main_thread().ident
    while True:
        time.sleep(REPEAT_S)
        if not _STEPS or _STEPS[-1] != step or not _REQUESTED:
            return
        signal.pthread_kill(main, REPEAT_SIGNAL)


@contextmanager
def last_words(say) -> Iterator[None]:
    """While the block runs, a second SIGTERM calls `say()` before the process ends. It runs in a
    signal handler, whatever the main thread was doing: it must take no lock the program holds,
    and wait for nothing long."""
    with _listening(_LAST_WORDS, say):
        yield


@contextmanager
def stop_requests_noted(note) -> Iterator[None]:
    """While the block runs, the first Ctrl-C or SIGTERM calls `note(kind)` (KeyboardInterrupt or
    Terminated) before it interrupts: a process killed before it has cancelled can still be known
    to have been asked to stop. A signal handler too, as for `last_words`."""
    with _listening(_STOP_NOTES, note):
        yield


@contextmanager
def uninterrupted() -> Iterator[None]:
    """Ctrl-C, SIGTERM and a repeated interrupt wait until the block ends, then do what they would
    have done. For code that an exception raised at any point breaks beyond repair: a C++ extension
    module's import (nanobind turns a KeyboardInterrupt raised while it makes its enums into a C++
    exception, and the process aborts). Only the main thread runs signal handlers: elsewhere,
    nothing to hold back."""
    signals = tuple(dict.fromkeys((signal.SIGINT, signal.SIGTERM, REPEAT_SIGNAL)))
    handlers = {signum: signal.getsignal(signum) for signum in signals}
    if threading.current_thread() is not threading.main_thread() or None in handlers.values():
        yield  # (None: a handler set outside Python, which could not be put back)
        return
    arrived: list[int] = []
    for signum in signals:
        signal.signal(signum, lambda signum, frame: arrived.append(signum))
    try:
        yield
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
        for signum in dict.fromkeys(arrived):
            _deliver(signum, handlers[signum])


def _deliver(signum: int, handler) -> None:
    """What `handler` (as `signal.getsignal` gives it) does with a signal that came meanwhile."""
    if callable(handler):
        handler(signum, None)
    elif handler == signal.SIG_DFL:
        os.kill(os.getpid(), signum)


@contextmanager
def _listening(listeners: list, listener) -> Iterator[None]:
    listeners.append(listener)
    try:
        yield
    finally:
        listeners.remove(listener)


def _tell(listeners: list, *args) -> None:
    for listener in reversed(listeners):
        try:
            listener(*args)
        except Exception:  # noqa: BLE001 - the signal does what it does either way
            pass


@contextmanager
def step_in_main_thread() -> Iterator[None]:
    """The block runs one step's code in the main thread: after an interrupt, it is interrupted
    again until it ends (see the module's docstring)."""
    global _count
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _count += 1
    _STEPS.append(_count)
    before = set(threading.enumerate())
    try:
        yield
    finally:
        _STEPS.pop()
        if _REQUESTED:
            _LEFT.update(t for t in threading.enumerate() if t not in before and not t.daemon)



def exit_without_waiting(code: int) -> None:
    """Exit with `code`. When an interrupted step left threads running (a pool whose workers loop),
    interpreter exit would wait for them for ever: end the process at once then, streams flushed."""
    if not any(t.is_alive() for t in _LEFT):
        sys.exit(code)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)



def raised_by_code(exc: BaseException) -> bool:
    """Whether a KeyboardInterrupt in the main thread came from the step's own code (`raise
    KeyboardInterrupt`), not from Ctrl-C or SIGTERM: known only while `sigterm_interrupts` watches
    the signals (the CLI, the server's runs), and this process is the one it watches."""
    return isinstance(exc, KeyboardInterrupt) and watching_this_process() and not _REQUESTED


def watching_this_process() -> bool:
    """Whether `sigterm_interrupts` is on in this process: it is nbscale's own (the CLI, the
    server's run process), not a program that called `nbscale.run()`."""
    return bool(_WATCHING) and _WATCHING[-1] == os.getpid()


def note_steps_stopped() -> None:
    """This process (a Dask worker) is about to be restarted to stop the step it runs: the step's
    child processes end first, and its code may then end on its own before the restart."""
    _STEPS_STOPPED.append(True)


def step_stop_requested() -> bool:
    """Whether the step now ending was asked to stop while it ran: Ctrl-C or SIGTERM in this process
    (`interrupt_requested`), or its worker is being restarted to stop it (`note_steps_stopped`).
    What it made then may be cut short, and is not kept."""
    return interrupt_requested() is not None or bool(_STEPS_STOPPED)


_STEPS_STOPPED: list[bool] = []


def interrupt_requested() -> type[KeyboardInterrupt] | None:
    """The interrupt (KeyboardInterrupt, Terminated) asked for in this process while
    `sigterm_interrupts` is on, or None: a step that swallowed it (`except BaseException`) has not
    cancelled the run, and its engine must, before the next step starts."""
    return _REQUESTED[-1] if _REQUESTED else None
