"""Tests for nbscale.kernels.dependencies: real files, real imports, real environment, real threads."""

from __future__ import annotations

import ctypes
import glob
import importlib.util
import json
import os
import pathlib
import pickle
import platform
import py_compile
import queue
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest
from conftest import C_CONNECT, install_library, make_notebook, rewrite_keeping_mtime

from nbscale.compiler.ir import Prelude, Step
from nbscale.kernels.dependencies import (
    _REAL_ACCESS,
    _REAL_LSTAT,
    _REAL_OS_OPEN,
    _REAL_POOL_SUBMIT,
    _REAL_SCANDIR,
    _REAL_STAT,
    _REAL_THREAD_START,
    RecordingEnviron,
    drew_unseeded,
    forget_stale_bytecode,
    local_module_names,
    note_loaded_distributions,
    numpy_random_state,
    outdated_distributions,
    outdated_modules,
    record,
    shadowed_modules,
    stale_bytecode,
    watch_imports,
)
from nbscale.kernels.executor import execute_step
from nbscale.kernels.fingerprints import check
from nbscale.kernels.runner import RunOptions, run_notebook


@pytest.fixture
def folder(tmp_path):
    """A notebook folder with a data file."""
    nb = tmp_path / "nb"
    nb.mkdir()
    (nb / "data.csv").write_text("a,b\n1,2\n")
    return nb


@pytest.fixture
def local_module(folder, monkeypatch):
    """write(source) → the name of a new module beside the notebook, importable; removed afterwards."""
    monkeypatch.syspath_prepend(str(folder))
    names = []

    def write(source="def answer():\n    return 42\n"):
        name = f"helpers_{uuid.uuid4().hex[:8]}"
        (folder / f"{name}.py").write_text(source)
        names.append(name)
        return name

    yield write
    for name in names:
        sys.modules.pop(name, None)


# --- files ---------------------------------------------------------------------------------------


def test_files_read_and_written_are_recorded_as_absolute_paths(folder, monkeypatch):
    monkeypatch.chdir(folder)
    with record(str(folder)) as rec:
        with open("data.csv") as f:
            f.read()
        pathlib.Path("out.txt").write_text("result")
        os.close(os.open("data.csv", os.O_RDONLY))
        (folder / "sub").mkdir()
        os.chdir(folder / "sub")  # relative paths resolve against the cwd of the moment
        pathlib.Path("deeper.txt").write_text("x")
        pathlib.Path("../data.csv").read_text()
    assert rec.reads == {str(folder / "data.csv")}
    assert rec.writes == {str(folder / "out.txt"), str(folder / "sub" / "deeper.txt")}
    fp = rec.fingerprint()
    assert set(fp["files_read"]) == {"data.csv"}  # relative inside the notebook folder
    assert set(fp["files_written"]) == {"out.txt", "sub/deeper.txt"}
    assert fp["files_read"]["data.csv"]["size"] == 8


def test_a_file_named_by_a_text_the_step_made_is_read_unless_it_changed_while_the_step_ran(folder):
    (folder / "before.bin").write_text("old")
    (folder / "rewritten.bin").write_text("old")
    (folder / "nb.ipynb").write_text("{}")
    os.utime(folder / "before.bin", (1e9, 1e9))
    os.utime(folder / "rewritten.bin", (1e9, 1e9))
    time.sleep(0.05)  # (the file system's clock is coarse)
    libc = ctypes.CDLL(None)
    with record(str(folder), notebook="nb.ipynb") as rec:
        time.sleep(0.05)  # (what a step writes in its first clock tick is taken as read: harmless)
        fd = libc.open(str(folder / "rewritten.bin").encode(), os.O_WRONLY)  # C code: no audit event
        libc.write(fd, b"new content", 11)
        libc.close(fd)
        with open(folder / "run.log", "a") as log:  # a log it appends to is nothing
            log.write("line\n")
        assert not rec.writes and not rec.reads
    (folder / "handed.bin").write_text("old")
    os.utime(folder / "handed.bin", (1e9, 1e9))
    # a name it hands on (in a config a later step reads) is that step's to take, as a given text
    rec.mention_built([{"paths": ["before.bin", "rewritten.bin", "nb.ipynb", "absent.bin", "run.log"]},
                       "handed.bin"], handed_on=[{"inputs": ["handed.bin"]}])
    assert rec.reads == {str(folder / "before.bin")}  # unchanged since the step began: read
    assert rec.writes == {str(folder / "rewritten.bin")}  # changed meanwhile (its ctime): its product
    fp = rec.fingerprint()
    assert set(fp["files_read"]) == {"before.bin"} and set(fp["files_written"]) == {"rewritten.bin"}
    # maybe only listed, not read (`files = sorted(glob(...))`): kept without a digest of its content,
    # which could cost more than the step; so a touch alone is a change, as it cannot be ruled out
    assert fp["files_read"]["before.bin"]["digest"] is None and not check(fp, str(folder))
    os.utime(folder / "before.bin")
    assert [c.name for c in check(fp, str(folder))] == ["before.bin"]


def test_pandas_numpy_and_pickle_are_seen(folder):
    with record(str(folder)) as rec:
        pd.read_csv(folder / "data.csv")
        np.save(folder / "arr.npy", np.arange(3))
        np.load(folder / "arr.npy")
        with open(folder / "obj.pkl", "wb") as f:
            pickle.dump({"x": 1}, f)
        pd.DataFrame({"a": [1]}).to_feather(folder / "frame.feather")
        pd.read_feather(folder / "frame.feather")
    assert str(folder / "data.csv") in rec.reads
    assert {str(folder / n) for n in ("arr.npy", "obj.pkl", "frame.feather")} <= rec.writes
    fp = rec.fingerprint()
    assert "arr.npy" in fp["files_written"] and "arr.npy" not in fp["files_read"]  # a product


def test_renames_removals_and_sqlite_are_seen(folder):
    (folder / "old.txt").write_text("x")
    (folder / "gone.txt").write_text("x")
    with record(str(folder)) as rec:
        os.replace(folder / "old.txt", folder / "new.txt")
        os.remove(folder / "gone.txt")
        sqlite3.connect(folder / "db.sqlite").close()
    assert {str(folder / n) for n in ("old.txt", "new.txt", "gone.txt")} <= rec.writes
    assert str(folder / "db.sqlite") in rec.reads
    written = rec.fingerprint()["files_written"]
    assert written["gone.txt"] is None and written["new.txt"]["size"] == 1  # absence is a state



def test_rows_a_writer_holding_a_wal_database_open_commits_are_seen(folder):
    # WAL mode: commits land in db.sqlite-wal; db.sqlite keeps its size and time until a checkpoint
    writer = sqlite3.connect(folder / "db.sqlite")
    writer.execute("PRAGMA journal_mode = WAL")
    writer.execute("CREATE TABLE t (x)")
    writer.execute("INSERT INTO t VALUES (1)")
    writer.commit()
    try:
        with record(str(folder)) as rec:
            reader = sqlite3.connect(folder / "db.sqlite")
            assert reader.execute("SELECT sum(x) FROM t").fetchone() == (1,)
            reader.close()
        fp = json.loads(json.dumps(rec.fingerprint()))
        assert check(fp, str(folder)) == []
        writer.execute("INSERT INTO t VALUES (5)")
        writer.commit()
        assert [c.name for c in check(fp, str(folder))] == ["db.sqlite-wal"]
    finally:
        writer.close()

def test_interpreter_files_are_not_recorded(folder):
    with record(str(folder)) as rec:
        for path in (np.__file__, os.__file__, "/proc/self/status", os.devnull):
            with open(path, "rb") as f:
                f.read(10)
    assert rec.reads == set() and rec.writes == set()


def test_an_anonymous_temp_file_is_no_dependency(folder):
    with record(str(folder)) as rec:
        with tempfile.TemporaryFile() as f:  # opened through its folder: no name to depend on
            f.write(b"x")
    fp = rec.fingerprint()
    assert tempfile.gettempdir() not in fp["files_written"] and fp["files_read"] == {}


def test_only_nbscales_own_temp_folders_are_skipped(folder):
    """A user's folder under a name like nbscale's (`/tmp/nbscale-data-…`) holds dependencies."""
    users = tempfile.mkdtemp(prefix="nbscale-data-")
    own = [tempfile.mkdtemp(prefix=f"nbscale-ipython-{os.getpid()}-"),
           tempfile.mkdtemp(prefix="nbscale-papermill-a-b-")]
    try:
        for d in [users, *own]:
            pathlib.Path(d, "rows.csv").write_text("a\n1\n")
        with record(str(folder)) as rec:
            for d in [users, *own]:
                with open(os.path.join(d, "rows.csv")) as f:
                    f.read()
        assert [os.path.basename(os.path.dirname(p)) for p in rec.reads] == [os.path.basename(users)]
    finally:
        for d in [users, *own]:
            shutil.rmtree(d)


