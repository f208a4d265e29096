"""The server side of the panel: a plain async manager with no web framework in it.

`handlers.py` maps HTTP to these calls; everything returned is a JSON model (`models.py`).
- notebook paths are checked against the server's root directory;
- runs: the CLI's run store beside each notebook (`.nbscale/runs.sqlite`) is the only record, so
  runs started here and runs started with `nbscale run` are the same runs. A run started here
  executes in a process of its own (`runproc.py`: user code must not run inside the Jupyter
  server), which a thread supervises; cancelling interrupts it as Ctrl-C does the CLI;
- the cluster: at most one Dask cluster per server (an embedded LocalCluster, one built by the
  configured factory, or a scheduler it connected to); Dask runs started here run on it;
- events: run and step events of runs started here, and cluster samples, fanned out to the
  subscribers (the websocket handler) — a sample every `sample_interval_s` while a run is active.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from . import models

FINISHED = ("succeeded", "failed", "cached", "upstream_failed", "cancelled")
_CHILD_ENV_DROP = ("JUPYTER_TOKEN", "JUPYTER_PASSWORD", "JPY_API_TOKEN", "JUPYTERHUB_API_TOKEN")


class ApiError(Exception):
    """An error the API reports as `{"error": message, "detail": detail}` with `status`."""

    status = 500

    def __init__(self, message: str, detail=None):
        super().__init__(message)
        self.message, self.detail = message, detail


class BadRequest(ApiError):
    status = 400


class Forbidden(ApiError):
    status = 403


class NotFound(ApiError):
    status = 404


class Conflict(ApiError):
    status = 409


class BadGateway(ApiError):
    """The KFP endpoint could not be reached or refused the call."""

    status = 502


class Unavailable(ApiError):
    """A feature this installation cannot serve (yet)."""

    status = 501


class NbscaleManager:
    def __init__(self, root_dir, *, default_engine: str = "dask", scheduler_address: str | None = None,
                 cluster_factory: dict | None = None, kfp_host: str | None = None, allow_hidden: bool = False,
                 log: logging.Logger | None = None, sample_interval_s: float = 0.5, idle_interval_s: float = 2.0,
                 cancel_grace_s: float = 15.0, start_timeout_s: float = 120.0, connect_timeout_s: float = 10.0):
        self.root = Path(root_dir).expanduser().resolve()
        self.default_engine = default_engine
        self.scheduler_address = scheduler_address or None
        self.cluster_factory = cluster_factory or None
        self.kfp_host = kfp_host or None
        self.allow_hidden = allow_hidden
        self.log = log or logging.getLogger("nbscale.jupyter_ext")
        self.sample_interval_s, self.idle_interval_s = sample_interval_s, idle_interval_s
        self.cancel_grace_s, self.start_timeout_s = cancel_grace_s, start_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self._stores: dict[Path, object] = {}
        self._stores_lock = threading.Lock()
        self._runs: dict[str, _ServerRun] = {}  # run id → a run started here that is still going
        self._own_runs: set[str] = set()  # every run started here
        self._followed: dict[Path, int] = {}  # watched notebook → last run-store event pushed
        self._children: set[_ServerRun] = set()  # every child process not yet ended
        self._subscribers: dict[int, tuple[Path | None, Callable[[dict], None]]] = {}
        self._next_subscriber = 0
        self._sampler: asyncio.Task | None = None
        self._wake: asyncio.Event | None = None
        self._cluster: _ServerCluster | None = None
        self._cluster_lock: asyncio.Lock | None = None
        self._configured_tried = False
        self._cluster_error: str | None = None
        self._closed = False

    # --- paths ------------------------------------------------------------------------------------

    def notebook_path(self, path: str | None) -> Path:
        """The notebook file `path` names (relative to the root; absolute only inside it)."""
        if not path or not isinstance(path, str):
            raise BadRequest("missing 'path': a notebook path relative to the server's root")
        if "\0" in path:
            raise BadRequest("invalid path")
        given = Path(path)
        resolved = (given if given.is_absolute() else self.root / given).resolve()
        if not resolved.is_relative_to(self.root):
            raise Forbidden("path is outside the server's root directory")
        if not self.allow_hidden and any(p.startswith(".") for p in resolved.relative_to(self.root).parts):
            raise Forbidden("hidden files are not served (ContentsManager.allow_hidden)")
        if resolved.suffix != ".ipynb":
            raise BadRequest(f"{path} is not a notebook (.ipynb)")
        if not resolved.is_file():
            raise NotFound(f"no notebook {path}")
        return resolved

    def api_path(self, notebook: Path) -> str:
        return notebook.relative_to(self.root).as_posix()

    # --- pipeline ---------------------------------------------------------------------------------

    async def pipeline(self, path: str) -> dict:
        notebook = self.notebook_path(path)
        pipeline = await asyncio.to_thread(_compile, notebook)
        return models.pipeline_model(pipeline.to_json(), self.api_path(notebook))

    # --- runs -------------------------------------------------------------------------------------

    async def list_runs(self, path: str, limit: int = 50) -> dict:
        notebook = self.notebook_path(path)
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 1000:
            raise BadRequest("'limit' must be an integer from 1 to 1000")
        store = await self._store(notebook, create=False)
        if store is None:
            return {"runs": []}
        rows = await asyncio.to_thread(store.list_runs, str(notebook), limit)
        api = self.api_path(notebook)
        return {"runs": [models.run_summary(r, api) for r in rows]}

    async def run_detail(self, path: str, run_id: str) -> dict:
        notebook = self.notebook_path(path)
        run = await self._get_run(notebook, run_id)
        return models.run_detail(run, self.api_path(notebook))

    async def metrics(self, path: str) -> dict:
        notebook = self.notebook_path(path)
        store = await self._store(notebook, create=False)
        history = [] if store is None else await asyncio.to_thread(store.metrics_history, str(notebook))
        return models.metrics_model(history)

    async def start_run(self, path: str, engine: str | None = None, parameters: dict | None = None,
                        use_cache: bool | None = True) -> dict:
        """Start a run in its own process; returns its RunSummary once the run store has it."""
        notebook = self.notebook_path(path)
        engine = engine or self.default_engine
        if not isinstance(engine, str):
            raise BadRequest("'engine' must be a string")
        if parameters is None:
            parameters = {}
        if use_cache is None:
            use_cache = True
        if not isinstance(parameters, dict):
            raise BadRequest("'parameters' must be an object of name: value")
        if not isinstance(use_cache, bool):
            raise BadRequest("'use_cache' must be true or false")
        known = await asyncio.to_thread(_engine_names)
        if engine not in known:
            raise BadRequest(f"unknown engine {engine!r}; choose one of {', '.join(known)}")
        await asyncio.to_thread(_check_runnable, notebook, parameters)
        options = await self.run_options(engine, use_cache)
        loop = asyncio.get_running_loop()
        run = _ServerRun(self, loop, notebook, self.api_path(notebook))
        self._children.add(run)
        created = run.start({"notebook": str(notebook), "parameters": parameters, "options": options,
                             "cluster_factory": self.cluster_factory})
        try:
            run_id = await asyncio.wait_for(created, self.start_timeout_s)
        except asyncio.TimeoutError:
            run.cancel(grace=2)
            raise ApiError("the run did not start in time") from None
        self._wake_sampler()
        return await self._summary(notebook, run_id)

    async def run_options(self, engine: str, use_cache: bool = True) -> dict:
        """RunOptions fields for a run started here: a Dask run uses the server's cluster if any."""
        options = {"engine": engine, "use_cache": use_cache}
        if engine == "dask":
            await self._ensure_configured_cluster()
            if self._cluster is not None:
                options["scheduler"] = self._cluster.address
        return options

    async def cancel_run(self, path: str, run_id: str) -> dict:
        notebook = self.notebook_path(path)
        row = await self._get_run(notebook, run_id)
        if row["status"] in FINISHED:
            raise Conflict(f"run {row['id'][:12]} already {row['status']}")
        run = self._runs.get(row["id"])
        if run is None:
            raise Conflict(f"run {row['id'][:12]} was not started by this server; cancel it where it runs")
        run.cancel(self.cancel_grace_s)
        return models.run_summary(row, self.api_path(notebook))

    def active_runs(self) -> list[str]:
        return list(self._runs)

    async def _summary(self, notebook: Path, run_id: str) -> dict:
        return models.run_summary(await self._get_run(notebook, run_id), self.api_path(notebook))

    async def _get_run(self, notebook: Path, run_id: str) -> dict:
        from nbscale.kernels.errors import RunStoreError

        if not isinstance(run_id, str) or not run_id.strip():
            raise BadRequest("missing run id")
        store = await self._store(notebook, create=False)
        if store is None:
            raise NotFound(f"no run {run_id}")
        try:
            run = await asyncio.to_thread(store.get_run, run_id)
        except RunStoreError as exc:
            if "ambiguous" in str(exc):
                raise BadRequest(str(exc)) from None
            raise NotFound(f"no run {run_id}") from None
        if Path(run["notebook"]) != notebook:
            raise NotFound(f"no run {run_id} of {self.api_path(notebook)}")
        return run

    async def _store(self, notebook: Path, create: bool):
        return await asyncio.to_thread(self.store_for, notebook, create)

    def store_for(self, notebook: Path, create: bool = True):
        """The CLI's run store beside `notebook` (None if it does not exist and `create` is false)."""
        from nbscale.kernels.runner import state_dir
        from nbscale.kernels.runstore import RunStore

        path = state_dir(notebook) / "runs.sqlite"
        with self._stores_lock:
            store = self._stores.get(path)
            if store is None:
                if not create and not path.exists():
                    return None
                store = self._stores[path] = RunStore(path)
            return store

    # --- run processes (called from their supervising threads through the loop) ------------------

    def _run_created(self, run: _ServerRun, run_id: str) -> None:
        self._runs[run_id] = run
        self._own_runs.add(run_id)
        self.publish({"type": "run", "run_id": run_id, "status": "pending", "payload": {"kind": "run_created"}},
                     run.notebook)

    def _run_ended(self, run: _ServerRun, final_status: str | None) -> None:
        self._children.discard(run)
        if run.run_id is not None:
            self._runs.pop(run.run_id, None)
            if final_status and not run.finished_event_sent:
                self.publish({"type": "run", "run_id": run.run_id, "status": final_status,
                              "payload": {"kind": "run_finished", "finished": models._now()}}, run.notebook)

    # --- cluster ----------------------------------------------------------------------------------

    async def cluster(self) -> dict:
        await self._ensure_configured_cluster()
        if self._cluster is not None:
            return await self._cluster.model()
        sample = self._run_cluster_sample()
        return sample or models.no_cluster(self._cluster_error)

    async def cluster_action(self, body: dict) -> dict:
        if not isinstance(body, dict):
            raise BadRequest("expected a JSON object with 'action'")
        action = body.get("action")
        if action == "start":
            return await self.start_cluster(_opt_int(body, "n", minimum=0))
        if action == "connect":
            return await self.connect_cluster(body.get("address"))
        if action == "scale":
            return await self.scale_cluster(_int(body, "n", minimum=0))
        if action == "adapt":
            return await self.adapt_cluster(_int(body, "minimum", minimum=0), _int(body, "maximum", minimum=1))
        if action == "close":
            return await self.close_cluster()
        raise BadRequest("'action' must be one of start, connect, scale, adapt, close")

    async def start_cluster(self, n: int | None = None) -> dict:
        async with self._lock():
            self._refuse_second_cluster()
            self._cluster = await _ServerCluster.start(self.cluster_factory, n)
            self._cluster_error = None
            self.log.info("nbscale: started a %s at %s", self._cluster.kind, self._cluster.address)
        self._wake_sampler()
        return await self._cluster.model()

    async def connect_cluster(self, address) -> dict:
        if not isinstance(address, str) or not address.strip():
            raise BadRequest("'address' must be a Dask scheduler address, e.g. tcp://host:8786")
        async with self._lock():
            self._refuse_second_cluster()
            self._cluster = await _ServerCluster.connect(address.strip(), self.connect_timeout_s)
            self._cluster_error = None
            self.log.info("nbscale: connected to the Dask scheduler at %s", self._cluster.address)
        self._wake_sampler()
        return await self._cluster.model()

    async def scale_cluster(self, n: int) -> dict:
        cluster = self._managed_cluster("scale")
        await cluster.scale(n)
        return await cluster.model()

    async def adapt_cluster(self, minimum: int, maximum: int) -> dict:
        if minimum > maximum:
            raise BadRequest("'minimum' must not exceed 'maximum'")
        cluster = self._managed_cluster("adapt")
        cluster.adapt(minimum, maximum)
        return await cluster.model()

    async def close_cluster(self) -> dict:
        async with self._lock():
            cluster, self._cluster = self._cluster, None
            if cluster is None:
                raise Conflict("no cluster to close")
            await cluster.close()
        self.publish({"type": "cluster", "payload": models.no_cluster()})
        return models.no_cluster()

    def _refuse_second_cluster(self):
        if self._cluster is not None:
            raise Conflict(f"a cluster is already running ({self._cluster.kind} at {self._cluster.address}); "
                           "close it first")

    def _managed_cluster(self, what: str) -> _ServerCluster:
        if self._cluster is None:
            raise Conflict(f"no cluster to {what}; start one first")
        if self._cluster.cluster is None:
            raise Conflict(f"cannot {what} a cluster this server only connected to")
        return self._cluster

    def _lock(self) -> asyncio.Lock:
        if self._cluster_lock is None:
            self._cluster_lock = asyncio.Lock()
        return self._cluster_lock

    async def _ensure_configured_cluster(self) -> None:
        """Connect once to the configured `scheduler_address`, at first need."""
        if not self.scheduler_address or self._configured_tried or self._cluster is not None:
            return
        async with self._lock():
            if self._configured_tried or self._cluster is not None:
                return
            self._configured_tried = True
            try:
                self._cluster = await _ServerCluster.connect(self.scheduler_address, self.connect_timeout_s)
            except ApiError as exc:
                self._cluster_error = exc.message
                self.log.warning("nbscale: %s", exc.message)

    def _run_cluster_sample(self) -> dict | None:
        for run in list(self._runs.values()):
            if run.cluster_sample is not None:
                return run.cluster_sample
        return None

    # --- events -----------------------------------------------------------------------------------

    def subscribe(self, callback: Callable[[dict], None], notebook: Path | None = None) -> Callable[[], None]:
        """Call `callback(event)` (on the event loop) for events of `notebook`'s runs (all runs if
        None) and for cluster samples. Returns the function that unsubscribes."""
        key = self._next_subscriber
        self._next_subscriber += 1
        self._subscribers[key] = (notebook, callback)
        self._ensure_sampler()

        def unsubscribe():
            self._subscribers.pop(key, None)

        return unsubscribe

    def publish(self, event: dict, notebook: Path | None = None) -> None:
        for wanted, callback in list(self._subscribers.values()):
            if notebook is None or wanted is None or wanted == notebook:
                try:
                    callback(event)
                except Exception:  # noqa: BLE001 - one broken subscriber must not stop the others
                    self.log.debug("nbscale: event subscriber failed", exc_info=True)

    async def _follow_other_runs(self) -> bool:
        """Push the events of runs that other processes (`nbscale run`, papermill) write to the run
        store of a watched notebook; True when there were any."""
        watched = {notebook for notebook, _ in self._subscribers.values() if notebook is not None}
        for notebook in set(self._followed) - watched:
            del self._followed[notebook]
        seen = False
        for notebook in watched:
            try:
                seen |= await self._publish_store_events(notebook)
            except Exception:  # noqa: BLE001 - a locked or broken store must not stop the samples
                self.log.debug("nbscale: following runs of %s failed", notebook, exc_info=True)
        return seen

    async def _publish_store_events(self, notebook: Path) -> bool:
        store = await self._store(notebook, create=False)
        if store is None:
            return False
        if notebook not in self._followed:  # from now on: history is what /runs is for
            self._followed[notebook] = await asyncio.to_thread(store.last_event_id)
            return False
        rows = await asyncio.to_thread(store.notebook_events_since, str(notebook), self._followed[notebook])
        for row in rows:
            self._followed[notebook] = row["id"]
            if row["run_id"] not in self._own_runs:  # the server's own runs are pushed as they happen
                self.publish(models.event(row["kind"], row["run_id"], row["step"], row["payload"] or {}), notebook)
        return bool(rows)

    async def cluster_sample(self) -> dict:
        """The cluster model for a sample: the server's cluster, a running run's own, or none."""
        if self._cluster is not None:
            try:
                return await self._cluster.model()
            except ApiError as exc:
                return models.no_cluster(exc.message)
        return self._run_cluster_sample() or models.no_cluster(self._cluster_error)

    def _ensure_sampler(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if self._sampler is None or self._sampler.done():
            self._wake = asyncio.Event()
            self._sampler = loop.create_task(self._sample_loop())

    def _wake_sampler(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def _sample_loop(self) -> None:
        while self._subscribers and not self._closed:
            active = await self._follow_other_runs() or bool(self._runs)
            if active or self._cluster is not None:
                self.publish({"type": "cluster", "payload": await self.cluster_sample()})
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(),
                                       self.sample_interval_s if active else self.idle_interval_s)
            except asyncio.TimeoutError:
                pass

    # --- KFP --------------------------------------------------------------------------------------

    async def kfp_yaml(self, path: str) -> tuple[str, str]:
        """(file name, YAML text) of the notebook's KFP v2 pipeline, with the notebook's KFP options
        (pyproject.toml `[tool.nbscale.kfp]`, notebook metadata `nbscale.kfp`)."""
        notebook = self.notebook_path(path)
        target = _kfp_target()
        pipeline = await asyncio.to_thread(_compile, notebook)
        if pipeline.has_errors:
            raise BadRequest(f"{notebook.name} has errors; fix them before exporting", _diagnostics_detail(pipeline))
        text = await asyncio.to_thread(_kfp_yaml_text, target, notebook, pipeline)
        return f"{pipeline.name}.yaml", text

    async def kfp_submit(self, path: str, parameters: dict | None = None, experiment: str | None = None,
                         run_name: str | None = None) -> dict:
        """Compile and submit to the KFP host (`c.Nbscale.kfp_host`, else the project's setting).
        Credentials come from the server's environment (NBSCALE_KFP_TOKEN, NBSCALE_KFP_COOKIES)."""
        notebook = self.notebook_path(path)
        if parameters is not None and not isinstance(parameters, dict):
            raise BadRequest("'parameters' must be an object of name: value")
        for name, value in (("experiment", experiment), ("run_name", run_name)):
            if value is not None and not isinstance(value, str):
                raise BadRequest(f"'{name}' must be a string")
        target = _kfp_target()
        pipeline = await asyncio.to_thread(_compile, notebook)
        if pipeline.has_errors:
            raise BadRequest(f"{notebook.name} has errors; fix them before submitting", _diagnostics_detail(pipeline))
        overrides = {k: v for k, v in (("host", self.kfp_host), ("experiment", experiment)) if v}
        return await asyncio.to_thread(_kfp_submit, target, notebook, pipeline, overrides, parameters or {}, run_name)

    # --- shutdown ---------------------------------------------------------------------------------

    async def close(self) -> None:
        """Cancel the runs started here, close the server's cluster (disconnect from a remote one)."""
        self._closed = True
        children = list(self._children)
        for run in children:
            run.cancel(grace=5)
        for run in children:
            await asyncio.to_thread(run.join, 10)
        if self._cluster is not None:
            cluster, self._cluster = self._cluster, None
            await cluster.close()
        if self._sampler is not None:
            self._wake_sampler()
            self._sampler.cancel()
        with self._stores_lock:
            for store in self._stores.values():
                store.close()
            self._stores.clear()


class _ServerRun:
    """A run process started by the server and the thread that supervises it."""

    def __init__(self, manager: NbscaleManager, loop, notebook: Path, api_path: str):
        self.manager, self.loop, self.notebook, self.api_path = manager, loop, notebook, api_path
        self.run_id: str | None = None
        self.proc: subprocess.Popen | None = None
        self.thread: threading.Thread | None = None
        self.created: asyncio.Future = loop.create_future()
        self.cancel_requested = False
        self.finished_event_sent = False
        self.cluster_sample: dict | None = None
        self.error: str | None = None
        self.input_error = False
        self.stdin_lock = threading.Lock()

    def start(self, spec: dict) -> asyncio.Future:
        self.stderr = tempfile.TemporaryFile()
        env = {k: v for k, v in os.environ.items() if k not in _CHILD_ENV_DROP}
        # -P: the notebook's folder is the working directory but not an import path of the run process
        # itself (a `dask.py` beside the notebook must not replace Dask); steps still import from it.
        safe_path = ["-P"] if sys.version_info >= (3, 11) else []
        self.proc = subprocess.Popen(
            [sys.executable, *safe_path, "-m", "nbscale.jupyter_ext.runproc"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr, cwd=str(self.notebook.parent), env=env, text=True, encoding="utf-8",
            start_new_session=True)
        self.proc.stdin.write(json.dumps(spec) + "\n")
        self.proc.stdin.flush()
        self.thread = threading.Thread(target=self._supervise, name="nbscale-run", daemon=True)
        self.thread.start()
        return self.created

    def cancel(self, grace: float) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        first = not self.cancel_requested
        self.cancel_requested = True
        with self.stdin_lock:
            try:
                self.proc.stdin.write("cancel\n")
                self.proc.stdin.flush()
            except (OSError, ValueError):
                pass
        if first:
            timer = threading.Timer(grace, self._kill)
            timer.daemon = True
            timer.start()

    def join(self, timeout: float) -> None:
        if self.thread is not None:
            self.thread.join(timeout)
        if self.proc is not None and self.proc.poll() is None:
            self._kill()
            self.thread.join(timeout)

    def _kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.manager.log.warning("nbscale: run %s did not stop after cancel; killing its process",
                                     (self.run_id or "?")[:12])
            self.proc.kill()

    # the supervising thread -----------------------------------------------------------------------

    def _supervise(self) -> None:
        status = None
        try:
            for line in self.proc.stdout:
                try:
                    message = json.loads(line)
                except ValueError:
                    continue
                self._handle(message)
            code = self.proc.wait()
            with self.stdin_lock:
                try:
                    self.proc.stdin.close()
                except OSError:
                    pass
            status = self._finalize(code)
        except Exception:  # noqa: BLE001 - never let a supervisor die silently
            self.manager.log.exception("nbscale: supervising run %s failed", self.run_id)
        finally:
            if self.run_id is None and not self.error:
                self.error = f"the run process ended before the run began: {self._stderr_tail(5)}"
            self.stderr.close()
            self._call(self._ended, status)

    def _handle(self, message: dict) -> None:
        kind = message.get("type")
        if kind == "created":
            self.run_id = message["run_id"]
            self._call(self._created, self.run_id)
        elif kind == "event" and self.run_id is not None:
            event = models.event(message.get("kind", ""), self.run_id, message.get("step"), message.get("payload"))
            if message.get("kind") == "run_finished":
                self.finished_event_sent = True
            self._call(self.manager.publish, event, self.notebook)
        elif kind == "cluster":
            self.cluster_sample = message.get("model")
        elif kind == "error":
            self.error, self.input_error = str(message.get("message") or "error"), bool(message.get("input"))

    def _finalize(self, code: int) -> str | None:
        """Make the run store final when the process could not (killed, crashed, cancelled early)."""
        if self.run_id is None:
            return None
        store = self.manager.store_for(self.notebook)
        run = store.get_run(self.run_id)
        if run["status"] in FINISHED:
            return run["status"]
        status = "cancelled" if self.cancel_requested else "failed"
        for step in run["steps"]:
            if step["status"] in ("pending", "running"):
                failed = step["status"] == "running" and status == "failed"
                store.update_step(self.run_id, step["step"], status="failed" if failed else "cancelled")
        if status == "cancelled":
            error = "cancelled by the user"
        else:
            error = self.error or f"the run process ended with exit code {code}: {self._stderr_tail()}"
        store.finish_run(self.run_id, status, error)
        return status

    def _stderr_tail(self, lines: int = 15) -> str:
        try:
            self.stderr.seek(0)
            text = self.stderr.read()[-20_000:].decode("utf-8", "replace")
        except (OSError, ValueError):
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])

    def _call(self, fn, *args) -> None:
        try:
            self.loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop is closed: the server is gone
            pass

    # on the loop ------------------------------------------------------------------------------------

    def _created(self, run_id: str) -> None:
        self.manager._run_created(self, run_id)
        if not self.created.done():
            self.created.set_result(run_id)

    def _ended(self, status: str | None) -> None:
        self.manager._run_ended(self, status)
        if not self.created.done():
            message = self.error or "the run process ended before the run began"
            self.created.set_exception(BadRequest(message) if self.input_error else ApiError(message))


