"""The Dask engine: each step is one Dask task (a chain of steps, one task: `dask_chains`);
independent steps run in parallel.

The cluster is an embedded LocalCluster by default (started only when something has to run),
an existing scheduler (`scheduler` address or `scheduler_file`), or a cluster built by the
factory named in Dask config under `nbscale.cluster-factory` ({module, class, args, kwargs}),
as dask-labextension's `labextension.factory` does — so dask-jobqueue, dask-kubernetes or
dask-gateway clusters work without code changes. Step outputs stay in worker memory as futures.
A worker dying under a step and a cancelled run are handled in `dask_lifecycle`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib
import json
import logging
import os
import sys
import threading
import time
import uuid
import warnings
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

from .. import marshal
from ..children import die_with_nanny
from ..contract import (
    PROFILES_STORED,
    STEP_FINISHED,
    STEP_PROGRESS,
    STEP_RETRY,
    STEP_STARTED,
    SUCCEEDED,
    WARNING,
    StepOutcome,
    failed_outcome,
    finished_payload,
)
from ..errors import ClusterStartError, SchedulerUnreachable
from ..handoff import forget_writes, wait_for_writes, write_failed_message
from ..liveness import HEARTBEAT_THREAD
from ..task import await_stored, run_step, written_digests
from . import Engine
from .dask_chains import chains, reported_outcome, run_chain, stripped, upstream_failed
from .dask_collections import STEP_RESOURCE, collections_computed
from .dask_lifecycle import (
    ENDED_EARLIER,
    StepDeadlines,
    TaskLine,
    ended_before_the_last_attempt,
    forget_run,
    install_stranded_steps,
    killed_outcome,
    restart_outdated_workers,
    run_counted,
    stop_run_steps,
)

TOPIC = "nbscale"
OFFLOAD_THREAD = "Dask-Offload"  # the name distributed gives its offload pool's thread (`distributed.utils`)
RESOURCE_NAMES = ("cpu", "memory", "gpu")
ALLOWED_FAILURES = 20  # worker deaths under one task before the embedded cluster's scheduler gives up
# What a worker does for a dashboard, which a run's own cluster has none of. Each wake-up of the
# worker's event loop takes the GIL from the step's thread: a pure-Python step ran 5% slower with
# them (2.22 s against 2.12 s, median of 5). Dask's profiler samples every thread's stack there
# 100 times a second for the dashboard's Profile page; the tick (every 20 ms) times the loop only
# for "event loop was unresponsive" warnings, which `silence_logs` hides.
UNSEEN_WORKER_WORK = {"distributed.worker.profile.enabled": False, "distributed.admin.tick.interval": "1s"}
# How often a nanny looks for its new worker's "started" message (distributed polls every 50 ms): a
# cluster's start waited up to 50 ms after its last worker had registered, 5% of a short run.
NANNY_POLL_S = 0.005
# How long the run's client holds a message to the scheduler for others to join it (distributed: 10 ms).
# Its last ones as the run ends (releasing the run's values, then closing) waited for that: its close
# took 13 ms, 4 ms without.
CLIENT_BATCH_S = 0.001
CONNECT_TIMEOUT_S = 20.0  # a scheduler given by address or file that does not answer in this time is unreachable
START_SETTLE_S = 30.0  # at most this long, a cancelled run lets its cluster's start end before it stops


class _LostSchedulerNoise(logging.Filter):
    """Drops the tracebacks distributed's client logs as it fails to reconnect to a scheduler that
    went away (a warm cluster stopped or killed under a run): the run says it once, as the failed
    step's reason (`_cancelled_outcome`). On `distributed.client` while an engine is connected."""

    def __init__(self):
        super().__init__()
        self._holders, self._lock = 0, threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.ERROR:
            return True
        exc = record.exc_info[1] if record.exc_info else None
        return not (_connection_lost(exc) or str(record.msg).startswith("Failed to reconnect to scheduler"))

    def hold(self) -> None:
        with self._lock:
            self._holders += 1
            if self._holders == 1:
                logging.getLogger("distributed.client").addFilter(self)

    def release(self) -> None:
        with self._lock:
            self._holders -= 1
            if self._holders == 0:
                logging.getLogger("distributed.client").removeFilter(self)


def _connection_lost(exc: BaseException | None) -> bool:
    from distributed.comm.core import CommClosedError

    seen = set()
    while exc is not None and id(exc) not in seen:  # the reconnect's CancelledError, caused by the closed comm
        seen.add(id(exc))
        if isinstance(exc, (CommClosedError, OSError, asyncio.CancelledError, asyncio.TimeoutError)):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


_LOST_SCHEDULER_NOISE = _LostSchedulerNoise()


