"""Content hashes of steps: equal hash ⇒ the step's cached outputs can be reused."""

from __future__ import annotations

import hashlib
import json

from . import graph
from .settings import replay_source

HASH_VERSION = 2  # 2: parameter values tagged with their types, dict keys in their order


def step_hashes(pipeline, parameter_values: dict | None = None) -> dict[str, str]:
    """Hash of every step: its code, the prelude, the settings it replays, the parameter values
    it reads, its image and the hashes of its upstream steps. `parameter_values` override the parameters' defaults."""
    values = {p.name: p.default for p in pipeline.parameters}
    values.update(parameter_values or {})
    upstream = {s.name: s.after for s in pipeline.steps}
    order = graph.topological_order([s.name for s in pipeline.steps], upstream)
    if order is None:
        return {s.name: "" for s in pipeline.steps}
    by_name = {s.name: s for s in pipeline.steps}
    hashes: dict[str, str] = {}
    for name in order:
        step = by_name[name]
        content = {
            "version": HASH_VERSION,
            "source": step.source,
            "prelude": pipeline.prelude.source,
            "parameters": {p: parameter_key(values.get(p)) for p in step.parameters},
            "inputs": step.sources,
            "upstream": {u: hashes[u] for u in step.after},
            "image": step.image,
        }
        if step.settings:  # only then, so that steps without settings keep their keys
            content["settings"] = [replay_source(s) for s in step.settings]
        hashes[name] = "sha256:" + _json_digest(content)
    return hashes


def parameter_key(value):
    """A JSON value that tells `value` apart from every other value a step could see: plain JSON
    would take {"b": 2, "a": 1} for {"a": 1, "b": 2}, {1: "x"} for {"1": "x"} and (1, 2) for [1, 2],
    and `repr` shortens a big numpy array to its ends. Anything but plain scalars, lists, tuples and
    dicts is known by its type and the digest of its pickle; one that cannot be pickled gets a key
    of its own, so that a step reading it is never taken from the cache."""
    kind = type(value)
    if value is None or kind in (bool, int, float, str):
        return value
    if kind in (list, tuple):
        return [kind.__name__, [parameter_key(item) for item in value]]
    if kind is dict:
        return ["dict", [[parameter_key(k), parameter_key(v)] for k, v in value.items()]]
    import pickle
    import uuid

    try:
        data = pickle.dumps(value, protocol=5)
    except Exception:  # noqa: BLE001 - a lambda, a lock, a generator: nothing tells two of them apart
        return ["unpicklable", f"{kind.__module__}.{kind.__qualname__}", uuid.uuid4().hex]
    return ["object", f"{kind.__module__}.{kind.__qualname__}", hashlib.sha256(data).hexdigest()]


def _json_digest(content: dict) -> str:
    """SHA-256 of `json.dumps(content, sort_keys=True, ensure_ascii=True, default=repr)`."""
    if sum(map(len, content["source"])) < _BIG_SOURCE:
        return hashlib.sha256(_dumps(content).encode()).hexdigest()
    return _json_digest_in_parts(content)


_BIG_SOURCE = 1 << 20  # characters of a step's cells from which its hash is made in parts


def _json_digest_in_parts(content: dict) -> str:
    """`_json_digest(content)` made from the parts of the JSON text, so that the text of a big
    cell is never held as JSON and bytes at once (a 2.75 MB cell: 5.5 MB at the top of the
    compile's memory). The parts are the text: a dict's items in key order joined by ", ", each
    `"key": value`; the cell texts, a list of strings, each written a slice at a time
    (ensure_ascii escapes each character by itself)."""
    digest = hashlib.sha256()
    digest.update(b"{")
    for i, key in enumerate(sorted(content)):
        digest.update(b"%s%s: " % (b", " if i else b"", _dumps(key).encode()))
        value = content[key]
        if key != "source":
            digest.update(_dumps(value).encode())
            continue
        digest.update(b"[")
        for j, text in enumerate(value):
            digest.update(b", \"" if j else b"\"")
            for start in range(0, len(text), _SLICE):
                digest.update(_dumps(text[start:start + _SLICE])[1:-1].encode())
            digest.update(b"\"")
        digest.update(b"]")
    digest.update(b"}")
    return digest.hexdigest()


_SLICE = 1 << 16  # characters of a cell's text written at a time


def _dumps(value) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=True, default=repr)
