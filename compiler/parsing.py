"""Cells → Python syntax trees, parsed once per compile and shared by every pass that reads them.

The dataflow analysis, the settings pass and the metrics cell all need a cell's tree; parsing is
the largest single cost of a compile, so `ParsedCells` parses each code cell once, on first use,
and the compile lets the tree go once the passes that walk every cell have walked it
(`ParsedCell.release`).
A very large cell is parsed about 10 kB of top-level statements at a time (`parse_python`): one
parse of megabytes of source makes CPython's parser hold hundreds of megabytes of state at once,
while the same statements parsed in pieces give the same tree. Such a cell keeps no tree at all:
parsing it checks its syntax and remembers where its pieces are (`ParsedCell.pieces`), and each
pass parses one piece again when it reaches it (`ParsedCell.parts`), so that the tree of only one
piece lives at a time: the trees of a 2.75 MB cell took 210 MB, one piece's takes about 1 MB. The
passes keep no node either (`analysis.Site` finds its node again when asked for its text).

Building hundreds of thousands of tree nodes also wakes Python's cycle collector again and again,
each time walking every node made so far; trees hold no cycles, so a compile runs with it paused
(`collector_paused`).
"""

from __future__ import annotations

import ast
import bisect
import gc
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from .errors import NbscaleCompileError
from .pyparse import parse_text
from .syntax import to_python

LINE_END = re.compile(r"\r\n|\r|\n")  # the line ends of Python's tokenizer (not str.splitlines's)
# Cells at least this long (characters) are parsed in pieces of about CHUNK_CHARS each.
BIG_CELL = 200_000
CHUNK_CHARS = 10_000
# A line that starts a top-level statement of its own: not indented, not a comment, and not the
# `else:`/`except:`/... that continues the statement before it. Inside a string or brackets such a
# line is no boundary, and the piece before it does not parse: it is then parsed with more lines.
_STATEMENT_START = re.compile(r"^(?=[^\s#])(?!(?:else|elif|except|finally)\b)", re.MULTILINE)


@dataclass
class ParsedCell:
    """One code cell as plain Python (`syntax.to_python`, line numbers kept) and its tree."""

    index: int
    python: str
    tree: ast.Module | None  # None: the cell does not parse (see `error`), or it is big or released (`pieces`)
    error: tuple[int, int, str] | None = None  # (line, column, message) of the syntax error
    # a big cell: (start, end, lines before it) of each piece of `python`, parsed when a pass reads it
    pieces: list[tuple[int, int, int]] | None = None

    def parts(self) -> Iterator[Piece]:
        """The cell's text in pieces of whole top-level statements, in order: one piece holding the
        whole cell, or a big cell's pieces (each parsed when its statements are asked for)."""
        if self.error is not None:
            return
        if self.pieces is None:
            yield Piece(self.python, 0, self.tree)
            return
        for start, end, line in self.pieces:
            yield Piece(self.python[start:end], line)

    def statements(self) -> Iterator[ast.stmt]:
        """The cell's top-level statements, in order; a big cell's parsed a piece at a time."""
        if self.tree is not None:  # (most cells: no piece to make)
            return iter(self.tree.body)
        return (stmt for piece in self.parts() for stmt in piece.statements())

    def release(self) -> None:
        """Let the tree go once the passes that walk every cell have walked this one: a later
        reader (a site's text for `graph --why`) parses the cell again, as one piece. A compile
        then holds one step's trees at a time, not the notebook's, and each freed tree's memory is
        reused by the next: the trees of a 5,000-cell notebook took 60 MB at once, and making and
        freeing them in turn took 5 % less of its compile time."""
        if self.tree is not None:
            self.pieces, self.tree = [(0, len(self.python), 0)], None


@dataclass
class Piece:
    """Whole lines of a cell's Python, after `line` lines of it; its statements' line numbers are
    the cell's."""

    text: str
    line: int
    tree: ast.Module | None = None  # parsed already (a cell that is not big)

    def statements(self) -> list[ast.stmt]:
        tree = self.tree if self.tree is not None else parse_text("\n" * self.line + self.text)
        return tree.body

    def segment(self, node: ast.AST) -> str | None:
        """`ast.get_source_segment` of a node of this piece."""
        if not self.line:
            return ast.get_source_segment(self.text, node)
        shifted = _Span(node.lineno - self.line, node.end_lineno - self.line, node.col_offset, node.end_col_offset)
        return ast.get_source_segment(self.text, shifted)


