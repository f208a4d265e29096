"""How a step's Dask computes on its cluster go: tasks done out of each compute's total, as they run.

While a step computes its collections on the cluster (`engines.dask_collections`), Dask's
`scheduler` setting is a `ReportingScheduler`. It computes as the worker's client does
(`Client.get`: the graph becomes futures, gathered with the step's thread seceded from the worker's
pool), and a compute still running after FOLLOW_AFTER_S is followed with distributed's own progress
machinery: the scheduler's `diagnostics.progress.Progress` plugin counts the compute's tasks as they
finish, and a thread of the worker reads its counts every PROGRESS_EVENT_INTERVAL_S (what
distributed's progress bars stream through the scheduler's `feed`, read here by one short
`run_on_scheduler` call each time: nothing stays open on the scheduler once the step moves on).
Each count that changed goes to `report({"done", "total", "what": "compute"})`; a compute that ends
well ends with a report of done == total. The total is the tasks the scheduler still knows when the
follow begins (tasks that ended and were forgotten before are not in it).

Following is best effort and costs the compute nothing it waits for: shorter computes are never
followed, and whatever fails in following one leaves the compute as it would be without. Computes
from other threads than the step's (a task of the graph computing in turn) are plain `Client.get`s.
"""

from __future__ import annotations

import threading
import uuid

from dask.base import get_scheduler
from distributed import futures_of, get_client, rejoin, secede, wait
from distributed.diagnostics.progress import Progress
from distributed.utils import thread_state

from .contract import PROGRESS_EVENT_INTERVAL_S

__all__ = ["FOLLOW_AFTER_S", "WHAT", "ReportingScheduler"]

FOLLOW_AFTER_S = 0.2  # a compute that ends sooner is not worth a progress bar (nor a scheduler plugin)
WHAT = "compute"  # the payload's "what": a compute's tasks


class ReportingScheduler:
    """Dask's `scheduler` during a step on a worker: the worker's client, whose computes from the
    step's thread report how they go to `report(payload)`."""

    def __init__(self, report, interval: float = PROGRESS_EVENT_INTERVAL_S):
        self.report, self.interval = report, interval
        self.thread = threading.get_ident()

    def __call__(self, dsk, keys, **kwargs):
        try:
            client = get_client()
        except ValueError:  # a thread the step started, outside any task: in threads, as Dask would
            from dask.threaded import get

            return get(dsk, keys, **kwargs)
        schedule = get_scheduler(scheduler=client)  # as Dask picks it with no scheduler set
        if threading.get_ident() != self.thread or schedule != client.get:
            return schedule(dsk, keys, **kwargs)
        return _followed_get(client, dsk, keys, kwargs, self.report, self.interval)

    def persist(self, collections, **kwargs):
        """`dask.persist` hands the collections to its scheduler's `persist`: the client's (futures,
        nothing waited for, nothing to follow)."""
        return get_client().persist(collections, **kwargs)

    def __eq__(self, other):
        # Dask locks between processes when its scheduler is the client's (`get_scheduler_lock`): it is
        if other is self:
            return True
        try:
            return get_client().get == other
        except Exception:  # noqa: BLE001 - no client here: not the client's scheduler
            return False

    __hash__ = object.__hash__

    def __reduce__(self):
        # Dask's config travels to processes a step starts (a nested cluster): there, no step to report to
        return (type(None), ())


def _followed_get(client, dsk, keys, kwargs, report, interval):
    """`client.get(dsk, keys, **kwargs)`, its waiting part as distributed writes it, followed once
    the compute outlasts FOLLOW_AFTER_S."""
    direct = kwargs.pop("direct", None)
    packed = client.get(dsk, keys, sync=False, **kwargs)
    futures = futures_of(packed)
    seceded = False
    if getattr(thread_state, "key", False):  # in a task: give the worker's thread back while waiting
        try:
            secede()
            seceded = True
        except Exception:  # noqa: BLE001 - as Client.get: wait without seceding
            pass
    follower = None
    try:
        if not _ended(futures, FOLLOW_AFTER_S):
            follower = _Follower.start_for(client, futures, report, interval)
        result = client.gather(packed, direct=direct)
        if follower is not None:
            follower.finished()
        return result
    finally:
        if follower is not None:
            follower.stop()  # the futures are its to release, once the scheduler follows them
        else:
            for future in futures:
                future.release()
        if seceded:
            rejoin()


