"""What a step's image must hold: nbscale's run time, and the libraries the steps import.

The defaults (`python:3.11-slim` plus `nbscale[run]`) lack whatever else the steps import;
`missing_packages_note` says so when the project kept the defaults.
"""

from __future__ import annotations

import ast
import sys

from ...ir import Pipeline
from ...pyparse import parse_text
from ...syntax import to_python
from .options import DEFAULT_BASE_IMAGE, KfpOptions, default_packages

# What nbscale[run] brings into a step's image besides nbscale (its own and its dependencies' modules)
RUNTIME_MODULES = {"nbscale", "numpy", "pandas", "pyarrow", "cloudpickle", "fsspec", "dask", "distributed",
                   "joblib", "psutil", "rich", "yaml", "IPython", "nbformat", "click", "kfp"}


def third_party_imports(pipeline: Pipeline) -> list[str]:
    """Top-level modules the steps import that neither the standard library nor nbscale[run]
    provides: what an image built from the defaults would lack."""
    found = set()
    for source in [*pipeline.prelude.source, *(s for step in pipeline.steps for s in step.source)]:
        try:
            tree = parse_text(to_python(source))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.add(node.module.split(".")[0])
    stdlib = set(getattr(sys, "stdlib_module_names", ()))
    return sorted(found - stdlib - RUNTIME_MODULES)


def missing_packages_note(pipeline: Pipeline, options: KfpOptions) -> str | None:
    """A hint when the defaults would give steps an image without the libraries they import."""
    if options.base_image != DEFAULT_BASE_IMAGE or options.packages_to_install != default_packages():
        return None  # the project chose its image or its packages
    modules = third_party_imports(pipeline)
    if not modules:
        return None
    return (f"the steps import {', '.join(modules)}, which {DEFAULT_BASE_IMAGE} with only "
            f"{default_packages()[0]} lacks: set base_image or packages_to_install "
            "(docs/kfp.md, 'nbscale inside the container')")
