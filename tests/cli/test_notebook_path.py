"""Which notebook a kernel runs, and the unsaved-edits warning."""

from __future__ import annotations

import os
import time

import pytest
from conftest import make_notebook
from IPython.core.error import UsageError

from nbscale.notebook_path import find_notebook, unsaved_warning


def test_the_session_name_or_an_explicit_path_or_a_clear_error(tmp_path, monkeypatch):
    path = make_notebook(tmp_path, ["x = 1"])
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    assert find_notebook({"__session__": str(path)}) == path.resolve()
    monkeypatch.chdir(tmp_path)
    assert find_notebook({"__session__": "some/server/root/nb.ipynb"}) == path.resolve()  # its name here
    assert find_notebook({"__vsc_ipynb_file__": str(path)}) == path.resolve()
    assert find_notebook({}, str(path)) == path.resolve()
    with pytest.raises(UsageError, match="pass --notebook PATH"):
        find_notebook({"__session__": "elsewhere.ipynb"})
    with pytest.raises(UsageError, match="no notebook file"):
        find_notebook({}, str(tmp_path / "missing.ipynb"))


def test_unsaved_warnings(tmp_path):
    path = make_notebook(tmp_path, ["x = 1", "%nbscale run"])
    saved = path.stat().st_mtime
    assert "not in nb.ipynb as saved" in unsaved_warning(path, saved + 5, "%nbscale run -p a=1")
    assert unsaved_warning(path, saved + 5, "%nbscale run -p a=1", own=False) is None
    assert "save first" in unsaved_warning(path, saved + 5, "%nbscale run")
    os.utime(path, (time.time(), time.time()))
    assert unsaved_warning(path, time.time() - 60, "%nbscale run") is None
