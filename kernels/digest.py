"""Digests of stored files, computed while the bytes pass: xxh3-128 as a marshaller writes or reads.

xxh3 runs at memory speed, so checking every artifact on every read costs little next to the
read itself. The wrappers hash what passes through them in order; a marshaller that jumps
around (Parquet reads its footer first) makes the reader hash the file once more at the end.
"""

from __future__ import annotations

import io

import xxhash

DIGEST = "xxh3_128"
CHUNK = 16 * 2**20
new_hash = xxhash.xxh3_128  # the hash object of DIGEST (bench/bench_digest.py swaps it to compare)


class DigestWriter(io.RawIOBase):
    """Passes writes on to a file and hashes them on the way: no second pass over the data."""

    def __init__(self, f):
        super().__init__()
        self.f, self.size, self.in_order = f, 0, True
        self._hash = new_hash()

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        view = _byte_view(data)
        self.f.write(view)
        if self.in_order:
            self._hash.update(view)
        self.size += view.nbytes
        return view.nbytes

    def seekable(self) -> bool:
        return self.f.seekable()

    def seek(self, offset: int, whence: int = 0) -> int:
        before = self.f.tell()
        self.f.seek(offset, whence)
        if self.f.tell() != before:
            self.in_order = False  # the digest must then be taken from the file once written
        return self.f.tell()

    def tell(self) -> int:
        return self.f.tell()

    def flush(self) -> None:
        self.f.flush()

    def digest(self) -> str:
        return f"{DIGEST}:{self._hash.hexdigest()}"


class DigestReader(io.RawIOBase):
    """Reads a file for a marshaller and hashes the bytes it reads in order; `digest()` then
    reads on from where it stopped (or reads it all again, if the marshaller jumped ahead)."""

    def __init__(self, f):
        super().__init__()
        self.f, self.pos, self.hashed, self.jumped = f, f.tell(), 0, False
        self._hash = new_hash()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        data = self.f.read() if size is None or size < 0 else self.f.read(size)
        self._saw(data)
        return data

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        n = self.f.readinto(view) or 0
        self._saw(view[:n])
        return n

    def readline(self, size: int | None = -1) -> bytes:
        data = self.f.readline(-1 if size is None else size)
        self._saw(data)
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        self.f.seek(offset, whence)
        self.pos = self.f.tell()
        return self.pos

    def tell(self) -> int:
        return self.pos

    def _saw(self, data) -> None:
        end = self.pos + len(data)
        if self.pos > self.hashed:
            self.jumped = True  # a gap: the bytes skipped are hashed by `digest`
        elif end > self.hashed and not self.jumped:
            self._hash.update(memoryview(data)[self.hashed - self.pos:])
            self.hashed = end
        self.pos = end

    def digest(self) -> str:
        """The digest of the whole file (`hashed` is then its size)."""
        if self.jumped:
            self._hash = new_hash()
            self.hashed, self.jumped = 0, False
        self.f.seek(self.hashed)
        while chunk := self.f.read(CHUNK):
            self._hash.update(chunk)
            self.hashed += len(chunk)
        self.pos = self.hashed
        return f"{DIGEST}:{self._hash.hexdigest()}"


def file_digest(f) -> tuple[str, int]:
    """Digest and size of an open binary file, read from its start."""
    f.seek(0)
    reader = DigestReader(f)
    return reader.digest(), reader.hashed


def _byte_view(data) -> memoryview:
    view = memoryview(data)
    if not view.c_contiguous:
        return memoryview(view.tobytes())
    return view if view.format == "B" and view.ndim == 1 else view.cast("B")
