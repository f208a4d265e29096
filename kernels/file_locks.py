"""Runs that write the same files take turns.

Two runs at once that write one file (a notebook run twice with other parameters, two notebooks
writing one output) interleave their writes: a step of one run reads the other's version, and
the artifact store records what it made from it under its own parameters, a cached result that
lies from then on. So a run holds a lock on each file its steps write, append to or change
(`file_versions.written`, the names the compiler finds), from before it looks up its cache until
its end is recorded; another run writing one of them waits, saying which run holds it. Runs that
write different files, or none, still run at once.

The locks are `flock` locks on files in the user's state folder (one per file written, named by a
digest of its real path): the kernel releases them when the process holding them ends, so a run
that was killed never leaves one behind. Each takes a file descriptor, so a run that writes more
than MAX_FILE_LOCKS files locks its folder instead, alone; a run that writes fewer shares that
lock of its folder with the others (taken first, so the two kinds exclude each other). Acquired
in one order (the folder, then the files sorted), so two runs never wait for each other. Waiting
polls, so Ctrl-C (and the server's Cancel) stops a run that waits. Where locks cannot be had (no
`fcntl`, a state folder that cannot be written) the run goes on unlocked.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from .children import OWNER_ENV
from .contract import user_state_dir

try:
    import fcntl
except ImportError:  # not on Windows
    fcntl = None

POLL_S = 0.1
MAX_FILE_LOCKS = 128


def locks_folder() -> Path:
    return user_state_dir() / "file-locks"


class FileLocks:
    """The locks of one run on the files it writes (`acquire`, then `release` as the run ends)."""

    def __init__(self):
        self.fds: list[int] = []

    def acquire(self, paths, folder: str, holder: dict, say) -> None:
        """Lock each of `paths` (as steps name them: relative to the run's `folder`), waiting for the
        runs that hold one; `holder`: what a waiting run is told of this one; `say(message)` once per
        file waited for."""
        if fcntl is None or not paths:
            return
        real = sorted({os.path.realpath(os.path.join(folder, os.path.expanduser(p))) for p in paths})
        try:
            locks_folder().mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError:
            return
        many = len(real) > MAX_FILE_LOCKS
        where = os.path.realpath(folder)
        self._lock("folder:" + where, fcntl.LOCK_EX if many else fcntl.LOCK_SH, holder, say,
                   lambda who: f"{who} writing files in {where}")
        for path in [] if many else real:
            self._lock(path, fcntl.LOCK_EX, holder, say, lambda who, path=path: f"{who}, which writes {path} too,")

    def _lock(self, what: str, kind: int, holder: dict, say, waited_for) -> None:
        fd = self._open(what)
        if fd is None:
            return
        if _locked(fd, kind):
            if kind == fcntl.LOCK_EX:
                _note_holder(fd, holder)
            return
        # who holds it is known when one run holds it alone, which a shared lock's taker waits for
        named = kind == fcntl.LOCK_SH or not what.startswith("folder:")
        holders = _holder_dict(fd) if named else {}
        who = _described(holders) if named else "other runs"
        if _inside(holders):  # waiting would wait for ever: the holder waits for this run's end
            say(f"not waiting for {waited_for(who)} to end: this run runs inside one of its steps")
            return
        say(f"waiting for {waited_for(who)} to end: runs that write one file take turns")
        _wait_for(fd, kind)
        if kind == fcntl.LOCK_EX:
            _note_holder(fd, holder)

    def _open(self, what: str) -> int | None:
        name = hashlib.sha256(what.encode("utf-8", "surrogateescape")).hexdigest()[:32] + ".lock"
        try:
            fd = os.open(locks_folder() / name, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            return None
        self.fds.append(fd)  # (released with the others, also when the wait is interrupted)
        return fd

    def release(self) -> None:
        fds, self.fds = self.fds, []
        for fd in fds:
            try:
                os.close(fd)  # (closing the file releases its lock)
            except OSError:
                pass


def _locked(fd: int, kind: int) -> bool:
    """Whether the lock was taken now; True also where the file system has no locks (an NFS
    mount without them: ENOLCK), so the run goes on unlocked."""
    try:
        fcntl.flock(fd, kind | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:
        pass
    return True


def _wait_for(fd: int, kind: int) -> None:
    while not _locked(fd, kind):
        time.sleep(POLL_S)


def _inside(holder: dict) -> bool:
    """Whether this process runs inside a step of the holder's run (`nbscale.run()` in a step, or a
    process a step started): the step's owner mark in the environment names that run's owner."""
    owner = holder.get("owner")
    return bool(owner) and os.environ.get(OWNER_ENV, "").startswith(f"{owner}:")


def _note_holder(fd: int, holder: dict) -> None:
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)
    except OSError:
        pass


def _holder_dict(fd: int) -> dict:
    """What the run holding the lock noted of itself (`_note_holder`)."""
    try:
        holder = json.loads(os.pread(fd, 65536, 0) or b"{}")
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


def _described(holder: dict) -> str:
    """"run 1a2b3c4d of nb.ipynb (process 123)", from what the holder noted."""
    if not holder.get("run"):
        return "another run"
    return (f"run {str(holder['run'])[:8]} of {Path(str(holder.get('notebook', ''))).name or 'a notebook'} "
            f"(process {holder.get('pid')})")
