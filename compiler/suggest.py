"""Step boundaries for a notebook: which cells to tag `step:` so that independent work runs in parallel.

Every code cell without a role is first a step of its own, and the dataflow analysis draws the edges
between them. Cells are then merged into contiguous steps (a step is a run of cells in notebook
order) as long as a merge costs the critical path no more than the per-step overhead it saves:
a chain folds into one step, tiny cells join their neighbours, independent heavy cells stay
parallel. Cells that must stay together are merged first: a cell whose shell commands or magics
change the process (`%cd`, `!pip install`, `os.chdir`) with the cell after it, and a cell that
changes a value the cell just before it made. A cell of only imports becomes `imports`, one of only
definitions `functions`, and a first cell of only literal assignments `parameters` (papermill's
convention). Existing roles (parameters, metrics, skip...) are kept; step and `after:`
tags are proposed again, a step's options (resources, retries...) stay on the cell that starts it.

Durations, in order of preference: the ones given (a previous run's), the notebook's own execution
metadata (papermill's per-cell `duration`, JupyterLab's recorded timing), else an estimate (a cell
that fits, trains, reads or computes weighs 1, any other 0.1): the speed-up is then relative.
"""

from __future__ import annotations

import ast
import heapq
import itertools
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from .compile import compile_notebook
from .errors import NbscaleCompileError
from .notebook import Cell, Notebook, cell_label, read_notebook
from .output_files import written_to
from .pyparse import parse_text
from .syntax import to_python
from .tags import FUNCTIONS, IMPORTS, PARAMETERS, STEP_NAME, parse_cell_tags

MAX_CELL_SECONDS = 365 * 86400  # a cell's recorded time beyond a year is a broken clock or an edit, not a time
OVERHEAD_S = 0.05  # what one more step costs a run (scheduling, handing values on), measured seconds
ESTIMATE_OVERHEAD = 0.25  # the same, in the units of an estimate (a heavy cell is 1)
HEAVY_CALL = re.compile(r"\.(fit|fit_transform|train|compute|persist|predict|transform)\s*\(|\bread_\w+\s*\(|"
                        r"\b(GridSearchCV|RandomizedSearchCV|cross_val_score|cross_validate|train_test_split)\b|"
                        r"^\s*(for|while)\b", re.MULTILINE)
PROCESS_MAGICS = re.compile(r"^\s*(%cd|%env|%set_env|%pushd|%popd|%run|%load_ext|%reload_ext|%autoreload|!)|"
                            r"\bos\.(chdir|environ\b)|\bsys\.path\.", re.MULTILINE)
STEP_TAG_KEYS = ("step:", "block:", "after:", "prev:")


class SuggestError(NbscaleCompileError):
    """The notebook cannot be split: it does not compile as it is."""


@dataclass
class SuggestedStep:
    name: str
    cells: list[int]
    seconds: float
    after: list[str] = field(default_factory=list)


@dataclass
class Suggestion:
    notebook: str
    steps: list[SuggestedStep]
    tags: dict[int, list[str]]  # cell index → its tags as proposed (every code cell)
    roles: dict[int, str]  # cells given a role they did not have (imports, functions)
    durations: str  # "given", "notebook" or "estimate"
    total: float  # the sum of the steps' durations
    critical_path: float  # the longest chain of dependent steps
    notes: list[str] = field(default_factory=list)
    pipeline: object = None  # the notebook compiled with the proposed tags (compiler.ir.Pipeline)
    sources: dict[int, str] = field(default_factory=dict)  # the code cells the proposal was made from

    @property
    def speedup(self) -> float:
        return self.total / self.critical_path if self.critical_path else 1.0

    def as_dict(self) -> dict:
        return {"notebook": self.notebook, "durations": self.durations, "total": self.total,
                "critical_path": self.critical_path, "speedup": round(self.speedup, 3), "notes": self.notes,
                "roles": {str(c): r for c, r in self.roles.items()},
                "steps": [{"name": s.name, "cells": s.cells, "seconds": s.seconds, "after": s.after}
                          for s in self.steps],
                "tags": {str(c): t for c, t in self.tags.items()}}


