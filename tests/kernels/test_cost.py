"""The cost of runs, from real runs: every engine measures wall time, CPU time and peak memory
where the step ran (local, a Dask worker, a papermill kernel); a cached re-run records the time its
steps saved and prices it; prices from defaults, pyproject.toml, NBSCALE_* and flags; a step's
history flags the run where it got slower."""

import pytest
from conftest import make_notebook

from nbscale.kernels.cost import (
    DEFAULT_CORE_HOUR,
    DEFAULT_GB_HOUR,
    Prices,
    history_rows,
    load_prices,
    producing_steps,
    run_cost,
    step_history,
    stored_cost,
)
from nbscale.kernels.project_settings import SettingsError
from nbscale.kernels.runner import RunOptions, default_run_store, run_notebook
from nbscale.kernels.store import ArtifactStore

LOCAL = RunOptions(engine="local")


def busy_notebook(tmp_path, name="busy"):
    """`work` burns CPU and holds an array; `pause` makes it slower on purpose."""
    return make_notebook(tmp_path, [
        ("size = 300_000\npause = 0.0", ["parameters"]),
        ("import time\nimport numpy as np\n", ["imports"]),
        ("values = np.arange(size, dtype='float64')\ntotal = 0.0\n"
         "for _ in range(20):\n    total += float(np.sqrt(values).sum())\ntime.sleep(pause)", ["step:work"]),
        ("score = total / size", ["step:score"]),
        ("score", ["metrics"]),
    ], name=name)


def measured_steps(run):
    return {s["step"]: s for s in run["steps"]}


def test_a_local_run_is_measured_and_priced(tmp_path):
    nb = busy_notebook(tmp_path)
    result = run_notebook(nb, options=LOCAL)
    store = default_run_store(nb)
    run = store.get_run(result.run_id)
    work = measured_steps(run)["work"]
    assert work["duration_s"] > 0 and work["cpu_s"] > 0 and work["peak_rss_bytes"] > 1_000_000
    model = run_cost(run, Prices(core_hour=3600.0, gb_hour=0.0))  # 1 unit per CPU-second
    step = next(s for s in model["steps"] if s["step"] == "work")
    assert step["cost"] == pytest.approx(work["cpu_s"]) and step["saved_s"] is None
    total = model["total"]
    assert total["cpu_s"] == pytest.approx(sum(s["cpu_s"] for s in run["steps"]))
    assert total["peak_rss_bytes"] == max(s["peak_rss_bytes"] for s in run["steps"])
    assert total["cached"] == 0 and total["saved_s"] is None and total["cost"] > 0
    memory = run_cost(run, Prices(core_hour=0.0, gb_hour=3600.0))["total"]["cost"]
    assert memory == pytest.approx(sum(s["peak_rss_bytes"] / 1e9 * s["duration_s"] for s in run["steps"]))


def test_a_cached_rerun_records_the_time_and_cost_it_saved(tmp_path):
    nb = busy_notebook(tmp_path)
    first = run_notebook(nb, options=LOCAL)
    again = run_notebook(nb, options=LOCAL)
    assert {s["status"] for s in again.steps} == {"cached"}
    store = default_run_store(nb)
    produced = measured_steps(store.get_run(first.run_id))
    cached = store.get_run(again.run_id)
    for step in cached["steps"]:  # the wall time of the run that stored the result
        assert step["saved_s"] == pytest.approx(produced[step["step"]]["duration_s"], rel=0.05)
        assert step["saved_s"] > 0 and step["duration_s"] == 0.0
    key = measured_steps(cached)["work"]["hash"]
    manifest_cost = stored_cost(ArtifactStore(again.store_url), key)
    assert manifest_cost["cpu_s"] > 0 and manifest_cost["peak_rss_bytes"] > 0
    model = run_cost(cached, load_prices(nb), producing_steps(store, nb.resolve()))
    assert model["total"]["cost"] == 0.0 and model["total"]["cached"] == 3
    assert model["total"]["saved_s"] > 0 and model["total"]["saved_cost"] > 0
    work = next(s for s in model["steps"] if s["step"] == "work")
    assert work["saved_cost"] == pytest.approx(load_prices(nb).of(
        produced["work"]["cpu_s"], produced["work"]["peak_rss_bytes"], produced["work"]["duration_s"]))
    # without the run that stored it (another run store), the saving is priced as one busy core
    alone = run_cost(cached, Prices(core_hour=3600.0, gb_hour=0.0))
    assert next(s for s in alone["steps"] if s["step"] == "work")["saved_cost"] == pytest.approx(work["saved_s"])