class DaskEngine(Engine):
    name = "dask"
    cluster_note = None  # which cluster the run uses, or why not the warm one (`connect`)
    shared_address = None  # the address of the warm cluster the run shares (`connect`)

    def __init__(self, scheduler=None, scheduler_file=None, workers=None, run_id="", body=None,
                 on_outcome=None, warm_up=True, fuse=True, **options):
        """`body(spec, upstream, emit)` runs one step on a worker (default: `task.run_step`; it must
        pickle); `on_outcome(outcome)` sees each finished step on the client before it is reported;
        `warm_up`: import the notebook's libraries on idle workers while the first step runs;
        `fuse`: run a chain of steps as one task (`dask_chains`; not with `on_outcome`, which a
        chain's steps would be reported before)."""
        super().__init__(**options)
        self.warm_up, self.fuse = warm_up, fuse and on_outcome is None
        self.scheduler, self.scheduler_file, self.workers = scheduler, scheduler_file, workers
        self.run_id = run_id or ""
        self.body, self.on_outcome = body or run_step, on_outcome
        self.client = self.cluster = None
        self._start_workers = None  # starts the workers of the run's own cluster (`run`, once)
        self._quieted = False  # holds `_LOST_SCHEDULER_NOISE` (`connect`, `close`)
        self._folder_on_path = None  # put on sys.path for the own cluster's scheduler (`_scheduler_imports_from`)

    # --- cluster -----------------------------------------------------------------------------
    def connect(self):
        client = self._connect()
        _send_promptly(client)
        _LOST_SCHEDULER_NOISE.hold()
        self._quieted = True
        return client

    def _connect(self):
        import dask
        from distributed import Client

        if self.scheduler or self.scheduler_file:
            self.client = _stranded_steps_freed(self._given_client())
            return self.client
        factory = dask.config.get("nbscale.cluster-factory", None)
        if not factory and self.workers is None and self._connect_warm():
            return self.client
        if factory:
            self.cluster = cluster_from_factory(factory)
        else:  # its workers start as the run does (`run`), after its first step is submitted
            self.cluster, self._start_workers = local_scheduler(self.workers, http=False)
            self._folder_on_path = _scheduler_imports_from(self.options.get("notebook"))
        # not the default client: the caller's own Dask computes (a kernel calling nbscale.run) keep
        # their scheduler, and workers forked later do not inherit `scheduler: dask.distributed`
        self.client = Client(self.cluster, set_as_default=False)
        return _stranded_steps_freed(self.client) if factory else self.client

    def _given_client(self):
        """A client of the scheduler `--scheduler` or `--scheduler-file` names (over TLS when it is a warm
        cluster's: the panel's runs are given its address). SchedulerUnreachable at once for a file that
        is missing or not a scheduler file, and within the timeout for an address where no scheduler
        answers (Dask's own client waited for ever for a missing file, or for a program that accepts
        and never speaks, and failed after 40 s with a traceback for a damaged one)."""
        from distributed import Client

        from .. import warm_cluster

        folder = Path(self.options.get("notebook") or ".").parent
        address = self.scheduler
        if self.scheduler_file:
            address = _scheduler_file_address(self.scheduler_file)
            folder = Path(self.scheduler_file).resolve().parent.parent  # a warm cluster's: its project
        security = warm_cluster.security_for(address, folder)
        if not warm_cluster.answers(address, timeout=CONNECT_TIMEOUT_S, security=security):
            raise SchedulerUnreachable(f"no Dask scheduler answers at {address} within {CONNECT_TIMEOUT_S:.0f} s "
                                       "(is it running, and is the address right?)")
        try:
            return Client(address, timeout=f"{CONNECT_TIMEOUT_S}s", set_as_default=False, security=security)
        except (OSError, TimeoutError, ValueError) as exc:
            raise SchedulerUnreachable(f"cannot connect to the Dask scheduler at {address}: {exc}") from None

    def _connect_warm(self) -> bool:
        """Connect to the live warm cluster of the notebook's folder (`nbscale cluster start`), shared
        with other runs: never closed here. `cluster_note` says which cluster the run uses, or why
        not the warm one (a stale or hostile file: then a cluster of its own, as without one)."""
        from .. import warm_cluster

        notebook = self.options.get("notebook")
        if notebook:
            self.client, self.cluster_note = warm_cluster.connect(notebook)
            self.shared_address = self.client.scheduler.address if self.client is not None else None
        return self.client is not None

    def close(self):
        self._start_workers = None
        try:
            if self.client is not None:
                self.client.close()
            if self.cluster is not None:
                try:
                    self.cluster.close()
                finally:
                    _FORKING.stop(self.cluster)
                    _scheduler_imports_no_more(self._folder_on_path)
                    self._folder_on_path = None
        finally:
            self.client = self.cluster = None
            if self._quieted:
                self._quieted = False
                _LOST_SCHEDULER_NOISE.release()

    # --- running -----------------------------------------------------------------------------
    def run(self, specs, emit) -> dict:
        from distributed import as_completed

        client = self.client or self.connect()
        self.run_id = self.run_id or uuid.uuid4().hex
        # a shared cluster's workers have the environment they were started with, not this run's
        environ = dict(os.environ) if self.shared_address else None
        specs = [dataclasses.replace(spec, background_run=self.run_id, environ=environ) for spec in specs]
        topic = f"{TOPIC}-{self.run_id}"
        names = {spec.step["name"] for spec in specs}
        reported = _Reported(emit, {spec.step["name"]: set(spec.step["after"]) & names for spec in specs})
        client.subscribe_topic(topic, reported.from_topic)
        plan, tasks, warm, outcomes = list(chains(specs, self.fuse)), _Tasks(), [], {}
        text = _notebook_text(specs)
        names_dask = "dask" in text or "distributed" in text  # (its collections, `delayed`, clients)
        start_workers, self._start_workers = self._start_workers, None
        ended = False  # every step finished: nothing of the run is left to stop (`forget_run`)
        deadlines = None  # stops a step that outlives its timeout (`StepDeadlines`)
        try:
            if start_workers is not None:  # the run's own cluster, its workers not started yet
                # its events wait: recorded now, they would write and print while workers fork
                with reported.held():
                    useful = _workers_useful(plan, specs, names_dask)
                    if _sole_root(plan, specs):  # starts on the first worker up
                        self._submit(client, plan.pop(0), tasks, {STEP_RESOURCE}, {}, topic, emit)
                    start_workers(useful)
            elif self.shared_address:  # the warm cluster's workers may have imported an older library
                restart_outdated_workers(client, emit)
            # every worker: distributed 2025.7 to 2026.6 give 5 by default (the spread and warm-up were cut to them)
            info = client.scheduler_info(n_workers=-1)
            if not info.get("workers"):  # (a given scheduler: its workers may be on their way, or never come)
                emit(WARNING, None, {"message": no_workers_message(client.scheduler.address)})
            declared = _declared_resources(info)
            workers = _busy_first(client, list(info.get("workers", {})), tasks.by_key.values())
            spread = _spread(specs, workers)
            warm = self._warm_up(client, specs, workers)
            for chain in plan:
                self._submit(client, chain, tasks, declared, spread, topic, emit)
            tasks.by_step.clear()  # held in `by_key` only, and there only while a task may read them
            if names_dask:
                _warm_collections(client, text)
            deadlines = StepDeadlines.watch(client, self.run_id, specs, reported.running, tasks.names, reported.emit)
            # each chain as soon as its own task ends (not through a second task, which would wait
            # on the worker behind the next step: a finished step would show as running)
            for future in as_completed(list(tasks.by_key.values()), loop=client.loop):
                reported.raise_failure()
                for outcome in self._outcomes(client, future, tasks.names, reported):
                    if self.on_outcome is not None:
                        self.on_outcome(outcome)
                    outcomes[outcome.step] = outcome
                    reported.emit(STEP_FINISHED, outcome.step, finished_payload(outcome))
                for key in tasks.readers.done(future.key):  # Dask frees the values no task reads any more
                    tasks.by_key.pop(key, None)
            reported.release()
            reported.raise_failure()
            self._wait_for_writes(client, emit, outcomes, specs)
            ended = True
        except BaseException:
            # cancelled (Ctrl-C, the panel's Cancel): stop the code still running, then forget it;
            # nothing its tasks report from now on counts (a task Dask runs again on another worker
            # as this one restarts would report the step it finds died under it)
            if deadlines is not None:
                deadlines.stop(wait=False)  # (the cancel stops every step)
            reported.close()
            stop_run_steps(client, self.run_id, reported.unfinished(tasks.names), emit)
            client.cancel(list(tasks.by_key.values()) + warm)
            _forget_writes(client, self.run_id)
            raise
        finally:
            if deadlines is not None:
                deadlines.stop(wait=ended)
            if client.status == "running":  # else there is no scheduler to tell
                client.unsubscribe_topic(topic)
                forget_run(client, self.run_id, topic, ended)
        return outcomes

    def _submit(self, client, chain, tasks, declared, spread, topic, emit):
        """Submit a chain's task, reading the results of the tasks before it in `tasks`."""
        head, names = chain[0].step, [spec.step["name"] for spec in chain]
        upstream = {u: tasks.by_step[u] for u in head["after"] if u in tasks.by_step}
        resources = _resources(head, declared, emit)
        hint = spread.get(head["name"]) if resources is None else None
        if STEP_RESOURCE in declared:  # one step per worker, also while it waits on its own computes
            resources = {**(resources or {}), STEP_RESOURCE: 1}
        future = client.submit(
            _task, chain, upstream, topic, self.body, self.run_id, STEP_RESOURCE in declared,
            key=f"nbscale-{head['name']}-{chain[0].hash[7:19]}-{self.run_id[:8]}",
            pure=False, resources=resources, workers=hint, allow_other_workers=hint is not None)
        tasks.add(future, names, upstream.values())

    def _wait_for_writes(self, client, emit, outcomes, specs):
        """Wait for the store writes the steps left in the background, on the workers (and here,
        for a body that runs steps in this process); a failed one is a warning: the run had its
        values. So is one whose worker is gone, with the write. Each step's outcome is given the digests
        of what its write stored (`StepOutcome.stored`): known once it ended."""
        failed = wait_for_writes(self.run_id)
        written = written_digests(self.run_id)
        if client.status == "running":  # else the scheduler is gone: so are the workers' writes
            for answer in client.run(await_stored, self.run_id, on_error="return").values():
                if isinstance(answer, dict):
                    failed.update(answer.get("failed") or {})
                    written.update(answer.get("stored") or {})
            failed.update(_lost_writes(outcomes, specs, failed))
            for step, error in sorted(failed.items()):
                emit(WARNING, step, {"message": write_failed_message(error)})
        for step, digests in written.items():
            if step in outcomes and step not in failed:
                outcomes[step].stored = digests

    def _outcomes(self, client, future, names_by_key, reported) -> list[StepOutcome]:
        """The outcomes of a finished task's steps, also when Dask gave up on it (KilledWorker: its
        worker, or the worker of a step before it, died more often than the cluster allows)."""
        names = names_by_key[future.key]
        if future.status == "error":
            return _lost(names, reported, self._killed(client, future.exception(), names_by_key))
        if future.status == "cancelled":  # not by this run (it cancels only as it stops)
            return _lost(names, reported, partial(_cancelled_outcome, client))
        try:
            held = stripped_outcomes(client, future)
            # a step this run of the task did not run again: as it was reported ending, in an earlier run
            return [(reported.outcome(name) or held[name]) if held[name].summary.get(ENDED_EARLIER) else held[name]
                    for name in names]
        except Exception as exc:  # noqa: BLE001 - its result was lost with a worker, and computing it again failed
            return _lost(names, reported, self._killed(client, exc, names_by_key))

    def _killed(self, client, exc, names_by_key):
        return partial(killed_outcome, client, self.run_id, exc=exc, names_by_key=names_by_key)

    def _warm_up(self, client, specs, workers):
        """Import the notebook's libraries on the workers the first step will not use (as many as
        there are other steps), while that step runs."""
        if not self.warm_up or len(specs) < 2 or not specs[0].prelude.get("cells"):
            return []
        return [client.submit(_warm_up, specs[0].prelude, specs[0].cwd, workers=[w], pure=False,
                              key=f"nbscale-warm-up-{i}-{self.run_id[:8]}")
                for i, w in enumerate(workers[1:len(specs)])]


