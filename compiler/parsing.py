"""Cells → Python syntax trees, parsed once per compile and shared by every pass that reads them.

The dataflow analysis, the settings pass and the metrics cell all need a cell's tree; parsing is
the largest single cost of a compile, so `ParsedCells` parses each code cell once, on first use.
A very large cell is parsed about 50 kB of top-level statements at a time (`parse_python`): one
parse of megabytes of source makes CPython's parser hold hundreds of megabytes of state at once,
while the same statements parsed in pieces give the same tree.

Building hundreds of thousands of tree nodes also wakes Python's cycle collector again and again,
each time walking every node made so far; trees hold no cycles, so a compile runs with it paused
(`collector_paused`).
"""

from __future__ import annotations

import ast
import bisect
import gc
import re
from contextlib import contextmanager
from dataclasses import dataclass

from .syntax import to_python

# Cells at least this long (characters) are parsed in pieces of about CHUNK_CHARS each.
BIG_CELL = 200_000
CHUNK_CHARS = 50_000
# A line that starts a top-level statement of its own: not indented, not a comment, and not the
# `else:`/`except:`/... that continues the statement before it. Inside a string or brackets such a
# line is no boundary, and the piece before it does not parse: it is then parsed with more lines.
_STATEMENT_START = re.compile(r"^(?=[^\s#])(?!(?:else|elif|except|finally)\b)", re.MULTILINE)


@dataclass
class ParsedCell:
    """One code cell as plain Python (`syntax.to_python`, line numbers kept) and its tree."""

    index: int
    python: str
    tree: ast.Module | None  # None: the cell does not parse (see `error`)
    error: tuple[int, int, str] | None = None  # (line, column, message) of the syntax error


def parse_cell(index: int, source: str) -> ParsedCell:
    """Parse one cell; a syntax error is kept, never raised."""
    python = source
    try:
        python = to_python(source)
        return ParsedCell(index, python, parse_python(python))
    except SyntaxError as exc:
        return ParsedCell(index, python, None, (exc.lineno or 1, exc.offset or 1, exc.msg))
    except Exception as exc:  # noqa: BLE001 - IPython's transformer rejects some malformed input itself
        return ParsedCell(index, python, None, (1, 1, str(exc)))


class ParsedCells:
    """The code cells of one notebook (index → source), each parsed once, when first asked for."""

    def __init__(self, sources: dict[int, str]):
        self.sources = sources
        self._parsed: dict[int, ParsedCell] = {}

    def __getitem__(self, index: int) -> ParsedCell:
        parsed = self._parsed.get(index)
        if parsed is None:
            parsed = self._parsed[index] = parse_cell(index, self.sources[index])
        return parsed

    def cells(self, indices) -> list[ParsedCell]:
        return [self[i] for i in indices]


def parse_python(python: str) -> ast.Module:
    """`ast.parse(python)`, in pieces when the text is big; raises SyntaxError as it does."""
    if len(python) < BIG_CELL or "\r" in python or "__future__" in python:
        return ast.parse(python)  # (a lone \r ends a line too; a future import may change the grammar)
    starts = [0] + [m.start() for m in _STATEMENT_START.finditer(python) if m.start()] + [len(python)]
    module = ast.Module(body=[], type_ignores=[])
    first, line = 0, 0  # the piece starts at python[starts[first]], on (0-based) line `line`
    while starts[first] < len(python):
        want = CHUNK_CHARS
        while True:
            # the first statement start at or after `want` characters on (at least one statement)
            last = bisect.bisect_left(starts, starts[first] + want, first + 1, len(starts) - 1)
            piece = python[starts[first]:starts[last]]
            try:  # blank lines in front keep the line numbers of the whole cell
                tree = ast.parse("\n" * line + piece)
                break
            except SyntaxError:
                if starts[last] == len(python):
                    return ast.parse(python)  # the error as a parse of the whole cell reports it
                want *= 2
        module.body += tree.body
        line += piece.count("\n")
        first = last
    return module


def child_nodes(node: ast.AST) -> list[ast.AST]:
    """`list(ast.iter_child_nodes(node))`, without its generator per field."""
    found = []
    for name in node._fields:
        value = getattr(node, name, None)
        if isinstance(value, list):
            found += [item for item in value if isinstance(item, ast.AST)]
        elif isinstance(value, ast.AST):
            found.append(value)
    return found


# Fields holding only a context or an operator (`Load()`, `Add()`): nodes without children that no
# visitor here looks at, so `Visitor.generic_visit` does not visit them.
_NO_CHILDREN = frozenset({"ctx", "op", "ops"})
_CHILD_FIELDS: dict[type, tuple[str, ...]] = {}


class Visitor(ast.NodeVisitor):
    """`ast.NodeVisitor` that looks up each node type's `visit_` method once per class, not once
    per node: the analysis visits every node of every cell."""

    _methods: dict[type, object] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._methods = {}

    def visit(self, node):
        method = self._methods.get(node.__class__)
        if method is None:
            method = self._methods[node.__class__] = getattr(type(self), "visit_" + node.__class__.__name__,
                                                             type(self).generic_visit)
        return method(self, node)

    def generic_visit(self, node):
        fields = _CHILD_FIELDS.get(node.__class__)
        if fields is None:
            fields = _CHILD_FIELDS[node.__class__] = tuple(f for f in node._fields if f not in _NO_CHILDREN)
        for name in fields:
            value = getattr(node, name, None)
            if isinstance(value, list):
                for item in value:
                    if isinstance(item, ast.AST):
                        self.visit(item)
            elif isinstance(value, ast.AST):
                self.visit(value)

    def visit_Constant(self, node):
        pass  # no children (NodeVisitor's own visit_Constant looks for visit_Num, visit_Str, ...)


@contextmanager
def collector_paused():
    """Pause the cycle collector while a compile builds its trees; it resumes as it was."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()
