"""What produced a step run's values, recorded when the step ran: its lineage record.

`step_lineage(spec, upstream, result, outcome)` is called by the task once a step has run (ended
well or not); the runner stores the dict in the run store (`step_runs.lineage`) and
`kernels/lineage.py` joins the records of a run into the lineage of a metric or a value. A record:

    {"version": 1, "step", "hash" (static hash), "key" (cache key), "store" (artifact store URL,
     without credentials), "parameters": {name: value}, "inputs": {name: {"step", "digest"}},
     "outputs": {name: digest}, "kept": [name], "metrics": [name], "schemas": {name: [[column,
     dtype]]}, "files_read" / "files_written" / "modules": {path: digest | None}, "packages":
     {distribution: version}, "imported": [distribution], "truncated": {field: how many left out},
     "incomplete": [reason]}

It holds digests, names and versions, never values (a parameter is a value the user typed: kept
when short). Lists are capped so that a step reading ten thousand files keeps a small record;
`truncated` says how much was left out. Recording never fails the step: a problem becomes an
`error` field.
"""

from __future__ import annotations

import ast
import json
import math
from functools import lru_cache
from urllib.parse import urlsplit, urlunsplit

from .params import recorded

__all__ = ["LINEAGE_VERSION", "file_digests", "public_url", "step_lineage"]

LINEAGE_VERSION = 1
MAX_PATHS = 50  # files read, written, local modules: per field
MAX_PACKAGES = 80
MAX_COLUMNS = 100
MAX_PARAMETER_CHARS = 200  # a longer parameter value is kept as its JSON's start and a note


def public_url(url: str) -> str:
    """`url` without what may be a credential: user info (`s3://key:secret@bucket`), the query
    (signed URLs, `?token=`) and the fragment. A plain path is returned unchanged."""
    try:
        parts = urlsplit(str(url))
        host = parts.hostname or ""
    except ValueError:  # `http://[::1`: nothing of it is shown, it may hold anything
        return "(a malformed URL)"
    if not parts.scheme or len(parts.scheme) == 1:  # a path (or a Windows drive letter)
        return str(url)
    try:
        port = parts.port
    except ValueError:  # a malformed port: left out
        port = None
    if port is not None:
        host = f"{host}:{port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def step_lineage(spec, upstream: dict, result, outcome) -> dict:
    """The lineage record of a step run (`spec`: its StepSpec, `upstream`: step → StepOutcome,
    `result`: the StepResult, `outcome`: the StepOutcome with its output digests)."""
    step = spec.step
    record: dict = {"version": LINEAGE_VERSION, "step": step["name"], "hash": spec.hash, "key": outcome.key}
    try:
        truncated: dict = {}
        record.update(
            store=public_url(spec.store_url),
            parameters=_parameters(step, spec.parameters, truncated),
            inputs={name: {"step": producer, "digest": _digest_of(upstream, producer, name)}
                    for name, producer in sorted(step["sources"].items())},
            outputs=dict(sorted(outcome.digests.items())) if outcome.ok else {},
            kept=sorted(n for n in spec.keep if n in result.namespace_values and n not in result.outputs),
            metrics=sorted(result.metrics or {}),
            schemas=_schemas(result.outputs if outcome.ok else {}, truncated),
        )
        record.update(_dependencies(result.dependencies or {}, spec, truncated))
        if truncated:
            record["truncated"] = truncated
    except Exception as exc:  # noqa: BLE001 - lineage is a record of the run, never its failure
        record["error"] = f"{type(exc).__name__}: {exc}"
    return record


def _digest_of(upstream: dict, producer: str, name: str) -> str | None:
    outcome = upstream.get(producer)
    return outcome.digests.get(name) if outcome is not None else None


