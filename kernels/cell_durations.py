"""How long each cell of a notebook took in its last successful run: the time `nbscale suggest`
weighs cells by (the CLI, the magic and the panel's command ask the same)."""

from __future__ import annotations

import os
from pathlib import Path

from ..compiler import compile_notebook
from .contract import SUCCEEDED, run_store_path
from .runstore import RunStore


def last_run_durations(notebook) -> dict[int, float] | None:
    """Seconds per cell from the notebook's last successful run: each step's time spread over its
    cells as the notebook is tagged now; None when there is no such run or it misses a step."""
    path = run_store_path(Path(notebook))
    if not path.exists():
        return None
    store = RunStore(path)
    try:
        runs = [r for r in store.list_runs(os.path.realpath(notebook)) if r["status"] == SUCCEEDED]
        steps = {s["step"]: s for s in store.get_run(runs[0]["id"])["steps"]} if runs else {}
    finally:
        store.close()
    found: dict[int, float] = {}
    for step in compile_notebook(notebook).steps:
        took = steps.get(step.name, {}).get("duration_s")
        if took is None or steps[step.name].get("cached"):
            return None
        found.update({cell: took / len(step.cells) for cell in step.cells})
    return found or None
