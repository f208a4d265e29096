"""JSON models of the panel API (docs/api.md): built from the IR, run-store rows and scheduler info."""

from __future__ import annotations

import json

from model_keys import CLUSTER_KEYS, STEP_RUN_KEYS, SUMMARY_KEYS

from nbscale.compiler import compile_source
from nbscale.jupyter_ext import models
from nbscale.kernels.runstore import RunStore

STEP_KEYS = {"name", "cells", "inputs", "outputs", "resources", "hash"}


def _pipeline():
    return compile_source([
        ("alpha = 0.5\nname = 'x'", ["parameters"]),
        ("a = [1, 2]\nb = 3", ["step:load"]),
        ("c = sum(a) * alpha", ["step:double", "resources:cpu=2"]),
        ("d = b + 1", ["step:other"]),
        ("acc = c + d\nacc", ["step:evaluate", "metrics"]),
    ], name="demo")


def test_pipeline_model_shape_edges_and_parameters():
    model = models.pipeline_model(_pipeline().to_json(), "sub/demo.ipynb")
    assert set(model) == {"notebook", "name", "steps", "edges", "parameters", "diagnostics", "metrics"}
    assert model["notebook"] == "sub/demo.ipynb" and model["name"] == "demo"
    assert [s["name"] for s in model["steps"]] == ["load", "double", "other", "evaluate"]
    assert all(set(s) == STEP_KEYS for s in model["steps"])
    assert model["steps"][1]["resources"] == {"cpu": 2}
    assert model["steps"][1]["hash"].startswith("sha256:")
    edges = {(e["from"], e["to"]): e["names"] for e in model["edges"]}
    assert edges == {("load", "double"): ["a"], ("load", "other"): ["b"], ("double", "evaluate"): ["c"],
                     ("other", "evaluate"): ["d"]}
    assert model["parameters"] == [{"name": "alpha", "type": "float", "default": 0.5},
                                   {"name": "name", "type": "str", "default": "x"}]
    assert model["metrics"] == {"step": "evaluate", "names": ["acc"]}
    assert model["diagnostics"] == []
    json.dumps(model, allow_nan=False)


def test_pipeline_model_diagnostics_carry_cell_and_position():
    model = models.pipeline_model(compile_source([("x = undefined_thing + 1", ["step:a"])]).to_json(), "nb.ipynb")
    (diag,) = [d for d in model["diagnostics"] if d["code"] == "undefined-name"]
    assert set(diag) == {"severity", "code", "message", "cell", "line", "col", "hint"}
    assert diag["severity"] == "error" and diag["cell"] == 0 and diag["line"] == 1


def test_pipeline_model_edge_of_an_after_tag_has_no_names():
    ir = compile_source([("a = 1", ["step:first"]), ("b = 2", ["step:second", "after:first"])]).to_json()
    assert models.pipeline_model(ir, "nb.ipynb")["edges"] == [{"from": "first", "to": "second", "names": []}]


def _store_with_run(tmp_path):
    store = RunStore(tmp_path / "runs.sqlite")
    run_id = store.create_run("/abs/nb.ipynb", "nb", "local", {"alpha": 0.5}, ["a", "b", "c"])
    store.start_run(run_id)
    store.update_step(run_id, "a", status="succeeded", duration_s=0.25, attempts=1, stdout="hi\n", cached=False)
    store.update_step(run_id, "b", status="failed", attempts=2, stderr="boom", error={
        "cell": 3, "line": 2, "ename": "ZeroDivisionError", "evalue": "division by zero",
        "traceback": "Traceback...\nZeroDivisionError: division by zero", "frames": []})
    store.update_step(run_id, "c", status="upstream_failed", error="upstream failed: b")
    store.record_metrics(run_id, "a", {"acc": 0.9, "loss": float("nan")})
    store.finish_run(run_id, "failed")
    return store, run_id


def test_run_summary_and_detail(tmp_path):
    store, run_id = _store_with_run(tmp_path)
    run = store.get_run(run_id)
    summary = models.run_summary(run, "nb.ipynb")
    assert set(summary) == SUMMARY_KEYS
    assert summary["run_id"] == run_id and summary["notebook"] == "nb.ipynb"  # never the absolute path
    assert summary["parameters"] == {"alpha": 0.5} and summary["status"] == "failed"
    detail = models.run_detail(run, "nb.ipynb")
    assert set(detail) == SUMMARY_KEYS | {"steps", "metrics", "error"}
    assert all(set(s) == STEP_RUN_KEYS for s in detail["steps"])
    a, b, c = detail["steps"]
    assert (a["status"], a["duration_s"], a["attempts"], a["stdout"]) == ("succeeded", 0.25, 1, "hi\n")
    assert a["error"] is None
    assert b["error"] == {"cell": 3, "line": 2, "ename": "ZeroDivisionError", "evalue": "division by zero",
                          "traceback": "Traceback...\nZeroDivisionError: division by zero"}
    assert c["error"] == {"cell": None, "line": None, "ename": "", "evalue": "upstream failed: b", "traceback": ""}
    assert detail["metrics"] == {"acc": 0.9, "loss": None}  # NaN is not JSON
    json.dumps(detail, allow_nan=False)


def test_long_logs_keep_their_end():
    row = {"step": "a", "status": "succeeded", "stdout": "x" * (models.LOG_LIMIT + 10) + "END"}
    out = models.step_run(row)["stdout"]
    assert out.endswith("END") and "characters cut" in out and len(out) < models.LOG_LIMIT + 100


