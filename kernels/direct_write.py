"""Writing a large store file through the page cache or past it (``O_DIRECT``), whichever is faster.

A value written through the page cache needs as much fresh memory again as the value. Where that
memory is ready, the write is a copy (3 GB/s and more) and the disk catches up later; on a virtual
machine whose host hands memory out on first touch it costs as much as the bytes are large (0.4
GB/s here), and the run waits for it before it returns. Written with ``O_DIRECT`` from two reused,
aligned buffers, the same bytes cost disk time only (about 2 GB/s here): a thread of the file's
own writes one while the other fills (the copy and the digest are then no longer added to the
disk's time), and a full buffer is handed to it at once, to write as soon as the one before ends:
the disk does not wait for two threads to hand a buffer over. Which of the two is faster is only
known by trying: the writer times each full buffer it writes, takes the faster way, and tries the
other again now and then, less and less often while it keeps losing. What a process learned of a
file system's two ways holds for its next file there (a Dask worker writes one file per value):
that file starts the faster way.

Small files (under one buffer) and the unaligned tail of a large one always go through the page
cache: a direct write would wait on the disk. A file system that refuses direct writes (tmpfs,
some FUSE mounts) gets ordinary ones; so does a marshaller that seeks back over what it wrote.
"""

from __future__ import annotations

import errno
import io
import mmap
import os
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from .disk_room import DiskRoom

try:
    import fcntl
except ImportError:  # Windows: no O_DIRECT either
    fcntl = None

BUFFER = 8 * 2**20  # bytes per timed write: a multiple of any block size, as O_DIRECT needs
FAST_ENOUGH = 2e9  # bytes/s through the page cache above which the other way is not tried
RETRY_FIRST = 8  # full buffers written the faster way before the other is timed again
RETRY_MOST = 256  # the longest wait (2 GiB) after the other way lost again and again
IN_FLIGHT = 2  # full buffers in the file's thread at most: one being written, the next one waiting
# (the caller fills the first again once it is written: two buffers in all)
_O_DIRECT = getattr(os, "O_DIRECT", 0) if fcntl is not None else 0


@dataclass
class _Ways:
    """What this process learned of one file system: each way's bytes/s, as last timed."""

    rate: dict = field(default_factory=dict)  # direct (bool) → bytes/s of its last full buffer
    retry_after: int = RETRY_FIRST  # full buffers the faster way before the slower one is timed again
    since_tried: int = 0
    direct_refused: bool = False  # the file system takes no direct writes


_learned: dict[int, _Ways] = {}  # st_dev → what writes there taught
_learned_lock = threading.Lock()  # the store writes several files at once, each in its own thread


def _ways_of(fd: int) -> _Ways:
    device = os.fstat(fd).st_dev
    with _learned_lock:
        return _learned.setdefault(device, _Ways())


