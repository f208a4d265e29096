"""The lineage of a metric or a stored value of a run: what produced it, up the DAG.

`lineage(store, run_id, name)` joins the lineage records the run's steps left in the run store
(`steplineage.step_lineage`, `step_runs.lineage`) into a model: the step that made `name`, and
that step's and every upstream step's hash, cache key, parameters, input and output digests,
files read (path + digest), local modules and package versions, as a list of nodes (the
producing step first) with the edges between them. `nbscale lineage`, the panel's lineage view
and the OpenLineage export (`openlineage.py`) all read this model or `run_nodes`.

A step found cached ran in an earlier run: its node is that run's record, marked `cached_from`
(found by its cache key among the runs of the same run store); when that run is gone, the
stored result's manifest still names its files, modules and versions (`source: "manifest"`).
"""

from __future__ import annotations

from .contract import CACHED, artifacts_url
from .errors import ArtifactNotFound, NbscaleRuntimeError
from .runschema import json_number
from .steplineage import file_digests
from .store import ArtifactStore

__all__ = ["LINEAGE_MODEL_VERSION", "UnknownLineageName", "lineage", "run_nodes", "value_names"]

LINEAGE_MODEL_VERSION = 1
NAMES_LISTED = 40  # names an unknown-name error lists
RECORDED, FROM_RUN, FROM_MANIFEST, NONE = "recorded", "run", "manifest", "none"  # where a node comes from


class UnknownLineageName(NbscaleRuntimeError, LookupError):
    """The run has no metric or stored value of that name; `names` are those it has."""

    def __init__(self, run_id: str, name: str, names: list[str]):
        self.run_id, self.name, self.names = run_id, name, names
        shown = ", ".join(names[:NAMES_LISTED]) + (f" and {len(names) - NAMES_LISTED} more"
                                                    if len(names) > NAMES_LISTED else "")
        super().__init__(f"run {run_id[:12]} has no metric or stored value named {name!r}; "
                         f"it has: {shown or 'none (no step of it recorded lineage)'}")


def lineage(store, run_id: str, name: str) -> dict:
    """The lineage model of metric or value `name` of run `run_id` (a unique prefix works).
    Raises UnknownRun / AmbiguousRunId for the run, UnknownLineageName for the name."""
    run = store.get_run(run_id)
    nodes = run_nodes(store, run)
    kind, step, value = _producer(run, nodes, name)
    if step is None:
        raise UnknownLineageName(run["id"], name, value_names(run, nodes))
    chain = _upstream(nodes, step)
    model = {"version": LINEAGE_MODEL_VERSION, "run": run_summary(run), "name": name, "kind": kind, "step": step,
             "nodes": [nodes[s] for s in chain], "edges": _edges(nodes, chain)}
    if kind == "metric":  # JSON has no NaN or infinity: those are null, and said as text
        model["value"] = json_number(value)
        if model["value"] is None and value is not None:
            model["value_text"] = str(value)
    else:
        model["digest"] = value if kind == "output" else _kept_digest(run, nodes[step], name)
        model["also_made_by"] = [s for s, n in nodes.items() if s != step and name in _made(n)]
    return model


def run_summary(run: dict) -> dict:
    return {"id": run["id"], "notebook": run["notebook"], "pipeline": run.get("pipeline"), "engine": run["engine"],
            "status": run["status"], "parameters": run.get("parameters") or {}, "created": run.get("created"),
            "started": run.get("started"), "finished": run.get("finished"), "host": run.get("owner_host")}


def value_names(run: dict, nodes: dict) -> list[str]:
    """The names `lineage` answers for in this run: metrics, step outputs and kept values."""
    names = {m["name"] for m in run.get("metrics", [])}
    for node in nodes.values():
        names |= _made(node)
    return sorted(names)


def run_nodes(store, run: dict) -> dict[str, dict]:
    """Step name → its lineage node, in run order: the step's record plus its status and times;
    a cached step's from the run that stored its result (or that result's manifest)."""
    earlier = _EarlierRuns(store, run)
    nodes = {}
    for row in run["steps"]:
        node = {"step": row["step"], "status": row["status"], "cached": bool(row.get("cached")),
                "started": row.get("started"), "finished": row.get("finished"), "source": RECORDED,
                "cached_from": None}
        record = row.get("lineage") if isinstance(row.get("lineage"), dict) else None
        if record is None and (row["status"] == CACHED or row.get("cached")) and row.get("hash"):
            record, node["cached_from"] = earlier.record(row["hash"])
            node["source"] = FROM_RUN if record is not None else NONE
            if record is None:
                record = _manifest_record(run, row)
                node["source"] = FROM_MANIFEST if record is not None else NONE
        elif record is None:
            node["source"] = NONE
        node.update(_node_fields(record or {}, row))
        nodes[row["step"]] = node
    return nodes