def test_metrics_model_groups_by_run(tmp_path):
    store, first = _store_with_run(tmp_path)
    second = store.create_run("/abs/nb.ipynb", "nb", "local", {}, ["a"])
    store.record_metrics(second, "a", {"acc": 0.95, "errors": 3})
    store.finish_run(second, "succeeded")
    model = models.metrics_model(store.metrics_history("/abs/nb.ipynb"))
    assert model["names"] == ["acc", "errors", "loss"]
    assert [r["run_id"] for r in model["runs"]] == [first, second]
    assert set(model["runs"][0]) == {"run_id", "created", "status", "metrics"}
    assert model["runs"][1]["metrics"] == {"acc": 0.95, "errors": 3}
    assert type(model["runs"][1]["metrics"]["errors"]) is int  # a count stays a count in the panel
    json.dumps(model, allow_nan=False)


IDENTITY = {
    "type": "Scheduler", "address": "tcp://127.0.0.1:8786", "services": {"dashboard": 8787},
    "workers": {
        "tcp://127.0.0.1:2": {"name": 1, "nthreads": 2, "memory_limit": 1000,
                              "metrics": {"cpu": 50.0, "memory": 300, "task_counts": {}}},
        "tcp://127.0.0.1:1": {"name": 0, "nthreads": 1, "memory_limit": 2000,
                              "metrics": {"cpu": 12.5, "memory": 100}},
    },
}


def test_cluster_model_sums_workers_and_tasks():
    model = models.cluster_model(IDENTITY, kind="LocalCluster",
                                 task_states={"inc": {"memory": 2, "processing": 1, "waiting": 0},
                                              "sum": {"memory": 1, "erred": 1}},
                                 adaptive={"minimum": 1, "maximum": 4}, dashboard_link="http://x/status")
    assert set(model) == CLUSTER_KEYS
    assert model["status"] == "running" and model["kind"] == "LocalCluster"
    assert model["scheduler_address"] == "tcp://127.0.0.1:8786"
    assert [w["name"] for w in model["workers"]] == ["0", "1"]
    assert set(model["workers"][0]) == {"address", "name", "nthreads", "memory_used", "memory_limit", "cpu"}
    assert (model["threads"], model["memory_used"], model["memory_limit"], model["cpu"]) == (3, 400, 3000, 62.5)
    assert model["tasks"] == {"memory": 3, "processing": 1, "waiting": 0, "erred": 1}
    assert model["adaptive"] == {"minimum": 1, "maximum": 4}
    assert model["dashboard_link"] == "http://x/status"


def test_cluster_model_of_an_empty_cluster_and_no_cluster():
    model = models.cluster_model({"address": "tcp://h:1", "workers": {}}, kind="remote")
    assert (model["workers"], model["threads"], model["cpu"], model["tasks"], model["adaptive"]) == ([], 0, 0, {}, None)
    assert models.no_cluster() == {"status": "none"}
    assert models.no_cluster("unreachable") == {"status": "none", "error": "unreachable"}


def test_events_from_runner_events():
    assert models.event("run_started", "r1", None, {"engine": "dask", "steps": 3}) == {
        "type": "run", "run_id": "r1", "status": "running",
        "payload": {"kind": "run_started", "engine": "dask", "steps": 3}}
    assert models.run_created_event("r1") == {"type": "run", "run_id": "r1", "status": "pending",
                                              "payload": {"kind": "run_created"}}
    assert models.event("run_created", "r1", None, {"run_id": "r1"}) == models.run_created_event("r1")
    finished = models.event("run_finished", "r1", None, {"status": "succeeded"})
    assert finished["type"] == "run" and finished["status"] == "succeeded" and finished["payload"]["finished"]
    started = models.event("step_started", "r1", "a", {"hash": "sha256:x", "worker": "tcp://w"})
    assert (started["type"], started["step"], started["status"]) == ("step", "a", "running")
    assert started["payload"]["worker"] == "tcp://w" and started["payload"]["started"]
    done = models.event("step_finished", "r1", "b", {
        "status": "failed", "attempts": 1, "started": 1700000000.0, "finished": 1700000001.5,
        "summary": {"wall_s": 1.5, "stdout": "lots", "displays": [{"image/png": "..."}],
                    "error": {"cell": 2, "line": 1, "ename": "E", "evalue": "v", "traceback": "tb", "frames": []}}})
    assert done["status"] == "failed" and done["payload"]["duration_s"] == 1.5
    assert done["payload"]["error"] == {"cell": 2, "line": 1, "ename": "E", "evalue": "v", "traceback": "tb"}
    assert done["payload"]["started"].startswith("2023-11-14T22:13:20")
    assert "summary" not in done["payload"] and "stdout" not in json.dumps(done)
    upstream = models.event("step_finished", "r1", "c", {"status": "upstream_failed", "error": "upstream failed: b"})
    assert upstream["payload"]["error"]["evalue"] == "upstream failed: b"
    cached = models.event("step_finished", "r1", "d", {"status": "cached"})
    assert cached["status"] == "cached" and cached["payload"]["cached"] is True and cached["payload"]["error"] is None
    warning = models.event("warning", "r1", "a", {"message": "resources gpu ignored"})
    assert warning["type"] == "step" and "status" not in warning and warning["payload"]["message"]
    for event in (finished, started, done, upstream, cached, warning):
        json.dumps(event, allow_nan=False)