def suggest(path, durations: dict[int, float] | None = None, use_notebook_times: bool = True) -> Suggestion:
    """Propose step tags for the notebook at `path`; `durations` (cell → seconds) from a previous run,
    else the notebook's execution metadata (unless `use_notebook_times` is false), else an estimate."""
    notebook = read_notebook(path)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    parsed = {c.index: parse_cell_tags(c.tags, c.index)[0] for c in code}
    roles = {c.index: _role_of(c.source) for c in code if parsed[c.index].role is None}
    roles = {i: r for i, r in roles.items() if r}
    roles.update(_parameters_cell(code, parsed, roles))
    candidates = [c.index for c in code if parsed[c.index].role is None and c.index not in roles and _has_code(c)]
    if not candidates:
        raise SuggestError(f"{notebook.path}: no code cells to split into steps")
    per_cell = _compile_per_cell(notebook, candidates, roles)
    seconds, kind = _durations(notebook, candidates, durations, use_notebook_times)
    sources = {c.index: c.source for c in code}
    edges = {i: {int(up[1:]) for up in per_cell.step(f"c{i}").after} for i in candidates}
    notes: list[str] = []
    segments = _merge(candidates, edges, seconds, _kept_together(candidates, per_cell, sources, notes),
                      forced_starts={i for i in candidates if parsed[i].options},
                      overhead=OVERHEAD_S if kind != "estimate" else ESTIMATE_OVERHEAD)
    steps = _named(segments, sources, parsed, edges, seconds, _headings(notebook))
    tags = _tags(notebook, roles, steps)
    pipeline = _check(notebook, tags)
    weights = {s.name: s.seconds for s in steps}
    return Suggestion(notebook=str(notebook.path), steps=steps, tags=tags, roles=roles, durations=kind,
                      total=sum(weights.values()), critical_path=_longest({s.name: s.after for s in steps}, weights),
                      notes=notes, pipeline=pipeline, sources=sources)


def _has_code(cell: Cell) -> bool:
    return any(line.strip() and not line.strip().startswith("#") for line in cell.source.splitlines())


def _role_of(source: str) -> str | None:
    """imports for a cell of only imports, functions for one of only definitions, else None."""
    try:
        body = parse_text(to_python(source)).body
    except SyntaxError:
        return None
    if body and all(isinstance(s, (ast.Import, ast.ImportFrom)) for s in body):
        return IMPORTS
    if body and all(isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) for s in body):
        return FUNCTIONS
    return None


def _parameters_cell(code: list[Cell], parsed, roles) -> dict[int, str]:
    """papermill's convention: the first code cell after the imports, when it only assigns literals,
    is the parameters cell (unless the notebook has one)."""
    if any(parsed[c.index].role == PARAMETERS for c in code):
        return {}
    first = next((c for c in code if parsed[c.index].role is None and c.index not in roles and _has_code(c)), None)
    if first is None:
        return {}
    try:
        body = parse_text(to_python(first.source)).body
    except SyntaxError:
        return {}
    literal = all(isinstance(s, ast.Assign) and all(isinstance(t, ast.Name) for t in s.targets)
                  and _is_literal(s.value) for s in body)
    return {first.index: PARAMETERS} if body and literal else {}


def _is_literal(node) -> bool:
    try:
        ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):  # what literal_eval raises
        return False
    return True


def _compile_per_cell(notebook: Notebook, candidates: list[int], roles: dict[int, str]):
    chosen = set(candidates)
    cells = []
    for c in notebook.cells:
        tags = tuple(t for t in c.tags if not t.startswith(STEP_TAG_KEYS))
        if c.index in chosen:
            tags = (*tags, f"step:c{c.index}")
        elif c.index in roles:
            tags = (*tags, roles[c.index])
        cells.append(Cell(index=c.index, cell_type=c.cell_type, source=c.source, tags=tags))
    pipeline = compile_notebook(Notebook(path=notebook.path, cells=tuple(cells), metadata=notebook.metadata))
    if pipeline.has_errors:
        first = next(d for d in pipeline.diagnostics if d.severity == "error")
        raise SuggestError(f"{notebook.path}: the notebook must compile cell by cell first: {first.format()}")
    return pipeline


