"""The store's file writer: the same bytes land whichever way each buffer goes."""

import errno
import os
import signal
import threading
import time

import numpy as np
import pytest

from nbscale.kernels import direct_write
from nbscale.kernels.direct_write import BUFFER, IN_FLIGHT, DirectFileWriter

needs_o_direct = pytest.mark.skipif(not direct_write._O_DIRECT, reason="no O_DIRECT on this system")


@pytest.fixture(autouse=True)
def nothing_learned_yet(monkeypatch):
    """Each test starts as a fresh process: no file system's ways timed yet."""
    monkeypatch.setattr(direct_write, "_learned", {})


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
    monkeypatch.setattr(direct_write, "RETRY_FIRST", 2)
    data = _payload(12 * BUFFER + 77)
    writer = _write(tmp_path / "f", data, 16 * 2**20)
    assert set(writer._rate) == {False, True}  # both ways were timed
    assert (tmp_path / "f").read_bytes() == data


def test_fast_page_cache_writes_never_go_direct(tmp_path, monkeypatch):
    monkeypatch.setattr(direct_write, "FAST_ENOUGH", 0.0)
    writer = _write(tmp_path / "f", _payload(4 * BUFFER), BUFFER)
    assert set(writer._rate) == {False}


def _header_filled_in_afterwards(path, nbytes: int) -> None:
    """Write `nbytes`, seek back to write a header over bytes 5-10, append a tail; check the file."""
    data = bytearray(_payload(nbytes))
    with DirectFileWriter(str(path)) as f:
        f.write(data)
        f.seek(5)
        f.write(b"HEADER")  # unaligned: O_DIRECT would refuse it (EINVAL)
        assert f.tell() == 11
        f.seek(0, os.SEEK_END)
        f.write(b"tail")
    data[5:11] = b"HEADER"
    assert path.read_bytes() == bytes(data) + b"tail"


def test_a_seek_back_is_honoured_and_later_writes_are_ordinary(tmp_path):
    _header_filled_in_afterwards(tmp_path / "f", 2 * BUFFER + 10)


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


@needs_o_direct
def test_a_file_starts_the_way_an_earlier_file_on_the_same_file_system_found_faster(tmp_path):
    # what the first file of a Dask worker taught: past the page cache is far faster here (so much
    # that a direct write slowed down by a busy machine is still the faster way)
    direct_write._learned[os.stat(tmp_path).st_dev] = direct_write._Ways(rate={False: 1e6, True: 2e9})
    writer = _write(tmp_path / "f", _payload(3 * BUFFER), BUFFER)
    assert set(writer._rate) == {True}  # no buffer of this file went through the page cache


def test_the_slower_way_is_tried_less_and_less_often_while_it_keeps_losing(tmp_path):
    with DirectFileWriter(str(tmp_path / "f")) as writer:
        writer._may_go_direct = True
        ways = writer._ways
        ways.rate.update({False: 4e8, True: 2e9})
        tries = []
        for turn in range(1, 8 + 16 + 32 + 1):
            if not writer._direct_next():
                tries.append(turn)
                writer._timed(False, 4e8)  # the page cache lost again
        assert tries == [8, 8 + 16, 8 + 16 + 32]
        assert ways.retry_after == 64
        writer._timed(True, 2e9)
        while writer._direct_next():
            pass
        writer._timed(False, 5e9)  # this time it won: it is the faster way now, the other is tried soon
        assert ways.retry_after == direct_write.RETRY_FIRST
        assert writer._direct_next() is False


def test_the_wait_between_tries_is_bounded(tmp_path):
    with DirectFileWriter(str(tmp_path / "f")) as writer:
        ways = writer._ways
        ways.rate.update({False: 4e8, True: 2e9})
        for _ in range(20):
            ways.rate[False] = 3e8
            writer._timed(False, 4e8)
        assert ways.retry_after == direct_write.RETRY_MOST


def _first_write_waits(monkeypatch) -> tuple[threading.Event, list]:
    """os.write as the writer calls it, its first call waiting (up to 10 s) for the event returned;
    the list gets the thread that made that call."""
    release, first = threading.Event(), []
    real_write = os.write

    def write(fd, data):
        if not first:
            first.append(threading.current_thread())
            assert release.wait(10)
        return real_write(fd, data)

    monkeypatch.setattr(direct_write.os, "write", write)
    return release, first