class _ServerCluster:
    """The server's Dask cluster: one it owns (`cluster` set) or one it only connected to."""

    def __init__(self, client, cluster=None, kind: str = "remote"):
        self.client, self.cluster, self.kind = client, cluster, kind
        self.adaptive = None
        self.adaptive_bounds: dict | None = None

    @property
    def address(self) -> str:
        return self.client.scheduler.address

    @classmethod
    async def start(cls, factory: dict | None, n: int | None) -> _ServerCluster:
        import dask
        from distributed import Client

        factory = factory or dask.config.get("nbscale.cluster-factory", None)
        try:
            if factory:
                module = importlib.import_module(factory["module"])
                make = getattr(module, factory["class"])
                kwargs = {**factory.get("kwargs", {}), "asynchronous": True}
                cluster = make(*factory.get("args", []), **kwargs)
                cluster = await cluster if hasattr(cluster, "__await__") else cluster
                if n is not None:
                    cluster.scale(n)
            else:
                from distributed import LocalCluster

                cluster = await LocalCluster(
                    n_workers=n if n is not None else (os.cpu_count() or 1), threads_per_worker=1, processes=True,
                    asynchronous=True, dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR)
            client = await Client(cluster, asynchronous=True, set_as_default=False)
        except ApiError:
            raise
        except Exception as exc:  # noqa: BLE001 - report why the cluster did not start
            raise ApiError(f"could not start the cluster: {type(exc).__name__}: {exc}") from None
        return cls(client, cluster, type(cluster).__name__)

    @classmethod
    async def connect(cls, address: str, timeout: float = 10.0) -> _ServerCluster:
        from distributed import Client

        try:
            client = await Client(address, asynchronous=True, timeout=f"{timeout}s", set_as_default=False)
        except Exception as exc:  # noqa: BLE001 - unreachable, refused, bad address
            raise BadRequest(f"could not connect to the Dask scheduler at {address}: {type(exc).__name__}") from None
        return cls(client, None, "remote")

    async def model(self) -> dict:
        try:
            identity = await asyncio.wait_for(self.client.scheduler.identity(n_workers=-1), 10)
        except Exception as exc:  # noqa: BLE001
            raise ApiError(f"cannot reach the Dask scheduler at {self.address}: {type(exc).__name__}") from None
        try:
            states = await asyncio.wait_for(self.client.scheduler.get_task_prefix_states(), 10)
        except Exception:  # noqa: BLE001 - an older or restricted scheduler: no task counts
            states = {}
        return models.cluster_model(identity, kind=self.kind, task_states=states, adaptive=self.adaptive_bounds,
                                    dashboard_link=self._dashboard_link(identity))

    def _dashboard_link(self, identity: dict) -> str | None:
        if importlib.util.find_spec("bokeh") is None or "dashboard" not in (identity.get("services") or {}):
            return None
        try:
            return self.client.dashboard_link
        except Exception:  # noqa: BLE001
            return None

    async def scale(self, n: int) -> None:
        self._stop_adaptive()
        result = self.cluster.scale(n)
        if hasattr(result, "__await__"):
            await result
        # Give new workers a moment, so the model answered shows them (a slow factory may take longer).
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            identity = await self.client.scheduler.identity(n_workers=0)
            if identity.get("n_workers", n) == n:
                break
            await asyncio.sleep(0.1)

    def adapt(self, minimum: int, maximum: int) -> None:
        self._stop_adaptive()
        self.adaptive = self.cluster.adapt(minimum=minimum, maximum=maximum)
        self.adaptive_bounds = {"minimum": minimum, "maximum": maximum}

    def _stop_adaptive(self) -> None:
        if self.adaptive is not None:
            self.adaptive.stop()
        self.adaptive = self.adaptive_bounds = None

    async def close(self) -> None:
        self._stop_adaptive()
        try:
            await self.client.close()
        finally:
            if self.cluster is not None:
                await _maybe_await(self.cluster.close())


