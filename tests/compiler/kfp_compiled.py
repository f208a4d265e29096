"""Test helpers: a notebook compiled to KFP YAML by the real kfp SDK, and lookups in its spec."""

from __future__ import annotations

import yaml

from nbscale.compiler import compile_notebook
from nbscale.compiler.targets.kfp import KfpOptions, generate, write_yaml

TRICKY = "it's a \"test\" {not a format} {{ $.inputs }}\nsecond line\ttab \\ back"


def compile_yaml(notebook, tmp_path, options=None, name="pipeline"):
    """(KfpModule, YAML path, YAML documents); the DSL module is kept as NAME_dsl.py."""
    pipeline = compile_notebook(notebook)
    module = generate(pipeline, options or KfpOptions())
    path = write_yaml(module, tmp_path / f"{name}.yaml", python_path=tmp_path / f"{name}_dsl.py")
    docs = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    return module, path, docs


def executors(spec):
    return spec["deploymentSpec"]["executors"]


def task_of(spec, display):
    tasks = spec["root"]["dag"]["tasks"]
    return next(t for t in tasks.values() if t["taskInfo"]["name"] == display)


def executor_of(spec, display):
    component = spec["components"][task_of(spec, display)["componentRef"]["name"]]
    return executors(spec)[component["executorLabel"]]
