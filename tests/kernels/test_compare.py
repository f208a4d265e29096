"""The comparison model, from real runs in a real run store: changed parameters, steps that re-ran
and why, metric deltas by direction, durations, unknown runs and runs of another notebook."""

import math

import pytest
from conftest import make_notebook

from nbscale.kernels.compare import (
    CACHED_REASON,
    KEY_CHANGED,
    NOT_STORED,
    UNREADABLE_PARAMETERS,
    compare_runs,
    comparison,
    parameter_rows,
    run_duration,
    why_ran,
)
from nbscale.kernels.errors import UnknownRun
from nbscale.kernels.runner import RunOptions, default_run_store, run_notebook

LOCAL = RunOptions(engine="local")


def sweep_notebook(tmp_path, name="sweep", metadata=None):
    return make_notebook(tmp_path, [
        ("alpha = 1\nbeta = 10", ["parameters"]),
        ("data = list(range(20))", ["step:load"]),
        ("scaled = [x * alpha for x in data]", ["step:scale"]),
        ("loss = sum(scaled) / 100\nuptime = beta * 2", ["step:evaluate"]),
        ("loss\nuptime", ["metrics"]),
    ], name=name, metadata=metadata)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("compare")
    nb = sweep_notebook(tmp_path)
    first = run_notebook(nb, options=LOCAL)
    second = run_notebook(nb, {"alpha": 2}, options=LOCAL)
    assert first.ok and second.ok
    store = default_run_store(nb)
    yield nb, store, first, second
    store.close()


def test_changed_parameters_are_marked(two_runs):
    _, store, first, second = two_runs
    model = compare_runs(store, [first.run_id, second.run_id])
    params = {row["name"]: row for row in model["parameters"]}
    assert params["alpha"]["values"] == [1, 2] and params["alpha"]["changed"]
    assert params["beta"]["values"] == [10, 10] and not params["beta"]["changed"]


@pytest.mark.parametrize("damaged", ['{"n": 1', [1, 2]])
def test_parameters_a_damaged_store_holds_as_no_object_are_one_row(damaged):
    # (a cut JSON text or a list where the object goes: `nbscale diff` failed with AttributeError)
    rows = {row["name"]: row for row in parameter_rows([{"parameters": {"n": 1}}, {"parameters": damaged}])}
    assert rows["n"]["set"] == [True, False] and rows["n"]["changed"]
    assert rows[UNREADABLE_PARAMETERS]["set"] == [False, True]


def test_steps_say_whether_they_re_ran_and_why(two_runs):
    _, store, first, second = two_runs
    steps = {row["name"]: row for row in compare_runs(store, [first.run_id, second.run_id])["steps"]}
    assert list(steps) == ["load", "scale", "evaluate", "metrics"]  # the metrics cell is a step too
    assert not steps["load"]["reran"] and steps["load"]["runs"][1]["why"] == CACHED_REASON
    assert steps["scale"]["reran"] and steps["scale"]["runs"][1]["why"] == KEY_CHANGED
    assert steps["evaluate"]["reran"] and steps["evaluate"]["runs"][1]["why"] == KEY_CHANGED
    assert steps["load"]["runs"][0]["why"] == NOT_STORED  # the first run of a fresh notebook
    assert steps["scale"]["runs"][1]["status"] == "succeeded"


def test_metric_deltas_follow_the_direction(two_runs):
    _, store, first, second = two_runs
    metrics = {row["name"]: row for row in compare_runs(store, [first.run_id, second.run_id])["metrics"]}
    loss = metrics["loss"]
    assert loss["direction"] == "min" and loss["values"] == [1.9, 3.8]
    assert math.isclose(loss["deltas"][1], 1.9) and loss["deltas"][0] == 0
    assert loss["better"] == [None, False] and loss["changed"]
    assert math.isclose(loss["relative"][1], 1.0)
    uptime = metrics["uptime"]  # not a "time": higher is better, unchanged
    assert uptime["direction"] == "max" and uptime["values"] == [20, 20] and not uptime["changed"]


def test_the_notebook_declares_directions(tmp_path):
    nb = sweep_notebook(tmp_path, metadata={"nbscale": {"metrics": {"loss": "max"}}})
    runs = [run_notebook(nb, {"alpha": a}, options=LOCAL).run_id for a in (1, 2)]
    with default_run_store(nb) as store:
        loss = next(r for r in compare_runs(store, runs)["metrics"] if r["name"] == "loss")
    assert loss["direction"] == "max" and loss["better"] == [None, True]


def test_runs_have_durations_and_unique_prefixes_work(two_runs):
    _, store, first, second = two_runs
    model = compare_runs(store, [first.run_id[:10], second.run_id])
    assert [r["run_id"] for r in model["runs"]] == [first.run_id, second.run_id]
    assert all(r["duration_s"] is not None and r["duration_s"] >= 0 for r in model["runs"])
    assert not any(r["other_notebook"] for r in model["runs"])
    assert run_duration({"started": "2026-01-01T00:00:00+00:00", "finished": "2026-01-01T00:00:02.5+00:00"}) == 2.5
    assert run_duration({"created": "2026-01-01T00:00:00+00:00", "finished": None}) is None


def test_unknown_run_is_an_error(two_runs):
    _, store, first, _ = two_runs
    with pytest.raises(UnknownRun):
        compare_runs(store, [first.run_id, "0123456789abcdef"])


def test_a_run_of_another_notebook_is_flagged(two_runs, tmp_path):
    nb, store, first, _ = two_runs
    other = sweep_notebook(nb.parent, name="other")  # same folder: the same run store
    run = run_notebook(other, options=LOCAL)
    model = compare_runs(store, [first.run_id, run.run_id])
    assert [r["other_notebook"] for r in model["runs"]] == [False, True]
    assert model["notebook"] == str(nb.resolve())


def test_a_step_made_stale_says_what_changed():
    step = {"status": "succeeded", "hash": "k", "stale": ["file data.csv changed"]}
    why = why_ran(step, {"status": "cached", "hash": "k"}, False)
    assert why == "its stored result was stale: file data.csv changed"
    assert why_ran({"status": "upstream_failed"}, None, False) == "did not run (upstream failed)"


def test_a_step_only_one_run_has():
    runs = [{"id": "a", "notebook": "n", "status": "succeeded", "steps": [], "metrics": [], "parameters": {}},
            {"id": "b", "notebook": "n", "status": "succeeded", "metrics": [{"name": "acc", "value": float("nan")}],
             "steps": [{"step": "new", "position": 0, "status": "succeeded", "hash": "h"}], "parameters": {"x": 1}}]
    model = comparison(runs)
    assert model["steps"][0]["runs"][0] is None and model["steps"][0]["reran"]
    assert model["steps"][0]["runs"][1]["why"] == "a step the reference run does not have"
    assert model["parameters"] == [{"name": "x", "values": [None, 1], "set": [False, True], "changed": True}]
    assert model["metrics"][0]["values"] == [None, None]


def test_metric_deltas_that_overflow_stay_json():
    import json

    def run(run_id, value):
        return {"id": run_id, "notebook": "n", "status": "succeeded", "steps": [], "parameters": {},
                "metrics": [{"name": "loss", "value": value}]}

    model = comparison([run("a", -1.5e308), run("b", 1.5e308)])
    row = model["metrics"][0]
    assert row["deltas"] == [0.0, None] and row["better"] == [None, False]  # +inf: worse, not a number
    json.dumps(model, allow_nan=False)