class DirectFileWriter(io.RawIOBase):
    """A write-only file for the store that writes each full buffer the faster way it has seen."""

    def __init__(self, path: str, keep_room: bool = True):
        super().__init__()
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
        self._pid = os.getpid()  # a forked copy of this writer is not its process's to write with
        self._buffer: mmap.mmap | None = None  # page-aligned, filling; made once a file needs it
        self._filled = 0
        self._position = 0  # where the bytes handed on so far end
        self._direct = False  # O_DIRECT is set on the descriptor now
        self._writer: ThreadPoolExecutor | None = None  # writes full buffers; made at the first one
        self._writing: deque[tuple[Future, mmap.mmap]] = deque()  # in the thread, with their buffers, oldest first
        self._failed = False  # a write failed (raised here): the file is lost, nothing more is written
        self._lost = False  # a write in the thread failed: the thread writes nothing more
        self._ways = _ways_of(self._fd)
        self._may_go_direct = bool(_O_DIRECT) and not self._ways.direct_refused
        self._rate: dict[bool, float] = {}  # bytes/s of this file's last full buffer each way
        # a cache's file never takes the disk's last bytes (`keep_room`); a KFP task's output may
        self._room = DiskRoom(self._fd) if keep_room else None

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        if self._failed:
            raise OSError(errno.EIO, "an earlier write of this file failed")
        view = memoryview(data).cast("B")
        total = view.nbytes
        if self._room is not None:
            self._room.take(total, unwritten=self._filled + BUFFER * sum(not f.done() for f, _ in self._writing))
        if not self._may_go_direct:
            self._drain()  # what is buffered goes first (a write in the thread may just have been refused)
            self._write_all(view)
            self._position += total
            return total
        while view.nbytes:
            if self._buffer is None:
                self._buffer = self._next_buffer()
            take = min(view.nbytes, BUFFER - self._filled)
            self._buffer[self._filled:self._filled + take] = view[:take]
            self._filled += take
            view = view[take:]
            if self._filled == BUFFER:
                self._hand_on()
        return total

    def tell(self) -> int:
        return self._position + self._filled

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence == io.SEEK_CUR and offset == 0:
            return self.tell()
        # From here on every write is an ordinary one: a direct write needs aligned offsets.
        self._may_go_direct = False
        self._drain()
        self._position = os.lseek(self._fd, offset, whence)
        return self._position

    def flush(self) -> None:
        pass  # what is gathered goes out as one full buffer, or at close

    def close(self) -> None:
        if self.closed:
            return
        if os.getpid() != self._pid:  # a forked child's copy: the file and the writing thread are the parent's
            self._closed_here()
            return
        try:
            self._drain()
        finally:
            try:
                self._finish()
            finally:
                if self._writer is not None:  # the descriptor is never closed under a write
                    self._writer.shutdown(wait=True)
                self._closed_here()

    def _closed_here(self) -> None:
        os.close(self._fd)
        if self._room is not None:
            self._room.close()
        # Dropped, not closed: a profiler holding a frame of ours (distributed samples every
        # thread's stack) keeps slices of them alive a moment longer, and close() would raise.
        self._buffer = None
        self._writing.clear()
        super().close()

    def _direct_next(self) -> bool:
        """Whether the next full buffer goes past the page cache."""
        if not self._may_go_direct:
            return False
        ways = self._ways
        cached, direct = ways.rate.get(False), ways.rate.get(True)
        if cached is None or (direct is None and cached >= FAST_ENOUGH):
            return False
        if direct is None:
            return True
        faster = direct > cached
        ways.since_tried += 1
        if ways.since_tried >= ways.retry_after:
            ways.since_tried = 0
            return not faster
        return faster

    def _hand_on(self, ordinary: bool = False) -> None:
        """Write what is buffered: a full buffer in the writer's thread while the next one fills, the
        faster way; a part (the tail, a small file), or any buffer when `ordinary`, here and now
        through the page cache, once the thread has written what it was given."""
        if not self._filled:
            return
        full = self._filled == BUFFER and not ordinary
        if not full:
            self._finish()  # in order
        if self._failed:  # the file is lost (the store removes it): no bytes more at a wrong offset
            self._filled = 0
            return
        data = memoryview(self._buffer)[:self._filled]
        start, self._position, self._filled = self._position, self._position + self._filled, 0
        if not full:
            self._set_direct(False)
            self._write_or_fall_back(data, start)
            return
        if self._writer is None:
            self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nbscale-direct-write")
        future = self._writer.submit(self._write_timed, data, start)
        self._writing.append((future, self._buffer))
        self._buffer = None

    def _next_buffer(self) -> mmap.mmap:
        """A buffer to fill: a new one while fewer than `IN_FLIGHT` are in the thread, else the
        oldest one's, once it is written."""
        if len(self._writing) < IN_FLIGHT:
            return mmap.mmap(-1, BUFFER)
        return self._finish(keep=IN_FLIGHT - 1)

    def _drain(self) -> None:
        """Everything handed on or buffered is written, and the descriptor takes ordinary writes,
        when this returns."""
        self._hand_on(ordinary=True)
        self._finish()
        self._set_direct(False)

    def _finish(self, keep: int = 0) -> mmap.mmap | None:
        """Wait for the writes in the thread, oldest first, until `keep` are left; return the buffer
        of the last one waited for. A failed write's error is raised here, once. Interrupted
        (Ctrl-C), a write is still waited for by the next call: its buffer is not filled again
        under it."""
        freed = None
        while len(self._writing) > keep:
            future, freed = self._writing[0]
            try:
                future.result()
            except BaseException:
                if future.done():  # (the writes after it write nothing: `_write_timed`)
                    self._writing.popleft()
                    self._failed = True
                raise
            self._writing.popleft()
        return freed

    def _write_timed(self, data: memoryview, start: int) -> None:
        """In the file's thread: write a full buffer the way the rates known as it starts say (the
        buffer written just before it timed: a page cache that turned slow is left at once)."""
        if self._lost:  # an earlier write failed: nothing at a wrong offset
            return
        try:
            self._set_direct(self._direct_next())
            began = time.perf_counter()
            self._write_or_fall_back(data, start)
        except BaseException:
            self._lost = True
            raise
        self._timed(self._direct, BUFFER / max(time.perf_counter() - began, 1e-9))

    def _timed(self, direct: bool, rate: float) -> None:
        """Keep a full buffer's rate; a slower way timed again that lost again waits twice as long
        for its next try (a page cache that is slow on this machine stays slow), one that won is
        the faster way from now on."""
        self._rate[direct] = rate
        ways = self._ways
        before, other = ways.rate.get(direct), ways.rate.get(not direct)
        ways.rate[direct] = rate
        if before is not None and other is not None and before < other:  # the slower way's retry
            ways.retry_after = (min(2 * ways.retry_after, RETRY_MOST) if rate < other else RETRY_FIRST)

    def _write_or_fall_back(self, data: memoryview, start: int) -> None:
        """Write `data` at `start` (where the descriptor stands)."""
        try:
            self._write_all(data)
        except OSError as exc:
            if not self._direct or exc.errno != errno.EINVAL:
                raise
            self._may_go_direct = False  # the file system takes the flag but not the writes
            self._ways.direct_refused = True
            self._set_direct(False)
            os.lseek(self._fd, start, io.SEEK_SET)
            self._write_all(data)

    def _set_direct(self, on: bool) -> None:
        if on == self._direct:
            return
        flags = fcntl.fcntl(self._fd, fcntl.F_GETFL)
        try:
            fcntl.fcntl(self._fd, fcntl.F_SETFL, flags | _O_DIRECT if on else flags & ~_O_DIRECT)
        except OSError:
            if not on:
                raise
            self._may_go_direct = False  # no direct writes on this file system
            self._ways.direct_refused = True
            return
        self._direct = on

    def _write_all(self, view: memoryview) -> None:
        while view.nbytes:
            view = view[os.write(self._fd, view):]
