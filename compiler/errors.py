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


class NotARegularFile(NbscaleCompileError, OSError):
    """A FIFO, a device or a folder where a file is read: its read would block for ever (a FIFO
    nobody writes to) or never end (`/dev/zero`)."""


class PipelineHasErrors(NbscaleCompileError):
    """Raised by callers that need an error-free pipeline (compile to a target, run)."""

    def __init__(self, pipeline):
        from .diagnostics import errors_text

        self.pipeline = pipeline
        super().__init__(errors_text(pipeline.diagnostics, pipeline.notebook))


class TargetError(NbscaleCompileError):
    """A target cannot write this pipeline: an SDK it needs is missing, the SDK refused it, or a
    value in it (a name, a number) is not one the target can write."""


class UnsafeGeneratedCode(TargetError):
    """Generated code failed the shape check that runs before anything imports it: a bug in
    nbscale, or notebook text that slipped out of its literal. Nothing was imported."""

    def __init__(self, line, problem):
        self.line, self.problem = line, problem
        super().__init__(f"the generated KFP module failed nbscale's safety check at line {line}: {problem}; "
                         "nothing was run (please report this as an nbscale bug)")
