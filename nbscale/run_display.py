"""`nbscale.run(..., display=True)`: a run shown as it goes, then its RunResult.

In a kernel, the run is `%nbscale run`'s (live_run.LiveRun: a process of its own, the live view
and its static fallbacks) and the call blocks until it ends; a kernel interrupt cancels the run,
as it stops an in-process `nbscale.run`. Elsewhere (a script, a terminal IPython) the run happens
in this process as `nbscale.run` does, and the final state is printed as the static text view.
Either way the RunResult is read back from the run store: the same one `nbscale.run` returns.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from .kernels.contract import artifacts_url, run_store_path
from .kernels.runner import RunOptions, RunResult, run_notebook, steps_json, stored_digests_of
from .run_view import RunModel

CANCEL_WAIT_S = 60.0  # after an interrupt, how long to wait for the cancelled run to end


def run_displayed(notebook, parameters: dict | None, options: RunOptions) -> RunResult:
    if in_kernel():
        return _run_live(Path(notebook), parameters or {}, options)
    return _run_printed(Path(notebook), parameters or {}, options)


def in_kernel() -> bool:
    """True in a Jupyter kernel (a shell with a kernel: the view has a front end to go to)."""
    import sys

    if "IPython" not in sys.modules:
        return False
    from IPython import get_ipython

    return getattr(get_ipython(), "kernel", None) is not None


def _run_live(notebook: Path, parameters: dict, options: RunOptions) -> RunResult:
    from .compiler import compile_notebook
    from .compiler.diagnostics import errors_text
    from .kernels import params
    from .kernels.errors import NbscaleRuntimeError, PipelineNotRunnable
    from .live_run import LiveRun
    from .magic import RUNS, widgets_available

    pipeline = compile_notebook(notebook)  # refused here, as in-process: nothing starts
    if pipeline.has_errors:
        raise PipelineNotRunnable(errors_text(pipeline.diagnostics, str(notebook)))
    params.resolve(pipeline, parameters)
    live = LiveRun(notebook, parameters, dataclasses.asdict(options), widgets=widgets_available()).start()
    RUNS.append(live)  # `%nbscale wait` and `%nbscale cancel` know it too
    try:
        while not live.ended.wait(0.5):
            pass
    except KeyboardInterrupt:
        live.cancel()
        live.ended.wait(CANCEL_WAIT_S)
        raise
    live.update_display()  # from this cell: a batch runner (nbclient) takes the final state in
    if live.model.run_id is None:
        raise NbscaleRuntimeError(f"the run did not start: {live.model.error}")
    return stored_result(notebook, live.model.run_id, options.store_url)


def _run_printed(notebook: Path, parameters: dict, options: RunOptions) -> RunResult:
    from .run_static import text

    result = run_notebook(notebook, parameters, options)
    print(text(stored_model(notebook, result.run_id)))
    return result


def stored_model(notebook: Path, run_id: str) -> RunModel:
    """The final state of a run, as the views show it, from the run store."""
    from .kernels.runstore import RunStore

    model = RunModel(str(notebook.resolve()))
    store = RunStore(run_store_path(notebook))
    try:
        for event in store.events_since(run_id):
            model.apply(event)
        model.apply_run(store.get_run(run_id))
    finally:
        store.close()
    return model


def stored_result(notebook: Path, run_id: str, store_url: str | None) -> RunResult:
    """The RunResult of a finished run, as `nbscale.run` returns it, from the run store."""
    from .kernels.runstore import RunStore

    store = RunStore(run_store_path(notebook))
    try:
        run = store.get_run(run_id)
        events = store.events_since(run_id)
        steps = steps_json(run, events)
    finally:
        store.close()
    metrics = {m["name"]: m["value"] for m in run.get("metrics") or []}
    hashes = {s["step"]: s["hash"] for s in run["steps"] if s.get("hash")}
    error = run.get("error") if isinstance(run.get("error"), str) else None
    stored = stored_digests_of(run["steps"], events)
    return RunResult(run["id"], run["status"], steps, metrics, store_url or artifacts_url(notebook), hashes, error,
                     store.path, stored)
