"""What Python's compiler refuses in cells its parser takes: `nonlocal x` with no `x` around it,
a duplicate argument, `yield` in a comprehension, `from __future__ import braces`, blocks nested
too deep. The parse takes them; IPython's `run_cell` would not run them.

The compile asks it of each cell of the prelude and the steps, from the tree the analysis walked,
before the tree is let go (`build_flow`): `check` says what a run would refuse, and a run refuses
it before any step runs. (Compiling a tree costs about a sixth of a compile; parsing it again
would cost a third.)
"""

from __future__ import annotations

import ast

from .diagnostics import Diagnostic
from .notebook import cell_label
from .parsing import ParsedCell
from .pyparse import parse_text

FLAGS = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT  # IPython runs a top-level `await`


def refused_cells(cells: list[ParsedCell]) -> list[Diagnostic]:
    """A syntax-error diagnostic for each of `cells` that Python's compiler refuses (a cell that
    does not parse is reported by the analysis)."""
    found = []
    for cell in cells:
        if cell.error is None:
            problem = _refused(cell)
            if problem is not None:
                found.append(problem)
    return found


def _refused(cell: ParsedCell) -> Diagnostic | None:
    try:  # (a big cell keeps no tree: its text is parsed whole again, as IPython will)
        tree = cell.tree if cell.tree is not None else parse_text(cell.python)
        compile(tree, f"<{cell_label(cell.index)}>", "exec", FLAGS, dont_inherit=True)
    except SyntaxError as exc:
        return Diagnostic("syntax-error", f"syntax error: {exc.msg}", cell=cell.index, line=exc.lineno,
                          col=exc.offset)
    except RecursionError:
        return Diagnostic("syntax-error", "syntax error: nested too deeply for Python to compile "
                          "(an expression of thousands of terms or calls)", cell=cell.index, line=1, col=1,
                          hint="split it into statements")
    return None