def _kept_together(candidates, per_cell, sources, notes) -> set[int]:
    """Cells that join the cell before them (the pairs are (previous candidate, cell))."""
    joined = set()
    for before, cell in zip(candidates, candidates[1:]):
        if PROCESS_MAGICS.search(sources[before]):
            joined.add(cell)
            notes.append(f"{cell_label(cell)} stays with {cell_label(before)}, which changes the process "
                         "(a magic, a shell command, the working directory or the environment)")
            continue
        step = per_cell.step(f"c{cell}")
        changed = sorted(n for n in step.inputs if n in step.defines and step.sources.get(n) == f"c{before}")
        if changed:
            joined.add(cell)
            notes.append(f"{cell_label(cell)} stays with {cell_label(before)}: it changes "
                         f"{', '.join(changed)}, which {cell_label(before)} makes")
    return joined


def _durations(notebook: Notebook, candidates, given, use_notebook_times) -> tuple[dict[int, float], str]:
    if given and all(i in given for i in candidates):
        return {i: max(0.0, float(given[i])) for i in candidates}, "given"
    recorded = notebook_durations(notebook.path) if use_notebook_times else {}
    if all(i in recorded for i in candidates):
        return {i: recorded[i] for i in candidates}, "notebook"
    sources = {c.index: c.source for c in notebook.cells}
    return {i: 1.0 if HEAVY_CALL.search(sources[i]) else 0.1 for i in candidates}, "estimate"


def notebook_durations(path) -> dict[int, float]:
    """Seconds per cell from the notebook's execution metadata (papermill, or JupyterLab's
    "record timing"); cells without it are left out."""
    try:
        cells = json.loads(Path(path).read_text(encoding="utf-8")).get("cells", [])
    except (OSError, ValueError, AttributeError):
        return {}
    found = {}
    for index, cell in enumerate(cells if isinstance(cells, list) else []):
        meta = cell.get("metadata") if isinstance(cell, dict) else None
        seconds = _seconds(meta) if isinstance(meta, dict) else None
        if seconds is not None:
            found[index] = seconds
    return found


def _seconds(meta: dict) -> float | None:
    """The cell's time: papermill's duration, else JupyterLab's timestamps; None when neither is usable."""
    papermill = meta.get("papermill")
    seconds = _usable(papermill.get("duration")) if isinstance(papermill, dict) else None
    execution = meta.get("execution")
    if seconds is None and isinstance(execution, dict):
        seconds = _usable(_elapsed(execution))
    return seconds


def _elapsed(execution: dict) -> float | None:
    try:
        start = datetime.fromisoformat(str(execution["iopub.execute_input"]).replace("Z", "+00:00"))
        end = datetime.fromisoformat(str(execution["shell.execute_reply"]).replace("Z", "+00:00"))
        return (end - start).total_seconds()
    except (KeyError, ValueError, TypeError, OverflowError):  # TypeError: one time with a zone, one without
        return None


