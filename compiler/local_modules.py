"""The functions of the notebook's own modules (`helpers.py` beside it), as the analysis sees a call.

Python imports `helpers` from the notebook's folder first, and a helper that changes its argument
in place (`def add_features(df): df["z"] = 1`) changes the step's object: later steps must get it
from that step. The analysis reads such a module's top-level functions (parsed, never run) for the
parameters they change, so `helpers.add_features(train)` changes `train` as a function of the
notebook would. What they read or change of the module's own globals is the module's, not the
notebook's. A compile looks only beside the notebook it compiles (`modules_beside`); the compile
cache keys its entries by those files too (`signature`).
"""

from __future__ import annotations

import ast
import functools
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from .callables import Callable, star_parameters
from .pyparse import parse_text
from .scopes import scope_facts

MAX_MODULE_BYTES = 2_000_000  # a bigger file is no helper module the analysis reads
MAX_LISTED = 1_000  # .py files of a folder the compile cache's key looks at
_FOLDER: ContextVar[str | None] = ContextVar("nbscale_notebook_folder", default=None)


@contextmanager
def modules_beside(notebook_path) -> Iterator[None]:
    """Within it, `functions_of` reads modules in the folder of the notebook at `notebook_path`
    (none for a notebook that is no file: cells given as text)."""
    path = os.fspath(notebook_path)
    token = _FOLDER.set(os.path.dirname(os.path.abspath(path)) if os.path.isfile(path) else None)
    try:
        yield
    finally:
        _FOLDER.reset(token)


def local_functions(node: ast.Import | ast.ImportFrom) -> dict[str, Callable]:
    """The functions an import binds from the notebook's own modules, under the names a call uses:
    `helpers.f` for `import helpers`, `h.f` for `import helpers as h`, `g` for `from helpers
    import f as g`."""
    found = {}
    if type(node) is ast.Import:
        for alias in node.names:
            found.update({f"{alias.asname or alias.name}.{name}": callee
                          for name, callee in functions_of(alias.name).items()})
    elif not node.level and node.module:
        functions = functions_of(node.module)
        found.update({alias.asname or alias.name: functions[alias.name] for alias in node.names
                      if alias.name in functions})
    return found


def functions_of(module: str) -> dict[str, Callable]:
    """The top-level functions of module `module` beside the notebook, by name; {} for any other
    module (a library's, a package, a dotted name, a file that does not parse)."""
    folder = _FOLDER.get()
    if folder is None or not module.isidentifier():
        return {}
    try:
        st = os.stat(os.path.join(folder, module + ".py"))
    except (OSError, ValueError):
        return {}
    if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_MODULE_BYTES:
        return {}
    return _functions(os.path.join(folder, module + ".py"), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _functions(path: str, size: int, mtime_ns: int) -> dict[str, Callable]:
    try:  # (not blocking: what was a file as it was looked at may be a FIFO now)
        with os.fdopen(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                return {}
            tree = parse_text(f.read(MAX_MODULE_BYTES + 1))
    except (OSError, SyntaxError, ValueError, RecursionError):
        return {}
    found = {}
    for stmt in tree.body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            facts = scope_facts(stmt)
            params = list(facts.params)
            found[stmt.name] = Callable(stmt.name, set(), set(), set(),
                                        [i for i, p in enumerate(params) if p in facts.mutated_params], params,
                                        set(facts.deep_mutated) & set(params), **star_parameters(stmt))
    return found


def signature(notebook_path) -> list:
    """(name, size, mtime) of the .py files beside the notebook: what `functions_of` may read."""
    folder = os.path.dirname(os.path.abspath(os.fspath(notebook_path)))
    found = []
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name.endswith(".py") and entry.is_file(follow_symlinks=True) and len(found) < MAX_LISTED:
                    st = entry.stat()
                    found.append([entry.name, st.st_size, st.st_mtime_ns])
    except OSError:
        return []
    return sorted(found)
