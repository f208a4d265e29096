"""Names of files held in constants: `CLEAN = DATA_DIR + "/clean.csv"` in the imports cell.

File edges and file versions read the names a step's text writes out (`file_edges`). A step that
writes `df.to_csv(CLEAN)` and a later one that reads `pd.read_csv(CLEAN)` name no file there: they
ran side by side, or the reader stayed cached while the writer wrote the file anew. A constant the
imports cell binds to a text (a literal; `+`, an f-string, `os.path.join`, `Path(…)` and `/` of
such texts) and no step binds again, and a text parameter's default, is written out in the steps'
text for those scans (`with_constants`). So is a constant one step binds so, once, at its top level,
and nothing else binds (`P = os.path.join("res", "out.txt")`, then `open(P, "w")` there and in later
steps: `step_constants`). Folded from the syntax tree: no code of the notebook runs.
"""

from __future__ import annotations

import ast
import os
import re
from collections import Counter

from .effects import dotted_name
from .parsing import parse_cell

JOINS = {"os.path.join", "posixpath.join", "path.join", "join", "Path", "pathlib.Path", "PurePath",
          "PurePosixPath", "str", "os.fspath", "fspath"}
MAX_TEXT = 4096  # (as `file_edges` takes a name)
# what writing constants out may add to a cell, at least: a 4 KB constant used at each of 50,000 places
# made a 660 KB notebook 200 MB of text to scan (uses past it stay names, their files unseen)
WRITTEN_OUT_ROOM = 1 << 20
_FEW = 8  # constants looked for in a cell's text one by one; more: the cell's names are looked up among them
_NAME = re.compile(r"[A-Za-z_]\w*")
# a top-level `NAME = …` whose value may fold to a text (it starts with a text, a join of texts, or
# a name joined to one) and holds a quote: a cell that may bind a constant (most bind none, and are
# not parsed again for it)
_TEXT_ASSIGNED = re.compile(r"""^[A-Za-z_]\w*[ \t]*(?::[^=\n]*)?=(?!=)[ \t]*"""
                            r"""(?:[rRbBuUfF]{0,2}['"]|(?:[\w.]*\.)?(?:join|Path|PurePath|PurePosixPath|str|fspath)\("""
                            r"""|[A-Za-z_]\w*[ \t]*[+/][^\n]*['"])""", re.MULTILINE)


def scanned_steps(constants: dict[str, str], steps, bound_before=frozenset()) -> list[tuple[str, list[str]]]:
    """(name, its cells' text with the `constants` written out) of each step (`ir.Step`s), for the
    scans of the files they name (`file_edges.file_order`, `file_versions`), but the names a step
    binds again; and the constants a step binds (`step_constants`) that no other step binds, nor
    the imports cells or the parameters (`bound_before`): `steps_path_constants`."""
    constants = steps_path_constants(constants, steps, bound_before)
    return [(step.name, with_constants(step.source, constants)) for step in steps]


def steps_path_constants(constants: dict[str, str], steps, bound_before=frozenset()) -> dict[str, str]:
    """Name → text of the constants written out in the steps' text for the scans (`scanned_steps`)."""
    if constants:  # (a big cell binds tens of thousands of names: only those that are constants are kept)
        rebound = {name for step in steps for name in step.defines if name in constants}
        constants = {name: text for name, text in constants.items() if name not in rebound}
    return {**constants, **_steps_constants(constants, steps, bound_before)}


def _steps_constants(constants: dict[str, str], steps, bound_before) -> dict[str, str]:
    found: dict[str, tuple[str, str]] = {}  # name → (its text, the step binding it)
    for step in steps:
        for name, text in step_constants(step.source, constants).items():
            if name not in bound_before and name not in constants:
                found[name] = (text, "" if name in found else step.name)  # (two steps bind it: no constant)
    if not found:
        return {}
    binders = {}
    for step in steps:
        for name in found.keys() & set(step.defines):
            binders.setdefault(name, set()).add(step.name)
    return {name: text for name, (text, binder) in found.items() if binder and binders.get(name) == {binder}}


def step_constants(sources: list[str], known: dict[str, str]) -> dict[str, str]:
    """Name → text, of the constants one step's cells (`sources`) bind: at their top level, to a text
    folded as in the imports cell, from literals and `known` constants, and bound nowhere else in
    the step (not again, nor in a loop, a function, a `with … as`, an import)."""
    if not any(_TEXT_ASSIGNED.search(source) for source in sources):
        return {}
    statements = [stmt for i, source in enumerate(sources) for stmt in _statements(i, source)]
    found: dict[str, str] = {}
    for stmt in statements:
        target, value = _assigned(stmt)
        if target is not None:
            folded = folded_text(value, {**known, **found})
            if folded is not None and folded and len(folded) <= MAX_TEXT and "\n" not in folded:
                found[target] = folded
    if not found:
        return {}
    bindings = _bindings(ast.Module(body=statements, type_ignores=[]), found.keys())
    return {name: text for name, text in found.items() if bindings[name] == 1}


def _bindings(tree, names) -> Counter:
    """How often `tree` binds (or deletes, or declares global) each of `names`, anywhere in it."""
    counted: Counter = Counter()
    for node in ast.walk(tree):
        kind = type(node)
        if kind is ast.Name and type(node.ctx) is not ast.Load:
            bound = (node.id,)
        elif kind in (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef):
            bound = (node.name,)
        elif kind is ast.alias:
            bound = (node.asname or node.name.split(".")[0],)
        elif kind in (ast.Global, ast.Nonlocal):
            bound = tuple(node.names)
        elif kind in (ast.MatchAs, ast.MatchStar, ast.ExceptHandler):
            bound = (node.name,)
        elif kind is ast.MatchMapping:
            bound = (node.rest,)
        else:
            continue
        counted.update(name for name in bound if name in names)
    return counted


