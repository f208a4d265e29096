import gc
import multiprocessing
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
import weakref

import pytest
from conftest import make_immutable

from nbscale.kernels import runschema, runstore
from nbscale.kernels.children import marked_for_owner, owner_marker
from nbscale.kernels.contract import OWNER_STOPPED
from nbscale.kernels.errors import RunStoreCorrupt, RunStoreError, RunStoreReadOnly, UnknownRun
from nbscale.kernels.runstore import STATUSES, RunStore

STEPS = ["load", "train", "evaluate"]


@pytest.fixture
def store(tmp_path):
    with RunStore(tmp_path / ".nbscale" / "runs.sqlite") as store:
        yield store


def new_run(store, notebook="iris.ipynb", parameters=None):
    return store.create_run(notebook, "iris", "dask", parameters or {"alpha": 0.5}, STEPS)


def test_new_run_and_its_steps_start_pending(store):
    run_id = new_run(store)
    run = store.get_run(run_id)
    assert len(run_id) == 32 and run["id"] == run_id
    assert run["status"] == "pending" and run["parameters"] == {"alpha": 0.5}
    assert (run["notebook"], run["pipeline"], run["engine"]) == ("iris.ipynb", "iris", "dask")
    assert [(s["step"], s["status"]) for s in run["steps"]] == [(s, "pending") for s in STEPS]
    assert run["created"] and run["started"] is None


def test_run_life_cycle(store):
    run_id = new_run(store)
    store.start_run(run_id)
    store.update_step(run_id, "load", status="running", hash="sha256:1", attempts=1)
    error = {"cell": 3, "line": 2, "ename": "ValueError", "evalue": "bad", "traceback": ["..."]}
    store.update_step(
        run_id, "load", status="failed", duration_s=1.5, cpu_s=1.2, peak_rss_bytes=10**8,
        stdout="hello\n", stderr="", error=error,
    )
    store.update_step(run_id, "train", status="cached", cached=True)
    store.update_step(run_id, "evaluate", status="upstream_failed")
    store.finish_run(run_id, "failed", error="step 'load' failed")

    run = store.get_run(run_id)
    assert run["status"] == "failed" and run["error"] == "step 'load' failed"
    assert run["started"] <= run["finished"]
    load, train, evaluate = run["steps"]
    assert load["error"] == error and load["stdout"] == "hello\n"
    assert load["started"] <= load["finished"] and load["peak_rss_bytes"] == 10**8
    assert (load["attempts"], load["hash"], load["cached"]) == (1, "sha256:1", False)
    assert train["cached"] is True and train["finished"] is not None
    assert evaluate["status"] == "upstream_failed"


def test_last_keys_are_each_steps_latest_result_run_or_reused(store):
    first = new_run(store)
    for step, key in (("load", "k1"), ("train", "k2"), ("evaluate", "k3")):
        store.update_step(first, step, status="succeeded", hash=key)
    second = new_run(store)
    store.update_step(second, "load", status="cached", hash="k1b", cached=True)
    store.update_step(second, "train", status="failed", hash="k2b")  # no result: the earlier one stands
    other = new_run(store, notebook="other.ipynb")
    store.update_step(other, "evaluate", status="succeeded", hash="elsewhere")
    assert store.last_keys("iris.ipynb") == {"load": "k1b", "train": "k2", "evaluate": "k3"}
    assert store.last_keys("iris.ipynb", runs=1) == {"load": "k1b"} and store.last_keys("none.ipynb") == {}


def test_statuses_are_validated(store):
    run_id = new_run(store)
    assert set(STATUSES) == {
        "pending", "running", "succeeded", "failed", "cached", "upstream_failed", "cancelled",
    }
    with pytest.raises(RunStoreError, match="invalid status 'done'"):
        store.update_step(run_id, "load", status="done")
    with pytest.raises(RunStoreError, match="invalid status"):
        store.finish_run(run_id, "ok")
    assert store.get_run(run_id)["status"] == "pending"


def test_unknown_fields_steps_and_runs_are_rejected(store):
    run_id = new_run(store)
    with pytest.raises(RunStoreError, match="unknown step run field"):
        store.update_step(run_id, "load", colour="red")
    with pytest.raises(RunStoreError, match="no step 'nope'"):
        store.update_step(run_id, "nope", status="running")
    with pytest.raises(RunStoreError):
        store.add_event("f" * 32, "log")
    with pytest.raises(UnknownRun):
        store.start_run("f" * 32)


