"""Names of files held in constants: `CLEAN = DATA_DIR + "/clean.csv"` in the imports cell.

File edges and file versions read the names a step's text writes out (`file_edges`). A step that
writes `df.to_csv(CLEAN)` and a later one that reads `pd.read_csv(CLEAN)` name no file there: they
ran side by side, or the reader stayed cached while the writer wrote the file anew. A constant the
imports cell binds to a text (a literal; `+`, an f-string, `os.path.join`, `Path(…)` and `/` of
such texts) and no step binds again, and a text parameter's default, is written out in the steps'
text for those scans (`with_constants`). Folded from the syntax tree: no code of the notebook runs.
"""

from __future__ import annotations

import ast
import os
import re

from .effects import dotted_name
from .parsing import parse_cell

_JOINS = {"os.path.join", "posixpath.join", "path.join", "join", "Path", "pathlib.Path", "PurePath",
          "PurePosixPath", "str", "os.fspath", "fspath"}
MAX_TEXT = 4096  # (as `file_edges` takes a name)
_NAME = re.compile(r"[A-Za-z_]\w*")


def scanned_steps(constants: dict[str, str], steps) -> list[tuple[str, list[str]]]:
    """(name, its cells' text with the `constants` written out) of each step (`ir.Step`s), for the
    scans of the files they name (`file_edges.file_order`, `file_versions`), but the names a step
    binds again."""
    if constants:  # (a big cell binds tens of thousands of names: only those that are constants are kept)
        rebound = {name for step in steps for name in step.defines if name in constants}
        constants = {name: text for name, text in constants.items() if name not in rebound}
    return [(step.name, with_constants(step.source, constants)) for step in steps]


def prelude_constants(prelude: list[str], parameters: dict[str, object]) -> dict[str, str]:
    """`path_constants` of the imports cells' text (`ir.Prelude.source`), each parsed here."""
    return path_constants([stmt for i, source in enumerate(prelude) for stmt in _statements(i, source)], parameters)


def _statements(index: int, source: str) -> list[ast.stmt]:
    cell = parse_cell(index, source)
    return list(cell.tree.body) if cell.tree is not None else []  # (no syntax error, and not big)


def path_constants(statements, parameters: dict[str, object]) -> dict[str, str]:
    """Name → the text it holds, for the constants the imports cells' top-level `statements` bind
    and the text parameters (`parameters`: name → default value)."""
    known = {name: value for name, value in parameters.items() if isinstance(value, str)}
    for stmt in statements:
        target, value = _assigned(stmt)
        if target is not None:
            folded = _fold(value, known)
            if folded is None:
                known.pop(target, None)
            else:
                known[target] = folded
    return {name: text for name, text in known.items() if text and len(text) <= MAX_TEXT and "\n" not in text}


def with_constants(sources: list[str], constants: dict[str, str]) -> list[str]:
    """The cells' text with each use of a constant written out as its text (`df.to_csv(CLEAN)` →
    `df.to_csv('data/clean.csv')`): for the scans of names, not to run."""
    if not constants:
        return sources
    return [_written_out(source, constants) for source in sources]


def _written_out(source: str, constants: dict[str, str]) -> str:
    used = constants.keys() & set(_NAME.findall(source))  # (not each constant looked for: there may be thousands)
    if not used:
        return source
    pattern = re.compile(r"(?<![\w.'\"])(" + "|".join(map(re.escape, sorted(used, key=len, reverse=True)))
                         + r")(?![\w'\"])(?!\s*=[^=])")
    return pattern.sub(lambda m: repr(constants[m.group(1)]), source)


def _assigned(stmt) -> tuple[str | None, ast.AST | None]:
    if type(stmt) is ast.Assign and len(stmt.targets) == 1 and type(stmt.targets[0]) is ast.Name:
        return stmt.targets[0].id, stmt.value
    if type(stmt) is ast.AnnAssign and type(stmt.target) is ast.Name and stmt.value is not None:
        return stmt.target.id, stmt.value
    return None, None


def _fold(node, known: dict[str, str]) -> str | None:
    """The text `node` evaluates to, from literals and `known` texts only; None otherwise."""
    kind = type(node)
    if kind is ast.Constant:
        return node.value if isinstance(node.value, str) else None
    if kind is ast.Name:
        return known.get(node.id)
    if kind is ast.BinOp and type(node.op) in (ast.Add, ast.Div):
        left, right = _fold(node.left, known), _fold(node.right, known)
        if left is None or right is None:
            return None
        return left + right if type(node.op) is ast.Add else os.path.join(left, right)
    if kind is ast.JoinedStr:
        parts = []
        for part in node.values:
            if type(part) is ast.FormattedValue:
                if part.format_spec is not None or part.conversion not in (-1, ord("s")):
                    return None
                part = part.value
            text = _fold(part, known)
            if text is None:
                return None
            parts.append(text)
        return "".join(parts)
    if kind is ast.Call and not node.keywords and node.args and dotted_name(node.func) in _JOINS:
        texts = [_fold(arg, known) for arg in node.args]
        return None if None in texts else os.path.join(*texts)
    return None