def prelude_constants(prelude: list[str], parameters: dict[str, object]) -> dict[str, str]:
    """`path_constants` of the imports cells' text (`ir.Prelude.source`), each parsed here."""
    return path_constants([stmt for i, source in enumerate(prelude) for stmt in _statements(i, source)], parameters)


def _statements(index: int, source: str) -> list[ast.stmt]:
    cell = parse_cell(index, source)
    return list(cell.tree.body) if cell.tree is not None else []  # (no syntax error, and not big)


def path_constants(statements, parameters: dict[str, object]) -> dict[str, str]:
    """Name → the text it holds, for the constants the imports cells' top-level `statements` bind
    and the text parameters (`parameters`: name → default value)."""
    known = {name: value for name, value in parameters.items() if isinstance(value, str) and len(value) <= MAX_TEXT}
    for stmt in statements:
        target, value = _assigned(stmt)
        if target is not None:
            folded = folded_text(value, known)
            if folded is None:
                known.pop(target, None)
            else:
                known[target] = folded
    return {name: text for name, text in known.items() if text and len(text) <= MAX_TEXT and "\n" not in text}


def with_constants(sources: list[str], constants: dict[str, str]) -> list[str]:
    """The cells' text with each use of a constant written out as its text (`df.to_csv(CLEAN)` →
    `df.to_csv('data/clean.csv')`), and texts joined into one name where the text joins them
    (`os.path.join('data', 'clean.csv')`, `Path('data') / 'clean.csv'` → `'data/clean.csv'`): for the
    scans of names, not to run."""
    return [_joins_folded(_written_out(source, constants) if constants else source) for source in sources]


_LITERAL = r"""(?:'[^'\\\n]{0,4096}'|"[^"\\\n]{0,4096}")"""  # a text without escapes
_JOIN_CALL = re.compile(rf"(?:\b(?:os\.path|posixpath|path)\.|(?<![\w.]))join\("
                        rf"\s*({_LITERAL}(?:\s*,\s*{_LITERAL})+)\s*,?\s*\)")
_PATH_CALL = re.compile(rf"(?<![\w.])(?:pathlib\.)?(?:Pure(?:Posix)?)?Path\(\s*({_LITERAL})\s*\)")
_SLASH = re.compile(rf"({_LITERAL})\s*/\s*({_LITERAL})")
_EACH_LITERAL = re.compile(_LITERAL)


def _joins_folded(source: str) -> str:
    if not ("join(" in source or "Path(" in source or "/" in source) or not ("'" in source or '"' in source):
        return source  # (most cells)
    for _ in range(8):  # (joins of joins: `os.path.join(os.path.join('a', 'b'), 'c')`)
        folded = _PATH_CALL.sub(r"\1", source)
        folded = _JOIN_CALL.sub(lambda m: repr(os.path.join(*map(_text, _EACH_LITERAL.findall(m[1])))), folded)
        folded = _SLASH.sub(lambda m: repr(os.path.join(_text(m[1]), _text(m[2]))), folded)
        if folded == source:
            break
        source = folded
    return source


def _text(literal: str) -> str:
    return literal[1:-1]


def _written_out(source: str, constants: dict[str, str]) -> str:
    if len(constants) <= _FEW and not any(name in source for name in constants):  # (most cells: one test each)
        return source
    used = constants.keys() & set(_NAME.findall(source))  # (not each constant looked for: there may be thousands)
    if not used:
        return source
    pattern = re.compile(r"(?<![\w.'\"])(" + "|".join(map(re.escape, sorted(used, key=len, reverse=True)))
                         + r")(?![\w'\"])(?!\s*=[^=])")
    room = [max(len(source), WRITTEN_OUT_ROOM)]  # what the texts written out may add to the cell

    def text_of(match) -> str:
        text = repr(constants[match.group(1)])
        room[0] -= len(text)
        return text if room[0] >= 0 else match.group(1)

    return pattern.sub(text_of, source)


def _assigned(stmt) -> tuple[str | None, ast.AST | None]:
    if type(stmt) is ast.Assign and len(stmt.targets) == 1 and type(stmt.targets[0]) is ast.Name:
        return stmt.targets[0].id, stmt.value
    if type(stmt) is ast.AnnAssign and type(stmt.target) is ast.Name and stmt.value is not None:
        return stmt.target.id, stmt.value
    return None, None


def folded_text(node, known: dict[str, str]) -> str | None:
    """The text `node` evaluates to, from literals and `known` texts only; None otherwise, and None
    for a text longer than `MAX_TEXT`, at every step of the fold (`P1 = P0 + P0`, `P2 = P1 + P1`, …
    doubles it at each line: 40 lines would ask for terabytes)."""
    text = _folded(node, known)
    return text if text is None or len(text) <= MAX_TEXT else None


def _folded(node, known: dict[str, str]) -> str | None:
    kind = type(node)
    if kind is ast.Constant:
        return node.value if isinstance(node.value, str) else None
    if kind is ast.Name:
        return known.get(node.id)
    if kind is ast.BinOp and type(node.op) in (ast.Add, ast.Div):
        left, right = folded_text(node.left, known), folded_text(node.right, known)
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
            parts.append(folded_text(part, known))
        return _joined(parts, "".join)
    if kind is ast.Call and not node.keywords and node.args and dotted_name(node.func) in JOINS:
        return _joined([folded_text(arg, known) for arg in node.args], lambda texts: os.path.join(*texts))
    return None


def _joined(texts: list, join) -> str | None:
    """`join(texts)`, unless a text is unknown or they are too long together (the join is not made)."""
    if None in texts or sum(map(len, texts)) > MAX_TEXT:
        return None
    return join(texts)