class _Readers:
    """How many of the run's tasks have yet to read each task's result: once none has, the run lets
    go of it, and Dask frees its values on the worker (held while a step may read them, not until
    the run ends)."""

    def __init__(self):
        self.upstream: dict[str, set] = {}
        self.left: dict[str, int] = {}

    def add(self, key: str, upstream: set):
        self.upstream[key] = upstream
        self.left.setdefault(key, 0)
        for up in upstream:
            self.left[up] += 1

    def done(self, key: str) -> list[str]:
        """`key`'s task ended: the tasks whose results no task is left to read (`key`'s among them
        when none reads it), all ended."""
        free = []
        for up in self.upstream.pop(key, ()):
            self.left[up] -= 1
            if not self.left[up]:
                free.append(up)
        return free + ([key] if not self.left[key] else [])


class _Tasks:
    """The run's tasks: by step and by key, each one's steps, and who reads whose result."""

    def __init__(self):
        self.by_step, self.by_key, self.names, self.readers = {}, {}, {}, _Readers()

    def add(self, future, names: list[str], upstream) -> None:
        self.by_step.update(dict.fromkeys(names, future))
        self.by_key[future.key], self.names[future.key] = future, names
        self.readers.add(future.key, {u.key for u in upstream})


def _sole_root(plan: list, specs: list) -> bool:
    """Whether the plan's first chain is the only one that reads no step of the run: it can start
    before the workers are known, as the spread of sibling steps among them needs them."""
    planned = {spec.step["name"] for spec in specs}
    roots = [chain for chain in plan if not planned.intersection(chain[0].step["after"])]
    return len(roots) == 1 and roots[0] is plan[0]


