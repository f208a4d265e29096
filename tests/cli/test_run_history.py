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
