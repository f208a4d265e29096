"""The state of one run as `%nbscale run` shows it: a plain model built from run-store events.

The model knows nothing of widgets or HTML (`run_widget.py` and `run_static.py` draw it), so it is
tested alone. It is fed three ways, all from the stream the CLI and the panel read:
- `apply(event)`: an event row of the run store (`RunStore.events_since`): queued, started,
  finished, warnings, the run's end;
- `apply_run(run)`: the run's row (`RunStore.get_run`), which has what no event carries: the steps
  found cached, each step's times and error, the metrics;
- `apply_cluster(model)`: a sample of the run's own cluster (`jupyter_ext.models.cluster_model`).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime

from .kernels.contract import (
    FAILED,
    FINISHED,
    OK,
    PENDING,
    QUEUED,
    RUN_FINISHED,
    RUN_STARTED,
    RUNNING,
    STEP_FINISHED,
    STEP_QUEUED,
    STEP_STARTED,
    WARNING,
)

STARTING = "starting"  # the run's process is up, the run not yet in the run store


def epoch(value) -> float | None:
    """Seconds since the epoch from a run store's ISO time (or a number); None when unknown."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)):
        return float(value) or None
    try:
        return datetime.fromisoformat(str(value)).timestamp()
    except ValueError:
        return None


@dataclass
class StepState:
    name: str
    status: str = PENDING
    started: float | None = None  # epoch seconds
    finished: float | None = None
    duration_s: float | None = None  # the step's own wall time, once it finished
    worker: str | None = None
    cached: bool = False
    error: dict | str | None = None  # `contract.error_dict`, or a plain reason
    expected_s: float | None = None  # how long it took in the notebook's last successful run

    def elapsed(self, now: float | None = None) -> float | None:
        if self.duration_s is not None:
            return self.duration_s
        if self.started is None:
            return None
        end = self.finished if self.finished is not None else (now if now is not None else time.time())
        return max(0.0, end - self.started)

    @property
    def done(self) -> bool:
        return self.status in FINISHED

    def fraction(self, now: float | None = None) -> float:
        """How far along the step's bar is: full once finished, empty before it runs; while it runs,
        its time so far over its time in the last successful run (kept below full: it may take
        longer this time), or half when that is unknown (a step does not report how far it got)."""
        if self.done:
            return 1.0
        if self.status != RUNNING:
            return 0.0
        elapsed = self.elapsed(now)
        if not self.expected_s or elapsed is None:
            return 0.5
        return min(0.95, max(0.02, elapsed / self.expected_s))


