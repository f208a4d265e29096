"""What `%nbscale runs` reads from a notebook's run store (nbscale.run_history); the magic's own
tests run it in a real kernel (test_magic)."""

from __future__ import annotations

import pytest
from conftest import make_notebook
from IPython.core.error import UsageError

from nbscale.run_history import runs_bundle


def test_a_damaged_run_store_is_a_line_saying_how_to_repair_it(tmp_path):
    nb = make_notebook(tmp_path, [("x = 1", ["step:a"])], name="nb")
    with pytest.raises(UsageError, match="no runs of nb.ipynb yet"):
        runs_bundle(nb)
    (tmp_path / ".nbscale").mkdir()
    (tmp_path / ".nbscale" / "runs.sqlite").write_bytes(b"this is not a database " * 100)
    with pytest.raises(UsageError, match=r"%nbscale: the run store .*runs\.sqlite is damaged .*nbscale runs --repair"):
        runs_bundle(nb)


def test_values_of_a_run_replaced_by_a_later_runs_are_not_loaded_as_its_own(tmp_path):
    # told by the digests the run's end recorded (a step found cached hands nothing on in its lineage,
    # and by time alone, runs within a second of each other were not told apart)
    from nbscale.kernels.runner import RunOptions, run_notebook
    from nbscale.run_history import load_step_values

    nb = make_notebook(tmp_path, [("z = open('data.txt').read()", ["step:reader"])], name="replaced")
    (tmp_path / "data.txt").write_text("version-1")
    runs = [run_notebook(nb, options=RunOptions(engine="local")) for _ in range(2)]  # ran, then cached
    (tmp_path / "data.txt").write_text("version-2")
    later = run_notebook(nb, options=RunOptions(engine="local"))
    assert load_step_values(nb, "reader", later.run_id[:12]) == ({"z": "version-2"}, [])
    for earlier in runs:
        values, notes = load_step_values(nb, "reader", earlier.run_id[:12])
        assert values == {} and "replaced in the artifact store by a later run's" in notes[0]
