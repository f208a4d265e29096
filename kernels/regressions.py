"""Metric regressions: is a run's metric worse than the previous run's or the best earlier run's,
beyond a threshold, in the metric's direction (`compiler.metric_direction`, as `compare.py` uses it)?

References are earlier *succeeded* runs of the same notebook (failed and cancelled runs are skipped)
that have a finite value of the metric: the newest of them is the previous run, the best of them
the best run. A change is a regression when it is worse than a reference by more than the relative
threshold (a share of the reference's magnitude) and by more than the absolute one. A metric whose
value is not a finite number (NaN, ±inf) while a reference has one is flagged; a first run has
nothing to compare with; a metric whose direction is unknown is not flagged and says so.

Thresholds: `DEFAULT_RELATIVE`, else pyproject.toml `[tool.nbscale.regressions]` (`threshold`,
`absolute`, and per metric `[tool.nbscale.regressions.metrics] accuracy = 0.02` or
`loss = {threshold = 0.05, absolute = 0.001}`), else a flag (`--regression-threshold`), which
overrides them all. The report is JSON; `best_run` is the best run of a metric (for sweeps).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..compiler.metric_direction import DIRECTIONS, MAX, metric_direction, notebook_directions
from .contract import SUCCEEDED
from .project_settings import SettingsError, non_negative, project_table
from .runschema import json_number

DEFAULT_RELATIVE = 0.01  # 1 % worse than a reference is a regression
DEFAULT_ABSOLUTE = 0.0
TABLE = "regressions"

# the status of one metric of a run
REGRESSED, OK, IMPROVED, FIRST, UNKNOWN_DIRECTION = "regressed", "ok", "improved", "first", "direction unknown"


@dataclass(frozen=True)
class Threshold:
    relative: float = DEFAULT_RELATIVE
    absolute: float = DEFAULT_ABSOLUTE

    def exceeded(self, worse_by: float, reference: float) -> bool:
        """Whether being `worse_by` (> 0) than `reference` is beyond this threshold."""
        return worse_by > self.relative * abs(reference) and worse_by > self.absolute

    def to_json(self) -> dict:
        return {"relative": self.relative, "absolute": self.absolute}


@dataclass(frozen=True)
class Thresholds:
    default: Threshold = Threshold()
    metrics: dict[str, Threshold] = field(default_factory=dict)

    def of(self, name: str) -> Threshold:
        return self.metrics.get(name, self.default)


def load_thresholds(notebook=None, relative: float | None = None, where: str = "--regression-threshold",
                    boundary=None) -> Thresholds:
    """The thresholds for `notebook`'s runs: defaults < its project's pyproject.toml < `relative`
    (a flag, named `where` in errors: one relative threshold for every metric). A bad setting is a
    SettingsError."""
    if relative is not None:
        return Thresholds(Threshold(non_negative(relative, where), DEFAULT_ABSOLUTE))
    table, origin = project_table(notebook, TABLE, boundary) if notebook is not None else ({}, "")
    unknown = set(table) - {"threshold", "absolute", "metrics"}
    if unknown:
        raise SettingsError(f"{origin}: unknown key(s) {', '.join(sorted(map(repr, unknown)))}; "
                            "known: threshold, absolute, metrics")
    default = Threshold(non_negative(table.get("threshold", DEFAULT_RELATIVE), f"{origin} threshold"),
                        non_negative(table.get("absolute", DEFAULT_ABSOLUTE), f"{origin} absolute"))
    per_metric = table.get("metrics", {})
    if not isinstance(per_metric, dict):
        raise SettingsError(f"{origin} metrics must be a table of metric = threshold")
    return Thresholds(default, {str(name): _metric_threshold(value, default, f"{origin} metrics.{name}")
                                for name, value in per_metric.items()})


def _metric_threshold(value, default: Threshold, where: str) -> Threshold:
    if isinstance(value, dict):
        unknown = set(value) - {"threshold", "absolute"}
        if unknown:
            raise SettingsError(f"{where}: unknown key(s) {', '.join(sorted(map(repr, unknown)))}; "
                                "known: threshold, absolute")
        return Threshold(non_negative(value.get("threshold", default.relative), f"{where}.threshold"),
                         non_negative(value.get("absolute", default.absolute), f"{where}.absolute"))
    return Threshold(non_negative(value, where), default.absolute)


# -- checking a run ---------------------------------------------------------------------------------


def check_run(store, run_id: str, thresholds: Thresholds | None = None, declared: dict | None = None) -> dict:
    """The regression report of a run (a unique id prefix works) from `store` (a RunStore):
    thresholds from the notebook's project unless given, directions the notebook declares unless
    given. Unknown ids raise the store's UnknownRun."""
    run = store.get_run(run_id)
    notebook = run["notebook"]
    if thresholds is None:
        thresholds = load_thresholds(notebook)
    if declared is None:
        declared = notebook_directions(notebook)
    return regression_report(store.metrics_history(notebook), run, thresholds, declared)


def regression_report(history: list[dict], run: dict, thresholds: Thresholds, declared: dict | None = None,
                      directions: dict | None = None) -> dict:
    """The report of `run` (a `get_run` row) against `history` (`metrics_history` rows, oldest run
    first). `directions`: a direction per metric that wins over `declared` and the name (a value
    other than min/max is an unknown direction)."""
    earlier = _earlier_runs(history, run["id"])
    rows = [metric_row(m["name"], m["value"], earlier, thresholds.of(m["name"]),
                       _direction(m["name"], declared, directions))
            for m in sorted(run.get("metrics") or [], key=lambda m: str(m["name"]))]
    return {"run_id": run["id"], "notebook": run["notebook"],
            "regressed": [row["name"] for row in rows if row["regressed"]], "metrics": rows}