@needs_o_direct
def test_the_next_buffer_fills_while_the_last_one_is_written(tmp_path, monkeypatch):
    release, writers = _first_write_waits(monkeypatch)
    data = _payload(3 * BUFFER + 5)
    f = DirectFileWriter(str(tmp_path / "f"))
    f.write(data[:BUFFER])  # full: handed to the file's thread, which waits in os.write
    f.write(data[BUFFER:BUFFER + 100])  # so this returns before that write ends
    assert not release.is_set()
    assert writers and writers[0] is not threading.current_thread()
    assert f.tell() == BUFFER + 100
    release.set()
    f.write(data[BUFFER + 100:])
    f.close()
    assert (tmp_path / "f").read_bytes() == data


@needs_o_direct
def test_the_thread_writes_the_next_full_buffer_as_soon_as_the_last_one_is_written(tmp_path, monkeypatch):
    # the disk does not wait for the caller to come back and hand the next one over
    assert IN_FLIGHT >= 2
    release, _ = _first_write_waits(monkeypatch)
    data = _payload(IN_FLIGHT * BUFFER + 100)
    f = DirectFileWriter(str(tmp_path / "f"))
    f.write(data[:IN_FLIGHT * BUFFER])  # returns while the first write waits
    assert not release.is_set()
    release.set()
    deadline = time.monotonic() + 10
    while os.stat(tmp_path / "f").st_size < IN_FLIGHT * BUFFER and time.monotonic() < deadline:
        time.sleep(0.01)
    assert os.stat(tmp_path / "f").st_size == IN_FLIGHT * BUFFER  # written with no call of ours
    f.write(data[IN_FLIGHT * BUFFER:])
    f.close()
    assert (tmp_path / "f").read_bytes() == data


@needs_o_direct
def test_the_buffers_handed_on_after_a_failed_write_are_not_written(tmp_path, monkeypatch):
    release, calls, real_write = threading.Event(), [], os.write

    def write(fd, data):
        calls.append(len(data))
        if len(calls) == 1:
            assert release.wait(10)
            raise OSError(errno.EIO, "Input/output error")
        return real_write(fd, data)

    monkeypatch.setattr(direct_write.os, "write", write)
    f = DirectFileWriter(str(tmp_path / "f"))
    f.write(_payload(IN_FLIGHT * BUFFER))  # the second waits in the thread behind the first
    release.set()
    with pytest.raises(OSError, match="Input/output"):
        f.close()
    assert calls == [BUFFER]  # not the second one, at the offset where the first should have ended
    assert os.stat(tmp_path / "f").st_size == 0


@needs_o_direct
def test_an_error_of_the_threads_write_is_raised_by_close_and_the_descriptor_closed(tmp_path, monkeypatch):
    def write(fd, data):
        time.sleep(0.2)  # still writing when close() begins
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(direct_write.os, "write", write)
    f = DirectFileWriter(str(tmp_path / "f"))
    f.write(_payload(BUFFER))
    fd = f._fd
    with pytest.raises(OSError, match="Input/output"):
        f.close()
    assert f.closed
    with pytest.raises(OSError):
        os.fstat(fd)  # closed after the write ended, not under it


def _direct_learned_faster(folder):
    direct_write._learned[os.stat(folder).st_dev] = direct_write._Ways(rate={False: 4e8, True: 2e9})


@needs_o_direct
def test_a_seek_back_after_a_direct_buffer_writes_through_the_page_cache(tmp_path):
    # a marshaller that fills in a length once it knows it: its last buffer had gone past the page cache
    _direct_learned_faster(tmp_path)
    _header_filled_in_afterwards(tmp_path / "f", BUFFER)


