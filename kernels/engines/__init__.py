"""Engines run a planned pipeline: one registry by name, extensible through entry points.

An engine is a class with one method, `run(specs, emit) -> {step: StepOutcome}` (see
`nbscale.kernels.contract` for the specs, the events and the outcome), and `close()` for what it
started. Third-party engines register under the entry-point group `nbscale.engines`
(docs/plugins.md).
"""

from __future__ import annotations

from ...registry import Lazy, Registry

ENTRY_POINT_GROUP = "nbscale.engines"


class Engine:
    name = ""

    def __init__(self, **options):
        self.options = options

    def run(self, specs, emit) -> dict:
        raise NotImplementedError

    def close(self):
        """Release what the engine started (clusters, kernels)."""


def _builtins() -> dict:
    return {"local": Lazy(f"{__name__}.local", "LocalEngine"), "dask": Lazy(f"{__name__}.dask", "DaskEngine"),
            "papermill": Lazy(f"{__name__}.papermill", "PapermillEngine"),
            "kfp-local": Lazy(f"{__name__}.kfp_local", "KfpLocalEngine")}


engines = Registry("engine", ENTRY_POINT_GROUP, _builtins)


def check_engine_name(name: str) -> None:
    """PluginError for a name no engine has, before anything is recorded. Imports nothing for a
    built-in one: a run whose steps are all cached starts no engine."""
    if name not in _builtins():
        engines.get(name)


def engine_names() -> list[str]:
    return engines.names()


def get_engine(name: str, **options) -> Engine:
    """An engine instance; an unknown or broken engine raises PluginError naming the known ones."""
    return engines.get(name)(**options)
