"""Cells → prelude, parameters, metrics and steps, following the cell tags."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from decimal import Decimal

from .diagnostics import Diagnostic
from .notebook import Notebook, cell_label
from .tags import (
    FUNCTIONS,
    IMPORTS,
    LIST_SEPARATOR,
    MEMORY_FACTORS,
    METRICS,
    PARAMETERS,
    SKIP,
    CellTags,
    acted_on,
    parse_cell_tags,
)

METRICS_STEP = "metrics"
SINGLE_OPTION_TAGS = ("limit", "image", "retries", "cache", "timeout")  # one value a tag (resources: a list)


@dataclass
class StepLayout:
    name: str
    cells: list[int] = field(default_factory=list)
    after: list[str] = field(default_factory=list)
    after_cells: dict[str, int] = field(default_factory=dict)  # after-target → cell that named it
    options: dict = field(default_factory=dict)
    # option ("timeout", None) or ("resources", "cpu") → (value, the tag that gave it, its cell)
    given: dict = field(default_factory=dict)


@dataclass
class Layout:
    sources: dict[int, str]  # code cell index → source
    prelude: list[int] = field(default_factory=list)
    parameters: list[int] = field(default_factory=list)
    injected: list[int] = field(default_factory=list)  # papermill's injected-parameters cells
    skipped: list[int] = field(default_factory=list)
    metrics_cell: int | None = None
    metrics_step: str | None = None
    steps: list[StepLayout] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)


def lay_out(notebook: Notebook) -> Layout:
    layout = Layout(sources={c.index: c.source for c in notebook.cells if c.cell_type == "code"})
    current: StepLayout | None = None
    seen: dict[str, int] = {}  # step name → first cell
    for cell in notebook.cells:
        if cell.cell_type != "code":
            layout.diagnostics += _tags_of_text_cell(cell)
            continue
        tags, problems = parse_cell_tags(cell.tags, cell.index)
        layout.diagnostics += problems
        if "injected-parameters" in cell.tags:
            layout.injected.append(cell.index)
        if tags.role in (IMPORTS, FUNCTIONS, PARAMETERS, SKIP):
            _place_special(layout, cell.index, tags)
            continue
        if tags.role == METRICS:
            current = _metrics_step(layout, cell.index, tags, current, seen)
        elif tags.step and (current is None or tags.step != current.name):
            current = _new_step(layout, tags.step, cell.index, seen)
        elif current is None:
            if not _has_code(cell.source):
                continue  # leading blank or comment-only cells make no step
            current = _new_step(layout, default_step_name(notebook.name), cell.index, seen)
        current.cells.append(cell.index)
        layout.diagnostics += _conflicting_options(current, cell)
        _merge_options(current, tags, cell.index)
    return layout


def _tags_of_text_cell(cell) -> list[Diagnostic]:
    """A markdown or raw cell tagged `step:train` (a heading over the code of the step): nothing of
    it applies, and the code below went into the step before, in silence."""
    ours = acted_on(cell.tags)
    if not ours:
        return []
    shown = ", ".join(repr(t[:60]) for t in ours[:3]) + (f" and {len(ours) - 3} more" if len(ours) > 3 else "")
    return [Diagnostic("tags-on-text-cell", f"the {cell.cell_type} cell's tags {shown} are not applied: "
                                            "nbscale reads the tags of code cells only",
                       cell=cell.index, hint="move them to the code cell they are meant for")]


def default_step_name(notebook_name: str) -> str:
    # Accents come off (é → e); a run of letters with no ASCII form (анализ данных) becomes one
    # '_', and a name left without a letter or digit is "main" rather than a row of underscores.
    # ASCII names keep one '_' per character, as before, so their steps keep their names.
    plain = "".join(c for c in unicodedata.normalize("NFKD", notebook_name) if not unicodedata.combining(c))
    name = re.sub(r"[^A-Za-z0-9_\-]", "_", re.sub(r"[^A-Za-z0-9_\-]*[^\x00-\x7f][^A-Za-z0-9_\-]*", "_", plain))
    if not re.search(r"[A-Za-z0-9]", name):
        return "main"
    return name if re.match(r"[A-Za-z_]", name) else f"nb_{name}"


def _has_code(source: str) -> bool:
    return any(line.strip() and not line.strip().startswith("#") for line in source.splitlines())


def _place_special(layout, index, tags: CellTags):
    target = {IMPORTS: layout.prelude, FUNCTIONS: layout.prelude,
              PARAMETERS: layout.parameters, SKIP: layout.skipped}[tags.role]
    target.append(index)
    if tags.step or tags.has_step_options:
        layout.diagnostics.append(Diagnostic(
            "misplaced-tag", f"a '{tags.role}' cell cannot carry step tags",
            cell=index, hint="move step:, after: and step options to a cell of the step"))


def _metrics_step(layout, index, tags, current, seen):
    if layout.metrics_cell is not None:
        layout.diagnostics.append(Diagnostic(
            "duplicate-metrics", "a notebook has one metrics cell",
            cell=index, hint=f"merge it into the metrics cell ({cell_label(layout.metrics_cell)})"))
        return current
    layout.metrics_cell = index
    name = tags.step or _free_name(METRICS_STEP, seen)
    step = current if current is not None and current.name == name else _new_step(layout, name, index, seen)
    layout.metrics_step = step.name
    return step


def _free_name(name, seen):
    candidate, n = name, 2
    while candidate in seen:
        candidate, n = f"{name}_{n}", n + 1
    return candidate


def _new_step(layout, name, index, seen) -> StepLayout:
    if name in seen:
        layout.diagnostics.append(Diagnostic(
            "duplicate-step", f"step '{name}' is already defined in {cell_label(seen[name])}",
            cell=index, hint="give this step another name, or move its cells next to the first"))
        name = _free_name(name, seen)
    seen[name] = index
    step = StepLayout(name)
    layout.steps.append(step)
    return step


def _merge_options(step: StepLayout, tags: CellTags, index: int):
    for target in tags.after:
        if target not in step.after:
            step.after.append(target)
            step.after_cells[target] = index
    for key, value in tags.options.items():
        if key == "resources":
            step.options.setdefault("resources", {}).update(value)
        else:
            step.options[key] = value


def _conflicting_options(step: StepLayout, cell) -> list[Diagnostic]:
    """A step option given two values (on one cell or two): the last one given applies, in silence
    a reader of the other tag would not expect."""
    found = []
    for option, value, tag in _option_settings(cell.tags):
        earlier = step.given.get(option)
        if earlier is not None and not _same_value(option, earlier[0], value):
            where = "on this cell" if earlier[2] == cell.index else f"on {cell_label(earlier[2])}"
            found.append(Diagnostic(
                "conflicting-option", f"'{tag}' contradicts '{earlier[1]}' {where} for step '{step.name}': "
                                      f"'{tag}', the last given, applies",
                cell=cell.index, hint="give the step this option once"))
        step.given[option] = (value, tag, cell.index)
    return found


def _option_settings(tags) -> list[tuple[tuple, object, str]]:
    """Each step option value the tags give, one per value as written (`resources:cpu=2;memory=4Gi`
    gives two): (option, value, its tag). A malformed one is left out: its error is reported."""
    found = []
    for tag in tags:
        for single in _single_setting_tags(tag):
            parsed, problems = parse_cell_tags([single], 0)
            if problems:
                continue
            for key, value in parsed.options.items():
                items = value.items() if key == "resources" else [(None, value)]
                found += [((key, name), amount, single) for name, amount in items]
    return found


def _single_setting_tags(tag: str) -> list[str]:
    """The option tag as tags of one value each (a resources: list split up); [] for other tags."""
    key, _, value = tag.partition(":")
    if key == "resources":
        return [f"resources:{item.strip()}" for item in LIST_SEPARATOR.split(value) if item.strip()]
    return [tag] if key in SINGLE_OPTION_TAGS else []


def _same_value(option: tuple, a, b) -> bool:
    """Values as parsed (cpu=1 is cpu=1000m, cache:off is cache:false); memory by its bytes (4Gi is 4096Mi)."""
    if option == ("resources", "memory"):
        return _memory_bytes(a) == _memory_bytes(b)
    return a == b


def _memory_bytes(quantity: str) -> Decimal:
    number = quantity.rstrip("kKMGTPEi")
    return Decimal(number) * MEMORY_FACTORS[quantity[len(number):]]