def test_events_since(store):
    run_id = new_run(store)
    other = new_run(store)
    first = store.add_event(run_id, "step_started", "load", {"attempt": 1})
    store.add_event(other, "noise")
    second = store.add_event(run_id, "log", "load", {"text": "hi"})
    events = store.events_since(run_id, 0)
    assert [e["id"] for e in events] == [first, second]
    assert events[0]["payload"] == {"attempt": 1} and events[0]["step"] == "load"
    assert [e["kind"] for e in store.events_since(run_id, first)] == ["log"]
    assert store.events_since(run_id, second) == []


def test_metrics_and_history(store):
    first = new_run(store, parameters={"alpha": 0.1})
    store.record_metrics(first, "evaluate", {"acc": 0.8, "loss": 1})
    store.record_metrics(first, "evaluate", {"acc": 0.85})  # a re-record replaces
    second = new_run(store, parameters={"alpha": 0.2})
    store.record_metrics(second, "evaluate", {"acc": 0.9})
    store.record_metrics(new_run(store, notebook="other.ipynb"), "x", {"acc": 0.1})

    metrics = store.get_run(first)["metrics"]
    assert metrics == [
        {"name": "acc", "value": 0.85, "step": "evaluate"},
        {"name": "loss", "value": 1.0, "step": "evaluate"},
    ]
    history = store.metrics_history("iris.ipynb")
    assert [(h["run_id"], h["name"], h["value"]) for h in history] == [
        (first, "acc", 0.85), (first, "loss", 1), (second, "acc", 0.9),
    ]
    assert [type(m["value"]) for m in metrics] == [float, int]  # an integer metric stays an integer
    assert history[-1]["parameters"] == {"alpha": 0.2}
    with pytest.raises(RunStoreError, match="numbers"):
        store.record_metrics(first, "evaluate", {"acc": "high"})


def test_list_runs_newest_first(store):
    ids = [new_run(store) for _ in range(3)]
    other = new_run(store, notebook="other.ipynb")
    assert [r["id"] for r in store.list_runs()] == [other, *reversed(ids)]
    assert [r["id"] for r in store.list_runs("iris.ipynb", limit=2)] == [ids[2], ids[1]]
    assert store.list_runs("missing.ipynb") == []


def test_prefix_lookup(store, monkeypatch):
    fixed = iter(["abc1" + "0" * 28, "abc2" + "0" * 28, "def0" + "0" * 28])
    monkeypatch.setattr(runstore.uuid, "uuid4", lambda: uuid.UUID(next(fixed)))
    a, b, d = (new_run(store) for _ in range(3))
    assert store.get_run("abc1")["id"] == a
    assert store.get_run("ABC2")["id"] == b
    assert store.get_run("d")["id"] == d
    assert store.get_run(a)["id"] == a
    with pytest.raises(RunStoreError, match="ambiguous"):
        store.get_run("abc")
    for missing in ["abd", "", "zz", "a%"]:
        with pytest.raises(RunStoreError, match="no run"):
            store.get_run(missing)


