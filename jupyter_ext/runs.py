"""The runs of the panel: history from the run store, starting and cancelling runs, their events.

The CLI's run store beside each notebook (`contract.run_store_path`) is the only record, so runs
started here and runs started with `nbscale run` are the same runs (and reading the store finishes
runs whose process died, `RunStore.reap`). A run started here executes in a process of its own
(`runproc.py`: user code must not run inside the Jupyter server), supervised by a
`supervisor.RunProcess`; cancelling interrupts it as Ctrl-C does the CLI. Events of runs
started here are published as they happen; those of runs other processes write to the store of a
watched notebook are read from the store as soon as its files change (`publish_store_events`, called
every `EventHub.follow_interval_s`: a `stat` of the store and its WAL, a query only when they changed
or a `REREAD_S` passed — a read also finishes runs whose process died, `RunStore.reap`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from nbscale.compiler.metric_direction import notebook_directions
from nbscale.kernels.contract import FINISHED, RUN_FINISHED, run_store_path

from . import models
from .errors import Conflict, ExtensionError, InvalidInput, NotFound
from .notebooks import compile_without_errors
from .supervisor import RunProcess

DASK = "dask"
REREAD_S = 1.0  # a watched store is read at least this often, written to or not
CLOSE_MARGIN_S = 10.0  # at shutdown, for a killed run's supervisor to end the run and its steps' processes


class Runs:
    def __init__(self, notebooks, events, *, default_engine: str = DASK, cluster_factory: dict | None = None,
                 scheduler_for_runs: Callable[[], Awaitable[str | None]] | None = None,
                 log: logging.Logger | None = None, cancel_grace_s: float = 15.0, start_timeout_s: float = 120.0):
        self.notebooks = notebooks  # a notebooks.Notebooks: API paths of notebooks
        self.events = events  # an EventHub
        self.default_engine = default_engine
        self.cluster_factory = cluster_factory or None  # for Dask runs that start a cluster of their own
        self.scheduler_for_runs = scheduler_for_runs  # the server's cluster, where Dask runs go if there is one
        self.log = log or logging.getLogger("nbscale.jupyter_ext")
        self.cancel_grace_s, self.start_timeout_s = cancel_grace_s, start_timeout_s
        self._stores: dict[Path, object] = {}
        self._stores_lock = threading.Lock()
        self._running: dict[str, RunProcess] = {}  # run id → a run started here that is still going
        self._own: set[str] = set()  # every run started here
        self._processes: set[RunProcess] = set()  # every run process not yet ended
        self._followed: dict[Path, int] = {}  # watched notebook → last run-store event published
        self._signatures: dict[Path, tuple] = {}  # watched notebook → (its store files' (mtime, size), when read)
        self._foreign_seen = 0.0  # monotonic time another process's run event was last published

    # --- history ----------------------------------------------------------------------------------

    async def history(self, notebook: Path, limit: int = 50) -> dict:
        """`{"runs": [RunSummary]}`, newest first."""
        store = await self._store(notebook, create=False)
        if store is None:
            return {"runs": []}
        rows = await asyncio.to_thread(store.list_runs, str(notebook), limit)
        api = self.notebooks.api_path(notebook)
        return {"runs": [models.run_summary(r, api) for r in rows]}

    async def detail(self, notebook: Path, run_id: str) -> dict:
        """RunDetail of a run of `notebook` (a unique prefix of its id works, as in the CLI), with its
        metric regressions and cost once it finished (`run_insights`)."""
        run = await self._get(notebook, run_id)
        detail = models.run_detail(run, self.notebooks.api_path(notebook))
        store = await self._store(notebook, create=False)
        insights = await asyncio.to_thread(run_insights, store, run, self.notebooks.root)
        if isinstance(insights.get("regressions"), dict) and "notebook" in insights["regressions"]:
            insights["regressions"]["notebook"] = detail["notebook"]  # the API names files from the root
        detail.update(insights)
        return detail

    async def metrics(self, notebook: Path) -> dict:
        store = await self._store(notebook, create=False)
        history = [] if store is None else await asyncio.to_thread(store.metrics_history, str(notebook))
        return models.metrics_model(history, await asyncio.to_thread(notebook_directions, notebook))

    # --- start and cancel ---------------------------------------------------------------------------

    async def start(self, notebook: Path, engine: str | None = None, parameters: dict | None = None,
                    use_cache: bool = True) -> dict:
        """Start a run in its own process; its RunSummary once the run store has it."""
        engine = engine or self.default_engine
        parameters = parameters or {}
        known = await asyncio.to_thread(_engine_names)
        if engine not in known:
            raise InvalidInput(f"unknown engine {engine!r}; choose one of {', '.join(known)}")
        await asyncio.to_thread(_check_runnable, notebook, parameters)
        options = await self.run_options(engine, use_cache)
        process = RunProcess(self, asyncio.get_running_loop(), notebook)
        self._processes.add(process)
        created = process.start({"notebook": str(notebook), "parameters": parameters, "options": options,
                                 "cluster_factory": self.cluster_factory, "cancel_grace_s": self.cancel_grace_s})
        try:
            run_id = await asyncio.wait_for(created, self.start_timeout_s)
        except asyncio.TimeoutError:
            process.cancel(grace=2)
            raise ExtensionError("the run did not start in time") from None
        self.events.wake()
        return models.run_summary(await self._get(notebook, run_id), self.notebooks.api_path(notebook))

    async def run_options(self, engine: str, use_cache: bool = True) -> dict:
        """RunOptions fields for a run started here: a Dask run uses the server's cluster if any."""
        options = {"engine": engine, "use_cache": use_cache}
        if engine == DASK and self.scheduler_for_runs is not None:
            scheduler = await self.scheduler_for_runs()
            if scheduler is not None:
                options["scheduler"] = scheduler
        return options

    async def cancel(self, notebook: Path, run_id: str) -> dict:
        """Cancel a run started here; its RunSummary as it was when asked."""
        row = await self._get(notebook, run_id)
        if row["status"] in FINISHED:
            raise Conflict(f"run {row['id'][:12]} already {row['status']}")
        process = self._running.get(row["id"])
        if process is None:
            raise Conflict(f"run {row['id'][:12]} was not started by this server; cancel it where it runs")
        process.cancel(self.cancel_grace_s)
        return models.run_summary(row, self.notebooks.api_path(notebook))

    def active(self) -> list[str]:
        """Ids of the runs started here that are still going."""
        return list(self._running)

    def process(self, run_id: str) -> RunProcess | None:
        return self._running.get(run_id)

    def cluster_sample(self) -> dict | None:
        """The latest ClusterModel of a cluster a running run started for itself, if any."""
        for process in list(self._running.values()):
            if process.cluster_sample is not None:
                return process.cluster_sample
        return None

    # --- called by the run processes, on the loop ----------------------------------------------------

    def run_created(self, process: RunProcess, run_id: str) -> None:
        self._running[run_id] = process
        self._own.add(run_id)
        self.events.publish(models.run_created_event(run_id), process.notebook)

    def run_ended(self, process: RunProcess, final_status: str | None) -> None:
        self._processes.discard(process)
        if process.run_id is None:
            return
        self._running.pop(process.run_id, None)
        if final_status and not process.finished_event_sent:
            self.events.publish(models.event(RUN_FINISHED, process.run_id, None, {"status": final_status}),
                                process.notebook)

    # --- runs of other processes ---------------------------------------------------------------------

    async def publish_store_events(self, watched: set[Path]) -> bool:
        """Publish the events that other processes (`nbscale run`, papermill) wrote to the run stores
        of the `watched` notebooks since the last call; True when there were any."""
        for notebook in set(self._followed) - watched:
            del self._followed[notebook]
            self._signatures.pop(notebook, None)
        seen = False
        for notebook in watched:
            try:
                seen |= await self._publish_new_events(notebook)
            except Exception:  # noqa: BLE001 - a locked or broken store must not stop the samples
                self.log.debug("nbscale: following runs of %s failed", notebook, exc_info=True)
        return seen

    def foreign_active(self, within_s: float = 10.0) -> bool:
        """Whether another process's run of a watched notebook reported something lately."""
        return time.monotonic() - self._foreign_seen < within_s

    async def _publish_new_events(self, notebook: Path) -> bool:
        signature, now = _store_signature(run_store_path(notebook)), time.monotonic()
        last = self._signatures.get(notebook)
        if notebook in self._followed and last and last[0] == signature and now - last[1] < REREAD_S:
            return False  # nothing was written to the store since it was last read
        self._signatures[notebook] = (signature, now)
        store = await self._store(notebook, create=False)
        if store is None:
            return False
        if notebook not in self._followed:  # from now on: history is what /runs is for
            self._followed[notebook] = await asyncio.to_thread(store.last_event_id)
            return False
        rows = await asyncio.to_thread(store.notebook_events_since, str(notebook), self._followed[notebook])
        for row in rows:
            self._followed[notebook] = row["id"]
            if row["run_id"] not in self._own:  # the server's own runs are published as they happen
                self._foreign_seen = time.monotonic()
                self.events.publish(models.event(row["kind"], row["run_id"], row["step"], row["payload"] or {}),
                                    notebook)
        return bool(rows)

    # --- the run stores ------------------------------------------------------------------------------

    def store_for(self, notebook: Path, create: bool = True):
        """The CLI's run store beside `notebook` (None if it does not exist and `create` is false)."""
        from nbscale.kernels.runstore import RunStore

        path = run_store_path(notebook)
        with self._stores_lock:
            store = self._stores.get(path)
            if store is not None and store.file_lost():  # deleted or replaced (`rm -rf .nbscale`): runs
                del self._stores[path]  # started since are in the new file, which it never sees
                store = None  # (not closed: a request may be reading through it; it closes when let go)
            if store is None:
                if not create and not path.exists():
                    return None
                store = self._stores[path] = RunStore(path)
            return store

    async def _store(self, notebook: Path, create: bool):
        return await asyncio.to_thread(self.store_for, notebook, create)

    async def _get(self, notebook: Path, run_id: str) -> dict:
        from nbscale.kernels.errors import AmbiguousRunId, UnknownRun

        store = await self._store(notebook, create=False)
        if store is None:
            raise NotFound(f"no run {run_id}")
        try:
            run = await asyncio.to_thread(store.get_run, run_id, False)  # the panel asks often: no profiles
        except AmbiguousRunId as exc:
            raise InvalidInput(str(exc)) from None
        except UnknownRun:  # a damaged or read-only store is said as such (RunStoreError)
            raise NotFound(f"no run {run_id}") from None
        if Path(run["notebook"]) != notebook:
            raise NotFound(f"no run {run_id} of {self.notebooks.api_path(notebook)}")
        return run

    # --- shutdown --------------------------------------------------------------------------------------

    async def close(self) -> None:
        """Cancel the runs started here, wait for their processes (killed after `cancel_grace_s`),
        close the run stores."""
        processes = list(self._processes)
        for process in processes:
            process.cancel(grace=self.cancel_grace_s, closing=True)
        for process in processes:
            # past the grace time the cancel's timer kills it; the supervisor then ends the run
            await asyncio.to_thread(process.join, self.cancel_grace_s + CLOSE_MARGIN_S)
        with self._stores_lock:
            for store in self._stores.values():
                store.close()
            self._stores.clear()