@dataclass
class _Span:
    lineno: int
    end_lineno: int
    col_offset: int
    end_col_offset: int


def parse_cell(index: int, source: str) -> ParsedCell:
    """Parse one cell; a syntax error is kept, never raised. A big cell keeps where its pieces are
    instead of their trees."""
    python = source
    try:
        python = to_python(source)
        if not _in_pieces(python):
            return ParsedCell(index, python, parse_text(python))
        try:
            pieces = [(start, end, line) for start, end, line, _ in _parsed_pieces(python)]
        except _NoPieces:
            return ParsedCell(index, python, parse_text(python))
        return ParsedCell(index, python, None, pieces=pieces)
    except SyntaxError as exc:
        return ParsedCell(index, python, None, (exc.lineno or 1, exc.offset or 1, exc.msg))
    except SystemError:  # the interpreter's fault, not the cell's: no diagnostic (the compile cache keeps them)
        raise
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
    if not _in_pieces(python):
        return parse_text(python)
    module = ast.Module(body=[], type_ignores=[])
    try:
        for *_, tree in _parsed_pieces(python):
            module.body += tree.body
    except _NoPieces:
        return parse_text(python)  # the error as a parse of the whole cell reports it
    return module


def _in_pieces(python: str) -> bool:
    # (a lone \r ends a line too; a future import may change the grammar)
    return len(python) >= BIG_CELL and "\r" not in python and "__future__" not in python


class _NoPieces(NbscaleCompileError):
    """The text does not parse in pieces: its last piece fails even when it runs to the end."""


def _parsed_pieces(python: str) -> Iterator[tuple[int, int, int, ast.Module]]:
    """(start, end, lines before it, tree) of each piece of about CHUNK_CHARS characters of
    whole top-level statements; raises _NoPieces when the text does not parse so."""
    starts = [0] + [m.start() for m in _STATEMENT_START.finditer(python) if m.start()] + [len(python)]
    first, line = 0, 0  # the piece starts at python[starts[first]], on (0-based) line `line`
    while starts[first] < len(python):
        want = CHUNK_CHARS
        while True:
            # the first statement start at or after `want` characters on (at least one statement)
            last = bisect.bisect_left(starts, starts[first] + want, first + 1, len(starts) - 1)
            piece = python[starts[first]:starts[last]]
            try:  # blank lines in front keep the line numbers of the whole cell
                tree = parse_text("\n" * line + piece)
                break
            except SyntaxError:
                if starts[last] == len(python):
                    raise _NoPieces from None
                want *= 2
        yield starts[first], starts[last], line, tree
        line += piece.count("\n")
        first = last


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
            method = self._methods[node.__class__] = self._method_for(node.__class__)
        return method(self, node)

    @classmethod
    def _method_for(cls, kind: type):
        """The function that visits nodes of type `kind` (a subclass may wrap it)."""
        return getattr(cls, "visit_" + kind.__name__, cls.generic_visit)

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

    # The commonest nodes, visited as `generic_visit` does (children in field order) without its
    # loop over fields; a visitor that looks at one (a call) calls these for its children.
    def visit_Attribute(self, node):
        self.visit(node.value)

    def visit_BinOp(self, node):
        self.visit(node.left)
        self.visit(node.right)

    def visit_Subscript(self, node):
        self.visit(node.value)
        self.visit(node.slice)

    def visit_keyword(self, node):
        self.visit(node.value)

    def visit_Compare(self, node):
        self.visit(node.left)
        for item in node.comparators:
            self.visit(item)

    def visit_Call(self, node):
        self.visit(node.func)
        for item in node.args:
            self.visit(item)
        for item in node.keywords:
            self.visit(item)

    def visit_List(self, node):
        for item in node.elts:
            self.visit(item)

    visit_Tuple = visit_Set = visit_List

    def visit_Expr(self, node):
        self.visit(node.value)


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
