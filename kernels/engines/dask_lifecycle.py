"""A step's Dask task beyond its code: the worker dying under it, and stopping it on cancel.

Dask re-runs a task whose worker died on another worker, up to
`distributed.scheduler.allowed-failures` times (repeating its side effects), then raises
`KilledWorker`. nbscale decides instead, from the step's `retries:` tag, on any cluster: each
Dask task of a run (a chain of steps, `dask_chains`, or one step) keeps a record on the scheduler
(task metadata under `nbscale/<run>/<its first step>`) of the step it runs: which one, how many
attempts it began, on which worker, with which memory limit, and then the most memory that worker
was seen using. A step's start has left the worker before its code runs (delivered ahead of the
news of the worker's death: `SchedulerLine`), and it says the step before it in the chain has
ended; the record says `running: false` once the task ends. A re-run of the task that finds the
record still `running` knows the worker died under that step: the step is retried only while
attempts are left, else it fails with the reason and without running the user's code. When Dask
gives up first (`KilledWorker`, an external cluster with fewer allowed failures), the client
builds the same failed outcome from the same record.

Cancel stops the code: the workers executing the run's steps end the steps' child processes and
are restarted through their nannies; workers running nothing of this run are left alone, and so
are workers where the run's tasks only wait for another run's step to end (a worker of several
threads runs one step at a time): those never start (`shell_holder`). A step that outlives its
`timeout:` is stopped the same way (`StepDeadlines`), its record marked timed out first, so that
the task run again reports the timeout (or retries the step), not a death. Another run's step on a
restarted worker did nothing wrong: its record is marked (`mark_interrupted`) and it runs again.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import socket
import threading
import time
import weakref

from ..children import TERMINATE_WAIT_S, end_step_children
from ..contract import (
    STEP_RETRY,
    STEP_STARTED,
    UPSTREAM_FAILED,
    WARNING,
    StepOutcome,
    failed_outcome,
    timed_code_running,
    timeout_message,
)
from ..fatal_errors import exit_noted, fatal_reason, watch
from ..interrupts import note_steps_stopped

NAMESPACE = "nbscale"  # top-level scheduler metadata key of the records
MEMORY_TOPIC = "worker-restart-memory"  # the event a nanny logs when it restarts a worker over its limit
SAMPLE_S = 0.2  # how often a running step's worker memory is sampled
ORPHAN_STOPPER = "nbscale-orphaned-step-stopper"  # the warm cluster's scheduler plugin (`warm_cluster_serve`)
KILL_AFTER_S = 0.5  # a worker restarted to stop a step is killed this long after it was told (`end_for_restart`)
WORKER_DIED = "WorkerDied"
STEP_TIMEOUT = "StepTimeout"


# --- on the worker: the attempts of one step --------------------------------------------------------


class TaskRecord:
    """The scheduler-side record of one Dask task of one run, read and written from a worker thread."""

    def __init__(self, worker, run_id: str, head: str):
        self.worker, self.keys = worker, [NAMESPACE, run_id, head]

    def _call(self, handler, **kwargs):
        from distributed.utils import sync

        return sync(self.worker.loop, getattr(self.worker.scheduler, handler), **kwargs)

    def read(self) -> dict:
        return self._call("get_metadata", keys=self.keys, default=None) or {}

    def memory_restarts(self) -> list[dict]:
        """The nanny's memory restarts (topic `worker-restart-memory`) the scheduler remembers."""
        return [msg for _, msg in self._call("events", topic=MEMORY_TOPIC) or ()]


ENDED_EARLIER = "ended_in_an_earlier_run_of_its_task"  # (a summary key: `ended_before_the_last_attempt`)


def ended_before_the_last_attempt(specs, line: TaskLine) -> set[str]:
    """The steps of a chain that ended before the step an earlier run of the task died under (or
    was stopped at its timeout), when that step has no attempt left: the task runs again only to
    report it, so they are not run again (their side effects twice, for nothing: no later step of
    the chain runs). Each one was reported as it ended."""
    for i, spec in enumerate(specs):
        died = line.died.get(spec.step["name"])
        if died and died.get("attempts", 0) > spec.step.get("retries", 0):
            return {earlier.step["name"] for earlier in specs[:i]}
    return set()


