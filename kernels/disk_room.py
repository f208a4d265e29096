"""Room a store file may take on its disk: the cache never fills a file system.

A cache write that takes a disk's last bytes makes everything else writing there fail at the same
moment: the run store ("database or disk is full": the run fails although its steps succeeded), the
steps' own output files, other programs. A store file leaves a reserve free (5% of the file system,
at most 1 GiB) and gives up (`StoreFull`) rather than write into it: the value is still handed on
in memory, and only its cache entry is lost, with a warning. A KFP task's output artifact is no cache
(`ArtifactFolder.keeps_room`): its readers cannot do without it, so only a full disk stops it.
"""

from __future__ import annotations

import os
import threading
import weakref

from .errors import StoreFull

RESERVE_SHARE = 0.05  # of the file system's size, left free
RESERVE_MOST = 2**30
# bytes taken between looks at the free space: files written at once by other processes (parallel
# steps' values on other workers) each see what the others took at their next look, so together they
# pass their room by this much each at most (in one process they share it exactly: `_Shared`)
RECHECK = 8 * 2**20


def reserve(total: int) -> int:
    """Bytes of a file system of `total` bytes that the store leaves free."""
    return min(int(total * RESERVE_SHARE), RESERVE_MOST)


class _Shared:
    """The files of this process taking room on one file system now: never more, all together, than
    the free space at the first one's first look, less what they took. A file system may count
    written bytes against its free space only once they reach the disk: two files written at once
    each saw room for itself alone, and together passed it."""

    _open: dict[int, _Shared] = {}  # device → its files' share
    _lock = threading.RLock()  # (held by `DiskRoom.take` from its look to its count: two threads see each other)

    def __init__(self, first: float):
        self.first, self.taken, self.files = first, 0, 0

    @classmethod
    def joined(cls, device: int, free: float) -> _Shared:
        with cls._lock:
            shared = cls._open.setdefault(device, cls(free))
            shared.files += 1
            return shared

    def left(self) -> float:
        return self.first - self.taken

    def took(self, nbytes: int) -> None:
        with self._lock:
            self.taken += nbytes

    def leave(self, device: int) -> None:
        with self._lock:
            self.files -= 1
            if not self.files:
                self._open.pop(device, None)


def _forgotten_in_forks() -> None:
    """A forked child's files are its own: its parent's (and the lock, maybe held as it forked) are not."""
    _Shared._open, _Shared._lock = {}, threading.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forgotten_in_forks)


class DiskRoom:
    """The bytes a file open at `fd` may still take before its file system's reserve; `close()` when
    the file is."""

    def __init__(self, fd: int):
        self._fd = fd
        self._left: float | None = None  # bytes that may be written before the next look
        self._since = 0  # bytes taken since the last look
        self._first: float | None = None  # free bytes at the first look
        self._taken = 0  # bytes taken in all
        self._kept = 0  # bytes the file system keeps free, as last looked at
        self._shared: _Shared | None = None  # the share of this process's files on its file system
        self._leave = None  # leaves the share (once: closed, or dropped unclosed)

    def take(self, nbytes: int, unwritten: int = 0) -> None:
        """Count `nbytes` about to be written; `unwritten`: bytes taken earlier that are not on the
        disk yet (a writing thread's buffers). Raises StoreFull when they do not fit."""
        with _Shared._lock:
            self._take(nbytes, unwritten)

    def _take(self, nbytes: int, unwritten: int) -> None:
        shared = self._shared
        if self._left is None or nbytes > self._left or self._since >= RECHECK or \
                (shared is not None and nbytes > shared.left() - self._kept):  # (the others took it)
            free, self._kept = self._measure()
            if self._first is None:
                self._first = free
                shared = self._shared = self._joined(free)
            # never more than the first look left, less what this file took: a file system may
            # count written bytes against its free space only once they reach the disk
            self._left, self._since = min(free - unwritten, self._first - self._taken,
                                          shared.left() if shared is not None else free) - self._kept, 0
            if nbytes > self._left:
                raise StoreFull(free, self._kept)
        self._left -= nbytes
        self._since += nbytes
        self._taken += nbytes
        if shared is not None:
            shared.took(nbytes)

    def close(self) -> None:
        if self._leave is not None:
            self._leave()

    def _joined(self, free: float) -> _Shared | None:
        try:
            device = os.fstat(self._fd).st_dev
        except OSError:
            return None
        shared = _Shared.joined(device, free)
        self._leave = weakref.finalize(self, shared.leave, device)
        return shared

    def _measure(self) -> tuple[float, int]:
        """(free bytes, bytes to leave free) of the file system; no limit where it does not say."""
        try:
            st = os.fstatvfs(self._fd)
        except (OSError, AttributeError):  # (Windows has no statvfs)
            return float("inf"), 0
        total = st.f_blocks * st.f_frsize
        if not total:  # a file system that reports no size (some FUSE mounts)
            return float("inf"), 0
        return st.f_bavail * st.f_frsize, reserve(total)
