"""`nbscale cost RUN` and `nbscale history STEP`, on real local runs: per step and totals, what a
cached re-run saved, prices from flags and the environment, the run where a step got slower, and
clear errors (exit 2) for unknown runs, unknown steps, bad prices and a folder of several notebooks."""

import json

import pytest
from click.testing import CliRunner
from conftest import make_notebook

from nbscale.cli import main
from nbscale.kernels.runner import RunOptions, run_notebook

LOCAL = RunOptions(engine="local")


def cli(*args, env=None):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False, env=env)


def timed_notebook(tmp_path, name="timed"):
    return make_notebook(tmp_path, [
        ("pause = 0.0\nsize = 1000", ["parameters"]),
        ("import time\ndata = list(range(size))\ntime.sleep(pause)", ["step:load"]),
        ("total = sum(data)", ["step:total"]),
    ], name=name)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("cost")
    nb = timed_notebook(tmp_path)
    first = run_notebook(nb, {"pause": 0.2}, LOCAL)
    cached = run_notebook(nb, {"pause": 0.2}, LOCAL)
    return nb, first, cached


def test_cost_json_per_step_totals_and_saved(two_runs):
    nb, first, cached = two_runs
    data = json.loads(cli("cost", first.run_id[:10], "--notebook", nb, "--output", "json").stdout)
    assert data["run_id"] == first.run_id and [s["step"] for s in data["steps"]] == ["load", "total"]
    load = data["steps"][0]
    assert load["wall_s"] >= 0.2 and load["cpu_s"] > 0 and load["peak_rss_bytes"] > 0 and load["cost"] > 0
    assert data["prices"] == {"core_hour": 0.05, "gb_hour": 0.005, "unit": "units"}
    assert data["total"]["elapsed_s"] >= data["total"]["wall_s"] >= 0.2  # the run's own time covers its steps'
    again = json.loads(cli("cost", cached.run_id, "--notebook", nb, "--output", "json").stdout)
    assert again["total"]["cached"] == 2 and again["total"]["cost"] == 0.0
    assert again["total"]["saved_s"] >= 0.2 and again["total"]["saved_cost"] > 0
    assert again["steps"][0]["saved_s"] == pytest.approx(load["wall_s"], rel=0.05)


def test_cost_text_and_prices_from_flags_and_environment(two_runs):
    nb, first, cached = two_runs
    out = cli("cost", cached.run_id, "--notebook", nb).stdout
    assert f"Cost of run {cached.run_id[:12]}" in out and "2 cached step(s) saved" in out
    assert "the run took " in out
    assert "load" in out and "total" in out
    flagged = json.loads(cli("cost", first.run_id, "--notebook", nb, "--output", "json", "--core-hour", "3600",
                             "--gb-hour", "0").stdout)
    assert flagged["total"]["cost"] == pytest.approx(flagged["total"]["cpu_s"])
    by_env = json.loads(cli("cost", first.run_id, "--notebook", nb, "--output", "json",
                            env={"NBSCALE_CORE_HOUR": "0", "NBSCALE_GB_HOUR": "0"}).stdout)
    assert by_env["total"]["cost"] == 0.0 and by_env["prices"]["core_hour"] == 0.0


def test_cost_errors_exit_2_and_print_nothing_on_stdout(two_runs, tmp_path):
    nb, first, _ = two_runs
    unknown = cli("cost", "0123456789abcdef", "--notebook", nb)
    assert unknown.exit_code == 2 and "no run '0123456789abcdef'" in unknown.stderr and unknown.stdout == ""
    hostile = cli("cost", "\x1b[31mzz", "--notebook", nb)
    assert hostile.exit_code == 2 and "\x1b" not in hostile.stderr and "\\x1b" in hostile.stderr
    bad = cli("cost", first.run_id, "--notebook", nb, env={"NBSCALE_GB_HOUR": "-1"})
    assert bad.exit_code == 2 and "NBSCALE_GB_HOUR must be a number ≥ 0" in bad.stderr and bad.stdout == ""
    nowhere = cli("cost", first.run_id, "--notebook", tmp_path / "none.ipynb")
    assert nowhere.exit_code == 2 and "no run store" in nowhere.stderr


def test_history_flags_the_run_where_a_step_got_slower(tmp_path, monkeypatch):
    nb = timed_notebook(tmp_path)
    for size in (1000, 1001):
        run_notebook(nb, {"size": size}, LOCAL)
    slow = run_notebook(nb, {"size": 1002, "pause": 1.0}, LOCAL)
    result = cli("history", "load", "--notebook", nb, "--output", "json")
    data = json.loads(result.stdout)
    assert data["step"] == "load" and data["factor"] == 1.5 and len(data["runs"]) == 3
    assert data["runs"][0]["run_id"] == slow.run_id and data["runs"][0]["slower"]
    assert not any(r["slower"] for r in data["runs"][1:])
    monkeypatch.chdir(tmp_path)  # one notebook in the folder: --notebook is not needed
    text = cli("history", "load", "--limit", "2").stdout
    assert f"* {slow.run_id[:8]}" in text and "1 run(s) of load were slower" in text
    assert len([line for line in text.splitlines() if "succeeded" in line]) == 2


def test_history_errors(tmp_path, monkeypatch):
    nb = timed_notebook(tmp_path)
    run_notebook(nb, options=LOCAL)
    unknown = cli("history", "\x1b[2Jnope", "--notebook", nb)
    assert unknown.exit_code == 2 and "no step" in unknown.stderr and "load, total" in unknown.stderr
    assert "\x1b" not in unknown.stderr
    other = timed_notebook(tmp_path, name="other")
    run_notebook(other, options=LOCAL)
    monkeypatch.chdir(tmp_path)
    several = cli("history", "load")
    assert several.exit_code == 2 and "2 notebooks (other.ipynb, timed.ipynb): give --notebook NB" in several.stderr
    assert cli("history", "load", "--notebook", other).exit_code == 0