def _direction(name: str, declared: dict | None, directions: dict | None) -> str | None:
    if directions is not None and name in directions:
        return directions[name] if directions[name] in DIRECTIONS else None
    return metric_direction(name, declared)


def _earlier_runs(history: list[dict], run_id: str) -> list[dict]:
    """The succeeded runs before `run_id`, oldest first, as {run_id, created, metrics: {name: finite value}}."""
    runs: dict[str, dict] = {}
    for row in history:
        if row["run_id"] == run_id:
            break
        if row["status"] != SUCCEEDED:
            continue
        entry = runs.setdefault(row["run_id"], {"run_id": row["run_id"], "created": row["created"], "metrics": {}})
        value = finite(row["value"])
        if value is not None:
            entry["metrics"][row["name"]] = value
    return list(runs.values())


def metric_row(name: str, value, earlier: list[dict], threshold: Threshold, direction: str | None) -> dict:
    """One metric of a run against the earlier runs: its references, its status, and why."""
    having = [r for r in earlier if name in r["metrics"]]
    previous = having[-1] if having else None
    best = best_of(having, name, direction) if direction in DIRECTIONS else None
    current = finite(value)
    references = {"previous": _reference(previous, name, current, direction, threshold),
                  "best": _reference(best, name, current, direction, threshold)}
    row = {"name": name, "value": json_number(value), "direction": direction, "threshold": threshold.to_json(),
           **references}
    if direction not in DIRECTIONS:
        return {**row, "status": UNKNOWN_DIRECTION, "regressed": False,
                "reason": "direction unknown: declare it in metadata.nbscale.metrics"}
    if previous is None:
        return {**row, "status": FIRST, "regressed": False, "reason": "no earlier succeeded run to compare with"}
    if current is None:
        return {**row, "status": REGRESSED, "regressed": True,
                "reason": f"is not a finite number ({value!r}); the previous run had {previous['metrics'][name]:.6g}"}
    worse = [(label, ref) for label, ref in references.items() if ref is not None and ref["regressed"]
             and not (label == "best" and ref["value"] == previous["metrics"][name])]  # said once
    if worse:
        return {**row, "status": REGRESSED, "regressed": True,
                "reason": "; ".join(_worse_text(label, ref) for label, ref in worse)}
    better = any(ref is not None and ref["better"] for ref in references.values())
    return {**row, "status": IMPROVED if better else OK, "regressed": False,
            "reason": "better than the previous run" if better else "within the threshold"}


def _reference(run: dict | None, name: str, current: float | None, direction: str | None,
               threshold: Threshold) -> dict | None:
    if run is None:
        return None
    value = run["metrics"][name]
    out = {"run_id": run["run_id"], "created": run["created"], "value": value,
           "delta": None, "relative": None, "regressed": False, "better": False}
    if current is None or direction not in DIRECTIONS:
        return out
    delta = current - value
    worse_by = -delta if direction == MAX else delta
    return {**out, "delta": json_number(delta), "relative": json_number(delta / abs(value)) if value else None,
            "regressed": threshold.exceeded(worse_by, value), "better": worse_by < 0}


def _worse_text(label: str, ref: dict) -> str:
    change = f"{ref['relative']:+.1%}" if ref["relative"] is not None else f"{ref['delta']:+.4g}"
    which = "the previous run" if label == "previous" else "the best run"
    return f"{change} against {which} {ref['run_id'][:8]} ({ref['value']:.6g})"


def best_of(runs: list[dict], name: str, direction: str) -> dict | None:
    """The run with the best finite value of `name` (ties: the earliest), of {run_id, created, metrics}."""
    best = None
    for run in runs:
        value = run["metrics"].get(name)
        if value is None:
            continue
        if best is None or (value > best["metrics"][name] if direction == MAX else value < best["metrics"][name]):
            best = run
    return best


def best_run(store, notebook, metric: str, declared: dict | None = None) -> dict | None:
    """The succeeded run of `notebook` with the best finite value of `metric`, in its direction
    (ties: the earliest): {run_id, created, value, direction}; None when no run has a value."""
    notebook = str(notebook)
    if declared is None:
        declared = notebook_directions(notebook)
    direction = metric_direction(metric, declared)
    runs = _earlier_runs(store.metrics_history(notebook), run_id="")
    best = best_of(runs, metric, direction)
    if best is None:
        return None
    return {"run_id": best["run_id"], "created": best["created"], "value": best["metrics"][metric],
            "direction": direction}


def finite(value) -> float | int | None:
    """A metric value as a finite number, else None (NaN, infinities, None, what is not a number)."""
    return int(value) if isinstance(value, bool) else json_number(value)


def summary_lines(report: dict) -> list[str]:
    """What `nbscale run` prints: one line per regressed metric (names as given: print them literally)."""
    return [f"regression: {row['name']} = {_shown(row['value'])} ({row['reason']})"
            for row in report["metrics"] if row["regressed"]]


def _shown(value) -> str:
    return "nan" if value is None else f"{value:.6g}" if isinstance(value, float) else str(value)
