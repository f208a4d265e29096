"""Why one step comes after another: the sentences `nbscale graph --why UP DOWN` prints.

The reasons come from the dataflow analysis (`dataflow.Flow.reasons`): for every name DOWN takes
from UP, where UP binds it or may change it. Cells are numbered from 1, as JupyterLab shows them.
"""

from __future__ import annotations

from .dataflow import Flow, Reason, build_flow
from .errors import NbscaleCompileError
from .graph import ancestors
from .layout import lay_out
from .local_modules import modules_beside
from .notebook import Notebook, cell_label, read_notebook
from .parameters import immutable_names, parse_parameters
from .recursion import compiling


class UnknownStep(NbscaleCompileError):
    """`--why` named a step the notebook does not have."""


def why(notebook, up: str, down: str) -> list[str]:
    """Sentences saying why step `down` comes after step `up` in `notebook` (a path or Notebook)."""
    if not isinstance(notebook, Notebook):
        notebook = read_notebook(notebook)
    layout = lay_out(notebook)
    parameters, _ = parse_parameters([(i, layout.sources[i]) for i in layout.parameters], layout.injected)
    with compiling(), modules_beside(notebook.path):  # (the notebook's modules, as a compile reads them)
        flow = build_flow(layout, {p.name for p in parameters}, immutable=immutable_names(parameters),
                          defaults={p.name: p.default for p in parameters})
    tagged = {s.name: s.after for s in layout.steps}
    return explain(flow, tagged, up, down)


def explain(flow: Flow, tagged: dict[str, list[str]], up: str, down: str) -> list[str]:
    """`tagged`: each step's `after:` targets."""
    names = [s.name for s in flow.steps]
    for name in (up, down):
        if name not in names:
            raise UnknownStep(f"no step named '{name}'; steps: {', '.join(names)}")
    lines = [sentence(r) for r in flow.reasons().get((up, down), [])]
    files = flow.builder.files if flow.builder else None
    handed_on = files.handed_on.get(down, {}).get(up) if files else None
    if handed_on:
        lines.append(f"{down} names the file{'s' if len(handed_on) > 1 else ''} {', '.join(handed_on)}, "
                     f"which {up} writes")
    replaced = files.replaces.get(down, {}).get(up) if files else None
    if replaced:
        lines.append(f"{down} writes the file{'s' if len(replaced) > 1 else ''} {', '.join(replaced)} anew, "
                     f"which {up} reads before")
    if up in tagged.get(down, []):
        lines.append(f"{down} is tagged after:{up}")
    if lines:
        return lines
    upstream = {s.name: s.after for s in flow.steps}
    path = _path(up, down, upstream)
    if path:
        return [f"{down} does not depend on {up} directly; it comes after it through " + " -> ".join(path)]
    if down in ancestors(up, upstream):
        return [f"{down} does not depend on {up}: {up} comes after {down}"]
    return [f"{down} does not depend on {up}: they may run in parallel"]


def sentence(reason: Reason) -> str:
    """"b reads X, which a may change at cell 4, line 2 (m1.fit(X, y))"."""
    head = f"{reason.step} {reason.uses} {reason.name}, which {reason.producer}"
    if reason.how == "hands on":
        with_ = f" together with {', '.join(reason.partners)}" if reason.partners else ""
        return f"{head} hands on{with_}, so that they stay the same objects for a step that may change them"
    site = reason.site
    where = f" at {cell_label(site.cell, site.line)}" if site else ""
    code = f" ({site.code})" if site and site.code else ""
    return f"{head} {reason.how}{where}{code}"


def _path(up, down, upstream):
    """Steps from `up` to `down` along edges (searching upwards from `down`), or None."""
    todo, toward_down = [down], {down: None}  # step → the step after it on the way to `down`
    while todo:
        step = todo.pop(0)
        if step == up:
            path = [up]
            while path[-1] != down:
                path.append(toward_down[path[-1]])
            return path
        for prev in upstream.get(step, ()):
            if prev not in toward_down:
                toward_down[prev] = step
                todo.append(prev)
    return None
