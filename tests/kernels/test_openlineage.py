"""kernels/openlineage.py: a real run's OpenLineage events validate against OpenLineage's own JSON
schema (vendored in tests/data/openlineage, see its README) and each facet against its facet
schema; a tampered event fails; a failed run has FAIL and ABORT events; no credential from a
store URL reaches an event; the run ids are stable UUIDs."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from conftest import make_notebook
from jsonschema import Draft202012Validator, FormatChecker
from lineage_notebook import lineage_notebook
from referencing import Registry, Resource

from nbscale.kernels import openlineage
from nbscale.kernels.contract import run_store_path
from nbscale.kernels.runner import RunOptions, run_notebook
from nbscale.kernels.runstore import RunStore

SPEC_FOLDER = Path(__file__).resolve().parent.parent / "data" / "openlineage"
LOCAL = RunOptions(engine="local")


@pytest.fixture(scope="module")
def registry() -> Registry:
    schemas = [json.loads(p.read_text()) for p in sorted(SPEC_FOLDER.glob("*.json"))]
    resources = [Resource.from_contents(s) for s in [*schemas, openlineage.DIGEST_FACET_SCHEMA]]
    return Registry().with_resources((r.id(), r) for r in resources)


def errors(event: dict, registry: Registry) -> list[str]:
    """Every schema error of the event, and of each facet against the schema its _schemaURL names."""
    spec = registry.contents(f"https://openlineage.io/spec/{openlineage.SPEC_VERSION}/OpenLineage.json")
    found = [message for e in Draft202012Validator(spec, registry=registry, format_checker=FormatChecker())
             .iter_errors(event) for message in messages(e)]
    for facet in facets(event):
        validator = Draft202012Validator({"$ref": facet["_schemaURL"]}, registry=registry,
                                         format_checker=FormatChecker())
        found += [f"{facet['_schemaURL']}: {e.message}" for e in validator.iter_errors(facet)]
    return found


def messages(error) -> list[str]:
    """An error's message and those of the errors under it (the spec is a oneOf of event kinds)."""
    return [error.message] + [m for sub in error.context or [] for m in messages(sub)]


def facets(event: dict) -> list[dict]:
    found = [*event["run"].get("facets", {}).values(), *event["job"].get("facets", {}).values()]
    for dataset in event.get("inputs", []) + event.get("outputs", []):
        found += dataset.get("facets", {}).values()
    return found


def events_of(nb, run_id, **options) -> list[dict]:
    store = RunStore(run_store_path(nb))
    try:
        return openlineage.run_events(store, run_id, **options)
    finally:
        store.close()


def test_a_runs_events_validate_and_name_its_datasets(tmp_path, registry):
    nb = lineage_notebook(tmp_path)
    result = run_notebook(nb, {}, options=LOCAL)
    events = events_of(nb, result.run_id)
    for event in events:
        assert errors(event, registry) == [], event
    jobs = [(e["job"]["name"], e["eventType"]) for e in events]
    steps = ["load", "feat", "count", "evaluate", "metrics"]
    assert sorted(jobs) == sorted([("nb", "START"), ("nb", "COMPLETE")]
                                  + [(f"nb.{s}", kind) for s in steps for kind in ("START", "COMPLETE")])
    parent = next(e for e in events if e["job"]["name"] == "nb")
    assert parent["run"]["runId"] == openlineage.event_uuid(result.run_id)
    assert uuid.UUID(parent["run"]["runId"]).version == 5
    assert parent["job"]["namespace"] == openlineage.default_namespace(str(nb.resolve()))
    assert parent["producer"] == openlineage.PRODUCER and parent["schemaURL"] == openlineage.SCHEMA_URL
    load = next(e for e in events if e["job"]["name"] == "nb.load" and e["eventType"] == "COMPLETE")
    assert load["run"]["facets"]["parent"]["run"]["runId"] == parent["run"]["runId"]
    data = next(d for d in load["inputs"] if d["name"].endswith("data.csv"))
    assert data["name"] == str(nb.parent.resolve() / "data.csv")
    assert data["facets"]["nbscale_digest"]["digest"].startswith(("xxh3_128:", "blake2b:"))
    frame = next(d for d in load["outputs"] if d["name"].endswith("/df"))
    assert frame["namespace"] == (nb.parent.resolve() / ".nbscale" / "artifacts").as_uri()
    assert frame["facets"]["schema"]["fields"] == [{"name": "a", "type": "int64"}]
    feat = next(e for e in events if e["job"]["name"] == "nb.feat" and e["eventType"] == "START")
    assert {d["name"] for d in feat["inputs"]} >= {frame["name"]}  # the edge: load's output is feat's input
    assert events == events_of(nb, result.run_id)  # the same events on every export


