"""Exceptions raised by the compiler.

Problems *inside* a notebook (bad tags, undefined names, cycles) are diagnostics in the IR, not
exceptions; exceptions are for inputs that are not a usable notebook at all.
"""

from ..errors import NbscaleError


class NbscaleCompileError(NbscaleError):
    """Base class of every error the compiler raises."""


class NotebookReadError(NbscaleCompileError):
    """The file is missing, not JSON, not a notebook, or of an unsupported nbformat version."""

    def __init__(self, path, reason):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class PipelineHasErrors(NbscaleCompileError):
    """Raised by callers that need an error-free pipeline (compile to a target, run)."""

    def __init__(self, pipeline):
        from .diagnostics import errors_text

        self.pipeline = pipeline
        super().__init__(errors_text(pipeline.diagnostics, pipeline.notebook))


class TargetError(NbscaleCompileError):
    """A target cannot write this pipeline: an SDK it needs is missing, or the SDK refused it."""
