"""`papermill --engine nbscale`: a papermill run that executes the notebook as an nbscale pipeline.

papermill loads the notebook, injects the parameters cell and calls this engine with its
execution manager; the engine compiles the notebook, runs the pipeline through nbscale's run
time (steps in parallel on Dask by default, cached steps reused) and writes each executed cell
back the way papermill's own engine does: outputs in order, `metadata.papermill` per cell and
for the notebook, the progress bar, and an error output at the failing cell — from which
papermill raises `PapermillExecutionError` after writing the output notebook.

What differs from a top-to-bottom kernel run, by design: `skip` cells are not executed
(status `skipped`); the `injected-parameters` cell is not run as code — its values become the
pipeline's parameter values, typed by the parameters cell's literals.

Options (engine, scheduler, cache, store) come from keyword arguments or NBSCALE_* environment
variables: `nbscale.papermill_options`.

This module is imported whenever papermill is (its engine entry points load at import): it
imports nothing heavy until a notebook runs.
"""

from __future__ import annotations

import ast
import contextlib
import copy
import dataclasses
import logging
import math
import os
import platform
import signal
import sys
import threading
from datetime import datetime, timezone

from papermill.engines import NBClientEngine
from papermill.exceptions import PapermillException
from papermill.log import logger

from .errors import NbscaleError
from .kernels.contract import RUN_CREATED, STEP_FINISHED, STEP_STARTED  # stdlib only: keeps this import light
from .papermill_options import notebook_path, papermill_start_dir, regression_options, run_options

INJECTED = "injected-parameters"
SKIPPED = "skipped"  # metadata.papermill.status of `skip` cells
ENGINE_LABEL = "papermill+{}"
CELLS_KEY = "cells"  # artifact-store key prefix of the cell outputs recorded with a step
NOT_RECORDED = "reused a stored result whose cell outputs were not kept with it"  # metadata.nbscale.note


def _keep_pending(nb_man) -> None:
    """Cells left `pending` stay pending: papermill's `notebook_complete` marks them completed ("in
    case callbacks were never called"), but here pending means the cell did not run (its step ended
    early, or after a failure)."""
    complete = nb_man.notebook_complete

    def notebook_complete(**kwargs):
        pending = [c for c in nb_man.nb.cells if c.metadata.papermill.get("status") == nb_man.PENDING]
        complete(**kwargs)
        for cell in pending:
            cell.metadata.papermill["status"] = nb_man.PENDING
        if pending:
            nb_man.save()

    nb_man.notebook_complete = notebook_complete


class NbscaleEngine(NBClientEngine):
    """papermill engine `nbscale` (entry point group `papermill.engine`)."""

    @classmethod
    def execute_managed_notebook(cls, nb_man, kernel_name, log_output=False, stdout_file=None, stderr_file=None,
                                 start_timeout=60, execution_timeout=None, input_path=None, nbscale_engine=None,
                                 scheduler=None, scheduler_file=None, workers=None, use_cache=None, store_url=None,
                                 fail_on_regression=None, regression_threshold=None, **kwargs):
        _keep_pending(nb_man)  # (papermill calls it once this returns)
        options = run_options(nbscale_engine=nbscale_engine, scheduler=scheduler, scheduler_file=scheduler_file,
                           workers=workers, use_cache=use_cache, store_url=store_url)
        failing, threshold = regression_options(fail_on_regression, regression_threshold)
        run = _PipelineRun(nb_man, kernel_name, input_path, options, log_output=log_output,
                           stdout_file=stdout_file, stderr_file=stderr_file, start_timeout=start_timeout,
                           execution_timeout=execution_timeout)
        from .run_commands import run_settings

        # a bad setting: nothing runs
        run.settings = run_settings(run.notebook, threshold, "regression_threshold (NBSCALE_REGRESSION_THRESHOLD)")
        run.execute()
        if failing:
            raise_for_regressions(nb_man.nb)
        return nb_man.nb

    @classmethod
    def nb_kernel_name(cls, nb, name=None):
        # Steps run in this Python unless the inner engine is papermill: a kernel name is optional.
        return name or nb.metadata.get("kernelspec", {}).get("name") or "python3"

    @classmethod
    def nb_language(cls, nb, language=None):
        return (language or nb.metadata.get("kernelspec", {}).get("language")
                or nb.metadata.get("language_info", {}).get("name") or "python")


