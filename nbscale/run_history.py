"""What `%nbscale runs` and `%nbscale load` read from a notebook's run store and artifact store.

`runs_bundle`: the history as an HTML table and text (texts escaped). `load_step_values`: the values
a step of a run received (its parameters, and its inputs from the steps that handed them on) and,
when it succeeded, the values it produced — from the artifact store, to debug a failed step in the
kernel with exactly what it was given.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from IPython.core.error import UsageError

from .kernels.contract import METRICS_KEY, OK, artifacts_url, run_store_path
from .run_static import e

CLOCK_SKEW_S = 2.0  # between the clocks of the run's process and of the workers that stored its values


def open_store(notebook: Path):
    from .kernels.errors import RunStoreError
    from .kernels.runstore import RunStore

    path = run_store_path(notebook)
    if not path.exists():
        raise UsageError(f"%nbscale: no runs of {notebook.name} yet (no run store at {path})")
    try:
        return RunStore(path)
    except RunStoreError as exc:  # (damaged: a line saying so and how to repair it, not a traceback)
        raise UsageError(f"%nbscale: {exc}") from None


def runs_bundle(notebook: Path, limit: int = 20) -> dict:
    store = open_store(notebook)
    try:
        rows = store.list_runs(str(notebook.resolve()), limit=limit)
    finally:
        store.close()
    if not rows:
        return {"text/plain": f"no runs of {notebook.name} yet"}
    columns = ("run", "status", "engine", "created", "error")
    table = [(r["id"][:12], r["status"], r["engine"], str(r["created"])[:19],
              r["error"] if isinstance(r.get("error"), str) else "") for r in rows]
    text = "\n".join("  ".join(str(v) for v in row).rstrip() for row in [columns, *table])
    head = "".join(f"<th>{c}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{e(v)}</td>" for v in row) + "</tr>" for row in table)
    return {"text/plain": text, "text/html": f"<b>runs of {e(notebook.name)}</b><table><tr>{head}</tr>{body}</table>"}


def load_step_values(notebook: Path, step: str, run_prefix: str | None = None,
                     store_url: str | None = None) -> tuple[dict, list[str]]:
    """(values, notes): what step `step` of the run received, then what it produced."""
    from .compiler import compile_notebook
    from .kernels.runner import stored_digests_of
    from .kernels.store import ArtifactStore

    store = open_store(notebook)
    try:
        run = _the_run(store, notebook, run_prefix)
        stored = stored_digests_of(run["steps"], store.events_since(run["id"]))
    finally:
        store.close()
    rows = {row["step"]: {**row, "run_id": run["id"], "run_finished": run.get("finished"),
                          "stored": stored.get(row["step"])} for row in run["steps"]}
    if step not in rows:
        raise UsageError(f"%nbscale load: run {run['id'][:12]} has no step {step!r} (its steps: {', '.join(rows)})")
    compiled = next((s for s in compile_notebook(notebook).steps if s.name == step), None)
    artifacts = ArtifactStore(store_url or artifacts_url(notebook))
    notes = [] if compiled else [f"step {step!r} is no longer in the notebook: only what it produced is loaded"]
    values = {name: run["parameters"][name] for name in (compiled.parameters if compiled else [])
              if name in (run.get("parameters") or {})}
    for name, producer in (compiled.sources if compiled else {}).items():
        values.update(_stored(artifacts, rows.get(producer), [name], notes, f"input {name!r} (from {producer})"))
    if rows[step]["status"] in OK:
        produced = _stored(artifacts, rows[step], None, notes, f"the values step {step!r} produced")
        produced.pop(METRICS_KEY, None)
        values.update(produced)
    else:
        notes.append(f"step {step!r} ended {rows[step]['status']} in run {run['id'][:12]}: "
                     "only what it received is loaded")
    return values, notes


def _the_run(store, notebook: Path, prefix: str | None) -> dict:
    if prefix:
        return store.get_run(prefix)
    latest = store.list_runs(str(notebook.resolve()), limit=1)
    if not latest:
        raise UsageError(f"%nbscale: no runs of {notebook.name} yet")
    return store.get_run(latest[0]["id"])


def _stored(artifacts, row: dict | None, names, notes: list[str], what: str) -> dict:
    """Values from the artifact under a step row's key; a note (and nothing) when they are not there."""
    if not row or row.get("status") not in OK or not row.get("hash"):
        notes.append(f"{what}: not stored (that step did not succeed in this run)")
        return {}
    from .kernels.errors import ValuesReplaced
    from .kernels.runner import own_values

    recorded = row.get("stored")
    try:
        if recorded:  # (checked as read: another run may store others under the key meanwhile)
            return own_values(artifacts, row["hash"], names, recorded, row["step"], row["run_id"])
        if not _stored_after_its_run(artifacts, row):
            return artifacts.get(row["hash"], names)
    except ValuesReplaced:
        pass
    except KeyError as exc:  # ArtifactNotFound, CorruptArtifact, or a name the artifact lacks
        notes.append(f"{what}: not in the artifact store ({exc})")
        return {}
    notes.append(f"{what}: replaced in the artifact store by a later run's (the step ran again there with the "
                 "same code and inputs: something it read had changed)")
    return {}


def _stored_after_its_run(artifacts, row: dict) -> bool:
    """Whether the values under the key of a step row whose run recorded no digests of them (a step
    found cached, or one that handed nothing on) were stored after its run ended: a later run ran the
    step again with the same code and inputs (what it read had changed) and stored others."""
    try:
        created = float(artifacts.manifest(row["hash"]).get("created") or 0)
    except (KeyError, TypeError, ValueError):  # not there (said when read), or a manifest without a time
        return False
    ended = _epoch(row.get("run_finished"))
    return ended is not None and created > ended + CLOCK_SKEW_S


def _epoch(stamp) -> float | None:
    try:
        return datetime.fromisoformat(stamp).timestamp()
    except (TypeError, ValueError):
        return None
