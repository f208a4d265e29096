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

FLAGS = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT  # IPython runs a top-level `await`


def refused_cells(cells: list[ParsedCell]) -> list[Diagnostic]:
    """A syntax-error diagnostic for each of `cells` that Python's compiler refuses (a cell that
    does not parse is reported by the analysis), and a misplaced-magic one for each cell magic
    below a cell's first line."""
    found = []
    for cell in cells:
        if cell.error is None:
            problem = _refused(cell)
            if problem is not None:
                found.append(problem)
            found += _misplaced_cell_magics(cell)
    return found


# IPython's transformer makes `%%capture` below a cell's first line the line magic `%capture`,
# which fails as the cell runs (UsageError: Line magic function `%capture` not found)
def _misplaced_cell_magics(cell: ParsedCell) -> list[Diagnostic]:
    if "run_line_magic('%" not in cell.python:  # (most cells: one test of the text)
        return []
    found = [found for piece in cell.parts() for found in _line_magics_named_percent(
        piece.tree if piece.tree is not None else ast.Module(body=piece.statements(), type_ignores=[]))]
    return [Diagnostic("misplaced-magic", f"cell magic %%{name} must be the first line of its cell",
                       cell=cell.index, line=line, hint="move it to the first line, or into a cell of its own")
            for name, line in found]


def _line_magics_named_percent(tree) -> list[tuple[str, int]]:
    """(name, line) of each `get_ipython().run_line_magic('%name', ...)` call in `tree`: what
    IPython made of `%%name` (a string that merely reads so is no call)."""
    found = []
    for node in ast.walk(tree):
        if (type(node) is ast.Call and type(node.func) is ast.Attribute and node.func.attr == "run_line_magic"
                and type(node.func.value) is ast.Call and getattr(node.func.value.func, "id", None) == "get_ipython"
                and node.args and type(node.args[0]) is ast.Constant and isinstance(node.args[0].value, str)
                and node.args[0].value.startswith("%")):
            found.append((node.args[0].value[1:], node.lineno))
    return sorted(found, key=lambda f: f[1])


def _refused(cell: ParsedCell) -> Diagnostic | None:
    try:  # (a big cell keeps no tree: each of its pieces is parsed and compiled in turn, one tree at a time)
        for piece in cell.parts():
            tree = piece.tree if piece.tree is not None else ast.Module(body=piece.statements(), type_ignores=[])
            compile(tree, f"<{cell_label(cell.index)}>", "exec", FLAGS, dont_inherit=True)
    except SyntaxError as exc:
        return Diagnostic("syntax-error", f"syntax error: {exc.msg}", cell=cell.index, line=exc.lineno,
                          col=exc.offset)
    except RecursionError:
        return Diagnostic("syntax-error", "syntax error: nested too deeply for Python to compile "
                          "(an expression of thousands of terms or calls)", cell=cell.index, line=1, col=1,
                          hint="split it into statements")
    return None