def test_a_module_run_from_its_bytecode_cache_depends_on_its_source(folder):
    """A module loaded from a file path (`importlib`, not kept in sys.modules) whose `.pyc` is valid
    opens only the `.pyc`, and runs the source's code: an edit of the source must show."""
    plugin = folder / "plugin.py"
    plugin.write_text("VAL = 1\n")
    py_compile.compile(str(plugin), cfile=importlib.util.cache_from_source(str(plugin)), doraise=True)
    with record(str(folder)) as rec:
        spec = importlib.util.spec_from_file_location("plugin_from_path", plugin)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    assert module.VAL == 1
    fp = json.loads(json.dumps(rec.fingerprint()))
    plugin.write_text("VAL = 22\n")
    assert [c.name for c in check(fp, str(folder))] == ["plugin.py"]


def test_a_missing_file_the_step_tried_is_recorded_as_absent(folder):
    with record(str(folder)) as rec:
        with pytest.raises(FileNotFoundError):
            open(folder / "later.csv")
    # named absolutely: kept under that name too
    assert rec.fingerprint()["files_read"] == {"later.csv": None, str(folder / "later.csv"): None}


def test_listings_are_recorded_but_not_those_of_imports(folder, local_module):
    (folder / "more.csv").write_text("a\n1\n")
    name = local_module()
    with record(str(folder)) as rec:
        __import__(name)  # the import system lists the folder: not the step's listing
    assert rec.listings == set()
    with record(str(folder)) as rec:
        sorted(folder.glob("*.csv"))
    assert rec.listings == {str(folder)}
    assert list(rec.fingerprint()["directories"]) == [".", str(folder)]


# --- changes while the step runs -----------------------------------------------------------------


def _another_hand(todo: queue.Queue) -> None:
    while True:
        action, done = todo.get()
        action()
        done.set()


_ANOTHER_HAND: queue.Queue = queue.Queue()
threading.Thread(target=_another_hand, args=(_ANOTHER_HAND,), daemon=True).start()  # before any recording


def elsewhere(action) -> None:
    """`action` by another hand, as another process would do it: a thread that ran before the
    step began, given work through no pool (a thread the step starts, and the work it hands to a
    pool, record into the step)."""
    done = threading.Event()
    _ANOTHER_HAND.put((action, done))
    assert done.wait(30)


def test_a_file_changed_by_another_hand_after_the_step_read_it_never_holds(folder):
    with record(str(folder)) as rec:
        old = (folder / "data.csv").read_text()
        elsewhere(lambda: (folder / "data.csv").write_text("a,b\n7,8\n9,9\n"))
    assert old == "a,b\n1,2\n"
    fp = rec.fingerprint()
    assert fp["changed_while_running"] == ["data.csv"]
    # its state at the end matches the file now, and yet the result came from the older data
    assert [c.text for c in check(fp, str(folder))] == [
        "data.csv changed while the step ran (it may have read either version)"]


def test_a_file_replaced_with_the_same_size_and_mtime_is_still_seen(folder):
    before = os.stat(folder / "data.csv")
    with record(str(folder)) as rec:
        (folder / "data.csv").read_text()

        def replace():  # an editor's atomic save that keeps the size and mtime
            (folder / "new.tmp").write_text("a,b\n3,4\n")
            os.utime(folder / "new.tmp", ns=(before.st_atime_ns, before.st_mtime_ns))
            os.replace(folder / "new.tmp", folder / "data.csv")
        elsewhere(replace)
    assert rec.fingerprint()["changed_while_running"] == ["data.csv"]


def test_a_file_missing_when_read_and_made_meanwhile_never_holds(folder):
    with record(str(folder)) as rec:
        with pytest.raises(FileNotFoundError):
            open(folder / "later.csv")
        elsewhere(lambda: (folder / "later.csv").write_text("x"))
    assert rec.fingerprint()["changed_while_running"] == ["later.csv"]


def test_a_folder_given_a_file_by_another_hand_never_holds_but_the_steps_own_files_do(folder):
    with record(str(folder)) as rec:
        sorted(folder.glob("*.csv"))
        (folder / "summary.txt").write_text("mine")  # the step's own file in the folder it listed
        os.mkdir(folder / "out")
    assert rec.fingerprint()["changed_while_running"] == []
    with record(str(folder)) as rec:
        sorted(folder.glob("*.csv"))
        elsewhere(lambda: (folder / "dropped.csv").write_text("a\n1\n"))
    assert rec.fingerprint()["changed_while_running"] == ["."]


def test_the_steps_own_changes_to_what_it_read_are_not_changes_meanwhile(folder):
    (folder / "log.txt").write_text("first\n")
    with record(str(folder)) as rec:
        (folder / "data.csv").read_text()
        os.utime(folder / "data.csv", ns=(1, 1))
        os.chmod(folder / "data.csv", 0o600)
        (folder / "log.txt").read_text()
        with open(folder / "log.txt", "a") as f:  # a log the step reads, then adds to
            f.write("second\n")
        sqlite3.connect(folder / "db.sqlite").execute("create table t (x)").connection.close()
    fp = rec.fingerprint()
    assert fp["changed_while_running"] == [] and "data.csv" in fp["files_read"]
    # (what it read of the log is gone as it ends: a state it advances, never a change meanwhile)
    assert [c.name for c in check(fp, str(folder))] == ["log.txt"] and fp["read_then_changed"] == ["log.txt"]


def test_a_step_whose_input_changed_while_it_ran_runs_again_and_says_why(folder):
    # the change is made by a process the step starts, which nbscale does not watch
    nb = make_notebook(folder, [
        ("import subprocess, sys\ntext = open('data.csv').read()\n"
         "subprocess.run([sys.executable, '-c', \"open('data.csv', 'w').write('a,b\\\\n5,6\\\\n')\"], check=True)",
         ["step:read"]),
        ("n = len(text)", ["step:use"]),
    ])
    first = run_notebook(nb, options=RunOptions(engine="local"))
    assert first.ok and first.load("read")["text"] == "a,b\n1,2\n"
    again = run_notebook(nb, options=RunOptions(engine="local"))
    read = again.step("read")
    assert not read["cached"] and read["stale"] == [
        "data.csv changed while the step ran (it may have read either version)"]
    assert again.load("read")["text"] == "a,b\n5,6\n"


# --- when recording is on ------------------------------------------------------------------------


def test_recording_is_off_outside_a_step(folder, monkeypatch):
    monkeypatch.setenv("NBSCALE_TEST_OUTSIDE", "1")
    environ = os.environ
    with record(str(folder)) as rec:
        assert isinstance(os.environ, RecordingEnviron)
    (folder / "data.csv").read_text()
    os.environ.get("NBSCALE_TEST_OUTSIDE")
    assert os.environ is environ  # the real mapping is back
    assert rec.reads == set() and rec.env == {}


def test_a_recording_sees_only_its_own_thread(folder, monkeypatch):
    monkeypatch.setenv("NBSCALE_TEST_OTHER", "other")
    recording, other = threading.Event(), threading.Event()

    def other_thread():
        recording.wait()
        (folder / "data.csv").read_text()
        os.environ.get("NBSCALE_TEST_OTHER")
        (folder / "other.txt").write_text("x")
        other.set()

    thread = threading.Thread(target=other_thread)
    thread.start()
    with record(str(folder)) as rec:
        recording.set()
        assert other.wait(10)
        os.environ.get("NBSCALE_TEST_MINE")
    thread.join()
    assert rec.reads == set() and rec.writes == set()
    assert rec.env == {"NBSCALE_TEST_MINE": None}


