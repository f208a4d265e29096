"""Map a step's code and its failures back to the notebook cell and line they came from.

`CellCompiler` (the step shell's compiler) names the code of each cell after its notebook cell:
"<cell 4 [digest]>", or "<cell 4 +2 [digest]>" when its first line is line 3 of the cell (the body
of a cell magic, leading blank lines); the number is the one JupyterLab shows, as a person may
read the name (a warning's place on stderr). The name travels with the code object — also when a
function is pickled by value to another process — so `cell_location` finds the cell index and
line of any frame. `step_error` turns a failure into a `StepError` (the shape of `contract.error_dict`,
plus the cell that was running) and `format_exception` writes the plain-text traceback a user
reads: "cell 4, line 2" (`compiler.notebook.cell_label`) for notebook code, the frames of IPython
and of the executor left out.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
import sys
import traceback
from dataclasses import dataclass, field

import IPython
from IPython.core.compilerop import CachingCompiler

from ..compiler.notebook import cell_index, cell_label, cell_number

__all__ = ["CellCompiler", "Frame", "StepError", "cell_location", "format_exception", "is_cell_code",
           "step_error"]


@dataclass
class Frame:
    """One traceback frame that lies in a notebook cell."""

    cell: int
    line: int | None
    name: str  # function name, "<module>" for the cell's top level


@dataclass
class StepError:
    """Why a step failed, mapped back to the notebook: `contract.error_dict`'s fields, in its order.

    `cell`/`line` locate the deepest frame in a notebook cell (a prelude cell when the failure is
    inside a function defined there); `running_cell` is the step's cell that was executing.
    """

    cell: int | None
    line: int | None
    ename: str
    evalue: str
    traceback: str
    frames: list[Frame] = field(default_factory=list)
    running_cell: int | None = None


# ---------------------------------------------------------------------------------------------
# Code names

_CODE_NAME = re.compile(r"^<cell (\d+)(?: \+(\d+))? \[[0-9a-f]+\]>$")
# Exact line maps for code whose transformation changed line numbers (magics continued over
# several lines), known only in the process that compiled it; the name's offset is the fallback.
_LINE_MAPS: dict[str, tuple[int, ...]] = {}
_LINE_MAPS_MAX = 20_000
_TIMED_CODE = frozenset({"<timed exec>", "<timed eval>"})


def is_cell_code(filename: str) -> bool:
    """Whether `filename` is the name CellCompiler gave code compiled from a notebook cell."""
    return _CODE_NAME.match(filename or "") is not None


class CellCompiler(CachingCompiler):
    """Names each cell's code after its notebook cell, so tracebacks can be mapped back."""

    def __init__(self):
        super().__init__()
        self.current: tuple[int, str] | None = None  # (cell index, original source)
        self.last_parsed: str | None = None

    def ast_parse(self, source, filename="<unknown>", symbol="exec"):
        self.last_parsed = source
        return super().ast_parse(source, filename, symbol)

    def __call__(self, source, filename, symbol, **kwargs):
        # %time / %%time compile the code they parsed last under a fixed name: name it after
        # the cell instead, so a failure in a timed body maps to its line.
        if filename in _TIMED_CODE and self.current is not None and self.last_parsed:
            filename = self.cache(self.last_parsed, raw_code=self.last_parsed)
        return super().__call__(source, filename, symbol, **kwargs)

    def get_code_name(self, raw_code, transformed_code, number):
        if self.current is None:
            return super().get_code_name(raw_code, transformed_code, number)
        cell, source = self.current
        line_map = _line_map(raw_code, transformed_code, _start_line(source, raw_code))
        offset = line_map[0] - 1 if line_map else 0
        digest = hashlib.sha1(f"{cell}\0{offset}\0{transformed_code}".encode()).hexdigest()[:12]
        name = f"<cell {cell_number(cell)}{f' +{offset}' if offset else ''} [{digest}]>"
        if any(line != i + 1 + offset for i, line in enumerate(line_map)):
            if len(_LINE_MAPS) >= _LINE_MAPS_MAX:
                _LINE_MAPS.clear()
            _LINE_MAPS[name] = tuple(line_map)
        return name


def _start_line(source: str, raw_code: str) -> int:
    """0-based line of `source` where `raw_code` (the cell, or a cell magic's body) starts."""
    if raw_code == source or not raw_code.strip():
        return 0
    pos = source.find(raw_code)
    if pos < 0:
        stripped = raw_code.lstrip("\n")
        pos = source.find(stripped.rstrip())
        if pos < 0:
            return 0
        return max(source.count("\n", 0, pos) - (len(raw_code) - len(stripped)), 0)
    return source.count("\n", 0, pos)


