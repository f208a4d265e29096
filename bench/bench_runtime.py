"""One run-time measurement in this process: the worker side of `bench/bench_run.py`.

`bench_run.py` starts a fresh Python process per measurement (so no contender inherits another
one's imports, kernels, clusters or memory) and calls

    python bench/bench_runtime.py '{"task": "nbscale", "notebook": "…", "engine": "dask", …}'

The process imports what the contender needs *before* its clock starts, measures, and prints
one line `BENCH-RESULT {json}` at the end. Tasks:

- `nbscale`: a run with the cache off (engine `dask` with an embedded LocalCluster or a given
  scheduler, or `local`; engine options passed through); wall time, plus a timeline: cluster
  start (`DaskEngine.connect`), cluster close and run-store time in this process, and per step
  the task's start and end on the worker, the executor's own wall time and the worker — so the
  gaps show where the time goes.
- `warm_up`: an `nbscale` run on a fresh cluster built by nbscale's own `local_cluster` (started
  before the clock) with the Dask engine's warm-up on or off, and how the warm-up tasks ended
  (a scheduler plugin watches them).
- `papermill`: `papermill.execute_notebook` (kernel start included) and its per-cell durations.
- `kfp`: a pipeline of N chained lightweight components on `kfp.local.SubprocessRunner(use_venv=
  False)` with `install_kfp_package=False`; the component module is written as a real `.py`
  file because `dsl.component` reads the function's source with `inspect.getsource`.
- `memcopy`: the machine's copy speed for the value the hand-off benchmark passes (numpy copy
  of the same array, `DataFrame.copy(deep=True)`), and the parts nbscale's hand-off is made of:
  `copy.deepcopy` (each step gets its own copy), `ArtifactStore.put` (persisting the output),
  cloudpickle (what Dask sends between worker processes).
- `profile_cached`: cProfile of an all-cached `run_notebook` in this process.
"""

from __future__ import annotations

import functools
import importlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from common import RESULT_PREFIX, median_time

# -- helpers ---------------------------------------------------------------------------------


class Timers:
    """Wraps functions (module attribute by name) to add up their wall time and calls."""

    def __init__(self):
        self.totals: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self._undo = []

    def wrap(self, owner, attr, label=None):
        label = label or attr
        original = getattr(owner, attr)

        @functools.wraps(original)
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.totals[label] = self.totals.get(label, 0.0) + time.perf_counter() - start
                self.calls[label] = self.calls.get(label, 0) + 1

        setattr(owner, attr, timed)
        self._undo.append((owner, attr, original))

    def restore(self):
        for owner, attr, original in reversed(self._undo):
            setattr(owner, attr, original)
        self._undo.clear()


# -- nbscale ---------------------------------------------------------------------------------


def run_nbscale(notebook, options, on_event=None, engine_options=None):
    """Compile and run `notebook` with its default parameters (what `run_notebook` does), with
    `engine_options` passed to the engine."""
    from nbscale.compiler import compile_notebook
    from nbscale.kernels import params
    from nbscale.kernels.runner import run_pipeline

    pipeline = compile_notebook(notebook)
    if pipeline.has_errors:
        raise SystemExit(f"{notebook} has errors: {[d.message for d in pipeline.diagnostics]}")
    return run_pipeline(pipeline, params.resolve(pipeline, {}), notebook, options, on_event=on_event,
                        engine_options=engine_options)


class StepClock:
    """Per step, from the run's events: status, start and end (stamped in the task), the
    executor's own wall time, and the worker it ran on."""

    def __init__(self):
        self.steps: dict[str, dict] = {}
        self.workers: dict[str, str] = {}

    def on_event(self, kind, step, payload):
        from nbscale.kernels.contract import STEP_FINISHED, STEP_STARTED

        if kind == STEP_FINISHED and step is not None:
            summary = payload.get("summary") or {}
            self.steps[step] = {"status": payload.get("status"), "started": payload.get("started"),
                                "finished": payload.get("finished"), "wall_s": summary.get("wall_s")}
        elif kind == STEP_STARTED:
            self.workers[step] = payload.get("worker")

    def timeline(self) -> dict:
        return {name: {**row, "worker": self.workers.get(name)} for name, row in self.steps.items()}


