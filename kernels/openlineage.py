"""A run as OpenLineage run events, for Marquez or any other OpenLineage consumer.

`run_events(store, run_id)` gives the events of one run: the run as the parent job (START, then
COMPLETE / FAIL / ABORT), and per step a job of its own with the same pair, whose `parent` facet
names the run. A step's inputs and outputs are datasets: the artifacts it read and wrote (namespace
= the artifact store URL, name = `<cache key>/<value name>`) and the files it read and wrote
(namespace `file://<host>`, name = the absolute path), each with the `nbscale_digest` facet (the
content digest) and, for DataFrames, the `schema` facet. `write_events(events, folder)` writes one
JSON file per event, in time order.

Run ids are UUIDs derived from the nbscale run id (and the step name), so exporting a run twice
gives the same events. Nothing from a URL's user info or query reaches an event
(`steplineage.public_url`): a store URL such as `s3://key:secret@bucket` is `s3://bucket`; an error
message has what looks like a credential masked (`masking.masked`). A run
still running has START events only for what started. Events follow the OpenLineage spec
`SPEC_VERSION` (its JSON schema validates them in tests/kernels/test_openlineage.py).
"""

from __future__ import annotations

import json
import re
import socket
import uuid
from pathlib import Path

from .. import __version__
from .contract import CACHED, CANCELLED, FAILED, SUCCEEDED, UPSTREAM_FAILED, artifacts_url
from .lineage import run_nodes, run_summary
from .runschema import utf8_json
from .steplineage import public_url

__all__ = ["DIGEST_FACET", "DIGEST_FACET_SCHEMA", "PRODUCER", "SCHEMA_URL", "SPEC_VERSION", "default_namespace",
           "event_uuid", "run_events", "write_events"]

SPEC_VERSION = "2-0-2"
SCHEMA_URL = f"https://openlineage.io/spec/{SPEC_VERSION}/OpenLineage.json#/$defs/RunEvent"
PRODUCER = f"https://pypi.org/project/nbscale/{__version__}/"
FACET_URLS = {
    "parent": "https://openlineage.io/spec/facets/1-2-0/ParentRunFacet.json#/$defs/ParentRunFacet",
    "schema": "https://openlineage.io/spec/facets/1-2-0/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet",
    "jobType": "https://openlineage.io/spec/facets/2-0-4/JobTypeJobFacet.json#/$defs/JobTypeJobFacet",
    "errorMessage": "https://openlineage.io/spec/facets/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet",
    "processing_engine": ("https://openlineage.io/spec/facets/1-1-1/ProcessingEngineRunFacet.json"
                          "#/$defs/ProcessingEngineRunFacet"),
}
DIGEST_FACET = "nbscale_digest"
# nbscale's own dataset facet; its schema is this dict (a consumer that does not know it keeps it as is)
DIGEST_FACET_ID = f"https://pypi.org/project/nbscale/{__version__}/spec/facets/1-0-0/NbscaleDigestDatasetFacet.json"
DIGEST_FACET_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": DIGEST_FACET_ID,
    "$defs": {"NbscaleDigestDatasetFacet": {"allOf": [
        {"$ref": f"https://openlineage.io/spec/{SPEC_VERSION}/OpenLineage.json#/$defs/DatasetFacet"},
        {"type": "object", "required": ["digest"], "properties": {
            "digest": {"description": "content digest of the value or file, 'algorithm:hex'",
                       "type": ["string", "null"]},
            "step": {"description": "the nbscale step that produced the value", "type": "string"},
            "key": {"description": "the cache key the value is stored under", "type": "string"}}}]}},
    "type": "object",
    "properties": {DIGEST_FACET: {"$ref": "#/$defs/NbscaleDigestDatasetFacet"}},
}
END_EVENT = {SUCCEEDED: "COMPLETE", CACHED: "COMPLETE", FAILED: "FAIL", CANCELLED: "ABORT", UPSTREAM_FAILED: "ABORT"}
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def default_namespace(notebook: str, host: str | None = None) -> str:
    """The job namespace of a notebook's runs: `nbscale://<host>/<notebook folder>`."""
    folder = Path(notebook).parent.as_posix()
    return public_url(f"nbscale://{host or socket.gethostname()}/{folder.lstrip('/')}")


