"""Writing a large store file through the page cache or past it (``O_DIRECT``), whichever is faster.

A value written through the page cache needs as much fresh memory again as the value. Where that
memory is ready, the write is a copy (3 GB/s and more) and the disk catches up later; on a
virtual machine whose host hands memory out on first touch it costs as much as the bytes are
large (0.4 GB/s here), and the run waits for it before it returns. Written with ``O_DIRECT``
from one reused, aligned buffer, the same bytes cost disk time only (about 1 GB/s here). Which
of the two is faster is only known by trying: the writer times each full buffer it writes,
takes the faster way, and tries the other again now and then.

Small files (under one buffer) and the unaligned tail of a large one always go through the page
cache: a direct write would wait on the disk. A file system that refuses direct writes (tmpfs,
some FUSE mounts) gets ordinary ones; so does a marshaller that seeks back over what it wrote.
"""

from __future__ import annotations

import errno
import io
import mmap
import os
import time

try:
    import fcntl
except ImportError:  # Windows: no O_DIRECT either
    fcntl = None

BUFFER = 8 * 2**20  # bytes per timed write: a multiple of any block size, as O_DIRECT needs
FAST_ENOUGH = 2e9  # bytes/s through the page cache above which the other way is not tried
RETRY_EVERY = 8  # full buffers written the faster way before the other is timed again
_O_DIRECT = getattr(os, "O_DIRECT", 0) if fcntl is not None else 0


class DirectFileWriter(io.RawIOBase):
    """A write-only file for the store that writes each full buffer the faster way it has seen."""

    def __init__(self, path: str):
        super().__init__()
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
        self._buffer: mmap.mmap | None = None  # page-aligned; made once a file needs it
        self._filled = 0
        self._position = 0
        self._direct = False  # O_DIRECT is set on the descriptor now
        self._may_go_direct = bool(_O_DIRECT)
        self._rate: dict[bool, float] = {}  # bytes/s of the last full buffer written each way
        self._since_tried = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        total = view.nbytes
        if not self._may_go_direct:
            self._write_all(view)
            return total
        while view.nbytes:
            if self._buffer is None:
                self._buffer = mmap.mmap(-1, BUFFER)
            take = min(view.nbytes, BUFFER - self._filled)
            self._buffer[self._filled:self._filled + take] = view[:take]
            self._filled += take
            view = view[take:]
            if self._filled == BUFFER:
                self._write_buffer(direct=self._direct_next())
        return total

    def tell(self) -> int:
        return self._position + self._filled

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence == io.SEEK_CUR and offset == 0:
            return self.tell()
        # From here on every write is an ordinary one: a direct write needs aligned offsets.
        self._write_buffer(direct=False)
        self._may_go_direct = False
        self._position = os.lseek(self._fd, offset, whence)
        return self._position

    def flush(self) -> None:
        pass  # what is gathered goes out as one full buffer, or at close

    def close(self) -> None:
        if self.closed:
            return
        try:
            self._write_buffer(direct=False)
        finally:
            os.close(self._fd)
            # Dropped, not closed: a profiler holding a frame of ours (distributed samples every
            # thread's stack) keeps slices of it alive a moment longer, and close() would raise.
            self._buffer = None
            super().close()

    def _direct_next(self) -> bool:
        """Whether the next full buffer goes past the page cache."""
        if not self._may_go_direct:
            return False
        cached, direct = self._rate.get(False), self._rate.get(True)
        if cached is None or (direct is None and cached >= FAST_ENOUGH):
            return False
        if direct is None:
            return True
        self._since_tried += 1
        faster = direct > cached
        if self._since_tried >= RETRY_EVERY:
            self._since_tried = 0
            return not faster
        return faster

    def _write_buffer(self, direct: bool) -> None:
        if not self._filled:
            return
        data = memoryview(self._buffer)[:self._filled]
        if direct != self._direct:
            self._set_direct(direct)
        began = time.perf_counter()
        self._write_or_fall_back(data)
        if data.nbytes == BUFFER:
            self._rate[self._direct] = BUFFER / max(time.perf_counter() - began, 1e-9)
        self._filled = 0

    def _write_or_fall_back(self, data: memoryview) -> None:
        try:
            self._write_all(data)
        except OSError as exc:
            if not self._direct or exc.errno != errno.EINVAL:
                raise
            self._may_go_direct = False  # the file system takes the flag but not the writes
            self._set_direct(False)
            os.lseek(self._fd, self._position, io.SEEK_SET)
            self._write_all(data)

    def _set_direct(self, on: bool) -> None:
        flags = fcntl.fcntl(self._fd, fcntl.F_GETFL)
        try:
            fcntl.fcntl(self._fd, fcntl.F_SETFL, flags | _O_DIRECT if on else flags & ~_O_DIRECT)
        except OSError:
            if not on:
                raise
            self._may_go_direct = False  # no direct writes on this file system
            return
        self._direct = on

    def _write_all(self, view: memoryview) -> None:
        while view.nbytes:
            written = os.write(self._fd, view)
            self._position += written
            view = view[written:]
