"""Seconds per cell from a notebook's last successful run, on real local runs."""

from __future__ import annotations

import pytest
from conftest import make_notebook

from nbscale.compiler.errors import NotebookReadError
from nbscale.kernels.cell_durations import last_run_durations
from nbscale.kernels.contract import run_store_path
from nbscale.kernels.runner import RunOptions, run_notebook
from nbscale.kernels.runstore import RunStore


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


def test_a_notebook_path_that_is_a_symlink_loop_cannot_be_read(tmp_path):
    # beside a run store (another notebook's): its runs are looked up, and then the notebook read
    RunStore(run_store_path(tmp_path / "other.ipynb")).close()
    (tmp_path / "a.ipynb").symlink_to("b.ipynb")
    (tmp_path / "b.ipynb").symlink_to("a.ipynb")
    with pytest.raises(NotebookReadError, match="a.ipynb: cannot be read: .*Too many levels of symbolic links"):
        last_run_durations(tmp_path / "a.ipynb")
