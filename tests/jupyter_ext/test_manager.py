"""NbscaleManager without HTTP: paths, runs in their own process, the shared run store, cancel,
events and cluster samples."""

from __future__ import annotations

import asyncio
import json
import os
import time
from types import SimpleNamespace

import pytest
from conftest import make_notebook

from nbscale.jupyter_ext.manager import (
    BadRequest,
    Conflict,
    Forbidden,
    NbscaleManager,
    NotFound,
    redact_url,
)
from nbscale.kernels.runner import RunOptions, default_run_store, run_notebook

TWO_STEPS = [
    ("alpha = 2", ["parameters"]),
    ("a = alpha + 1\nprint('a is', a)", ["step:first"]),
    ("b = a * 10\nb", ["step:second", "metrics"]),
]


def run(coro):
    return asyncio.run(coro)


@pytest.fixture
def root(tmp_path):
    (tmp_path / "root").mkdir()
    return tmp_path / "root"


async def wait_finished(manager, path, run_id, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        detail = await manager.run_detail(path, run_id)
        if detail["status"] in ("succeeded", "failed", "cancelled") and run_id not in manager.active_runs():
            return detail
        await asyncio.sleep(0.05)
    raise AssertionError(f"run {run_id} did not finish: {detail['status']}")


async def wait_step_running(manager, path, run_id, step, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        detail = await manager.run_detail(path, run_id)
        if any(s["name"] == step and s["status"] == "running" for s in detail["steps"]):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"step {step} never ran")


# --- paths ----------------------------------------------------------------------------------------


def test_notebook_paths_are_confined_to_the_root(root, tmp_path):
    (root / "sub").mkdir()
    make_notebook(root / "sub", TWO_STEPS, name="nb")
    make_notebook(tmp_path, TWO_STEPS, name="outside")
    (root / "notes.txt").write_text("x")
    (root / ".hidden").mkdir()
    make_notebook(root / ".hidden", TWO_STEPS, name="h")
    os.symlink(tmp_path / "outside.ipynb", root / "link.ipynb")
    m = NbscaleManager(root)
    assert m.notebook_path("sub/nb.ipynb") == root / "sub" / "nb.ipynb"
    assert m.notebook_path("sub/../sub/nb.ipynb") == root / "sub" / "nb.ipynb"
    assert m.notebook_path(str(root / "sub" / "nb.ipynb")) == root / "sub" / "nb.ipynb"  # absolute, inside
    for bad in ("../outside.ipynb", "sub/../../outside.ipynb", str(tmp_path / "outside.ipynb"), "link.ipynb",
                "/etc/passwd.ipynb", ".hidden/h.ipynb"):
        with pytest.raises(Forbidden):
            m.notebook_path(bad)
    with pytest.raises(BadRequest):
        m.notebook_path("")
    with pytest.raises(BadRequest):
        m.notebook_path("notes.txt")
    with pytest.raises(NotFound):
        m.notebook_path("missing.ipynb")
    assert NbscaleManager(root, allow_hidden=True).notebook_path(".hidden/h.ipynb").name == "h.ipynb"
    assert m.api_path(root / "sub" / "nb.ipynb") == "sub/nb.ipynb"


def test_pipeline_model_of_a_notebook(root):
    make_notebook(root, TWO_STEPS, name="nb")
    model = run(NbscaleManager(root).pipeline("nb.ipynb"))
    assert model["notebook"] == "nb.ipynb" and [s["name"] for s in model["steps"]] == ["first", "second"]
    assert model["edges"] == [{"from": "first", "to": "second", "names": ["a"]}]


def test_unreadable_notebook_is_a_bad_request(root):
    (root / "broken.ipynb").write_text("{not json")
    with pytest.raises(BadRequest):
        run(NbscaleManager(root).pipeline("broken.ipynb"))


# --- runs -----------------------------------------------------------------------------------------


def test_run_in_its_own_process_shares_the_cli_run_store_and_streams_events(root):
    nb = make_notebook(root, TWO_STEPS, name="nb")
    events = []

    async def main():
        m = NbscaleManager(root, default_engine="local", sample_interval_s=0.25)
        unsubscribe = m.subscribe(events.append, m.notebook_path("nb.ipynb"))
        summary = await m.start_run("nb.ipynb", parameters={"alpha": 4})
        assert summary["status"] in ("pending", "running") and summary["engine"] == "local"
        assert summary["notebook"] == "nb.ipynb" and summary["parameters"] == {"alpha": 4}
        detail = await wait_finished(m, "nb.ipynb", summary["run_id"])
        await asyncio.sleep(0.1)  # the final events travel through the loop
        unsubscribe()
        listed = await m.list_runs("nb.ipynb")
        metrics = await m.metrics("nb.ipynb")
        await m.close()
        return summary, detail, listed, metrics

    summary, detail, listed, metrics = run(main())
    assert detail["status"] == "succeeded", detail
    assert [s["status"] for s in detail["steps"]] == ["succeeded", "succeeded"]
    assert detail["steps"][0]["stdout"] == "a is 5\n"
    assert detail["metrics"] == {"b": 50.0}
    assert listed["runs"][0]["run_id"] == summary["run_id"]
    assert metrics["names"] == ["b"] and metrics["runs"][0]["metrics"] == {"b": 50.0}
    # the CLI's store holds the same run
    stored = default_run_store(nb).get_run(summary["run_id"])
    assert stored["status"] == "succeeded" and stored["notebook"] == str(nb.resolve())
    steps = [(e["step"], e["status"]) for e in events if e["type"] == "step"]
    assert ("first", "running") in steps and ("first", "succeeded") in steps and ("second", "succeeded") in steps
    runs = [e["status"] for e in events if e["type"] == "run"]
    assert runs[0] == "pending" and "running" in runs and runs[-1] == "succeeded"
    assert all(e["run_id"] == summary["run_id"] for e in events if e["type"] != "cluster")
    assert any(e["type"] == "cluster" and e["payload"] == {"status": "none"} for e in events)


def test_cli_runs_show_up_in_the_manager(root):
    nb = make_notebook(root, TWO_STEPS, name="nb")
    result = run_notebook(nb, options=RunOptions(engine="local"))

    async def main():
        m = NbscaleManager(root)
        return await m.list_runs("nb.ipynb"), await m.run_detail("nb.ipynb", result.run_id[:10])

    listed, detail = run(main())
    assert [r["run_id"] for r in listed["runs"]] == [result.run_id]
    assert detail["run_id"] == result.run_id and detail["status"] == "succeeded"


def test_modules_beside_the_notebook_serve_its_steps_but_do_not_replace_nbscales_own(root):
    (root / "cloudpickle.py").write_text("raise RuntimeError('the run process imported this')\n")
    (root / "helper.py").write_text("VALUE = 7\n")
    make_notebook(root, [("import helper\nx = helper.VALUE\nprint(x)", ["step:a"])], name="nb")

    async def main():
        m = NbscaleManager(root, default_engine="local")
        summary = await m.start_run("nb.ipynb")
        detail = await wait_finished(m, "nb.ipynb", summary["run_id"])
        await m.close()
        return detail

    detail = run(main())
    assert detail["status"] == "succeeded", detail
    assert detail["steps"][0]["stdout"] == "7\n"


def test_runs_of_a_notebook_without_a_store_are_empty_and_nothing_is_created(root):
    make_notebook(root, TWO_STEPS, name="nb")
    m = NbscaleManager(root)
    assert run(m.list_runs("nb.ipynb")) == {"runs": []}
    assert run(m.metrics("nb.ipynb")) == {"names": [], "runs": []}
    with pytest.raises(NotFound):
        run(m.run_detail("nb.ipynb", "abc"))
    assert not (root / ".nbscale").exists()


def test_a_run_of_another_notebook_in_the_folder_is_not_found(root):
    make_notebook(root, TWO_STEPS, name="nb")
    other = make_notebook(root, TWO_STEPS, name="other")
    result = run_notebook(other, options=RunOptions(engine="local"))
    with pytest.raises(NotFound):
        run(NbscaleManager(root).run_detail("nb.ipynb", result.run_id))


def test_bad_runs_are_refused_before_anything_starts(root):
    make_notebook(root, TWO_STEPS, name="nb")
    make_notebook(root, [("x = undefined_name + 1", ["step:a"])], name="broken")
    m = NbscaleManager(root)
    with pytest.raises(BadRequest) as err:
        run(m.start_run("broken.ipynb", engine="local"))
    assert err.value.detail["diagnostics"][0]["code"] == "undefined-name"
    with pytest.raises(BadRequest, match="unknown parameter"):
        run(m.start_run("nb.ipynb", engine="local", parameters={"nope": 1}))
    with pytest.raises(BadRequest, match="parameter 'alpha' is int"):
        run(m.start_run("nb.ipynb", engine="local", parameters={"alpha": [1]}))
    with pytest.raises(BadRequest, match="unknown engine"):
        run(m.start_run("nb.ipynb", engine="warp"))
    with pytest.raises(BadRequest):
        run(m.start_run("nb.ipynb", engine="local", parameters=[1]))
    assert not (root / ".nbscale").exists()


SLOW = [("import time", ["imports"]), ("a = 1", ["step:quick"]), ("time.sleep(60)\nb = a", ["step:slow"]),
        ("c = b", ["step:after"])]


def test_cancel_stops_the_run_process_and_marks_the_run_cancelled(root):
    make_notebook(root, SLOW, name="slow")

    async def main():
        m = NbscaleManager(root, default_engine="local")
        summary = await m.start_run("slow.ipynb")
        await wait_step_running(m, "slow.ipynb", summary["run_id"], "slow")
        started = time.monotonic()
        answer = await m.cancel_run("slow.ipynb", summary["run_id"])
        detail = await wait_finished(m, "slow.ipynb", summary["run_id"])
        took = time.monotonic() - started
        with pytest.raises(Conflict, match="already cancelled"):
            await m.cancel_run("slow.ipynb", summary["run_id"])
        await m.close()
        return answer, detail, took

    answer, detail, took = run(main())
    assert answer["status"] == "running"
    assert detail["status"] == "cancelled" and took < 10
    assert [s["status"] for s in detail["steps"]] == ["succeeded", "cancelled", "cancelled"]


def test_a_run_process_that_dies_leaves_a_failed_run(root):
    make_notebook(root, SLOW, name="slow")

    async def main():
        m = NbscaleManager(root, default_engine="local")
        summary = await m.start_run("slow.ipynb")
        await wait_step_running(m, "slow.ipynb", summary["run_id"], "slow")
        m._runs[summary["run_id"]].proc.kill()
        detail = await wait_finished(m, "slow.ipynb", summary["run_id"])
        await m.close()
        return detail

    detail = run(main())
    assert detail["status"] == "failed" and "exit code" in detail["error"]
    assert [s["status"] for s in detail["steps"]] == ["succeeded", "failed", "cancelled"]


def test_runs_not_started_here_cannot_be_cancelled_here(root):
    nb = make_notebook(root, TWO_STEPS, name="nb")
    store = default_run_store(nb)
    run_id = store.create_run(str(nb.resolve()), "nb", "dask", {}, ["first", "second"])
    store.start_run(run_id)
    with pytest.raises(Conflict, match="not started by this server"):
        run(NbscaleManager(root).cancel_run("nb.ipynb", run_id))


def test_dask_runs_use_the_servers_cluster_when_there_is_one(root):
    m = NbscaleManager(root)
    assert run(m.run_options("dask")) == {"engine": "dask", "use_cache": True}
    m._cluster = SimpleNamespace(address="tcp://10.0.0.1:8786")
    assert run(m.run_options("dask", False)) == {"engine": "dask", "use_cache": False,
                                                   "scheduler": "tcp://10.0.0.1:8786"}
    assert run(m.run_options("local")) == {"engine": "local", "use_cache": True}


def test_a_dask_run_without_a_server_cluster_reports_samples_of_its_own(root):
    make_notebook(root, [("import time", ["imports"]), ("time.sleep(1.5)\na = 1", ["step:a"])], name="nb")
    samples = []

    async def main():
        m = NbscaleManager(root, sample_interval_s=0.2)
        m.subscribe(lambda e: samples.append((time.monotonic(), e["payload"])) if e["type"] == "cluster" else None)
        summary = await m.start_run("nb.ipynb", engine="dask")
        detail = await wait_finished(m, "nb.ipynb", summary["run_id"], timeout=60)
        await m.close()
        return detail

    assert run(main())["status"] == "succeeded"
    own = [s for _, s in samples if s.get("kind") == "run"]
    assert own and own[-1]["status"] == "running" and own[-1]["workers"]
    assert own[-1]["scheduler_address"].startswith("tcp://")
    gaps = [b - a for (a, _), (b, _) in zip(samples, samples[1:])]
    assert gaps and max(gaps) < 1.0  # at least one sample a second while the run is active


# --- cluster without one ----------------------------------------------------------------------------


def test_cluster_calls_without_a_cluster(root):
    m = NbscaleManager(root)
    assert run(m.cluster()) == {"status": "none"}
    for body in ({"action": "scale", "n": 2}, {"action": "adapt", "minimum": 1, "maximum": 2}, {"action": "close"}):
        with pytest.raises(Conflict):
            run(m.cluster_action(body))
    for body in ({"action": "scale", "n": -1}, {"action": "scale"}, {"action": "adapt", "minimum": 3, "maximum": 2},
                 {"action": "fly"}, {"action": "connect", "address": ""}, {"action": "scale", "n": True}):
        with pytest.raises(BadRequest):
            run(m.cluster_action(body))


def test_an_unreachable_configured_scheduler_is_reported_not_raised(root):
    m = NbscaleManager(root, scheduler_address="tcp://127.0.0.1:9", connect_timeout_s=0.5)
    model = run(m.cluster())
    assert model["status"] == "none" and "tcp://127.0.0.1:9" in model["error"]


def test_kfp_submit_without_a_host_is_a_bad_request(root):
    make_notebook(root, TWO_STEPS, name="nb")
    with pytest.raises(BadRequest, match="no KFP host"):
        run(NbscaleManager(root).kfp_submit("nb.ipynb", {}, "e", "r"))


def test_redact_url_drops_credentials():
    assert redact_url("https://user:s3cret@kfp.example.com:8443/pipeline?token=abc#x") == \
        "https://kfp.example.com:8443/pipeline"
    assert redact_url(None) == ""


def test_kfp_submit_reaches_the_api_stand_in_with_typed_parameters(root, monkeypatch):
    """Submits to the KFP v2beta1 stand-in of tests/kfp_stand_in.py (no KFP server can run here)."""
    from kfp_stand_in import KfpStandIn

    monkeypatch.setenv("NBSCALE_KFP_TOKEN", "tok-SECRET-server")
    make_notebook(root, [("k = 2", ["parameters"]), ("x = k", ["step:a"])], name="p")
    with KfpStandIn() as stand_in:
        m = NbscaleManager(root, kfp_host=stand_in.url)
        result = run(m.kfp_submit("p.ipynb", {"k": "5"}, experiment="exp", run_name="r1"))
        assert result["run_url"].endswith(result["run_id"]) and result["experiment"] == "exp"
        (submitted,) = stand_in.runs
        assert "tok-SECRET-server" not in json.dumps(result)
        assert stand_in.requests[-1]["headers"].get("authorization") == "Bearer tok-SECRET-server"
        assert "5" in json.dumps(submitted)  # the typed parameter value reached the run
        with pytest.raises(BadRequest, match="unknown parameter"):
            run(m.kfp_submit("p.ipynb", {"nope": 1}))


def test_runs_of_other_processes_are_pushed_to_watchers_of_the_notebook(root):
    import subprocess
    import sys

    nb = make_notebook(root, TWO_STEPS, name="nb")
    run_notebook(nb, options=RunOptions(engine="local"))  # history before watching is not replayed

    async def main():
        m = NbscaleManager(root, sample_interval_s=0.2, idle_interval_s=0.3)
        events = []
        unsubscribe = m.subscribe(events.append, m.notebook_path("nb.ipynb"))
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
    assert kinds[0] == ("run_started", None) and kinds[-1] == ("run_finished", None)
    assert ("step_finished", "first") in kinds and ("step_finished", "second") in kinds
    assert len({e["run_id"] for e in events}) == 1  # only the new run
    assert events[-1]["status"] == "succeeded"
