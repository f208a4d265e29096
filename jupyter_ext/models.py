"""JSON models for the panel: plain dicts built from the IR, run-store rows and Dask scheduler info.

This is the boundary shared with the TypeScript front end (docs/api.md): nothing here imports
Dask, tornado or jupyter_server (statuses and event kinds are the run time's `contract` names),
and nothing returned holds anything but JSON values. Notebook paths in models are the API paths
(relative to the server's root), never absolute server paths.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any

from nbscale.compiler.metric_direction import metric_directions
from nbscale.kernels.contract import (
    CACHED,
    PENDING,
    QUEUED,
    RUN_CREATED,
    RUN_FINISHED,
    RUN_STARTED,
    RUNNING,
    STEP_CACHED,
    STEP_FINISHED,
    STEP_QUEUED,
    STEP_STARTED,
)
from nbscale.kernels.runschema import json_number

LOG_LIMIT = 200_000  # characters of a step's stdout/stderr sent to the panel (the end is kept)


def pipeline_model(ir: dict, notebook: str) -> dict:
    """PipelineModel from an IR dict (`Pipeline.to_json()`)."""
    steps, edges = [], []
    for step in ir["steps"]:
        steps.append({
            "name": step["name"], "cells": list(step["cells"]), "inputs": list(step["inputs"]),
            "outputs": list(step["outputs"]), "resources": dict(step.get("resources") or {}),
            "hash": step.get("hash", ""),
        })
        sources = step.get("sources") or {}
        for upstream in step["after"]:
            names = sorted(name for name, producer in sources.items() if producer == upstream)
            edges.append({"from": upstream, "to": step["name"], "names": names})
    metrics = ir.get("metrics") or {}
    return {
        "notebook": notebook,
        "name": ir["name"],
        "steps": steps,
        "edges": edges,
        "parameters": [{"name": p["name"], "type": p["type"], "default": _json_value(p["default"])}
                       for p in ir["parameters"]],
        "diagnostics": [{key: d.get(key) for key in ("severity", "code", "message", "cell", "line", "col", "hint")}
                        for d in ir["diagnostics"]],
        "metrics": {"step": metrics.get("step"), "names": list(metrics.get("names") or [])},
    }


def run_summary(run: dict, notebook: str) -> dict:
    """RunSummary from a run-store run row."""
    return {
        "run_id": run["id"], "notebook": notebook, "engine": run["engine"], "status": run["status"],
        "created": run["created"], "started": run.get("started"), "finished": run.get("finished"),
        "parameters": _json_value(run.get("parameters") or {}),
    }


def run_detail(run: dict, notebook: str) -> dict:
    """RunDetail from `RunStore.get_run()`: the summary, every step run, the metrics, the run error."""
    detail = run_summary(run, notebook)
    detail["steps"] = [step_run(s) for s in run.get("steps", [])]
    detail["metrics"] = {m["name"]: json_number(m["value"]) for m in run.get("metrics", [])}
    detail["error"] = _text(run.get("error"))
    return detail


def step_run(row: dict) -> dict:
    return {
        "name": row["step"], "status": row["status"], "duration_s": json_number(row.get("duration_s")),
        "cached": bool(row.get("cached")), "attempts": row.get("attempts") or 0,
        "started": row.get("started"), "finished": row.get("finished"),
        "stdout": _log(row.get("stdout")), "stderr": _log(row.get("stderr")),
        "error": step_error(row.get("error")),
        "stale": [str(text) for text in row.get("stale") or []],  # the dependencies that changed
    }


def step_error(error: Any) -> dict | None:
    """`{cell, line, ename, evalue, traceback}`; a plain-text reason (e.g. "upstream failed: a")
    becomes `evalue` with empty `ename` and `traceback`."""
    if error is None or error == "":
        return None
    if isinstance(error, dict):
        return {"cell": error.get("cell"), "line": error.get("line"), "ename": str(error.get("ename") or ""),
                "evalue": str(error.get("evalue") or ""), "traceback": _log(str(error.get("traceback") or ""))}
    return {"cell": None, "line": None, "ename": "", "evalue": str(error), "traceback": ""}


def metrics_model(history: list[dict], declared: dict[str, str] | None = None) -> dict:
    """`{names, runs, directions}` from `RunStore.metrics_history()` rows (oldest run first); `directions`:
    "min" or "max" per metric, as the notebook declares (`declared`) or its name says (metric_direction)."""
    runs: dict[str, dict] = {}
    names: set[str] = set()
    for row in history:
        names.add(row["name"])
        run = runs.setdefault(row["run_id"], {"run_id": row["run_id"], "created": row["created"],
                                              "status": row["status"], "metrics": {}})
        run["metrics"][row["name"]] = json_number(row["value"])
    return {"names": sorted(names), "runs": list(runs.values()),
            "directions": metric_directions(sorted(names), declared)}


def cluster_model(identity: dict, *, kind: str, task_states: dict | None = None,
                  adaptive: dict | None = None, dashboard_link: str | None = None,
                  dashboard: dict | None = None) -> dict:
    """ClusterModel from the scheduler's identity (`scheduler.identity(n_workers=-1)` or a sync
    client's `scheduler_info()`), in the manner of dask-labextension's `make_cluster_model`."""
    workers = []
    for address, info in sorted((identity.get("workers") or {}).items(), key=lambda kv: str(kv[1].get("name"))):
        metrics = info.get("metrics") or {}
        workers.append({
            "address": address, "name": str(info.get("name", address)), "nthreads": int(info.get("nthreads") or 0),
            "memory_used": int(metrics.get("memory") or 0), "memory_limit": int(info.get("memory_limit") or 0),
            "cpu": json_number(metrics.get("cpu")) or 0.0,
        })
    return {
        "status": "running",  # the cluster's state, not a step status
        "kind": kind,
        "scheduler_address": identity.get("address", ""),
        "dashboard_link": dashboard_link,
        "dashboard": dashboard,  # cluster.dashboard_model: {link, proxy_path, note}; None for a run's own cluster
        "workers": workers,
        "threads": sum(w["nthreads"] for w in workers),
        "memory_used": sum(w["memory_used"] for w in workers),
        "memory_limit": sum(w["memory_limit"] for w in workers),
        "cpu": sum(w["cpu"] for w in workers),
        "tasks": tasks_by_state(task_states or {}),
        "adaptive": dict(adaptive) if adaptive else None,
    }


def tasks_by_state(prefix_states: dict) -> dict:
    """Sum the scheduler's `get_task_prefix_states()` ({prefix: {state: n}}) over prefixes."""
    totals: dict[str, int] = {}
    for states in prefix_states.values():
        for state, count in states.items():
            totals[state] = totals.get(state, 0) + int(count or 0)
    return totals


