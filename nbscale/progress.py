"""Live per-step progress of a run on stderr, fed by run events: one plain line per event (no
terminal library to import, so a cached re-run stays quick; logs get no escape codes)."""

from __future__ import annotations

import sys
import threading
import time

import click

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
        # the stderr of now: a step of the local engine swaps sys.stderr for its own capture, and a
        # line from another thread (the heartbeat's warning) must not land in the step's output
        self.stream = sys.stderr
        self.lock = threading.Lock()
        self.started: dict[str, float] = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def event(self, kind, step, payload):
        if not self.enabled:
            return
        with self.lock:
            if kind == RUN_STARTED:
                self._line(f"running {payload.get('steps')} steps on {payload.get('engine')}")
            elif kind == STEP_STARTED:
                self.started[step] = time.monotonic()
                where = f" on {payload['worker']}" if payload.get("worker") else ""
                self._line(f"  ▶ {step}{where}")
            elif kind == STEP_FINISHED:
                status = payload.get("status")
                mark = MARKS.get(status, "·")
                took = f" ({time.monotonic() - self.started[step]:.2f}s)" if step in self.started else ""
                self._line(f"  {mark} {step} {status}{took}")
            elif kind == STEP_STALE:
                changes = "; ".join(payload.get("changes") or [])
                self._line(f"  ↻ {step} runs again: {changes}")
            elif kind == WARNING:  # a run's warning (the state folder went away) names no step
                self._line(f"  ! {step + ': ' if step else ''}{payload.get('message')}")

    def _line(self, text: str) -> None:
        click.echo(text, file=self.stream)