@needs_o_direct
def test_a_direct_write_refused_while_the_next_buffer_fills_leaves_later_writes_ordinary(tmp_path, monkeypatch):
    # the file system takes the flag but refuses the first direct write, late: the next buffer was
    # decided (direct) while that write was still going
    _direct_learned_faster(tmp_path)
    real_write, refused = os.write, []

    def write(fd, data):
        if not refused and direct_write.fcntl.fcntl(fd, direct_write.fcntl.F_GETFL) & direct_write._O_DIRECT:
            refused.append(True)
            time.sleep(0.2)
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_write(fd, data)

    monkeypatch.setattr(direct_write.os, "write", write)
    data = _payload(2 * BUFFER + 2**20 + 3)
    with DirectFileWriter(str(tmp_path / "f")) as f:
        f.write(data[:BUFFER])
        f.write(data[BUFFER:2 * BUFFER])
        f.write(bytes(data[2 * BUFFER:]))  # an ordinary write, from memory O_DIRECT would refuse
    assert refused and (tmp_path / "f").read_bytes() == data


class _Interrupted(BaseException):
    pass


@needs_o_direct
def test_an_interrupt_while_waiting_for_a_write_does_not_refill_the_buffer_under_it(tmp_path, monkeypatch):
    release, _ = _first_write_waits(monkeypatch)

    def interrupt(signum, frame):
        raise _Interrupted

    previous = signal.signal(signal.SIGUSR1, interrupt)
    data = _payload((IN_FLIGHT + 2) * BUFFER + 7)
    try:
        f = DirectFileWriter(str(tmp_path / "f"))
        f.write(data[:BUFFER])  # in the thread, which waits for `release`
        f.write(data[BUFFER:IN_FLIGHT * BUFFER])  # handed to the thread too: every buffer is in use
        threading.Timer(0.3, signal.pthread_kill, (threading.main_thread().ident, signal.SIGUSR1)).start()
        with pytest.raises(_Interrupted):
            f.write(data[IN_FLIGHT * BUFFER:(IN_FLIGHT + 1) * BUFFER])  # waits for the first write's buffer
    finally:
        signal.signal(signal.SIGUSR1, previous)
    threading.Timer(0.3, release.set).start()
    f.write(data[IN_FLIGHT * BUFFER:])  # the caller goes on: the buffer being written is not filled again
    f.close()
    assert (tmp_path / "f").read_bytes() == data


@needs_o_direct
def test_after_a_failed_write_the_file_takes_no_more_bytes(tmp_path, monkeypatch):
    def write(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(direct_write.os, "write", write)
    f = DirectFileWriter(str(tmp_path / "f"))
    f.write(_payload(IN_FLIGHT * BUFFER))
    with pytest.raises(OSError, match="No space"):
        f.write(_payload(BUFFER))  # waits for the first one's buffer: that write failed
    with pytest.raises(OSError, match="an earlier write of this file failed"):
        f.write(b"more")
    f.close()  # the error was said once: closing says nothing more
    assert f.closed


@needs_o_direct
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # (3.12: fork with a thread running)
def test_a_forked_child_closing_its_copy_of_the_writer_neither_waits_nor_writes(tmp_path, monkeypatch):
    release, _ = _first_write_waits(monkeypatch)
    data = _payload(BUFFER + 100)
    f = DirectFileWriter(str(tmp_path / "f"))
    f.write(data[:BUFFER])  # its write waits in the thread, which the child does not have
    f.write(data[BUFFER:])
    child = os.fork()
    if child == 0:
        f.close()
        os._exit(0)
    deadline = time.monotonic() + 10
    while (ended := os.waitpid(child, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    if ended[0] == 0:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
    release.set()
    f.close()
    assert ended[0] == child and os.waitstatus_to_exitcode(ended[1]) == 0, "the child hung closing its copy"
    assert (tmp_path / "f").read_bytes() == data


def test_files_written_at_once_on_one_file_system_each_land_byte_for_byte(tmp_path, monkeypatch):
    # the store writes a step's files in threads of their own, which share what the file system taught
    monkeypatch.setattr(direct_write, "RETRY_FIRST", 1)  # the two ways change places often
    data = [_payload(3 * BUFFER + 1000 * i) for i in range(4)]
    errors = []

    def write(i):
        try:
            _write(tmp_path / f"f{i}", data[i], 5 * 2**20)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert [(tmp_path / f"f{i}").read_bytes() == data[i] for i in range(4)] == [True] * 4
    assert len(direct_write._learned) == 1  # one file system, learned once
