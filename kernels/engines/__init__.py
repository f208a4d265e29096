"""Engines run a planned pipeline: a registry by name, extensible through entry points.

An engine implements one method, `run(specs, emit) -> {step: StepOutcome}`, where `specs` are in
a topological order and `emit(kind, step, payload)` reports live events.
"""

from __future__ import annotations

from importlib.metadata import entry_points

ENTRY_POINT_GROUP = "nbscale.engines"


class Engine:
    name = ""

    def __init__(self, **options):
        self.options = options

    def run(self, specs, emit) -> dict:
        raise NotImplementedError

    def close(self):
        """Release what the engine started (clusters, kernels)."""


def _builtin():
    from .dask import DaskEngine
    from .kfp_local import KfpLocalEngine
    from .local import LocalEngine
    from .papermill import PapermillEngine

    return {"local": LocalEngine, "dask": DaskEngine, "papermill": PapermillEngine, "kfp-local": KfpLocalEngine}


def engine_names() -> list[str]:
    return sorted({*_builtin(), *(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))})


def get_engine(name: str, **options) -> Engine:
    engines = _builtin()
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        engines.setdefault(ep.name, ep)
    if name not in engines:
        raise ValueError(f"unknown engine {name!r}; choose one of {', '.join(engine_names())}")
    cls = engines[name]
    cls = cls.load() if hasattr(cls, "load") else cls
    return cls(**options)