def run_insights(store, run: dict, root=None) -> dict:
    """`regressions` and `cost` of a finished run (kernels.regressions, kernels.cost), with the
    notebook's project settings (none read above `root`, the server's); {} while it runs. A bad
    setting is said in `insights_error`."""
    from nbscale.errors import NbscaleError
    from nbscale.kernels.cost import cached_hashes, load_prices, producing_steps, run_cost
    from nbscale.kernels.regressions import check_run, load_thresholds

    if run["status"] not in FINISHED or store is None:
        return {}
    try:
        # only the runs that stored the cached steps' results are read (the panel asks often)
        producers = producing_steps(store, run["notebook"], cached_hashes(run), limit=20)
        return {"regressions": check_run(store, run["id"], load_thresholds(run["notebook"], boundary=root)),
                "cost": run_cost(run, load_prices(run["notebook"], boundary=root), producers)}
    except NbscaleError as exc:
        return {"insights_error": str(exc)}


def _store_signature(path: Path) -> tuple:
    """(mtime, size) of a run store and its WAL: a write to the store changes it."""
    out = []
    for name in (path, path.with_name(path.name + "-wal")):
        try:
            st = os.stat(name)
        except OSError:
            out.append(None)
        else:
            out.append((st.st_mtime_ns, st.st_size))
    return tuple(out)


def _engine_names() -> list[str]:
    from nbscale.kernels.engines import engine_names

    return engine_names()


def _check_runnable(notebook: Path, parameters: dict) -> None:
    """InvalidInput unless the notebook compiles without errors and takes these parameters."""
    from nbscale.kernels import params
    from nbscale.kernels.errors import ParameterError

    pipeline = compile_without_errors(notebook, "running")
    try:
        params.resolve(pipeline, parameters)
    except ParameterError as exc:
        raise InvalidInput(str(exc)) from None
