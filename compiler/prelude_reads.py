"""The files the imports and functions cells read as they run.

Top to bottom, those cells run once, before any step: `CFG = json.load(open("cfg.json"))` there
reads the file as it was before the steps ran. nbscale runs them again before every step, so a
step after one that writes `cfg.json` gets what that step wrote, and every step reads a file that
one of them changes (none of them is reused). The compile warns (`prelude-reads-step-file`) where
such a cell names, as it runs, a file a step writes: a text its top-level code hands to a call
(`open(P)`, `pd.read_csv(DATA_DIR + "/x.csv")`, folded as `path_constants` folds constants; not
in a function's body, which runs when a step calls it), or that the top level of a module of the
notebook it imports names (`import settings`, whose `CFG = json.load(open("config.json"))` runs
then).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

from .effects import dotted_name
from .file_edges import normalised
from .module_files import imported_files
from .parsing import ParsedCell
from .path_constants import JOINS, folded_text, path_constants
from .pyparse import parse_text


def prelude_reads(cells: list[ParsedCell], constants: dict[str, str]) -> list[tuple[int, int, str, str | None]]:
    """(cell, line, file, the module that reads it or None) of each file the prelude's cells
    (`cells`, parsed) may read as they run, named as the steps' scans name it (`file_edges.normalised`)."""
    found = []
    for cell in cells:
        for stmt in cell.tree.body if cell.tree is not None else ():
            found += [(cell.index, stmt.lineno, normalised(text), None) for text in _run_texts(stmt, constants)]
            if type(stmt) in (ast.Import, ast.ImportFrom):
                for module, text in imported_files([ast.unparse(stmt)]).texts.items():
                    found += [(cell.index, stmt.lineno, normalised(t), module) for t in _module_run_texts(text)]
    return found


def _module_run_texts(text: str) -> list[str]:
    try:
        tree = parse_text(text)
    except (SyntaxError, ValueError, RecursionError):
        return []
    constants = path_constants(tree.body, {})  # (its `DIR = "conf"`, as the imports cell's)
    return [found for stmt in tree.body for found in _run_texts(stmt, constants)]


def _run_texts(stmt: ast.stmt, constants: dict[str, str]) -> list[str]:
    """The texts handed to calls that run with `stmt` (none in the body of a function it defines)."""
    texts = []
    for call in _calls_run(stmt):
        if dotted_name(call.func) in JOINS:  # (a name being made, not a file opened)
            continue
        for arg in [*call.args, *(k.value for k in call.keywords)]:
            text = folded_text(arg, constants)
            if text:
                texts.append(text)
    return texts


def _calls_run(node: ast.AST) -> Iterator[ast.Call]:
    if type(node) in (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda):  # only its decorators and defaults run now
        yield from (c for part in [*getattr(node, "decorator_list", ()), *_defaults(node)]
                    for c in ast.walk(part) if type(c) is ast.Call)
        return
    if type(node) is ast.Call:
        yield node
    for child in ast.iter_child_nodes(node):
        yield from _calls_run(child)


def _defaults(function) -> list[ast.expr]:
    return [*function.args.defaults, *(d for d in function.args.kw_defaults if d is not None)]
