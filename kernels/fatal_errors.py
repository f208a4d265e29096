"""Where a step was when its process died without a Python exception.

Compiled code that crashes (a segmentation fault in a C extension, an abort, a bus error) ends the
process that runs the step at once: a Dask worker ("the worker running this step died"), or under
the local engine the `nbscale run` process itself. No exception is raised, so no traceback points at
the step's cell. Each process that runs steps has Python's `faulthandler` write the stacks of its
threads into a file of its own when that happens (`watch`), and a step's `os._exit(...)` on a
worker writes its stack there before the process exits (`exit_noted`). Whoever then reports the
death reads it (`fatal_reason`): "Segmentation fault at cell 4, line 2 (in string_at)".

The file is `faults/<host>-<pid>.log` in the user's state folder: known from the process's host and
pid alone, so a run store that finds a run's process gone can read it too. A process that exits
normally removes its file; files of processes that are gone are removed by the next process to
start watching (empty ones at once, the others after `KEEP_S`). A process whose `faulthandler` is
on already (`python -X faulthandler`, `PYTHONFAULTHANDLER`) keeps it as it is. Files are read only
on the host that wrote them, at most `READ_LIMIT` bytes.
"""

from __future__ import annotations

import atexit
import faulthandler
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from .contract import user_state_dir
from .liveness import process_alive

__all__ = ["died_of", "exit_noted", "fatal_reason", "fault_file", "noting_exit", "watch"]

KEEP_S = 7 * 24 * 3600.0  # how long the file of a process that died of a fatal error stays
READ_LIMIT = 256 * 1024
REASON_LIMIT = 400  # characters of the one line told
_FAULT_NAME = re.compile(r"^faults/[A-Za-z0-9._-]+-\d+\.log$")
# the file name ipykernel gives the code of a cell it runs (the papermill engine's kernels)
_IPYKERNEL_CELL = re.compile(r"ipykernel_\d+[/\\]\d+\.py$")
_FRAME = re.compile(r'^\s+File "(.*)", line (\d+) in (.*)$')
_EXIT_HEADER = "Fatal Python error: os._exit({code}) called by the step's code"
# (pid, the open file, its path, its echo's `tee` or None) of the process that watches
_watching: tuple[int, object, str, subprocess.Popen | None] | None = None
_lock = threading.Lock()  # (a worker's threads may start steps at once)
_NO_LINKS = getattr(os, "O_NOFOLLOW", 0)


def fault_file(pid: int | None = None, host: str | None = None) -> Path:
    """The file a process (by default this one) writes its stacks into when it dies."""
    return user_state_dir() / "faults" / f"{_host_label(host)}-{os.getpid() if pid is None else pid}.log"


def _host_label(host: str | None = None) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", host or socket.gethostname())


def died_of(pid, host) -> str | None:
    """`fatal_reason` of the process `pid` of `host` (a run's owner, a KFP task's process), found by
    its file's name; None for values that name no process (a damaged record)."""
    if not isinstance(pid, int) or isinstance(pid, bool) or not isinstance(host, str) or not host:
        return None
    return fatal_reason(fault_file(pid, host), host)


def watch(echo: bool = False) -> str | None:
    """Have this process write its threads' stacks into `fault_file()` if it dies of a fatal
    error, from now on (once per process; again in a forked child). The file's path, or None where
    it cannot be written or `faulthandler` was on already. `echo`: onto standard error as well (the
    terminal of `nbscale run`, where the shell says only "Segmentation fault"; a KFP pod's log)."""
    with _lock:
        return _watch(echo)


def _watch(echo: bool) -> str | None:
    global _watching
    if _watching is not None and _watching[0] == os.getpid():
        return _watching[2]
    if faulthandler.is_enabled() and _watching is None:
        return None  # the user's own (`-X faulthandler`): left alone
    path = fault_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        _remove_stale(path.parent)
        # (not through a link someone put there: the open truncates what it names)
        handle = open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _NO_LINKS, 0o600), "w")  # noqa: SIM115
    except OSError:
        return None
    handle, tee = _echoed(handle) if echo else (handle, None)
    faulthandler.enable(file=handle, all_threads=True)
    _watching = (os.getpid(), handle, str(path), tee)
    atexit.register(_forget, os.getpid(), path)
    return str(path)


def _echoed(handle) -> tuple[object, subprocess.Popen | None]:
    """A pipe into a `tee` of this process's own that copies what comes into `handle`'s file and
    onto standard error, and the `tee`; `handle` itself where there is no `tee`. (faulthandler writes to one file,
    from a signal handler: a crash leaves no time for more.) The `tee` is in a session of its own,
    so that the Ctrl-C of a terminal, which `nbscale run` answers by cancelling, does not end it;
    it ends when this process does, its pipe then closed."""
    program = shutil.which("tee")
    if program is None or not os.path.isdir("/dev/fd"):
        return handle, None
    read, write = os.pipe()
    try:
        tee = subprocess.Popen([program, "-a", f"/dev/fd/{handle.fileno()}"], stdin=read, stdout=2,
                               stderr=subprocess.DEVNULL, pass_fds=(handle.fileno(),), start_new_session=True)
    except OSError:
        os.close(write)
        return handle, None
    finally:
        os.close(read)
    handle.close()
    return open(write, "w"), tee  # noqa: SIM115 - faulthandler's, for the process's life


