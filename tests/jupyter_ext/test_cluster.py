"""The server's Dask cluster without HTTP: none yet, a configured scheduler that cannot be reached,
a scheduler the server only connected to, one it started and owns, and a scheduler address that
accepts connections and never answers (a real silent listener on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading

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


@contextlib.contextmanager
def silent_listener():
    """A TCP listener on 127.0.0.1 that accepts connections and never says a word: a scheduler
    address that never answers."""
    server = socket.create_server(("127.0.0.1", 0))
    held, stop = [], threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"tcp://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        for connection in held:
            connection.close()
        server.close()


def test_connecting_to_a_silent_scheduler_ends_at_the_timeout():
    async def main(address):
        cluster = ServerCluster(connect_timeout_s=1.0)
        # the guard only turns a hang (what this was: minutes) into a failure; it measures nothing
        with pytest.raises(InvalidInput, match="no answer within 1 s"):
            await asyncio.wait_for(cluster.connect(address), 60)
        assert cluster.current is None and cluster.pending is None
        with pytest.raises(Conflict, match="no cluster to close"):
            await cluster.close()

    with silent_listener() as address:
        run(main(address))


def test_a_configured_silent_scheduler_is_reported_at_the_timeout():
    async def main(address):
        cluster = ServerCluster(scheduler_address=address, connect_timeout_s=1.0)
        first, second = await asyncio.wait_for(asyncio.gather(cluster.model(), cluster.scheduler_for_runs()), 60)
        assert first is None and second is None  # both callers waited for the one connect
        return cluster.error

    with silent_listener() as address:
        assert "no answer within 1 s" in run(main(address))


def test_close_and_start_do_not_wait_for_a_connect_under_way():
    async def main(address):
        cluster = ServerCluster(connect_timeout_s=5.0)
        connecting = asyncio.ensure_future(cluster.connect(address))
        await asyncio.sleep(0.2)
        assert cluster.pending is not None and "connecting to" in cluster.pending.doing
        with pytest.raises(Conflict, match="already connecting"):
            await cluster.start(1)
        assert await cluster.close() == {"status": "none"}
        assert not connecting.done()  # close did not wait on the network
        with pytest.raises((Conflict, InvalidInput)):
            await asyncio.wait_for(connecting, 60)
        assert cluster.current is None and cluster.pending is None

    with silent_listener() as address:
        run(main(address))


def test_a_close_during_a_connect_wins():
    from distributed import LocalCluster

    async def main():
        async with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, asynchronous=True,
                                dashboard_address="127.0.0.1:0") as local:
            clients_before = set(local.scheduler.clients)
            cluster = ServerCluster()
            connecting = asyncio.ensure_future(cluster.connect(local.scheduler_address))
            await asyncio.sleep(0)  # the connect has begun
            assert cluster.pending is not None
            assert await cluster.close() == {"status": "none"}
            with pytest.raises(Conflict, match="closed while connecting"):
                await asyncio.wait_for(connecting, 60)
            assert cluster.current is None
            deadline = asyncio.get_running_loop().time() + 30
            while set(local.scheduler.clients) != clients_before:  # the dropped client disconnected
                assert asyncio.get_running_loop().time() < deadline, local.scheduler.clients
                await asyncio.sleep(0.05)
            model = await cluster.connect(local.scheduler_address)  # and the server can connect again
            assert model["scheduler_address"] == local.scheduler_address
            await cluster.close()

    run(main())