def test_a_dask_worker_measures_cpu_and_peak_memory(tmp_path):
    nb = busy_notebook(tmp_path)
    result = run_notebook(nb, options=RunOptions(engine="dask", workers=1))
    assert result.ok, result.steps
    work = measured_steps(default_run_store(nb).get_run(result.run_id))["work"]
    assert work["duration_s"] > 0 and work["cpu_s"] > 0 and work["peak_rss_bytes"] > 1_000_000
    again = run_notebook(nb, options=LOCAL)  # its results were stored by the Dask run
    saved = measured_steps(default_run_store(nb).get_run(again.run_id))["work"]["saved_s"]
    assert saved == pytest.approx(work["duration_s"], rel=0.05)


def test_the_papermill_engine_measures_the_kernel(tmp_path):
    nb = busy_notebook(tmp_path)
    result = run_notebook(nb, options=RunOptions(engine="papermill"))
    assert result.ok, result.steps
    work = measured_steps(default_run_store(nb).get_run(result.run_id))["work"]
    assert work["duration_s"] > 0 and work["cpu_s"] > 0 and work["peak_rss_bytes"] > 1_000_000


def test_prices_come_from_defaults_pyproject_environment_and_flags(tmp_path, monkeypatch):
    nb = tmp_path / "nb.ipynb"
    monkeypatch.delenv("NBSCALE_CORE_HOUR", raising=False)
    monkeypatch.delenv("NBSCALE_GB_HOUR", raising=False)
    assert load_prices(nb) == Prices(DEFAULT_CORE_HOUR, DEFAULT_GB_HOUR)
    (tmp_path / "pyproject.toml").write_text("[tool.nbscale.cost]\ncore_hour = 0.2\ngb_hour = 1\n")
    assert load_prices(nb) == Prices(0.2, 1.0)
    monkeypatch.setenv("NBSCALE_CORE_HOUR", "0.3")
    assert load_prices(nb) == Prices(0.3, 1.0)
    assert load_prices(nb, core_hour=0.0, gb_hour=2) == Prices(0.0, 2.0)
    monkeypatch.setenv("NBSCALE_GB_HOUR", "cheap")
    with pytest.raises(SettingsError, match="NBSCALE_GB_HOUR must be a number ≥ 0, got 'cheap'"):
        load_prices(nb)
    monkeypatch.delenv("NBSCALE_GB_HOUR")
    with pytest.raises(SettingsError, match="--core-hour must be a number ≥ 0"):
        load_prices(nb, core_hour=float("inf"))
    (tmp_path / "pyproject.toml").write_text("[tool.nbscale.cost]\ncpu_hour = 0.2\n")
    with pytest.raises(SettingsError, match="unknown key.*'cpu_hour'.*known: core_hour, gb_hour"):
        load_prices(nb)


def rows(*walls, status="succeeded"):
    return [{"run_id": f"r{i}", "created": f"t{i}", "status": status if wall is not None else "cached",
             "duration_s": wall if wall is not None else 0.0, "cpu_s": wall, "peak_rss_bytes": 1}
            for i, wall in enumerate(walls)]


def test_history_flags_a_step_slower_than_its_median_before():
    out = history_rows(rows(1.0, 1.2, None, 0.9, 1.7, 5.0))
    assert [r["slower"] for r in out] == [False, False, False, False, True, True]
    assert out[2]["cached"] and out[2]["ratio"] is None  # cached runs cost nothing and set no median
    assert out[4]["median_before_s"] == pytest.approx(1.0) and out[4]["ratio"] == pytest.approx(1.7)
    assert out[1]["median_before_s"] is None  # one earlier run is not enough to call a run slower
    failed = history_rows(rows(1.0, 1.0) + rows(9.0, status="failed"))
    assert not failed[-1]["slower"]


def test_step_history_from_real_runs(tmp_path):
    nb = busy_notebook(tmp_path)
    for size in (100_000, 100_001):
        run_notebook(nb, {"size": size}, LOCAL)
    slow = run_notebook(nb, {"size": 100_002, "pause": 1.5}, LOCAL)
    run_notebook(nb, {"size": 100_002, "pause": 1.5}, LOCAL)  # cached
    history = step_history(default_run_store(nb), nb.resolve(), "work")
    assert [r["status"] for r in history] == ["cached", "succeeded", "succeeded", "succeeded"]
    assert history[1]["run_id"] == slow.run_id and history[1]["slower"]
    assert not any(r["slower"] for r in history[2:])
    assert step_history(default_run_store(nb), nb.resolve(), "work", limit=1)[0]["cached"]
    assert step_history(default_run_store(nb), nb.resolve(), "nope") == []
