"""The comparison endpoint's part: runs of a notebook side by side (`kernels.compare`, the model
`nbscale diff` prints), as the panel's comparison view gets it.

The runs are read from the run store beside the followed notebook (the one the CLI, papermill and
the panel share). Unknown run ids are NotFound with the ids named; a run of another notebook that
shares the store is compared but flagged. Notebook paths in the answer are API paths (relative to
the server's root), never absolute server paths.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from .errors import InvalidInput, NotFound

MAX_COMPARED = 20


async def compare(runs, notebook: Path, run_ids: list[str]) -> dict:
    """ComparisonModel of `run_ids` (unique prefixes work) of `notebook`'s run store; `runs` is the
    manager's `runs.Runs`."""
    if not 2 <= len(run_ids) <= MAX_COMPARED:
        raise InvalidInput(f"'runs' must name 2 to {MAX_COMPARED} runs, separated by commas")
    store = await asyncio.to_thread(runs.store_for, notebook, False)
    if store is None:
        raise NotFound(f"no runs of {runs.notebooks.api_path(notebook)} yet: unknown run(s) {', '.join(run_ids)}")
    model = await asyncio.to_thread(_compare, store, notebook, run_ids)
    return shown_paths(model, notebook, runs.notebooks)


def _compare(store, notebook: Path, run_ids: list[str]) -> dict:
    from nbscale.compiler.metric_direction import notebook_directions
    from nbscale.kernels.compare import compare_runs
    from nbscale.kernels.errors import AmbiguousRunId, UnknownRun

    unknown, ambiguous = [], []
    for run_id in run_ids:
        try:
            store.resolve(run_id)
        except AmbiguousRunId:
            ambiguous.append(run_id)
        except UnknownRun:
            unknown.append(run_id)
    if unknown:
        raise NotFound(f"no run {', '.join(unknown)} of this notebook's folder", {"unknown": unknown})
    if ambiguous:
        raise InvalidInput(f"run id prefix {', '.join(ambiguous)} is ambiguous: give more characters")
    # the followed notebook declares the directions (metadata.nbscale.metrics), not the first run's
    model = compare_runs(store, run_ids, notebook_directions(notebook))
    for run in model["runs"]:  # flagged against the followed notebook
        run["other_notebook"] = Path(run["notebook"]) != notebook
    return model


def shown_paths(model: dict, notebook: Path, notebooks) -> dict:
    """The model with API paths: the followed notebook's, another notebook's relative to the root
    (or its file name when it lies outside it)."""

    def shown(path: str) -> str:
        try:
            return notebooks.api_path(Path(path))
        except ValueError:
            return Path(path).name

    model["notebook"] = notebooks.api_path(notebook)
    for run in model["runs"]:
        run["notebook"] = shown(run["notebook"])
    return model
