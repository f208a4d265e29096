"""Two or more runs side by side, from the run store: the comparison model (plain JSON dicts) that the
panel's comparison view and `nbscale diff` both show.

The first run is the reference: parameters that differ from it are `changed`, metric deltas are
measured from it (and whether each is better follows the metric's direction,
`compiler.metric_direction`), and a step's reason to re-run is said against it: a different key
(code, parameters it reads or inputs changed), dependencies that changed since the stored result
(`step_runs.stale`), or no stored result it could reuse. Runs of another notebook than the first
run's may be compared; they are flagged (`other_notebook`).
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from ..compiler.metric_direction import MAX, metric_direction, notebook_directions
from .contract import CACHED, FAILED, SUCCEEDED
from .runschema import json_number

UNREADABLE_PARAMETERS = "(parameters the run store cannot read)"

RAN = (SUCCEEDED, FAILED)  # the step's code ran in this run

# Why a step ran (or not), against the reference run.
CACHED_REASON = "reused the stored result"
NEW_STEP = "a step the reference run does not have"
KEY_CHANGED = "its code, the parameters it reads or its inputs changed"
NOT_STORED = "no stored result to reuse (first run, cache off, or it was not stored)"


def compare_runs(store, run_ids: list[str], declared: dict[str, str] | None = None) -> dict:
    """The comparison of `run_ids` (unique id prefixes work) from `store` (a RunStore); unknown ids
    raise the store's UnknownRun. `declared`: metric directions the notebook declares (read from the
    reference run's notebook when None)."""
    runs = [store.get_run(run_id) for run_id in run_ids]
    if declared is None:
        declared = notebook_directions(runs[0]["notebook"]) if runs else {}
    return comparison(runs, declared)


def comparison(runs: list[dict], declared: dict[str, str] | None = None) -> dict:
    """The comparison model of run rows as `RunStore.get_run` returns them."""
    notebook = runs[0]["notebook"] if runs else None
    return {
        "notebook": notebook,
        "runs": [run_header(run, notebook) for run in runs],
        "parameters": parameter_rows(runs),
        "steps": step_rows(runs),
        "metrics": metric_rows(runs, declared or {}),
        **drift_section(runs),
    }


def drift_section(runs: list[dict]) -> dict:
    """`drift`: the data drift of each later run's step outputs against the reference run's, one row
    per column (`drift.comparison_drift`); no section when no run has data profiles to compare."""
    from .drift import comparison_drift  # numpy and the sketches: only when runs are compared

    rows = comparison_drift(runs)
    return {"drift": rows} if rows else {}


def run_header(run: dict, notebook: str | None) -> dict:
    return {
        "run_id": run["id"], "notebook": run["notebook"], "other_notebook": run["notebook"] != notebook,
        "pipeline": run.get("pipeline"), "engine": run.get("engine"), "status": run["status"],
        "created": run.get("created"), "started": run.get("started"), "finished": run.get("finished"),
        "duration_s": run_duration(run),
    }


def run_duration(run: dict) -> float | None:
    """Seconds from start (or creation) to finish; None for a run that has not finished."""
    start, end = _time(run.get("started") or run.get("created")), _time(run.get("finished"))
    return None if start is None or end is None else round(max(0.0, (end - start).total_seconds()), 6)


def parameter_rows(runs: list[dict]) -> list[dict]:
    """One row per parameter: its value in each run (`set` false where the run has none)."""
    params = [_parameters(run) for run in runs]
    names = _ordered(name for p in params for name in p)
    rows = []
    for name in names:
        values = [_json(p.get(name)) for p in params]
        present = [name in p for p in params]
        rows.append({"name": name, "values": values, "set": present,
                     "changed": any((v, s) != (values[0], present[0]) for v, s in zip(values, present))})
    return rows


def _parameters(run: dict) -> dict:
    """A run's parameters; what a damaged run store holds instead of an object (a cut JSON text, a
    list) is shown as one row rather than failing the comparison."""
    found = run.get("parameters")
    if found is None or isinstance(found, dict):
        return found or {}
    return {UNREADABLE_PARAMETERS: found}


def step_rows(runs: list[dict]) -> list[dict]:
    """One row per step: in each run its status, duration, whether it ran and why (None: not in that run)."""
    by_run = [{s["step"]: s for s in run.get("steps") or []} for run in runs]
    names = _ordered(s["step"] for run in runs for s in sorted(run.get("steps") or [], key=lambda s: s["position"]))
    rows = []
    for name in names:
        reference = by_run[0].get(name) if by_run else None
        cells = [None if name not in steps else step_cell(steps[name], reference, i == 0)
                 for i, steps in enumerate(by_run)]
        # re-ran: its code ran again in a run after the reference (not cached, not skipped)
        rows.append({"name": name, "runs": cells, "reran": any(cell is not None and cell["ran"] for cell in cells[1:])})
    return rows


def step_cell(step: dict, reference: dict | None, is_reference: bool) -> dict:
    ran = step["status"] in RAN
    return {"status": step["status"], "duration_s": json_number(step.get("duration_s")),
            "cached": step["status"] == CACHED,
            "ran": ran, "hash": step.get("hash"), "stale": [str(s) for s in step.get("stale") or []],
            "why": why_ran(step, reference, is_reference)}


def why_ran(step: dict, reference: dict | None, is_reference: bool) -> str:
    """Why the step's code ran (or what happened instead), said against the reference run's step."""
    status = step["status"]
    if status == CACHED:
        return CACHED_REASON
    if status not in RAN:
        return f"did not run ({status.replace('_', ' ')})"
    stale = [str(s) for s in step.get("stale") or []]
    if stale:
        return "its stored result was stale: " + "; ".join(stale)
    if not is_reference:
        if reference is None:
            return NEW_STEP
        if step.get("hash") and reference.get("hash") and step["hash"] != reference["hash"]:
            return KEY_CHANGED
    return NOT_STORED


def metric_rows(runs: list[dict], declared: dict[str, str]) -> list[dict]:
    """One row per metric: its value in each run, the delta from the reference run, better or worse."""
    values_by_run = [{m["name"]: json_number(m["value"]) for m in run.get("metrics") or []} for run in runs]
    names = sorted({name for values in values_by_run for name in values})
    rows = []
    for name in names:
        direction = metric_direction(name, declared)
        values = [values.get(name) for values in values_by_run]
        base = values[0] if values else None
        deltas = [None if v is None or base is None else v - base for v in values]
        rows.append({
            # a difference of two finite numbers may still overflow: JSON carries no infinity
            "name": name, "direction": direction, "values": values, "deltas": [json_number(d) for d in deltas],
            "relative": [None if d is None or not base else json_number(d / abs(base)) for d in deltas],
            "better": [None if d is None or d == 0 else (d > 0) == (direction == MAX) for d in deltas],
            "changed": any(v != base for v in values),
        })
    return rows


def _ordered(names) -> list[str]:
    seen: dict[str, None] = {}
    for name in names:
        seen.setdefault(name, None)
    return list(seen)


def _time(text: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None


def _json(value: Any) -> Any:
    """Parameter values as JSON values (non-finite floats → None)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json(v) for v in value]
    return value