def _line_map(raw_code: str, transformed: str, start: int) -> list[int]:
    """1-based cell line for each line of the transformed code.

    IPython's transformations keep line numbers for line magics and `!cmd`, but drop leading
    blank lines and join a magic continued with backslashes into one line.
    """
    raw, new = raw_code.splitlines(), transformed.splitlines()
    if raw == new:
        return [start + j + 1 for j in range(len(new))]
    out = [start + 1] * len(new)
    last = max(len(raw) - 1, 0)
    matcher = difflib.SequenceMatcher(None, raw, new, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        for j in range(j1, j2):
            i = i1 + (j - j1) if tag == "equal" else min(i1 + (j - j1), max(i2 - 1, i1))
            out[j] = start + min(i, last) + 1
    return out


def cell_location(filename: str, lineno: int | None) -> tuple[int, int | None] | None:
    """(cell index, line) for a code name made by CellCompiler, else None."""
    match = _CODE_NAME.match(filename or "")
    if match is None:
        return None
    cell, offset = cell_index(int(match.group(1))), int(match.group(2) or 0)
    if lineno is None:
        return cell, None
    line_map = _LINE_MAPS.get(filename)
    if line_map and 1 <= lineno <= len(line_map):
        return cell, line_map[lineno - 1]
    return cell, lineno + offset


# ---------------------------------------------------------------------------------------------
# Failures

# Frames that are not the user's: IPython's, and those of the modules here that run the cells.
_HIDDEN_DIRS = (os.path.dirname(IPython.__file__) + os.sep,)
_HERE = os.path.dirname(os.path.abspath(__file__))
# (contract.py: the handler of the alarm that raises a timeout in a sleeping step)
_HIDDEN_FILES = frozenset(os.path.join(_HERE, name) for name in ("executor.py", "shell.py", "contract.py"))


def _hidden(filename: str) -> bool:
    return filename.startswith(_HIDDEN_DIRS) or os.path.abspath(filename) in _HIDDEN_FILES


def step_error(exc: BaseException, running_cell: int, sources: dict, *, before_exec: bool) -> StepError:
    """The StepError of `exc`, raised while `running_cell` ran (`before_exec`: it did not compile)."""
    frames: list[Frame] = []
    if isinstance(exc, SyntaxError) and before_exec:  # the cell did not compile
        cell, line = cell_location(exc.filename, exc.lineno) or (running_cell, exc.lineno)
    else:
        for summary in traceback.extract_tb(exc.__traceback__):
            loc = cell_location(summary.filename, summary.lineno)
            if loc is not None:
                frames.append(Frame(cell=loc[0], line=loc[1], name=summary.name))
        cell, line = (frames[-1].cell, frames[-1].line) if frames else (running_cell, None)
    return StepError(
        cell=cell,
        line=line,
        ename=type(exc).__name__,
        evalue=str(exc),  # whole: escape codes in it are shown as text where it is shown
        traceback=format_exception(exc, sources),
        frames=frames,
        running_cell=running_cell,
    )


_MARK = "\x00"  # marks a rewritten filename in a formatted traceback
_MARKED = re.compile(r'File "\x00([^"]*)", line ')


_CAUSE = "\nThe above exception was the direct cause of the following exception:\n\n"
_CONTEXT = "\nDuring handling of the above exception, another exception occurred:\n\n"


def format_exception(exc: BaseException, sources: dict) -> str:
    """Plain-text traceback, "cell 4, line 2" for notebook code, IPython's own frames hidden.

    `sources` maps a cell index to its source, for the line shown under each frame.
    """
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None:  # newest first; each older exception goes in front
        seen.add(id(current))
        parts[:0] = _format_one(current, sources)
        if current.__cause__ is not None:
            older, link = current.__cause__, _CAUSE
        elif current.__context__ is not None and not current.__suppress_context__:
            older, link = current.__context__, _CONTEXT
        else:
            older, link = None, ""
        if older is not None and id(older) in seen:
            older = None
        if older is not None:
            parts.insert(0, link)
        current = older
    return "".join(parts)


def _format_one(exc: BaseException, sources: dict) -> list[str]:
    out: list[str] = []
    summaries = []
    for summary in traceback.extract_tb(exc.__traceback__):
        loc = cell_location(summary.filename, summary.lineno)
        if loc is not None:
            summaries.append(_cell_frame(summary, loc, sources))
        elif not _hidden(summary.filename):
            summaries.append(summary)
    if summaries:
        out.append("Traceback (most recent call last):\n")
        out.extend(traceback.StackSummary.from_list(summaries).format())
    if isinstance(exc, SyntaxError):
        loc = cell_location(exc.filename, exc.lineno)
        if loc is not None:
            # Written out by hand: copying a SyntaxError to relabel it loses its detail at times.
            text = _source_line(sources.get(loc[0]), loc[1]) or (exc.text or "").strip()
            out.append(f"  {cell_label(*loc)}\n" + (f"    {text}\n" if text else ""))
            out.append(f"{type(exc).__name__}: {exc.msg}\n")
            return out
    out.extend(traceback.format_exception_only(type(exc), exc))
    return [_MARKED.sub(r"\1, line ", part) for part in out]


def _cell_frame(summary: traceback.FrameSummary, loc: tuple[int, int | None], sources: dict):
    cell, line = loc
    text = _source_line(sources.get(cell), line)
    if text is None:
        text = summary.line or ""
    extra = {}
    same = text.strip() == (summary.line or "").strip()
    if sys.version_info >= (3, 11) and same and summary.lineno == getattr(summary, "end_lineno", -1):
        extra = {"end_lineno": line, "colno": summary.colno, "end_colno": summary.end_colno}
    return traceback.FrameSummary(  # "\n" ends the line as linecache's do (caret offsets)
        _MARK + cell_label(cell), line, summary.name, lookup_line=False, line=text + "\n", **extra
    )


def _source_line(source: str | None, line: int | None) -> str | None:
    if source is None or not line:
        return None
    lines = source.splitlines()
    return lines[line - 1] if 1 <= line <= len(lines) else None