def test_threads_the_step_starts_record_into_it_while_it_runs(folder, monkeypatch):
    """`ex.map(load, range(n))` building each file's name in the pool's threads: no audit event of
    the step's own thread shows them, and no text of the step names them."""
    monkeypatch.setenv("NBSCALE_TEST_IN_THREAD", "set")
    for i in range(3):
        (folder / f"part{i}.txt").write_text(str(i))

    def load(i):
        return int((folder / f"part{i}.txt").read_text())

    def nested():  # a thread started by a thread of the step
        inner = threading.Thread(target=lambda: (folder / "inner.txt").write_text("made"))
        inner.start()
        inner.join()
        os.environ.get("NBSCALE_TEST_IN_THREAD")

    with record(str(folder)) as rec:
        with ThreadPoolExecutor(2) as ex:
            assert sum(ex.map(load, range(3))) == 3
        thread = threading.Thread(target=nested)
        thread.start()
        thread.join()
    assert rec.reads == {str(folder / f"part{i}.txt") for i in range(3)}
    assert rec.writes == {str(folder / "inner.txt")} and rec.env == {"NBSCALE_TEST_IN_THREAD": "set"}
    assert threading.Thread.start is _REAL_THREAD_START  # put back once no step records
    assert rec.fingerprint()["changed_while_running"] == []  # the step's threads' doing is its own


def test_work_a_step_hands_to_a_pool_started_before_it_records_into_that_step(folder):
    """A module's pool (`POOL = ThreadPoolExecutor(4)` in helpers.py), Dask's threaded scheduler: its
    idle threads, started by no step or by an earlier one, do the step's work."""
    (folder / "a.txt").write_text("a")
    (folder / "b.txt").write_text("b")
    pool = ThreadPoolExecutor(1)
    assert pool.submit(int).result() == 0  # its thread runs from before the steps
    with record(str(folder)) as first:
        assert pool.submit(lambda: (folder / "a.txt").read_text()).result() == "a"
    with record(str(folder)) as second:
        assert list(pool.map(lambda name: (folder / name).read_text(), ["b.txt"])) == ["b"]
    assert pool.submit(lambda: (folder / "a.txt").read_text()).result() == "a"  # no step's
    pool.shutdown()
    assert first.reads == {str(folder / "a.txt")} and second.reads == {str(folder / "b.txt")}
    assert ThreadPoolExecutor.submit is _REAL_POOL_SUBMIT


def test_a_thread_the_step_started_records_nothing_after_the_step_ended(folder):
    go, done = threading.Event(), threading.Event()

    def late():
        go.wait(10)
        (folder / "data.csv").read_text()
        (folder / "late.txt").write_text("after the step")
        done.set()

    with record(str(folder)) as rec:
        threading.Thread(target=late, daemon=True).start()
    go.set()
    assert done.wait(10)
    assert rec.reads == set() and rec.writes == set() and not rec.problems


def test_a_thread_of_the_step_busy_as_it_ends_adds_nothing_once_it_ended(folder, monkeypatch):
    monkeypatch.setenv("NBSCALE_TEST_BUSY", "1")
    for attempt in range(20):
        stop = threading.Event()

        def busy(stop=stop, attempt=attempt):
            i = 0
            while not stop.is_set():
                os.path.exists(folder / f"candidate{attempt}-{i}.txt")
                os.environ.get(f"NBSCALE_TEST_BUSY_{i}")
                (folder / "data.csv").read_text()
                i += 1

        with record(str(folder)) as rec:
            thread = threading.Thread(target=busy, daemon=True)
            thread.start()
            time.sleep(0.002)
        ended = (len(rec.stated), len(rec.env), set(rec.reads))
        fp = rec.fingerprint()  # read while the thread goes on
        time.sleep(0.002)
        stop.set()
        thread.join()
        assert (len(rec.stated), len(rec.env), set(rec.reads)) == ended
        assert "data.csv" in fp["files_read"] and not rec.problems


def test_a_thread_nbscale_starts_on_the_steps_behalf_is_not_the_steps(folder):
    from nbscale.kernels.store import _started  # the thread that profiles a step's values as they are stored

    with record(str(folder)) as rec:
        assert _started(lambda: (folder / "data.csv").read_text()).result() == "a,b\n1,2\n"
    assert rec.reads == set()


def test_files_the_step_only_tests_are_dependencies_compared_by_their_stat(folder, monkeypatch):
    """`if os.path.exists(f"data/{m}.csv")` over months of which some are missing: no file is opened
    but those there, no text names the others, and one appearing changes what the step does."""
    monkeypatch.chdir(folder)
    (folder / "june.csv").write_text("x\n")
    (folder / "sub").mkdir()
    with record(str(folder)) as rec:
        found = [m for m in ("may", "june") if os.path.exists(f"{m}.csv")]
        assert pathlib.Path("data.csv").is_file() and os.path.getsize("data.csv") > 0
        assert os.path.isdir("sub") and not os.path.lexists("gone.txt") and not os.access("asked.txt", os.R_OK)
        if not os.path.exists("made.txt"):
            pathlib.Path("made.txt").write_text("the step's own")
        assert os.stat is not _REAL_STAT
        # `shutil` imported now must still choose its symlink-safe `rmtree`, which asks these
        assert {os.stat, os.open, os.unlink} <= os.supports_dir_fd and os.stat in os.supports_follow_symlinks
        assert (os.lstat in os.supports_dir_fd) == (_REAL_LSTAT in os.supports_dir_fd) and os.stat in os.supports_fd
    assert found == ["june"] and os.stat is _REAL_STAT and os.lstat is _REAL_LSTAT and os.access is _REAL_ACCESS
    fp = rec.fingerprint()
    read = fp["files_read"]
    assert set(read) == {"june.csv", "data.csv"} and list(fp["files_written"]) == ["made.txt"]
    assert read["june.csv"]["digest"] is None is read["data.csv"]["digest"]  # tested: their stat, no bytes read
    # a folder by being one (not by what it holds), an absent path by being absent (a folder made there too)
    assert fp["tested"] == {"asked.txt": None, "gone.txt": None, "may.csv": None, "sub": "folder"}
    assert check(fp, str(folder)) == []
    (folder / "sub" / "new.txt").write_text("held")
    assert check(fp, str(folder)) == []
    (folder / "may.csv").write_text("y\n")
    (folder / "june.csv").unlink()
    (folder / "gone.txt").mkdir()
    (folder / "asked.txt").write_text("")
    shutil.rmtree(folder / "sub")
    assert sorted(c.text for c in check(fp, str(folder))) == [
        "asked.txt appeared", "gone.txt appeared", "june.csv is missing", "may.csv appeared", "sub is missing"]


def test_a_file_the_cells_name_that_the_step_only_tested_is_compared_by_its_stat(folder, monkeypatch):
    """`max(glob.glob("logs/*.csv"), key=os.path.getmtime)`: the cells name the files (a quoted
    wildcard), the step reads the newest and only stats the others; a touch of an older one makes
    it the newest. A named file the step opened is compared by content, as any it opened."""
    monkeypatch.chdir(folder)
    (folder / "logs").mkdir()
    for name, ns in (("a.csv", 1_000_000_000), ("b.csv", 2_000_000_000)):
        (folder / "logs" / name).write_text(f"{name}\n")
        os.utime(folder / "logs" / name, ns=(ns, ns))
    source = "newest = max(glob.glob('logs/*.csv'), key=os.path.getmtime)\ntext = open(newest).read()"
    with record(str(folder), sources=[source]) as rec:
        newest = max(glob.glob("logs/*.csv"), key=os.path.getmtime)
        with open(newest) as f:
            assert f.read() == "b.csv\n"
    fp = rec.fingerprint()
    assert fp["files_read"]["logs/a.csv"]["digest"] is None  # tested only: by its stat
    assert fp["files_read"]["logs/b.csv"]["digest"]  # opened: by content
    assert check(fp, str(folder)) == []
    os.utime(folder / "logs" / "b.csv")  # a touch of the one read: its content is what the step read
    assert check(fp, str(folder)) == []
    os.utime(folder / "logs" / "a.csv")  # now the newest: the step would read it
    assert [c.text for c in check(fp, str(folder))] == ["logs/a.csv changed (size or times)"]


def test_plug_ins_the_step_finds_in_a_local_package_with_pkgutil_are_a_listing(folder, monkeypatch):
    """`pkgutil.iter_modules(plugins.__path__)`: a plug-in added runs the step again. A listing of a
    folder on sys.path (`pkgutil.iter_modules()` lists the notebook folder) is the import system's."""
    import pkgutil

    monkeypatch.chdir(folder)
    monkeypatch.syspath_prepend(str(folder))
    (folder / "plugins").mkdir()
    (folder / "plugins" / "__init__.py").write_text("")
    (folder / "plugins" / "a.py").write_text("NAME = 'a'\n")
    with record(str(folder)) as rec:
        found = sorted(m.name for m in pkgutil.iter_modules(["plugins"]))
        assert "plugins" in {m.name for m in pkgutil.iter_modules()}
    assert found == ["a"]
    fp = rec.fingerprint()
    # (pkgutil names the folder absolutely: kept under that name too, as any folder named so)
    assert set(fp["directories"]) == {"plugins", str(folder / "plugins")}
    assert check(fp, str(folder)) == []
    (folder / "plugins" / "b.py").write_text("NAME = 'b'\n")
    (folder / "notes.txt").write_text("a file beside the notebook: no plug-in")
    assert [c.text for c in check(fp, str(folder))] == ["the listing of plugins changed"]


