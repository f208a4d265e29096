"""The run time inside each KFP component that nbscale generates (`compiler/targets/kfp/dsl.py`).

A generated component calls `run_kfp_step(...)`: it reads its input artifacts with nbscale's
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
import socket
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

from ..compiler.notebook import cell_label
from .contract import (
    FAILED,
    TIMEOUT_SWALLOWED,
    deadline,
    error_dict,
    explain_timeout,
    past_timeout_last_words,
    timeout_message,
    unstorable_output,
)
from .errors import MarshalError, StepTimeout
from .executor import StepError, StepResult, execute_step
from .fatal_errors import watch
from .marshal import type_name
from .masking import kept_values
from .store import FORMAT, ArtifactStore

RESULT_FILE = "result.json"
STARTED_FILE = "started.json"
KEPT_FOLDER = "kept"


class ArtifactFolder(ArtifactStore):
    """One artifact folder — a manifest and its files — at a given URL (a KFP artifact's path).

    Same layout as one entry of an `ArtifactStore` (`<store>/sha256/<digest>/`), so either can
    be read as the other. The key argument of put/get is kept for the manifest only.
    """

    folder_per_key = False  # its one folder holds what a step wrote under its own key
    keeps_room = False  # no cache: the task's output, which its readers cannot do without

    def _dir(self, step_hash: str) -> str:
        return self.root


def run_kfp_step(*, notebook: str, step: dict, prelude: dict, parameters: dict | None = None,
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
    record_dir = Path(record.path) if record is not None else None
    attempt = _previous_attempt(record_dir) + 1
    started = time.time()
    # a crash in compiled code: its stack in the task's log (on a cluster, the pod's), and in the file that
    # `kfp-local` finds by the pid and host recorded below (`fatal_errors.watch`)
    watch(echo=True)
    if record_dir is not None:
        _write_json(record_dir / STARTED_FILE, {"step": name, "attempt": attempt, "started": started,
                                                "pid": os.getpid(), "host": socket.gethostname()})
    spec = {"name": name, "cells": step["cells"], "source": step["source"],
            "outputs": list(step.get("outputs", [])), "defines": list(keep or []),
            "settings": list(step.get("settings", []))}
    metrics_spec = {"step": name, **metrics} if metrics else None
    try:
        values = dict(parameters or {})
        for key, text in (json_parameters or {}).items():
            values[key] = json.loads(text)
        loaded = _read_inputs(inputs or {}, name)
    except Exception as exc:  # noqa: BLE001 - a bad input is this step's failure, reported like one
        result = _failed(name, type(exc).__name__, f"step {name!r} could not read its inputs: {exc}")
    else:
        try:
            last_words = partial(_record_timeout, record_dir, name, attempt, started)
            with past_timeout_last_words(last_words), deadline(timeout, step=name) as timer:
                result = execute_step(spec, prelude, values, loaded, metrics=metrics_spec, notebook=notebook)
        except StepTimeout:  # it struck between two cells, outside the step's code
            result = _failed(name, "StepTimeout", timeout_message(name, timeout))
        else:
            if timer.struck and result.ok:  # its code caught the timeout and ended: what it made may be cut short
                result = _failed(name, "StepTimeout", timeout_message(name, timeout) + TIMEOUT_SWALLOWED)
        explain_timeout(result.error, name, timeout)
    _echo(result)
    if result.ok:
        _write_outputs(result, outputs or {}, spec)
        if metrics_artifact is not None:
            for metric, value in result.metrics.items():
                if math.isfinite(value):
                    metrics_artifact.log_metric(metric, value)
    if record_dir is not None:
        if result.ok and keep:
            _keep(record_dir, result, name)
        # the dependencies the step used, for the kfp-local engine's cache (see kernels/fingerprints.py)
        record_json = {**result.to_json(), "dependencies": result.dependencies}
        _write_record(record_dir, record_json, attempt, started, result.status)
        record.metadata.update({"status": result.status, "attempt": attempt, "wall_s": result.wall_s})
    if not result.ok:
        error = result.error
        where = f" at {cell_label(error.cell, error.line)}" if error.cell is not None else ""
        print(error.traceback, file=sys.stderr)
        raise SystemExit(f"nbscale: step {name!r} of {notebook} failed{where}: {error.ename}: {error.evalue}")


# Pipelines compiled by nbscale before run_kfp_step had its name import `run_step` inside their
# containers; they keep working against a newer run time.
run_step = run_kfp_step


def _failed(step: str, ename: str, evalue: str) -> StepResult:
    """A step that failed outside its cells (reading inputs, a timeout between cells, marshalling)."""
    return StepResult(step=step, status=FAILED, error=StepError(**error_dict(ename, evalue)))


# ---------------------------------------------------------------------------------------------
# Artifacts


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


def _write_outputs(result: StepResult, outputs: dict, spec: dict) -> None:
    step = spec["name"]
    units: dict[int, tuple[Any, list[str]]] = {}
    for variable, artifact in outputs.items():
        units.setdefault(id(artifact), (artifact, []))[1].append(variable)
    for artifact, names in units.values():
        values = {n: result.outputs[n] for n in names}
        groups = [names] if len(names) > 1 else []
        try:
            manifest = ArtifactFolder(str(Path(artifact.path))).put(step, values, groups, step)
        except MarshalError as exc:
            result.status, result.outputs = FAILED, {}
            result.error = StepError(**unstorable_output(exc.variable, str(exc), spec))
            return
        artifact.metadata.update({
            "nbscale": FORMAT.split(".", 1)[1],  # artifact/N: the store format this artifact holds
            "names": names,
            "marshallers": {n: manifest["outputs"][n]["marshaller"] for n in names},
            "types": {n: type_name(values[n]) for n in names},
        })


def _keep(record_dir: Path, result: StepResult, step: str) -> None:
    """Final values of the kept names, best effort: the store leaves out what cannot be serialised."""
    kept = kept_values({n: v for n, v in result.namespace_values.items() if n not in result.outputs})
    if kept:
        ArtifactFolder(str(record_dir / KEPT_FOLDER)).put(step, kept, [], step, optional=kept)


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


def _record_timeout(record_dir: Path | None, step: str, attempt: int, started: float, message: str) -> None:
    """The record of a step whose process ends past its timeout (`past_timeout_last_words`)."""
    if record_dir is not None:
        summary = {"step": step, "error": error_dict("StepTimeout", message), "stdout": "", "stderr": ""}
        _write_record(record_dir, summary, attempt, started, FAILED)
