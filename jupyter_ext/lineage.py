"""The lineage endpoint's part: what produced a metric or a stored value of a run
(`kernels.lineage`, the model `nbscale lineage` prints), as the panel's lineage view gets it.

The run is read from the run store beside the followed notebook and must be a run of it. An unknown
run is NotFound; an unknown name is NotFound with the names the run has (`detail.names`). Paths in
the answer never show where the server's files are: the notebook is its API path, a file read
inside the server's root is relative to it, one outside is only its file name, and artifact store
locations are left out.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from .errors import InvalidInput, NotFound

MAX_NAME_CHARS = 500
OUTSIDE_ROOT = "(outside the server root) "
PATH_FIELDS = ("files_read", "files_written", "modules")


async def lineage_model(runs, notebook: Path, run_id: str, name: str) -> dict:
    """LineageModel of `name` (a metric or stored value) of run `run_id` of `notebook`; `runs` is
    the manager's `runs.Runs`."""
    if not name or len(name) > MAX_NAME_CHARS:
        raise InvalidInput(f"'name' must name a metric or a stored value of the run (1 to {MAX_NAME_CHARS} characters)")
    store = await asyncio.to_thread(runs.store_for, notebook, False)
    if store is None:
        raise NotFound(f"no run {run_id}")
    model = await asyncio.to_thread(_lineage, store, notebook, run_id, name)
    return shown_paths(model, notebook, runs.notebooks.root)


def _lineage(store, notebook: Path, run_id: str, name: str) -> dict:
    from nbscale.kernels.errors import UnknownRun
    from nbscale.kernels.lineage import UnknownLineageName, lineage

    try:
        if Path(store.get_run(run_id)["notebook"]) != notebook:
            raise NotFound(f"no run {run_id} of this notebook")
        return lineage(store, run_id, name)
    except UnknownRun:
        raise NotFound(f"no run {run_id}") from None
    except UnknownLineageName as exc:
        raise NotFound(str(exc), {"names": exc.names}) from None


def shown_paths(model: dict, notebook: Path, root: Path) -> dict:
    """The model with no server path in it (see the module's note)."""
    folder = notebook.parent
    model["run"]["notebook"] = notebook.relative_to(root).as_posix()
    model["run"].pop("host", None)
    for node in model["nodes"]:
        node.pop("store", None)
        for field in PATH_FIELDS:
            node[field] = {_shown(path, folder, root): digest for path, digest in (node.get(field) or {}).items()}
    return model


def _shown(path: str, folder: Path, root: Path) -> str:
    """A path as the fingerprint has it (relative to the notebook folder, or absolute) shown
    relative to the server's root."""
    full = Path(path) if Path(path).is_absolute() else folder / path
    try:
        return full.relative_to(root).as_posix()
    except ValueError:
        return OUTSIDE_ROOT + full.name