def _busy_first(client, workers: list[str], futures) -> list[str]:
    """`workers` with those that run or hold a task of `futures` first (the warm-up goes to the others)."""
    if not futures:
        return workers
    keys = {future.key for future in futures}
    busy = {worker for worker, running in client.processing().items() if keys.intersection(running)}
    if not busy:  # ended already: where its result is held
        busy = {w for holders in client.who_has(list(futures)).values() for w in holders}
    return sorted(workers, key=lambda worker: worker not in busy)


def _lost_writes(outcomes: dict, specs: list, failed: dict) -> dict[str, str]:
    """Step → why, for the steps whose background store write is not in the store once the writes
    ended (its worker died meanwhile, and the write with it), nor said to have failed."""
    from ..store import ArtifactStore

    lost = {}
    for spec in specs:
        outcome = outcomes.get(spec.step["name"])
        if outcome is None or not outcome.ok or not outcome.summary.get(PROFILES_STORED) or outcome.step in failed:
            continue
        if not ArtifactStore(spec.store_url).has(outcome.key, list(spec.step["outputs"])):
            lost[outcome.step] = "the worker that was writing them is gone"
    return lost


def _lost(names, reported, failed) -> list[StepOutcome]:
    """The outcomes of a task's steps when its result is lost: the steps reported finished keep
    theirs, the step that ran gets `failed(name)`, the steps after it did not run."""
    outcomes = [outcome for outcome in map(reported.outcome, names) if outcome is not None]
    rest = names[len(outcomes):]
    if rest:
        lost = failed(rest[0])
        started = reported.started(rest[0])  # (a worker that died under it: it ran until then, not 0 s)
        if started is not None:
            lost.started = min(started, lost.finished)
        outcomes += [lost] + [upstream_failed(name, rest[0]) for name in rest[1:]]
    return outcomes


def _cancelled_outcome(client, name: str) -> StepOutcome:
    """The outcome of a step whose task was cancelled under the run: the client lost its scheduler
    (the cluster was stopped or crashed: Dask cancels every future then), or another client of a
    shared scheduler cancelled it."""
    if client.status != "running":
        why = (f"the connection to the Dask scheduler at {client.scheduler.address} was lost (the cluster "
               "was stopped or crashed)")
        return failed_outcome(name, "SchedulerLost", f"the step did not finish: {why}")
    return failed_outcome(name, "CancelledError", "the step did not finish: its Dask task was cancelled on the "
                          "cluster (by another client of the scheduler)")


def _forget_writes(client, run_id):
    """A cancelled run's background writes are not waited for: forget them where they are (on a
    shared cluster the workers outlive the run), best effort."""
    forget_writes(run_id)
    written_digests(run_id)  # (of the writes here that ended)
    try:
        client.run(forget_writes, run_id, on_error="return")
    except Exception:  # noqa: BLE001 - a few finished futures left on a worker
        pass


def _task(specs, upstream, topic, body, run_id, on_cluster=False):
    """The Dask task of a chain of steps (`dask_chains`): every step's outcome by name."""
    from distributed import get_worker

    worker = get_worker()
    die_with_nanny(bool(worker.nanny))
    line = TaskLine(worker, run_id, specs[0].step["name"])

    def emit(kind, step, payload=None):  # in order with the task's records
        # a chain step's end leaves with the next step's start, which follows at once (or the task's end)
        line.log(topic, [kind, step, {**(payload or {}), "worker": worker.address}], wake=kind != STEP_FINISHED)

    ended = ended_before_the_last_attempt(specs, line)

    def run_one(spec, outcomes):
        if spec.step["name"] in ended:
            return StepOutcome(spec.step["name"], SUCCEEDED, summary={ENDED_EARLIER: True})
        with collections_computed(on_cluster, partial(emit, STEP_PROGRESS, spec.step["name"])):
            return run_counted(body, spec, outcomes, emit, line)

    try:
        return run_chain(specs, upstream, run_one, emit)
    finally:
        line.close()


def _unpacked(value):
    """An event as its task logged it: Dask's msgpack turns its lists into tuples on the way."""
    if isinstance(value, (list, tuple)):
        return [_unpacked(item) for item in value]
    if isinstance(value, dict):
        return {key: _unpacked(item) for key, item in value.items()}
    return value