async def _maybe_await(value):
    if hasattr(value, "__await__"):
        return await value
    return value


# --- helpers ------------------------------------------------------------------------------------------


def _compile(notebook: Path):
    from nbscale.compiler import NotebookReadError, compile_notebook

    try:
        return compile_notebook(notebook)
    except NotebookReadError as exc:
        raise BadRequest(str(exc)) from None


def _check_runnable(notebook: Path, parameters: dict) -> None:
    from nbscale.kernels import params
    from nbscale.kernels.errors import ParameterError

    pipeline = _compile(notebook)
    if pipeline.has_errors:
        raise BadRequest(f"{notebook.name} has errors; fix them before running", _diagnostics_detail(pipeline))
    try:
        params.resolve(pipeline, parameters)
    except ParameterError as exc:
        raise BadRequest(str(exc)) from None


def _diagnostics_detail(pipeline) -> dict:
    return {"diagnostics": [d.to_json() for d in pipeline.diagnostics if d.severity == "error"]}


def _engine_names() -> list[str]:
    from nbscale.kernels.engines import engine_names

    return engine_names()


def _int(body: dict, name: str, minimum: int) -> int:
    value = body.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise BadRequest(f"'{name}' must be an integer ≥ {minimum}")
    return value


def _opt_int(body: dict, name: str, minimum: int) -> int | None:
    return None if body.get(name) is None else _int(body, name, minimum)