def run_counted(body, spec, upstream, emit, line: TaskLine) -> StepOutcome:
    """Run `body(spec, upstream, emit)` on this worker as an attempt of the step, unless earlier
    runs of its task died under it as often as the step's `retries:` allows. `line`: the task's
    (`TaskLine`; the caller closes it)."""
    name, retries = spec.step["name"], spec.step.get("retries", 0)
    died, again = line.died.get(name), line.interrupted.get(name)
    begun = died["attempts"] if died else 0
    if begun:
        error, reason = _death(died, line.record.memory_restarts)
        if begun > retries:
            return died_outcome(name, reason, begun, died.get("started"), error)
        emit(STEP_RETRY, name, {"attempt": begun, "error": reason})
    elif again is not None:  # stopped for another step's sake: not an attempt of its own that failed
        begun = max(0, again.get("attempts", 1) - 1)
        emit(WARNING, name, {"message": f"step {name!r} runs again from its start: {again['interrupted']}"})
    if begun:
        spec = dataclasses.replace(spec, step={**spec.step, "retries": retries - begun})
    line.begin(name, begun + 1)  # sent while the step gets ready: waited for as its code starts
    counts = {"attempts": begun + 1}

    def counting_emit(kind, step, payload=None):
        if kind == STEP_RETRY:  # the body begins another attempt: a death from now on counts it
            counts["attempts"] += 1
            line.write([*line.record.keys, "attempts"], counts["attempts"])
        emit(kind, step, payload)
        if kind in (STEP_STARTED, STEP_RETRY):  # its code (`contract.code_starts`), or another attempt's, is next
            line.flush()

    line.sample(True)
    try:
        with exit_noted():
            outcome = body(spec, upstream, counting_emit)
    finally:
        line.sample(False)
    outcome.attempts += begun
    return outcome


class TaskLine:
    """What the steps of one Dask task share on its worker (a chain's steps run one after another):
    its record, one memory sampler thread, and the line to the scheduler that the record's writes
    and the task's events take (`post`), in the order they are posted, over the worker's own
    connection (`SchedulerLine`). Messages posted while none is being sent leave together: one
    wake-up of the worker's event loop, not one per message. A step's start is posted as the step
    gets ready, and its code waits only until it has left the worker (`flush`); the write that ends
    the record as the task ends (`close`) waits for the scheduler's answer, so that the scheduler
    has the task's every record and event before its result. One write per step: a step's start
    says the one before it ended."""

    def __init__(self, worker, run_id: str, head: str):
        self.worker, self.sampler, self.lock = worker, None, threading.Lock()
        self.queue: list[dict] = []
        self.waiting = self.sending = None  # the next batch to send (not started), the one sending
        self.record = TaskRecord(worker, run_id, head)
        self.line = SchedulerLine.of(worker)
        self.memory_limit = worker.memory_manager.memory_limit if hasattr(worker, "memory_manager") else None
        before = self.record.read()  # empty on the task's first run
        # the steps earlier runs of the task died under, not begun again since: step → its record
        # then (kept across deaths under other steps, so that no death goes uncounted)
        self.died = dict(before.get("died") or {})
        # the step an earlier run of the task ran when its worker was restarted to stop another step
        # (`mark_interrupted`): run again, that attempt not counted
        self.interrupted: dict[str, dict] = {}
        if before.get("running"):
            ended = self.interrupted if before.get("interrupted") else self.died
            ended[before["step"]] = {k: v for k, v in before.items() if k != "died"}

    def begin(self, step: str, attempts: int):
        self.died.pop(step, None)
        self.write(self.record.keys, {"step": step, "attempts": attempts, "worker": self.worker.address,
                                      "started": time.time(), "host": socket.gethostname(), "fault_file": watch(),
                                      "memory_limit": self.memory_limit, "memory": None, "running": True,
                                      "died": dict(self.died)})

    def write(self, keys: list, value, answered: bool = False):
        """Post a write of the record (`answered`: the batch it leaves in waits for the scheduler
        to have applied it, and everything before it)."""
        self.post({"op": "set_metadata", "keys": keys, "value": value, "reply": answered})

    def log(self, topic: str, event: list, wake: bool = True):
        """Post an event (as `Worker.log_event`, which raises TypeError for one msgpack cannot send).
        Without `wake`, it leaves with the next message posted (one that must leave now follows)."""
        import msgpack

        try:
            msgpack.packb(event, use_bin_type=True)
        except (TypeError, ValueError, OverflowError) as exc:
            raise TypeError(f"an event must be msgpack serializable: {exc}") from exc
        self.post({"op": "log_event", "topic": topic, "msg": event, "reply": False}, wake)

    def post(self, message: dict, wake: bool = True):
        import asyncio

        with self.lock:
            self.queue.append(message)
            if wake and self.waiting is None:  # else the batch waiting to leave takes it along
                self.waiting = asyncio.run_coroutine_threadsafe(self._send_batch(), self.worker.loop.asyncio_loop)

    async def _send_batch(self):
        async with self.line.turn():  # after the batches posted before it, of any task on the worker
            with self.lock:
                batch, self.queue = self.queue, []
                self.sending, self.waiting = self.waiting, None
            await self.line.send(batch)

    def flush(self):
        """Wait until what was posted has left the worker (or, posted `answered`, was applied).
        A batch that failed raises here (the scheduler is gone); a later one connects again."""
        with self.lock:
            batch = self.waiting or self.sending
        if batch is not None:
            batch.result()

    def sample(self, running: bool):
        """Sample the worker's memory for the record's step while one runs."""
        if self.sampler is None and running:
            self.sampler = MemorySampler(self)
            self.sampler.start()
        if self.sampler is not None:
            self.sampler.follow(running)

    def close(self):
        """The task ends: its record says no step runs, once the scheduler has it, and still holds
        the deaths of the steps that did not begin again (one out of attempts: a run of the task
        to compute its lost result again fails it again rather than run it)."""
        if self.sampler is not None:
            self.sampler.stop()
        if self.died:
            self.write([*self.record.keys, "died"], dict(self.died))
        self.write([*self.record.keys, "running"], False, answered=True)
        self.flush()


