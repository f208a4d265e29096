"""Dask collections in steps, on real clusters: handed on as graphs (never stored), computed on the
cluster from inside the step when the workers declare the step resource, in the step's own
process when they do not; the results equal the top-to-bottom ones."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import numpy as np
from conftest import make_notebook
from distributed import LocalCluster

from nbscale.kernels.contract import STEP_PROGRESS
from nbscale.kernels.runner import RunOptions, default_run_store, run_notebook
from nbscale.kernels.store import ArtifactStore

ROWS = 200_000
CELLS = [
    ("import numpy as np\nimport pandas as pd\nimport dask.dataframe as dd\nfrom distributed import get_worker",
     ["imports"]),
    (f"frame = pd.DataFrame({{'k': np.arange({ROWS}) % 10, 'x': np.arange({ROWS}, dtype=float)}})\n"
     "ddf = dd.from_pandas(frame, npartitions=8)", ["step:make"]),
    ("means = ddf.groupby('k').x.mean().compute()\n"
     "workers = sorted(set(ddf.map_partitions(lambda p: pd.Series([get_worker().address] * len(p))).compute()))",
     ["step:agg"]),
]


def _expected():
    import numpy as np
    import pandas as pd

    frame = pd.DataFrame({"k": np.arange(ROWS) % 10, "x": np.arange(ROWS, dtype=float)})
    return frame.groupby("k").x.mean()


def test_a_collection_is_computed_on_every_worker_of_the_embedded_cluster(tmp_path):
    nb = make_notebook(tmp_path, CELLS)
    result = run_notebook(nb, options=RunOptions(engine="dask", workers=2))
    assert result.ok, [s.get("error") for s in result.steps]
    agg = result.load("agg")
    assert agg["means"].sort_index().equals(_expected())
    assert len(agg["workers"]) == 2  # the graph's tasks ran on both workers, not in the step's process
    manifest = ArtifactStore(result.store_url).manifest(result.hashes["make"])
    assert "ddf" not in manifest["outputs"]  # a graph is handed on, never written to the store


def test_a_step_that_reads_a_collection_runs_every_time_and_gives_the_same_values(tmp_path):
    nb = make_notebook(tmp_path, CELLS)
    first = run_notebook(nb, options=RunOptions(engine="dask", workers=2))
    again = run_notebook(nb, options=RunOptions(engine="dask", workers=2))
    # its inputs are read when it computes: no key can vouch for them, so nothing is cached
    assert {s["name"]: s["status"] for s in again.steps} == {"make": "succeeded", "agg": "succeeded"}
    assert again.load("agg")["means"].equals(first.load("agg")["means"])
    # and the run says why the step that makes it runs again (not "no stored result")
    stale = next(s["stale"] for s in again.steps if s["name"] == "make")
    assert stale == ["ddf is a Dask collection: handed on as a graph and never stored, so this step and the "
                     "steps that read it run every time"], again.steps


SIBLINGS = [*CELLS[:2], ("a = float(ddf.x.sum().compute())", ["step:a"]),
            ("b = float(ddf.x.mean().compute())", ["step:b"])]


def _run_cli(nb, *args) -> dict:
    """`nbscale run` in its own process: a deadlock fails the test at the timeout instead of hanging it."""
    done = subprocess.run([sys.executable, "-m", "nbscale", "run", str(nb), "--output", "json", *args],
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def test_sibling_steps_computing_collections_on_one_worker_do_not_wait_for_each_other(tmp_path):
    # a seceded step used to let its sibling take the worker's one thread: each waited for the other
    nb = make_notebook(tmp_path, SIBLINGS)
    run = _run_cli(nb, "--workers", "1")
    assert {s["name"]: s["status"] for s in run["steps"]} == {"make": "succeeded", "a": "succeeded", "b": "succeeded"}


def test_on_one_worker_without_the_step_resource_siblings_compute_in_their_own_process(tmp_path):
    nb = make_notebook(tmp_path, SIBLINGS)
    with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None, silence_logs=logging.ERROR) as cluster:
        run = _run_cli(nb, "--scheduler", cluster.scheduler_address)
    assert {s["status"] for s in run["steps"]} == {"succeeded"}


def test_on_workers_without_the_step_resource_the_step_computes_in_its_own_process(tmp_path):
    nb = make_notebook(tmp_path, CELLS)
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None, silence_logs=logging.ERROR) as cluster:
        result = run_notebook(nb, options=RunOptions(engine="dask", scheduler=cluster.scheduler_address))
    assert result.ok, [s.get("error") for s in result.steps]
    agg = result.load("agg")
    assert agg["means"].sort_index().equals(_expected()) and len(agg["workers"]) == 1


def test_workers_forked_from_a_process_with_a_default_client_still_compute(tmp_path):
    # a kernel that made a Client() has `scheduler: dask.distributed` in its Dask config; the
    # embedded cluster's workers inherit it and used to fail with "no Client active"
    import dask

    nb = make_notebook(tmp_path, CELLS)
    with dask.config.set(scheduler="dask.distributed"):
        result = run_notebook(nb, options=RunOptions(engine="dask", workers=2))
    assert result.ok, [s.get("error") for s in result.steps]
    assert result.load("agg")["means"].sort_index().equals(_expected())


SLOW = [
    ("import time\nimport numpy as np\nimport pandas as pd\nimport dask.dataframe as dd", ["imports"]),
    ("ddf = dd.from_pandas(pd.DataFrame({'x': np.arange(1600.0)}), npartitions=16)", ["step:make"]),
    ("def slow(part):\n    time.sleep(0.2)\n    return part\n\n"
     "total = float(ddf.map_partitions(slow).x.sum().compute())", ["step:agg"]),
    ("plain = sum(range(10))", ["step:plain"]),
]


def test_a_step_computing_a_collection_on_the_cluster_shows_its_progress(tmp_path):
    nb = make_notebook(tmp_path, SLOW)
    events = []
    result = run_notebook(nb, options=RunOptions(engine="dask", workers=2),
                          on_event=lambda kind, step, payload: events.append((kind, step, payload)))
    assert result.ok, [s.get("error") for s in result.steps]
    assert result.load("agg")["total"] == float(np.arange(1600.0).sum())
    progress = [p for kind, step, p in events if kind == STEP_PROGRESS and step == "agg"]
    done = [p["done"] for p in progress]
    assert len(progress) >= 2 and done == sorted(done) and done[0] < done[-1], progress
    assert progress[-1]["done"] == progress[-1]["total"] and {p["what"] for p in progress} == {"compute"}
    # steps that compute no collection (or only build one) show none; the run store keeps none
    assert {step for kind, step, _ in events if kind == STEP_PROGRESS} == {"agg"}
    assert STEP_PROGRESS not in {e["kind"] for e in default_run_store(nb).events_since(result.run_id)}
