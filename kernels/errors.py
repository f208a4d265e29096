"""Exceptions raised by the nbscale run time."""

from __future__ import annotations

import errno

from ..errors import NbscaleError, PluginError

__all__ = [
    "AmbiguousRunId", "ArtifactNotFound", "ClusterStartError", "CorruptArtifact", "CorruptArtifactWarning",
    "MarshalError", "NbscaleRuntimeError", "ParameterError", "PipelineNotRunnable", "PluginError", "RunStoreCorrupt",
    "RunStoreError", "RunStoreReadOnly", "SchedulerUnreachable", "StepStopped", "StepTimeout", "StoreFull",
    "StoreUnusable", "Terminated", "UnknownRun",
]


class NbscaleRuntimeError(NbscaleError):
    """Base class of every error the run time raises."""


class MarshalError(NbscaleRuntimeError):
    """A step output cannot be serialised (or deserialised)."""

    def __init__(self, variable: str, type_name: str, step: str | None, reason: str, doing: str = "serialised"):
        self.variable = variable
        self.type_name = type_name
        self.step = step
        self.reason = reason
        where = f"step {step!r}: " if step else ""
        super().__init__(
            f"{where}output {variable!r} of type {type_name} cannot be {doing}: {reason}"
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


class CorruptArtifact(ArtifactNotFound):
    """A stored artifact failed its checks (size, digest, manifest, a missing file): a cache miss.

    The store has removed it, so that the step runs again and a writer can publish a good one.
    """

    def __init__(self, step_hash: str, step: str | None = None, file: str = "", reason: str = ""):
        super().__init__(step_hash)
        self.step, self.file, self.reason = step, file, reason
        who = f"step {step!r}" if step else "a step"
        self.args = (f"the stored outputs of {who} are corrupt ({file}: {reason}); they were discarded "
                     f"and the step must run again ({step_hash})",)

    def __reduce__(self):  # the message is built: pickle (Dask) the fields
        return type(self), (self.step_hash, self.step, self.file, self.reason)


class ValuesReplaced(ArtifactNotFound):
    """The values a step stored in a run were replaced under the same key by a later run's: the step
    ran again there, its code and inputs the same, because something it read had changed."""

    def __init__(self, step_hash: str, step: str, run_id: str):
        super().__init__(step_hash)
        self.args = (f"the values step {step!r} stored in run {run_id[:12]} were replaced by a later run's (it ran "
                     "again there with the same code and inputs: something it read had changed); run the notebook "
                     "again to have them back",)


class CorruptArtifactWarning(UserWarning):
    """The artifact store found a damaged artifact; it is treated as a miss and removed."""


class RunStoreError(NbscaleRuntimeError):
    """Bad use of the run store: unknown run, ambiguous id prefix, invalid status."""


class UnknownRun(RunStoreError):
    """No run has this id (or id prefix)."""


class AmbiguousRunId(RunStoreError):
    """A run id prefix that more than one run starts with."""


class RunStoreCorrupt(RunStoreError):
    """The run-store file is damaged or is not a SQLite database: its history cannot be read.

    Nothing moves it on its own: `nbscale runs --repair` moves it aside and starts an empty one.
    """

    def __init__(self, path, detail: str):
        self.path, self.detail = str(path), detail
        super().__init__(
            f"the run store {self.path} is damaged ({detail}): its run history cannot be read. "
            f"`nbscale runs --repair` in that folder moves it aside (to {self.path}.corrupt-<time>, kept "
            "for inspection) and starts an empty one")

    def __reduce__(self):
        return type(self), (self.path, self.detail)


class RunStoreReadOnly(RunStoreError):
    """The run store can be read but not written (a read-only file, folder or file system)."""

    def __init__(self, path, detail: str):
        self.path, self.detail = str(path), detail
        super().__init__(
            f"cannot write the run store {self.path} (read-only: {detail}): history can be read, but no "
            "run can be recorded. Make the file and its folder writable, or run a copy of the notebook "
            "in a writable folder")

    def __reduce__(self):
        return type(self), (self.path, self.detail)


class ParameterError(NbscaleRuntimeError):
    """A pipeline parameter given on the command line or in a file is unknown or mistyped."""


class PipelineNotRunnable(NbscaleRuntimeError):
    """The notebook has errors (diagnostics) and cannot run."""


class StoreUnusable(NbscaleRuntimeError):
    """An artifact store URL that names no store this process can open (an unknown protocol, a
    file system whose fsspec package is not installed, a malformed URL)."""


class StoreFull(NbscaleRuntimeError, OSError):
    """A store file would take room on its disk that the store leaves free (`kernels.disk_room`): a
    storage failure (an OSError, as a full disk's), not a property of the value."""

    def __init__(self, free: float, kept: int):
        super().__init__(f"the disk holding the store has {free / 1e6:,.1f} MB free, and the store leaves "
                         f"{kept / 1e6:,.1f} MB of it (5% of the disk, at most 1 GiB) to the run store and the "
                         "steps' own files: the value did not fit in the rest; free space there, or store "
                         "elsewhere (--store)")
        self.errno, self.free, self.kept = errno.ENOSPC, free, kept


class StepTimeout(BaseException):
    """A step ran longer than its `timeout:` tag allows. Not an `Exception`, as KeyboardInterrupt is
    not: it is raised in the step's own code, and an `except Exception:` there must not swallow it."""


class ClusterStartError(NbscaleRuntimeError):
    """The embedded Dask cluster could not start its workers."""

    exit_code = 1  # the run is recorded as failed; nothing was wrong with what was asked

    def __init__(self, cause: BaseException, script: str | None = None):
        reasons = []
        while cause is not None and len(reasons) < 4:
            reasons.append(str(cause).rstrip(".") or type(cause).__name__)
            cause = cause.__cause__ or cause.__context__
        usual = ("a worker process that exits as it starts is the usual cause (a `distributed.worker.preload`, "
                 "the memory it may use)")
        if script:  # multiprocessing's spawn runs the main script in each new process before anything else
            usual = (f"the workers start as new Python processes (this process has other threads: they are not "
                     f"forked from it), and each runs {script} again as it starts; a script that calls nbscale "
                     f"outside `if __name__ == \"__main__\":` fails that way. Else, {usual}")
        super().__init__(f"the embedded Dask cluster could not start its workers ({': '.join(reasons)}); {usual}; "
                         "`--engine local` runs without Dask")


class SchedulerUnreachable(NbscaleRuntimeError):
    """The Dask scheduler given (`--scheduler`, `--scheduler-file`) cannot be used: the file is
    missing or not one, or nothing answers as a scheduler at the address within the timeout."""

    exit_code = 1  # the run is recorded as failed, with this as why


class StepStopped(NbscaleRuntimeError):
    """A step's run was stopped while the step waited for its process's shell (`shell_holder`): its
    code never ran."""

    def __init__(self, run: str):
        self.run = run
        super().__init__(f"run {run[:8]} was stopped before this step started")


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread: handled like Ctrl-C (the run is cancelled), reported as SIGTERM."""

    signal_name = "SIGTERM"


class HungUp(Terminated):
    """SIGHUP (the terminal of the run closed, its ssh session ended): handled as SIGTERM is,
    reported as SIGHUP."""

    signal_name = "SIGHUP"


class ServerGone(KeyboardInterrupt):
    """The Jupyter server that started the run went away (its channel closed): handled like Ctrl-C
    (the run is cancelled), reported as that."""
