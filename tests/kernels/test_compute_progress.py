"""A step's Dask computes on its cluster, followed (kernels/compute_progress.py), on a real
LocalCluster: a long compute reports its tasks done as they go and ends with done == total; short
ones, other threads' and failing ones compute as plain `Client.get`s do; nothing stays on the cluster."""

from __future__ import annotations

import logging
import threading
import time

import pytest
from conftest import wait_for
from distributed import Client, LocalCluster

from nbscale.kernels import compute_progress
from nbscale.kernels.compute_progress import WHAT, ReportingScheduler

PARTITIONS = 12


@pytest.fixture(scope="module")
def client():
    # workers in this process: the task functions below need no importable module on them. They
    # share this process's Dask config, which their steps' settings must not outlive (the tests
    # after these compute with Dask's default scheduler)
    import dask

    before = dask.config.get("scheduler", None)
    try:
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None,
                          silence_logs=logging.ERROR) as cluster, Client(cluster, set_as_default=False) as c:
            yield c
    finally:
        dask.config.config.pop("scheduler", None)
        if before is not None:
            dask.config.set(scheduler=before)


def _slow(partition):
    time.sleep(0.15)
    return partition


def _numbers():
    import dask.array as da

    return da.arange(PARTITIONS * 10, chunks=10)


def _computed(collection_of, report=None, in_thread=False):
    """On a worker, as a step: compute `collection_of()` with the ReportingScheduler set; the
    result and what it reported (or the exception's type and message)."""
    import dask

    heard = []

    def compute():
        return collection_of().compute()

    with dask.config.set(scheduler=ReportingScheduler(report or heard.append)):
        try:
            if in_thread:  # a thread the step started: its compute is not the step's own
                out = {}
                thread = threading.Thread(target=lambda: out.update(value=compute()))
                thread.start()
                thread.join()
                value = out["value"]
            else:
                value = compute()
        except Exception as exc:  # noqa: BLE001 - the test reads what the step would see
            return {"error": f"{type(exc).__name__}: {exc}", "heard": heard}
    return {"value": value, "heard": heard}


def _slow_sum():
    return _numbers().map_blocks(_slow, dtype=int).sum()


def _run(client, *args, **kwargs):
    return client.submit(_computed, *args, pure=False, **kwargs).result(timeout=120)


def test_a_long_compute_reports_its_tasks_done_as_they_go_and_ends_with_all_of_them(client):
    out = _run(client, _slow_sum)
    assert out["value"] == sum(range(PARTITIONS * 10))
    heard = out["heard"]
    assert len(heard) >= 2 and {h["what"] for h in heard} == {WHAT}, heard
    done = [h["done"] for h in heard]
    assert done == sorted(done) and len(set(done)) == len(done), heard  # only counts that changed, rising
    assert heard[-1]["done"] == heard[-1]["total"] and heard[0]["done"] < heard[0]["total"], heard
    assert heard[-1]["total"] >= PARTITIONS  # the blocks' tasks at least


def test_a_short_compute_reports_nothing(client, monkeypatch):
    # short: it ends well before a compute is followed, on a busy machine too (a CI run once took
    # more than the 0.2 s for this one)
    monkeypatch.setattr(compute_progress, "FOLLOW_AFTER_S", 5.0)
    out = _run(client, lambda: _numbers().sum())
    assert out == {"value": sum(range(PARTITIONS * 10)), "heard": []}


def test_a_compute_from_another_thread_of_the_step_reports_nothing(client):
    out = _run(client, _slow_sum, in_thread=True)
    assert out == {"value": sum(range(PARTITIONS * 10)), "heard": []}


def _fails(partition):
    time.sleep(0.15)
    if partition[0] >= PARTITIONS * 5:
        raise ValueError("bad block")
    return partition


def test_a_failing_compute_fails_as_without_progress_and_never_says_it_completed(client):
    out = _run(client, lambda: _numbers().map_blocks(_fails, dtype=int).sum())
    assert out["error"] == "ValueError: bad block"
    assert all(h["done"] < h["total"] for h in out["heard"]), out["heard"]


def test_a_broken_listener_does_not_fail_the_compute(client):
    def broken(payload):
        raise RuntimeError("listener gone")

    out = _run(client, _slow_sum, report=broken)
    assert out["value"] == sum(range(PARTITIONS * 10))


def test_a_followed_compute_leaves_nothing_on_the_cluster(client):
    _run(client, _slow_sum)

    def leftovers(dask_scheduler=None):
        names = [type(p).__name__ for p in dask_scheduler.plugins.values()]
        return len(dask_scheduler.tasks), names.count("Progress")

    wait_for(lambda: client.run_on_scheduler(leftovers) == (0, 0), "the compute's keys and plugin to go")


def _persisted_and_lock():
    """persist hands the collection to the worker's client (futures); a lock asked for is Dask's
    lock between processes, as with the client's own scheduler."""
    import dask
    import dask.array as da
    import distributed
    from dask.utils import get_scheduler_lock

    with dask.config.set(scheduler=ReportingScheduler(lambda payload: None)):
        persisted = _numbers().persist()
        futures = distributed.futures_of(persisted)
        lock = get_scheduler_lock(da.Array)
        total = int(persisted.sum().compute())
    return len(futures), type(lock).__module__, total


def test_persist_and_locks_behave_as_with_the_workers_client(client):
    futures, lock_module, total = client.submit(_persisted_and_lock, pure=False).result(timeout=60)
    assert futures == PARTITIONS and lock_module == "distributed.lock" and total == sum(range(PARTITIONS * 10))