class _Reported:
    """Each step's end reported once: from its chain's events as it ends, or as its task ends,
    whichever comes first (they travel different ways). A step's events are passed on after the
    ends of the steps it comes after: its start, published by its own worker, could otherwise come
    before the end of the step before, which its task's end reports (`▶ b` before `✓ a`).
    Thread-safe: events arrive on the loop and on the run's thread; they are passed on in the order
    decided here, by one thread at a time, and no lock is held meanwhile (passing one on writes to
    the run store and calls back, which may wait on the loop)."""

    def __init__(self, emit, after: dict[str, set] | None = None):
        self._emit, self._lock, self._payloads, self._closed = emit, threading.Lock(), {}, False
        self._after = after or {}  # step → the steps of the run it comes after
        self._behind: dict[str, list] = {}  # step → its events waiting for the ends of those
        self._started: dict[str, float] = {}  # step → when its code was last reported starting
        self._queue: list = []  # events to pass on, in order
        self._passing = False  # a thread is passing the queue on (others leave theirs to it)
        self._holding = False  # events wait in the queue (`held`)
        self._failure: Exception | None = None  # the first error passing on a task's event

    def from_topic(self, event) -> None:
        """An event a task published, passed on from the client's loop. An error doing so (a run
        store that cannot write: the disk is full) stops the run from its own thread
        (`raise_failure`): raised here, Dask would log it with its traceback."""
        try:
            self.emit(*_unpacked(event[1]))
        except Exception as exc:  # noqa: BLE001 - raised again in the run's thread
            with self._lock:
                self._failure = self._failure or exc

    def raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    def emit(self, kind, step, payload=None):
        with self._lock:
            if self._closed or (kind == STEP_FINISHED and step in self._payloads):
                return
            if kind in (STEP_STARTED, STEP_RETRY):
                self._started[step] = time.time()
            if step in self._behind or not self._after.get(step, set()) <= self._payloads.keys():
                self._behind.setdefault(step, []).append((kind, step, payload))
                return
            self._queue.append((kind, step, payload))
            if kind == STEP_FINISHED:
                self._payloads[step] = payload
                self._queue += self._released()
        self._pass_on()

    def _released(self) -> list:
        """The waiting events of the steps whose steps before have all ended now, in order (their
        own ends may release others)."""
        ready = []
        for step in [step for step in self._behind if self._after[step] <= self._payloads.keys()]:
            for kind, _, payload in self._behind.pop(step, ()):  # (released by a step's end above: passed)
                if kind == STEP_FINISHED and step in self._payloads:
                    continue
                ready.append((kind, step, payload))
                if kind == STEP_FINISHED:
                    self._payloads[step] = payload
                    ready += self._released()
        return ready

    def _pass_on(self) -> None:
        """Pass the queue on, unless held or another thread is at it (it passes this one's on too)."""
        with self._lock:
            if self._passing or self._holding:
                return
            self._passing = True
        try:
            while True:
                with self._lock:
                    events, self._queue = self._queue, []
                    if not events:
                        self._passing = False
                        return
                for event in events:
                    self._emit(*event)
        except BaseException:
            with self._lock:
                self._passing = False
            raise

    @contextlib.contextmanager
    def held(self):
        """Events are passed on only after the block, in order (what a run knows of its steps, such
        as their ends, is up to date meanwhile)."""
        with self._lock:
            self._holding = True
        try:
            yield
        finally:
            with self._lock:
                self._holding = False
            self._pass_on()

    def release(self) -> None:
        """(every task ended) Pass on what still waits for a step before it, as it came: nothing
        should (each step before ended, and said so), but no event of a step is lost."""
        with self._lock:
            left = [event for events in self._behind.values() for event in events]
            self._behind.clear()
            self._after = {}
        for event in left:
            self.emit(*event)

    def close(self):
        """The run is stopping: what its tasks report is not its outcome any more."""
        with self._lock:
            self._closed = True

    def outcome(self, step) -> StepOutcome | None:
        payload = self._payloads.get(step)
        return None if payload is None else reported_outcome(step, payload)

    def running(self) -> dict[str, float]:
        """Step → when its code (its last attempt's) was reported starting, for the steps not finished."""
        with self._lock:
            return {step: at for step, at in self._started.items() if step not in self._payloads}

    def started(self, step) -> float | None:
        """When the step's code was reported starting (its last attempt's), if it was."""
        return self._started.get(step)

    def unfinished(self, names_by_key: dict) -> dict:
        """Task key → the step of it that may still run (the first one not reported finished)."""
        return {key: [name for name in names if name not in self._payloads][:1] for key, names in names_by_key.items()}


def _spread(specs, workers) -> dict:
    """Loose worker hints that put sibling steps (same upstream steps) on different workers.

    Dask places a task where its inputs are: siblings reading one upstream step would all queue
    on the worker holding it; work stealing moves them late (0.3–1.5 s here) or not at all.
    """
    if len(workers) < 2:
        return {}
    groups: dict[tuple, list[str]] = {}
    for spec in specs:
        groups.setdefault(tuple(sorted(spec.step["after"])), []).append(spec.step["name"])
    return {name: [workers[i % len(workers)]] for members in groups.values() if len(members) > 1
            for i, name in enumerate(members)}


COLLECTION_MODULES = ("dask.dataframe", "dask.array", "dask.bag")


def _notebook_text(specs) -> str:
    """The notebook's code the run's steps and prelude hold, as one text to look for names in."""
    return json.dumps([specs[0].prelude, [spec.step.get("source") for spec in specs]], default=str) if specs else ""


def _workers_useful(plan: list, specs: list, names_dask: bool) -> int | None:
    """At most how many of the run's own workers its steps can keep busy at once: one when each step
    reads the one before it (a worker more only costs its start and warm-up, on the cores the steps
    need), else one per chain of the plan; None (a worker per core) when the notebook uses Dask
    itself, whose computes from a step split among the workers (and the others start as soon as
    a step computes on the cluster all the same: `_more_workers_for_computes`)."""
    if names_dask:
        return None
    if all(before.step["name"] in spec.step["after"] for before, spec in zip(specs, specs[1:])):
        return 1
    return len(plan)


def _warm_collections(client, text: str) -> None:
    """Import the Dask collection modules the notebook names on the scheduler and every worker, in a
    thread of each, as the run starts: the first compute of a collection from a step would import
    them there on its critical path (about a second for dask.dataframe), the scheduler's while it
    takes the graph. Best effort. `text`: the notebook's (`_notebook_text`)."""
    modules = [module for module in COLLECTION_MODULES if module in text]
    if not modules:
        return
    try:
        client.run_on_scheduler(_import_beside, modules)
        client.run(_import_beside, modules)  # (`wait=False` is for coroutines only) returns at once
    except Exception:  # noqa: BLE001 - a scheduler may refuse `run`: the first compute imports them
        pass


def _import_beside(modules):
    """Import `modules` in a thread of this process (not on its event loop, which it would hold)."""
    def imported():
        for module in modules:
            try:
                importlib.import_module(module)
            except Exception:  # noqa: BLE001 - not installed there: the step that computes says so
                pass

    threading.Thread(target=imported, name="nbscale-import", daemon=True).start()


def _warm_up(prelude, folder):
    """Run the imports/functions cells once on an idle worker, as a step runs them, so that its first
    step does not pay on the critical path for importing the notebook's libraries, nor for what a
    process sets up once for its steps (the step shell, the scan of the marshaller plug-ins its
    first store write makes). What the cells change process-wide is put back, as after a step.
    Failures do not matter here: the step reports them."""
    from ...compiler.ir import Step
    from ..executor import execute_step
    from ..marshal import marshallers
    from ..task import isolated_step

    folder = folder if folder and os.path.isdir(folder) else None  # a worker elsewhere: its step says so
    with isolated_step(folder):
        execute_step(Step(name="__warm_up__", cells=[], source=[]), prelude, {}, {}, cwd=folder)
    marshallers()