class SchedulerLine:
    """A worker's own connection to the scheduler for its tasks' records (`set_metadata`) and
    events (`log_event`), which the scheduler reads and applies in the order they were sent. A
    message is sent once it has left the worker, in the operating system's hands: a worker that
    dies right after still has it delivered, ahead of the end of its connections that tells the
    scheduler it died (so the task's next run finds the record). Not waiting for the scheduler's
    answer takes a round trip through a busy scheduler off every step's start; one connection
    keeps the messages in order (the connection pool hands out any of several)."""

    _by_worker: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
    _lock = threading.Lock()

    def __init__(self, worker):
        self.worker, self.comm, self.comm_lock = worker, None, None

    @classmethod
    def of(cls, worker) -> SchedulerLine:
        with cls._lock:
            line = cls._by_worker.get(worker)
            if line is None:
                line = cls._by_worker[worker] = cls(worker)
            return line

    def turn(self):
        """The connection for one batch at a time, in the order they asked (on the event loop)."""
        import asyncio

        if self.comm_lock is None:
            self.comm_lock = asyncio.Lock()
        return self.comm_lock

    async def send(self, batch: list[dict]) -> None:
        """Send the messages in order, reading the answer of those that ask for one; in its `turn`."""
        address = self.worker.scheduler.addr
        if self.comm is None or self.comm.closed():
            self.comm = await self.worker.rpc.connect(address)
        try:
            for message in batch:
                await self.comm.write(message)
                if message["reply"]:
                    await self.comm.read()
        except BaseException:
            comm, self.comm = self.comm, None
            comm.abort()
            self.worker.rpc.reuse(address, comm)  # the pool lets go of the closed connection
            raise


class MemorySampler(threading.Thread):
    """Records the most memory the worker process uses while a step runs (for a death reason)."""

    def __init__(self, line: TaskLine):
        super().__init__(name="nbscale-memory-sampler", daemon=True)
        self.line, self.running, self.most, self.done = line, False, 0, threading.Event()

    def follow(self, running: bool):
        self.running, self.most = running, 0

    def run(self):
        import psutil

        process = psutil.Process()
        while not self.done.wait(SAMPLE_S):
            if not self.running:
                continue
            rss = process.memory_info().rss
            if rss > self.most * 1.02:  # a write only when it grew: the scheduler is shared
                self.most = rss
                try:
                    self.line.write([*self.line.record.keys, "memory"], rss)
                except Exception:  # noqa: BLE001 - the scheduler is going away; the step decides
                    return

    def stop(self):
        self.done.set()
        self.join(timeout=5)


# --- the reason and the outcomes --------------------------------------------------------------------


def death_reason(record: dict, restarts=()) -> str:
    """What is known about a worker that died under a step, from its record and the nanny's
    memory restarts: "the worker running this step died; memory limit 1 GiB, last seen using 1.3 GiB",
    or what its fault file says (`fatal_errors`): "…died on tcp://…: Segmentation fault at cell 4, line 2"."""
    from dask.utils import format_bytes

    address = record.get("worker")
    fatal = fatal_reason(record.get("fault_file"), record.get("host") or "")  # (a record without a host: none read)
    if fatal is not None:  # (its memory says nothing then)
        return f"the worker running this step died{f' on {address}' if address else ''}: {fatal}"
    over = [r for r in restarts if r.get("worker") == address and r.get("rss")]
    used = max([record.get("memory") or 0] + [r["rss"] for r in over])
    known = []
    if record.get("memory_limit"):
        known.append(f"memory limit {format_bytes(record['memory_limit'])}")
    if used:
        known.append(f"last seen using {format_bytes(used)}")
    text = "the worker running this step died"
    if over:
        text += " (its nanny restarted it for going over its memory limit)"
    if address:
        text += f" on {address}"
    return text + ("; " + ", ".join(known) if known else "")


def _death(record: dict, restarts) -> tuple[str, str]:
    """(error name, reason) of the end of a step's attempt that its record says was running: the
    timeout the run stopped it for (`StepDeadlines`), or its worker's death. `restarts`: a function
    giving the nanny's memory restarts."""
    if record.get("timed_out"):
        return STEP_TIMEOUT, str(record["timed_out"])
    if record.get("interrupted"):
        return WORKER_DIED, f"the step was stopped: {record['interrupted']}"
    return WORKER_DIED, death_reason(record, restarts())


