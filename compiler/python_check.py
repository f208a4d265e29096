"""What Python's compiler refuses in cells its parser takes, found before a run starts.

The analysis reports the usual cases to `check` (`'return' outside function`, `break` outside a
loop); compiling every cell there would add a third to the check of a 5,000-cell notebook. A run
compiles the cells it is about to run instead, as IPython does (a syntax tree, then bytecode), so
that no step runs and no run is recorded when a later cell could never run.
"""

from __future__ import annotations

import ast

from .diagnostics import Diagnostic
from .pyparse import parse_text
from .recursion import compiling
from .syntax import to_python

FLAGS = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT  # IPython runs a top-level `await`


def refused_cells(pipeline) -> list[Diagnostic]:
    """A syntax-error diagnostic for each cell of the prelude or a step that Python refuses."""
    with compiling():  # (Python's compiler recurses as deep as the process's limit allows)
        return _refused_cells(pipeline)


def _refused_cells(pipeline) -> list[Diagnostic]:
    problems, seen = [], set()
    parts = [(pipeline.prelude.cells, pipeline.prelude.source), *((s.cells, s.source) for s in pipeline.steps)]
    for cells, sources in parts:
        for index, source in zip(cells, sources):
            if index not in seen:
                seen.add(index)
                problem = _refused(index, source)
                if problem is not None:
                    problems.append(problem)
    return problems


def _refused(index: int, source: str) -> Diagnostic | None:
    try:
        python = to_python(source)
    except Exception:  # noqa: BLE001 - the analysis reports what IPython's transformer rejects
        return None
    try:
        compile(parse_text(python), f"<cell {index}>", "exec", FLAGS, dont_inherit=True)
    except SyntaxError as exc:
        return Diagnostic("syntax-error", f"syntax error: {exc.msg}", cell=index, line=exc.lineno, col=exc.offset)
    except RecursionError:
        return Diagnostic("syntax-error", "syntax error: nested too deeply for Python to compile "
                          "(an expression of thousands of terms or calls)", cell=index, line=1, col=1,
                          hint="split it into statements")
    return None
