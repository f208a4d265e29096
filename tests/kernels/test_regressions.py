"""Metric regressions, from real runs in a real run store: a drop in accuracy and a rise in loss are
flagged against the previous and the best run, an improvement is not, a first run has nothing to
compare with, failed runs are no reference; thresholds from pyproject.toml and a flag; NaN, inf,
None and hostile names; the best run of a metric."""

import math

import pytest
from conftest import make_notebook

from nbscale.kernels.errors import UnknownRun
from nbscale.kernels.project_settings import SettingsError
from nbscale.kernels.regressions import (
    FIRST,
    IMPROVED,
    OK,
    REGRESSED,
    UNKNOWN_DIRECTION,
    Threshold,
    Thresholds,
    best_run,
    check_run,
    load_thresholds,
    regression_report,
    summary_lines,
)
from nbscale.kernels.runner import RunOptions, default_run_store, run_notebook

LOCAL = RunOptions(engine="local")


def scored_notebook(tmp_path, name="scored", metadata=None):
    """`drop` lowers accuracy and raises loss; `boom` fails the run after its metrics are recorded."""
    return make_notebook(tmp_path, [
        ("drop = 0.0\nboom = False", ["parameters"]),
        ("accuracy = 0.9 - drop\nloss = 0.1 + drop", ["step:score"]),
        ("accuracy\nloss", ["metrics"]),
        ("if boom:\n    raise RuntimeError('boom')", ["step:check"]),
    ], name=name, metadata=metadata)


def by_name(report):
    return {row["name"]: row for row in report["metrics"]}


def run(nb, **parameters):
    return run_notebook(nb, parameters, LOCAL)


def test_a_drop_in_accuracy_and_a_rise_in_loss_are_flagged(tmp_path):
    nb = scored_notebook(tmp_path)
    first = run(nb)
    store = default_run_store(nb)
    report = check_run(store, first.run_id)
    assert report["regressed"] == [] and {r["status"] for r in report["metrics"]} == {FIRST}
    assert by_name(report)["accuracy"]["previous"] is None

    worse = run(nb, drop=0.2)
    report = check_run(store, worse.run_id)
    assert report["regressed"] == ["accuracy", "loss"]
    accuracy, loss = by_name(report)["accuracy"], by_name(report)["loss"]
    assert accuracy["direction"] == "max" and loss["direction"] == "min"
    assert accuracy["previous"]["run_id"] == first.run_id and accuracy["previous"]["value"] == pytest.approx(0.9)
    assert accuracy["previous"]["delta"] == pytest.approx(-0.2) and accuracy["status"] == REGRESSED
    assert loss["best"]["relative"] == pytest.approx(2.0)
    assert first.run_id[:8] in accuracy["reason"]
    lines = summary_lines(report)
    assert len(lines) == 2 and lines[0].startswith("regression: accuracy = 0.7 (")

    better = run(nb, drop=-0.05)  # better than the previous run and the best one
    report = check_run(store, better.run_id)
    assert report["regressed"] == [] and {r["status"] for r in report["metrics"]} == {IMPROVED}

    run(nb, drop=0.1)
    again = run(nb, drop=0.02)  # better than the previous run (0.8), worse than the best (0.95): flagged
    report = check_run(store, again.run_id)
    assert report["regressed"] == ["accuracy", "loss"]
    accuracy = by_name(report)["accuracy"]
    assert accuracy["best"]["run_id"] == better.run_id and accuracy["previous"]["better"]
    assert "the best run" in accuracy["reason"] and "the previous run" not in accuracy["reason"]


def test_failed_and_cancelled_runs_are_no_reference(tmp_path):
    nb = scored_notebook(tmp_path)
    base = run(nb)
    failed = run(nb, drop=-0.09, boom=True)  # its metrics are recorded, the run failed
    assert failed.status == "failed" and failed.metrics["accuracy"] == pytest.approx(0.99)
    store = default_run_store(nb)
    same = run(nb)  # cached: the same values as `base`
    report = check_run(store, same.run_id)
    assert report["regressed"] == []
    assert by_name(report)["accuracy"]["previous"]["run_id"] == base.run_id
    assert by_name(report)["accuracy"]["best"]["run_id"] == base.run_id
    assert by_name(report)["accuracy"]["status"] == OK


def test_thresholds_from_pyproject_per_metric_and_a_flag(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        "[tool.nbscale.regressions]\nthreshold = 0.5\n[tool.nbscale.regressions.metrics]\n"
        'accuracy = 0.1\nloss = {threshold = 0.0, absolute = 0.05}\n')
    nb = scored_notebook(tmp_path)
    run(nb)
    worse = run(nb, drop=0.04)  # accuracy -4.4 % (< 10 %), loss +0.04 (< 0.05 absolute)
    store = default_run_store(nb)
    thresholds = load_thresholds(nb)
    assert thresholds.default == Threshold(0.5, 0.0)
    assert thresholds.of("accuracy") == Threshold(0.1, 0.0) and thresholds.of("loss") == Threshold(0.0, 0.05)
    assert check_run(store, worse.run_id)["regressed"] == []
    worse = run(nb, drop=0.12)  # accuracy 0.78: -9 % from the previous run, -13 % from the best
    report = check_run(store, worse.run_id)
    assert report["regressed"] == ["accuracy", "loss"]  # loss +0.08 beyond 0.05
    # the flag wins over every project threshold: loss is +120 % from the best
    assert check_run(store, worse.run_id, load_thresholds(nb, relative=1.0))["regressed"] == ["loss"]
    assert check_run(store, worse.run_id, load_thresholds(nb, relative=10.0))["regressed"] == []