def _usable(seconds) -> float | None:
    """`seconds` when a cell could have taken that long: metadata is edited by hand and by tools, and
    NaN, infinity, a negative time or one over a year would make the speed-up (and the JSON) nonsense."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds <= MAX_CELL_SECONDS:
        return None  # (the comparison also refuses NaN, and an int too large for a float)
    return float(seconds)


def _merge(candidates, edges, seconds, joined, forced_starts, overhead) -> list[list[int]]:
    """Contiguous segments of `candidates`: merged while a merge costs the critical path (each step
    weighing its cells' time plus `overhead`) no more than `overhead`."""
    segments: list[list[int]] = []
    for cell in candidates:
        if segments and cell in joined and cell not in forced_starts:
            segments[-1].append(cell)
        else:
            segments.append([cell])
    segments = _fold_chains(segments, edges, forced_starts)
    while len(segments) > 1:
        ups = _segment_ups(segments, edges)
        weights = [overhead + sum(seconds[c] for c in segment) for segment in segments]
        finish = _finish_times(ups, weights)
        now, best = max(finish), None
        for k, critical in enumerate(_criticals_if_merged(ups, weights, finish, overhead)):
            if segments[k + 1][0] in forced_starts:
                continue
            cost = round(critical - now, 9)  # ties: the first
            if cost <= overhead + 1e-9 and (best is None or cost < best[0]):
                best = (cost, k)
        if best is None:
            break
        k = best[1]
        segments = [*segments[:k], segments[k] + segments[k + 1], *segments[k + 2:]]
    return segments


def _segment_ups(segments, edges) -> list[set[int]]:
    owner = {cell: k for k, segment in enumerate(segments) for cell in segment}
    return [{owner[u] for c in segment for u in edges[c]} - {k} for k, segment in enumerate(segments)]


def _finish_times(ups, weights) -> list[float]:
    finish: list[float] = []
    for k, weight in enumerate(weights):  # upstream segments come first (notebook order)
        finish.append(max((finish[u] for u in ups[k]), default=0.0) + weight)
    return finish


def _criticals_if_merged(ups, weights, finish, overhead) -> list[float]:
    """For each k, the critical path if segments k and k + 1 were one (one overhead fewer), all in one
    pass over the segments and their edges (walking the merged graph for each k made a notebook of
    800 steps take minutes): the longest path either goes through the merged segment, or avoids both
    — then it lies before them, after them, or jumps over them along one edge."""
    n = len(weights)
    downs: list[list[int]] = [[] for _ in range(n)]
    for j, up in enumerate(ups):
        for u in up:
            downs[u].append(j)
    tail = [0.0] * n  # the longest path starting with segment j
    for j in reversed(range(n)):
        tail[j] = weights[j] + max((tail[d] for d in downs[j]), default=0.0)
    before = list(itertools.accumulate(finish, max, initial=0.0))  # before[k]: paths ending before k
    after = list(itertools.accumulate(reversed(tail), max, initial=0.0))[::-1]  # after[k]: starting at k or later
    jumps = sorted((a, b) for b, up in enumerate(ups) for a in up)
    over: list[tuple[float, int]] = []  # (-(length), end) of the edges a -> b with a < k
    criticals, next_jump = [], 0
    for k in range(n - 1):
        while next_jump < len(jumps) and jumps[next_jump][0] < k:
            a, b = jumps[next_jump]
            heapq.heappush(over, (-(finish[a] + tail[b]), b))
            next_jump += 1
        while over and over[0][1] <= k + 1:  # (ends at k or k + 1, or before: for every later k too)
            heapq.heappop(over)
        ready = max((finish[u] for u in (ups[k] | ups[k + 1]) - {k, k + 1}), default=0.0)
        onward = max((tail[d] for d in {*downs[k], *downs[k + 1]} - {k, k + 1}), default=0.0)
        through = ready + weights[k] + weights[k + 1] - overhead + onward
        criticals.append(max(through, before[k], after[k + 2], -over[0][0] if over else 0.0))
    return criticals


def _fold_chains(segments, edges, forced_starts) -> list[list[int]]:
    """Merge each segment into the one before it when that is its only upstream segment and it is
    that one's only downstream segment: a link of a chain, which merging never slows."""
    changed = True
    while changed:
        changed = False
        owner = {cell: k for k, segment in enumerate(segments) for cell in segment}
        ups = [{owner[u] for c in segment for u in edges[c]} - {k} for k, segment in enumerate(segments)]
        downs = [set() for _ in segments]
        for k, up in enumerate(ups):
            for u in up:
                downs[u].add(k)
        for k in range(len(segments) - 1, 0, -1):
            if ups[k] == {k - 1} and downs[k - 1] == {k} and segments[k][0] not in forced_starts:
                segments = [*segments[:k - 1], segments[k - 1] + segments[k], *segments[k + 1:]]
                changed = True
                break
    return segments


def _longest(after: dict[str, list[str]], weights: dict[str, float]) -> float:
    finish: dict[str, float] = {}
    for name in after:  # in notebook order: upstream steps come first
        finish[name] = max((finish[u] for u in after[name]), default=0.0) + weights[name]
    return max(finish.values(), default=0.0)


def _named(segments, sources, parsed, edges, seconds, headings) -> list[SuggestedStep]:
    names: list[str] = []
    for segment in segments:
        first = segment[0]
        base = (parsed[first].step or _comment_name(sources[first])
                or next(filter(None, (headings.get(c) for c in segment)), None)
                or next(filter(None, (_bound_name(sources[c]) for c in segment)), None) or f"step_{len(names) + 1}")
        name, n = base, 2
        while name in names:
            name, n = f"{base}_{n}", n + 1
        names.append(name)
    owner = {cell: names[k] for k, segment in enumerate(segments) for cell in segment}
    return [SuggestedStep(name=names[k], cells=segment, seconds=round(sum(seconds[c] for c in segment), 6),
                          after=sorted({owner[u] for c in segment for u in edges[c] if owner[u] != names[k]},
                                       key=names.index))
            for k, segment in enumerate(segments)]


def _slug(text: str) -> str | None:
    """A step name from the first three words of a comment or heading: "## Load the data" → load_the_data."""
    name = "_".join(w.lower() for w in re.findall(r"[A-Za-z][A-Za-z0-9]*", text)[:3])
    return name if name and STEP_NAME.match(name) else None


def _comment_name(source: str) -> str | None:
    first = next((line.strip() for line in source.splitlines() if line.strip()), "")
    return _slug(first) if first.startswith("#") else None


def _headings(notebook: Notebook) -> dict[int, str]:
    """Code cell index → the name of the markdown heading right before it."""
    found = {}
    for before, cell in zip(notebook.cells, notebook.cells[1:]):
        if before.cell_type == "markdown" and cell.cell_type == "code":
            heading = next((line for line in before.source.splitlines() if line.lstrip().startswith("#")), None)
            name = _slug(heading) if heading else None
            if name:
                found[cell.index] = name
    return found


def _bound_name(source: str) -> str | None:
    """The first name the cell binds to something computed (`x = 1` alone is a setting, not a name for a step)."""
    try:
        body = parse_text(to_python(source)).body
    except SyntaxError:
        return None
    for stmt in body:
        if getattr(stmt, "value", None) is not None and _is_literal(stmt.value):
            continue
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [getattr(stmt, "target", None)]
        for target in targets:
            for node in ast.walk(target) if target is not None else ():
                if isinstance(node, ast.Name) and STEP_NAME.match(node.id):
                    return node.id.lower()
    return None


def _tags(notebook, roles, steps) -> dict[int, list[str]]:
    starts = {s.cells[0]: s.name for s in steps}
    tags = {}
    for c in notebook.cells:
        if c.cell_type != "code":
            continue
        kept = [t for t in c.tags if not t.startswith(STEP_TAG_KEYS)]
        if c.index in starts:
            kept.insert(0, f"step:{starts[c.index]}")
        elif c.index in roles:
            kept.insert(0, roles[c.index])
        tags[c.index] = kept  # a cell with step options always starts a step (`forced_starts`)
    return tags


def _check(notebook: Notebook, tags: dict[int, list[str]]):
    cells = tuple(Cell(index=c.index, cell_type=c.cell_type, source=c.source, tags=tuple(tags.get(c.index, c.tags)))
                  for c in notebook.cells)
    pipeline = compile_notebook(Notebook(path=notebook.path, cells=cells, metadata=notebook.metadata))
    if pipeline.has_errors:  # a bug of this module: say so rather than write a broken notebook
        first = next(d for d in pipeline.diagnostics if d.severity == "error")
        raise SuggestError(f"{notebook.path}: the proposed tags do not compile: {first.format()}")
    return pipeline


def _code_sources(data: dict) -> dict[int, str]:
    cells = data.get("cells", [])
    return {i: "".join(c.get("source", "")) if isinstance(c.get("source"), list) else c.get("source", "")
            for i, c in enumerate(cells) if isinstance(c, dict) and c.get("cell_type") == "code"}


def write_tags(path, tags: dict[int, list[str]], target, sources: dict[int, str] | None = None) -> Path:
    """Write the notebook at `path` to `target` with each code cell's tags replaced by `tags`; the
    rest of the file (outputs, metadata) as it was. Written to a temporary file, then moved.
    `sources`: the code cells the tags were proposed for; if the file's differ now (saved from
    an editor meanwhile), nothing is written and SuggestError says so."""
    source = Path(path)
    data = json.loads(source.read_text(encoding="utf-8"))
    # v3 keeps its cells in worksheets, and the tags were proposed for the upgraded cells: upgrading here
    # would rewrite the whole file in another format, so the user does it knowingly
    if data.get("nbformat") != 4:
        raise SuggestError(f"{source} is an nbformat {data.get('nbformat')} notebook; upgrade it to version 4 "
                           "first (jupyter nbconvert --to notebook --nbformat 4 --inplace NOTEBOOK); nothing written")
    if sources is not None and _code_sources(data) != sources:
        raise SuggestError(f"{source}: its code cells changed since the steps were proposed; nothing written: "
                           "propose again")
    for index, cell in enumerate(data.get("cells", [])):
        if index in tags:
            meta = cell.setdefault("metadata", {})
            if tags[index]:
                meta["tags"] = tags[index]
            else:
                meta.pop("tags", None)
    target = Path(target)
    with written_to(target) as partial:  # (through a symlink to the notebook: the notebook)
        partial.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return target
