"""A store file never takes its disk's last bytes (kernels/disk_room.py). Real files on the test's
own disk; the reserve is set so that only a few MiB of the disk's real free space are left to them."""

from __future__ import annotations

import errno
import os
import threading

import numpy as np
import pytest

from nbscale.kernels import disk_room
from nbscale.kernels.direct_write import DirectFileWriter
from nbscale.kernels.errors import StoreFull
from nbscale.kernels.store import ArtifactStore

MiB = 2**20


def leave_room(monkeypatch, folder, room: int) -> None:
    """Set the reserve so that `room` bytes of the disk's free space at `folder` may be taken now."""
    st = os.statvfs(folder)
    free = st.f_bavail * st.f_frsize
    monkeypatch.setattr(disk_room, "reserve", lambda total: free - room)


def test_the_reserve_is_a_twentieth_of_the_disk_and_at_most_a_gibibyte():
    assert disk_room.reserve(60 * 10**6) == 3 * 10**6
    assert disk_room.reserve(100 * 2**30) == 2**30


def test_a_store_file_stops_before_the_reserve_and_says_how_much_was_free(tmp_path, monkeypatch):
    leave_room(monkeypatch, tmp_path, 32 * MiB)
    chunk = os.urandom(MiB) * 8
    written = 0
    with pytest.raises(StoreFull) as caught:
        with DirectFileWriter(str(tmp_path / "f")) as f:
            for _ in range(64):  # 512 MiB, were nothing checked
                f.write(chunk)
                written += len(chunk)
    assert 16 * MiB <= written <= 32 * MiB  # (the disk may count a few MiB more than the bytes: its metadata)
    error = caught.value
    assert isinstance(error, OSError) and error.errno == errno.ENOSPC  # a storage failure, as a full disk's
    assert "MB free" in str(error) and "--store" in str(error)


def test_bytes_not_yet_on_the_disk_count_against_the_room(tmp_path, monkeypatch):
    leave_room(monkeypatch, tmp_path, 8 * MiB)
    with open(tmp_path / "f", "wb") as f:
        room = disk_room.DiskRoom(f.fileno())
        room.take(2 * MiB, unwritten=0)
    with open(tmp_path / "g", "wb") as f:
        room = disk_room.DiskRoom(f.fileno())
        with pytest.raises(StoreFull):
            room.take(2 * MiB, unwritten=7 * MiB)  # (a writing thread's buffers)


def test_a_file_counts_what_it_took_even_where_the_disk_does_not_yet(tmp_path, monkeypatch):
    # nothing is written here: a file system that counts bytes only once they reach the disk
    # shows the same free space at every look, and the file still stops at its room
    leave_room(monkeypatch, tmp_path, 8 * MiB)
    with open(tmp_path / "f", "wb") as f:
        room = disk_room.DiskRoom(f.fileno())
        for _ in range(4):
            room.take(2 * MiB)
        with pytest.raises(StoreFull):
            room.take(2 * MiB)


def test_files_written_at_once_share_the_room(tmp_path, monkeypatch):
    # two parallel steps' values: each file alone fits, both together do not
    leave_room(monkeypatch, tmp_path, 32 * MiB)
    chunk = os.urandom(MiB)
    written, refused = [], []

    def write(name):
        try:
            with DirectFileWriter(str(tmp_path / name)) as f:
                for _ in range(24):
                    f.write(chunk)
                    written.append(1)
        except StoreFull:
            refused.append(name)

    threads = [threading.Thread(target=write, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert refused  # not both
    assert len(written) * MiB <= 32 * MiB


def test_files_of_one_process_share_the_room_even_where_the_disk_does_not_count_them_yet(tmp_path, monkeypatch):
    # nothing is written: each file's look at the disk saw room for itself alone, and two values
    # written at once passed the reserve (a CI run found it, on a disk slow to count written bytes)
    leave_room(monkeypatch, tmp_path, 32 * MiB)
    with open(tmp_path / "a", "wb") as a, open(tmp_path / "b", "wb") as b:
        first, second = disk_room.DiskRoom(a.fileno()), disk_room.DiskRoom(b.fileno())
        first.take(20 * MiB)
        with pytest.raises(StoreFull):
            second.take(20 * MiB)
        second.take(10 * MiB)
        first.close()
        second.close()
    with open(tmp_path / "c", "wb") as c:  # (once they are closed, a file looks at the disk afresh)
        disk_room.DiskRoom(c.fileno()).take(20 * MiB)


def test_a_value_the_disk_has_no_room_for_is_not_stored_and_leaves_nothing(tmp_path, monkeypatch):
    store = ArtifactStore(str(tmp_path / "artifacts"))
    key = "sha256:" + "a" * 64
    leave_room(monkeypatch, tmp_path, 16 * MiB)
    with pytest.raises(StoreFull):
        store.put(key, {"big": np.ones(8 * MiB)}, [["big"]], "make")  # 64 MiB
    assert not store.has(key)
    left = [p for p in (tmp_path / "artifacts").rglob("*") if p.is_file()]
    assert left == []  # no half-written file, no temporary folder's file
    store.put(key, {"small": np.ones(1000)}, [["small"]], "make")  # what fits is stored
    assert store.get(key)["small"].sum() == 1000