def _ended(futures, timeout: float) -> bool:
    """Whether the futures ended (well or not) within `timeout` seconds."""
    try:
        wait(futures, timeout=timeout)
    except TimeoutError:
        return False
    except Exception:  # noqa: BLE001 - cancelled, lost: `gather` says what happened
        return True
    return True


class _Follower(threading.Thread):
    """One compute, followed from a thread of the step's worker: distributed's `Progress` plugin
    counts its tasks on the scheduler, read every `interval` (`Client.run_on_scheduler`; a
    scheduler that refuses it shows no progress).

    It holds the compute's futures until the plugin is set up (a plugin set up for keys already
    forgotten would wait for them forever), and releases them then or at `stop`, whichever comes
    last. The plugin removes itself once the keys are computed, failed or forgotten."""

    def __init__(self, client, futures, report, interval):
        super().__init__(name="nbscale-compute-progress", daemon=True)
        self.client, self.report, self.interval = client, report, interval
        self.futures, self.keys = list(futures), [future.key for future in futures]
        self.lock = threading.Lock()  # counts come from this thread, the compute's end from the step's
        self.last: tuple[int, int] | None = None  # (done, total) last reported
        self.settled = False  # the plugin is set up, or cannot be
        self.stopped = threading.Event()  # the step no longer waits for the compute

    @classmethod
    def start_for(cls, client, futures, report, interval):
        """A started follower; None if it could not start."""
        try:
            follower = cls(client, futures, report, interval)
            follower.start()
        except Exception:  # noqa: BLE001 - progress is best effort: the compute goes on unfollowed
            return None
        return follower

    def run(self):
        try:
            try:
                name, counts = self.client.run_on_scheduler(_start_progress, self.keys, f"nbscale-{uuid.uuid4().hex}")
            finally:
                self._settle()
            while counts is not None:
                with self.lock:
                    if self.stopped.is_set():
                        return
                    self._report(*counts)
                if self.stopped.wait(self.interval):
                    return
                counts = self.client.run_on_scheduler(_progress_counts, name)
        except Exception:  # noqa: BLE001 - the scheduler refused or went away: no more counts
            pass

    def finished(self):
        """The compute ended well: the last report says all its tasks are done."""
        with self.lock:
            self.stopped.set()
            if self.last is not None:
                self._report(self.last[1], self.last[1])

    def stop(self):
        self.stopped.set()
        self._release()

    def _settle(self):
        with self.lock:
            self.settled = True
        self._release()

    def _release(self):
        with self.lock:
            if not (self.settled and self.stopped.is_set()):
                return
            futures, self.futures = self.futures, []
        for future in futures:
            future.release()

    def _report(self, done, total):  # under the lock: reports leave in the order they were counted
        if (done, total) == self.last:
            return
        self.last = (done, total)
        try:
            self.report({"done": done, "total": total, "what": WHAT})
        except Exception:  # noqa: BLE001 - a listener's failure must not fail the compute
            pass


# --- on the scheduler (`Client.run_on_scheduler`) --------------------------------------------------


async def _start_progress(keys, name, dask_scheduler=None):
    """distributed's Progress of the compute of `keys`, set up as a plugin named `name`; its name
    and first counts."""
    progress = Progress(keys, dask_scheduler, complete=True, name=name)
    await progress.setup()
    return name, _counts(progress)


def _progress_counts(name, dask_scheduler=None):
    """(done, total) tasks of the Progress plugin `name`; None once it removed itself."""
    progress = dask_scheduler.plugins.get(name)
    return _counts(progress) if isinstance(progress, Progress) else None


def _counts(progress) -> tuple[int, int]:
    total = len(progress.all_keys)
    return total - len(progress.keys or ()), total
