"""Notebook → pipeline IR: the compiler's one entry point."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from .dataflow import build_flow
from .diagnostics import ERROR, Diagnostic
from .hashing import step_hashes
from .ir import Pipeline
from .layout import lay_out
from .local_modules import modules_beside
from .metric_direction import declared_directions
from .metrics import parse_metrics
from .notebook import Cell, Notebook, read_notebook
from .parameters import immutable_names, parse_parameters
from .parsing import LINE_END, ParsedCells, collector_paused
from .recursion import compiling, with_room_to_recurse
from .settings import Settings, SettingsWalk


def compile_notebook(notebook) -> Pipeline:
    """Compile a notebook (a path or a `Notebook`) into a Pipeline; problems are diagnostics."""
    if not isinstance(notebook, Notebook):
        notebook = read_notebook(notebook)
    with collector_paused(), compiling(), modules_beside(notebook.path):
        try:
            return _compile(notebook)
        except RecursionError:  # deeply nested code: the passes recurse once per level or so
            return with_room_to_recurse(_compile, notebook)


def _compile(notebook: Notebook) -> Pipeline:
    layout = lay_out(notebook)
    parameters, param_problems = parse_parameters([(i, layout.sources[i]) for i in layout.parameters],
                                                  layout.injected)
    cells = ParsedCells(layout.sources)  # each cell parsed once, for every pass below
    metrics = None
    if layout.metrics_cell is not None:  # (before the analysis has walked the cell and let its tree go)
        metrics = parse_metrics(layout.metrics_cell, layout.sources[layout.metrics_cell], layout.metrics_step,
                                cells[layout.metrics_cell])
    names = {p.name for p in parameters}
    walk = SettingsWalk(names, [s.name for s in layout.steps])  # walks each step as the analysis does
    flow = build_flow(layout, names, cells, immutable_names(parameters), also=walk,
                      defaults={p.name: p.default for p in parameters})
    settings = _replay_settings(flow, walk.settings)
    name, name_problems = _pipeline_name(notebook)
    pipeline = Pipeline(
        name=name,
        notebook=Path(notebook.path).name,
        parameters=parameters,
        prelude=flow.prelude,
        steps=flow.steps,
    )
    diagnostics = layout.diagnostics + param_problems + flow.diagnostics + settings.diagnostics + name_problems
    if not pipeline.steps and not any(d.severity == ERROR for d in diagnostics):
        diagnostics.append(nothing_to_run(layout))
    if metrics is not None:
        pipeline.metrics, metric_problems = metrics
        diagnostics += metric_problems
    diagnostics += declared_directions(notebook.metadata)[1]  # metadata.nbscale.metrics: min | max
    pipeline.diagnostics = sorted(_in_characters(diagnostics, layout.sources),
                                  key=lambda d: (d.cell is None, d.cell or 0, d.line or 0))
    by_name = {}
    for step in pipeline.steps:  # (`pipeline.step(name)` per step would be quadratic)
        by_name.setdefault(step.name, step)
    for name, value in step_hashes(pipeline).items():
        by_name[name].hash = value
    return pipeline


def _in_characters(diagnostics: list[Diagnostic], sources: dict[int, str]) -> list[Diagnostic]:
    """Columns counted in characters, as an editor counts them: a syntax tree's are UTF-8 bytes (two
    for each `é` before the name, three for a CJK character). A syntax error's is in characters
    already."""
    counted = []
    for d in diagnostics:
        source = sources.get(d.cell)
        if d.col is not None and d.line is not None and d.code != "syntax-error" and source and not source.isascii():
            lines = LINE_END.split(source)
            text = lines[d.line - 1] if 0 < d.line <= len(lines) else ""
            d = replace(d, col=len(text.encode("utf-8", "surrogatepass")[:d.col - 1].decode("utf-8", "ignore")) + 1)
        counted.append(d)
    return counted



def _replay_settings(flow, settings: Settings) -> Settings:
    """Each step replays the process-wide settings of the steps before it (compiler/settings.py)."""
    for step in flow.steps:
        step.settings = settings.replayed.get(step.name, [])
        step.parameters = sorted(set(step.parameters) | settings.parameters.get(step.name, set()))
    return settings


def nothing_to_run(layout) -> Diagnostic:
    """The notebook makes no step: no code cells, or only empty, comment, skip or prelude cells."""
    why = ("it has no code cells" if not layout.sources
           else "its code cells are empty, comments, or tagged imports, functions, parameters or skip")
    return Diagnostic("nothing-to-run", f"nothing to run: {why}",
                      hint="write code in a cell (untagged cells form one step), or tag a cell step:NAME")


def compile_source(cells, name="notebook") -> Pipeline:
    """Compile cells given as source strings or (source, tags) pairs — for tests and tools."""
    built = []
    for index, cell in enumerate(cells):
        source, tags = (cell, ()) if isinstance(cell, str) else cell
        built.append(Cell(index=index, cell_type="code", source=source, tags=tuple(tags)))
    return compile_notebook(Notebook(path=f"{name}.ipynb", cells=tuple(built)))


def _pipeline_name(notebook: Notebook) -> tuple[str, list[Diagnostic]]:
    """Metadata `nbscale.name`, else the file stem; a mistyped one is an error, not dropped in
    silence (the pipeline would carry a name the user did not choose)."""
    meta = notebook.metadata.get("nbscale") if isinstance(notebook.metadata, dict) else None
    if meta is None:
        return notebook.name, []
    if not isinstance(meta, dict):
        return notebook.name, [_bad_metadata(f"notebook metadata nbscale must be an object, got {_shown(meta)}",
                                             'e.g. {"name": "train", "kfp": {...}}')]
    name = meta.get("name")
    if name is not None and not isinstance(name, str):
        return notebook.name, [_bad_metadata(f"notebook metadata nbscale.name must be a string, got {_shown(name)}",
                                             'e.g. "name": "train"; without it the pipeline is named after the file')]
    return (name if name and name.strip() else notebook.name), []


def _bad_metadata(message: str, hint: str) -> Diagnostic:
    return Diagnostic("bad-metadata", message, hint=hint)


def _shown(value) -> str:
    """A metadata value as JSON, cut short: the message is one line, whatever the notebook holds."""
    text = json.dumps(value, ensure_ascii=True, default=str)
    return text if len(text) <= 60 else text[:57] + "..."
