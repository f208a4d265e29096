"""Step tags proposed for an open notebook (compiler/suggest.py), as the panel's *Suggest Steps…* shows them.

The proposal carries the code cells' sources it was made from, so the front end can refuse to apply
it once the open notebook's code differs (an unsaved edit, a change since). Cell times come from
the notebook's last successful run when it covers every cell, else as `nbscale suggest` takes them.
The proposal is never written here: the front end writes the tags into the open notebook's model.
"""

from __future__ import annotations

import asyncio
import weakref
from pathlib import Path

from .errors import Conflict, InvalidInput

MAX_CODE_CELLS = 2_000  # a bigger notebook's proposal takes the panel's user longer than tagging it (`nbscale suggest`)
# each event loop's lock (CPU work holding the interpreter: each request waits its turn, and the
# server's thread pool, which answers every other request, stays free)
_ONE_AT_A_TIME: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


async def suggestion_model(notebooks, notebook: Path) -> dict:
    """Suggestion.as_dict() plus `path` (the API path), `cell_count` and `sources` (code cell
    index → source); the server's own file paths are never in it."""
    async with _ONE_AT_A_TIME.setdefault(asyncio.get_running_loop(), asyncio.Lock()):
        return await asyncio.to_thread(_suggestion, notebook, notebooks.api_path(notebook))


def _suggestion(notebook: Path, api_path: str) -> dict:
    from nbscale.compiler.errors import NbscaleCompileError
    from nbscale.compiler.notebook import read_notebook
    from nbscale.compiler.suggest import suggest

    try:
        before = _code_sources(read_notebook(notebook))
        if len(before) > MAX_CODE_CELLS:
            raise InvalidInput(f"{api_path} has {len(before):,} code cells: the panel suggests steps for up to "
                               f"{MAX_CODE_CELLS:,} (run `nbscale suggest` in a terminal)")
        proposal = suggest(notebook, _last_run_durations(notebook))
        after = read_notebook(notebook)
    except NbscaleCompileError as exc:  # unreadable, not a notebook, does not compile, nothing to split
        raise InvalidInput(str(exc).replace(str(notebook), api_path)) from None
    if _code_sources(after) != before:
        raise Conflict(f"{api_path} changed while the proposal was made; suggest again")
    model = proposal.as_dict()
    model["notebook"] = api_path
    model["notes"] = [note.replace(str(notebook), api_path) for note in model["notes"]]
    return {**model, "path": api_path, "cell_count": len(after.cells),
            "sources": {str(index): source for index, source in before.items()}}


def _code_sources(notebook) -> dict[int, str]:
    return {c.index: c.source for c in notebook.cells if c.cell_type == "code"}


def _last_run_durations(notebook: Path) -> dict[int, float] | None:
    """The last successful run's cell times, or None: a store that cannot be read only means the
    proposal plans with the notebook's own times or an estimate."""
    from nbscale.compiler.errors import NbscaleCompileError
    from nbscale.kernels.cell_durations import last_run_durations
    from nbscale.kernels.errors import RunStoreError

    try:
        return last_run_durations(notebook)
    except (RunStoreError, NbscaleCompileError, OSError):
        return None