class MetricRegression(NbscaleError, PapermillException):
    """`fail_on_regression`: the run succeeded but a metric regressed (`metadata.nbscale.regressions`)."""


def raise_for_regressions(nb) -> None:
    """MetricRegression when the run succeeded and a metric regressed (the output notebook is written)."""
    from .reporting import literal

    meta = nb.metadata.get("nbscale") or {}
    rows = [row for row in (meta.get("regressions") or {}).get("metrics", []) if row["regressed"]]
    if meta.get("status") == "succeeded" and rows:
        raise MetricRegression(literal(f"metric regression(s) in run {str(meta.get('run_id'))[:12]}: "
                                       + "; ".join(f"{row['name']}: {row['reason']}" for row in rows)))


class _CellFailure(NbscaleError):
    """The notebook cannot run: shown as an error output at `cell` (papermill then raises)."""

    def __init__(self, cell, ename, evalue):
        super().__init__(evalue)
        self.cell, self.ename, self.evalue = cell, ename, evalue


class _PipelineRun:
    def __init__(self, nb_man, kernel_name, input_path, options, *, log_output, stdout_file, stderr_file,
                 start_timeout, execution_timeout):
        self.nb_man, self.nb = nb_man, nb_man.nb
        self.kernel_name, self.options = kernel_name, options
        self.log_output, self.stdout_file, self.stderr_file = log_output, stdout_file, stderr_file
        self.start_timeout, self.execution_timeout = start_timeout, execution_timeout
        # papermill has changed to --cwd by now: the input path is relative to where it started
        self.notebook = notebook_path(input_path, papermill_start_dir())
        self.lock = threading.RLock()
        self.done: set[str] = set()
        self.prelude: dict[int, tuple[int, dict]] = {}  # prelude cell → (step position, entry)
        self.settings = None  # (regression thresholds, prices): `_run_settings`

    # --- the run ---------------------------------------------------------------------------------
    def execute(self):
        self._check_language()
        if self.options.engine != "papermill":
            _kernel_passed_over(self.kernel_name)
            _timeout_passed_over(self.execution_timeout, self.options.engine)
        try:
            self.pipeline, self.values = self._compile()
        except _CellFailure as failure:
            self._fail_at(failure.cell, failure.ename, failure.evalue, failure.evalue.splitlines())
            return
        self._mark_static_cells()
        self._run()
        self._finish_prelude()
        self._number_cells()
        self.nb_man.save()

    def _check_language(self):
        language = NbscaleEngine.nb_language(self.nb)
        if language.lower() != "python":
            raise PapermillException(f"the nbscale engine runs Python notebooks; this one is in {language}")

    def _compile(self):
        from nbscale.compiler import compile_notebook
        from nbscale.compiler.notebook import cell_label, notebook_from_dict
        from nbscale.kernels import params
        from nbscale.kernels.errors import ParameterError

        injected = [i for i, c in enumerate(self.nb.cells) if INJECTED in c.metadata.get("tags", [])]
        given = {}
        for index in injected:
            given.update(self._injected_values(index))
        data = {"nbformat": 4, "nbformat_minor": 5, "metadata": _plain(self.nb.metadata),
                "cells": [{"cell_type": c.cell_type, "source": c.source,
                           "metadata": {"tags": list(c.metadata.get("tags", []))}} for c in self.nb.cells]}
        for index in injected:  # its values are parameter values, not code of a step
            data["cells"][index]["metadata"]["tags"] = ["skip"]
        pipeline = compile_notebook(notebook_from_dict(data, str(self.notebook)))
        self.injected_cell = injected[-1] if injected else None
        try:
            values, unknown = params.resolve_papermill(pipeline, given)
            if unknown:  # papermill injects names the parameters cell lacks: declare them too
                cell = data["cells"][self.injected_cell]
                cell["metadata"]["tags"] = ["parameters"]
                cell["source"] = "\n".join(f"{name} = {value!r}" for name, value in unknown.items())
                pipeline = compile_notebook(notebook_from_dict(data, str(self.notebook)))
                values, unknown = params.resolve_papermill(pipeline, given)
        except ParameterError as exc:
            raise _CellFailure(self.injected_cell, "ParameterError", str(exc)) from None
        for diag in pipeline.diagnostics:
            if diag.severity != "error":
                log = logger.info if diag.severity == "info" else logger.warning
                log(f"nbscale: {diag.format(self.notebook.name, hint=False)}")
        errors = [d for d in pipeline.diagnostics if d.severity == "error"]
        if errors:
            placed = [d for d in errors if d.cell is not None]
            if not placed:
                raise PapermillException("nbscale cannot run this notebook:\n" + "\n".join(
                    f"  {d.code}: {d.message}" for d in errors))
            by_cell: dict[int, list[str]] = {}
            for diag in placed:  # every error of a cell in its output: the cause may be its second
                text = f"[{diag.code}] {diag.message}" + (f" (hint: {diag.hint})" if diag.hint else "")
                by_cell.setdefault(diag.cell, []).append(f"{cell_label(diag.cell, diag.line or None)}: {text}")
            first = by_cell[min(by_cell)][0]
            for cell, lines in by_cell.items():
                # papermill raises the last cell's error: it names the first too, often the cause
                lines = lines if cell == min(by_cell) else [*lines, f"(the notebook's first error: {first})"]
                self._fail_at(cell, "NbscaleCompileError", "; ".join(lines), lines, save=False)
            raise _CellFailure(placed[0].cell, "NbscaleCompileError", "see the cells' errors") from None
        return pipeline, values

    def _injected_values(self, index) -> dict:
        """papermill's injected values: the literals it wrote, else its metadata's values."""
        source = self.nb.cells[index].source
        recorded = self.nb.metadata.get("papermill", {}).get("parameters") or {}
        values = {}
        from nbscale.compiler.pyparse import parse_text  # (compiled by now: no cost)

        try:
            tree = parse_text(source)
        except SyntaxError as exc:
            raise _CellFailure(index, "SyntaxError", f"papermill's injected cell does not parse: {exc}") from None
        for stmt in tree.body:
            if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
                name = stmt.targets[0].id
                try:
                    values[name] = ast.literal_eval(stmt.value)
                except (ValueError, SyntaxError, TypeError):
                    if name not in recorded:
                        raise _CellFailure(index, "ParameterError", f"parameter '{name}' is not a literal: "
                                                                    f"{ast.unparse(stmt.value)}") from None
                    values[name] = recorded[name]
            elif not (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)):
                raise _CellFailure(index, "ParameterError",
                                   f"'{ast.unparse(stmt)}' in the injected-parameters cell is not NAME = value")
        return values

    def _run(self):
        from nbscale.compiler.hashing import step_hashes
        from nbscale.kernels import runner
        from nbscale.kernels.contract import artifacts_url
        from nbscale.kernels.store import ArtifactStore

        pipeline, values, options = self.pipeline, self.values, self.options
        self.position = {s.name: i for i, s in enumerate(pipeline.steps)}
        store_url = options.store_url or artifacts_url(self.notebook)
        self.artifacts = ArtifactStore(store_url)
        self.hashes = step_hashes(pipeline, values)
        self.records = _CellRecords(self.artifacts, pipeline)
        self.produced = {}  # step that ran → (its result's key, its summary, its cell entries)
        plan = self._plan(os.getcwd())
        engine_options = {}
        if options.engine == "papermill":
            engine_options = {"kernel_name": self.kernel_name, "start_timeout": self.start_timeout,
                              "execution_timeout": self.execution_timeout}
        _stop_bar_monitor()
        # papermill runs the notebook in its working directory (--cwd); its CLI logs at INFO, so
        # Dask's chatter would show
        with _quiet("distributed"), _sigterm_cancels():
            try:
                result = runner.run_pipeline(plan, values, self.notebook, options, on_event=self._event,
                                             cwd=os.getcwd(), engine_label=ENGINE_LABEL.format(options.engine),
                                             engine_options=engine_options)
            except KeyboardInterrupt as stop:  # the run is recorded cancelled; the notebook says where it stopped
                self._stopped(stop)
                raise
        self.records.keep_all(self.produced)  # the stored results are all written once the run ends
        self.run_id, self.status = result.run_id, result.status
        self.nb.metadata["nbscale"] = {
            "run_id": result.run_id, "engine": options.engine, "status": result.status, "parameters": values,
            "steps": result.steps, "metrics": result.metrics}
        from .run_commands import run_insights, run_settings  # regressions and cost, into the metadata

        settings = self.settings or run_settings(self.notebook, None)
        self.nb.metadata["nbscale"].update(run_insights(self.notebook, result, settings))

    def _stopped(self, stop: KeyboardInterrupt):
        """Ctrl-C or SIGTERM: the running cells end as stopped by it, the cells that ran keep their
        counts, and the notebook names its run (`nbscale show`), as a finished one does."""
        from .kernels.contract import CANCELLED
        from .kernels.errors import Terminated

        reason = f"stopped by {stop.signal_name}" if isinstance(stop, Terminated) else "cancelled by the user"
        with self.lock:
            for step in self.pipeline.steps:
                self._cancelled(step.name, {"reason": reason})
            self.nb.metadata["nbscale"] = {"run_id": getattr(self, "run_id", None), "engine": self.options.engine,
                                           "status": CANCELLED, "parameters": self.values}
            self._number_cells()
            self.nb_man.save()

    # --- events from the run (Dask calls back from its own thread) --------------------------------
    def _event(self, kind, step, payload):
        with self.lock:
            if kind == RUN_CREATED:
                self.run_id = (payload or {}).get("run_id")
            elif kind == STEP_STARTED and step not in self.done:
                self._started(step)
            elif kind == STEP_FINISHED and step not in self.done:
                self._finished(step, payload or {})

    def _started(self, step):
        now = _now()
        for index in self.pipeline.step(step).cells:
            pm = self.nb.cells[index].metadata.papermill
            if pm.get("status") == self.nb_man.PENDING:
                pm.update(status=self.nb_man.RUNNING, start_time=now, exception=False)
        if self.nb_man.pbar:
            self.nb_man.pbar.set_description(f"Executing step {step}")

    def _finished(self, step, payload):
        from nbscale.kernels.contract import CACHED, CANCELLED, FAILED, SUCCEEDED

        self.done.add(step)
        status = payload.get("status")
        summary = payload.get("summary") or {}
        if status == CANCELLED:
            return self._cancelled(step, summary)
        if status == CACHED:
            entries, cached = self._reused_cells(step, payload.get("key") or self.reused.get(step)), True
        elif status in (SUCCEEDED, FAILED):
            entries, cached = summary.get("cells") or [], False
            if status == SUCCEEDED and payload.get("key"):
                self.produced[step] = (payload["key"], summary, entries)
        else:
            return  # upstream failed: its cells stay pending, as papermill leaves cells after a failure
        own = set(self.pipeline.step(step).cells)
        for entry in entries:
            if entry["cell"] in own:
                self._fill(entry, step, cached)
            elif entry["cell"] not in self.prelude or self.prelude[entry["cell"]][0] > self.position[step]:
                first = entry["cell"] not in self.prelude
                self.prelude[entry["cell"]] = (self.position[step], {**entry, "_cached": cached})
                if first:
                    self._fill(entry, None, cached)
        if status == FAILED:
            self._error(step, summary, entries)
        for index in own - {e["cell"] for e in entries}:  # not reached: pending, as after a failure
            pm = self.nb.cells[index].metadata.papermill
            if pm.get("status") == self.nb_man.RUNNING:
                pm.update(status=self.nb_man.PENDING, start_time=None, exception=None)
        self.nb_man.save()

    def _fill(self, entry, step, cached, log=True):
        cell = self.nb.cells[entry["cell"]]
        outputs = [_output(o) for o in entry.get("outputs", [])]
        cell.outputs = outputs
        pm = cell.metadata.papermill
        if cached:
            start = end = _now()
            duration = 0.0
        else:
            start, end = _iso(entry.get("started")), _iso(entry.get("finished"))
            duration = (entry["finished"] - entry["started"]) if entry.get("finished") and entry.get("started") \
                else None
        was_done = pm.get("status") in (self.nb_man.COMPLETED, self.nb_man.FAILED)
        pm.update(start_time=start, end_time=end, duration=duration, exception=False,
                  status=self.nb_man.COMPLETED)
        cell.metadata["nbscale"] = {"step": step, "cached": cached} if step else {"prelude": True, "cached": cached}
        if entry.get("note"):
            cell.metadata["nbscale"]["note"] = entry["note"]
        if log:
            self._log(outputs)
        if self.nb_man.pbar and not was_done:
            self.nb_man.pbar.update(1)

    def _cancelled(self, step, summary):
        """A step stopped while it ran (Ctrl-C): its running cell ends as papermill's own engine ends
        it, with what the step printed so far and a KeyboardInterrupt; the cells after it stay
        pending. (It stayed "running", without an error.)"""
        cells = self.pipeline.step(step).cells
        running = [i for i in cells if self.nb.cells[i].metadata.papermill.get("status") == self.nb_man.RUNNING]
        if not running:
            return
        reason = summary.get("reason") or "cancelled"
        printed = [_output({"output_type": "stream", "name": name, "text": summary[name]})
                   for name in ("stdout", "stderr") if isinstance(summary.get(name), str) and summary[name]]
        self.nb.cells[running[0]].outputs = printed  # what the step printed before (all of its cells')
        where = "above and in its log" if printed else "in its log, if it printed any"
        self._fail_at(running[0], "KeyboardInterrupt", f"{reason} (the step's output so far is {where}: "
                      "nbscale show)", [f"KeyboardInterrupt: {reason}"], save=False)
        for index in running[1:]:
            self.nb.cells[index].metadata.papermill.update(status=self.nb_man.PENDING, start_time=None,
                                                           exception=None)
        self.nb_man.save()

    def _error(self, step, summary, entries):
        """The step's error at the cell that was running, as papermill shows it: a prelude cell too
        (the step's own cells did not run then), else at the cell the error names, else at the
        step's last cell that ran."""
        error = summary.get("error") or {}
        cells = self.pipeline.step(step).cells
        placeable = {*cells, *self.pipeline.prelude.cells}
        ran = [e["cell"] for e in entries if e["cell"] in cells]
        target = next((c for c in (error.get("running_cell"), error.get("cell")) if c in placeable),
                      ran[-1] if ran else cells[-1])
        trace = str(error.get("traceback") or error.get("evalue") or "").rstrip("\n").splitlines()
        self._fail_at(target, error.get("ename") or "Error", error.get("evalue") or "", trace, save=False)

    def _fail_at(self, index, ename, evalue, traceback, save=True):
        cell = self.nb.cells[index]
        if cell.cell_type == "code" and not any(o.get("output_type") == "error" for o in cell.outputs):
            cell.outputs.append(_output({"output_type": "error", "ename": ename, "evalue": evalue,
                                         "traceback": traceback}))
        pm = cell.metadata.papermill
        if not pm.get("start_time"):
            pm["start_time"] = _now()
        pm.update(end_time=_now(), status=self.nb_man.FAILED, exception=True)
        if cell.cell_type == "code":  # final counts come at the end; "In [N]" needs one now
            cell.execution_count = _count(self.nb.cells, index)
        self.nb.metadata.papermill["exception"] = True
        if save:
            self.nb_man.save()

    # --- cells that need no run, prelude, execution counts ------------------------------------------
    def _mark_static_cells(self):
        steps = {i for s in self.pipeline.steps for i in s.cells} | set(self.pipeline.prelude.cells)
        skipped = {i for i, c in enumerate(self.nb.cells) if "skip" in c.metadata.get("tags", [])
                   and i != self.injected_cell}
        now = _now()
        for index, cell in enumerate(self.nb.cells):
            if index in steps:
                continue
            pm = cell.metadata.papermill
            status = SKIPPED if index in skipped else self.nb_man.COMPLETED
            pm.update(status=status, start_time=now, end_time=now, duration=0.0, exception=False)
            if self.nb_man.pbar:
                self.nb_man.pbar.update(1)
        self.nb_man.save()

    def _finish_prelude(self):
        for _, entry in self.prelude.values():  # the first step's, in notebook order
            cached = entry.pop("_cached")
            if self.nb.cells[entry["cell"]].metadata.papermill.get("status") != self.nb_man.FAILED:
                self._fill(entry, None, cached, log=False)  # (one a step failed at keeps its error)

    def _number_cells(self):
        """Execution counts: a cell that ran (or was bound as parameters) gets the count it would
        have in a top-to-bottom run, so "In [N]" names the same cell as plain papermill."""
        ran = {self.nb_man.COMPLETED, self.nb_man.FAILED}
        for index, cell in enumerate(self.nb.cells):
            if cell.cell_type != "code":
                continue
            count = _count(self.nb.cells, index) if cell.metadata.papermill.get("status") in ran else None
            cell.execution_count = count
            for output in cell.outputs:
                if output.get("output_type") == "execute_result":
                    output["execution_count"] = count
        language = self.nb.metadata.setdefault("language_info", {})
        language.setdefault("name", "python")
        language.setdefault("version", platform.python_version())

    # --- recorded cell outputs (for cached steps) -------------------------------------------------
    def _plan(self, folder):
        """The pipeline to run: a stored result whose cell outputs were not recorded with it
        (`nbscale run` stored it, or stored it again since) is not reused, so that the output
        notebook is complete. `self.reused`: step → the key of the stored result the run reuses,
        for the steps settled before it runs (the others are decided as their upstream steps end)."""
        from nbscale.kernels.runner import cached_steps

        self.reused = cached_steps(self.pipeline, self.hashes, self.artifacts, folder, self.options.use_cache)[0]
        recorded = {name for name, key in self.reused.items()
                    if self.records.load(self.pipeline.step(name), key) is not None}
        return dataclasses.replace(self.pipeline, steps=[
            dataclasses.replace(s, cache=s.cache and (s.name not in self.reused or s.name in recorded))
            for s in self.pipeline.steps])

    def _reused_cells(self, step, key):
        """The recorded cell entries of the stored result `step` reuses; without a record of that
        result (decided as the run went, or stored anew since the check): its cells, empty, with a note."""
        entries = self.records.load(self.pipeline.step(step), key) if key else None
        if entries is not None:
            return entries
        logger.warning(f"nbscale: step {step} reused a stored result whose cell outputs were not kept with it: "
                       "its cells show no outputs")
        return [{"cell": index, "outputs": [], "note": NOT_RECORDED} for index in self.pipeline.step(step).cells]

    def _log(self, outputs):
        for output in outputs:
            if output.get("output_type") != "stream":
                if self.log_output and "text/plain" in output.get("data", {}):
                    logger.info(output["data"]["text/plain"])
                continue
            target = self.stdout_file if output["name"] == "stdout" else self.stderr_file
            if self.log_output:
                (logger.info if output["name"] == "stdout" else logger.warning)(output["text"])
            if target:
                target.write(output["text"])
                target.flush()


