"""Content hashes of steps: equal hash ⇒ the step's cached outputs can be reused."""

from __future__ import annotations

import hashlib
import json

from . import graph
from .settings import replay_source

HASH_VERSION = 1


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
            "parameters": {p: values.get(p) for p in step.parameters},
            "inputs": step.sources,
            "upstream": {u: hashes[u] for u in step.after},
            "image": step.image,
        }
        if step.settings:  # only then, so that steps without settings keep their keys
            content["settings"] = [replay_source(s) for s in step.settings]
        text = json.dumps(content, sort_keys=True, ensure_ascii=True, default=repr)
        hashes[name] = "sha256:" + hashlib.sha256(text.encode()).hexdigest()
    return hashes
