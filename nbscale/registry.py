"""One small registry per plug-in point (engines, marshallers, targets), as papermill has.

A registry maps names to plug-ins: built-ins registered by the package itself, then the
entry points of a group (`nbscale.engines`, `nbscale.marshallers`, `nbscale.targets`), loaded
only when a plug-in is first asked for. A built-in wins over an entry point of the same name.
An unknown name is answered with the known ones; an entry point that fails to load is reported
with its name and the reason, and does not hide the other plug-ins. Stdlib only: every layer
may import it.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module

from .errors import PluginError


class Lazy:
    """A built-in imported when first asked for: a run on Dask does not pay for papermill's engine."""

    def __init__(self, module: str, attribute: str):
        self.module, self.attribute = module, attribute

    def load(self):
        return getattr(import_module(self.module), self.attribute)


class Registry:
    def __init__(self, kind: str, group: str, builtins: Callable[[], dict] | None = None):
        """`kind`: what a plug-in is, for messages ("engine"); `group`: the entry-point group;
        `builtins()`: name → plug-in (or a `Lazy` one), called once on first use (so importing a
        registry is cheap)."""
        self.kind, self.group = kind, group
        self._builtins = builtins
        self._plugins: dict[str, object] | None = None
        self._entry_points: dict | None = None  # scanned only when a name is not a built-in

    def register(self, name: str, plugin) -> None:
        self._loaded()[name] = plugin

    def names(self) -> list[str]:
        return sorted({*self._loaded(), *self._scanned()})

    def entry_point_names(self) -> list[str]:
        """The plug-ins installed through entry points, in the order they were found."""
        return list(self._scanned())

    def get(self, name: str):
        plugins = self._loaded()
        if name in plugins:
            if isinstance(plugins[name], Lazy):
                plugins[name] = plugins[name].load()
            return plugins[name]
        entry = self._scanned().get(name)
        if entry is None:
            raise PluginError(f"unknown {self.kind} {name!r}; choose one of {', '.join(self.names())}")
        try:
            plugin = entry.load()
        except Exception as exc:  # noqa: BLE001 - any import failure of a third-party plug-in
            raise PluginError(f"the {self.kind} {name!r} ({entry.value}, entry point group {self.group}) "
                              f"failed to load: {type(exc).__name__}: {exc}") from exc
        plugins[name] = plugin
        return plugin

    def __contains__(self, name: str) -> bool:
        return name in self._loaded() or name in self._scanned()

    def _loaded(self) -> dict:
        if self._plugins is None:
            self._plugins = dict(self._builtins()) if self._builtins else {}
        return self._plugins

    def scan_again(self) -> None:
        """Scan the installed distributions now, for plug-ins installed since the last scan (a
        process that forks workers scans for them once, as it forks them)."""
        self._entry_points = self._scan()

    def _scanned(self) -> dict:
        # importlib.metadata and the scan of every installed distribution cost ~0.1 s: paid only
        # when a plug-in that is not built in is asked for, or the list of names
        if self._entry_points is None:
            self._entry_points = self._scan()
        return self._entry_points

    def _scan(self) -> dict:
        from importlib.metadata import entry_points

        builtins = self._loaded()
        return {ep.name: ep for ep in entry_points(group=self.group) if ep.name not in builtins}