@pytest.mark.parametrize("table, message", [
    ("threshold = -0.1", "threshold must be a number ≥ 0"),
    ('threshold = "lots"', "threshold must be a number ≥ 0"),
    ("threshold = nan", "threshold must be a number ≥ 0"),
    ("tolerance = 0.1", "unknown key(s) 'tolerance'"),
    ("metrics = 3", "metrics must be a table"),
    ("[tool.nbscale.regressions.metrics]\nacc = {limit = 1}", "unknown key(s) 'limit'"),
    ("[tool.nbscale.regressions.metrics]\nacc = true", "acc must be a number ≥ 0"),
])
def test_bad_thresholds_are_errors_that_say_where(tmp_path, table, message):
    (tmp_path / "pyproject.toml").write_text(f"[tool.nbscale.regressions]\n{table}\n")
    with pytest.raises(SettingsError, match="pyproject.toml") as caught:
        load_thresholds(tmp_path / "nb.ipynb")
    assert message in str(caught.value)
    with pytest.raises(SettingsError, match="--regression-threshold"):
        load_thresholds(tmp_path / "nb.ipynb", relative=-1)


def test_unreadable_pyproject_is_an_error(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[tool.nbscale.regressions\n")
    with pytest.raises(SettingsError, match="cannot read it"):
        load_thresholds(tmp_path / "nb.ipynb")


def test_declared_direction_wins_over_the_name(tmp_path):
    nb = scored_notebook(tmp_path, metadata={"nbscale": {"metrics": {"loss": "max"}}})
    run(nb)
    worse = run(nb, drop=-0.05)  # loss falls: worse when higher is better
    assert check_run(default_run_store(nb), worse.run_id)["regressed"] == ["loss"]


def test_unknown_run_is_the_stores_error(tmp_path):
    nb = scored_notebook(tmp_path)
    run(nb)
    with pytest.raises(UnknownRun):
        check_run(default_run_store(nb), "ffffffff")


# -- the report from history rows: odd values and names ------------------------------------------------


def history(*runs):
    """metrics_history rows from (run id, status, {name: value}) oldest first."""
    return [{"run_id": run_id, "created": f"2026-01-0{i + 1}", "status": status, "name": name, "value": value}
            for i, (run_id, status, metrics) in enumerate(runs) for name, value in metrics.items()]


def report_of(rows, current, directions=None, thresholds=None):
    run = {"id": "c" * 32, "notebook": "/nb.ipynb",
           "metrics": [{"name": name, "value": value} for name, value in current.items()]}
    return regression_report(rows + history(("c" * 32, "succeeded", current)), run, thresholds or Thresholds(),
                             directions=directions)


def test_non_finite_values_are_no_reference_and_a_non_finite_value_regresses():
    rows = history(("a" * 32, "succeeded", {"acc": 0.8}), ("b" * 32, "succeeded", {"acc": float("nan")}),
                   ("d" * 32, "succeeded", {"acc": math.inf}), ("e" * 32, "succeeded", {"acc": None}))
    report = report_of(rows, {"acc": 0.8})
    assert report["regressed"] == [] and by_name(report)["acc"]["previous"]["run_id"] == "a" * 32
    for value in (float("nan"), math.inf, -math.inf, None):
        report = report_of(rows, {"acc": value})
        row = by_name(report)["acc"]
        assert report["regressed"] == ["acc"] and row["value"] is None and "not a finite number" in row["reason"]
    report = report_of([], {"acc": float("nan")})  # nothing to compare with
    assert report["regressed"] == [] and by_name(report)["acc"]["status"] == FIRST


def test_unknown_direction_is_not_flagged_and_says_so():
    rows = history(("a" * 32, "succeeded", {"score": 1.0}))
    report = report_of(rows, {"score": 0.1}, directions={"score": "sideways"})
    row = by_name(report)["score"]
    assert report["regressed"] == [] and row["status"] == UNKNOWN_DIRECTION and row["direction"] is None
    assert "direction unknown" in row["reason"] and row["best"] is None


def test_absolute_threshold_and_a_zero_reference():
    rows = history(("a" * 32, "succeeded", {"errors": 0}))
    assert report_of(rows, {"errors": 1})["regressed"] == ["errors"]  # any rise from 0 is beyond 1 % of 0
    lenient = Thresholds(Threshold(0.01, 2.0))
    assert report_of(rows, {"errors": 1}, thresholds=lenient)["regressed"] == []
    assert by_name(report_of(rows, {"errors": 1}))["errors"]["previous"]["relative"] is None


def test_hostile_metric_names_are_kept_as_data():
    hostile = "\x1b[31macc\u202e<b>&"
    rows = history(("a" * 32, "succeeded", {hostile: 0.9}))
    report = report_of(rows, {hostile: 0.5})
    assert report["regressed"] == [hostile]
    assert summary_lines(report)[0].startswith(f"regression: {hostile} = 0.5")  # the CLI prints it literally


def test_best_run_is_direction_aware_and_skips_failed_runs(tmp_path):
    nb = scored_notebook(tmp_path)
    store = default_run_store(nb)
    assert best_run(store, nb.resolve(), "accuracy") is None
    base = run(nb)
    run(nb, drop=0.1)
    run(nb, drop=-0.09, boom=True)  # failed: not a candidate
    best = best_run(store, nb.resolve(), "accuracy")
    assert best["run_id"] == base.run_id and best["direction"] == "max" and best["value"] == pytest.approx(0.9)
    assert best_run(store, nb.resolve(), "loss")["run_id"] == base.run_id
    assert best_run(store, nb.resolve(), "missing") is None
