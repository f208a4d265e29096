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

from .errors import StoreFull

RESERVE_SHARE = 0.05  # of the file system's size, left free
RESERVE_MOST = 2**30
# bytes taken between looks at the free space: files written at once (parallel steps' values) each
# see what the others took at their next look, so together they pass their room by this much each at most
RECHECK = 8 * 2**20


def reserve(total: int) -> int:
    """Bytes of a file system of `total` bytes that the store leaves free."""
    return min(int(total * RESERVE_SHARE), RESERVE_MOST)


class DiskRoom:
    """The bytes a file open at `fd` may still take before its file system's reserve."""

    def __init__(self, fd: int):
        self._fd = fd
        self._left: float | None = None  # bytes that may be written before the next look
        self._since = 0  # bytes taken since the last look
        self._first: float | None = None  # free bytes at the first look
        self._taken = 0  # bytes taken in all

    def take(self, nbytes: int, unwritten: int = 0) -> None:
        """Count `nbytes` about to be written; `unwritten`: bytes taken earlier that are not on the
        disk yet (a writing thread's buffers). Raises StoreFull when they do not fit."""
        if self._left is None or nbytes > self._left or self._since >= RECHECK:
            free, kept = self._measure()
            if self._first is None:
                self._first = free
            # never more than the first look left, less what this file took: a file system may
            # count written bytes against its free space only once they reach the disk
            self._left, self._since = min(free - unwritten, self._first - self._taken) - kept, 0
            if nbytes > self._left:
                raise StoreFull(free, kept)
        self._left -= nbytes
        self._since += nbytes
        self._taken += nbytes

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
