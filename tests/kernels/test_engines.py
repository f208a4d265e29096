"""The engine registry (kernels/engines/__init__.py): built-ins, unknown and broken engines."""

from __future__ import annotations

import pytest

from nbscale.errors import PluginError
from nbscale.kernels.engines import engine_names, engines, get_engine
from nbscale.kernels.engines.local import LocalEngine


def test_builtin_engines():
    assert {"dask", "local", "papermill", "kfp-local"} <= set(engine_names())
    assert isinstance(get_engine("local"), LocalEngine)


def test_an_unknown_engine_lists_the_known_ones():
    with pytest.raises(PluginError, match=r"unknown engine 'warp'; choose one of .*dask.*local"):
        get_engine("warp")


def test_a_broken_engine_plugin_names_itself(tmp_path, monkeypatch):
    dist = tmp_path / "brokenengine-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: brokenengine\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[nbscale.engines]\nbroken = brokenengine_missing:Engine\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(engines, "_entry_points", None)  # scan the entry points again
    with pytest.raises(PluginError, match=r"engine 'broken' \(brokenengine_missing:Engine.*failed to load"):
        get_engine("broken")
    assert isinstance(get_engine("local"), LocalEngine)
