"""Live per-step progress of a run in the terminal (rich), fed by run events."""

from __future__ import annotations

import threading
import time

from .kernels.contract import (
    CACHED,
    FAILED,
    RUN_STARTED,
    STEP_FINISHED,
    STEP_STALE,
    STEP_STARTED,
    SUCCEEDED,
    WARNING,
)

MARKS = {SUCCEEDED: "✓", CACHED: "≡", FAILED: "✗"}


class Progress:
    def __init__(self, enabled=True):
        self.enabled = enabled
        self.lock = threading.Lock()
        self.started: dict[str, float] = {}

    def __enter__(self):
        if self.enabled:
            from rich.console import Console

            self.console = Console(stderr=True)
        return self

    def __exit__(self, *exc):
        return False

    def event(self, kind, step, payload):
        if not self.enabled:
            return
        with self.lock:
            if kind == RUN_STARTED:
                self.console.print(f"running {payload.get('steps')} steps on {payload.get('engine')}",
                                   highlight=False)
            elif kind == STEP_STARTED:
                self.started[step] = time.monotonic()
                where = f" on {payload['worker']}" if payload.get("worker") else ""
                self.console.print(f"  ▶ {step}{where}", highlight=False, markup=False)
            elif kind == STEP_FINISHED:
                status = payload.get("status")
                mark = MARKS.get(status, "·")
                took = f" ({time.monotonic() - self.started[step]:.2f}s)" if step in self.started else ""
                self.console.print(f"  {mark} {step} {status}{took}", highlight=False, markup=False)
            elif kind == STEP_STALE:
                changes = "; ".join(payload.get("changes") or [])
                self.console.print(f"  ↻ {step} runs again: {changes}", highlight=False, markup=False)
            elif kind == WARNING:
                self.console.print(f"  ! {step}: {payload.get('message')}", highlight=False, markup=False)
