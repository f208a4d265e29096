"""The run's model (`run_view.RunModel`) alone: fed by the events and rows of a real run store."""

from __future__ import annotations

from conftest import make_notebook

import nbscale
from nbscale.kernels.contract import (
    CACHED,
    FAILED,
    PENDING,
    QUEUED,
    RUN_FINISHED,
    RUNNING,
    STEP_FINISHED,
    STEP_QUEUED,
    STEP_STARTED,
    SUCCEEDED,
    WARNING,
    run_store_path,
)
from nbscale.kernels.runstore import RunStore
from nbscale.run_view import STARTING, RunModel, elapsed_text, epoch, size_text


def test_a_real_runs_events_and_row_give_its_final_state(tmp_path):
    path = make_notebook(tmp_path, [("x = 1", ["step:a"]), ("y = x / 0", ["step:b"]),
                                    ("z = 3", ["step:c"]), ("score = z", ["metrics"])])
    result = nbscale.run(path, engine="local")
    store = RunStore(run_store_path(path))
    model = RunModel(str(path))
    for event in store.events_since(result.run_id):
        model.apply(event)
    assert model.status == FAILED and model.last_event_id > 0
    assert model.steps["b"].status == FAILED and model.steps["b"].error["cell"] == 1
    model.apply_run(store.get_run(result.run_id))
    store.close()
    assert list(model.steps) == ["a", "b", "c", "metrics"]
    assert {n: s.status for n, s in model.steps.items()} == {s["name"]: s["status"] for s in result.steps}
    assert model.metrics == {"score": 3} and model.progress() == (4, 4) and model.finished


def test_live_states_queued_running_and_the_row_that_lags_behind():
    model = RunModel("nb.ipynb")
    assert model.status == STARTING
    model.apply_run({"id": "r1", "status": RUNNING, "steps": [{"step": "a", "status": PENDING},
                                                              {"step": "b", "status": PENDING}]})
    model.apply({"id": 3, "kind": STEP_QUEUED, "step": "a", "payload": {}})
    model.apply_run({"id": "r1", "status": RUNNING, "steps": [{"step": "a", "status": PENDING}]})
    assert model.steps["a"].status == QUEUED  # a pending row does not undo the queued event
    model.apply({"id": 4, "kind": STEP_STARTED, "step": "a", "time": "2026-01-01T00:00:00+00:00",
                 "payload": {"worker": "tcp://w1"}})
    step = model.steps["a"]
    assert step.status == RUNNING and step.worker == "tcp://w1" and step.fraction() == 0.5
    assert step.elapsed(now=epoch("2026-01-01T00:00:07+00:00")) == 7.0
    model.apply({"id": 5, "kind": STEP_FINISHED, "step": "a", "time": "2026-01-01T00:00:09+00:00",
                 "payload": {"status": SUCCEEDED, "duration_s": 8.5}})
    assert step.elapsed() == 8.5 and step.fraction() == 1.0
    model.apply({"id": 6, "kind": WARNING, "step": "b", "payload": {"message": "careful"}})
    model.apply({"id": 7, "kind": RUN_FINISHED, "payload": {"status": CACHED}})
    assert model.warnings == ["b: careful"] and model.status == CACHED and model.last_event_id == 7


def test_a_run_that_never_began_says_why_and_the_cluster_summary():
    model = RunModel("nb.ipynb")
    model.fail("no such engine")
    assert model.status == FAILED and model.error == "no such engine"
    assert model.cluster_summary() is None
    model.apply_cluster({"workers": [{}, {}], "threads": 4, "memory_used": 3 * 2**20, "memory_limit": 8 * 2**30})
    assert model.cluster_summary() == "2 workers, 4 threads, memory 3.0 MiB of 8.0 GiB"
    assert size_text(512) == "512 B" and elapsed_text(None) == "-"
    assert elapsed_text(75.4, running=True) == "1m15s" and elapsed_text(1.234) == "1.23s"


def test_a_running_steps_bar_follows_its_time_in_the_last_successful_run():
    model = RunModel("nb.ipynb")
    model.apply_run({"status": RUNNING, "steps": [{"step": "a", "status": RUNNING, "started": 100.0},
                                                  {"step": "b", "status": RUNNING, "started": 100.0}]})
    model.expect({"steps": [{"step": "a", "duration_s": 10.0}, {"step": "b", "duration_s": 0.0, "cached": True}]})
    assert model.steps["a"].fraction(now=103.0) == 0.3
    assert model.steps["a"].fraction(now=150.0) == 0.95  # slower than last time: never full before it ends
    assert model.steps["b"].fraction(now=103.0) == 0.5  # no time known
