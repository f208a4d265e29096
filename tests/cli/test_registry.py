"""The plug-in registry: built-ins, entry points found on sys.path, unknown and broken plug-ins."""

from __future__ import annotations

import sys

import pytest

from nbscale.errors import NbscaleError, PluginError
from nbscale.registry import Lazy, Registry

GROUP = "nbscale.test-registry"


def install_entry_points(folder, monkeypatch, entries: str, module: str = ""):
    """A distribution on sys.path declaring `entries` (entry_points.txt lines) in GROUP."""
    dist = folder / "testplug-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: testplug\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[{GROUP}]\n{entries}\n")
    if module:
        (folder / "testplug.py").write_text(module)
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.delitem(sys.modules, "testplug", raising=False)  # each test brings its own


def test_builtins_are_listed_and_returned():
    registry = Registry("widget", GROUP, lambda: {"a": 1, "b": 2})
    assert registry.names() == ["a", "b"] and registry.get("b") == 2 and "a" in registry


def test_a_lazy_builtin_is_imported_when_first_asked_for(tmp_path, monkeypatch):
    (tmp_path / "lazyplug.py").write_text("WIDGET = 'the widget'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "lazyplug", raising=False)
    registry = Registry("widget", GROUP, lambda: {"w": Lazy("lazyplug", "WIDGET"), "n": 1})
    assert registry.names() == ["n", "w"] and "w" in registry and registry.get("n") == 1
    assert "lazyplug" not in sys.modules
    assert registry.get("w") == "the widget" and registry.get("w") == "the widget"


def test_an_unknown_name_lists_the_known_ones():
    registry = Registry("widget", GROUP, lambda: {"a": 1, "b": 2})
    with pytest.raises(PluginError, match=r"unknown widget 'c'; choose one of a, b") as info:
        registry.get("c")
    assert isinstance(info.value, NbscaleError)


def test_entry_points_load_on_first_use_and_builtins_win(tmp_path, monkeypatch):
    install_entry_points(tmp_path, monkeypatch, "third = testplug:THIRD\na = testplug:SHADOW",
                         "THIRD = 'third-party'\nSHADOW = 'never used'\n")
    registry = Registry("widget", GROUP, lambda: {"a": 1})
    assert registry.names() == ["a", "third"] and registry.entry_point_names() == ["third"]
    assert registry.get("third") == "third-party" and registry.get("a") == 1


def test_a_broken_plugin_is_reported_with_its_name_and_hides_nothing(tmp_path, monkeypatch):
    install_entry_points(tmp_path, monkeypatch, "broken = no_such_module:Thing\nfine = testplug:FINE", "FINE = 1\n")
    registry = Registry("widget", GROUP)
    with pytest.raises(PluginError, match=r"widget 'broken' \(no_such_module:Thing.*ModuleNotFoundError"):
        registry.get("broken")
    assert registry.get("fine") == 1


def test_registered_plugins_join_the_builtins():
    registry = Registry("widget", GROUP, lambda: {"a": 1})
    registry.register("z", 26)
    assert registry.names() == ["a", "z"] and registry.get("z") == 26


def test_a_plugin_installed_after_the_scan_is_found_by_a_scan_again(tmp_path, monkeypatch):
    registry = Registry("widget", GROUP, lambda: {"a": 1})
    assert registry.entry_point_names() == []  # scanned, and kept
    install_entry_points(tmp_path, monkeypatch, "late = testplug:LATE", "LATE = 'installed since'\n")
    assert registry.entry_point_names() == []
    registry.scan_again()
    assert registry.entry_point_names() == ["late"] and registry.get("late") == "installed since"