def _node_fields(record: dict, row: dict) -> dict:
    fields = {key: record.get(key, default) for key, default in (
        ("hash", None), ("key", row.get("hash")), ("store", None), ("parameters", {}), ("inputs", {}),
        ("outputs", {}), ("kept", []), ("metrics", []), ("schemas", {}), ("files_read", {}), ("files_written", {}),
        ("modules", {}), ("packages", {}), ("imported", []), ("truncated", {}), ("incomplete", []))}
    if record.get("error"):
        fields["error"] = record["error"]
    return fields


class _EarlierRuns:
    """The lineage records of the run store's other runs, by cache key, each looked up once."""

    def __init__(self, store, run: dict):
        self.store, self.run = store, run
        self.by_key: dict = {}

    def record(self, key: str) -> tuple[dict | None, str | None]:
        if key not in self.by_key:  # the latest run that stored it
            self.by_key[key] = self.store.stored_lineage(key, self.run["id"])
        return self.by_key[key]


def _manifest_record(run: dict, row: dict) -> dict | None:
    """What the stored result's manifest still says (outputs, files, modules, versions), when the
    run that stored it is gone; only the notebook's own artifact store is looked in."""
    try:
        manifest = ArtifactStore(artifacts_url(run["notebook"])).manifest(row["hash"])
    except (ArtifactNotFound, OSError, ValueError):
        return None
    deps = manifest.get("dependencies") or {}
    outputs = {n: e.get("content") or e.get("digest") for n, e in (manifest.get("outputs") or {}).items()
               if not n.startswith("__nbscale")}
    return {"key": row["hash"], "outputs": outputs, "packages": deps.get("distributions") or {},
            **{field: file_digests(deps.get(field) or {}) for field in ("files_read", "files_written", "modules")}}


def _kept_digest(run: dict, node: dict, name: str) -> str | None:
    """The stored digest of a kept value (the record names it; the manifest has its digest), when
    the store is the notebook's own or another local folder."""
    url = node.get("store") or artifacts_url(run["notebook"])
    if "://" in url and not url.startswith("file://"):  # a remote store: no network call for a digest
        return None
    try:
        entry = ArtifactStore(url).manifest(node["key"])["outputs"].get(name) or {}
    except (ArtifactNotFound, OSError, ValueError, KeyError, TypeError):
        return None
    return entry.get("content") or entry.get("digest")


def _made(node: dict) -> set[str]:
    return set(node.get("outputs") or {}) | set(node.get("kept") or [])


def _producer(run: dict, nodes: dict, name: str) -> tuple[str, str | None, object]:
    """(kind, producing step, metric value or output digest) of `name`; step None when unknown.
    A value several steps hand on (a frame changed in place) is the last one's, in run order."""
    for metric in run.get("metrics", []):
        if metric["name"] == name and metric.get("step") in nodes:
            return "metric", metric["step"], metric["value"]
    for step, node in reversed(list(nodes.items())):
        if name in (node.get("outputs") or {}):
            return "output", step, node["outputs"][name]
        if name in (node.get("kept") or []):
            return "kept", step, None
    return "", None, None


def _upstream(nodes: dict, step: str) -> list[str]:
    """`step` and every step it reads from, transitively, breadth first."""
    chain, queue = [step], [step]
    while queue:
        for source in sorted({i["step"] for i in (nodes[queue.pop(0)].get("inputs") or {}).values()}):
            if source in nodes and source not in chain:
                chain.append(source)
                queue.append(source)
    return chain


def _edges(nodes: dict, chain: list[str]) -> list[dict]:
    edges = []
    for step in chain:
        by_source: dict[str, list[str]] = {}
        for name, given in sorted((nodes[step].get("inputs") or {}).items()):
            by_source.setdefault(given["step"], []).append(name)
        edges += [{"from": source, "to": step, "names": names} for source, names in sorted(by_source.items())]
    return edges
