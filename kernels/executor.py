"""Run one pipeline step in a fresh namespace, in the current process.

`execute_step` is what the engines call inside a task: prelude cells, then the parameters, then
the inputs, then the step's cells one by one — each through the process's IPython step shell
(`shell`), so `%magic`, `%%cellmagic` and `!shell` work as in the notebook. Its `StepResult`
holds the step's outputs, what it printed and displayed (`capture`), a failure mapped back to
notebook cell and line (`tracebacks`), its metrics (`namespace`), and its wall time, CPU time
and peak memory. Steps in one process run one at a time.

`sys.exit()` / `sys.exit(0)` in a cell ends the step there, successfully: its later cells are
skipped and its outputs are what it defined so far (as papermill stops a notebook cleanly);
any other exit code fails the step like an exception. Every engine keeps this rule.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

from ..compiler.credentials import may_be_credential, secret_name
from ..compiler.ir import Metrics, Prelude, Step
from ..compiler.notebook import cell_label
from .capture import RssSampler, StepRun, json_safe
from .contract import FAILED, SUCCEEDED, code_starts, error_dict, missing_outputs_message
from .dependencies import (
    forget_bytecode,
    fresh_generators,
    local_module_names,
    outdated_modules,
    record,
    shadowed_modules,
)
from .interrupts import raised_by_code
from .mentions import step_texts
from .namespace import evaluate_metrics, rebind_functions, remember_origins, replay_settings
from .process_state import library_imports_kept
from .shell import StepEnvironment, StepShell, step_shell
from .tracebacks import Frame, StepError, format_exception, step_error

__all__ = ["FAILED", "SUCCEEDED", "Frame", "StepError", "StepResult", "evict_outdated_modules", "execute_step",
           "is_clean_exit"]


@dataclass
class StepResult:
    step: str
    status: str  # SUCCEEDED | FAILED
    outputs: dict = field(default_factory=dict)
    namespace_values: dict = field(default_factory=dict)
    stdout: str = ""
    stderr: str = ""
    displays: list[dict] = field(default_factory=list)
    error: StepError | None = None
    wall_s: float = 0.0
    cpu_s: float = 0.0
    peak_rss_bytes: int = 0
    metrics: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    started_at: float = 0.0  # epoch seconds
    # Per executed cell, in order: {"cell", "started", "finished", "outputs"} where outputs are
    # nbformat outputs (stream, display_data, execute_result) in the order the cell made them.
    cells: list[dict] = field(default_factory=list)
    # What the step used beyond its code (files, local modules, versions, environment), recorded
    # while it ran: `fingerprints.check` tells later whether a cached result still holds.
    dependencies: dict | None = None

    @property
    def ok(self) -> bool:
        return self.status == SUCCEEDED

    def to_json(self) -> dict:
        """A JSON-safe summary: everything but the values (outputs are listed by name)."""
        return {
            "step": self.step,
            "status": self.status,
            "outputs": sorted(self.outputs),
            "stdout": self.stdout,
            "stderr": self.stderr,
            "displays": json_safe(self.displays),
            "error": asdict(self.error) if self.error is not None else None,
            "wall_s": self.wall_s,
            "cpu_s": self.cpu_s,
            "peak_rss_bytes": self.peak_rss_bytes,
            "metrics": {k: v if math.isfinite(v) else None for k, v in self.metrics.items()},
            "warnings": list(self.warnings),
            "started_at": self.started_at,
            "cells": json_safe(self.cells),
        }


def execute_step(
    step,
    prelude,
    parameters: dict,
    inputs: dict,
    *,
    metrics=None,
    cwd: str | None = None,
    notebook: str = "",
) -> StepResult:
    """Run `step` in a fresh namespace: prelude cells, parameters, inputs, then its cells.

    `step`, `prelude` and `metrics` may be IR dataclasses or their JSON dicts. Parameter and
    input values are bound as Python objects. A KeyboardInterrupt in the main thread (Ctrl-C, a
    kernel's interrupt) propagates; any other failure of the step's code, a KeyboardInterrupt it
    raised in another thread (a worker's) among them, is reported in the result.
    """
    step, prelude, metrics = _coerce_ir(step, prelude, metrics)
    with step_shell() as shell:
        run = StepRun(step, prelude)
        result = StepResult(step=step.name, status=SUCCEEDED, started_at=time.time())
        evict_outdated_modules(cwd or os.getcwd())
        code_starts()
        wall0, cpu0 = time.perf_counter(), time.process_time()
        plain = _not_credentials(parameters or {})  # (a secret's text, taken for a file's name, was recorded)
        named = step_texts(step.source, prelude.source, plain)  # what names its files (`mentions`)
        given = [*plain.values(), *(v for k, v in (inputs or {}).items() if not secret_name(k))]  # (texts too)
        with (record(cwd or os.getcwd(), named, given, notebook) as recording, RssSampler() as sampler,
              StepEnvironment(shell, run, cwd=cwd, notebook=notebook) as ns):
            with library_imports_kept():
                result.error, stopped = _run_cells(shell, run, prelude.cells, prelude.source)
            if result.error is None and stopped is None:
                ns.update(parameters or {})
                ns.update(rebind_functions(inputs or {}, ns))
                error = replay_settings(step.settings, ns)  # what earlier steps set process-wide
                result.error = StepError(**error) if error is not None else None
            if result.error is None and stopped is None:
                result.error, stopped = _run_cells(shell, run, step.cells, step.source)
            _collect(result, step, metrics, ns, notebook, stopped)
            recording.note_sys_path()
            recording.fresh_generators = fresh_generators(step.source)
        result.wall_s = time.perf_counter() - wall0
        result.cpu_s = time.process_time() - cpu0
        result.peak_rss_bytes = sampler.peak
        result.stdout, result.stderr = run.stdout_text(), run.stderr_text()
        result.displays = run.displays
        result.cells = run.cell_outputs()
        if result.error is None:
            # (once the recording ended: nbscale's own looks are no events of the step's)
            recording.mention_built(*made_here(result.namespace_values, step.outputs))
            result.dependencies = recording.fingerprint()
        if result.error is not None:
            result.status = FAILED
            result.outputs = {}
        return result


def _not_credentials(parameters: dict) -> dict:
    """`parameters` but those that may hold a credential (by name or text, as the run store hides
    them): no file name a fingerprint records is taken from them."""
    return {name: value for name, value in parameters.items() if not may_be_credential(name, value)}


def made_here(defined: dict, outputs) -> tuple[list, list]:
    """The values a step made for itself, and those it hands on (`Recording.mention_built`)."""
    return ([value for name, value in defined.items() if name not in outputs],
            [value for name, value in defined.items() if name in outputs])


def evict_outdated_modules(folder: str | None = None) -> None:
    """Forget local modules edited since this process imported them, and those of another notebook
    folder that `folder` (the step's) has its own module of the name of: the step imports them again
    and runs the code its fingerprint records, not what an earlier step on this worker saw."""
    outdated = outdated_modules()
    for name in outdated:  # imported again below: from their source, not from bytecode cached before the change
        forget_bytecode(getattr(sys.modules.get(name), "__file__", None))
    stale = outdated + (shadowed_modules(folder) if folder else [])
    if stale:
        # every local module steps imported goes: one that imported a stale one holds its old objects
        # (`from util import K`), and a package keeps its old submodule as an attribute (`from pkg import mod`)
        stale += local_module_names()
    for name in stale:
        sys.modules.pop(name, None)


def _coerce_ir(step, prelude, metrics) -> tuple[Step, Prelude, Metrics | None]:
    step = _coerce(step, Step)
    prelude = _coerce(prelude, Prelude) if prelude is not None else Prelude()
    metrics = _coerce(metrics, Metrics) if metrics is not None else None
    if len(step.cells) != len(step.source):
        raise ValueError(f"step {step.name!r}: {len(step.cells)} cells but {len(step.source)} sources")
    if len(prelude.cells) != len(prelude.source):
        raise ValueError(f"prelude: {len(prelude.cells)} cells but {len(prelude.source)} sources")
    return step, prelude, metrics


def _coerce(value, cls):
    if isinstance(value, cls):
        return value
    if isinstance(value, Mapping):
        return cls(**value)
    raise TypeError(f"expected {cls.__name__} or dict, got {type(value).__name__}")


def is_clean_exit(exc: BaseException | None) -> bool:
    """`sys.exit()`, `sys.exit(0)`, `raise SystemExit`: the step stops there and succeeds."""
    # the exit status Python would give: 0 for None and integer 0 (False too); anything else is a failure
    return isinstance(exc, SystemExit) and (exc.code is None or (isinstance(exc.code, int) and exc.code == 0))


def _run_cells(shell: StepShell, run: StepRun, cells: list[int], sources: list[str]
               ) -> tuple[StepError | None, int | None]:
    """Run the cells in order until one fails or exits cleanly: (its error, the cell that exited)."""
    for cell, source in zip(cells, sources):
        run.start_cell(cell)
        shell.compile.current = (cell, source)
        run.pending_tracebacks.clear()
        try:
            outcome = shell.run_cell(source, store_history=True)
        finally:
            shell.compile.current = None
            run.finish_cell()
        exc = outcome.error_before_exec or outcome.error_in_exec
        if (isinstance(exc, KeyboardInterrupt) and threading.current_thread() is threading.main_thread()
                and not raised_by_code(exc)):
            raise exc  # Ctrl-C, SIGTERM, a kernel's interrupt: the run is cancelled
        # elsewhere (a worker's thread) no signal can raise it, nor when none came: the step's code
        # did, and failed
        # Tracebacks IPython showed that are not this cell's failure (a failing event callback,
        # a traceback the code asked for) go to stderr, as they would be printed in Jupyter.
        for shown in run.pending_tracebacks:
            if shown is not exc:
                run.stderr.write(format_exception(shown, run.sources))
        run.pending_tracebacks.clear()
        if is_clean_exit(exc):
            return None, cell
        if exc is not None:
            before_exec = outcome.error_before_exec is not None
            return step_error(exc, cell, run.sources, before_exec=before_exec), None
    return None, None


def _collect(result: StepResult, step: Step, metrics: Metrics | None, ns: dict, notebook: str,
             exited: int | None) -> None:
    """Metrics, defined names and outputs from the step's namespace, while it is installed."""
    if result.error is None and metrics is not None and metrics.step == step.name:
        result.metrics, metric_warnings = evaluate_metrics(metrics, ns)
        result.warnings.extend(metric_warnings)
    result.namespace_values = {n: ns[n] for n in step.defines if n in ns}
    if result.error is not None:
        return
    missing = [n for n in step.outputs if n not in ns]
    if missing:
        message = missing_outputs_message(step.name, missing, notebook)
        if exited is not None:
            message += f" (the step ended early: sys.exit() in {cell_label(exited)})"
        result.error = StepError(**error_dict("MissingOutputError", message))
    else:
        result.outputs = {n: ns[n] for n in step.outputs}
        remember_origins(result.outputs.values())