def died_outcome(step: str, reason: str, attempts: int, started: float | None = None,
                 error: str = WORKER_DIED) -> StepOutcome:
    """`started`: as its last attempt began (its record's), so that it ran until its worker died, not 0 s."""
    outcome = failed_outcome(step, error, reason)
    outcome.attempts = attempts
    if isinstance(started, (int, float)):
        outcome.started = min(started, outcome.finished)
    return outcome


def killed_outcome(client, run_id: str, name: str, exc: BaseException, names_by_key: dict) -> StepOutcome:
    """The outcome of a step whose task ended in an error rather than an outcome: Dask's
    `KilledWorker` on the step's own task is the death of its worker, on a task it comes after makes
    it `upstream_failed`; any other error fails the step naming it. `names_by_key`: task key → its
    steps."""
    from distributed import KilledWorker

    if not isinstance(exc, KilledWorker):
        return failed_outcome(name, type(exc).__name__, f"the step's Dask task failed: {exc}")
    blamed = names_by_key.get(exc.task, [exc.task])
    if name not in blamed:
        return StepOutcome(name, UPSTREAM_FAILED, summary={"reason": f"upstream failed: {', '.join(blamed)}"})
    record = client.get_metadata([NAMESPACE, run_id, blamed[0]], None) or {}
    if record.get("step") != name:  # the step died under an earlier run of the task
        record = (record.get("died") or {}).get(name) or {**record, "attempts": 0}
    error, reason = _death(record, lambda: [msg for _, msg in client.get_events(MEMORY_TOPIC)])
    return died_outcome(name, reason, record.get("attempts", 0), record.get("started"), error)


def forget_run(client, run_id: str, topic: str | None = None, ended: bool = False):
    """Drop the run's records and its event topic from the scheduler, which keeps the last 1,000
    events of every topic for good (a shared warm cluster serves many runs): one call. Best effort:
    a scheduler may refuse `run_on_scheduler`; then a few bytes, or the events, stay. `ended`: all
    its steps finished, so what of it may still execute (a warm-up of an idle worker) is no orphaned
    step; a run cancelled stays the orphaned-step stopper's until its client leaves (its steps'
    stop may not have gone through)."""
    try:
        client.run_on_scheduler(_drop_records, run_id, topic, ended)
    except Exception:  # noqa: BLE001 - memory, not correctness
        pass


def running_on(dask_scheduler, run_prefix: str) -> set[str]:
    """(on the scheduler) The workers that the records of the runs whose ids begin with `run_prefix`
    say run one of their steps."""
    runs = dask_scheduler.task_metadata.get(NAMESPACE, {})
    records = [record for run_id, heads in runs.items() if run_id.startswith(run_prefix) and isinstance(heads, dict)
               for record in heads.values()]
    return {r["worker"] for r in records if isinstance(r, dict) and r.get("running") and r.get("worker")}


def drop_runs_of(dask_scheduler, prefixes) -> None:
    """Drop the records of the runs whose ids begin with one of `prefixes` (a client that went away
    without ending its run: its process was killed)."""
    for run_id in [r for r in dask_scheduler.task_metadata.get(NAMESPACE, {}) if r.startswith(tuple(prefixes))]:
        _drop_records(run_id, dask_scheduler=dask_scheduler)


def _drop_records(run_id, topic=None, ended=False, dask_scheduler=None):
    dask_scheduler.task_metadata.get(NAMESPACE, {}).pop(run_id, None)
    stopper = dask_scheduler.plugins.get(ORPHAN_STOPPER)
    if ended and stopper is not None:
        stopper.forget(run_id[:8])
    broker = getattr(dask_scheduler, "_broker", None)  # the scheduler's event log: no public way to clear one
    topics = getattr(broker, "_topics", None)
    if topic is None or not isinstance(topics, dict) or topic not in topics:
        return
    topics[topic].events.clear()
    if not topics[topic].subscribers:  # the client's unsubscribe may come after this
        del topics[topic]


# --- cancel: stop the run's steps where they execute -------------------------------------------------


def executing_keys(suffix: str, dask_worker=None) -> list[str]:
    """Keys of the tasks ending in `suffix` that this worker is executing (run via `client.run`)."""
    state = dask_worker.state
    return [ts.key for ts in state.executing | state.long_running
            if isinstance(ts.key, str) and ts.key.endswith(suffix)]


def stop_unstarted_steps(run_id: str, dask_worker=None) -> bool:
    """(via `client.run`) Whether no step of the run holds this worker's shell: then its tasks here
    only wait for it, and never start (`shell_holder.stop_unstarted`); no restart is needed."""
    from ..shell_holder import stop_unstarted

    return stop_unstarted(run_id)


def end_children(dask_worker=None, grace: float = TERMINATE_WAIT_S) -> int:
    """End the child processes of this worker process before it is restarted (via `client.run`):
    the running step's (`children.end_step_children`, which also finds `!cmd &` orphans), then any
    other process below the worker, which the restart would leave running. Returns how many."""
    import psutil

    ended = len(end_step_children(grace))
    rest = psutil.Process().children(recursive=True)
    for child in rest:
        try:
            child.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(rest, timeout=grace)
    for child in alive:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass
    return ended + len(rest)


