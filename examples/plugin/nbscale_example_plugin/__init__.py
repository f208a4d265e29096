"""A tiny third-party nbscale plug-in (see nbscale's docs/plugins.md).

- `SerialEngine` (engine `serial`): runs the steps one after another in this process, and says so.
- `FractionMarshaller` (marshaller `fraction`): stores `fractions.Fraction` values as "n/d" text.
- `StepListTarget` (target `step-list`): writes a pipeline as the list of its steps, one a line.
"""

from __future__ import annotations

import sys
from fractions import Fraction
from pathlib import Path

from nbscale.compiler.targets import Target
from nbscale.kernels.contract import STEP_FINISHED, finished_payload
from nbscale.kernels.engines import Engine
from nbscale.kernels.marshal import Marshaller
from nbscale.kernels.task import run_step


class SerialEngine(Engine):
    name = "serial"

    def run(self, specs, emit) -> dict:
        outcomes = {}
        for spec in specs:
            print(f"serial engine: {spec.step['name']}", file=sys.stderr)
            outcome = run_step(spec, outcomes, emit)
            outcomes[outcome.step] = outcome
            emit(STEP_FINISHED, outcome.step, finished_payload(outcome))
        return outcomes


class FractionMarshaller(Marshaller):
    name = "fraction"
    suffix = ".fraction"

    def can_handle(self, value) -> bool:
        return type(value) is Fraction

    def dump(self, value, fileobj) -> None:
        fileobj.write(f"{value.numerator}/{value.denominator}".encode())

    def load(self, fileobj):
        return Fraction(fileobj.read().decode())


class StepListTarget(Target):
    name = "step-list"
    description = "the pipeline's steps, one a line, with the steps they come after"

    def write(self, pipeline, path, *, notebook=None) -> list[str]:
        lines = [f"{s.name} <- {', '.join(s.after) or '-'}\n" for s in pipeline.steps]
        Path(path).write_text("".join(lines), encoding="utf-8")
        return []
