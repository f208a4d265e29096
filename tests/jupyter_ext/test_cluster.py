"""The server's Dask cluster without HTTP: none yet, a configured scheduler that cannot be reached,
a scheduler the server only connected to, and one it started and owns."""

from __future__ import annotations

import pytest
from server_parts import run

from nbscale.jupyter_ext.cluster import ServerCluster
from nbscale.jupyter_ext.errors import Conflict, InvalidInput
from nbscale.jupyter_ext.events import EventHub


def test_cluster_calls_without_a_cluster():
    async def main():
        cluster = ServerCluster()
        assert await cluster.model() is None and await cluster.sample() is None
        assert await cluster.scheduler_for_runs() is None
        for call in (cluster.scale(2), cluster.adapt(1, 2), cluster.close()):
            with pytest.raises(Conflict):
                await call

    run(main())


def test_an_unreachable_configured_scheduler_is_reported_not_raised():
    async def main():
        cluster = ServerCluster(scheduler_address="tcp://127.0.0.1:9", connect_timeout_s=0.5)
        assert await cluster.model() is None
        assert await cluster.scheduler_for_runs() is None  # tried once, at first need
        return cluster.error

    assert "tcp://127.0.0.1:9" in run(main())


def test_connecting_to_an_unreachable_scheduler_is_invalid_input():
    with pytest.raises(InvalidInput, match="could not connect"):
        run(ServerCluster(connect_timeout_s=0.5).connect("tcp://127.0.0.1:9"))


def test_a_scheduler_the_server_only_connected_to_is_used_not_managed():
    from distributed import LocalCluster

    events = []

    async def main():
        async with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, asynchronous=True,
                                dashboard_address="127.0.0.1:0") as local:
            hub = EventHub()
            hub.subscribe(events.append)
            cluster = ServerCluster(events=hub)
            model = await cluster.connect(local.scheduler_address)
            assert model["kind"] == "remote" and model["scheduler_address"] == local.scheduler_address
            assert len(model["workers"]) == 1 and model["threads"] == 1
            assert await cluster.scheduler_for_runs() == local.scheduler_address
            with pytest.raises(Conflict, match="already running"):
                await cluster.start(1)
            for call in (cluster.scale(2), cluster.adapt(1, 2)):
                with pytest.raises(Conflict, match="only connected to"):
                    await call
            assert await cluster.close() == {"status": "none"}
            assert len(local.scheduler.workers) == 1  # disconnected; the scheduler and its worker go on

    run(main())
    assert events == [{"type": "cluster", "payload": {"status": "none"}}]


def test_a_started_cluster_scales_adapts_and_closes():
    async def main():
        cluster = ServerCluster()
        model = await cluster.start(1)
        assert model["kind"] == "LocalCluster" and len(model["workers"]) == 1 and model["adaptive"] is None
        model = await cluster.adapt(1, 2)
        assert model["adaptive"] == {"minimum": 1, "maximum": 2}
        model = await cluster.scale(2)
        assert model["adaptive"] is None and len(model["workers"]) == 2
        assert (await cluster.sample())["scheduler_address"] == model["scheduler_address"]
        await cluster.shutdown()
        assert cluster.current is None

    run(main())