def test_a_tampered_event_fails_validation(tmp_path, registry):
    nb = lineage_notebook(tmp_path)
    event = events_of(nb, run_notebook(nb, {}, options=LOCAL).run_id)[0]
    assert errors(event, registry) == []
    missing_time = {k: v for k, v in event.items() if k != "eventTime"}
    assert any("eventTime" in e for e in errors(missing_time, registry))
    assert errors({**event, "eventType": "FINISHED"}, registry)
    assert errors({**event, "run": {"runId": "not-a-uuid"}}, registry)
    bad_facet = json.loads(json.dumps(event))
    del bad_facet["job"]["facets"]["jobType"]["integration"]  # required by JobTypeJobFacet only
    assert any("integration" in e for e in errors(bad_facet, registry))


def test_a_failed_run_has_fail_and_abort_events(tmp_path, registry):
    nb = make_notebook(tmp_path, [("x = 1", ["step:a"]), ("y = x / 0", ["step:b"]), ("z = y + 1", ["step:c"])])
    result = run_notebook(nb, {}, options=LOCAL)
    assert result.status == "failed"
    events = events_of(nb, result.run_id)
    for event in events:
        assert errors(event, registry) == [], event
    ends = {e["job"]["name"]: e for e in events if e["eventType"] != "START"}
    assert {name: e["eventType"] for name, e in ends.items()} == {
        "nb": "FAIL", "nb.a": "COMPLETE", "nb.b": "FAIL", "nb.c": "ABORT"}
    assert "ZeroDivisionError" in ends["nb.b"]["run"]["facets"]["errorMessage"]["message"]


def test_no_credential_of_a_store_url_reaches_an_event(tmp_path, registry):
    nb = lineage_notebook(tmp_path)
    store_url = "memory://AKIAUSER:s3cr3tpass@bucket/artifacts?token=t0ken"
    result = run_notebook(nb, {}, options=RunOptions(engine="local", store_url=store_url))
    assert result.status == "succeeded", result.steps
    events = events_of(nb, result.run_id, namespace="nbscale://ns-user:ns-pass@team/models")
    text = json.dumps(events)
    for secret in ("AKIAUSER", "s3cr3tpass", "t0ken", "ns-user", "ns-pass"):
        assert secret not in text
    namespaces = {d["namespace"] for e in events for d in e.get("outputs", []) if "/" in d["name"]}
    assert "memory://bucket/artifacts" in namespaces
    assert {e["job"]["namespace"] for e in events} == {"nbscale://team/models"}
    for event in events:
        assert errors(event, registry) == []


def test_no_credential_a_failing_step_quotes_reaches_an_event(tmp_path, registry):
    # the errorMessage facet held the step's exception message as it was: a step that said which
    # token it refused sent the token to the OpenLineage consumer
    nb = make_notebook(tmp_path, [("token = 'none'", ["parameters"]),
                                  ("raise ValueError(f'bad token {token} for postgresql://me:pw@db/x')", ["step:a"])])
    secret = "sk-" + "LeakMe42" * 4
    result = run_notebook(nb, {"token": secret}, options=LOCAL)
    assert result.status == "failed"
    events = events_of(nb, result.run_id)
    text = json.dumps(events)
    assert secret not in text and "me:pw" not in text
    (failed,) = [e for e in events if e["job"]["name"] == "nb.a" and e["eventType"] == "FAIL"]
    assert failed["run"]["facets"]["errorMessage"]["message"] == "ValueError: bad token <hidden> for <hidden>"
    for event in events:
        assert errors(event, registry) == []


def test_events_are_written_one_file_each_in_time_order(tmp_path):
    nb = lineage_notebook(tmp_path)
    events = events_of(nb, run_notebook(nb, {}, options=LOCAL).run_id)
    paths = openlineage.write_events(events, tmp_path / "out" / "events")
    assert [json.loads(p.read_text()) for p in paths] == events
    assert paths[0].name == "001-nb-START.json" and all(p.parent == tmp_path / "out" / "events" for p in paths)
    assert [e["eventTime"] for e in events] == sorted(e["eventTime"] for e in events)
