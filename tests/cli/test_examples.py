"""The issue-16 examples run for real, in a copy of examples/: model comparison through the CLI on
the default engine (an embedded Dask cluster), the Dask ETL on Dask with a small `rows` (through the
Python API, to read the table it computed), the sweep and monitoring through the CLI on the local
engine. Their metrics are recorded and sensible; the sweep records one run per value and picks the
best by the metric's direction; monitoring's shifted run drifts and regresses against its `shift=0`
run, and `diff` names the changed parameter and the re-run steps; an unchanged re-run of model
comparison does not drift."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner
from conftest import EXAMPLES_DIR

from nbscale.cli import main
from nbscale.compiler import compile_notebook
from nbscale.kernels.compare import CACHED_REASON, KEY_CHANGED
from nbscale.kernels.contract import CACHED, SUCCEEDED
from nbscale.kernels.runner import RunOptions, default_run_store, run_notebook

NAMES = ("model_comparison", "sweep", "dask_etl", "monitoring")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A copy of the examples: their runs and artifacts go there, not into the repository."""
    folder = tmp_path_factory.mktemp("examples")
    for name in NAMES:
        shutil.copy(EXAMPLES_DIR / f"{name}.ipynb", folder)
    return folder


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def run_json(notebook, *args) -> dict:
    result = cli("run", notebook, "--output", "json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def flat(output: str) -> str:
    return " ".join(output.split())


def test_model_comparison_trains_four_models_in_parallel_on_the_default_engine(folder):
    notebook = folder / "model_comparison.ipynb"
    after = {s.name: s.after for s in compile_notebook(notebook).steps}
    trains = ["train_logreg", "train_forest", "train_boosting", "train_svm"]
    assert all(after[name] == ["split"] for name in trains)  # nothing orders them: they run in parallel
    assert set(trains) <= set(after["evaluate"])
    run = run_json(notebook)  # no --engine: Dask, on an embedded LocalCluster
    assert [s["status"] for s in run["steps"]] == [SUCCEEDED] * len(after)
    with default_run_store(notebook) as store:
        assert store.get_run(run["run_id"])["engine"] == "dask"
    metrics = run["metrics"]
    accuracies = [metrics[f"acc_{name.removeprefix('train_')}"] for name in trains]
    assert all(0.9 < acc <= 1 for acc in accuracies), metrics
    assert metrics["best_accuracy"] == max(accuracies)
    assert metrics["error_rate"] == pytest.approx(1 - metrics["best_accuracy"])
    # an unchanged re-run reuses every step and shows no drift against the first run
    again = run_json(notebook, "--engine", "local")
    assert {s["status"] for s in again["steps"]} == {CACHED} and again["metrics"] == metrics
    drift = cli("drift", again["run_id"], "--reference", run["run_id"], "--notebook", notebook, "--output", "json")
    assert drift.exit_code == 0, drift.output
    assert not [v for v in json.loads(drift.stdout)["values"] if v["dataset_drift"]]


def test_dask_etl_engineers_features_on_the_cluster_and_trains(folder):
    notebook = folder / "dask_etl.ipynb"
    result = run_notebook(notebook, {"rows": 120_000, "partitions": 4}, RunOptions(workers=2))
    assert [s["status"] for s in result.steps] == [SUCCEEDED] * 7, result.steps
    metrics = result.metrics
    assert metrics["n_customers"] == 3000  # rows // 40 customers, every one of them aggregated
    assert metrics["accuracy"] > 0.75 and metrics["roc_auc"] > 0.85, metrics
    table = result.load("table", ["table"])["table"]  # what the Dask collections computed to
    assert table.shape == (3000, 9) and table["n_transactions"].sum() == 120_000
    with default_run_store(notebook) as store:
        events = store.events_since(result.run_id)
    workers = {e["payload"].get("worker") for e in events if e["kind"] == "step_started"}
    assert workers and all(str(w).startswith("tcp://127.0.0.1:") for w in workers)  # on the cluster's workers


def test_sweep_records_a_run_per_value_and_picks_the_best_by_direction(folder):
    notebook = folder / "sweep.ipynb"
    result = cli("sweep", notebook, "-p", "C=0.001,0.1,1", "--engine", "local", "--output", "json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    with default_run_store(notebook) as store:
        runs = [store.get_run(r["run_id"]) for r in summary["runs"]]
    assert [r["parameters"]["C"] for r in runs] == [0.001, 0.1, 1.0]
    assert all(r["status"] == SUCCEEDED for r in runs)
    accuracy = {r["id"]: next(m["value"] for m in r["metrics"] if m["name"] == "accuracy") for r in runs}
    assert all(0.8 < value <= 1 for value in accuracy.values()), accuracy
    assert summary["metric"] == "accuracy" and summary["direction"] == "max"
    assert accuracy[summary["best"]] == max(accuracy.values()) > accuracy[runs[0]["id"]]
    # load and split do not read C: the later runs reused them
    assert [s["status"] for s in runs[1]["steps"][:2]] == [CACHED, CACHED]
    # log loss is lower-is-better (declared in the notebook): the best by it has the smallest
    by_loss = json.loads(cli("sweep", notebook, "-p", "C=0.001,0.1,1", "--engine", "local", "--metric", "log_loss",
                             "--output", "json").stdout)
    losses = {r["run_id"]: r["metrics"]["log_loss"] for r in by_loss["runs"]}
    assert by_loss["direction"] == "min" and losses[by_loss["best"]] == min(losses.values())


@pytest.fixture(scope="module")
def monitoring_runs(folder):
    notebook = folder / "monitoring.ipynb"
    reference = run_json(notebook, "-p", "shift=0", "--engine", "local")
    shifted = run_json(notebook, "--engine", "local")
    return notebook, reference, shifted


def test_monitoring_drifts_and_its_metric_drops(monitoring_runs):
    notebook, reference, shifted = monitoring_runs
    before, after = reference["metrics"], shifted["metrics"]
    assert before["accuracy_reference"] == after["accuracy_reference"] > 0.8  # the same model
    assert before["accuracy_current"] > 0.8 and after["accuracy_current"] < before["accuracy_current"] - 0.2
    result = cli("drift", shifted["run_id"], "--reference", reference["run_id"], "--notebook", notebook,
                 "--output", "json")
    assert result.exit_code == 0, result.output
    values = {(v["step"], v["value"]): v for v in json.loads(result.stdout)["values"]}
    assert values[("current", "current")]["dataset_drift"] and values[("score", "scored")]["dataset_drift"]
    assert not values[("reference", "reference")]["dataset_drift"]  # the training period did not move
    drifted = {c["name"] for c in values[("current", "current")]["columns"] if c["drifted"]}
    assert {"income", "debt", "channel"} <= drifted
    assert "accuracy_current" in shifted["regressions"]["regressed"]


def test_diff_names_the_changed_parameter_and_the_re_run_steps(monitoring_runs):
    notebook, reference, shifted = monitoring_runs
    result = cli("diff", reference["run_id"], shifted["run_id"], "--notebook", notebook)
    assert result.exit_code == 0, result.output
    out = result.stdout
    changed = [line.split() for line in out.splitlines() if line.strip().startswith("* ")]
    assert ["*", "shift", "0.0", "1.0"] in changed
    assert {row[1] for row in changed} == {"shift", "current", "score", "metrics"}
    for step in ("current", "score", "metrics"):
        assert f"{step} #2 {KEY_CHANGED}" in flat(out)
    assert CACHED_REASON not in out and "reference #2" not in flat(out) and "train #2" not in flat(out)
