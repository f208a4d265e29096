"""Exceptions raised by the nbscale run time."""

from __future__ import annotations

from ..errors import NbscaleError, PluginError

__all__ = [
    "AmbiguousRunId", "ArtifactNotFound", "MarshalError", "NbscaleRuntimeError", "ParameterError",
    "PipelineNotRunnable", "PluginError", "RunStoreError", "StepTimeout",
]


class NbscaleRuntimeError(NbscaleError):
    """Base class of every error the run time raises."""


class MarshalError(NbscaleRuntimeError):
    """A step output cannot be serialised (or deserialised)."""

    def __init__(self, variable: str, type_name: str, step: str | None, reason: str):
        self.variable = variable
        self.type_name = type_name
        self.step = step
        self.reason = reason
        where = f"step {step!r}: " if step else ""
        super().__init__(
            f"{where}output {variable!r} of type {type_name} cannot be serialised: {reason}"
        )


class ArtifactNotFound(NbscaleRuntimeError, KeyError):
    """No complete artifact for a step hash, or the artifact lacks a requested name."""

    def __init__(self, step_hash: str, names: list[str] | None = None):
        self.step_hash = step_hash
        self.names = list(names or [])
        missing = f" (missing {', '.join(self.names)})" if self.names else ""
        super().__init__(f"no artifact for {step_hash}{missing}")

    # KeyError.__str__ would quote the message; keep it readable.
    def __str__(self) -> str:
        return str(self.args[0])


class RunStoreError(NbscaleRuntimeError):
    """Bad use of the run store: unknown run, ambiguous id prefix, invalid status."""


class AmbiguousRunId(RunStoreError):
    """A run id prefix that more than one run starts with."""


class ParameterError(NbscaleRuntimeError):
    """A pipeline parameter given on the command line or in a file is unknown or mistyped."""


class PipelineNotRunnable(NbscaleRuntimeError):
    """The notebook has errors (diagnostics) and cannot run."""


class StepTimeout(NbscaleRuntimeError):
    """A step ran longer than its `timeout:` tag allows."""