def _strip(outcomes):
    """What the client needs to know of a chain's outcomes; the values stay on the worker."""
    return {name: stripped(outcome) for name, outcome in outcomes.items()}


def stripped_outcomes(client, future) -> dict:
    """A finished task's outcomes without their values, read where the task's result is held, on
    the worker's event loop (`client.run`): a task would queue behind whatever step the worker runs
    next. Falls back to such a task when that worker is gone or a scheduler refuses `run`."""
    try:
        holders = client.who_has([future]).get(future.key) or ()
        if holders:
            answers = client.run(_held_outcomes, future.key, workers=list(holders)[:1], on_error="return")
            answer = next(iter(answers.values()), None)
            if answer is not None and not isinstance(answer, BaseException):
                return answer
    except Exception:  # noqa: BLE001 - the task below reads it wherever the result is
        pass
    return client.submit(_strip, future, pure=False).result()


def _held_outcomes(key, dask_worker=None):
    """The stripped outcomes under `key` on this worker (run on its event loop); None if not here."""
    try:
        outcomes = dask_worker.data[key]
    except KeyError:
        return None
    return _strip(outcomes)


def _scheduler_file_address(path: str) -> str:
    """The address in a Dask scheduler file; SchedulerUnreachable for anything else there."""
    from ..warm_cluster import read_regular

    try:
        _, raw = read_regular(path, 1 << 20)
        if raw is None:
            raise SchedulerUnreachable(f"the scheduler file {path} is not a regular file")
        data = json.loads(raw.decode("utf-8"))
    except FileNotFoundError:
        raise SchedulerUnreachable(f"the scheduler file {path} does not exist (is the scheduler running, "
                                   "started with --scheduler-file?)") from None
    except OSError as exc:
        raise SchedulerUnreachable(f"the scheduler file {path} cannot be read: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, ValueError):
        raise SchedulerUnreachable(f"the scheduler file {path} is not a Dask scheduler file (not JSON)") from None
    address = data.get("address") if isinstance(data, dict) else None
    if not isinstance(address, str) or "://" not in address:
        raise SchedulerUnreachable(f"the scheduler file {path} is not a Dask scheduler file (it names no address)")
    return address


def _stranded_steps_freed(client):
    """The client, its scheduler given the `stranded_steps` plugin (nbscale's own clusters have it from
    their start). Best effort: a scheduler that cannot import nbscale refuses it, and keeps Dask's ways."""
    try:
        client.run_on_scheduler(install_stranded_steps)
    except Exception:  # noqa: BLE001 - a run without it still runs, as before
        pass
    return client


def local_cluster(workers=None, http=True, security=None):
    """The embedded LocalCluster, its workers up (`local_scheduler`, then its workers' start)."""
    cluster, start_workers = local_scheduler(workers, http, security)
    try:
        start_workers()
    except BaseException:
        cluster.close()
        raise
    return cluster


def local_scheduler(workers=None, http=True, security=None):
    """The embedded LocalCluster with its scheduler only, and the function that starts its workers
    (one single-threaded worker process per core, or `workers`, or as many as the run can use: see
    `start_workers`) and returns once all are up, raising
    as the cluster's start would. In between, a run submits its first step: it then starts on the
    first worker up, not after the last (50-60 ms sooner with 4 workers on 2 cores).
    `http=False`: its scheduler and workers serve no HTTP routes (a run's own cluster, which no
    dashboard shows: the scheduler's proxy route alone imports jupyter-server-proxy, 0.14 s).
    `security`: a Dask `Security` requiring TLS (a warm cluster's: `warm_cluster.new_security`)."""
    import dask
    from distributed import LocalCluster
    from distributed.worker_memory import parse_memory_limit

    n = workers or os.cpu_count() or 1
    config = _start_config(http)  # while no thread of the cluster's exists yet: whether to fork
    with _quiet_start(config):
        # no dashboard: nothing links a run's own cluster, and starting bokeh's server costs
        # every run about a second (the panel's and `--scheduler` clusters have theirs)
        # `config`: the settings above also for a worker its nanny starts again (after a Cancel or
        # a death): a nanny keeps the config it was made with, but by reference to the nested
        # dicts this `with` puts back as it ends, so without a copy of its own (`merge` copies the
        # dicts and shares the values, which may not be copyable) a restarted worker came back
        # with Dask's defaults
        # `memory_limit`: each worker's share, as LocalCluster(n_workers=n) gives it
        cluster = LocalCluster(n_workers=0, threads_per_worker=1, processes=True, resources={STEP_RESOURCE: 1},
                               memory_limit=parse_memory_limit("auto", 1, n, logger=logging.getLogger(__name__)),
                               dashboard_address=None, silence_logs=logging.ERROR,
                               config=dask.config.merge(dask.config.config),
                               **({"security": security, "protocol": "tls://"} if security is not None else {}))
    install_stranded_steps(cluster.scheduler)

    def start_workers(useful=None):
        """`useful`: start no more workers than that (`DaskEngine.run`) until a step computes on the
        cluster (`_more_workers_for_computes`)."""
        wanted = min(n, useful) if useful and not workers else n
        if wanted < n:
            cluster.scheduler.add_plugin(_more_workers_for_computes(cluster, n))
        if config.get(MP_METHOD) == "fork":
            _inherited_by_forks()
        with _quiet_start(config):
            while len(cluster.worker_spec) < wanted:
                cluster.worker_spec.update(cluster.new_worker_spec())
            _start_named_workers(cluster)
        if config.get(MP_METHOD) == "fork":
            _FORKING.keep(cluster)

    return cluster, start_workers


def _inherited_by_forks() -> None:
    """What every step's store write needs, made once here for the workers forked from this
    process: the scan of the installed distributions for marshaller plug-ins (40 ms here) was paid
    again by each worker, in the first step it ran (on the way to the next step: twice in a run of
    two parallel steps). Scanned again at each start (8 ms here), so that the workers of a
    long-lived process (the JupyterLab server's) see a plug-in installed since; scanned only: a
    plug-in is imported where it is used, in the workers (one that started a thread here would make
    the fork unsafe)."""
    marshal.registry.scan_again()  # (the module's: `reload_marshallers` makes a new one)


def _more_workers_for_computes(cluster, n: int):
    """A scheduler plugin that starts the rest of the cluster's `n` workers as soon as a client submits
    a task that is no step of a run: a step computing on the cluster through a module the notebook
    imports (`get_client().submit(f).result()`, which names no Dask in the notebook) waited for ever
    on one worker, whose thread the step holds."""
    from distributed.diagnostics.plugin import SchedulerPlugin

    class MoreWorkersForComputes(SchedulerPlugin):
        name = "nbscale-more-workers-for-computes"

        def __init__(self):
            self.cluster = cluster

        def update_graph(self, scheduler, *args, keys=(), **kwargs):
            if self.cluster is not None and any(not str(key).startswith("nbscale-") for key in keys):
                self.cluster, started = None, self.cluster
                started.scale(n)  # (on the scheduler's loop: the start goes on there)

    return MoreWorkersForComputes()


def _scheduler_imports_from(notebook: str | None) -> str | None:
    """The notebook's folder, put last on this process's `sys.path` while the run's own cluster is
    open: its scheduler, in this process, unpickles the graphs a step computes
    (`dask.compute(delayed(sq)(i))`), which name the functions of a module beside the notebook
    (`from helpers import sq`); from `nbscale run` (a console script, whose path has no folder of the
    user's) it could not import them, and the step failed where top to bottom it ran. Counted: two
    runs of one folder's notebooks in one process (threads of a server, `nbscale.run()` twice) keep
    it there until both close. A folder the path held already is left as it is."""
    folder = os.path.dirname(os.path.abspath(notebook)) if notebook else None
    if folder is None:
        return None
    with _PATH_LOCK:
        if folder not in _ADDED_FOLDERS and folder in sys.path:
            return None
        if folder not in _ADDED_FOLDERS:
            sys.path.append(folder)
        _ADDED_FOLDERS[folder] = _ADDED_FOLDERS.get(folder, 0) + 1
    return folder


def _scheduler_imports_no_more(folder: str | None) -> None:
    if folder is None:
        return
    with _PATH_LOCK:
        _ADDED_FOLDERS[folder] -= 1
        if not _ADDED_FOLDERS[folder]:
            del _ADDED_FOLDERS[folder]
            # the last one: the entry appended here (one the user put first since stays where it is)
            last = max((i for i, entry in enumerate(sys.path) if entry == folder), default=None)
            if last is not None:
                del sys.path[last]


_ADDED_FOLDERS: dict[str, int] = {}  # folder → open clusters that put it on sys.path
_PATH_LOCK = threading.Lock()


MP_METHOD = "distributed.worker.multiprocessing-method"


class _Forking:
    """A worker the cluster's nannies start again (after a Cancel, or a worker's death) is forked too,
    as the first ones were, until the cluster closes. Spawned (Dask's default), it would run the
    top-level code of the host's script again: `nbscale.run()` in a script without an
    `if __name__ == "__main__":` guard ran the rest of the script once more in each new worker.
    The nannies read the method as they start a worker, from this process's Dask config: it says
    fork while any such cluster is open, and what it said before once none is."""

    def __init__(self):
        self.clusters: set[int] = set()
        self.before = None
        self.lock = threading.Lock()

    def keep(self, cluster) -> None:
        import dask

        with self.lock:
            if not self.clusters:
                self.before = dask.config.get(MP_METHOD)
                dask.config.set({MP_METHOD: "fork"})
            self.clusters.add(id(cluster))
        self._stop_as_it_closes(cluster)

    def _stop_as_it_closes(self, cluster) -> None:
        """However the cluster is closed (`close()`, `with`, `async with`: each awaits its `_close`):
        a cluster of `local_cluster` closed by its caller (a sweep, a server) left the whole process
        forking every LocalCluster's workers after it, from whatever threads it then had."""
        closing = getattr(cluster, "_close", None)
        if closing is None:
            return

        async def _close(*args, **kwargs):
            try:
                return await closing(*args, **kwargs)
            finally:
                self.stop(cluster)

        cluster._close = _close

    def stop(self, cluster) -> None:
        import dask

        with self.lock:
            if id(cluster) in self.clusters:
                self.clusters.discard(id(cluster))
                if not self.clusters:
                    dask.config.set({MP_METHOD: self.before})


_FORKING = _Forking()


def _start_named_workers(cluster) -> None:
    """Start the workers `cluster.worker_spec` names, as LocalCluster's own start does: a worker that
    fails to start raises. Ctrl-C or SIGTERM meanwhile lets the start end first (at most
    `START_SETTLE_S`), then raises: a start cut short left nannies the cluster did not know of (they
    started the same worker again: "name taken"), and stopping steps or closing the cluster while
    workers still started took 20 s and printed their tracebacks."""
    started = []

    async def start():
        started.append(cluster._correct_state())
        await asyncio.shield(started[0])  # the interrupt cancels the wait, not the start

    try:
        cluster.sync(start)
    except KeyboardInterrupt:
        if started:
            with contextlib.suppress(Exception):
                cluster.sync(lambda: asyncio.shield(started[0]), callback_timeout=START_SETTLE_S)
        raise
    except Exception as exc:
        raise ClusterStartError(exc, _script_run_again()) from exc


def _script_run_again() -> str | None:
    """The script a spawned worker runs as it starts (multiprocessing's `spawn` runs `__main__`'s
    file in each new process), or None: workers forked, or a main without a file (IPython, `-c`)."""
    import dask

    main = sys.modules.get("__main__")
    if dask.config.get(MP_METHOD) == "fork" or getattr(getattr(main, "__spec__", None), "name", None):
        return None
    return getattr(main, "__file__", None)


WORKER_SETUP = "nbscale.kernels.engines.worker_setup"


def _start_config(http: bool) -> dict:
    """The Dask settings the embedded cluster starts in."""
    import dask

    # a worker that dies under a step is retried as its `retries:` tag says (dask_lifecycle), not
    # given up on by Dask after 3 deaths
    config = {"distributed.scheduler.allowed-failures": ALLOWED_FAILURES}
    # a step may start processes of its own, as top to bottom (`multiprocessing.Pool`, joblib's loky
    # behind `n_jobs=-1`): a daemonic worker may not ("daemonic processes are not allowed to have
    # children"; joblib warned and ran on one core). The nanny still ends its worker as it closes.
    config.update(_unless_chosen({"distributed.worker.daemon": False}))
    # each worker in its own process group: a terminal's Ctrl-C reaches the run alone (`worker_setup`)
    config["distributed.worker.preload"] = [*(dask.config.get("distributed.worker.preload", None) or []), WORKER_SETUP]
    if not http:
        config.update({"distributed.scheduler.http.routes": [], "distributed.worker.http.routes": []})
        config.update(_unless_chosen(UNSEEN_WORKER_WORK))
    if (sys.platform == "linux" and _only_safe_threads()
            and dask.config.get(MP_METHOD) == "spawn"):
        # Forked workers start in a third of the time and inherit the run time already imported
        # here. Spawn stays where fork is unsafe: macOS, a process with other threads (a lock
        # one of them holds would stay locked in the workers), or a method the user chose.
        from distributed.versions import get_versions

        from .. import executor  # noqa: F401 - imported so that the workers inherit it

        # the client asks them as it connects; asked before the fork, each worker inherits the
        # answers instead of reading nine packages' metadata as it registers
        get_versions()
        config[MP_METHOD] = "fork"
    quick_nannies()
    return config


@contextlib.contextmanager
def _quiet_start(config: dict):
    """Dask's `config` set, and warnings off, while the cluster's processes start; the workers forked
    meanwhile keep the warning filters this process had before: with "ignore" for life no step on
    them would show a warning."""
    import dask

    global _FILTERS_OF_FORKED
    from ..shell import no_step_meanwhile

    # a step of a run in another thread of this process would put back what the start changes
    with no_step_meanwhile(), warnings.catch_warnings(), dask.config.set(config):
        _FILTERS_OF_FORKED = list(warnings.filters)
        warnings.simplefilter("ignore")
        try:
            yield
        finally:
            _FILTERS_OF_FORKED = None


def _send_promptly(client) -> None:
    _lower(getattr(client, "scheduler_comm", None), "interval", CLIENT_BATCH_S)  # distributed's BatchedSend


def quick_nannies() -> None:
    """Nannies that see their worker start (and start again after a Cancel) within 5 ms: a setting of
    distributed's `WorkerProcess` class, process-wide (polling faster during a start costs nothing)."""
    from distributed.nanny import WorkerProcess

    _lower(WorkerProcess, "_init_msg_interval", NANNY_POLL_S)


def _lower(owner, name: str, most: float) -> None:
    """Set distributed's interval `owner.name` to `most` if it is longer; left alone where a version
    of distributed has no such attribute."""
    if owner is not None and getattr(owner, name, 0) > most:
        setattr(owner, name, most)


def _unless_chosen(settings: dict) -> dict:
    """The `settings` whose Dask config key still has distributed's default (the user's choice wins)."""
    import dask

    shipped = dask.config.merge(*dask.config.defaults)
    return {key: value for key, value in settings.items()
            if dask.config.get(key, None) == dask.config.get(key, None, config=shipped)}


def _only_safe_threads() -> bool:
    """Whether every other thread is one whose locks a worker never takes: the run store's
    heartbeat (it only touches the run store, which no worker uses), and distributed's offload
    pool, which an earlier run in this process left (a forked worker gets a pool of its own:
    `_fresh_offload_pool_after_fork`). Spawned instead, the workers of a script's second
    `nbscale.run()` ran the script again as they started, and failed unless it had an
    `if __name__ == "__main__":` guard."""
    return all(t is threading.current_thread() or t.name == HEARTBEAT_THREAD or t.name.startswith(OFFLOAD_THREAD)
               for t in threading.enumerate())


_FILTERS_OF_FORKED: list | None = None  # set while `local_cluster` starts the cluster quietly


def _restore_filters_after_fork() -> None:
    if _FILTERS_OF_FORKED is not None:
        warnings.resetwarnings()  # also forgets which warnings were already shown
        warnings.filters.extend(_FILTERS_OF_FORKED)


def _fresh_offload_pool_after_fork() -> None:
    """A new offload pool for a forked worker. distributed serializes and deserializes every
    message over 10 MiB in a one-thread pool, which the scheduler also uses for each graph it
    receives: a worker forked after the run's first submit (or restarted after a Cancel) came from a
    process whose pool had its thread. The thread does not come along, and the copied pool, counting
    it as idle, never started another: the worker's large messages waited for ever."""
    utils = sys.modules.get("distributed.utils")
    pool = getattr(utils, "_offload_executor", None)
    if isinstance(pool, ThreadPoolExecutor):
        utils._offload_executor = ThreadPoolExecutor(max_workers=getattr(pool, "_max_workers", 1),
                                                     thread_name_prefix=OFFLOAD_THREAD)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_restore_filters_after_fork)
    os.register_at_fork(after_in_child=_fresh_offload_pool_after_fork)