def _parameters(step: dict, values: dict, truncated: dict) -> dict:
    kept = {}
    values = recorded({name: values.get(name) for name in step.get("parameters", ())})
    for name in step.get("parameters", ()):
        value = values.get(name)
        if isinstance(value, float) and not math.isfinite(value):
            value = str(value)  # JSON has no NaN or infinity
        text = json.dumps(value, default=str)
        if len(text) > MAX_PARAMETER_CHARS:
            value = text[:MAX_PARAMETER_CHARS] + "…"
            truncated.setdefault("parameters", []).append(name)
        kept[name] = value
    return kept


def _schemas(outputs: dict, truncated: dict) -> dict:
    """[[column, dtype]] of each DataFrame among the outputs (pandas, Dask: metadata, no data read)."""
    schemas = {}
    for name, value in outputs.items():
        dtypes = getattr(value, "dtypes", None)
        if dtypes is None or not hasattr(value, "columns") or not hasattr(dtypes, "items"):
            continue
        try:
            columns = [[str(column), str(dtype)] for column, dtype in dtypes.items()]
        except Exception:  # noqa: BLE001 - an odd frame type: no schema
            continue
        if len(columns) > MAX_COLUMNS:
            truncated[f"schemas.{name}"] = len(columns) - MAX_COLUMNS
        schemas[name] = columns[:MAX_COLUMNS]
    return schemas


def _dependencies(fingerprint: dict, spec, truncated: dict) -> dict:
    """Files, local modules and package versions from the step's dependency fingerprint."""
    imported = _imported_distributions(spec)
    packages = fingerprint.get("distributions") or _versions(imported)
    fields = {
        "files_read": file_digests(fingerprint.get("files_read") or {}),
        "files_written": file_digests(fingerprint.get("files_written") or {}),
        "modules": file_digests(fingerprint.get("modules") or {}),
        "packages": dict(sorted(packages.items())),
        "imported": sorted(d for d in imported if d in packages),
    }
    # the packages the step's code imports are never the ones left out, nor the files and modules in
    # the notebook's folder (relative paths) before those elsewhere (a kernel's or a test run's)
    order = {name: (name not in imported and name != "python", name) for name in fields["packages"]}
    for field, limit in (("files_read", MAX_PATHS), ("files_written", MAX_PATHS), ("modules", MAX_PATHS),
                         ("packages", MAX_PACKAGES)):
        names = sorted(fields[field], key=order.get if field == "packages" else _nearest_first)
        if len(names) > limit:
            truncated[field] = len(names) - limit
            fields[field] = {n: fields[field][n] for n in sorted(names[:limit])}
    fields["incomplete"] = list(fingerprint.get("incomplete") or [])[:10]
    return fields


def _nearest_first(path: str) -> tuple:
    return path.startswith("/"), path


def file_digests(states: dict) -> dict:
    return {path: state.get("digest") if isinstance(state, dict) else None for path, state in sorted(states.items())}


def _imported_distributions(spec) -> set[str]:
    """Distributions providing the top-level modules the step's code (and the prelude) imports."""
    from .interpreter import providers

    sources = list(spec.prelude.get("source") or []) + list(spec.step.get("source") or [])
    tops = set()
    for source in sources:
        tops |= _imported_modules(source)
    found = providers()
    return {dist for top in tops for dist in found.get(top, ())}


@lru_cache(maxsize=512)  # the prelude's cells would be parsed again for every step
def _imported_modules(source: str) -> frozenset[str]:
    # cell by cell, IPython lines (magics, shell) dropped: what is left that parses is enough here
    from ..compiler.pyparse import parse_text  # (here: a worker that records no lineage imports no compiler)

    lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]
    try:
        tree = parse_text("\n".join(lines))
    except SyntaxError:
        return frozenset()
    tops = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            tops |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            tops.add(node.module.split(".")[0])
    return frozenset(tops)


def _versions(distributions: set[str]) -> dict:
    """Installed versions of `distributions`: when the step recorded none (no fingerprint)."""
    import platform

    from .interpreter import installed_versions

    installed = installed_versions()
    versions = {d: installed[d] for d in distributions if d in installed}
    versions["python"] = platform.python_version()
    return versions