def event_uuid(run_id: str, step: str | None = None) -> str:
    """The OpenLineage run id of an nbscale run (or of one of its steps): the same on every export."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"nbscale:run:{run_id}" + (f":step:{step}" if step else "")))


def run_events(store, run_id: str, namespace: str | None = None) -> list[dict]:
    """The OpenLineage RunEvents of a run (a unique id prefix works), in time order."""
    run = store.get_run(run_id)
    summary = run_summary(run)
    host = summary.get("host") or socket.gethostname()
    namespace = public_url(namespace) if namespace else default_namespace(run["notebook"], host)
    job_name = Path(run["notebook"]).stem
    parent = {"run": {"runId": event_uuid(run["id"])}, "job": {"namespace": namespace, "name": job_name}}
    nodes = run_nodes(store, run)
    started = summary.get("started") or summary["created"]
    events = _pair(summary["status"], started, summary.get("finished") or started, {
        "run": {"runId": parent["run"]["runId"], "facets": {"processing_engine": _facet(
            "processing_engine", version=__version__, name="nbscale", openlineageAdapterVersion=__version__)}},
        "job": {**parent["job"], "facets": {"jobType": _job_type("DAG")}}}, run.get("error"))
    for step, node in nodes.items():
        body = {"run": {"runId": event_uuid(run["id"], step), "facets": {"parent": _facet("parent", **parent,
                                                                                               root=parent)}},
                "job": {"namespace": namespace, "name": f"{job_name}.{step}", "facets": {"jobType": _job_type("TASK")}},
                "inputs": _inputs(node, nodes, run, host), "outputs": _outputs(node, run, host)}
        began = node.get("started") or started
        events += _pair(node["status"], began, node.get("finished") or began, body, _step_error(run, step))
    return sorted(events, key=lambda e: e["eventTime"])


def write_events(events: list[dict], folder) -> list[Path]:
    """One JSON file per event in `folder` (made if missing): `NNN-<job>-<eventType>.json`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, event in enumerate(events, 1):
        name = _UNSAFE.sub("_", event["job"]["name"])[:100]
        path = folder / f"{i:03d}-{name}-{event['eventType']}.json"
        path.write_text(utf8_json(event, indent=2) + "\n", encoding="utf-8")
        paths.append(path)
    return paths


def _pair(status: str, started: str, finished: str, body: dict, error) -> list[dict]:
    """START and, for a finished status, its end event (ABORT for a step that never ran)."""
    events = [_event("START", started, body)]
    end = END_EVENT.get(status)
    if end is not None:
        ended = _event(end, finished, body)
        if end == "FAIL" and error:
            ended["run"] = {**body["run"], "facets": {**body["run"].get("facets", {}), "errorMessage": _facet(
                "errorMessage", message=_error_text(error), programmingLanguage="python")}}
        events.append(ended)
    return events


def _event(kind: str, when: str, body: dict) -> dict:
    return {"eventType": kind, "eventTime": when, "producer": PRODUCER, "schemaURL": SCHEMA_URL,
            **json.loads(json.dumps(body))}  # a copy per event: the end event gets facets of its own


def _facet(facet: str, **fields) -> dict:
    return {"_producer": PRODUCER, "_schemaURL": FACET_URLS[facet], **fields}


def _job_type(kind: str) -> dict:
    return _facet("jobType", processingType="BATCH", integration="NBSCALE", jobType=kind)


def _digest_facet(digest, step: str, key: str | None) -> dict:
    facet = {"_producer": PRODUCER, "_schemaURL": f"{DIGEST_FACET_ID}#/$defs/NbscaleDigestDatasetFacet",
             "digest": digest, "step": step}
    if key:
        facet["key"] = key
    return {DIGEST_FACET: facet}


def _store_namespace(node: dict, run: dict) -> str:
    url = node.get("store") or artifacts_url(run["notebook"])
    if "://" not in url:  # a local folder
        url = Path(url).absolute().as_uri()
    return public_url(url)


def _artifact(node: dict, run: dict, name: str, digest) -> dict:
    key = node.get("key") or ""
    facets = _digest_facet(digest, node["step"], key)
    columns = (node.get("schemas") or {}).get(name)
    if columns:
        facets["schema"] = _facet("schema", fields=[{"name": c, "type": t} for c, t in columns])
    return {"namespace": _store_namespace(node, run), "name": f"{key}/{name}", "facets": facets}


def _file(path: str, digest, node: dict, run: dict, host: str) -> dict:
    full = path if Path(path).is_absolute() else str(Path(run["notebook"]).parent / path)
    return {"namespace": f"file://{host}", "name": full, "facets": _digest_facet(digest, node["step"], None)}


def _inputs(node: dict, nodes: dict, run: dict, host: str) -> list[dict]:
    datasets = []
    for name, given in sorted((node.get("inputs") or {}).items()):
        producer = nodes.get(given["step"]) or {"step": given["step"]}
        datasets.append(_artifact(producer, run, name, given.get("digest")))
    datasets += [_file(p, d, node, run, host) for p, d in sorted((node.get("files_read") or {}).items())]
    return datasets


def _outputs(node: dict, run: dict, host: str) -> list[dict]:
    datasets = [_artifact(node, run, n, d) for n, d in sorted((node.get("outputs") or {}).items())]
    return datasets + [_file(p, d, node, run, host) for p, d in sorted((node.get("files_written") or {}).items())]


def _step_error(run: dict, step: str):
    row = next((s for s in run["steps"] if s["step"] == step), {})
    return row.get("error")


def _error_text(error) -> str:
    """The error as one message, with what looks like a credential masked (`masking.masked`): a step
    that failed with `ValueError(f"bad token {token}")` had the token sent to the consumer."""
    from .masking import masked

    text = f"{error.get('ename', 'Error')}: {error.get('evalue', '')}" if isinstance(error, dict) else str(error)
    return masked(text[:20000])[:2000]