def test_folders_the_import_system_tests_finding_distributions_are_not_the_steps(folder, tmp_path, monkeypatch):
    """`importlib.metadata.version` stats every folder on sys.path; a Dask worker's scratch folder
    is one, gone with the cluster: every step that looked a version up ran again next time."""
    import importlib.metadata

    import importlib_metadata

    scratch = tmp_path / "dask-scratch-space" / "worker-1"
    scratch.mkdir(parents=True)
    monkeypatch.syspath_prepend(str(scratch))
    with record(str(folder)) as rec:
        assert importlib.metadata.version("numpy") == importlib_metadata.version("numpy") == np.__version__
        assert os.path.isdir(tmp_path / "dask-scratch-space")  # the step's own test: that one counts
    fp = rec.fingerprint()
    assert fp.get("tested") == {str(tmp_path / "dask-scratch-space"): "folder"} and not fp["directories"]


def test_files_named_relative_to_an_open_folder_are_that_folders(folder, monkeypatch):
    """`shutil.rmtree` removes by names in folders it opened (`os.unlink(name, dir_fd=fd)`), and
    `os.fwalk` opens folders so: those names are not the working directory's files (out/data.csv
    removed was taken for the project's own data.csv, written)."""
    monkeypatch.chdir(folder)
    (folder / "out" / "sub").mkdir(parents=True)
    for name in ("out/data.csv", "out/sub/b.txt", "src/c.txt"):
        (folder / name).parent.mkdir(exist_ok=True)
        (folder / name).write_text("x")
    with record(str(folder)) as rec:
        shutil.rmtree("out")
        walked = [names for _, _, names, _ in os.fwalk("src")]
        here = os.open(".", os.O_RDONLY)
        try:
            os.mkdir("made", dir_fd=here)
        finally:
            os.close(here)
        pathlib.Path("plain.txt").write_text("x")  # and the same by names from the working directory
        os.rename("plain.txt", "renamed.txt")
        os.mkdir("plain")
        os.remove("src/c.txt")
    assert walked == [["c.txt"]] and os.path.isdir(folder / "made")
    fp = rec.fingerprint()
    assert {"out/data.csv", "out/sub/b.txt"} <= set(fp["files_written"]) and "data.csv" not in fp["files_written"]
    assert "data.csv" not in fp["files_read"] and "sub" not in fp["files_read"] and not rec.problems
    assert {str(folder / "made"), str(folder / "plain")} <= rec.changed_by_step
    assert {"plain.txt", "renamed.txt", "src/c.txt"} <= set(fp["files_written"])


def test_a_file_the_step_opens_or_tests_relative_to_an_open_folder_is_that_folders(folder, monkeypatch):
    """`os.open("data.csv", flags, dir_fd=inputs)`: its "open" event says `data.csv`, not which
    folder; it was taken for the project's own data.csv, and inputs/data.csv changing left the step
    cached."""
    monkeypatch.chdir(folder)
    (folder / "inputs").mkdir()
    (folder / "inputs" / "data.csv").write_text("1\n")
    with record(str(folder)) as rec:
        inputs = os.open("inputs", os.O_RDONLY | os.O_DIRECTORY)
        try:
            with os.fdopen(os.open("data.csv", os.O_RDONLY, dir_fd=inputs)) as rows:
                total = sum(int(r) for r in rows)
            os.close(os.open("out.txt", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=inputs))
            with pytest.raises(FileNotFoundError):
                os.stat("later.csv", dir_fd=inputs)
        finally:
            os.close(inputs)
    assert total == 1 and os.open is _REAL_OS_OPEN
    fp = rec.fingerprint()
    assert set(fp["files_read"]) == {"inputs/data.csv"} and set(fp["files_written"]) == {"inputs/out.txt"}
    assert fp["tested"] == {"inputs/later.csv": None} and not rec.problems
    (folder / "inputs" / "data.csv").write_text("2\n")
    (folder / "inputs" / "later.csv").write_text("")
    assert sorted(c.text for c in check(fp, str(folder))) == [
        "inputs/data.csv changed (content)", "inputs/later.csv appeared"]


