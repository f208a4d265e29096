"""Staging folders: names that tell their writer, and the sweep that removes dead writers' leftovers."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import fsspec

from nbscale.kernels.staging import TEMP_PREFIX, exchange, sweep, temp_name, writer_alive


def _age(path, seconds):
    old = time.time() - seconds
    for folder, _, files in os.walk(path):
        for name in files:
            os.utime(os.path.join(folder, name), (old, old))
        os.utime(folder, (old, old))


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_names_tell_the_writer():
    name = temp_name()
    assert name.startswith(TEMP_PREFIX) and name != temp_name()
    assert writer_alive(name)  # this process
    host, _, rest = name[len(TEMP_PREFIX):].partition("-")
    dead = f"{TEMP_PREFIX}{host}-{_dead_pid()}-{rest.split('-')[1]}"
    assert not writer_alive(dead)
    assert not writer_alive(f"{TEMP_PREFIX}otherhost-{os.getpid()}-abc")  # elsewhere: age decides


def test_sweep_removes_only_old_folders_of_gone_writers(tmp_path):
    fs = fsspec.filesystem("file")
    host, _, rest = temp_name()[len(TEMP_PREFIX):].partition("-")
    folders = {
        "old-dead": f"{TEMP_PREFIX}{host}-{_dead_pid()}-aaa",
        "old-alive": f"{TEMP_PREFIX}{host}-{os.getpid()}-bbb",
        "young-dead": f"{TEMP_PREFIX}{host}-{_dead_pid()}-ccc",
        "old-file-growing": f"{TEMP_PREFIX}otherhost-1-ddd",
        "not-temp": "sha256",
    }
    for label, name in folders.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "0-a.pkl").write_bytes(b"x")
        if label.startswith("old") or label == "not-temp":
            _age(tmp_path / name, 2 * 3600)
    os.utime(tmp_path / folders["old-file-growing"] / "0-a.pkl")  # a file still being written
    removed = sweep(fs, str(tmp_path))
    assert [os.path.basename(p) for p in removed] == [folders["old-dead"]]
    assert sorted(os.listdir(tmp_path)) == sorted(n for label, n in folders.items() if label != "old-dead")


def test_sweep_removes_a_link_left_under_a_temp_name_never_what_it_names(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim.txt").write_text("keep me")
    _age(outside, 2 * 3600)
    (tmp_path / "store").mkdir()
    link = tmp_path / "store" / f"{TEMP_PREFIX}otherhost-1-eee"
    link.symlink_to(outside)
    assert [os.path.basename(p) for p in sweep(fsspec.filesystem("file"), str(tmp_path / "store"))] == [link.name]
    assert not os.listdir(tmp_path / "store") and (outside / "victim.txt").read_text() == "keep me"


def test_exchange_swaps_two_folders_in_one_step(tmp_path):
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "v").write_text("2")
    (tmp_path / "final").mkdir()
    (tmp_path / "final" / "v").write_text("1")
    assert exchange(str(tmp_path / "new"), str(tmp_path / "final"))  # Linux: renameat2 is there
    assert (tmp_path / "final" / "v").read_text() == "2" and (tmp_path / "new" / "v").read_text() == "1"
    assert not exchange(str(tmp_path / "new"), str(tmp_path / "gone"))  # nothing to swap with: the caller renames