def cluster_from_factory(factory: dict):
    """A cluster from a factory spec `{module, class, args, kwargs}` (Dask config `nbscale.cluster-factory`)."""
    module = importlib.import_module(factory["module"])
    cls = getattr(module, factory["class"])
    return cls(*factory.get("args", []), **factory.get("kwargs", {}))


def no_workers_message(address: str) -> str:
    return (f"the Dask scheduler at {address} has no workers: the steps wait until one joins "
            f"(`dask worker {address}`); Ctrl-C cancels the run")


def _declared_resources(info: dict) -> set[str]:
    """The resources the workers of a scheduler's `info` (`Client.scheduler_info`) declare."""
    return {name for w in info.get("workers", {}).values() for name in (w.get("resources") or {})}


def _resources(step, declared, emit):
    wanted = step.get("resources") or {}
    if not wanted:
        return None
    usable = {k: v for k, v in wanted.items() if k in declared}
    ignored = sorted(set(wanted) - set(usable))
    if ignored:
        emit(WARNING, step["name"], {"message": f"resources {', '.join(ignored)} ignored: no Dask "
                                                  "worker declares them (dask worker --resources)"})
    return {k: _amount(k, v) for k, v in usable.items()} or None


def _amount(name, value):
    if name != "memory" or not isinstance(value, str):
        return value
    from dask.utils import parse_bytes

    return parse_bytes(value if value.endswith("B") else value + "B")
