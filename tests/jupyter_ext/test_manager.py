"""NbscaleManager: the parts wired together — Dask runs go to the server's cluster, the cluster model
falls back to a run's own cluster, and the samples pushed to subscribers (cluster models, events of
runs other processes write to the run store)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

from conftest import make_notebook
from server_parts import TWO_STEPS, run

from nbscale.jupyter_ext.manager import NbscaleManager
from nbscale.kernels.contract import FINISHED, SUCCEEDED
from nbscale.kernels.runner import RunOptions, run_notebook


async def wait_finished(manager, nb, run_id, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        detail = await manager.runs.detail(nb, run_id)
        if detail["status"] in FINISHED and run_id not in manager.runs.active():
            return detail
        await asyncio.sleep(0.05)
    raise AssertionError(f"run {run_id} did not finish: {detail['status']}")


def test_without_a_cluster_the_model_is_none_with_the_configured_schedulers_error(root):
    assert run(NbscaleManager(root).cluster_model()) == {"status": "none"}
    m = NbscaleManager(root, scheduler_address="tcp://127.0.0.1:9", connect_timeout_s=0.5)
    model = run(m.cluster_model())
    assert model["status"] == "none" and "tcp://127.0.0.1:9" in model["error"]


def test_dask_runs_go_to_the_servers_cluster(root):
    from distributed import LocalCluster

    async def main():
        m = NbscaleManager(root)
        assert await m.runs.run_options("dask") == {"engine": "dask", "use_cache": True}
        async with LocalCluster(n_workers=1, processes=False, asynchronous=True,
                                dashboard_address="127.0.0.1:0") as local:
            await m.cluster.connect(local.scheduler_address)
            assert await m.runs.run_options("dask", False) == {
                "engine": "dask", "use_cache": False, "scheduler": local.scheduler_address}
            assert (await m.cluster_model())["scheduler_address"] == local.scheduler_address
            await m.close()

    run(main())


def test_a_dask_run_without_a_server_cluster_is_sampled_with_a_cluster_of_its_own(root):
    nb = make_notebook(root, [("import time", ["imports"]), ("time.sleep(1.5)\na = 1", ["step:a"])], name="nb")
    samples = []

    async def main():
        m = NbscaleManager(root, sample_interval_s=0.2)
        m.events.subscribe(lambda e: samples.append((time.monotonic(), e["payload"])) if e["type"] == "cluster"
                           else None)
        summary = await m.runs.start(nb.resolve(), engine="dask")
        detail = await wait_finished(m, nb.resolve(), summary["run_id"])
        await m.close()
        return detail

    assert run(main())["status"] == SUCCEEDED
    own = [s for _, s in samples if s.get("kind") == "run"]
    assert own and own[-1]["status"] == "running" and own[-1]["workers"]
    assert own[-1]["scheduler_address"].startswith("tcp://")
    gaps = [b - a for (a, _), (b, _) in zip(samples, samples[1:])]
    assert gaps and max(gaps) < 1.0  # at least one sample a second while the run is active


def test_while_a_run_is_active_subscribers_get_its_events_and_cluster_samples(root):
    nb = make_notebook(root, [("import time", ["imports"]), ("time.sleep(1)\na = 1", ["step:a"])], name="nb")
    events = []

    async def main():
        m = NbscaleManager(root, default_engine="local", sample_interval_s=0.2)
        m.events.subscribe(events.append, nb.resolve())
        summary = await m.runs.start(nb.resolve())
        await wait_finished(m, nb.resolve(), summary["run_id"])
        await asyncio.sleep(0.1)  # the final events travel through the loop
        await m.close()
        return summary

    run_id = run(main())["run_id"]
    assert [e["status"] for e in events if e["type"] == "run"] == ["pending", "running", SUCCEEDED]
    assert all(e["run_id"] == run_id for e in events if e["type"] != "cluster")
    samples = [e["payload"] for e in events if e["type"] == "cluster"]
    assert len(samples) >= 3 and all(s == {"status": "none"} for s in samples)


def test_runs_of_other_processes_are_pushed_to_watchers_of_the_notebook(root):
    nb = make_notebook(root, TWO_STEPS, name="nb")
    run_notebook(nb, options=RunOptions(engine="local"))  # history before watching is not replayed

    async def main():
        m = NbscaleManager(root, sample_interval_s=0.2, idle_interval_s=0.3)
        events = []
        unsubscribe = m.events.subscribe(events.append, m.notebooks.resolve("nb.ipynb"))
        await asyncio.sleep(0.8)  # the watcher notes where the store's events end
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "nbscale", "run", str(nb), "--engine", "local", "--no-cache",
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert await proc.wait() == 0
        deadline = time.time() + 10
        while time.time() < deadline and not any(e.get("payload", {}).get("kind") == "run_finished" for e in events):
            await asyncio.sleep(0.1)
        unsubscribe()
        await m.close()
        return [e for e in events if e["type"] != "cluster"]

    events = run(main())
    kinds = [(e["payload"]["kind"], e.get("step")) for e in events]
    assert kinds[:2] == [("run_created", None), ("run_started", None)] and kinds[-1] == ("run_finished", None)
    assert ("step_finished", "first") in kinds and ("step_finished", "second") in kinds
    assert len({e["run_id"] for e in events}) == 1  # only the new run
    assert events[-1]["status"] == SUCCEEDED