def _after_fork() -> None:
    """A forked child (a step's `multiprocessing` worker) that crashed would write into its parent's
    file, which would then tell a later death of the parent by it: the child writes nowhere until it
    watches itself."""
    global _lock
    _lock = threading.Lock()  # (another thread may have held it as the process forked)
    if _watching is not None and _watching[0] != os.getpid():
        faulthandler.disable()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def _forget(pid: int, path: Path) -> None:
    if os.getpid() != pid:  # (a forked child runs its parent's atexit functions too)
        return
    faulthandler.disable()
    path.unlink(missing_ok=True)
    tee = _watching[3] if _watching is not None else None
    if tee is not None:  # its pipe closed, it ends
        _watching[1].close()
        try:
            tee.wait(timeout=1)
        except subprocess.TimeoutExpired:  # (a forked child holds the pipe still: it ends with it)
            pass


def _remove_stale(folder: Path) -> None:
    host = _host_label()
    for path in folder.glob(f"{host}-*.log"):
        pid = path.stem[len(host) + 1:]
        try:
            if not pid.isdigit() or process_alive(int(pid), None):
                continue
            stat = path.stat()
            if stat.st_size == 0 or time.time() - stat.st_mtime > KEEP_S:
                path.unlink()
        except OSError:
            continue


@contextmanager
def exit_noted():
    """`os._exit(code)` in the step's code (on a worker, where it ends the worker) writes the step's
    stack into the watched file first, so that its death names the cell and line."""
    real = os._exit
    os._exit = noting_exit(real)
    try:
        yield
    finally:
        os._exit = real


def noting_exit(real):
    """`real` (`os._exit`), writing the caller's stack into the watched file before it exits."""
    owner = os.getpid()

    def noted(code):
        if os.getpid() == owner and _watching is not None and _watching[0] == owner:
            try:
                handle = _watching[1]
                handle.write(_EXIT_HEADER.format(code=code) + "\n\n")
                handle.flush()
                faulthandler.dump_traceback(file=handle, all_threads=False)
            except (OSError, ValueError):
                pass
        real(code)

    return noted


def fatal_reason(path: str | os.PathLike | None, host: str | None = None) -> str | None:
    """What the file a dead process wrote says, in one line: "Segmentation fault at cell 4, line 2
    (in string_at)"; None when it says nothing (the process died otherwise: killed, out of memory),
    or was written on another host than this one."""
    if not isinstance(path, (str, os.PathLike)) or (host is not None and host != socket.gethostname()):
        return None
    if not _FAULT_NAME.match(f"{os.path.basename(os.path.dirname(path))}/{os.path.basename(path)}"):
        return None  # (a record on a shared scheduler names it: no other file is read)
    try:
        with open(os.open(path, os.O_RDONLY | _NO_LINKS), errors="replace") as handle:
            text = handle.read(READ_LIMIT)
    except OSError:
        return None
    header = next((line for line in text.splitlines() if line.startswith("Fatal Python error: ")), None)
    if header is None:
        return None
    reason = header[len("Fatal Python error: "):].strip()
    frames = [frame for frame in _frames(text) if frame[0] != __file__]  # (`exit_noted`'s own)
    where = _cell_frame(frames)
    if where is not None:
        reason += f" at {where}"
    inner = frames[0] if frames else None
    if inner is not None and not _is_cell(inner[0]):
        reason += f" (in {inner[2]}, {os.path.basename(inner[0])}:{inner[1]})"
    return reason if len(reason) <= REASON_LIMIT else reason[:REASON_LIMIT - 1] + "…"


def _frames(text: str) -> list[tuple[str, int, str]]:
    """The frames (file, line, function), innermost first, of the thread that died: the section
    `faulthandler` heads "Current thread", else the only one ("Stack")."""
    sections: list[tuple[str, list]] = []
    for line in text.splitlines():
        if line.startswith(("Current thread", "Thread ", "Stack ")):
            sections.append((line, []))
        elif sections and (match := _FRAME.match(line)):
            sections[-1][1].append((match.group(1), int(match.group(2)), match.group(3)))
    chosen = next((frames for head, frames in sections if head.startswith(("Current thread", "Stack "))), None)
    if chosen is None or not any(_is_cell(f[0]) for f in chosen):  # a crash in another thread than the step's
        chosen = next((frames for _, frames in sections if any(_is_cell(f[0]) for f in frames)), chosen)
    return chosen or []


def _is_cell(filename: str) -> bool:
    from .tracebacks import is_cell_code

    return is_cell_code(filename) or _IPYKERNEL_CELL.search(filename) is not None


def _cell_frame(frames) -> str | None:
    from ..compiler.notebook import cell_label
    from .tracebacks import cell_location

    for filename, line, _ in frames:
        location = cell_location(filename, line)
        if location is not None:
            return cell_label(*location)
        if _IPYKERNEL_CELL.search(filename):  # (the papermill engine's kernel: it knows which cell ran)
            return f"line {line} of the cell it ran"
    return None
