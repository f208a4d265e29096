"""Chains of steps run as one Dask task (kernels/engines/dask_chains.py): which steps form a chain,
and, on a real LocalCluster, that a chain is one task whose steps are still steps of their own:
reported as each ends, failing alone, its worker's death failing the step that ran.
"""

from __future__ import annotations

import time

import pytest
from conftest import make_notebook, wait_for
from test_dask_lifecycle import limited_cluster  # noqa: F401 - 2 workers with nannies

from nbscale.kernels.contract import STEP_FINISHED, STEP_STARTED, SUCCEEDED, StepOutcome, StepSpec
from nbscale.kernels.engines.dask_chains import chains, run_chain
from nbscale.kernels.runner import RunOptions, run_notebook


def _spec(name, after=(), resources=None):
    step = {"name": name, "after": list(after), **({"resources": resources} if resources else {})}
    return StepSpec(step=step, prelude={}, metrics={}, parameters={}, hash="sha256:" + "0" * 64,
                    store_url="", cwd="", notebook="")


def _names(grouped):
    return [[spec.step["name"] for spec in chain] for chain in grouped]


# --- which steps form a chain -----------------------------------------------------------------------


def test_a_straight_line_of_steps_is_one_chain():
    specs = [_spec("a"), _spec("b", ["a"]), _spec("c", ["b"])]
    assert _names(chains(specs)) == [["a", "b", "c"]]
    assert _names(chains(specs, fuse=False)) == [["a"], ["b"], ["c"]]


def test_a_fork_and_a_join_end_chains():
    # a → b, a → c, (b, c) → d → e: b and c may run beside each other; d waits for two steps
    specs = [_spec("a"), _spec("b", ["a"]), _spec("c", ["a"]), _spec("d", ["b", "c"]), _spec("e", ["d"])]
    assert _names(chains(specs)) == [["a"], ["b"], ["c"], ["d", "e"]]


def test_a_step_read_further_down_ends_its_chain():
    # c reads a value of a as well as b's: a has two downstream steps
    specs = [_spec("a"), _spec("b", ["a"]), _spec("c", ["b", "a"])]
    assert _names(chains(specs)) == [["a"], ["b"], ["c"]]


def test_upstream_steps_outside_the_run_do_not_break_a_chain():
    # `cached` was found cached and is not planned: b and c still chain on a
    specs = [_spec("a"), _spec("b", ["a", "cached"]), _spec("c", ["b"])]
    assert _names(chains(specs)) == [["a", "b", "c"]]


def test_steps_asking_for_other_resources_are_not_chained():
    specs = [_spec("a"), _spec("b", ["a"], {"gpu": 1}), _spec("c", ["b"], {"gpu": 1}), _spec("d", ["c"])]
    assert _names(chains(specs)) == [["a"], ["b", "c"], ["d"]]


def test_a_chain_keeps_only_its_last_steps_values_and_frees_the_others_once_read():
    """The step after is the only reader of a chain step's values: each step gets its upstream
    step's values, and the task's result holds only the last step's (not every value until the run
    ends)."""
    specs = [_spec("a"), _spec("b", ["a"]), _spec("c", ["b"])]
    held = {}

    def run_one(spec, upstream):
        name = spec.step["name"]
        held[name] = {u: dict(o.values) for u, o in upstream.items()}
        return StepOutcome(name, SUCCEEDED, values={name: [name] * 3}, digests={name: "d-" + name})

    outcomes = run_chain(specs, {}, run_one, lambda *event: None)
    assert held == {"a": {}, "b": {"a": {"a": ["a"] * 3}}, "c": {"b": {"b": ["b"] * 3}}}
    assert {name: o.values for name, o in outcomes.items()} == {"a": {}, "b": {}, "c": {"c": ["c"] * 3}}
    assert {name: o.digests for name, o in outcomes.items()} == {n: {n: "d-" + n} for n in "abc"}


# --- on a real cluster ------------------------------------------------------------------------------


def _tasks_run(scheduler, run):
    """The nbscale tasks the scheduler ran during `run()`, from Dask's task stream."""
    from distributed import Client, get_task_stream

    with Client(scheduler, set_as_default=False) as client, get_task_stream(client) as stream:
        result = run()
    return result, [t["key"] for t in stream.data if str(t["key"]).startswith("nbscale-")]


def test_a_chain_runs_as_one_task_and_reports_each_step_as_it_ends(tmp_path, limited_cluster):  # noqa: F811
    cells = [("v0 = 0", ["step:s0"])]
    cells += [(f"import time\ntime.sleep(0.3)\nv{i} = v{i - 1} + 1", [f"step:s{i}"]) for i in range(1, 4)]
    notebook = make_notebook(tmp_path, cells)
    events = []

    def on_event(kind, step, payload):
        events.append((time.monotonic(), kind, step))

    options = RunOptions(scheduler=limited_cluster, use_cache=False)
    result, keys = _tasks_run(limited_cluster, lambda: run_notebook(notebook, options=options, on_event=on_event))
    assert result.status == "succeeded", result.steps
    assert result.load("s3", ["v3"]) == {"v3": 3}
    assert len(keys) == 1, keys
    # each step's end reached the run before the next step's start: reported live, not at the task's end
    seen = [(kind, step) for _, kind, step in events if kind in (STEP_STARTED, STEP_FINISHED)]
    assert seen == [(kind, f"s{i}") for i in range(4) for kind in (STEP_STARTED, STEP_FINISHED)]
    assert [s["status"] for s in result.steps] == ["succeeded"] * 4
    assert all(s["duration_s"] >= 0.3 for s in result.steps[1:])  # each step's own time, not the chain's