def task_nbscale(spec):
    from nbscale.kernels import runstore
    from nbscale.kernels.engines import dask as dask_engine
    from nbscale.kernels.runner import RunOptions

    if spec["engine"] == "dask":  # imported before the clock starts, as for papermill and kfp
        import distributed  # noqa: F401
    else:
        import nbscale.kernels.executor  # noqa: F401

    timers = Timers()
    timers.wrap(dask_engine.DaskEngine, "connect", "cluster start")  # its scheduler and the client
    timers.wrap(dask_engine, "_start_named_workers", "cluster start")  # its workers, as the first step starts
    timers.wrap(dask_engine.DaskEngine, "close", "cluster close")
    for method in ("add_event", "update_step", "record_metrics", "create_run", "start_run", "finish_run"):
        timers.wrap(runstore.RunStore, method, "run store")
    peaks = {}
    if spec.get("handoff"):  # the workers' peak memory, read before the cluster closes
        original_close = dask_engine.DaskEngine.close

        def close_reading_peaks(engine):
            if engine.client is not None:
                peaks.update(engine.client.run(peak_rss))
            original_close(engine)

        dask_engine.DaskEngine.close = close_reading_peaks
    clock = StepClock()
    options = RunOptions(engine=spec["engine"], use_cache=False, workers=spec.get("workers"),
                         scheduler=spec.get("scheduler"))
    t0 = time.time()
    start = time.perf_counter()
    result = run_nbscale(spec["notebook"], options, clock.on_event, spec.get("engine_options"))
    total = time.perf_counter() - start
    timers.restore()
    if not result.ok:
        raise SystemExit(f"nbscale run failed: {json.dumps(result.to_json(), default=str)[:2000]}")
    out = {"total": total, "t0": t0, "steps": clock.timeline(), "timers": timers.totals, "calls": timers.calls}
    if spec.get("handoff"):
        dask_engine.DaskEngine.close = original_close
        made = result.load("make", ["t_made", "nbytes", "rss_before"])
        got = result.load("use", ["t_got"])
        worker = out["steps"]["make"].get("worker")
        out["handoff"] = {"t_made": made["t_made"], "t_got": got["t_got"], "nbytes": made["nbytes"],
                          "rss_before": made["rss_before"], "peak": peaks.get(worker) or peak_rss()}
    return out


def peak_rss() -> int:
    """The process's peak resident memory so far (VmHWM), in bytes; 0 where /proc has none."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return 0


def task_watcher(scheduler, prefix):
    """A scheduler plugin that records how the tasks whose key starts with `prefix` ended: state,
    worker, compute time, exception text (in its `tasks`)."""
    from distributed.diagnostics.plugin import SchedulerPlugin

    class TaskWatcher(SchedulerPlugin):
        def __init__(self):
            self.tasks = {}

        def transition(self, key, start, finish, *args, **kwargs):
            if not str(key).startswith(prefix) or finish not in ("memory", "erred"):
                return
            task = scheduler.tasks.get(key)
            computes = [s for s in kwargs.get("startstops") or () if s.get("action") == "compute"]
            self.tasks[str(key)] = {
                "state": finish, "worker": kwargs.get("worker"),
                "compute_s": sum(s["stop"] - s["start"] for s in computes) if computes else None,
                "error": (kwargs.get("exception_text") or getattr(task, "exception_text", "") or None)
                if finish == "erred" else None}

    return TaskWatcher()


def task_warm_up(spec):
    """One run on a fresh cluster made as nbscale makes its embedded one (`local_cluster`), but
    started before the clock, with the engine's warm-up on or off."""
    from nbscale.kernels.engines.dask import local_cluster

    # forked workers inherit this process's modules: the notebook's libraries must not be among them
    inherited = sorted(m for m in spec["libraries"] if m in sys.modules)
    cluster = local_cluster(spec["workers"], http=False)  # as the engine makes it
    watcher = task_watcher(cluster.scheduler, spec["watch_prefix"])
    cluster.scheduler.add_plugin(watcher, name="nbscale-bench-watcher")
    try:
        out = task_nbscale({**spec, "engine": "dask", "scheduler": cluster.scheduler_address,
                            "engine_options": {"warm_up": spec["warm_up"]}})
    finally:
        cluster.close()
    return {**out, "inherited": inherited, "watched": watcher.tasks}


def task_profile_cached(spec):
    """cProfile of a run whose steps are all cached (the notebook was run once before)."""
    import cProfile
    import io
    import pstats

    from nbscale.kernels.contract import CACHED
    from nbscale.kernels.runner import RunOptions, run_notebook

    run_notebook(spec["notebook"], options=RunOptions(engine="dask"))  # warm: files, sqlite
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.enable()
    result = run_notebook(spec["notebook"], options=RunOptions(engine="dask"))
    profiler.disable()
    total = time.perf_counter() - start
    assert all(s["status"] == CACHED for s in result.steps), result.steps
    stream = io.StringIO()
    pstats.Stats(profiler, stream=stream).sort_stats("cumulative").print_stats(18)
    return {"total": total, "profile": stream.getvalue()}


