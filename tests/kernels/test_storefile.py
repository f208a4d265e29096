"""The run store's file: SQLite errors said plainly, moving a damaged file aside, noticing a deleted one."""

from __future__ import annotations

import os
import sqlite3

import pytest

from nbscale.kernels import storefile
from nbscale.kernels.errors import RunStoreCorrupt, RunStoreError, RunStoreReadOnly


def sqlite_error(path, statement="SELECT * FROM sqlite_master"):
    try:
        sqlite3.connect(path).execute(statement)
    except sqlite3.Error as exc:
        return exc
    raise AssertionError("no error")


def test_sqlite_errors_become_errors_that_say_what_is_wrong(tmp_path):
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"no database here " * 100)
    error = storefile.store_error(sqlite_error(garbage), garbage)
    assert isinstance(error, RunStoreCorrupt) and str(garbage) in str(error) and "--repair" in str(error)
    missing = tmp_path / "no" / "such" / "folder" / "runs.sqlite"
    error = storefile.store_error(sqlite_error(missing), missing)
    assert type(error) is RunStoreError and "cannot open the run store" in str(error)
    assert storefile.is_read_only(sqlite_error(missing))  # cannot open here: maybe only reading works
    # Python 3.10 has no error codes: the message decides
    read_only = storefile.store_error(sqlite3.OperationalError("attempt to write a readonly database"), missing)
    assert isinstance(read_only, RunStoreReadOnly) and "cannot write the run store" in str(read_only)
    assert not storefile.is_read_only(None) and not storefile.is_read_only(ValueError("readonly"))


def test_repair_moves_a_damaged_store_and_its_wal_files_aside_and_keeps_a_sound_one(tmp_path):
    sound = tmp_path / "sound.sqlite"
    sqlite3.connect(sound).execute("CREATE TABLE t (x)").connection.close()
    assert storefile.is_sound(sound) and storefile.repair(sound) is None and sound.exists()
    damaged = tmp_path / "runs.sqlite"
    for suffix, text in (("", "broken"), ("-wal", "wal"), ("-shm", "shm")):
        damaged.with_name(damaged.name + suffix).write_text(text * 100)
    assert not storefile.is_sound(damaged)
    moved = storefile.repair(damaged)
    assert moved.name.startswith("runs.sqlite.corrupt-") and moved.read_text() == "broken" * 100
    assert moved.with_name(moved.name + "-wal").read_text() == "wal" * 100  # SQLite finds it by this name
    assert not damaged.exists() and not damaged.with_name("runs.sqlite-wal").exists()
    damaged.write_text("broken again" * 100)
    again = storefile.repair(damaged)
    assert again != moved and again.exists() and moved.exists()  # a second repair the same second keeps both


def test_the_watch_notices_a_deleted_or_replaced_file(tmp_path):
    path = tmp_path / "runs.sqlite"
    path.write_text("x")
    watch = storefile.FileWatch(path)
    assert not watch.lost()
    path.unlink()
    assert watch.lost()
    path.write_text("a new file at the same path")
    assert watch.lost()
    watch.close()
    os.replace(path, tmp_path / "aside")
    watch = storefile.FileWatch(tmp_path / "aside")
    assert not watch.lost()
    watch.close()
    assert not storefile.FileWatch(tmp_path / "never").lost()  # nothing to watch: never lost


@pytest.mark.parametrize("immutable", [False, True])
def test_read_only_uris_open_for_reading(tmp_path, immutable):
    path = tmp_path / "runs.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE t (x)")
    db.commit()
    db.close()
    db = sqlite3.connect(storefile.read_only_uri(path, immutable), uri=True)
    assert db.execute("SELECT count(*) FROM t").fetchone() == (0,)
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        db.execute("INSERT INTO t VALUES (1)")
    db.close()
