"""Chains of steps that run as one Dask task.

Every Dask task costs a trip through the scheduler when it ends and the next one starts (each way
a batched message, about 7 ms here), and a chain of steps gains nothing from separate tasks: step
b, whose only upstream step is a, and a, whose only downstream step is b, can never run beside each
other, and Dask would place b where a's values are anyway. So a run of such steps is one task that
runs them one after another on one worker, each still a step of its own: its own attempts (the
task's record on the scheduler says which step runs, and what attempts each began:
`dask_lifecycle.run_counted`), retries, events and outcome. The task's result is every step's
outcome by name (values: only the last step's); a step after the chain takes its upstream step's
outcome from there.

Losing the worker under a chain loses its values as it would with a task per step (Dask computes
lost results again); the steps that finished are reported as they finish, through events.
"""

from __future__ import annotations

from ..contract import STEP_FINISHED, UPSTREAM_FAILED, StepOutcome, finished_payload


def chains(specs: list, fuse: bool = True) -> list[list]:
    """`specs` (in topological order) grouped into chains, in the same order: a step joins the chain
    of its only upstream step in the run when it is that step's only downstream step and asks for
    the same resources (one task is placed once). Without `fuse`, one step per chain."""
    if not fuse:
        return [[spec] for spec in specs]
    names = {spec.step["name"] for spec in specs}
    downstream: dict[str, int] = {}
    for spec in specs:
        for upstream in set(spec.step["after"]) & names:
            downstream[upstream] = downstream.get(upstream, 0) + 1
    chain_of: dict[str, list] = {}
    grouped = []
    for spec in specs:
        upstream = [u for u in spec.step["after"] if u in names]
        chain = chain_of.get(upstream[0]) if len(upstream) == 1 and downstream[upstream[0]] == 1 else None
        if chain is None or _resources(chain[-1]) != _resources(spec):
            chain = []
            grouped.append(chain)
        chain.append(spec)
        chain_of[spec.step["name"]] = chain
    return grouped


def _resources(spec) -> dict:
    return spec.step.get("resources") or {}


def run_chain(specs: list, upstream: dict, run_one, emit) -> dict[str, StepOutcome]:
    """Run the chain's steps in order: `run_one(spec, upstream_outcomes)` runs one. `upstream`:
    step name → the result of the task that ran it (its chain's outcomes). Each step but the last
    is reported finished as it ends (the last one is, as its task ends); after a step that did not
    end well, the rest are `upstream_failed` without running. Only the last step's outcome keeps its
    values: the next step is the only reader of the others', which are freed once it ran (a long
    chain of big values holds two at a time, not all of them until the run ends)."""
    outcomes: dict[str, StepOutcome] = {}
    known = {name: result[name] for name, result in upstream.items()}
    for i, spec in enumerate(specs):
        step = spec.step
        outcome = run_one(spec, {u: known[u] for u in step["after"] if u in known})
        outcomes[step["name"]] = known[step["name"]] = outcome
        if i:  # the step before handed its values to this one, their only reader: free them
            before = specs[i - 1].step["name"]
            outcomes[before] = known[before] = stripped(outcomes[before])
        if i < len(specs) - 1:
            _report(emit, outcome)
    return outcomes


def _report(emit, outcome: StepOutcome) -> None:
    try:
        emit(STEP_FINISHED, outcome.step, finished_payload(stripped(outcome)))
    except TypeError:  # an event must be msgpack-able: then it is reported as its task ends
        pass


def stripped(outcome: StepOutcome) -> StepOutcome:
    """What the client needs to know of an outcome; the values stay on the worker (not mutated:
    the task's result is shared)."""
    import dataclasses

    return dataclasses.replace(outcome, values={})


def reported_outcome(step: str, payload: dict) -> StepOutcome:
    """The outcome a `step_finished` event reported (for a chain whose task was lost afterwards)."""
    return StepOutcome(step, payload["status"], summary=payload.get("summary") or {},
                       attempts=payload.get("attempts") or 0, started=payload.get("started") or 0.0,
                       finished=payload.get("finished") or 0.0, key=payload.get("key") or "",
                       stale=list(payload.get("stale") or ()))


def upstream_failed(step: str, failed: str) -> StepOutcome:
    return StepOutcome(step, UPSTREAM_FAILED, summary={"reason": f"upstream failed: {failed}"})
