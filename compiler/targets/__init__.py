"""Targets: the formats `nbscale compile --target NAME` writes a pipeline in, in one registry.

A target is a class with a `name`, a one-line `description`, the keyword `options` its `write`
takes besides the notebook, and `write(pipeline, path, *, notebook, **options) -> notes`.
Built-ins: `ir` (the pipeline IR as JSON) and `kfp` (Kubeflow Pipelines v2 YAML, `targets.kfp`).
Third-party targets register under the entry-point group `nbscale.targets`. Targets are pure
text generators: a target that needs an SDK (kfp) imports it when it writes, never at import.
"""

from __future__ import annotations

from pathlib import Path

from ...registry import Registry
from ..errors import TargetError
from ..output_files import written_to

__all__ = ["ENTRY_POINT_GROUP", "IrTarget", "Target", "TargetError", "get_target", "targets", "write_atomically"]

ENTRY_POINT_GROUP = "nbscale.targets"


class Target:
    name = ""
    description = ""
    options: tuple[str, ...] = ()  # keyword options `write` takes besides `notebook`

    def write(self, pipeline, path, *, notebook, **options) -> list[str]:
        """Write `pipeline` (error-free IR) to `path`; `notebook` is its file, where project
        settings are found. Returns notes for the user (empty when there is nothing to say).
        Raises NbscaleCompileError when it cannot, OSError when a file cannot be written."""
        raise NotImplementedError


class IrTarget(Target):
    name = "ir"
    description = "the pipeline IR (JSON, docs/ir.md)"

    def write(self, pipeline, path, *, notebook=None) -> list[str]:
        write_atomically(Path(path), pipeline.dumps())
        return []


def write_atomically(path: Path, text: str) -> None:
    """Write a temporary file, then put it in `path`'s place (`output_files.written_to`): readers
    never see half a file. An OSError names `path`, not the temporary file."""
    try:
        with written_to(path) as partial:
            partial.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(path)) from exc


def _builtins() -> dict:
    from .kfp import KfpTarget

    return {"ir": IrTarget, "kfp": KfpTarget}


targets = Registry("target", ENTRY_POINT_GROUP, _builtins)


def get_target(name: str) -> Target:
    """A target instance; an unknown or broken target raises PluginError naming the known ones."""
    return targets.get(name)()
