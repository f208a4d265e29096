import multiprocessing
import sqlite3
import threading
import time
import uuid

import pytest

from nbscale.kernels import runstore
from nbscale.kernels.errors import RunStoreError
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
    with pytest.raises(RunStoreError):
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
        (first, "acc", 0.85), (first, "loss", 1.0), (second, "acc", 0.9),
    ]
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


def test_a_version_1_store_is_migrated_and_keeps_its_runs(tmp_path):
    """A run store written before v2 (which still has the unused artifacts table) opens as v2."""
    path = tmp_path / "runs.sqlite"
    db = sqlite3.connect(path)
    db.executescript(runstore._SCHEMA_V1 + "CREATE TABLE schema_version (version INTEGER NOT NULL);"
                     "INSERT INTO schema_version VALUES (1);"
                     "INSERT INTO runs (id, notebook, pipeline, engine, status, created)"
                     " VALUES ('abc123', 'nb.ipynb', 'nb', 'local', 'succeeded', '2026-01-01T00:00:00');")
    db.close()
    store = RunStore(path)
    assert store.get_run("abc")["status"] == "succeeded"
    tables = {r[0] for r in sqlite3.connect(path).execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "artifacts" not in tables and "runs" in tables