@dataclass
class RunModel:
    notebook: str
    run_id: str | None = None
    status: str = STARTING
    steps: dict[str, StepState] = field(default_factory=dict)  # in the run's order
    metrics: dict = field(default_factory=dict)
    cluster: dict | None = None
    warnings: list[str] = field(default_factory=list)
    error: str | None = None  # why the run ended without finishing, or could not start
    last_event_id: int = 0
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def ok(self) -> bool:
        return self.status in OK

    def step(self, name: str) -> StepState:
        if name not in self.steps:
            self.steps[name] = StepState(name)
        return self.steps[name]

    def progress(self) -> tuple[int, int]:
        """(steps finished, steps)."""
        return sum(s.done for s in self.steps.values()), len(self.steps)

    # -- what feeds it ---------------------------------------------------------------------------

    def apply(self, event: dict) -> None:
        """One event row of the run store: {id, time, kind, step, payload}."""
        with self.lock:
            self.last_event_id = max(self.last_event_id, int(event.get("id") or 0))
            kind, name, payload = event.get("kind"), event.get("step"), event.get("payload") or {}
            if not isinstance(payload, dict):
                payload = {}
            if kind == RUN_STARTED and self.status in (STARTING, PENDING):
                self.status = RUNNING
            elif kind == STEP_QUEUED and name and not self.step(name).done and self.step(name).status == PENDING:
                self.step(name).status = QUEUED
            elif kind == STEP_STARTED and name and not self.step(name).done:
                step = self.step(name)
                step.status, step.started = RUNNING, epoch(event.get("time")) or time.time()
                step.worker = payload.get("worker") or step.worker
            elif kind == STEP_FINISHED and name:
                self._step_finished(self.step(name), event, payload)
            elif kind == WARNING and payload.get("message"):
                where = f"{name}: " if name else ""
                self.warnings.append(f"{where}{payload['message']}")
            elif kind == RUN_FINISHED:
                self.status = payload.get("status") or self.status
                if isinstance(payload.get("error"), str):
                    self.error = payload["error"]

    @staticmethod
    def _step_finished(step: StepState, event: dict, payload: dict) -> None:
        step.status = payload.get("status") or step.status
        step.finished = epoch(event.get("time")) or time.time()
        if payload.get("duration_s") is not None:
            step.duration_s = float(payload["duration_s"])
        step.error = payload.get("error") or step.error

    def apply_run(self, run: dict) -> None:
        """The run's row with its step rows and metrics (the steps' order comes from here)."""
        with self.lock:
            self.run_id = run.get("id") or self.run_id
            ordered = {}
            for row in run.get("steps") or []:
                step = self.steps.get(row["step"]) or StepState(row["step"])
                self._merge_row(step, row)
                ordered[step.name] = step
            self.steps = {**ordered, **{n: s for n, s in self.steps.items() if n not in ordered}}
            self.metrics = {m["name"]: m["value"] for m in run.get("metrics") or []}
            status = run.get("status")
            if status in FINISHED or (status == RUNNING and self.status in (STARTING, PENDING)):
                self.status = status
            if status in FINISHED and isinstance(run.get("error"), str):
                self.error = run["error"]

    @staticmethod
    def _merge_row(step: StepState, row: dict) -> None:
        # a row says `pending` for a step the events already showed queued: keep the livelier state
        if row.get("status") and not (row["status"] == PENDING and step.status == QUEUED):
            step.status = row["status"]
        step.started = epoch(row.get("started")) or step.started
        step.finished = epoch(row.get("finished")) or step.finished
        if row.get("duration_s") is not None:
            step.duration_s = float(row["duration_s"])
        step.cached = bool(row.get("cached")) or step.cached
        step.error = row.get("error") or step.error

    def expect(self, previous: dict) -> None:
        """The step rows of an earlier successful run: their durations make the progress bars."""
        with self.lock:
            for row in previous.get("steps") or []:
                if row.get("duration_s") and not row.get("cached"):
                    self.step(row["step"]).expected_s = float(row["duration_s"])

    def apply_cluster(self, model: dict) -> None:
        with self.lock:
            self.cluster = model

    def fail(self, message: str) -> None:
        """The run could not start, or its process ended without finishing it."""
        with self.lock:
            if not self.finished:
                self.status = FAILED
            self.error = self.error or message

    def cluster_summary(self) -> str | None:
        """"2 workers, 4 threads, memory 1.2 GiB of 8.0 GiB", or None before the cluster is known."""
        cluster = self.cluster
        if not cluster or not isinstance(cluster.get("workers"), list):
            return None
        workers = len(cluster["workers"])
        return (f"{workers} worker{'s' if workers != 1 else ''}, {cluster.get('threads', 0)} threads, memory "
                f"{size_text(cluster.get('memory_used'))} of {size_text(cluster.get('memory_limit'))}")


def size_text(value) -> str:
    value = float(value or 0)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"  # pragma: no cover - the loop returns


def elapsed_text(seconds: float | None, running: bool = False) -> str:
    """"-", "12s" while running (a whole second changes at most once a second), "1.23s" when done."""
    if seconds is None:
        return "-"
    if running:
        return f"{int(seconds)}s" if seconds < 60 else f"{int(seconds) // 60}m{int(seconds) % 60:02d}s"
    return f"{seconds:.2f}s" if seconds < 60 else f"{int(seconds) // 60}m{seconds % 60:04.1f}s"
