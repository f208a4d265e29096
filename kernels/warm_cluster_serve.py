"""The warm cluster's own process: `python -m nbscale.kernels.warm_cluster_serve FOLDER`.

It starts the embedded LocalCluster exactly as a run starts its own (`engines.dask.local_cluster`:
forked single-threaded workers, the same Dask settings), with Dask's
`distributed.scheduler.idle-timeout` (counted from START_GRACE_S after it is up), adds
`OrphanedStepStopper` to its scheduler, Dask's dashboard (the panel links it), and the handlers
that scale it or make it adaptive from another process (the CLI, the Jupyter server: `Scaling`),
writes the files `warm_cluster.lookup` reads, and holds the cluster until the scheduler closes
itself (idle) or SIGTERM/SIGINT come (`nbscale cluster stop`, the panel's Close). Then it closes
the cluster and removes its files.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from contextlib import suppress

from distributed.diagnostics.plugin import SchedulerPlugin

from . import own_code, warm_cluster
from .children import TERMINATE_WAIT_S
from .engines.dask_lifecycle import (
    ASK_S,
    ORPHAN_STOPPER,
    drop_runs_of,
    end_for_restart,
    executing_keys,
    kill_worker_process,
    running_on,
)
from .warm_cluster import MAX_WORKERS, info_path, remove_files, scheduler_file_path, write_json

STEP_KEY_PREFIX = "nbscale-"  # keys of a run's tasks: nbscale-<step>-<hash>-<first 8 of the run id>
RESTART_TIMEOUT_S = 30.0
CLOSED_SCHEDULER_WAIT_S = 3.0  # closing a cluster whose scheduler closed itself (idle) waits no longer
START_GRACE_S = 5.0  # a cluster just started is not idle before its starter has had this long to connect
log = logging.getLogger("nbscale.warm_cluster")


class OrphanedStepStopper(SchedulerPlugin):
    """When a run's client goes away without cancelling its run (its process was killed), restart
    the workers still executing that run's steps: on a shared cluster nothing else would stop them.

    Which runs a client submitted is seen as it submits them (`update_graph`); by the time
    `remove_client` is called the scheduler has released the client's tasks, but the workers still
    execute them (a thread cannot be stopped), so the workers are asked what they execute.
    """

    name = ORPHAN_STOPPER

    def __init__(self):
        self.runs_of: dict[str, set[str]] = {}  # client id → run id prefixes of the tasks it submitted

    def update_graph(self, scheduler, *, client, keys, **kwargs):
        runs = {str(k).rsplit("-", 1)[-1] for k in keys if str(k).startswith(STEP_KEY_PREFIX)}
        if runs:
            self.runs_of.setdefault(client, set()).update(runs)

    def forget(self, run: str) -> None:
        """A run that ended (`dask_lifecycle.forget_run`): what of it may still execute, a warm-up
        of an idle worker, is no orphaned step; its client leaving restarts no worker."""
        for runs in self.runs_of.values():
            runs.discard(run)

    def remove_client(self, scheduler, client):
        runs = self.runs_of.pop(client, set())
        if runs:
            scheduler._ongoing_background_tasks.call_soon(self.stop_runs, scheduler, runs, client)

    async def stop_runs(self, scheduler, runs: set[str], client: str):
        try:
            await self.restart_busy_workers(scheduler, runs, client)
        finally:  # its records, which `nbscale cluster status` lists as runs on the cluster, go with it
            drop_runs_of(scheduler, runs)

    async def restart_busy_workers(self, scheduler, runs: set[str], client: str):
        busy, stuck = set(), set()
        for run in runs:
            found = await run_on_workers(scheduler, executing_keys, f"-{run}", timeout=ASK_S)
            busy |= {worker for worker, keys in found.items() if keys}
            # one that does not answer is stuck in a step's C code (`dask_lifecycle._stop`): the run's
            # records say which run its steps (the scheduler released the client's tasks already)
            stuck |= running_on(scheduler, run) - set(found)
        if not busy | stuck:
            return
        log.warning("client %s went away while its run(s) %s were executing: restarting workers %s",
                    client, ", ".join(sorted(runs)), ", ".join(sorted(busy | stuck)))
        ended = await run_on_workers(scheduler, end_for_restart, workers=busy, timeout=TERMINATE_WAIT_S + ASK_S)
        stuck |= busy - set(ended)
        killed = await run_on_workers(scheduler, kill_worker_process, workers=stuck, nanny=True) if stuck else {}
        restart = sorted((busy | stuck) - {worker for worker, done in killed.items() if done is True})
        if restart:  # (a worker killed above is started again by its nanny)
            await scheduler.restart_workers(workers=restart, timeout=RESTART_TIMEOUT_S, wait_for_workers=False,
                                            on_error="return", stimulus_id=f"nbscale-orphaned-{time.time()}")


async def run_on_workers(scheduler, function, *args, workers=None, nanny=False, timeout=None) -> dict:
    """`function(*args, dask_worker=...)` on the workers (as `Client.run` does; `nanny`: on their
    nannies), the answers that came (within `timeout` each)."""
    import asyncio

    from distributed.protocol import Serialized, deserialize
    from distributed.protocol.pickle import dumps

    message = {"op": "run", "function": dumps(function), "args": dumps(args), "kwargs": dumps({}), "wait": True}

    async def ask(worker):
        try:
            return await asyncio.wait_for(
                scheduler.broadcast(msg=message, workers=[worker], nanny=nanny, on_error="return"), timeout)
        except asyncio.TimeoutError:
            return {}

    every = list(scheduler.workers) if workers is None else list(workers)
    answers = {}
    for found in await asyncio.gather(*(ask(worker) for worker in every)):
        answers.update(found)
    results = {}
    for worker, answer in answers.items():
        if isinstance(answer, dict) and answer.get("status") == "OK":
            result = answer.get("result")
            # the scheduler passes results on to clients as they came: still serialised here
            results[worker] = deserialize(result.header, result.frames) if isinstance(result, Serialized) else result
    return results


class OpenRuns:
    """The runs still connected (`warm_cluster.HOLD_HANDLER`, which a run's client calls as it
    connects): the cluster is not idle while one is, though no task runs (a run whose steps ended
    writing their values to a slow store); Dask's idle timeout counts tasks only, and closed the
    cluster under such a run. A client that goes away lets go."""

    name = "nbscale-open-runs"

    def __init__(self):
        self.clients: set[str] = set()

    def install(self, scheduler) -> None:
        from distributed.diagnostics.plugin import SchedulerPlugin

        owner = self

        class Forget(SchedulerPlugin):
            name = OpenRuns.name

            def remove_client(self, scheduler, client):
                owner.clients.discard(client)

        scheduler.handlers[warm_cluster.HOLD_HANDLER] = self.hold
        scheduler.add_plugin(Forget())
        self.scheduler = scheduler

    def hold(self, client: str = "") -> dict:
        if client in self.scheduler.clients:  # (one that left already would be held for ever)
            self.clients.add(client)
        return {"held": client in self.clients}

    def keep_awake(self) -> None:
        """Called often: Dask counts idleness from `idle_since`, which this resets while a run is open."""
        if self.clients:
            self.scheduler.idle_since = None


class Scaling:
    """The scheduler's handlers that scale the cluster (`warm_cluster.scale`, the panel's Scale) and
    make it adaptive (the panel's Adapt): the cluster object lives in this process, next to its
    scheduler, so a client asks the scheduler. Scaling by hand ends adaptive mode, as in Dask."""

    def __init__(self, cluster):
        self.cluster = cluster
        self.adaptive = None
        self.bounds: dict | None = None

    def install(self, scheduler) -> None:
        scheduler.handlers[warm_cluster.SCALE_HANDLER] = self.scale
        scheduler.handlers[warm_cluster.ADAPT_HANDLER] = self.adapt
        scheduler.handlers[warm_cluster.ADAPTIVE_HANDLER] = self.adaptive_bounds

    def scale(self, n: int = 0) -> dict:
        if type(n) is not int or not 1 <= n <= MAX_WORKERS:
            return {"error": f"the number of workers must be 1 to {MAX_WORKERS}, not {n!r}"}
        self._stop_adaptive()
        self.cluster.scale(n)  # on this loop: the workers start (or retire) in the background
        return {"workers": n}

    def adapt(self, minimum: int = 0, maximum: int = 0) -> dict:
        if (type(minimum) is not int or type(maximum) is not int
                or not 0 <= minimum <= maximum or not 1 <= maximum <= MAX_WORKERS):
            return {"error": f"adaptive bounds must be 0 ≤ minimum ≤ maximum, 1 ≤ maximum ≤ {MAX_WORKERS}"}
        self._stop_adaptive()
        self.adaptive = self.cluster.adapt(minimum=minimum, maximum=maximum)
        self.bounds = {"minimum": minimum, "maximum": maximum}
        return {"adaptive": self.bounds}

    def adaptive_bounds(self) -> dict:
        return {"adaptive": self.bounds}

    def _stop_adaptive(self) -> None:
        if self.adaptive is not None:
            self.adaptive.stop()
        self.adaptive = self.bounds = None


def dashboard_module():
    """Dask's dashboard module, None without bokeh (the panel then says to install it). Imported
    before the cluster starts: the import takes a second, which the idle timeout would count."""
    try:
        import distributed.dashboard.scheduler as dashboard
    except ImportError:
        return None
    return dashboard


def connect_dashboard(cluster, dashboard) -> None:
    """Dask's dashboard on the HTTP server the scheduler serves anyway (on the scheduler's loopback
    address). `engines.dask.local_cluster` starts none, as a run's own cluster would pay a second
    for it on every run; a warm cluster starts once, and the panel links its dashboard."""
    if dashboard is None:
        return
    scheduler = cluster.scheduler

    async def connect():  # on the scheduler's loop, as the Scheduler does it when it starts one
        dashboard.connect(scheduler.http_application, scheduler.http_server, scheduler, prefix="/")

    try:
        cluster.sync(connect)
    except Exception as exc:  # noqa: BLE001 - the cluster serves runs without its dashboard
        log.warning("no dashboard: %s", exc)


def serve(folder: str, workers: int | None, idle_timeout_s: float) -> int:
    import dask

    from .engines.dask import local_cluster

    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop_handler(stopping, os.getpid()))
    dashboard = dashboard_module()
    security = warm_cluster.new_security(folder)  # (written first: whoever finds the cluster can connect)
    # no idle timeout while the cluster starts: on a loaded machine starting it took longer than a
    # short timeout, which closed it before its starter could see it (`count_idle_from_now`)
    with dask.config.set({"distributed.scheduler.idle-timeout": None}):
        cluster = local_cluster(workers, security=security)
    scheduler = cluster.scheduler
    scheduler.add_plugin(OrphanedStepStopper())
    Scaling(cluster).install(scheduler)
    open_runs = OpenRuns()
    open_runs.install(scheduler)
    connect_dashboard(cluster, dashboard)  # before the files: whoever finds the cluster finds its dashboard
    write_json(scheduler_file_path(folder), scheduler.identity())
    write_json(info_path(folder), {
        "pid": os.getpid(), "address": cluster.scheduler_address, "workers": len(cluster.workers),
        "started": time.time(), "idle_timeout_s": idle_timeout_s, "scheduler_file": str(scheduler_file_path(folder)),
        # runs of another environment do not use it (`warm_cluster.connect`)
        "prefix": sys.prefix, "pythonpath": warm_cluster.pythonpath_entries(), "code": own_code.IMPORTED})
    log.warning("warm cluster of %s at %s (%d workers)", folder, cluster.scheduler_address, len(cluster.workers))
    idle = False
    awake_until = time.monotonic() + START_GRACE_S
    try:
        while not stopping.wait(0.5):
            open_runs.keep_awake()
            if awake_until and time.monotonic() < awake_until:
                scheduler.idle_since = None
            elif awake_until:
                awake_until = count_idle_from_now(scheduler, idle_timeout_s)
            if scheduler.status.name in ("closing", "closed", "failed"):
                log.warning("the scheduler closed (idle for %.0f s)", idle_timeout_s)
                idle = True
                break
    finally:
        remove_files(folder, pid=os.getpid())
        close(cluster, CLOSED_SCHEDULER_WAIT_S if idle else RESTART_TIMEOUT_S)
    return 0


def count_idle_from_now(scheduler, idle_timeout_s: float) -> None:
    """Dask's idle timeout, from now on (0: never): a cluster just started first waits START_GRACE_S
    for the run or the command that started it to connect."""
    scheduler.idle_since = None  # (its next idleness check, every 250 ms, starts the count)
    scheduler.idle_timeout = idle_timeout_s or None


def close(cluster, timeout: float) -> None:
    """Close the cluster, and end the worker processes left (a cluster whose scheduler closed
    itself does not close in time: it asks that scheduler to retire the workers)."""
    import psutil

    try:
        cluster.close(timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - what is left is ended below
        log.warning("closing the cluster: %s", exc)
    left = psutil.Process().children(recursive=True)
    for child in left:
        with suppress(psutil.NoSuchProcess):
            child.terminate()
    _, alive = psutil.wait_procs(left, timeout=5)
    for child in alive:
        with suppress(psutil.NoSuchProcess):
            child.kill()


def stop_handler(stopping: threading.Event, pid: int):
    """Sets `stopping` in this process; a worker forked from it keeps the handler, and is killed
    by the signal as if it had none (its nanny stops it with SIGTERM)."""

    def handle(signum, frame):
        if os.getpid() == pid:
            stopping.set()
            return
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    return handle


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {__name__}")
    parser.add_argument("folder")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--idle-timeout", type=float, default=1800.0, help="seconds")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    code = serve(os.path.abspath(args.folder), args.workers, args.idle_timeout)
    # the cluster is closed and its files removed: nothing is left for the interpreter's exit
    # hooks to do but wait on Dask's loop threads
    logging.shutdown()
    os._exit(code)


if __name__ == "__main__":
    raise SystemExit(main())