# -- papermill -------------------------------------------------------------------------------


def task_papermill(spec):
    import papermill

    notebook = Path(spec["notebook"])
    out = notebook.with_name(notebook.stem + ".out.ipynb")
    start = time.perf_counter()
    nb = papermill.execute_notebook(str(notebook), str(out), kernel_name="python3", progress_bar=False,
                                    cwd=str(notebook.parent))
    total = time.perf_counter() - start
    code = [c for c in nb.cells if c.cell_type == "code"]
    cells = [c.metadata.get("papermill", {}).get("duration") or 0.0 for c in code]
    ends = [_epoch(c.metadata.get("papermill", {}).get("end_time")) for c in code]
    return {"total": total, "cells_s": sum(cells), "cell_durations": cells, "cell_ends": ends}


def _epoch(stamp):
    from datetime import datetime

    if not stamp:
        return None
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


# -- kfp.local -------------------------------------------------------------------------------

KFP_MODULE = '''\
"""Generated by bench/bench_runtime.py: N chained trivial lightweight components."""
from kfp import dsl


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def inc(x: int) -> int:
    return x + 1


def make_chain(n: int):
    @dsl.pipeline(name=f"chain-{n}")
    def chain(x: int = 0) -> int:
        task = inc(x=x)
        for _ in range(n - 1):
            task = inc(x=task.output)
        return task.output

    return chain
'''


def task_kfp(spec):
    import logging

    from kfp import local

    folder = Path(spec["folder"])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "nbscale_bench_kfp_chain.py").write_text(KFP_MODULE)
    sys.path.insert(0, str(folder))
    module = importlib.import_module("nbscale_bench_kfp_chain")
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(folder / "pipeline_root"))
    pipeline = module.make_chain(spec["n"])
    logging.getLogger().setLevel(logging.INFO)
    start = time.perf_counter()
    task = pipeline(x=0)
    total = time.perf_counter() - start
    value = task.output
    if value != spec["n"]:
        raise SystemExit(f"kfp chain returned {value!r}, expected {spec['n']}")
    # Each task writes its executor_output.json as it ends: the step-to-step cadence.
    ends = sorted(p.stat().st_mtime for p in (folder / "pipeline_root").rglob("executor_output.json"))
    return {"total": total, "task_ends": ends}


# -- memory copy and the parts of a hand-off ---------------------------------------------------


def task_memcopy(spec):
    import copy

    import cloudpickle
    import numpy as np

    from nbscale.kernels.store import ArtifactStore

    nbytes = spec["nbytes"]
    if spec["kind"] == "numpy":
        value = np.arange(nbytes // 8, dtype=np.float64)
        copier = value.copy
    else:
        import pandas as pd

        rows = nbytes // 8 // 8
        value = pd.DataFrame({f"c{j}": np.arange(rows, dtype=np.float64) + j for j in range(8)})
        copier = functools.partial(value.copy, deep=True)
    runs = spec.get("runs", 5)
    # The first copy in a process also pays for fresh pages (slow on a VM whose host backs guest
    # memory lazily); later copies reuse pages the allocator got back.
    out = {"nbytes": int(nbytes), "copy_first": median_time(copier, 1), "copy": median_time(copier, runs)}
    out["deepcopy"] = median_time(lambda: copy.deepcopy({"value": value}), max(1, runs // 2))
    out["cloudpickle"] = median_time(lambda: cloudpickle.loads(cloudpickle.dumps(value, protocol=5)),
                                      max(1, runs // 2))
    with tempfile.TemporaryDirectory(dir=spec.get("store_dir")) as tmp:
        store = ArtifactStore(tmp)
        counter = iter(range(1000))
        out["persist"] = median_time(
            lambda: store.put(f"sha256:{next(counter):064x}", {"value": value}, [], "make"), max(1, runs // 2))
    return out


TASKS = {"nbscale": task_nbscale, "warm_up": task_warm_up, "papermill": task_papermill, "kfp": task_kfp,
         "memcopy": task_memcopy, "profile_cached": task_profile_cached}


def main(argv):
    spec = json.loads(argv[1])
    result = TASKS[spec["task"]](spec)
    sys.stdout.flush()
    print(RESULT_PREFIX + json.dumps(result, default=str), flush=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    sys.exit(main(sys.argv))
