"""Dask collections inside a step: computed on the step's own cluster without a deadlock.

A step that computes a Dask DataFrame or Array on a worker uses that worker's client, as Dask does
in any task: the graph's tasks run on every worker, and the step's thread secedes from the
worker's pool while it waits. The freed thread could then start another step on the same worker,
which waits for the first one's step shell while the first one's tasks wait for a thread: with
one worker, both wait forever. So a worker runs one step at a time: the embedded cluster's workers
declare `STEP_RESOURCE` (one each), every step takes it, and a seceded step keeps it. Workers of
another cluster that do not declare it (`dask worker --resources nbscale-step=1` does) cannot
promise that: there a step computes its collections in its own process, with Dask's threads.
On the cluster, how each of the step's computes goes is reported as it runs (`compute_progress`).
"""

from __future__ import annotations

from contextlib import contextmanager

STEP_RESOURCE = "nbscale-step"


@contextmanager
def collections_computed(on_cluster: bool, report=None):
    """Within the block, a step's `.compute()` runs on the cluster (`on_cluster`: the worker holds
    STEP_RESOURCE) or, where a second step could take the worker's thread, in this process.

    On the cluster, no scheduler is named: Dask then uses the worker's client. A `scheduler:
    dask.distributed` setting the worker inherited (forked from a process with a default client)
    would ask for a client the worker does not have yet, and fail. With `report(payload)`, that
    client's computes from this thread say how they go (`compute_progress`: STEP_PROGRESS payloads)."""
    import dask

    if not on_cluster:
        scheduler = "threads"
    elif report is None:
        scheduler = None
    else:
        from ..compute_progress import ReportingScheduler  # distributed: imported on workers only

        scheduler = ReportingScheduler(report)
    with dask.config.set(scheduler=scheduler):
        yield