def end_for_restart(dask_worker=None, grace: float = TERMINATE_WAIT_S) -> int:
    """Before a worker is restarted to stop its step (via `client.run`): end its child processes
    (`end_children`), and kill its process KILL_AFTER_S from now, unless the restart ended it first.
    The nanny's restart asks the worker to close and then waits 4 s for the step's thread, which a
    running step never gives back: its code went on for those 4 s (a file it appends to grew) before
    the nanny killed the process. Only a worker with a nanny, which starts it again. Returns how many
    child processes were ended."""
    restarted = bool(getattr(dask_worker, "nanny", None))
    if restarted:  # (before its step's processes end: the step may then end on its own, cut short)
        note_steps_stopped()
    ended = end_children(dask_worker, grace)
    if restarted:
        killer = threading.Timer(KILL_AFTER_S, os.kill, (os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM)))
        killer.daemon = True
        killer.start()
    return ended


class _BroadcastFailures(logging.Filter):
    """Drops the errors the scheduler logs as the questions a stuck worker never answered fail with
    its death (`_stop` kills it): the run says what it stopped, once."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("broadcast to ")


_BROADCAST_FAILURES = _BroadcastFailures()


def stop_run_steps(client, run_id: str, names_by_key: dict, emit, restart_timeout: float = 30.0,
                   whole_run: bool = True) -> dict:
    """Stop this run's steps that are still executing (`names_by_key`: task key → the steps of it
    that may still run): for each worker running one, say so
    (a WARNING event per step), end its child processes and restart it (killed if it does not close
    at once: `end_for_restart`). `whole_run` (Cancel): a worker where the run's tasks only wait for
    another run's step to end is not restarted; they never start there (`stop_unstarted_steps`).
    Returns worker → status. Never raises: it runs while a cancel is on its way out."""
    asked = []
    # (the own cluster's scheduler logs in this process; left on: a question to a worker that died
    # with the run's process group fails only as the scheduler gives up connecting, or closes)
    logging.getLogger("distributed.scheduler").addFilter(_BROADCAST_FAILURES)
    try:
        return _stop(client, run_id, names_by_key, emit, restart_timeout, asked, whole_run)
    except Exception as exc:  # noqa: BLE001 - the cancel goes on; say what is left running
        emit(WARNING, None, {"message": f"could not stop the run's steps on their workers: {exc}"})
        return {}
    finally:
        deadline = time.monotonic() + ASK_S  # the questions a killed worker left fail as it goes
        for thread in asked:
            thread.join(max(0.0, deadline - time.monotonic()))


def _stop(client, run_id, names_by_key, emit, restart_timeout, asked: list, whole_run: bool) -> dict:
    suffix = f"-{run_id[:8]}"
    # what the scheduler gave each worker, and what each worker says it executes; a worker that does not
    # say is stuck in a step's C code that holds the interpreter (`deque(repeat(...))`, a Cython loop):
    # it executes what it was given, and its own threads (this question, the kill timer) never run
    assigned = client.run_on_scheduler(processing_keys, suffix)
    # a worker gone already runs nothing more (killed with the run's process group: a closed terminal's
    # SIGHUP, `kill -- -PGID`, systemd stopping the service): nothing to ask, stop or say
    live = _live_workers(client)
    assigned = {worker: keys for worker, keys in assigned.items() if worker in live}
    answers = _ask_each(client, list(assigned), ASK_S, asked, executing_keys, suffix)
    found = {worker: answers.get(worker, keys) for worker, keys in assigned.items()}
    busy = {worker: [name for k in keys for name in names_by_key.get(k, ())] for worker, keys in found.items()}
    busy = {worker: steps for worker, steps in busy.items() if steps}
    unstarted = _ask_each(client, [w for w in busy if w in answers], ASK_S, asked, stop_unstarted_steps,
                          run_id) if whole_run else {}
    for worker in [w for w, stopped in unstarted.items() if stopped is True]:
        for step in busy.pop(worker):
            emit(WARNING, step, {"message": f"stopping step {step!r}: it waits on worker {worker} for another "
                                            "step to end, and will not start"})
    if not busy:
        return {}
    for worker, steps in busy.items():
        for step in steps:
            emit(WARNING, step, {"message": f"stopping step {step!r}: restarting worker {worker}"})
    answering = [worker for worker in busy if worker in answers]
    for worker, asker in _computing_for(client, answering, suffix).items():
        emit(WARNING, None, {"message": f"stopping what step(s) {', '.join(busy[asker])} computed on the cluster: "
                                        f"restarting worker {worker}"})
        busy.setdefault(worker, [])
    try:
        client.run_on_scheduler(mark_interrupted, busy, run_id)
    except Exception:  # noqa: BLE001 - a scheduler of an older nbscale: the other steps fail as died, as before
        pass
    ended = _ask_each(client, [w for w in busy if w in answers or w not in assigned], TERMINATE_WAIT_S + ASK_S,
                      asked, end_for_restart)
    stuck = [worker for worker in busy if worker not in ended]
    killed = _killed_through_nannies(client, stuck)
    restarted = {worker: "OK" for worker, done in killed.items() if done is True}  # (its nanny starts it again)
    live = _live_workers(client)  # (one that died meanwhile needs no restart, nor a warning)
    restarted.update(restart_workers(client, [w for w in busy if w not in restarted and w in live], restart_timeout))
    for worker, status in restarted.items():
        if status != "OK":  # no nanny ("removed"), or it did not stop in time
            emit(WARNING, None, {"message": f"worker {worker} could not be restarted ({status}): step(s) "
                                            f"{', '.join(busy.get(worker, []))} may keep running there"})
    return restarted


ASK_S = 2.0  # how long a worker has to answer while a run is cancelled, before it counts as stuck in a step


def mark_interrupted(busy: dict, run_id: str, dask_scheduler=None) -> int:
    """(on the scheduler) Mark the records of the other steps running on the workers about to be
    restarted to stop `busy`'s steps (worker → steps of run `run_id`): a worker of an external
    cluster runs many threads, each maybe another run's step. Such a step did not fail: Dask runs
    its task again, which runs it again from its start (`run_counted`), not counting that attempt.
    Returns how many were marked."""
    stopped = {step for steps in busy.values() for step in steps}
    marked = 0
    for other, heads in dask_scheduler.task_metadata.get(NAMESPACE, {}).items():
        for record in heads.values() if isinstance(heads, dict) else ():
            if not isinstance(record, dict) or not record.get("running") or record.get("timed_out") \
                    or record.get("worker") not in busy or other == run_id and record.get("step") in stopped:
                continue
            steps = ", ".join(repr(step) for step in busy[record["worker"]])
            what = f"step {steps}" if steps else "what a step computed there"
            record["interrupted"] = (f"its worker {record['worker']} was restarted to stop {what} of run "
                                     f"{run_id[:8]} (cancelled, or past its timeout)")
            marked += 1
    return marked


# --- tasks whose workers are all gone --------------------------------------------------------------


STRANDED_PLUGIN = "nbscale-stranded-steps"


def install_stranded_steps(dask_scheduler=None) -> bool:
    """(on the scheduler, or given it) Add the `stranded_steps` plugin once; whether it was added now."""
    if STRANDED_PLUGIN in dask_scheduler.plugins:
        return False
    dask_scheduler.add_plugin(stranded_steps())
    return True


def stranded_steps():
    """A scheduler plugin that frees a run's tasks stranded with no worker to run them. A step's task
    prefers a worker (`allow_other_workers`: parallel steps spread over the workers); when every
    worker died at once (two parallel steps that crash) Dask finds no worker for it and parks it, and
    a worker that joins later (the nannies start new ones) takes only the parked tasks it may run,
    overlooking that these may run anywhere: the run waited for ever. As a worker joins, such a task
    of a run loses its preference for workers that are gone, so the joining worker takes it."""
    from distributed.diagnostics.plugin import SchedulerPlugin

    class StrandedSteps(SchedulerPlugin):
        name = STRANDED_PLUGIN

        def add_worker(self, scheduler=None, worker=None):  # (before Dask places the parked tasks)
            for task in list(scheduler.unrunnable):
                preferred = task.worker_restrictions
                if str(task.key).startswith("nbscale-") and task.loose_restrictions and preferred \
                        and not any(address in scheduler.workers for address in preferred):
                    task.worker_restrictions, task.loose_restrictions = None, False

    return StrandedSteps()


# --- timeouts: stop a step that outlives its `timeout:` from outside ---------------------------------


TIMEOUT_GRACE_S = 2.0  # past its timeout, how long a step's own code has to raise it before the run stops it
STOP_WAIT_S = 60.0  # how long a run that ends waits for a timed-out step's stop to end
DEADLINE_POLL_S = 0.25


class StepDeadlines(threading.Thread):
    """Stops a step that runs TIMEOUT_GRACE_S past its `timeout:`. Its worker raises the timeout
    between two bytecodes (`contract.deadline`), which never come while the step sleeps, waits in a
    system call or runs C code holding the interpreter (where the worker's own threads do not run
    either). The step's task record is marked timed out, and its worker's step stopped as Cancel
    stops it (`stop_run_steps`: its child processes ended, the worker restarted or, stuck,
    killed through its nanny). Dask runs the task again, which finds the mark and reports the
    timeout, or retries the step as `retries:` says (`run_counted`).
    `running`: step → when its code (its last attempt's) was reported starting, for the steps not
    finished; `names_by_key`: task key → its steps (filled as tasks are submitted)."""

    def __init__(self, client, run_id: str, timeouts: dict, running, names_by_key: dict, emit):
        super().__init__(name="nbscale-step-deadlines", daemon=True)
        self.client, self.run_id, self.timeouts, self.running = client, run_id, timeouts, running
        self.names_by_key, self.emit = names_by_key, emit
        self.done, self.stopped = set(), threading.Event()

    @classmethod
    def watch(cls, client, run_id: str, specs, running, names_by_key: dict, emit) -> StepDeadlines | None:
        """Start watching the steps of `specs` that have a timeout; None when none has."""
        timeouts = {spec.step["name"]: spec.step["timeout"] for spec in specs if spec.step.get("timeout")}
        if not timeouts:
            return None
        watcher = cls(client, run_id, timeouts, running, names_by_key, emit)
        watcher.start()
        return watcher

    def run(self):
        while not self.stopped.wait(DEADLINE_POLL_S):
            try:
                self.check(time.time())
            except Exception:  # noqa: BLE001 - the scheduler went away: the run sees it and ends
                pass

    def check(self, now: float) -> None:
        for step, started in self.running().items():
            limit = self.timeouts.get(step)
            if limit is None or now < started + float(limit) + TIMEOUT_GRACE_S or (step, started) in self.done:
                continue
            self.done.add((step, started))
            key = next((k for k, names in list(self.names_by_key.items()) if step in names), None)
            if key is None or self.stopped.is_set():
                continue
            if not self._still_running(key, step):
                continue
            message = (f"{timeout_message(step, limit)} and did not stop (it slept, waited, or ran compiled "
                       "code that holds the interpreter), so its worker was restarted to stop it")
            if self.client.run_on_scheduler(mark_timed_out, self.run_id, self.names_by_key[key][0], step, message):
                stop_run_steps(self.client, self.run_id, {key: [step]}, self.emit, whole_run=False)

    def _still_running(self, key: str, step: str) -> bool:
        """Whether the step's code still runs under its timeout on the worker of its task, or that
        worker does not say (stuck in C code that holds the interpreter). Its code may have ended
        while its end is not reported yet: a chain's step's end leaves with the next one's start,
        after the next one got its inputs."""
        assigned = self.client.run_on_scheduler(processing_keys, f"-{self.run_id[:8]}")
        workers = [worker for worker, keys in assigned.items() if key in keys]
        answers = _ask_each(self.client, workers, ASK_S, [], timed_code_running, self.run_id, step)
        return bool(workers) and not any(answers.get(worker) is False for worker in workers)

    def stop(self, wait: bool) -> None:
        """No more steps are stopped. `wait`: a stop under way ends first (the run ended, and would
        close its cluster under it: it would fail half-way, and say so)."""
        self.stopped.set()
        if wait and self.is_alive() and threading.current_thread() is not self:
            self.join(STOP_WAIT_S)


def mark_timed_out(run_id: str, head: str, step: str, message: str, dask_scheduler=None) -> bool:
    """(on the scheduler) Mark the record of the run's task that begins with `head` timed out, if it
    still says `step` runs; whether it did."""
    heads = dask_scheduler.task_metadata.get(NAMESPACE, {}).get(run_id)
    record = heads.get(head) if isinstance(heads, dict) else None
    if not isinstance(record, dict) or record.get("step") != step or not record.get("running"):
        return False
    record["timed_out"] = message
    return True


def _ask_each(client, workers: list[str], timeout: float, asked: list, function, *args) -> dict:
    """`function(*args)` on each of `workers` (as `client.run`), at once: the answers that came
    within `timeout`. A worker stuck in C code holding the interpreter never answers, and
    `client.run` waits for every worker it asks. `asked`: the threads asking are added to it."""
    answers, threads = {}, []

    def ask(worker):
        try:
            answer = client.run(function, *args, workers=[worker], on_error="return").get(worker)
        except Exception:  # noqa: BLE001 - gone meanwhile: no answer
            return
        if not isinstance(answer, BaseException):
            answers[worker] = answer

    for worker in workers:
        thread = threading.Thread(target=ask, args=(worker,), name="nbscale-ask-worker", daemon=True)
        thread.start()
        threads.append(thread)
    asked.extend(threads)
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return dict(answers)


def processing_keys(suffix: str, dask_scheduler=None) -> dict:
    """(on the scheduler) Worker → the keys ending in `suffix` it was given to compute."""
    found: dict[str, list] = {}
    for ws in dask_scheduler.workers.values():
        keys = [ts.key for ts in ws.processing if isinstance(ts.key, str) and ts.key.endswith(suffix)]
        if keys:
            found[ws.address] = keys
    return found


def _live_workers(client) -> set[str]:
    return set(client.scheduler_info(n_workers=-1).get("workers", {}))


def _killed_through_nannies(client, workers: list[str]) -> dict:
    """`kill_worker_process` on the nannies of those of `workers` the scheduler still has: asked
    for one it lost, the scheduler fails the whole call (and logs its traceback)."""
    for _ in range(2):
        workers = [worker for worker in workers if worker in _live_workers(client)]
        if not workers:
            return {}
        try:
            return client.run(kill_worker_process, workers=workers, nanny=True, on_error="return")
        except KeyError:  # one left as it was asked
            continue
    return {}


def kill_worker_process(dask_worker=None) -> bool:
    """(on a nanny, via `client.run(..., nanny=True)`) Kill its worker process and every process
    below it, at once: a worker stuck in C code that holds the interpreter can neither end its
    step's processes nor close when told (its nanny would wait 4 s before killing it). The nanny
    starts a new one. Whether there was one to kill."""
    import psutil

    pid = getattr(getattr(getattr(dask_worker, "process", None), "process", None), "pid", None)
    if pid is None:
        return False
    try:
        worker = psutil.Process(pid)
        doomed = [*worker.children(recursive=True), worker]
    except psutil.NoSuchProcess:
        return False
    for process in doomed:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    return True


def _computing_for(client, steps_on: list[str], suffix: str) -> dict:
    """Other workers executing what the steps on `steps_on` submitted from inside them
    (`dask.compute(...)`, `client.submit` through the worker's client): worker → the worker of the
    step that asked for it. Restarting the step's worker drops its client's wishes, but a task
    already executing elsewhere goes on to its end. A worker that also executes another run's step
    is left alone (cancelling this run must not kill that one's), as is what the step handed to
    `fire_and_forget` (nothing says whose it is)."""
    wanted = client.run(_client_keys, workers=steps_on, on_error="ignore")
    by_key = {key: worker for worker, keys in wanted.items() if isinstance(keys, list) for key in keys}
    if not by_key:
        return {}
    found = client.run_on_scheduler(_processing_workers, list(by_key), suffix)
    return {worker: by_key[key] for worker, key in found.items() if worker not in steps_on}


def _client_keys(dask_worker=None) -> list:
    """The keys this worker's own client (a step's `dask.compute`, `get_client().submit`) holds."""
    own = getattr(dask_worker, "_client", None)
    return list(getattr(own, "futures", {}) or {})


def _processing_workers(keys, suffix, dask_scheduler=None) -> dict:
    """Worker → one of `keys` it executes, for the workers executing no other run's step."""
    found = {}
    for key in keys:
        ts = dask_scheduler.tasks.get(key)
        ws = getattr(ts, "processing_on", None) if ts is not None else None
        if ws is not None and not any(_another_runs_step(t.key, suffix) for t in ws.processing):
            found.setdefault(ws.address, key)
    return found


def _another_runs_step(key, suffix: str) -> bool:
    return isinstance(key, str) and key.startswith("nbscale-") and not key.endswith(suffix)


# --- a shared cluster's workers that hold a library since reinstalled ---------------------------------


def outdated_libraries(dask_worker=None) -> dict | None:
    """(via `client.run`) The libraries this worker imported that were installed again since (another
    version, other files) or removed (`dependencies.outdated_distributions`), or None while it
    executes a task: another run's step must not die under it."""
    from ..dependencies import outdated_distributions

    if dask_worker.state.executing or dask_worker.state.long_running:
        return None
    return outdated_distributions()


def restart_outdated_workers(client, emit, timeout: float = 60.0) -> dict:
    """Restart the idle workers of a shared cluster (the warm one) that hold a library reinstalled
    since they imported it: a step there would run the old code (a step a busy one takes fails,
    saying why). Waits until as many workers are back. Returns worker → its outdated libraries.
    Never raises: the run goes on, its steps refuse an outdated worker themselves."""
    try:
        found = client.run(outdated_libraries, on_error="return")
        stale = {worker: libraries for worker, libraries in found.items() if isinstance(libraries, dict) and libraries}
        if not stale:
            return {}
        for worker, libraries in sorted(stale.items()):
            changes = ", ".join(f"{name} {then} → {now or 'removed'}"
                                for name, (then, now) in sorted(libraries.items()))
            emit(WARNING, None, {"message": f"restarting worker {worker}: it imported a library installed again or "
                                            f"removed since ({changes}), and would run the old code"})
        count = len(client.scheduler_info(n_workers=-1).get("workers", {}))
        restarted = restart_workers(client, sorted(stale), timeout)
        for worker, status in sorted(restarted.items()):
            if status != "OK":  # no nanny to start it again
                emit(WARNING, None, {"message": f"worker {worker} could not be restarted ({status})"})
        client.wait_for_workers(count, timeout=timeout)
        return stale
    except Exception as exc:  # noqa: BLE001 - the steps check their worker themselves
        emit(WARNING, None, {"message": f"could not restart the workers that hold outdated libraries: {exc}"})
        return {}


def restart_workers(client, workers: list[str], timeout: float) -> dict:
    """Restart `workers` through their nannies, returning once their processes are gone (the
    nannies start new ones meanwhile); a worker without a nanny is closed ("removed").

    The scheduler's own handler, for what `Client.restart_workers` lacks: it waits for the new
    workers (cancel need not), and refuses workers without a nanny instead of closing them."""
    return client.sync(client.scheduler.restart_workers, workers=workers, timeout=timeout, wait_for_workers=False,
                       on_error="return", stimulus_id=f"nbscale-cancel-{time.time()}")
