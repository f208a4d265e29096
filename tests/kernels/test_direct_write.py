"""The store's file writer: the same bytes land whichever way each buffer goes."""

import errno
import os

import numpy as np
import pytest

from nbscale.kernels import direct_write
from nbscale.kernels.direct_write import BUFFER, DirectFileWriter

needs_o_direct = pytest.mark.skipif(not direct_write._O_DIRECT, reason="no O_DIRECT on this system")


def _payload(nbytes: int) -> bytes:
    return np.random.default_rng(nbytes).integers(0, 256, nbytes, dtype=np.uint8).tobytes()


def _write(path, data: bytes, piece: int) -> DirectFileWriter:
    with DirectFileWriter(str(path)) as f:
        for start in range(0, len(data), piece):
            assert f.write(data[start:start + piece]) == len(data[start:start + piece])
        assert f.tell() == len(data)
    return f


@pytest.mark.parametrize("nbytes", [0, 1, 4095, BUFFER - 1, BUFFER, 3 * BUFFER + 12345])
@pytest.mark.parametrize("piece", [1000, 5 * 2**20, 64 * 2**20])
def test_every_size_lands_byte_for_byte(tmp_path, nbytes, piece):
    data = _payload(nbytes)
    _write(tmp_path / "f", data, piece)
    assert (tmp_path / "f").read_bytes() == data


@needs_o_direct
def test_slow_page_cache_writes_make_it_try_direct_ones_and_the_bytes_are_the_same(tmp_path, monkeypatch):
    monkeypatch.setattr(direct_write, "FAST_ENOUGH", float("inf"))  # any page-cache write counts as slow
    monkeypatch.setattr(direct_write, "RETRY_EVERY", 2)
    data = _payload(12 * BUFFER + 77)
    writer = _write(tmp_path / "f", data, 16 * 2**20)
    assert set(writer._rate) == {False, True}  # both ways were timed
    assert (tmp_path / "f").read_bytes() == data


def test_fast_page_cache_writes_never_go_direct(tmp_path, monkeypatch):
    monkeypatch.setattr(direct_write, "FAST_ENOUGH", 0.0)
    writer = _write(tmp_path / "f", _payload(4 * BUFFER), BUFFER)
    assert set(writer._rate) == {False}


def test_a_seek_back_is_honoured_and_later_writes_are_ordinary(tmp_path):
    data = bytearray(_payload(2 * BUFFER + 10))
    with DirectFileWriter(str(tmp_path / "f")) as f:
        f.write(data)
        f.seek(5)
        f.write(b"HEADER")
        assert f.tell() == 11
        f.seek(0, os.SEEK_END)
        f.write(b"tail")
    data[5:11] = b"HEADER"
    assert (tmp_path / "f").read_bytes() == bytes(data) + b"tail"


@needs_o_direct
def test_a_file_system_that_refuses_direct_writes_gets_ordinary_ones(tmp_path, monkeypatch):
    # Stand-in for a file system (some FUSE mounts) that takes the flag and fails the writes.
    monkeypatch.setattr(direct_write, "FAST_ENOUGH", float("inf"))
    real_write = os.write

    def write(fd, data):
        if direct_write.fcntl.fcntl(fd, direct_write.fcntl.F_GETFL) & direct_write._O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_write(fd, data)

    monkeypatch.setattr(direct_write.os, "write", write)
    data = _payload(5 * BUFFER + 3)
    writer = _write(tmp_path / "f", data, BUFFER)
    assert True not in writer._rate
    assert (tmp_path / "f").read_bytes() == data


def test_an_error_other_than_a_refused_direct_write_is_raised(tmp_path, monkeypatch):
    def write(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(direct_write.os, "write", write)
    with pytest.raises(OSError, match="No space"):
        _write(tmp_path / "f", _payload(BUFFER + 1), BUFFER)


def test_the_file_gets_the_permissions_open_would_give(tmp_path):
    old = os.umask(0o027)
    try:
        _write(tmp_path / "f", b"x", 1)
    finally:
        os.umask(old)
    assert (tmp_path / "f").stat().st_mode & 0o777 == 0o640
