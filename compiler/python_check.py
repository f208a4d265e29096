"""What Python's compiler refuses in cells its parser takes: `nonlocal x` with no `x` around it,
a duplicate argument, `yield` in a comprehension, `from __future__ import braces`, blocks nested
too deep. The parse takes them; IPython's `run_cell` would not run them.

The compile asks it of each cell of the prelude and the steps, from the tree the analysis walked,
before the tree is let go (`build_flow`): `check` says what a run would refuse, and a run refuses
it before any step runs. (Compiling a tree costs about a sixth of a compile; parsing it again
would cost a third.)

A notebook of many cells is checked in a forked child process instead, beside the analysis, on a
second core (`RefusalCheck`): it parses and compiles each cell from its text (a quarter of such a
compile), runs ahead of the analysis, and hands its answers back in the order they are asked for.
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import signal
import sys
import threading
from dataclasses import asdict

from .diagnostics import Diagnostic
from .notebook import cell_label
from .parsing import ParsedCell, parse_cell

FLAGS = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT  # IPython runs a top-level `await`
BESIDE_FROM = 200  # cells from which a child process checks them (fewer: the fork costs more than it saves)
_FLUSH_EVERY = 32  # cells the child checks between two writes to the pipe


class RefusalCheck:
    """`refused_cells` of the cells a compile walks (`order`), asked for in that order (`of`). From
    `BESIDE_FROM` cells on, a forked child checks them meanwhile. Not where fork is unsafe (other OSes,
    or other threads in this process: the child would find locks they hold, held for good), nor on
    one core (it would only add its parse to the compile's); and if the child fails, each cell is
    checked here, from the tree the analysis walked, as without it."""

    def __init__(self, sources: dict[int, str], order: list[int], beside: bool | None = None):
        if beside is None:
            beside = len(order) >= BESIDE_FROM and _may_fork()
        self._answers: dict[int, list[Diagnostic]] = {}
        self._child = _checking_child(sources, order) if beside else None

    @property
    def beside(self) -> bool:
        """Whether a child checks the cells (until it fails)."""
        return self._child is not None

    def of(self, cells: list[ParsedCell]) -> list[Diagnostic]:
        found = []
        for cell in cells:
            answer = self._answer(cell.index)
            found += refused_cells([cell]) if answer is None else answer
        return found

    def _answer(self, index: int) -> list[Diagnostic] | None:
        while self._child is not None and index not in self._answers:
            line = self._child[1].readline()
            if not line.endswith("\n"):  # it ended before this cell: every cell from here is checked here
                self.close()
                break
            checked, found = json.loads(line)
            self._answers[checked] = [Diagnostic(**d) for d in found]
        return self._answers.pop(index, None)

    def close(self) -> None:
        """End the child, if it has not ended, and reap it."""
        if self._child is None:
            return
        pid, answers = self._child
        self._child = None
        answers.close()
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)


def _may_fork() -> bool:
    """On Linux, with a second core for the child to run on, and no other thread in this process."""
    return sys.platform.startswith("linux") and len(os.sched_getaffinity(0)) > 1 and threading.active_count() == 1


def _checking_child(sources: dict[int, str], order: list[int]):
    """(pid, its answers): a forked child writing `[index, [diagnostic, ...]]` lines for the cells of
    `order`, in order."""
    read, write = os.pipe()
    pid = os.fork()
    if pid:
        os.close(write)
        return pid, os.fdopen(read, "r", encoding="utf-8")
    status = 1
    try:  # (the child: it leaves by `os._exit`, whatever happens, and runs none of the parent's exit code)
        os.close(read)
        with os.fdopen(write, "w", encoding="utf-8") as out:
            for i, index in enumerate(order):
                found = refused_cells([parse_cell(index, sources[index])])
                out.write(json.dumps([index, [asdict(d) for d in found]]) + "\n")
                if i % _FLUSH_EVERY == 0:
                    out.flush()
        status = 0
    finally:
        os._exit(status)


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