def no_cluster(error: str | None = None) -> dict:
    return {"status": "none", **({"error": error} if error else {})}


def event(kind: str, run_id: str, step: str | None, payload: dict | None) -> dict:
    """Event from a run-time event (`on_event(kind, step, payload)` of `run_notebook`); the runner's
    kind is kept in `payload.kind`, timestamps are ISO strings, a step error has StepRun's shape."""
    payload = dict(payload or {})
    if kind == RUN_CREATED:
        return run_created_event(run_id)
    if kind == RUN_STARTED:
        return {"type": "run", "run_id": run_id, "status": RUNNING,
                "payload": {"kind": kind, **_json_value(payload)}}
    if kind == RUN_FINISHED:
        return {"type": "run", "run_id": run_id, "status": payload.get("status"),
                "payload": {"kind": kind, "finished": payload.get("finished") or _now()}}
    status = {STEP_QUEUED: QUEUED, STEP_STARTED: RUNNING, STEP_CACHED: CACHED}.get(kind) or payload.get("status")
    out = {"type": "step" if step else "run", "run_id": run_id, "step": step,
           "payload": {"kind": kind, **_json_value(_event_payload(kind, payload))}}
    if status:
        out["status"] = status
    return out


def run_created_event(run_id: str) -> dict:
    """The server's own event for a run it started, as soon as the run store has the run."""
    return {"type": "run", "run_id": run_id, "status": PENDING, "payload": {"kind": RUN_CREATED}}


def _event_payload(kind: str, payload: dict) -> dict:
    if kind == STEP_STARTED:
        return {**payload, "started": _iso(payload.get("started")) or _now()}
    if kind != STEP_FINISHED:
        return {k: v for k, v in payload.items() if k != "summary"}
    summary = payload.get("summary") or {}
    error = summary.get("error") or summary.get("reason") or payload.get("error")
    out = {"duration_s": json_number(summary.get("wall_s", payload.get("duration_s"))), "error": step_error(error),
           "started": _iso(payload.get("started")), "finished": _iso(payload.get("finished")) or _now()}
    if payload.get("attempts") is not None:
        out["attempts"] = payload["attempts"]
    if payload.get("status") == CACHED:
        out["cached"] = True
    return {k: v for k, v in out.items() if v is not None or k == "error"}


def _iso(value: Any) -> str | None:
    if value is None or value == 0 or value == "":
        return None
    if isinstance(value, str):
        return value
    try:
        return datetime.fromtimestamp(float(value), timezone.utc).isoformat(timespec="microseconds")
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else str(value)


def _log(text: str | None) -> str:
    text = text or ""
    if len(text) <= LOG_LIMIT:
        return text
    return f"[… {len(text) - LOG_LIMIT} characters cut …]\n" + text[-LOG_LIMIT:]


def _json_value(value: Any) -> Any:
    """Only JSON: non-finite floats → None, tuples → lists, unknown objects → str."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (str, int, bool)):
        return value
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    return str(value)
