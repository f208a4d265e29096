"""The run time inside each KFP component that nbscale generates (`compiler/targets/kfp.py`).

A generated component calls `run_step(...)`: it reads its input artifacts with nbscale's
marshalling, runs the step's cells with `execute_step` (prelude, parameters, inputs, cells — as
every engine does), writes each output (or group of outputs that may share objects) to its
output artifact in the artifact store's layout, logs metrics to the `dsl.Metrics` artifact, and
writes a record of the step (status, logs, timings, error mapped to the notebook cell) to the
`step_record` artifact. A failed step exits non-zero so that KFP marks the task failed and
applies its retries.

Artifact folders hold a manifest and one file per output, exactly like one entry of
`ArtifactStore`; so an artifact-store entry can be imported as a KFP artifact as it is.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import cloudpickle

from .errors import MarshalError
from .executor import StepResult, execute_step
from .marshal import type_name
from .store import ArtifactStore

RESULT_FILE = "result.json"
STARTED_FILE = "started.json"
KEPT_FOLDER = "kept"
TIMEOUT_GRACE_S = 10.0  # after a timeout, how long the step may take to unwind before the process ends
EXIT_FAILED = 1
EXIT_TIMEOUT = 124


class ArtifactFolder(ArtifactStore):
    """One artifact folder — a manifest and its files — at a given URL (a KFP artifact's path).

    Same layout as one entry of an `ArtifactStore` (`<store>/sha256/<digest>/`), so either can
    be read as the other. The key argument of put/get is kept for the manifest only.
    """

    def _dir(self, step_hash: str) -> str:
        return self.root


class StepTimeout(Exception):
    """Raised inside the step's code when it runs longer than its `timeout:` tag allows."""


def run_step(*, notebook: str, step: dict, prelude: dict, parameters: dict | None = None,
             json_parameters: dict | None = None, inputs: dict | None = None,
             outputs: dict | None = None, metrics: dict | None = None, metrics_artifact=None,
             timeout: int | None = None, keep: list[str] | None = None, record=None) -> None:
    """Run one notebook step inside a KFP component.

    `parameters`: name → value of the parameters the step reads; `json_parameters`: the same for
    parameters that travel as JSON text (lists, dicts, None). `inputs` / `outputs`: variable name
    → KFP artifact (names that share one artifact form a group). `metrics`: the notebook's
    metrics (names and expressions), logged to `metrics_artifact`. `keep`: names whose final
    values also go to the record (for `nbscale run --engine kfp-local`).
    """
    name = step["name"]
    record_dir = _local_dir(record) if record is not None else None
    attempt = _previous_attempt(record_dir) + 1
    started = time.time()
    if record_dir is not None:
        _write_json(record_dir / STARTED_FILE, {"step": name, "attempt": attempt, "started": started,
                                                "pid": os.getpid()})
    spec = {"name": name, "cells": step["cells"], "source": step["source"],
            "outputs": list(step.get("outputs", [])), "defines": list(keep or [])}
    metrics_spec = {"step": name, **metrics} if metrics else None
    try:
        values = dict(parameters or {})
        for key, text in (json_parameters or {}).items():
            values[key] = json.loads(text)
        loaded = _read_inputs(inputs or {}, name)
    except Exception as exc:  # noqa: BLE001 - a bad input is this step's failure, reported like one
        result = StepResult(step=name, status="failed",
                            error=_error(type(exc).__name__, f"step {name!r} could not read its inputs: {exc}"))
    else:
        try:
            with _Deadline(name, timeout, record_dir, attempt, started):
                result = execute_step(spec, prelude, values, loaded, metrics=metrics_spec, notebook=notebook)
        except StepTimeout as exc:  # it struck between two cells, outside the step's code
            result = StepResult(step=name, status="failed", error=_error("StepTimeout", str(exc)))
    _echo(result)
    if result.ok:
        _write_outputs(result, outputs or {}, name)
        if metrics_artifact is not None:
            for metric, value in result.metrics.items():
                if math.isfinite(value):
                    metrics_artifact.log_metric(metric, value)
    if record_dir is not None:
        if result.ok and keep:
            _keep(record_dir, result, name)
        _write_record(record_dir, result.to_json(), attempt, started, result.status)
        if record is not None:
            record.metadata.update({"status": result.status, "attempt": attempt, "wall_s": result.wall_s})
    if not result.ok:
        error = result.error
        where = f" at cell {error.cell}, line {error.line}" if error.cell is not None else ""
        print(error.traceback, file=sys.stderr)
        raise SystemExit(f"nbscale: step {name!r} of {notebook} failed{where}: {error.ename}: {error.evalue}")


# ---------------------------------------------------------------------------------------------
# Artifacts


def _local_dir(artifact) -> Path:
    return Path(artifact.path)


def _location(artifact) -> str:
    """Where an input artifact's files are: its local path, or its URI when nothing is mounted
    there (an artifact-store entry on object storage imported under kfp.local)."""
    path = artifact.path
    if path and os.path.exists(path):
        return path
    return artifact.uri


def _read_inputs(inputs: dict, step: str) -> dict:
    by_artifact: dict[str, list[str]] = {}
    for variable, artifact in inputs.items():
        by_artifact.setdefault(_location(artifact), []).append(variable)
    values = {}
    for where, names in by_artifact.items():
        # One read per artifact: the members of a group come back sharing their objects.
        values.update(ArtifactFolder(where).get(step, names))
    return values


def _write_outputs(result: StepResult, outputs: dict, step: str) -> None:
    units: dict[int, tuple[Any, list[str]]] = {}
    for variable, artifact in outputs.items():
        units.setdefault(id(artifact), (artifact, []))[1].append(variable)
    for artifact, names in units.values():
        values = {n: result.outputs[n] for n in names}
        try:
            manifest = ArtifactFolder(str(_local_dir(artifact))).put(
                step, values, [names] if len(names) > 1 else [], step)
        except MarshalError as exc:
            result.status, result.outputs = "failed", {}
            result.error = _error("MarshalError", str(exc))
            return
        artifact.metadata.update({
            "nbscale": "artifact/1",
            "names": names,
            "marshallers": {n: manifest["outputs"][n]["marshaller"] for n in names},
            "types": {n: type_name(values[n]) for n in names},
        })


def _keep(record_dir: Path, result: StepResult, step: str) -> None:
    """Final values of the kept names, best effort: what cannot be serialised is left out."""
    kept = {}
    for variable, value in result.namespace_values.items():
        if variable in result.outputs:
            continue
        try:
            cloudpickle.dumps(value)
        except Exception:  # noqa: BLE001 - any pickling failure means "not kept"
            continue
        kept[variable] = value
    if kept:
        try:
            ArtifactFolder(str(record_dir / KEPT_FOLDER)).put(step, kept, [], step)
        except MarshalError:
            pass


def _error(ename: str, evalue: str):
    from .executor import StepError

    return StepError(cell=None, line=None, ename=ename, evalue=evalue, traceback=evalue + "\n")


# ---------------------------------------------------------------------------------------------
# The record


def _previous_attempt(record_dir: Path | None) -> int:
    """Attempts before this one: KFP retries a task in the same output folder when run locally."""
    if record_dir is None:
        return 0
    try:
        return int(json.loads((record_dir / STARTED_FILE).read_text())["attempt"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def _write_record(record_dir: Path, summary: dict, attempt: int, started: float, status: str) -> None:
    summary = {**summary, "status": status, "attempt": attempt, "started": started, "finished": time.time()}
    _write_json(record_dir / RESULT_FILE, summary)


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, default=str), encoding="utf-8")
    tmp.replace(path)  # readers (the kfp-local engine polls) never see half a file


def _echo(result: StepResult) -> None:
    """What the step printed, to the component's own streams: KFP shows them as the task's logs."""
    if result.stdout:
        sys.stdout.write(result.stdout)
        sys.stdout.flush()
    if result.stderr:
        sys.stderr.write(result.stderr)
        sys.stderr.flush()


# ---------------------------------------------------------------------------------------------
# Timeout


class _Deadline:
    """The step's `timeout:`: a TimeoutError-like exception raised in the step's code (so the
    error points at the running cell and line), and, if the step does not unwind within a grace
    period (a long call into compiled code, an `except` that swallows it), the process ends."""

    def __init__(self, step: str, seconds: int | None, record_dir: Path | None, attempt: int, started: float):
        self.step, self.seconds, self.record_dir = step, seconds, record_dir
        self.attempt, self.started = attempt, started
        self.armed = bool(seconds) and threading.current_thread() is threading.main_thread()
        self.watchdog: threading.Timer | None = None

    def __enter__(self):
        if not self.armed:
            return self
        self.previous = signal.signal(signal.SIGALRM, self._alarm)
        signal.setitimer(signal.ITIMER_REAL, self.seconds)
        self.watchdog = threading.Timer(self.seconds + TIMEOUT_GRACE_S, self._expire)
        self.watchdog.daemon = True
        self.watchdog.start()
        return self

    def __exit__(self, *exc):
        if self.armed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self.previous)
            self.watchdog.cancel()
        return False

    def message(self) -> str:
        return f"step {self.step!r} ran longer than its timeout of {self.seconds} s"

    def _alarm(self, signum, frame):
        raise StepTimeout(self.message())

    def _expire(self):
        message = self.message() + " and did not stop; the process was ended"
        if self.record_dir is not None:
            summary = {"step": self.step, "error": {"cell": None, "line": None, "ename": "StepTimeout",
                                                     "evalue": message, "traceback": message + "\n",
                                                     "frames": []}, "stdout": "", "stderr": ""}
            _write_record(self.record_dir, summary, self.attempt, self.started, "failed")
        print(f"nbscale: {message}", file=sys.__stderr__, flush=True)
        os._exit(EXIT_TIMEOUT)
