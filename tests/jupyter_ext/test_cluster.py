"""The server's Dask cluster without HTTP: none yet, a configured scheduler that cannot be reached,
a scheduler the server only connected to, one it started and owns, and a scheduler address that
accepts connections and never answers (a real silent listener on 127.0.0.1); a running pipeline's
own cluster named when it is asked to scale; where the dashboard link points. With a root, the
embedded cluster is the root's warm cluster (real detached processes): adopted after a restart,
forgotten when it ends elsewhere (kill -9), a hostile file in the root's state folder, two servers,
and a server killed with SIGKILL. With a real jupyter_server and CLI runs: test_cluster_server.py."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import urllib.request

import psutil
import pytest
from conftest import wait_for
from server_parts import run

from nbscale.jupyter_ext.cluster import ServerCluster, dashboard_model, is_this_machine, shown_folder, stop_hint
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


RUN_CLUSTER = {"status": "running", "kind": "run", "scheduler_address": "tcp://127.0.0.1:1",
               "workers": [{"address": "tcp://127.0.0.1:2"}, {"address": "tcp://127.0.0.1:3"}]}


def test_a_runs_own_cluster_shown_instead_is_named_not_denied():
    """The panel shows a running pipeline's own cluster while the server has none: Scale, Adapt and
    Close say whose workers those are, not "no cluster to scale" beside two workers."""
    async def main():
        cluster = ServerCluster()
        with pytest.raises(Conflict) as scaled:
            await cluster.scale(2, RUN_CLUSTER)
        with pytest.raises(Conflict) as adapted:
            await cluster.adapt(1, 2, RUN_CLUSTER)
        with pytest.raises(Conflict) as closed:
            await cluster.close(RUN_CLUSTER)
        return scaled.value.message, adapted.value.message, closed.value.message

    scaled, adapted, closed = run(main())
    assert scaled.startswith("the 2 workers shown belong to the running pipeline's own cluster")
    assert "cannot be scaled from here; start a cluster" in scaled and "no cluster" not in scaled
    assert "cannot be made adaptive" in adapted
    assert "cannot be closed from here; Cancel the run" in closed


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
        # bokeh and jupyter-server-proxy are installed (the `jupyter` extra): the dashboard, on this
        # machine, is linked through the Jupyter server, and the plots the panes show are there
        port = int(model["dashboard_link"].split(":")[-1].split("/")[0])
        assert model["dashboard"] == {"link": model["dashboard_link"], "proxy_path": f"proxy/{port}/status",
                                      "note": None}
        plots = await asyncio.to_thread(get_json, f"http://127.0.0.1:{port}/individual-plots.json")  # the
        # scheduler answers on this loop: the request must not block it
        assert {"/individual-task-stream", "/individual-progress", "/individual-workers-memory"} <= {
            p if p.startswith("/") else "/" + p for p in plots.values()}
        model = await cluster.adapt(1, 2)
        assert model["adaptive"] == {"minimum": 1, "maximum": 2}
        model = await cluster.scale(2)
        assert model["adaptive"] is None
        deadline = asyncio.get_running_loop().time() + 120  # scale answers after 10 s at most; a loaded
        while len(model["workers"]) != 2:  # machine may take longer to start a worker process
            assert asyncio.get_running_loop().time() < deadline, model["workers"]
            await asyncio.sleep(0.2)
            model = await cluster.sample()
        assert (await cluster.sample())["scheduler_address"] == model["scheduler_address"]
        await cluster.shutdown()
        assert cluster.current is None

    run(main())


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=30) as answer:
        return json.load(answer)


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


IDENTITY = {"address": "tcp://127.0.0.1:8786", "services": {"dashboard": 8787}}


def test_the_dashboard_link_says_where_it_goes():
    local = dashboard_model("http://127.0.0.1:8787/status", IDENTITY)
    assert local == {"link": "http://127.0.0.1:8787/status", "proxy_path": "proxy/8787/status", "note": None}
    assert dashboard_model(f"http://{socket.gethostname()}:8787/status", IDENTITY)["proxy_path"] == "proxy/8787/status"
    elsewhere = dashboard_model("http://sched.example.org:8787/status", IDENTITY)
    assert elsewhere["link"] == "http://sched.example.org:8787/status" and elsewhere["proxy_path"] is None
    assert "on sched.example.org, not on the Jupyter server's machine" in elsewhere["note"]
    # a configured link that is a path on the Jupyter server (dask-labextension's convention) is kept
    configured = dashboard_model("/user/ann/proxy/8787/status", IDENTITY)
    assert configured == {"link": "/user/ann/proxy/8787/status", "proxy_path": None, "note": None}
    none = dashboard_model(None, {"services": {}})
    assert none["link"] is None and none["note"] == "the scheduler serves no dashboard"
    assert is_this_machine("localhost") and is_this_machine("::1") and not is_this_machine("192.0.2.7")


MISSING = """
import json, sys
sys.modules[{name!r}] = None  # this interpreter cannot import it, as when it is not installed
from nbscale.jupyter_ext.cluster import dashboard_model
print(json.dumps(dashboard_model("http://127.0.0.1:8787/status", {{"services": {{"dashboard": 8787}}}})))
"""


@pytest.mark.parametrize("name, note", [
    ("bokeh", "install bokeh for the dashboard (pip install bokeh)"),
    ("jupyter_server_proxy", "jupyter-server-proxy is not installed: the link goes straight to the dashboard's port"),
])
def test_a_missing_package_is_named(name, note):
    out = subprocess.run([sys.executable, "-c", MISSING.format(name=name)], capture_output=True, text=True,
                         check=True).stdout
    model = json.loads(out)
    assert model["proxy_path"] is None and model["note"].startswith(note)
    assert model["link"] == (None if name == "bokeh" else "http://127.0.0.1:8787/status")


# --- the embedded cluster is the root's warm cluster (kernels/warm_cluster.py) ------------------------


@pytest.fixture
def root(tmp_path):
    """A server root whose warm clusters are stopped (and their processes gone) at the end."""
    from warm_harness import end_clusters, serving_pids

    folder = tmp_path / "root"
    (folder / "sub").mkdir(parents=True)
    yield folder
    end_clusters(folder)
    assert not serving_pids(folder)


def test_the_started_cluster_is_the_roots_warm_cluster_and_outlives_the_server(root):
    """Its files are in the root's state folder, runs under the root find it, its dashboard is served,
    its process (not the server's) scales it and keeps its adaptive bounds; the server's shutdown
    leaves it running, and the next server adopts it."""
    from nbscale.kernels import warm_cluster

    async def main():
        first = ServerCluster(warm_folder=root)
        model = await first.start(1)
        found = warm_cluster.find(root / "sub")
        assert found.live and found.folder == str(root) and model["scheduler_address"] == found.cluster.address
        assert found.cluster.pid != os.getpid() and model["kind"] == "LocalCluster" and len(model["workers"]) == 1
        port = int(model["dashboard_link"].split(":")[-1].split("/")[0])
        plots = await asyncio.to_thread(get_json, f"http://127.0.0.1:{port}/individual-plots.json")
        assert "/individual-task-stream" in {p if p.startswith("/") else "/" + p for p in plots.values()}
        assert (await first.adapt(1, 3))["adaptive"] == {"minimum": 1, "maximum": 3}
        await first.shutdown()  # the server stops: the cluster goes on for the runs under the root
        assert warm_cluster.lookup(root).live and warm_cluster.lookup(root).cluster.pid == found.cluster.pid

        second = ServerCluster(warm_folder=root)
        model = await second.model()  # adopted at the first look, with the bounds its process keeps
        assert model["scheduler_address"] == found.cluster.address and model["adaptive"] == {"minimum": 1,
                                                                                             "maximum": 3}
        model = await second.scale(2)
        assert model["adaptive"] is None and len(model["workers"]) == 2
        assert await second.scheduler_for_runs() == found.cluster.address
        assert await second.close() == {"status": "none"}
        assert warm_cluster.lookup(root).state == warm_cluster.NONE
        return found.cluster.pid

    pid = run(main())
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_a_warm_cluster_that_ended_elsewhere_is_forgotten_and_a_start_replaces_it(root):
    """Killed -9 (or stopped by `nbscale cluster stop`, its idle timeout, another server): the server
    notices by its pid at the next sample, shows why, hands no runs to it, and starts a new one."""
    from nbscale.kernels import warm_cluster

    events = []

    async def main():
        hub = EventHub()
        hub.subscribe(events.append)
        cluster = ServerCluster(warm_folder=root, events=hub)
        first = (await cluster.start(1))["scheduler_address"]
        pid = warm_cluster.lookup(root).cluster.pid
        os.kill(pid, signal.SIGKILL)
        await asyncio.to_thread(wait_for, lambda: not psutil.pid_exists(pid)
                                or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE, "the cluster to die")
        assert await cluster.sample() is None and cluster.current is None  # the manager shows `error`:
        # the error is answered (NoCluster): the root is named, never by its server path
        assert cluster.error.startswith(f"the warm cluster of the server's root at {first} has stopped")
        assert await cluster.scheduler_for_runs() is None
        assert warm_cluster.lookup(root).state == warm_cluster.STALE
        model = await cluster.start(1)
        assert model["scheduler_address"] != first and warm_cluster.lookup(root).cluster.pid != pid
        await cluster.close()
        await cluster.shutdown()

    run(main())
    assert any(e["payload"].get("error", "").startswith("the warm cluster of the server's root") for e in events)


def test_a_hostile_file_in_the_roots_state_folder_is_neither_adopted_nor_signalled(root):
    """A file naming a bystander process and a listener that would take the server's connection."""
    from nbscale.kernels import warm_cluster

    bystander = subprocess.Popen(["sleep", "600"])
    with silent_listener() as address:
        port = int(address.rsplit(":", 1)[1])
        warm_cluster.state_folder(root).mkdir()
        warm_cluster.info_path(root).write_text(json.dumps({"address": address, "pid": bystander.pid, "workers": 1,
                                                            "started": 0, "scheduler_file": "x"}))

        async def main():
            cluster = ServerCluster(warm_folder=root)
            assert await cluster.model() is None  # not adopted
            model = await cluster.start(1)
            assert model["scheduler_address"] != address
            await cluster.close()

        try:
            connections = [c for c in psutil.net_connections("tcp") if c.raddr and c.raddr.port == port]
            run(main())
            assert bystander.poll() is None, "the process the file named was signalled"
            assert [c for c in psutil.net_connections("tcp") if c.raddr and c.raddr.port == port] == connections
        finally:
            bystander.kill()
            bystander.wait()


def test_two_servers_starting_at_once_share_one_warm_cluster(root):
    from warm_harness import serving_pids

    async def main():
        one, two = ServerCluster(warm_folder=root), ServerCluster(warm_folder=root)
        first, second = await asyncio.gather(one.start(1), two.start(1))
        assert first["scheduler_address"] == second["scheduler_address"]
        assert len(serving_pids(root)) == 1
        await two.close()  # the other server notices at its next sample
        assert await one.sample() is None and one.current is None and "has stopped" in one.error
        await one.shutdown()

    run(main())


def test_a_server_killed_with_sigkill_leaves_a_live_cluster_not_a_stale_file(root):
    """The warm cluster is a process of its own session: kill -9 of the server that started it
    leaves it serving (its idle timeout ends it), and what the state folder says stays true."""
    from nbscale.kernels import warm_cluster

    script = ("import asyncio, sys\nfrom nbscale.jupyter_ext.cluster import ServerCluster\n"
              "async def main():\n    c = ServerCluster(warm_folder=sys.argv[1])\n    await c.start(1)\n"
              "    print('started', flush=True)\n    await asyncio.sleep(600)\nasyncio.run(main())\n")
    server = subprocess.Popen([sys.executable, "-c", script, str(root)], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline() == "started\n"
        server.kill()
        server.wait()
        found = warm_cluster.find(root / "sub")
        assert found.live and found.folder == str(root)
        assert psutil.Process(found.cluster.pid).ppid() != server.pid
    finally:
        if server.poll() is None:
            server.kill()


def test_a_warm_cluster_of_another_python_environment_is_neither_adopted_nor_started_on(root):
    """The server's runs would not use it (kernels/warm_cluster.same_environment): the panel must not
    show it as the server's cluster."""
    import json
    import sys

    from nbscale.errors import NbscaleError
    from nbscale.kernels import warm_cluster

    cluster, _ = warm_cluster.start(root, workers=1, idle_timeout=600)
    # the file as a cluster started from another virtual environment writes it (building a second
    # environment with nbscale installed would take minutes)
    info = warm_cluster.info_path(root)
    info.write_text(json.dumps({**json.loads(info.read_text()), "prefix": "/opt/other-venv"}))

    async def main():
        server = ServerCluster(warm_folder=root)
        assert (await server.model()) is None  # not adopted
        with pytest.raises(NbscaleError, match=f"is not this server's environment \\(it runs the Python environment "
                                               f"/opt/other-venv, this run {sys.prefix}\\)") as refused:
            await server.start(1)
        assert "(`nbscale cluster stop` in the server's root)" in str(refused.value)
        assert str(root) not in str(refused.value)
        assert server.current is None

    run(main())
    assert warm_cluster.lookup(root).live and warm_cluster.lookup(root).cluster.pid == cluster.pid  # left alone


def test_a_cluster_this_server_started_in_another_environment_is_stopped_not_left_running(root, monkeypatch):
    # nbscale edited or installed again since the server started: the cluster it started runs the new
    # code, the start was refused, and the cluster it had started idled on, unseen by the panel
    from nbscale.errors import NbscaleError
    from nbscale.kernels import own_code, warm_cluster

    monkeypatch.setattr(own_code, "IMPORTED", "the code this server imported before an edit")

    async def main():
        server = ServerCluster(warm_folder=root)
        with pytest.raises(NbscaleError, match="the cluster started for the server's root was stopped: this process "
                                               "imported nbscale before it was installed again"):
            await server.start(1)
        assert server.current is None

    run(main())
    assert warm_cluster.lookup(root).state == warm_cluster.NONE


def test_a_start_cut_off_by_a_close_names_the_root_not_its_server_path(root):
    async def main():
        cluster = ServerCluster(warm_folder=root)
        starting = asyncio.ensure_future(cluster.start(1))
        await asyncio.sleep(0.2)  # the start is under way
        with pytest.raises(Conflict) as second:
            await cluster.start(1)
        assert second.value.message.startswith("already starting the warm cluster of the server's root;")
        await cluster.close()
        with pytest.raises(Conflict) as cut:
            await asyncio.wait_for(starting, 120)
        assert cut.value.message == "the cluster was closed while starting the warm cluster of the server's root"
        await cluster.shutdown()

    run(main())


def test_warm_cluster_folders_are_shown_relative_to_the_root(tmp_path):
    root = tmp_path / "root"
    assert shown_folder(root, root) == "the server's root"
    assert shown_folder(root / "a" / "b", root) == "a/b"
    assert shown_folder(tmp_path, root) == "a folder above the server's root"  # `find` looks above the root
    assert stop_hint(shown_folder(root / "a", root)) == "`nbscale cluster stop --dir a` in the server's root"
    assert str(tmp_path) not in stop_hint(shown_folder(tmp_path, root))
