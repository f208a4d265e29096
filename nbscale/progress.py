"""Live per-step progress of a run on stderr, fed by run events: one plain line per event (no
terminal library to import, so a cached re-run stays quick; logs get no escape codes). With
`verbose` (`nbscale run -v`) it also echoes what the steps print, "step | line": live from
STEP_OUTPUT events where the engine sends them, else when the step finishes. A step computing a Dask
collection on the cluster shows how far the compute got ("step: computing 120/400 tasks", from
STEP_PROGRESS events): its first count, then one every PROGRESS_LINE_S, and its end. Every line goes
through `reporting.literal`: what a step prints or raises may hold escape codes, shown, not obeyed."""

from __future__ import annotations

import sys
import threading
import time

import click

from .kernels.contract import (
    CACHED,
    CLUSTER_STARTED,
    FAILED,
    RUN_STARTED,
    STEP_FINISHED,
    STEP_OUTPUT,
    STEP_PROGRESS,
    STEP_STALE,
    STEP_STARTED,
    SUCCEEDED,
    WARNING,
    truncated_text,
)
from .reporting import literal_lines

MARKS = {SUCCEEDED: "✓", CACHED: "≡", FAILED: "✗"}
PROGRESS_LINE_S = 5.0  # a long compute's count, every so often: a log, not an animation


class Progress:
    def __init__(self, enabled=True, verbose=False):
        self.enabled, self.verbose = enabled, verbose
        # the stderr of now: a step of the local engine swaps sys.stderr for its own capture, and a
        # line from another thread (the heartbeat's warning) must not land in the step's output
        self.stream = sys.stderr
        self.lock = threading.Lock()
        self.started: dict[str, float] = {}
        self.partial: dict[tuple[str, str], str] = {}  # (step, stream) → its last line, not ended yet
        self.echoed: set[str] = set()  # steps whose output came live
        self.counted: dict[str, float] = {}  # step → when its running compute's count was last shown

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
            elif kind == STEP_OUTPUT:
                self._echo_live(step, payload)
            elif kind == STEP_PROGRESS:
                self._compute_progress(step, payload)
            elif kind == STEP_FINISHED:
                self._echo_finished(step, payload)
                status = payload.get("status")
                mark = MARKS.get(status, "·")
                took = f" ({time.monotonic() - self.started[step]:.2f}s)" if step in self.started else ""
                self._line(f"  {mark} {step} {status}{took}")
            elif kind == CLUSTER_STARTED and payload.get("message"):  # e.g. the shared warm cluster
                self._line(f"  {payload['message']}")
            elif kind == STEP_STALE:
                changes = "; ".join(payload.get("changes") or [])
                self._line(f"  ↻ {step} runs again: {changes}")
            elif kind == WARNING:  # a run's warning (the state folder went away) names no step
                self._line(f"  ! {step + ': ' if step else ''}{payload.get('message')}")

    def _compute_progress(self, step, payload):
        done, total = payload.get("done"), payload.get("total")
        if not isinstance(done, int) or not isinstance(total, int):
            return
        now = time.monotonic()
        if done < total and step in self.counted and now - self.counted[step] < PROGRESS_LINE_S:
            return
        if done < total:
            self.counted[step] = now
        else:  # this compute ended: the step's next one shows its first count
            self.counted.pop(step, None)
        self._line(f"  ⋯ {step}: computing {done}/{total} tasks")

    def _echo_live(self, step, payload):
        if not self.verbose:
            return
        self.echoed.add(step)
        key = (step, payload.get("stream", "stdout"))
        *lines, rest = (self.partial.pop(key, "") + (payload.get("text") or "")).split("\n")
        for line in lines:
            self._line(f"  {step} | {line}")
        if rest:
            self.partial[key] = rest

    def _echo_finished(self, step, payload):
        """The end of a step: its last unfinished lines, or all it printed if nothing came live."""
        if not self.verbose:
            return
        for key in [k for k in self.partial if k[0] == step]:
            self._line(f"  {step} | {self.partial.pop(key)}")
        summary = payload.get("summary") or {}
        if step in self.echoed or not isinstance(summary, dict):
            return
        text = _printed(summary)
        for line in truncated_text(text, "the step's log (nbscale show RUN)").splitlines():
            self._line(f"  {step} | {line}")

    def _line(self, text: str) -> None:
        if self.stream is None:
            return
        try:
            click.echo(literal_lines(text), file=self.stream)
        except BrokenPipeError:  # its reader went away (`nbscale run … 2>&1 | head`): the run goes on
            self.stream = None


def _printed(summary: dict) -> str:
    """What a step printed, stdout and stderr in the order it came (from its cells' outputs)."""
    streams = [o for cell in summary.get("cells") or [] for o in cell.get("outputs", ())
               if o.get("output_type") == "stream"]
    if not streams:
        return (summary.get("stdout") or "") + (summary.get("stderr") or "")
    return "".join("".join(o.get("text") or "") for o in streams)