def _kfp_target():
    """The KFP target module (`nbscale.compiler.targets.kfp`), or 501."""
    try:
        target = importlib.import_module("nbscale.compiler.targets.kfp")
    except ImportError:
        raise Unavailable("KFP export is not available in this nbscale (no nbscale.compiler.targets.kfp)") from None
    if not all(callable(getattr(target, name, None)) for name in ("load_options", "compile_pipeline")):
        raise Unavailable("KFP export is not available in this nbscale (its KFP target lacks compile_pipeline)")
    return target


def _kfp_submit(target, notebook: Path, pipeline, overrides: dict, parameters: dict, run_name) -> dict:
    from nbscale.kernels.errors import ParameterError
    from nbscale.kernels.kfp_submit import EndpointError, submit_pipeline

    try:
        options = target.load_options(notebook, overrides)
    except ValueError as exc:  # OptionsError
        raise BadRequest(str(exc)) from None
    if not options.host:
        raise BadRequest("no KFP host: set c.Nbscale.kfp_host, or host in pyproject.toml [tool.nbscale.kfp]")
    env = os.environ
    try:
        result = submit_pipeline(pipeline, options, parameters, run_name=run_name,
                                 token=env.get("NBSCALE_KFP_TOKEN"), cookies=env.get("NBSCALE_KFP_COOKIES"),
                                 namespace=env.get("NBSCALE_KFP_NAMESPACE"))
    except ParameterError as exc:
        raise BadRequest(str(exc)) from None
    except EndpointError as exc:
        raise BadGateway(f"{redact_url(options.host)}: {exc}") from None
    except ImportError as exc:
        raise Unavailable(f"KFP submit needs the kfp package (pip install 'nbscale[kfp]'): {exc}") from None
    return {"run_url": result["url"], "run_id": result["run_id"], "pipeline": result["pipeline"],
            "version_name": result["version_name"], "experiment": options.experiment}


def _kfp_yaml_text(target, notebook: Path, pipeline) -> str:
    try:
        options = target.load_options(notebook)
    except ValueError as exc:  # OptionsError: a mistyped project default or notebook metadata
        raise BadRequest(str(exc)) from None
    with tempfile.TemporaryDirectory(prefix="nbscale-kfp-") as tmp:
        path = Path(tmp) / "pipeline.yaml"
        try:
            target.compile_pipeline(pipeline, options, path)
        except ImportError as exc:
            raise Unavailable(f"KFP export needs the kfp package (pip install 'nbscale[kfp]'): {exc}") from None
        return path.read_text(encoding="utf-8")


def redact_url(url: str | None) -> str:
    """A URL without user info, query or fragment (which may carry credentials), for logs."""
    if not url:
        return ""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))
