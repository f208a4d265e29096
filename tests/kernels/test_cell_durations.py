"""Seconds per cell from a notebook's last successful run, on real local runs."""

from __future__ import annotations

from conftest import make_notebook

from nbscale.kernels.cell_durations import last_run_durations
from nbscale.kernels.runner import RunOptions, run_notebook


def test_each_steps_time_is_spread_over_its_cells(tmp_path):
    nb = make_notebook(tmp_path, [("import time\ntime.sleep(0.2)\na = 1", ["step:first"]), ("b = a + 1", []),
                                  ("c = b * 2", ["step:second"])])
    assert last_run_durations(nb) is None  # no run yet
    result = run_notebook(nb, options=RunOptions(engine="local"))
    durations = last_run_durations(nb)
    first = result.step("first")["duration_s"]
    assert set(durations) == {0, 1, 2} and durations[0] == durations[1] == first / 2 >= 0.1
    run_notebook(nb, options=RunOptions(engine="local"))  # all cached: times of no step's code
    assert last_run_durations(nb) is None
