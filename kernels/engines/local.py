"""The local engine: every step in this process, one after another (for debugging)."""

from __future__ import annotations

from ..task import run_step
from . import Engine


class LocalEngine(Engine):
    name = "local"

    def run(self, specs, emit) -> dict:
        outcomes = {}
        for spec in specs:
            outcome = run_step(spec, outcomes, emit)
            outcomes[spec.step["name"]] = outcome
            emit("step_finished", outcome.step, _summary(outcome))
        return outcomes


def _summary(outcome):
    return {"status": outcome.status, "summary": outcome.summary, "attempts": outcome.attempts,
            "started": outcome.started, "finished": outcome.finished}
