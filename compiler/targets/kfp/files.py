"""Files one step writes and a later one reads, which a Kubeflow pipeline does not hand on.

On Kubeflow each step runs in a container of its own: a file one writes (`df.to_csv("clean.csv")`)
is not there for the step that reads it, which fails on the cluster. `nbscale run --engine
kfp-local` runs every step in one folder and hides it. The same scan that orders the steps by their
files (`file_edges.file_order`) finds them; a URL (`s3://…`) both reach is no such file.
"""

from __future__ import annotations

import re

from ...diagnostics import Diagnostic
from ...file_edges import file_order
from ...path_constants import prelude_constants, scanned_steps

__all__ = ["file_handoff_warnings"]

_URL = re.compile(r"[A-Za-z][\w+.-]*:/")  # (as the scan writes it: `s3://b/x` is `s3:/b/x`)


def file_handoff_warnings(pipeline) -> list[Diagnostic]:
    """A `kfp-file-handoff` warning at the first cell of each step that names (reads, as far as its
    text tells) a file an earlier step writes and it does not."""
    constants = prelude_constants(pipeline.prelude.source, {p.name: p.default for p in pipeline.parameters})
    bound_before = {*pipeline.prelude.names, *(p.name for p in pipeline.parameters)}
    order = file_order(scanned_steps(constants, pipeline.steps, bound_before))
    found = []
    for step in pipeline.steps:
        for writer, paths in order.handed_on.get(step.name, {}).items():
            # (one the step writes too is in its own container, if it writes before it reads)
            files = [path for path in paths if not _URL.match(path) and step.name not in order.written.get(path, ())]
            if files:
                found.append(Diagnostic(
                    "kfp-file-handoff",
                    f"step '{step.name}' names {', '.join(files)}, which step '{writer}' writes: on Kubeflow each step "
                    "runs in a container of its own, where a file another step wrote is not", cell=step.cells[0],
                    hint="hand the data on as a variable, or write and read it at a URL both steps reach "
                         "(s3://…, gs://…)"))
    return found