class _CellRecords:
    """The cell outputs of stored step results, kept beside them in the artifact store.

    A record is keyed by the cache key its result is stored under (static hash and input digests:
    `cells:<digest of the key>`) and names that result (its manifest's `writer`). A result stored
    again under the same key (a file it read changed; `nbscale run`) makes the record stale, and a
    stale record is never shown: a cached step shows the outputs of the run that stored what it reuses.
    Entries are kept by position in the step and in the prelude (what the key covers), not by
    notebook cell index: an injected-parameters cell shifts the indexes of an unchanged step.
    """

    def __init__(self, artifacts, pipeline):
        self.artifacts, self.pipeline = artifacts, pipeline

    @staticmethod
    def key(result_key):
        return f"{CELLS_KEY}:{result_key.partition(':')[2]}"

    def load(self, step, result_key):
        """The entries recorded with the result stored under `result_key`, placed at `step`'s
        cells; None when there is no record, or it belongs to another result."""
        try:
            record = self.artifacts.get(self.key(result_key), ["cells", "result"])
            stored = self.artifacts.manifest(result_key)
        except (KeyError, OSError, ValueError):  # ArtifactNotFound (a KeyError), unreadable
            return None
        if record["result"] != stored.get("writer"):
            return None
        places = {"step": step.cells, "prelude": self.pipeline.prelude.cells}
        try:
            return [{**e, "cell": places[e["role"]][e["position"]]} for e in record["cells"]]
        except (KeyError, IndexError, TypeError):
            return None

    def keep_all(self, produced):
        for step, (result_key, summary, entries) in produced.items():
            self.keep(step, result_key, summary, entries)

    def keep(self, step, result_key, summary, entries):
        """Record `entries` with the result `step` stored under `result_key`, when what is stored
        there is that run's (its measured cost is the run's own; else another writer replaced it)."""
        from nbscale.kernels.cost import measured

        try:
            stored = self.artifacts.manifest(result_key)
        except (KeyError, OSError, ValueError):
            return  # not stored (or damaged): nothing to reuse, nothing to record
        if stored.get("cost") != measured(summary):  # timings to the microsecond: another run's result
            return
        places = {i: ("step", k) for k, i in enumerate(self.pipeline.step(step).cells)}
        places.update({i: ("prelude", k) for k, i in enumerate(self.pipeline.prelude.cells)})
        cells = [{**e, "role": places[e["cell"]][0], "position": places[e["cell"]][1]}
                 for e in entries if e["cell"] in places]
        try:  # replace: a record of an earlier result stored under this key is stale
            self.artifacts.put(self.key(result_key), {"cells": cells, "result": stored["writer"]}, step_name=step,
                               replace=True)
        except Exception as exc:  # noqa: BLE001 - the run succeeded; a cached re-run will just run again
            logger.warning(f"nbscale: could not record the cell outputs of step {step}: {exc}")


