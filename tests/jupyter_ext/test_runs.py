"""Runs without HTTP: runs in their own process, the run store shared with the CLI, history, cancel,
a run process that dies, and the events of runs started here."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time

import pytest
from conftest import make_notebook
from server_parts import TWO_STEPS, run, wait_finished

from nbscale.jupyter_ext.errors import Conflict, InvalidInput, NotFound
from nbscale.jupyter_ext.events import EventHub
from nbscale.jupyter_ext.notebooks import Notebooks
from nbscale.jupyter_ext.runs import Runs
from nbscale.kernels.contract import (
    CANCELLED,
    CANCELLED_BY_USER,
    FAILED,
    OWNER_STOPPED,
    QUEUED,
    RUNNING,
    SERVER_WENT_AWAY,
    STEP_OUTPUT,
    SUCCEEDED,
    run_store_path,
)
from nbscale.kernels.errors import RunStoreCorrupt
from nbscale.kernels.runner import RunOptions, default_run_store, run_notebook

SLOW = [("import time", ["imports"]), ("a = 1", ["step:quick"]), ("time.sleep(60)\nb = a", ["step:slow"]),
        ("c = b", ["step:after"])]


def local_runs(root, **kwargs) -> Runs:
    return Runs(Notebooks(root), EventHub(), default_engine="local", **kwargs)


async def wait_step_running(runs, nb, run_id, step, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        detail = await runs.detail(nb, run_id)
        if any(s["name"] == step and s["status"] == RUNNING for s in detail["steps"]):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"step {step} never ran")


async def slow_step_running(runs, nb) -> str:
    """Start a run of SLOW; its id once its `slow` step runs."""
    run_id = (await runs.start(nb))["run_id"]
    await wait_step_running(runs, nb, run_id, "slow")
    return run_id


def test_run_in_its_own_process_shares_the_cli_run_store_and_publishes_events(root):
    nb = make_notebook(root, TWO_STEPS, name="nb").resolve()
    events = []

    async def main():
        runs = local_runs(root)
        unsubscribe = runs.events.subscribe(events.append, nb)
        summary = await runs.start(nb, parameters={"alpha": 4})
        assert summary["status"] in ("pending", RUNNING) and summary["engine"] == "local"
        assert summary["notebook"] == "nb.ipynb" and summary["parameters"] == {"alpha": 4}
        detail = await wait_finished(runs, nb, summary["run_id"])
        await asyncio.sleep(0.1)  # the final events travel through the loop
        unsubscribe()
        listed = await runs.history(nb)
        metrics = await runs.metrics(nb)
        await runs.close()
        return summary, detail, listed, metrics

    summary, detail, listed, metrics = run(main())
    assert detail["status"] == SUCCEEDED, detail
    assert [s["status"] for s in detail["steps"]] == [SUCCEEDED, SUCCEEDED]
    assert detail["steps"][0]["stdout"] == "a is 5\n"
    assert detail["metrics"] == {"b": 50.0}
    assert listed["runs"][0]["run_id"] == summary["run_id"]
    assert metrics["names"] == ["b"] and metrics["runs"][0]["metrics"] == {"b": 50.0}
    # the CLI's store holds the same run
    stored = default_run_store(nb).get_run(summary["run_id"])
    stored_events = default_run_store(nb).events_since(summary["run_id"])
    assert stored["status"] == SUCCEEDED and stored["notebook"] == str(nb)
    steps = [(e["step"], e.get("status")) for e in events if e["type"] == "step"]
    assert ("first", RUNNING) in steps and ("first", SUCCEEDED) in steps and ("second", SUCCEEDED) in steps
    # queued (its inputs ready) before running, and a step's output as it printed it, not stored
    assert steps.index(("second", QUEUED)) > steps.index(("first", SUCCEEDED))
    assert steps.index(("second", QUEUED)) < steps.index(("second", RUNNING))
    outputs = [e["payload"] for e in events if e["payload"]["kind"] == STEP_OUTPUT]
    assert {"stream": "stdout", "text": "a is 5\n"}.items() <= outputs[0].items() and outputs[0].get("kind")
    assert STEP_OUTPUT not in [e["kind"] for e in stored_events]
    run_events = [e for e in events if e["type"] == "run"]
    assert [e["payload"]["kind"] for e in run_events] == ["run_created", "run_started", "run_finished"]
    assert [e["status"] for e in run_events] == ["pending", RUNNING, SUCCEEDED]
    assert run_events[1]["payload"] == {"kind": "run_started", "engine": "local", "steps": 2}
    assert all(e["run_id"] == summary["run_id"] for e in events)


def test_cli_runs_show_up_in_the_history(root):
    nb = make_notebook(root, TWO_STEPS, name="nb").resolve()
    result = run_notebook(nb, options=RunOptions(engine="local"))

    async def main():
        runs = local_runs(root)
        return await runs.history(nb), await runs.detail(nb, result.run_id[:10])

    listed, detail = run(main())
    assert [r["run_id"] for r in listed["runs"]] == [result.run_id]
    assert detail["run_id"] == result.run_id and detail["status"] == SUCCEEDED


def test_runs_after_the_state_folder_was_removed_are_read_from_the_new_store(root):
    """The server kept the deleted store open: runs made since (`rm -rf .nbscale`) answered 404."""
    import shutil

    nb = make_notebook(root, TWO_STEPS, name="nb").resolve()
    first = run_notebook(nb, options=RunOptions(engine="local"))

    async def history():
        return [r["run_id"] for r in (await runs.history(nb))["runs"]]

    runs = local_runs(root)
    assert run(history()) == [first.run_id]
    shutil.rmtree(nb.parent / ".nbscale")
    assert run(history()) == []
    second = run_notebook(nb, options=RunOptions(engine="local"))
    assert run(history()) == [second.run_id]
    assert run(runs.detail(nb, second.run_id))["status"] == SUCCEEDED


def test_modules_beside_the_notebook_serve_its_steps_but_do_not_replace_nbscales_own(root):
    (root / "cloudpickle.py").write_text("raise RuntimeError('the run process imported this')\n")
    (root / "helper.py").write_text("VALUE = 7\n")
    nb = make_notebook(root, [("import helper\nx = helper.VALUE\nprint(x)", ["step:a"])], name="nb").resolve()

    async def main():
        runs = local_runs(root)
        summary = await runs.start(nb)
        detail = await wait_finished(runs, nb, summary["run_id"])
        await runs.close()
        return detail

    detail = run(main())
    assert detail["status"] == SUCCEEDED, detail
    assert detail["steps"][0]["stdout"] == "7\n"


def test_runs_of_a_notebook_without_a_store_are_empty_and_nothing_is_created(root):
    nb = make_notebook(root, TWO_STEPS, name="nb").resolve()
    runs = local_runs(root)
    assert run(runs.history(nb)) == {"runs": []}
    assert run(runs.metrics(nb)) == {"names": [], "runs": [], "directions": {}}
    with pytest.raises(NotFound):
        run(runs.detail(nb, "abc"))
    assert not (root / ".nbscale").exists()


def test_a_run_of_another_notebook_in_the_folder_is_not_found(root):
    nb = make_notebook(root, TWO_STEPS, name="nb").resolve()
    other = make_notebook(root, TWO_STEPS, name="other")
    result = run_notebook(other, options=RunOptions(engine="local"))
    with pytest.raises(NotFound):
        run(local_runs(root).detail(nb, result.run_id))


def test_bad_runs_are_refused_before_anything_starts(root):
    nb = make_notebook(root, TWO_STEPS, name="nb").resolve()
    broken = make_notebook(root, [("x = undefined_name + 1", ["step:a"])], name="broken").resolve()
    runs = local_runs(root)
    with pytest.raises(InvalidInput) as err:
        run(runs.start(broken))
    assert err.value.detail["diagnostics"][0]["code"] == "undefined-name"
    with pytest.raises(InvalidInput, match="unknown parameter"):
        run(runs.start(nb, parameters={"nope": 1}))
    with pytest.raises(InvalidInput, match="parameter 'alpha' is int"):
        run(runs.start(nb, parameters={"alpha": [1]}))
    with pytest.raises(InvalidInput, match="unknown engine"):
        run(runs.start(nb, engine="warp"))
    assert not (root / ".nbscale").exists()


def test_cancel_stops_the_run_process_and_marks_the_run_cancelled(root):
    nb = make_notebook(root, SLOW, name="slow").resolve()

    async def main():
        runs = local_runs(root)
        run_id = await slow_step_running(runs, nb)
        started = time.monotonic()
        answer = await runs.cancel(nb, run_id)
        detail = await wait_finished(runs, nb, run_id)
        took = time.monotonic() - started
        with pytest.raises(Conflict, match="already cancelled"):
            await runs.cancel(nb, run_id)
        await runs.close()
        return answer, detail, took

    answer, detail, took = run(main())
    assert answer["status"] == RUNNING
    assert detail["status"] == CANCELLED and detail["error"] == CANCELLED_BY_USER and took < 10
    assert [s["status"] for s in detail["steps"]] == [SUCCEEDED, CANCELLED, CANCELLED]


def test_a_run_the_closing_server_stops_is_cancelled_for_that_not_by_the_user(root):
    nb = make_notebook(root, SLOW, name="slow").resolve()

    async def main():
        runs = local_runs(root)
        run_id = await slow_step_running(runs, nb)
        await runs.close()
        return default_run_store(nb).get_run(run_id)

    stopped = run(main())
    assert stopped["status"] == CANCELLED and stopped["error"] == SERVER_WENT_AWAY, stopped


def test_a_run_whose_step_ignores_the_closing_servers_cancel_is_killed_after_the_configured_grace(root):
    # the step swallows the cancel's Ctrl-C; it says so once the cancel can no longer stop it
    stubborn = [("import time", ["imports"]),
                ("for _ in range(600):\n    try:\n        open('swallowing', 'w').close()\n        time.sleep(1)\n"
                 "    except BaseException:\n        pass", ["step:slow"])]
    nb = make_notebook(root, stubborn, name="stubborn").resolve()

    async def main():
        runs = local_runs(root, cancel_grace_s=6.0)
        run_id = (await runs.start(nb))["run_id"]
        deadline = time.monotonic() + 30
        while not (root / "swallowing").exists():
            assert time.monotonic() < deadline, "the step never swallowed"
            await asyncio.sleep(0.05)
        process = runs.process(run_id).proc
        started = time.monotonic()
        await runs.close()
        return time.monotonic() - started, process, default_run_store(nb).get_run(run_id)

    took, process, stopped = run(main())
    assert process.poll() == -signal.SIGKILL and took >= 6.0
    assert stopped["status"] == CANCELLED and stopped["error"] == SERVER_WENT_AWAY, stopped


def test_a_run_process_that_dies_leaves_a_failed_run(root):
    nb = make_notebook(root, SLOW, name="slow").resolve()
    events = []

    async def main():
        runs = local_runs(root)
        runs.events.subscribe(events.append)
        run_id = await slow_step_running(runs, nb)
        runs.process(run_id).proc.kill()
        detail = await wait_finished(runs, nb, run_id)
        await runs.close()
        return detail

    detail = run(main())
    assert detail["status"] == FAILED and "exit code" in detail["error"]
    assert [s["status"] for s in detail["steps"]] == [SUCCEEDED, FAILED, CANCELLED]
    # the process could not say so: the server tells the subscribers the run ended
    assert events[-1]["payload"]["kind"] == "run_finished" and events[-1]["status"] == FAILED


def test_runs_not_started_here_cannot_be_cancelled_here(root):
    nb = make_notebook(root, TWO_STEPS, name="nb").resolve()
    store = default_run_store(nb)
    run_id = store.create_run(str(nb), "nb", "dask", {}, ["first", "second"])
    store.start_run(run_id)
    with pytest.raises(Conflict, match="not started by this server"):
        run(local_runs(root).cancel(nb, run_id))


def test_dask_runs_use_the_servers_cluster_when_there_is_one(root):
    scheduler = {"address": None}

    async def scheduler_for_runs():
        return scheduler["address"]

    runs = local_runs(root, scheduler_for_runs=scheduler_for_runs)
    assert run(runs.run_options("dask")) == {"engine": "dask", "use_cache": True}
    scheduler["address"] = "tcp://10.0.0.1:8786"
    assert run(runs.run_options("dask", False)) == {"engine": "dask", "use_cache": False,
                                                     "scheduler": "tcp://10.0.0.1:8786"}
    assert run(runs.run_options("local")) == {"engine": "local", "use_cache": True}


def test_store_events_of_other_processes_are_published_from_where_watching_began(root):
    nb = make_notebook(root, TWO_STEPS, name="nb").resolve()
    run_notebook(nb, options=RunOptions(engine="local"))  # history before watching is not replayed
    events = []

    async def main():
        runs = local_runs(root)
        runs.events.subscribe(events.append, nb)
        assert await runs.publish_store_events({nb}) is False  # notes where the store's events end
        result = await asyncio.to_thread(run_notebook, nb, None, RunOptions(engine="local", use_cache=False))
        assert await runs.publish_store_events({nb}) is True
        assert await runs.publish_store_events({nb}) is False
        return result

    result = run(main())
    kinds = [(e["payload"]["kind"], e.get("step")) for e in events]
    assert kinds[:2] == [("run_created", None), ("run_started", None)] and kinds[-1] == ("run_finished", None)
    assert ("step_finished", "first") in kinds and ("step_finished", "second") in kinds
    assert {e["run_id"] for e in events} == {result.run_id}
    assert events[1]["payload"] == {"kind": "run_started", "engine": "local", "steps": 2}


def test_a_cli_run_whose_process_was_killed_ends_failed_in_the_panel_within_seconds(root):
    nb = make_notebook(root, SLOW, name="slow").resolve()
    proc = subprocess.Popen([sys.executable, "-m", "nbscale", "run", str(nb), "--engine", "local"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=root)
    events = []

    async def main():
        runs = local_runs(root)
        runs.events.subscribe(events.append, nb)
        deadline = time.monotonic() + 60
        while not (await runs.history(nb))["runs"] and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        run_id = (await runs.history(nb))["runs"][0]["run_id"]
        await wait_step_running(runs, nb, run_id, "slow", timeout=60)
        await runs.publish_store_events({nb})  # watching from here
        proc.kill()
        proc.wait()
        deadline = time.monotonic() + 30  # the samples of a watched notebook read its store
        while not any(e["payload"]["kind"] == "run_finished" for e in events) and time.monotonic() < deadline:
            await runs.publish_store_events({nb})
            await asyncio.sleep(0.2)
        detail = await runs.detail(nb, run_id)
        await runs.close()
        return detail

    try:
        detail = run(main())
    finally:
        proc.kill()
        proc.wait()
    assert detail["status"] == FAILED and detail["error"] == OWNER_STOPPED
    assert [s["status"] for s in detail["steps"]] == [SUCCEEDED, FAILED, CANCELLED]
    finished = [e for e in events if e["payload"]["kind"] == "run_finished"]
    assert [e["status"] for e in finished] == [FAILED]


def test_a_damaged_run_store_is_reported_as_such_not_as_a_missing_run(root):
    nb = make_notebook(root, TWO_STEPS, name="nb").resolve()
    run_store_path(nb).parent.mkdir()
    run_store_path(nb).write_bytes(b"not a database " * 100)
    runs = local_runs(root)
    with pytest.raises(RunStoreCorrupt, match="nbscale runs --repair"):
        run(runs.history(nb))
    with pytest.raises(RunStoreCorrupt):
        run(runs.detail(nb, "abc"))


def test_the_detail_of_a_finished_run_has_its_regressions_and_cost(root):
    nb = make_notebook(root, TWO_STEPS, name="nb").resolve()
    first = run_notebook(nb, {"alpha": 2}, RunOptions(engine="local"))
    worse = run_notebook(nb, {"alpha": 1}, RunOptions(engine="local"))  # b falls from 30 to 20
    cached = run_notebook(nb, {"alpha": 1}, RunOptions(engine="local"))

    async def main():
        runs = local_runs(root)
        return [await runs.detail(nb, r.run_id) for r in (first, worse, cached)]

    first_detail, worse_detail, cached_detail = run(main())
    assert first_detail["regressions"]["regressed"] == [] and first_detail["cost"]["total"]["cpu_s"] > 0
    assert worse_detail["regressions"]["regressed"] == ["b"]
    assert worse_detail["regressions"]["metrics"][0]["previous"]["run_id"] == first.run_id
    assert {d["regressions"]["notebook"] for d in (first_detail, worse_detail)} == {"nb.ipynb"}  # never absolute
    assert cached_detail["cost"]["total"]["saved_s"] > 0 and cached_detail["cost"]["total"]["saved_cost"] > 0
    (root / "pyproject.toml").write_text("[tool.nbscale.cost]\ncore_hour = -1\n")
    broken = run(local_runs(root).detail(nb, first.run_id))
    assert "core_hour must be a number ≥ 0" in broken["insights_error"] and broken["status"] == SUCCEEDED
    assert broken["insights_error"].startswith("pyproject.toml [tool.nbscale.cost]"), "named relative to the root"
    # a project file above the server's root is not the server's to read
    (root / "pyproject.toml").unlink()
    (root.parent / "pyproject.toml").write_text("[tool.nbscale.cost]\ncore_hour = -1\n")
    try:
        above = run(local_runs(root).detail(nb, first.run_id))
    finally:
        (root.parent / "pyproject.toml").unlink()
    assert "insights_error" not in above and above["cost"]["total"]["cpu_s"] > 0