def test_history_survives_reopening(tmp_path):
    path = tmp_path / "runs.sqlite"
    with RunStore(path) as store:
        run_id = new_run(store)
        store.finish_run(run_id, "succeeded")
    with RunStore(path) as store:
        assert store.get_run(run_id)["status"] == "succeeded"
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("SELECT version FROM schema_version").fetchall() == [(runstore.SCHEMA_VERSION,)]
    db.close()


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "runs.sqlite"
    RunStore(path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE schema_version SET version = 99")
    db.commit()
    db.close()
    with pytest.raises(RunStoreError, match="schema version 99"):
        RunStore(path)


def test_threads_share_one_store(store):
    run_id = new_run(store)

    def write():
        for i in range(50):
            store.add_event(run_id, "log", payload={"i": i})

    threads = [threading.Thread(target=write) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(store.events_since(run_id)) == 200


RUNS_PER_PROCESS = 3
EVENTS_PER_PROCESS = 200


def write_runs(path, barrier, worker):
    barrier.wait()  # both open the new database at once: the WAL switch races
    store = RunStore(path)
    run_ids = [store.create_run(f"nb{worker}.ipynb", "p", "dask", {}, STEPS)
               for _ in range(RUNS_PER_PROCESS)]
    for i in range(EVENTS_PER_PROCESS):
        run_id = run_ids[i % RUNS_PER_PROCESS]
        store.add_event(run_id, "log", STEPS[i % 3], {"worker": worker, "i": i})
        time.sleep(0.0005)  # let the other process in, as a running step would
        if i % 20 == 0:
            store.update_step(run_id, STEPS[i % 3], status="running")
    for run_id in run_ids:
        store.record_metrics(run_id, "evaluate", {"acc": worker})
        store.finish_run(run_id, "succeeded")
    store.close()


def test_two_processes_write_at_once(tmp_path):
    path = str(tmp_path / "runs.sqlite")
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    workers = [context.Process(target=write_runs, args=(path, barrier, w)) for w in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert [worker.exitcode for worker in workers] == [0, 0]

    with RunStore(path) as store:
        runs = store.list_runs()
        assert len(runs) == 2 * RUNS_PER_PROCESS
        assert {run["status"] for run in runs} == {"succeeded"}
        for worker in range(2):
            mine = store.list_runs(f"nb{worker}.ipynb")
            events = [e for run in mine for e in store.events_since(run["id"])]
            assert sorted(e["payload"]["i"] for e in events) == list(range(EVENTS_PER_PROCESS))
            assert {e["payload"]["worker"] for e in events} == {worker}
            assert len(store.metrics_history(f"nb{worker}.ipynb")) == RUNS_PER_PROCESS
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert db.execute("SELECT count(*) FROM events").fetchone()[0] == 2 * EVENTS_PER_PROCESS
    db.close()


def test_integer_metrics_come_back_as_integers_and_floats_as_floats(store):
    import numpy as np

    run_id = new_run(store)
    store.record_metrics(run_id, "evaluate", {"epochs": 3, "n": np.int64(7), "flag": True, "acc": 1.0,
                                              "loss": np.float32(0.5), "big": 2**70, "text": "2.5"})
    values = {m["name"]: m["value"] for m in store.get_run(run_id)["metrics"]}
    assert values == {"epochs": 3, "n": 7, "flag": 1, "acc": 1.0, "loss": 0.5, "big": float(2**70), "text": 2.5}
    assert {name: type(value) for name, value in values.items()} == {
        "epochs": int, "n": int, "flag": int, "acc": float, "loss": float, "big": float, "text": float}


def test_a_version_4_store_keeps_its_metrics_and_records_integers_from_then_on(tmp_path):
    path = tmp_path / "runs.sqlite"
    db = sqlite3.connect(path)
    db.executescript("".join(runschema.MIGRATIONS[:4]) +
                     "CREATE TABLE schema_version (version INTEGER NOT NULL); INSERT INTO schema_version VALUES (4);"
                     "INSERT INTO runs (id, notebook, pipeline, engine, status, created)"
                     " VALUES ('abc1', 'nb.ipynb', 'nb', 'local', 'succeeded', '2026-01-01T00:00:00');"
                     "INSERT INTO metrics (run_id, name, value, step) VALUES ('abc1', 'epochs', 3, 'train'),"
                     " ('abc1', 'acc', 0.5, 'train');")
    db.close()
    with RunStore(path) as store:
        assert store.get_run("abc1")["metrics"] == [  # as v4 stored them: REAL
            {"name": "acc", "value": 0.5, "step": "train"}, {"name": "epochs", "value": 3.0, "step": "train"}]
        store.record_metrics("abc1", "train", {"epochs": 4})
        assert [type(m["value"]) for m in store.get_run("abc1")["metrics"]] == [float, int]
    db = sqlite3.connect(path)
    assert db.execute("SELECT version FROM schema_version").fetchone() == (runstore.SCHEMA_VERSION,)
    db.execute("PRAGMA foreign_keys = ON")
    with db:  # the new table still goes with its run
        db.execute("DELETE FROM runs WHERE id = 'abc1'")
    assert db.execute("SELECT count(*) FROM metrics").fetchone() == (0,)
    db.close()


def test_a_version_1_store_is_migrated_and_keeps_its_runs(tmp_path):
    """A run store written before v2 (which still has the unused artifacts table) opens as v2."""
    path = tmp_path / "runs.sqlite"
    db = sqlite3.connect(path)
    db.executescript(runschema.SCHEMA_V1 + "CREATE TABLE schema_version (version INTEGER NOT NULL);"
                     "INSERT INTO schema_version VALUES (1);"
                     "INSERT INTO runs (id, notebook, pipeline, engine, status, created)"
                     " VALUES ('abc123', 'nb.ipynb', 'nb', 'local', 'succeeded', '2026-01-01T00:00:00');")
    db.close()
    store = RunStore(path)
    assert store.get_run("abc")["status"] == "succeeded"
    tables = {r[0] for r in sqlite3.connect(path).execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "artifacts" not in tables and "runs" in tables


# --- every run ends: owners, heartbeats, and runs whose owner is gone -------------------------------

OWNER_SCRIPT = """
import sys
from nbscale.kernels.runstore import RunStore
store = RunStore(sys.argv[1], heartbeat_s=0.1)
run_id = store.create_run("nb.ipynb", "nb", "local", {}, ["load", "train", "evaluate"])
store.start_run(run_id)
store.update_step(run_id, "load", status="succeeded")
store.update_step(run_id, "train", status="running")
print(run_id, flush=True)
sys.stdin.read()  # hold the run until told to go
"""


def start_owner(path):
    """A real process that owns a running run (step `train` running) until its stdin closes."""
    proc = subprocess.Popen([sys.executable, "-c", OWNER_SCRIPT, str(path)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    return proc, proc.stdout.readline().strip()


def poll(check, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    return check()


def assert_reaped(run):
    assert run["status"] == "failed" and run["error"] == OWNER_STOPPED and run["finished"]
    steps = {s["step"]: s for s in run["steps"]}
    assert steps["load"]["status"] == "succeeded"
    assert steps["train"]["status"] == "failed" and steps["train"]["error"] == OWNER_STOPPED
    assert steps["evaluate"]["status"] == "cancelled"


def test_a_run_whose_process_exited_is_failed_when_the_store_is_opened(tmp_path):
    path = tmp_path / "runs.sqlite"
    proc, run_id = start_owner(path)
    proc.communicate("")  # the owner leaves without finishing its run
    with RunStore(path) as store:
        run = store.get_run(run_id)
        assert_reaped(run)
        finished = [e for e in store.events_since(run_id) if e["kind"] == "run_finished"]
        assert [e["payload"] for e in finished] == [{"status": "failed", "error": OWNER_STOPPED}]


def test_a_live_owner_keeps_its_run_and_a_killed_one_loses_it_within_seconds(tmp_path):
    path = tmp_path / "runs.sqlite"
    proc, run_id = start_owner(path)
    try:
        with RunStore(path) as store:
            assert store.get_run(run_id)["status"] == "running"
            first = store.get_run(run_id)["heartbeat"]
            assert poll(lambda: store.get_run(run_id)["heartbeat"] > first)  # the owner's heartbeat goes on
            assert store.reap() == [] and store.get_run(run_id)["status"] == "running"
            proc.kill()
            proc.wait()
            assert poll(lambda: store.get_run(run_id)["status"] != "running")  # a later read finishes it
            assert_reaped(store.get_run(run_id))
    finally:
        proc.kill()
        proc.wait()


def dead_pid():
    """The pid of a process that has ended (and been collected)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def set_owner(path, run_id, **columns):
    db = sqlite3.connect(path)
    db.execute(f"UPDATE runs SET {', '.join(f'{c} = ?' for c in columns)} WHERE id = ?", (*columns.values(), run_id))
    db.commit()
    db.close()


def test_owner_pid_gone_or_reused_or_stale_elsewhere(tmp_path):
    path = tmp_path / "runs.sqlite"
    proc, held = start_owner(path)
    try:
        store = RunStore(path)
        dead, reused, stale, fresh = (new_run(store) for _ in range(4))
        for run_id in (dead, reused, stale, fresh):
            store.finish_run(run_id, "succeeded")  # no longer this store's own runs
            set_owner(path, run_id, status="running")
        set_owner(path, dead, owner_pid=dead_pid())
        set_owner(path, reused, owner_pid=proc.pid, owner_started=12345.0)  # a live pid, another start time
        set_owner(path, stale, owner_host="elsewhere", heartbeat=time.time() - 60)
        set_owner(path, fresh, owner_host="elsewhere", heartbeat=time.time())
        assert sorted(store.reap()) == sorted([dead, reused, stale])
        assert store.get_run(fresh)["status"] == "running" and store.get_run(held)["status"] == "running"
        with RunStore(path, owner_timeout_s=0.0) as impatient:  # opening reaps
            assert impatient.get_run(fresh)["status"] == "failed"
            assert impatient.get_run(held)["status"] == "running"  # on this host: its process lives
        store.close()
    finally:
        proc.communicate("")


def test_reaping_ends_a_dead_owners_stubborn_orphan_without_holding_the_read(tmp_path):
    # the orphan ignores SIGTERM: ending it takes TERMINATE_WAIT_S, which the read that found
    # its owner gone (a panel poll, `nbscale runs`) does not wait for
    path = tmp_path / "runs.sqlite"
    owner = dead_pid()
    code = ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print('ready', flush=True); time.sleep(600)")
    with marked_for_owner(owner_marker(owner, 4.5)):
        stubborn = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert stubborn.stdout.readline().strip() == "ready"
        with RunStore(path) as store:
            run_id = new_run(store)
            store.finish_run(run_id, "succeeded")
            set_owner(path, run_id, status="running", owner_pid=owner, owner_started=4.5)
            assert store.reap() == [run_id]
            assert stubborn.poll() is None, "the read waited for the orphan to be killed"
            assert stubborn.wait(timeout=30) == -9
    finally:
        stubborn.kill()
        stubborn.wait()
        stubborn.stdout.close()


def test_the_store_renews_its_own_runs_heartbeat_until_they_finish(tmp_path):
    with RunStore(tmp_path / "runs.sqlite", heartbeat_s=0.05) as store:
        run_id = new_run(store)
        first = store.get_run(run_id)["heartbeat"]
        assert poll(lambda: store.get_run(run_id)["heartbeat"] > first)
        store.finish_run(run_id, "succeeded")
        time.sleep(0.2)
        last = store.get_run(run_id)["heartbeat"]
        time.sleep(0.3)
        assert store.get_run(run_id)["heartbeat"] == last
        again = new_run(store)  # the next run beats again
        first = store.get_run(again)["heartbeat"]
        assert poll(lambda: store.get_run(again)["heartbeat"] > first)


def test_a_store_whose_runs_ended_is_not_kept_alive_by_its_heartbeat(tmp_path):
    store = RunStore(tmp_path / "runs.sqlite", heartbeat_s=0.05)
    store.finish_run(new_run(store), "succeeded")
    dropped = weakref.ref(store)
    del store  # as a long-lived kernel drops the store of each `nbscale.run`
    assert poll(lambda: gc.collect() >= 0 and dropped() is None)


def test_end_unfinished_keeps_a_finished_run_and_cancels_an_unfinished_one(store):
    done, going = new_run(store), new_run(store)
    store.finish_run(done, "succeeded")
    assert store.end_unfinished(done, "failed", "late") == "succeeded"
    store.update_step(going, "load", status="running")
    assert store.end_unfinished(going, "cancelled", "stopped by SIGTERM") == "cancelled"
    run = store.get_run(going)
    assert run["status"] == "cancelled" and run["error"] == "stopped by SIGTERM"
    assert {s["status"] for s in run["steps"]} == {"cancelled"}
    with pytest.raises(UnknownRun):
        store.end_unfinished("f" * 32, "failed", "x")


# --- the file: migrations, damage, read-only, deleted under a run ---------------------------------


def version_3_store(path):
    """A run store as nbscale wrote it before runs had owners: one run done, one left running."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path)
    db.executescript(runschema.SCHEMA_V1 + runschema.SCHEMA_V2 + runschema.SCHEMA_V3 +
                     "CREATE TABLE schema_version (version INTEGER NOT NULL); INSERT INTO schema_version VALUES (3);"
                     "INSERT INTO runs (id, notebook, pipeline, engine, status, created)"
                     " VALUES ('abc1', 'nb.ipynb', 'nb', 'local', 'succeeded', '2026-01-01T00:00:00'),"
                     " ('abc2', 'nb.ipynb', 'nb', 'local', 'running', '2026-01-01T00:00:01');")
    db.close()


def test_a_version_3_store_gains_owners_and_its_unfinished_runs_end_after_the_timeout(tmp_path):
    path = tmp_path / "runs.sqlite"
    version_3_store(path)
    with RunStore(path) as store:  # no owner was recorded: it gets OWNER_TIMEOUT_S to show up
        assert store.get_run("abc1")["status"] == "succeeded" and store.get_run("abc2")["status"] == "running"
        assert store.get_run("abc2")["heartbeat"] is not None
    time.sleep(1.1)
    with RunStore(path, owner_timeout_s=1.0) as store:
        assert store.get_run("abc2")["status"] == "failed" and store.get_run("abc1")["status"] == "succeeded"
        assert sqlite3.connect(path).execute("SELECT version FROM schema_version").fetchone() == (
            runstore.SCHEMA_VERSION,)


def filled_store(path, runs=30):
    with RunStore(path) as store:
        for _ in range(runs):
            run_id = new_run(store)
            store.add_event(run_id, "log", "load", {"text": "x" * 2000})
            store.finish_run(run_id, "succeeded")


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_damaged_store_says_so_and_repair_moves_it_aside(tmp_path, damage):
    from nbscale.kernels.storefile import repair

    path = tmp_path / "runs.sqlite"
    filled_store(path)
    if damage == "garbage":
        path.write_bytes(b"not a database at all " * 200)
    else:
        with open(path, "r+b") as f:
            f.truncate(path.stat().st_size // 2)
    broken = path.read_bytes()
    with pytest.raises(RunStoreCorrupt) as caught:
        RunStore(path)
    message = str(caught.value)
    assert str(path) in message and "damaged" in message and "nbscale runs --repair" in message
    moved = repair(path)
    assert moved.name.startswith("runs.sqlite.corrupt-") and moved.read_bytes() == broken  # nothing lost
    with RunStore(path) as store:
        assert store.list_runs() == []


def test_a_store_emptied_while_its_log_holds_its_history_is_damaged_not_new(tmp_path):
    # SQLite takes an empty file for a new database: the history in the -wal was dropped, silently
    from nbscale.kernels.storefile import repair

    path = tmp_path / "runs.sqlite"
    store = RunStore(path)
    store.create_run("nb.ipynb", "nb", "local", {}, ["a"])
    log = (tmp_path / "runs.sqlite-wal").read_bytes()  # (not yet checkpointed into the file)
    assert len(log) > 32
    store.close()
    path.write_bytes(b"")
    (tmp_path / "runs.sqlite-wal").write_bytes(log)
    with pytest.raises(RunStoreCorrupt, match="the file is empty, while its write-ahead log runs.sqlite-wal holds"):
        RunStore(path)
    assert path.read_bytes() == b"" and (tmp_path / "runs.sqlite-wal").read_bytes() == log  # nothing touched
    moved = repair(path)
    assert moved is not None and moved.with_name(moved.name + "-wal").read_bytes() == log
    with RunStore(path) as fresh:
        assert fresh.list_runs() == []


def test_repair_leaves_a_sound_store_alone(tmp_path):
    from nbscale.kernels.storefile import repair

    path = tmp_path / "runs.sqlite"
    filled_store(path, runs=2)
    assert repair(path) is None
    assert len(RunStore(path).list_runs()) == 2


@pytest.fixture
def immutable(tmp_path):
    """`chattr +i`: read-only even for root (the tests run as root); undone afterwards."""
    marked = []

    def mark(*paths):
        make_immutable(*paths)
        marked.extend(paths)

    yield mark
    if marked and os.geteuid() == 0:
        subprocess.run(["chattr", "-i", *map(str, marked)])


@pytest.mark.parametrize("what", ["file", "file and folder"])
def test_a_read_only_store_can_be_read_but_says_it_cannot_be_written(tmp_path, immutable, what):
    path = tmp_path / "state" / "runs.sqlite"
    version_3_store(path)  # one that would need a migration: read without one
    immutable(path, path.parent) if what == "file and folder" else immutable(path)
    with RunStore(path) as store:
        assert store.read_only
        assert [r["status"] for r in store.list_runs()] == ["running", "succeeded"]
        with pytest.raises(RunStoreReadOnly, match=r"cannot write the run store .*\(read-only"):
            new_run(store)


def test_a_read_only_store_shows_a_run_whose_owner_here_died_as_failed_without_writing(tmp_path, immutable):
    """`reap` cannot record it there: the run showed running in a process that was gone."""
    path = tmp_path / "runs.sqlite"
    with RunStore(path) as store:
        dead, elsewhere = new_run(store), new_run(store)
        for run_id in (dead, elsewhere):
            store.start_run(run_id)
            store.finish_run(run_id, "succeeded")  # no longer this store's own
    set_owner(path, dead, status="running", owner_pid=dead_pid())
    set_owner(path, elsewhere, status="running", owner_host="elsewhere", heartbeat=time.time() - 3600)
    db = sqlite3.connect(path)
    db.execute("UPDATE step_runs SET status = 'running' WHERE run_id = ? AND step = ?", (dead, STEPS[0]))
    db.commit()
    db.close()
    before = path.read_bytes()
    immutable(path)
    with RunStore(path) as store:  # (found read-only as its first read tries to reap)
        assert {r["id"]: (r["status"], r["error"]) for r in store.list_runs()} == {
            dead: ("failed", OWNER_STOPPED), elsewhere: ("running", None)}  # (a heartbeat: not renewed by a read)
        run = store.get_run(dead)
        assert (run["status"], run["steps"][0]["status"]) == ("failed", "cancelled")
    assert path.read_bytes() == before


def test_a_store_whose_folder_cannot_be_made_says_so(tmp_path, immutable):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    immutable(folder)  # a read-only notebook folder with no state folder yet
    with pytest.raises(RunStoreError, match=r"cannot create the folder .*\.nbscale for the run store"):
        RunStore(folder / ".nbscale" / "runs.sqlite")


def test_a_read_only_current_store_is_found_out_at_the_first_write(tmp_path, immutable):
    path = tmp_path / "runs.sqlite"
    filled_store(path, runs=2)
    immutable(path)
    with RunStore(path) as store:
        assert len(store.list_runs()) == 2
        with pytest.raises(RunStoreReadOnly, match="attempt to write a readonly database"):
            new_run(store)


def test_a_store_file_deleted_or_replaced_while_open_is_noticed(tmp_path):
    deleted = RunStore(tmp_path / "a" / "runs.sqlite", heartbeat_s=0.05)
    heard = []
    deleted.on_file_lost(lambda: heard.append(True))
    new_run(deleted)  # owning a run starts the heartbeat, which watches the file
    assert not deleted.file_lost()
    shutil.rmtree(tmp_path / "a")
    assert poll(lambda: heard) == [True]  # the heartbeat noticed, once
    assert deleted.file_lost() and heard == [True]
    deleted.close()

    replaced = RunStore(tmp_path / "b" / "runs.sqlite")
    os.replace(tmp_path / "b" / "runs.sqlite", tmp_path / "b" / "old.sqlite")
    RunStore(tmp_path / "b" / "runs.sqlite").close()
    assert replaced.file_lost()
    replaced.close()


def test_the_lineage_a_cache_key_was_stored_under_is_the_newest_run_that_ran_it(store):
    key = "sha256:" + "c" * 64
    older, newer, cached_here, other = (new_run(store) for _ in range(4))
    for run_id, who in ((older, "older"), (newer, "newer")):
        store.update_step(run_id, "train", status="succeeded", hash=key, lineage={"key": key, "who": who})
    # a cached row, a row of another key and the asking run's own row are not the answer
    store.update_step(cached_here, "train", status="cached", hash=key, cached=True,
                      lineage={"key": key, "who": "cached"})
    store.update_step(other, "train", status="succeeded", hash="sha256:" + "d" * 64,
                      lineage={"key": "sha256:" + "d" * 64, "who": "other"})
    record, run_id = store.stored_lineage(key, other_than=cached_here)
    assert (record["who"], run_id) == ("newer", newer)
    assert store.stored_lineage(key, other_than=newer)[0]["who"] == "older"
    assert store.stored_lineage("sha256:" + "e" * 64, other_than=newer) == (None, None)


def test_a_light_read_of_a_run_leaves_out_profiles_and_lineage_only(store):
    run_id = new_run(store)
    store.update_step(run_id, "train", status="succeeded", hash="sha256:" + "f" * 64, duration_s=1.5,
                      profiles={"values": {"df": {"rows": 3}}}, lineage={"key": "k"})
    full, light = store.get_run(run_id), store.get_run(run_id, heavy=False)
    train = [s for s in light["steps"] if s["step"] == "train"][0]
    assert train["profiles"] is None and train["lineage"] is None
    assert [s for s in full["steps"] if s["step"] == "train"][0]["profiles"] == {"values": {"df": {"rows": 3}}}
    without = lambda run: [{k: v for k, v in s.items() if k not in ("profiles", "lineage")}  # noqa: E731
                           for s in run["steps"]]
    assert without(light) == without(full) and light["metrics"] == full["metrics"]
    profiled = store.get_run(run_id, heavy=("profiles",))
    train = [s for s in profiled["steps"] if s["step"] == "train"][0]
    assert train["profiles"] == {"values": {"df": {"rows": 3}}} and train["lineage"] is None


def test_a_forked_copy_of_the_process_does_not_use_the_store(tmp_path):
    # a step's os.fork copies the run's connection: the copy is not the run, and SQLite's connection
    # must not be shared across a fork
    store = RunStore(tmp_path / "runs.sqlite")
    run_id = store.create_run("nb.ipynb", "p", "local", {}, ["a"])
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            store.finish_run(run_id, "cancelled", "from the fork")
            answer = b"wrote"
        except RunStoreError as exc:
            answer = str(exc).encode()
        os.write(write, answer)
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read, "rb") as f:
        answer = f.read().decode()
    assert "a process forked from it" in answer
    assert store.get_run(run_id)["status"] == "pending"


def test_a_run_another_process_ended_as_dead_does_not_come_back(tmp_path):
    # its owner stalled past the heartbeat timeout (a suspended VM, a long C call), was reaped, then went on
    owner = RunStore(tmp_path / "runs.sqlite")
    run_id = new_run(owner)
    owner.start_run(run_id)
    owner.update_step(run_id, STEPS[0], status="running")
    with RunStore(tmp_path / "runs.sqlite") as reaper:  # what `reap` does to a run whose owner is gone
        reaper.end_unfinished(run_id, "failed", "the process running it stopped")
    owner.update_step(run_id, STEPS[0], status="succeeded")
    assert owner.finish_run(run_id, "succeeded") == "failed"
    run = owner.get_run(run_id)
    assert run["status"] == "failed" and run["error"] == "the process running it stopped"
    assert run["steps"][0]["status"] == "failed"
    assert [e["payload"]["status"] for e in owner.events_since(run_id) if e["kind"] == "run_finished"] == ["failed"]


def test_closing_one_store_keeps_the_locks_of_another_on_the_same_file(tmp_path):
    # closing any descriptor of a file drops every POSIX lock the process holds on it: the other
    # process would take itself for SQLite's last connection and delete the -wal file under `held`
    path = tmp_path / "runs.sqlite"
    held = RunStore(path)
    new_run(held)
    RunStore(path).close()  # as the server's second look at a folder (its cell durations) does
    code = ("import sys; from nbscale.kernels.runstore import RunStore; s = RunStore(sys.argv[1]); "
            "print(s.create_run('nb.ipynb', 'p', 'local', {}, ['a'])); s.close()")
    other = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    made = other.stdout.strip()
    assert held.get_run(made)["status"] == "pending", "the run another process made is seen"
    mine = new_run(held)
    with RunStore(path) as fresh:
        assert fresh.get_run(mine)["status"] == "pending", "what it writes afterwards is not lost"
    held.close()


@pytest.mark.parametrize("blocker", ["file", "broken link"])
def test_a_file_or_broken_link_where_the_state_folder_goes_is_said_as_such(tmp_path, blocker):
    state = tmp_path / ".nbscale"
    if blocker == "file":
        state.write_text("x")
    else:
        state.symlink_to(tmp_path / "gone")
    said = {"file": "is a file, not a folder", "broken link": "is a link to nothing, not a folder"}[blocker]
    with pytest.raises(RunStoreError, match=f"{re.escape(str(state))} {said}. Move it away"):
        RunStore(state / "runs.sqlite")
    assert not (tmp_path / "gone").exists()


@pytest.mark.parametrize("blocker", ["folder", "broken link"])
def test_a_folder_or_broken_link_where_the_store_file_goes_is_a_runstore_error(tmp_path, blocker):
    # (sqlite3.connect itself raised OperationalError: every command printed a traceback)
    path = tmp_path / ".nbscale" / "runs.sqlite"
    path.parent.mkdir()
    if blocker == "folder":
        path.mkdir()
    else:
        path.symlink_to(tmp_path / "gone" / "x.db")
    said = {"folder": "is a folder, not a file: move it away", "broken link": "cannot open the run store"}[blocker]
    with pytest.raises(RunStoreError, match=said):
        RunStore(path)
    assert path.is_dir() if blocker == "folder" else path.is_symlink()


def test_another_programs_database_is_refused_and_left_as_it_was(tmp_path):
    # `.nbscale/runs.sqlite` a link to an application's database (a crafted clone), or a path typed wrong
    app = tmp_path / "app.db"
    db = sqlite3.connect(app)
    db.execute("CREATE TABLE users (name TEXT)")
    db.execute("INSERT INTO users VALUES ('alice')")
    db.commit()
    db.close()
    before = app.read_bytes()
    (tmp_path / ".nbscale").mkdir()
    link = tmp_path / ".nbscale" / "runs.sqlite"
    link.symlink_to(app)
    with pytest.raises(RunStoreError, match=r"not an nbscale run store \(it holds other tables: users\)"):
        RunStore(link)
    assert app.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [".nbscale", "app.db"], "no -wal or -shm beside it"