def test_a_failed_step_in_a_chain_fails_alone_and_stops_the_steps_after_it(tmp_path, limited_cluster):  # noqa: F811
    notebook = make_notebook(tmp_path, [("a = 1", ["step:a"]), ("b = a + 1\nraise ValueError('boom')", ["step:b"]),
                                        ("c = b + 1", ["step:c"])])
    result = run_notebook(notebook, options=RunOptions(scheduler=limited_cluster, use_cache=False))
    status = {s["name"]: s["status"] for s in result.steps}
    assert status == {"a": "succeeded", "b": "failed", "c": "upstream_failed"}
    error = result.step("b")["error"]
    # the notebook cell (from 0) and its line, as on any engine
    assert (error["ename"], error["evalue"], error["cell"], error["line"]) == ("ValueError", "boom", 1, 2)
    assert result.load("a", ["a"]) == {"a": 1}


def test_a_worker_dying_mid_chain_fails_the_step_that_ran(tmp_path, limited_cluster):  # noqa: F811
    log = tmp_path / "starts.txt"
    notebook = make_notebook(tmp_path, [
        ("a = 1", ["step:a"]),
        (f"import os\nwith open({str(log)!r}, 'a') as f:\n    f.write('start\\n')\nos._exit(3)\nb = a",
         ["step:dies"]),
        ("c = b + 1", ["step:c"]),
    ])
    result = run_notebook(notebook, options=RunOptions(scheduler=limited_cluster, use_cache=False))
    status = {s["name"]: s["status"] for s in result.steps}
    assert status == {"a": "succeeded", "dies": "failed", "c": "upstream_failed"}
    assert result.step("dies")["error"]["ename"] == "WorkerDied"
    assert "the worker running this step died" in result.step("dies")["error"]["evalue"]
    assert log.read_text().splitlines() == ["start"]  # retries: 0, so never run again
    assert result.step("c")["error"] == "upstream failed: dies"


@pytest.mark.parametrize("fuse", [True, False])
def test_chained_or_not_the_run_gives_the_same_values(tmp_path, limited_cluster, fuse):  # noqa: F811
    from nbscale.compiler import compile_notebook
    from nbscale.kernels.runner import run_pipeline

    cells = [("import numpy as np\nx = np.arange(5)", ["step:make"]), ("y = x * 2", ["step:double"]),
             ("z = int(y.sum())", ["step:total"])]
    notebook = make_notebook(tmp_path, cells)
    run = lambda: run_pipeline(compile_notebook(notebook), {}, notebook,  # noqa: E731
                               RunOptions(scheduler=limited_cluster, use_cache=False),
                               engine_options={"fuse": fuse})
    result, keys = _tasks_run(limited_cluster, run)
    assert result.status == "succeeded"
    assert result.load("total", ["z"]) == {"z": 20}
    assert len(keys) == (1 if fuse else 3)


def test_cancel_stops_the_step_of_a_chain_that_runs_and_the_rest_never_start(tmp_path, limited_cluster):  # noqa: F811
    from distributed import Client
    from test_dask_lifecycle import _cancel_cli_run, _executing, _gone

    from nbscale.kernels.runner import default_run_store

    pids, woke, later = tmp_path / "pids.txt", tmp_path / "woke.txt", tmp_path / "later.txt"
    notebook = make_notebook(tmp_path, [
        ("x = 1", ["step:first"]),
        (f"import os, time\nopen({str(pids)!r}, 'w').write(f'{{os.getpid()}} {{os.getpid()}}')\ntime.sleep(60)\n"
         f"open({str(woke)!r}, 'w').write('woke')\ny = x", ["step:sleeps"]),
        (f"open({str(later)!r}, 'w').write('ran')\nz = y", ["step:after"]),
    ])
    code, output, (worker_pid, _) = _cancel_cli_run(notebook, pids, "--scheduler", limited_cluster)
    assert code != 0, output
    with Client(limited_cluster, timeout="20s") as client:
        wait_for(lambda: not any(_executing(client).values()) and len(client.scheduler_info()["workers"]) == 2,
                 "the worker to stop executing the cancelled chain")
    assert _gone(worker_pid) and not woke.exists() and not later.exists()
    store = default_run_store(notebook)
    run = store.get_run(store.list_runs()[0]["id"])
    assert run["status"] == "cancelled"
    status = {s["step"]: s["status"] for s in run["steps"]}
    assert status["sleeps"] == "cancelled", [(s["step"], s["status"], s["error"]) for s in run["steps"]]
    assert status["first"] == "succeeded" and status["sleeps"] == "cancelled" and status["after"] != "succeeded"
    warnings = [str(e["payload"]) for e in store.events_since(run["id"]) if e["kind"] == "warning"]
    assert any("stopping step 'sleeps'" in w for w in warnings), warnings
