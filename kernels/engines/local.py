"""The local engine: every step in this process, one after another (for debugging)."""

from __future__ import annotations

from ..contract import STEP_FINISHED, finished_payload
from ..fatal_errors import watch
from ..interrupts import interrupt_requested, step_in_main_thread
from ..task import exit_refused, run_step
from . import Engine


class LocalEngine(Engine):
    name = "local"

    def run(self, specs, emit) -> dict:
        outcomes = {}
        watch(echo=True)  # a crash in compiled code ends this process: its run store names the cell, and so
        # does its standard error, where the shell says only "Segmentation fault" (`fatal_errors`)
        for spec in specs:
            with step_in_main_thread(), exit_refused():
                outcome = run_step(spec, outcomes, emit)
            outcomes[spec.step["name"]] = outcome
            emit(STEP_FINISHED, outcome.step, finished_payload(outcome))
            requested = interrupt_requested()
            if requested is not None:  # Ctrl-C that the step's own `except` swallowed: cancel now
                raise requested()
        return outcomes