def _count(cells, index):
    """The execution count of cell `index` when every non-blank code cell runs in order."""
    if not cells[index].source.strip():
        return None
    return sum(1 for c in cells[:index + 1] if c.cell_type == "code" and c.source.strip())


def _kernel_passed_over(kernel_name: str) -> None:
    """Steps run in this Python unless the inner engine is papermill. The kernel `-k` or the
    notebook names must still exist, as papermill's own engine requires (NoSuchKernel); one of
    another Python is said to be passed over."""
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec(kernel_name)  # NoSuchKernel, as papermill's engine raises
    python = spec.argv[0] if spec.argv else ""
    other = [f"its Python ({python})"] if os.path.isabs(python) and \
        os.path.realpath(python) != os.path.realpath(sys.executable) else []
    other += [f"its environment variables ({', '.join(sorted(spec.env))})"] if spec.env else []
    if other:
        logger.warning(f"the steps run in this Python ({sys.executable}), not as kernel {kernel_name!r} would run "
                       f"them: {' and '.join(other)} go unused; NBSCALE_ENGINE=papermill runs them in the kernel")


def _timeout_passed_over(execution_timeout, engine: str) -> None:
    """papermill's per-cell `--execution-timeout` has no counterpart in the dask and local engines
    (their steps stop at a step's `timeout:` tag): said, so that a run expected to stop is not
    silently let run on. None and -1 are papermill's "no timeout"."""
    if execution_timeout not in (None, -1):
        logger.warning(f"nbscale: --execution-timeout {execution_timeout} is not applied with NBSCALE_ENGINE={engine}: "
                       f"tag the steps timeout:{math.ceil(float(execution_timeout))}s (per step), or use "
                       "NBSCALE_ENGINE=papermill "
                       "(per cell, as papermill)")