def test_a_file_opened_relative_to_a_folder_that_cannot_be_told_leaves_the_fingerprint_incomplete(
        folder, monkeypatch):
    # no /proc (some containers): which folder's data.csv it was is not known, so no file is promised
    from nbscale.kernels import dependencies

    monkeypatch.chdir(folder)
    (folder / "inputs").mkdir()
    (folder / "inputs" / "data.csv").write_text("1\n")
    monkeypatch.setattr(dependencies, "_FDS", str(folder / "no-proc"))
    with record(str(folder)) as rec:
        inputs = os.open("inputs", os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.close(os.open("data.csv", os.O_RDONLY, dir_fd=inputs))
        finally:
            os.close(inputs)
    fp = rec.fingerprint()
    assert "data.csv" not in fp["files_read"] and "inputs/data.csv" not in fp["files_read"]
    assert fp["incomplete"] == ["a file was opened relative to a folder that could not be told"]
    assert [c.what for c in check(fp, str(folder))] == ["incomplete"]


def test_what_the_entries_of_a_listing_show_of_their_files_is_a_dependency(folder, monkeypatch):
    """`max(os.scandir(d), key=lambda e: e.stat().st_mtime)`: the newest file by its entry's stat
    (which calls no `os.stat`); another file made newer changes what the step picks, not the names."""
    monkeypatch.chdir(folder)
    (folder / "parts").mkdir()
    for i, name in enumerate(["old.csv", "new.csv"]):
        (folder / "parts" / name).write_text("x\n")
        os.utime(folder / "parts" / name, ns=(10**18 + i, 10**18 + i))
    with record(str(folder)) as rec:
        with os.scandir("parts") as entries:
            newest = max(entries, key=lambda e: e.stat().st_mtime_ns)
        assert isinstance(newest, os.DirEntry)  # (as the step's code finds it without nbscale)
        walked = [name for _, _, names in os.walk("parts") for name in names]
        fd = os.open("parts", os.O_RDONLY)
        try:
            by_fd = sorted(e.name for e in os.scandir(fd))  # (names only: nothing to look at by path)
        finally:
            os.close(fd)
        assert os.fspath(newest) == os.path.join("parts", "new.csv") and newest.is_file()
    assert os.scandir is _REAL_SCANDIR and sorted(walked) == by_fd == ["new.csv", "old.csv"]
    fp = rec.fingerprint()
    assert set(fp["files_read"]) == {"parts/old.csv", "parts/new.csv"} and "parts" in fp["directories"]
    assert check(fp, str(folder)) == []
    os.utime(folder / "parts" / "old.csv")  # now the newest: the same names
    assert [c.name for c in check(fp, str(folder))] == ["parts/old.csv"]


def test_files_nbscale_tests_on_the_steps_behalf_are_not_its_and_too_many_tested_files_are_said(folder, monkeypatch):
    from nbscale.kernels import dependencies

    with record(str(folder)) as rec:
        dependencies._look(str(folder / "missing.txt"))  # the recorder's own look
    assert rec.stated == {}
    monkeypatch.setattr(dependencies, "MAX_STATED", 2)
    with record(str(folder)) as rec:
        for i in range(4):
            os.path.exists(folder / f"candidate{i}.txt")
    assert len([p for p in rec.stated if p]) == 2
    assert rec.problems == ["more than 2 paths tested without being opened"]


def test_a_file_the_step_reads_and_then_changes_itself_is_a_state_it_advances(folder):
    """Read, then written or appended to (a watermark, a history it counts): what the step read is
    gone as it ends, so its result never holds; a file written, then read, or only appended to, is
    a product and a log as before."""
    for name, text in (("state.json", "100"), ("history.csv", "a\n1\n"), ("log.txt", "x\n"), ("own.txt", "")):
        (folder / name).write_text(text)
    with record(str(folder)) as rec:
        start = int((folder / "state.json").read_text())
        (folder / "state.json").write_text(str(start + 50))  # read, then overwritten
        with open(folder / "history.csv", "a") as f:
            f.write("2\n")
        assert len((folder / "history.csv").read_text().split()) == 3  # appended to, then read: what it held
        with open(folder / "log.txt", "a") as f:
            f.write("y\n")  # a log: only added to
        (folder / "out.txt").write_text("made")
        assert (folder / "out.txt").read_text() == "made"  # written, then read: a product
        with open(folder / "new.log", "a") as f:
            f.write("first\n")
        (folder / "new.log").read_text()  # a log the step began: it holds only what the step wrote
    fingerprint = rec.fingerprint()
    assert fingerprint["read_then_changed"] == ["history.csv", "state.json"]
    changes = check(fingerprint, str(folder))
    assert {c.name for c in changes if "changed it itself" in c.text} == {"history.csv", "state.json"}


def test_recordings_in_two_threads_stay_apart(folder):
    (folder / "b.csv").write_text("b\n")
    seen = {}
    both = threading.Barrier(2)

    def step(name):
        with record(str(folder)) as rec:
            both.wait()
            (folder / f"{name}.csv").read_text()
            os.environ.get(f"NBSCALE_TEST_{name.upper()}")
            both.wait()
        seen[name] = rec

    (folder / "a.csv").write_text("a\n")
    threads = [threading.Thread(target=step, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen["a"].reads == {str(folder / "a.csv")} and seen["b"].reads == {str(folder / "b.csv")}
    assert list(seen["a"].env) == ["NBSCALE_TEST_A"] and list(seen["b"].env) == ["NBSCALE_TEST_B"]
    assert not isinstance(os.environ, RecordingEnviron)


def test_a_recording_inside_a_recording_is_refused(folder):
    with record(str(folder)):
        with pytest.raises(RuntimeError, match="already active"):
            with record(str(folder)):
                pass


# --- environment ---------------------------------------------------------------------------------


def test_environment_reads_are_recorded_with_the_value_seen(folder, monkeypatch):
    monkeypatch.setenv("NBSCALE_TEST_SEED", "1")
    monkeypatch.setenv("NBSCALE_TEST_MODE", "fast")
    monkeypatch.delenv("NBSCALE_TEST_ABSENT", raising=False)
    with record(str(folder)) as rec:
        assert os.environ["NBSCALE_TEST_SEED"] == "1"
        assert os.environ.get("NBSCALE_TEST_MODE") == "fast"
        assert "NBSCALE_TEST_ABSENT" not in os.environ
        assert os.getenv("NBSCALE_TEST_ALSO_ABSENT") is None
        os.environ["NBSCALE_TEST_SEED"] = "2"  # the first value seen is what the step depended on
        os.environ["NBSCALE_TEST_OWN"] = "mine"
        assert os.environ["NBSCALE_TEST_OWN"] == "mine"  # set by the step itself: no dependency
        monkeypatch.delenv("NBSCALE_TEST_OWN")
    assert rec.env == {"NBSCALE_TEST_SEED": "1", "NBSCALE_TEST_MODE": "fast",
                       "NBSCALE_TEST_ABSENT": None, "NBSCALE_TEST_ALSO_ABSENT": None}
    assert rec.env_set == {"NBSCALE_TEST_SEED": "2"}  # read, then set: the value it left


def test_enumerating_the_environment_is_not_reading_every_variable(folder):
    with record(str(folder)) as rec:
        copied = os.environ.copy()
        pairs = dict(os.environ.items())
    assert copied == pairs
    assert rec.env == {} and not rec.env_listed and "env_names" not in rec.fingerprint()
    with record(str(folder)) as listing:
        names = list(os.environ)
    assert set(names) == set(pairs) and listing.env == {}
    assert listing.env_listed and "PATH" in listing.fingerprint()["env_names"]  # which variables are set


def test_variables_a_command_names_for_its_shell_are_read_from_the_environment_it_inherits(folder, monkeypatch):
    """`os.system("echo $REGION")`: the shell expands it, no `os.environ` read shows it; a changed
    REGION reused the command's stale result."""
    monkeypatch.setenv("NBSCALE_TEST_REGION", "eu")
    monkeypatch.setenv("NBSCALE_TEST_DAY", "mon")
    monkeypatch.setenv("NBSCALE_TEST_GIVEN", "own")
    monkeypatch.delenv("NBSCALE_TEST_UNSET", raising=False)
    with record(str(folder)) as rec:
        os.system("echo $NBSCALE_TEST_REGION $PWD ${SHLVL} > /dev/null")  # (the shell sets those itself)
        subprocess.run(["sh", "-c", "echo ${NBSCALE_TEST_DAY:-x} $NBSCALE_TEST_UNSET"], stdout=subprocess.DEVNULL)
        # an environment of its own: nothing inherited is read
        subprocess.run("echo $NBSCALE_TEST_GIVEN", shell=True, env={"PATH": os.environ["PATH"]},
                       stdout=subprocess.DEVNULL)
    assert rec.env == {"NBSCALE_TEST_REGION": "eu", "NBSCALE_TEST_DAY": "mon", "NBSCALE_TEST_UNSET": None,
                       "PATH": os.environ["PATH"]}


def test_secret_values_are_kept_as_digests(folder, monkeypatch):
    monkeypatch.setenv("NBSCALE_TEST_API_TOKEN", "s3cr3t")
    with record(str(folder)) as rec:
        os.environ["NBSCALE_TEST_API_TOKEN"]
    kept = rec.fingerprint()["env"]["NBSCALE_TEST_API_TOKEN"]
    assert kept.startswith("hidden:") and "s3cr3t" not in kept


# --- modules and distributions -------------------------------------------------------------------


def test_a_local_module_imported_by_the_step_is_recorded(folder, local_module):
    name = local_module()
    with record(str(folder)) as rec:
        assert __import__(name).answer() == 42
    state = rec.fingerprint()["modules"][f"{name}.py"]
    assert state["size"] == (folder / f"{name}.py").stat().st_size and state["digest"]
    assert f"{name}.py" not in rec.fingerprint()["files_read"]


def test_a_module_imported_before_the_step_is_recorded(folder, local_module):
    module = __import__(local_module())  # by an earlier step, the prelude, the worker...
    with record(str(folder)) as rec:
        assert module.answer() == 42
    assert f"{module.__name__}.py" in rec.fingerprint()["modules"]


def test_a_module_an_earlier_step_loaded_and_this_step_writes_anew_is_its_product_not_its_code(folder, local_module):
    # a step writing `gen_mod.py` on a worker (or in a kernel) where an earlier step had imported it:
    # its record kept the module as first imported, so the next run found it "changed" and ran the
    # step again for nothing
    with record(str(folder)):  # the earlier step
        module = __import__(local_module())
    path = folder / f"{module.__name__}.py"
    with record(str(folder)) as rec:
        path.write_text("K = 2\n")
    fingerprint = rec.fingerprint()
    assert path.name not in fingerprint["modules"] and path.name in fingerprint["files_written"]


def test_steps_that_load_nothing_new_still_see_what_changed_between_them(folder, local_module):
    """The loaded modules are walked again only when others are loaded: a module imported by a
    later step, or a module file deleted meanwhile, is still seen."""
    def helpers(rec):  # (the test's own modules are local too)
        return {m for m in rec.fingerprint()["modules"] if m.startswith("helpers_")}

    first = __import__(local_module())
    with record(str(folder)) as rec:
        pass
    assert helpers(rec) == {f"{first.__name__}.py"}
    with record(str(folder)) as rec:  # nothing new loaded
        second = __import__(local_module())
    assert helpers(rec) == {f"{first.__name__}.py", f"{second.__name__}.py"}
    (folder / f"{first.__name__}.py").unlink()
    with record(str(folder)) as rec:
        pass
    assert helpers(rec) == {f"{second.__name__}.py"}


def test_a_distribution_loaded_by_a_later_step_is_recorded(folder):
    """In a fresh process (nothing of the distribution loaded yet): the second step's import counts."""
    code = textwrap.dedent(f"""
        import importlib.metadata, json
        from nbscale.kernels.dependencies import record
        with record({str(folder)!r}) as one:
            pass
        with record({str(folder)!r}) as two:
            import platformdirs
        print(json.dumps([one.distributions.get("platformdirs"), two.distributions.get("platformdirs"),
                          importlib.metadata.version("platformdirs")]))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    before, after, installed = json.loads(out)
    assert (before, after) == (None, installed)


def test_library_modules_are_not_local_modules(folder):
    with record(str(folder)) as rec:
        pass
    assert not any("site-packages" in p or p.startswith(sys.base_prefix) for p in rec.modules)
    kernels = os.path.dirname(execute_step.__code__.co_filename)
    assert not any(p.startswith(kernels) for p in rec.modules)  # nbscale's own


def test_versions_of_loaded_distributions_are_recorded(folder):
    with record(str(folder)) as rec:
        np.arange(3)
    assert rec.distributions["numpy"] == np.__version__
    assert rec.distributions["pandas"] == pd.__version__
    assert rec.distributions["python"] == platform.python_version()


def test_a_module_edited_after_it_was_imported_is_outdated(folder, local_module):
    name = local_module()
    module = __import__(name)
    with record(str(folder)) as first:
        module.answer()
    (folder / f"{name}.py").write_text("def answer():\n    return 43\n")
    assert name in outdated_modules()
    with record(str(folder)) as second:
        module.answer()  # still the code imported before the edit
    assert second.outdated_modules == [f"{name}.py"]
    # the state recorded is the one that was imported, not the file's current one
    assert second.fingerprint()["modules"] == first.fingerprint()["modules"]


def test_a_module_rewritten_under_its_old_size_and_mtime_is_outdated(folder, local_module):
    # a warm worker keeps its imports between runs: a helper copied in with `cp -p` must be imported again
    name = local_module()
    module = __import__(name)
    with record(str(folder)):
        module.answer()
    path = folder / f"{name}.py"
    before = path.stat()
    rewrite_keeping_mtime(path, path.read_text().replace("42", "43"))
    assert path.stat().st_size == before.st_size
    assert name in outdated_modules()


def test_what_a_local_module_read_as_it_was_imported_is_a_dependency_of_every_step_using_it(
        folder, local_module, monkeypatch):
    monkeypatch.chdir(folder)
    monkeypatch.delenv("NBSCALE_TEST_IMPORT_MODE", raising=False)
    name = local_module("import os\nMODE = os.environ.get('NBSCALE_TEST_IMPORT_MODE', 'a')\n"
                        "TEXT = open('data.csv').read()\n")
    with record(str(folder)) as importing:
        module = __import__(name)
    with record(str(folder)) as using:  # a later step: the module is loaded already, nothing is read
        assert (module.MODE, module.TEXT) == ("a", "a,b\n1,2\n")
    for fp in (importing.fingerprint(), using.fingerprint()):
        assert "data.csv" in fp["files_read"] and fp["env"]["NBSCALE_TEST_IMPORT_MODE"] is None
    assert name not in outdated_modules()
    (folder / "data.csv").write_text("a,b\n5,6\n")  # the module holds the old text: import it again
    assert name in outdated_modules()


def test_a_variable_a_local_module_read_as_it_was_imported_makes_it_outdated(folder, local_module, monkeypatch):
    monkeypatch.delenv("NBSCALE_TEST_IMPORT_MODE", raising=False)
    name = local_module("import os\nMODE = os.environ.get('NBSCALE_TEST_IMPORT_MODE', 'a')\n")
    with record(str(folder)):
        __import__(name)
    assert name not in outdated_modules()
    monkeypatch.setenv("NBSCALE_TEST_IMPORT_MODE", "b")
    assert name in outdated_modules()


def test_a_step_reading_a_config_through_a_helper_module_runs_again_when_the_config_changes(tmp_path):
    # the helper is imported once per process (the imports cell, a worker's warm-up): later steps
    # read its CONFIG without reading the file
    import json as json_module
    import uuid as uuid_module

    helper = f"settings_{uuid_module.uuid4().hex[:8]}"
    (tmp_path / f"{helper}.py").write_text("import json\nCONFIG = json.load(open('config.json'))\n")
    (tmp_path / "config.json").write_text(json_module.dumps({"n": 1}))
    nb = make_notebook(tmp_path, [(f"import {helper}", ["imports"]), ("a = 1", ["step:first"]),
                                  (f"n = {helper}.CONFIG['n']", ["step:later"])])
    local = RunOptions(engine="local")
    try:
        assert run_notebook(nb, options=local).load("later")["n"] == 1
        (tmp_path / "config.json").write_text(json_module.dumps({"n": 22}))
        again = run_notebook(nb, options=local)  # the same process: the helper is imported again
        later = again.step("later")
        assert not later["cached"] and later["stale"] == ["config.json changed (content)"]
        assert again.load("later")["n"] == 22
        assert run_notebook(nb, options=local).step("later")["cached"]
    finally:
        sys.modules.pop(helper, None)


def test_a_local_module_the_step_did_not_find_is_a_dependency_when_it_appears(folder, monkeypatch):
    monkeypatch.syspath_prepend(str(folder))
    name = f"extras_{uuid.uuid4().hex[:8]}"
    with record(str(folder)) as rec:
        try:
            __import__(name)
        except ImportError:
            pass
    fp = rec.fingerprint()
    assert fp["files_read"][f"{name}.py"] is None and check(fp, str(folder)) == []
    (folder / f"{name}.py").write_text("V = 1\n")  # now the step would import it
    assert [c.text for c in check(fp, str(folder))] == [f"{name}.py appeared"]


def _imported_in_a_recording(folder, name: str) -> dict:
    """The fingerprint of a step that imports module `name` (then forgotten: another test's is another)."""
    try:
        with record(str(folder)) as rec:
            __import__(name)
    finally:
        sys.modules.pop(name, None)
    return rec.fingerprint()


def test_a_file_a_fresh_run_would_import_instead_of_a_loaded_module_is_a_dependency_when_it_appears(
        folder, monkeypatch):
    """`import helper` found in lib/ (appended to sys.path): helper.py beside the notebook, or
    lib/helper/ as a package, would be imported instead by a fresh run; and another PYTHONPATH
    puts other folders before lib/."""
    lib = folder.parent / "lib"
    lib.mkdir()
    name = f"helper_{uuid.uuid4().hex[:8]}"
    (lib / f"{name}.py").write_text("H = 'lib'\n")
    monkeypatch.syspath_prepend(str(lib))  # (the notebook folder comes first in a step)
    monkeypatch.setenv("PYTHONPATH", "/somewhere")
    fp = _imported_in_a_recording(folder, name)
    assert check(fp, str(folder)) == []
    assert fp["env"]["PYTHONPATH"] == "/somewhere"
    (folder / f"{name}.py").write_text("H = 'beside'\n")
    assert [c.text for c in check(fp, str(folder))] == [f"{name}.py appeared"]
    (folder / f"{name}.py").unlink()
    (lib / name).mkdir()
    (lib / name / "__init__.py").write_text("H = 'package'\n")
    assert [c.text for c in check(fp, str(folder))] == [f"{lib / name / '__init__.py'} appeared"]
    (lib / name / "__init__.py").unlink()
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    assert [c.kind for c in check(fp, str(folder))] == ["env"]


def test_a_pth_file_that_put_a_local_modules_folder_on_sys_path_is_a_dependency(folder, monkeypatch):
    """`conda develop dev_a` writes dev_a into a .pth file in site-packages; switched to dev_b, a
    fresh process imports dev_b's module of the same name, and the result was reused."""
    import site

    site_folder, dev_a = folder.parent / "site-packages", folder.parent / "dev_a"
    site_folder.mkdir()
    dev_a.mkdir()
    name = f"feats_{uuid.uuid4().hex[:8]}"
    (dev_a / f"{name}.py").write_text("SCALE = 1\n")
    (site_folder / "conda.pth").write_text(f"{dev_a}\n")
    (site_folder / "other.pth").write_text("/nowhere\n")
    monkeypatch.setattr(site, "getsitepackages", lambda: [str(site_folder)])
    monkeypatch.setattr(site, "getusersitepackages", lambda: str(folder.parent / "no-user-site"))
    monkeypatch.syspath_prepend(str(dev_a))  # (as site puts it, from the .pth)
    fp = _imported_in_a_recording(folder, name)
    assert check(fp, str(folder)) == []
    (site_folder / "conda.pth").write_text(f"{folder.parent / 'dev_b'}\n")
    assert [c.name for c in check(fp, str(folder))] == [str(site_folder / "conda.pth")]


def test_a_module_beside_the_notebook_is_shadowed_by_one_in_a_folder_the_imports_cell_put_first(tmp_path):
    """`sys.path.insert(0, "../lib")`: lib/ comes before the notebook folder, which the step shell put
    first and takes out as the step ends (a fresh process: the module must be imported by a step)."""
    nb_folder, lib = tmp_path / "nb", tmp_path / "lib"
    nb_folder.mkdir()
    lib.mkdir()
    (nb_folder / "helper.py").write_text("H = 'notebook folder'\n")
    nb = make_notebook(nb_folder, [("import sys\nsys.path.insert(0, '../lib')\nimport helper", ["imports"]),
                                   ("h = helper.H", ["step:a"])], name="first")

    def run():
        done = subprocess.run([sys.executable, "-m", "nbscale", "run", str(nb), "--engine", "local", "--output",
                               "json"], capture_output=True, text=True, cwd=nb_folder, timeout=120)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)["steps"][0]["status"]

    assert run() == "succeeded"
    assert run() == "cached"
    (lib / "helper.py").write_text("H = 'lib'\n")
    assert run() == "succeeded"


def test_a_module_beside_the_notebook_depends_on_no_pythonpath(tmp_path):
    """Only a module found beyond the notebook folder: one beside it comes first whatever PYTHONPATH says
    (a fresh process: this one has local modules of its own, pytest's)."""
    (tmp_path / "beside.py").write_text("B = 1\n")
    nb = make_notebook(tmp_path, [("import beside", ["imports"]), ("b = beside.B", ["step:a"])], name="pp")

    def status(pythonpath):
        env = {**os.environ, "PYTHONPATH": pythonpath}
        done = subprocess.run([sys.executable, "-m", "nbscale", "run", str(nb), "--engine", "local", "--output",
                               "json"], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)["steps"][0]["status"]

    assert status(str(tmp_path / "one")) == "succeeded"
    assert status(str(tmp_path / "two")) == "cached"


def test_a_module_the_calling_program_imported_is_not_one_to_import_again_for_steps(folder, local_module):
    # evicted, the program would keep its references on the old module (a pickled function of it
    # would no longer be "the same object")
    mine = local_module()
    __import__(mine)  # by the program that calls nbscale, outside any step
    theirs = local_module()
    with record(str(folder)):
        __import__(theirs)
    names = local_module_names()
    assert theirs in names and mine not in names


def test_nbscale_itself_is_never_a_local_module_to_import_again():
    # a notebook in nbscale's own source tree sees nbscale's modules as local: importing them again
    # would split the running run time in two (its audit hook, its state)
    import nbscale.kernels.dependencies as module

    source_tree = os.path.dirname(os.path.dirname(os.path.abspath(module.__file__)))
    with record(source_tree):
        pass
    assert [n for n in local_module_names() if n.partition(".")[0] == "nbscale"] == []


# --- a real step ---------------------------------------------------------------------------------


def test_a_step_run_by_the_executor_in_the_notebook_folder(folder, local_module):
    name = local_module()
    step = Step(name="s", cells=[1, 2], outputs=["df"], source=[
        "import pandas as pd\ndf = pd.read_csv('data.csv')",
        f"import os\nfrom {name} import answer\nseed = os.environ.get('NBSCALE_TEST_STEP_SEED')\n"
        "open('out.txt', 'w').write(str(answer()))",
    ])
    result = execute_step(step, Prelude(), {}, {}, cwd=str(folder))  # the executor records the step
    assert result.ok, result.error
    fp = result.dependencies
    assert "data.csv" in fp["files_read"] and "out.txt" in fp["files_written"]
    assert f"{name}.py" in fp["modules"] and fp["env"]["NBSCALE_TEST_STEP_SEED"] is None
    assert fp["distributions"]["pandas"] == pd.__version__


def test_a_local_module_of_another_folder_is_shadowed_by_the_steps_own(tmp_path):
    sys.modules.pop("nbscale_shadow_probe", None)
    results = []
    for name in ("x", "y", "x"):
        folder = tmp_path / name
        folder.mkdir(exist_ok=True)
        (folder / "nbscale_shadow_probe.py").write_text(f"WHO = {name!r}\n")
        notebook = folder / "nb.ipynb"
        if not notebook.exists():
            make_notebook(folder, [("import nbscale_shadow_probe as p\nwho = p.WHO", ["step:a"])], name="nb")
        result = run_notebook(notebook, options=RunOptions(engine="local", use_cache=False))
        results.append(result.load("a")["who"])
    assert results == ["x", "y", "x"]
    # a library's module is never evicted because a folder holds a file of its name
    (tmp_path / "x" / "json.py").write_text("")
    assert "json" not in shadowed_modules(str(tmp_path / "x"))
    sys.modules.pop("nbscale_shadow_probe", None)


def test_what_a_library_read_as_it_was_imported_counts_for_every_step_that_has_it_loaded(folder, tmp_path,
                                                                                          monkeypatch):
    # pandas reads PANDAS_* variables as it is imported: a later step in the same process uses the
    # library as that import set it up, though it imports nothing itself
    site = tmp_path / "venv" / "lib" / "site-packages"
    name = f"mylib_{uuid.uuid4().hex[:8]}"
    (site / name).mkdir(parents=True)
    (site / name / "__init__.py").write_text("from . import config\n")
    var = f"{name.upper()}_MODE"  # its own variable (`PANDAS_…` of pandas); not `COLUMNS` or `LANG`
    (site / name / "config.py").write_text(f"import os\nMODE = os.environ.get({var!r}, 'old')\n"
                                           "COLUMNS = os.environ.get('COLUMNS')\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv(var, "new")
    try:
        with record(str(folder)) as first:
            __import__(name)
        with record(str(folder)) as later:
            assert sys.modules[name].config.MODE == "new"
        assert first.fingerprint()["env"][var] == "new" and "COLUMNS" in first.env  # the step imported it
        assert later.fingerprint()["env"][var] == "new" and "COLUMNS" not in later.fingerprint()["env"]
        monkeypatch.setenv(var, "other")
        assert [c.name for c in check(later.fingerprint(), str(folder))] == [var]
    finally:
        for module in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            sys.modules.pop(module)


def test_a_package_beside_a_loaded_module_of_the_same_name_shadows_it(folder, monkeypatch):
    """A shared worker imported `name.py`; then `name/__init__.py` appears beside it: a fresh import
    takes the package (packages come first), so the loaded module is not to be given to a step."""
    monkeypatch.syspath_prepend(str(folder))
    name = f"both_{uuid.uuid4().hex[:8]}"
    (folder / f"{name}.py").write_text("V = 'module'\n")
    try:
        __import__(name)
        assert name not in shadowed_modules(str(folder))
        (folder / name).mkdir()
        assert name not in shadowed_modules(str(folder))  # (a folder without __init__.py loses to the module)
        (folder / name / "__init__.py").write_text("V = 'package'\n")
        os.utime(folder, None)  # (the folder's listing is cached by its mtime, which the mkdir changed already)
        assert name in shadowed_modules(str(folder))
    finally:
        sys.modules.pop(name, None)


def test_a_library_reinstalled_in_another_version_after_its_import_is_outdated(folder, library):
    # `pip install -U lib` while a process (a warm worker, a kernel) has the old one imported
    site, name = library
    with record(str(folder)) as rec:
        assert __import__(name).VALUE == 1
    assert rec.fingerprint()["distributions"][name] == "1.0"
    assert outdated_distributions() == {}
    install_library(site, f"other{name}", "0.1", 0)  # another library installed: nothing outdated
    assert outdated_distributions() == {}
    install_library(site, name, "2.0", 2)
    assert outdated_distributions() == {name: ("1.0", "2.0")}
    with record(str(folder)) as rec:  # what a step in this process records: the version that runs
        assert sys.modules[name].VALUE == 1
    assert rec.fingerprint()["distributions"][name] == "1.0"
    install_library(site, name, "1.0", 1)  # back to the version it imported, the same files
    assert outdated_distributions() == {}
    install_library(site, name, "1.0", 3)  # the same version with other files (`pip install .` after an edit)
    assert outdated_distributions() == {name: ("1.0", "1.0, other files")}
    shutil.rmtree(next(site.glob(f"{name}-*.dist-info")))  # pip uninstall
    os.utime(site, ns=(site.stat().st_mtime_ns + 10**9,) * 2)
    assert outdated_distributions() == {name: ("1.0", "")}
    sys.modules.pop(name)  # not loaded any more: a step importing it gets what is installed
    assert outdated_distributions() == {}


@pytest.mark.parametrize("recorded", [True, False])
def test_a_library_reinstalled_while_the_step_that_imported_it_runs_is_kept_at_the_version_imported(
        folder, library, recorded):
    # a long step imports lib 1.0; `pip install -U lib` while it runs: 1.0's code ran, and later
    # steps in this process would run it too
    site, name = library
    if recorded:
        with record(str(folder)) as rec:
            assert __import__(name).VALUE == 1
            install_library(site, name, "2.0", 2)
        assert rec.fingerprint()["distributions"][name] == "1.0"
    else:  # a step with the cache off, a worker's warm-up
        watch_imports()
        assert __import__(name).VALUE == 1
        install_library(site, name, "2.0", 2)
        note_loaded_distributions()
    assert outdated_distributions() == {name: ("1.0", "2.0")}


def test_what_a_step_reads_over_the_network_is_named_and_this_machines_addresses_are_not(folder, tmp_path):
    import socket
    import urllib.request

    def connect(address, family=socket.AF_INET):
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setblocking(False)  # (192.0.2.0/24 is reserved for documentation: nothing answers)
            sock.connect_ex(address)

    def step():
        connect(("192.0.2.1", 5432))  # a database written in Python, `requests`
        connect(("127.0.0.1", 1))  # the cluster's scheduler, a service of this machine
        connect(str(tmp_path / "no.sock"), socket.AF_UNIX)
        try:  # `pd.read_csv(url)`: the password and the path are not kept
            urllib.request.urlopen("http://user:secret@192.0.2.2:8080/data.csv?token=abc", timeout=0.01)
        except OSError:
            pass

    with record(str(folder)) as rec:
        step()
    assert rec.fingerprint()["network"] == ["192.0.2.1:5432", "http://192.0.2.2:8080"]
    assert "secret" not in json.dumps(rec.fingerprint())
    with record(str(folder)) as rec:
        connect(("127.0.0.1", 1))
    assert "network" not in rec.fingerprint()


def test_a_connection_c_code_or_another_thread_made_and_left_open_is_a_network_read(folder, server_elsewhere):
    # libpq under psycopg2, an SQLAlchemy pool, s3fs's threads: no audit event of the step's thread shows them
    host, port = server_elsewhere
    code = {}
    exec(C_CONNECT, code)
    local = socket.create_server(("127.0.0.1", 0))
    listening = socket.create_server((host, 0))  # as a Dask worker does, for its peers
    with record(str(folder)) as rec:
        kept = code["c_connect"](host, port)
        thread_kept = []
        thread = threading.Thread(target=lambda: thread_kept.append(socket.create_connection((host, port))))
        thread.start()
        thread.join()
        on_this_machine = socket.create_connection(local.getsockname())  # a service here: no network
        peer = subprocess.Popen([sys.executable, "-c", "import socket, sys, time\n"
                                 f"s = socket.create_connection(({host!r}, {listening.getsockname()[1]}))\n"
                                 "sys.stdin.read()"], stdin=subprocess.PIPE)
        accepted = listening.accept()[0]  # a peer fetching from this process: no read of the step's
    peer.communicate()
    assert rec.fingerprint()["network"] == [f"{host}:{port}"]
    with record(str(folder)) as rec:  # open before the step: not its doing
        os.close(os.dup(kept))
    assert "network" not in rec.fingerprint()
    for connection in (*thread_kept, on_this_machine, local, accepted, listening):
        connection.close()
    os.close(kept)


def test_bytecode_cached_before_its_module_last_changed_is_stale_and_is_forgotten_before_a_step(folder):
    source = folder / "helpers.py"
    source.write_text("ANSWER = 1\n")
    cached = py_compile.compile(str(source))  # as an import writes it
    other = folder / "other.py"
    other.write_text("X = 1\n")
    py_compile.compile(str(other))
    assert not stale_bytecode(str(source))
    rewrite_keeping_mtime(source, "ANSWER = 2\n")  # Python would still take the cache: same size and mtime
    assert stale_bytecode(str(source))
    forget_stale_bytecode(str(folder))
    assert not os.path.exists(cached) and os.path.exists(importlib.util.cache_from_source(str(other)))
    py_compile.compile(str(source))
    rewrite_keeping_mtime(source, "ANSWER = 333\n")  # another size: Python compiles the file again
    assert not stale_bytecode(str(source))
    py_compile.compile(str(source), invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH)
    rewrite_keeping_mtime(source, "ANSWER = 444\n")  # a hash-based cache: Python checks the content
    assert not stale_bytecode(str(source))


def test_a_local_module_first_imported_from_stale_bytecode_is_no_dependency_to_trust(folder, tmp_path, monkeypatch):
    # elsewhere than beside the notebook (a PYTHONPATH folder), which no sweep before the step looks at
    lib = tmp_path / "lib"
    lib.mkdir()
    name = f"shared_{uuid.uuid4().hex[:8]}"
    source = lib / f"{name}.py"
    source.write_text("ANSWER = 1\n")
    py_compile.compile(str(source))
    rewrite_keeping_mtime(source, "ANSWER = 2\n")
    monkeypatch.syspath_prepend(str(lib))
    try:
        with record(str(folder)) as rec:
            assert __import__(name).ANSWER == 1  # Python's own doing: the old code ran
        assert any("imported from bytecode cached before the file last changed" in p
                   for p in rec.fingerprint()["incomplete"])  # so the result is never reused
        assert name in outdated_modules()  # and the next step imports the file
        sys.modules.pop(name)
        assert __import__(name).ANSWER == 2
    finally:
        sys.modules.pop(name, None)


def test_a_folders_modules_listed_as_it_had_just_changed_are_listed_again(tmp_path, monkeypatch):
    # its listing is kept by the folder's mtime; on a kernel whose file clock ticks once a jiffy, a
    # module added in the same tick keeps that mtime (simulated: the folder's stat as it was)
    from nbscale.kernels import fingerprints
    from nbscale.kernels.dependencies import _module_files_in

    monkeypatch.setattr(fingerprints, "RACY_NS", 3600 * 10**9)  # "just changed", whatever the load
    (tmp_path / "helpers.py").write_text("")
    assert set(_module_files_in(str(tmp_path))) == {"helpers"}
    frozen, real_stat = os.stat(tmp_path), os.stat
    (tmp_path / "extras.py").write_text("")
    monkeypatch.setattr(os, "stat", lambda path, *a, **k: frozen if str(path) == str(tmp_path)
                        else real_stat(path, *a, **k))
    assert set(_module_files_in(str(tmp_path))) == {"helpers", "extras"}


def test_a_draw_from_pythons_global_generator_counts_only_from_code_that_shows_one(tmp_path):
    import random

    random.seed()  # (where nbscale leaves it after a step)
    with record(str(tmp_path), ["x = random.choice([1, 2, 3])"]) as drew:
        random.choice([1, 2, 3])
    with record(str(tmp_path), ["from random import shuffle\nshuffle(xs)"]) as imported:
        random.shuffle([1, 2, 3])
    with record(str(tmp_path), ["import sklearn"]) as library:  # (a library's import draws: not the step's)
        random.random()
    with record(str(tmp_path), ["random.seed(0)\nx = random.random()"]) as seeded:
        random.seed(0)
        random.random()
    with record(str(tmp_path), ["x = np.random.rand()"]) as other:
        pass
    with record(str(tmp_path), ["# x = random.random()\nimport sklearn"]) as commented:
        random.random()
    assert drew.fingerprint()["unseeded"] == imported.fingerprint()["unseeded"] == ["random"]
    assert all("unseeded" not in r.fingerprint() for r in (library, seeded, other, commented))


def test_generators_made_given_no_seed_are_found_in_code_not_in_comments():
    from nbscale.kernels.dependencies import fresh_generators

    cells = ["rng = np.random.default_rng()\nr2 = random.Random()", "# old = np.random.RandomState()\n"
             "ok = np.random.default_rng(0)\nalso = random.Random(seed)"]
    assert fresh_generators(cells) == ["Random()", "default_rng()"]


def test_a_draw_from_numpys_global_generator_is_seen_unless_the_code_may_seed_it(tmp_path):
    import numpy as np

    np.random.seed()  # (where nbscale leaves it after a step)
    with record(str(tmp_path)) as drew:
        np.random.rand()
    with record(str(tmp_path)) as untouched:
        np.ones(3)
    with record(str(tmp_path), ["np.random.seed(0)\nx = np.random.rand()"]) as seeded:
        np.random.seed(0)
        np.random.rand()
    with record(str(tmp_path)) as gaussian:  # (a cached second gaussian: the position stays)
        np.random.seed()
        np.random.standard_normal()
        before = numpy_random_state()
    assert before is not None and drew_unseeded(before) is False
    with record(str(tmp_path)) as cached_gaussian:
        np.random.standard_normal()
    assert drew.fingerprint()["unseeded"] == ["numpy.random"]
    assert "unseeded" not in untouched.fingerprint() and "unseeded" not in seeded.fingerprint()
    assert gaussian.fingerprint()["unseeded"] == ["numpy.random"]
    assert cached_gaussian.fingerprint()["unseeded"] == ["numpy.random"]