@contextlib.contextmanager
def _sigterm_cancels():
    """SIGTERM (a batch scheduler's, a service manager's) cancels the run, recorded "stopped by
    SIGTERM", as it does `nbscale run`; then the process ends as SIGTERM would have ended it. Only
    where nothing else handles SIGTERM (papermill's command; a caller with a handler keeps it)."""
    from .kernels.errors import Terminated
    from .kernels.interrupts import sigterm_interrupts

    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return
    try:
        with sigterm_interrupts():
            yield
    except Terminated as exc:  # (or SIGHUP's `HungUp`)
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        signum = getattr(signal, exc.signal_name)
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        raise


def _stop_bar_monitor() -> None:
    """End the monitor thread of papermill's progress bar (tqdm's: it redraws a bar left unchanged
    for 10 s). The embedded Dask cluster forks its workers only where no other thread could hold a
    lock they inherit: with the monitor it spawned them, and a spawned worker starts papermill's
    command again — seconds of it, and a worker restarted by a Ctrl-C or SIGTERM held the exit up
    that long. The bar is still redrawn as each step starts; a bar made later starts a monitor again."""
    monitors = sys.modules.get("tqdm._monitor")
    for thread in threading.enumerate() if monitors is not None else ():
        if isinstance(thread, monitors.TMonitor):
            thread.exit()  # (at once: its wait ends as it is told to)
            with thread.tqdm_cls.get_lock():
                if thread.tqdm_cls.monitor is thread:
                    thread.tqdm_cls.monitor = None


@contextlib.contextmanager
def _quiet(prefix, level=logging.WARNING):
    """Raise the level of `prefix` and of its loggers that set their own (Dask config does)."""
    with contextlib.suppress(ImportError):
        __import__(prefix)  # its loggers exist once it is imported
    names = [prefix] + [n for n in list(logging.root.manager.loggerDict) if n.startswith(prefix + ".")]
    loggers = [logging.getLogger(n) for n in names]
    saved = [log.level for log in loggers]
    for log in loggers:
        log.setLevel(max(level, log.level))
    try:
        yield
    finally:
        for log, old in zip(loggers, saved):
            log.setLevel(old)


def _output(data):
    import nbformat

    data = copy.deepcopy(data)
    if data.get("output_type") == "stream" and isinstance(data.get("text"), list):
        data["text"] = "".join(data["text"])
    return nbformat.from_dict(data)


def _plain(node):
    import json

    return json.loads(json.dumps(node, default=str))


def _now():
    return datetime.now(timezone.utc).isoformat()


def _iso(epoch):
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat() if epoch else None
