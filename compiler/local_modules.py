"""The functions of the notebook's own modules (`helpers.py` beside it), as the analysis sees a call.

Python imports `helpers` from the notebook's folder first, and a helper that changes its argument
in place (`def add_features(df): df["z"] = 1`) changes the step's object: later steps must get it
from that step. The analysis reads such a module's top-level functions (parsed, never run) for the
parameters they change, so `helpers.add_features(train)` changes `train` as a function of the
notebook would. So for a module of a package beside the notebook (`utils/features.py`: `import
utils.features`, `from utils import features`, `from utils.features import add`). What they read
or change of the module's own globals is the module's, not the notebook's. A compile looks only
beside the notebook it compiles (`modules_beside`); the compile cache keeps with its entry every
file a compile looked for, found or not (`looked_up`), and uses the entry only while they are as
they were (`unchanged`).
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
# while `looked_up` records: path → [size, mtime_ns] of each file looked for, or None (no regular file)
_LOOKED_UP: ContextVar[dict | None] = ContextVar("nbscale_modules_looked_up", default=None)


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
    import f as g`, `utils.features.f` for `import utils.features`, `features.f` for `from utils
    import features`."""
    found = {}
    if type(node) is ast.Import:
        for alias in node.names:
            found.update({f"{alias.asname or alias.name}.{name}": callee
                          for name, callee in functions_of(alias.name).items()})
            package = alias.name.partition(".")[0]
            if package != alias.name and alias.asname is None:  # `import utils.features` binds utils too
                found.update({f"{package}.{name}": callee for name, callee in functions_of(package).items()})
    elif not node.level and node.module:
        functions = functions_of(node.module)
        for alias in node.names:
            if alias.name in functions:
                found[alias.asname or alias.name] = functions[alias.name]
            elif alias.name != "*":  # a module of the package
                found.update({f"{alias.asname or alias.name}.{name}": callee
                              for name, callee in functions_of(f"{node.module}.{alias.name}").items()})
    return found


def functions_of(module: str) -> dict[str, Callable]:
    """The top-level functions of module `module` beside the notebook (a dotted name: of a package
    there), by name; {} for any other module (a library's, a file that does not parse)."""
    found = _module_file(module)
    if found is None:
        return {}
    path, st = found
    return _functions(path, st.st_size, st.st_mtime_ns) if st.st_size <= MAX_MODULE_BYTES else {}


def module_source(module: str) -> tuple[str, str] | None:
    """(path relative to the notebook's folder, text) of module `module` beside the notebook, or
    None (a library's, no such file, too big or unreadable)."""
    found = _module_file(module)
    if found is None or found[1].st_size > MAX_MODULE_BYTES:
        return None
    path, st = found
    text = _text(path, st.st_size, st.st_mtime_ns)
    return None if text is None else (os.path.relpath(path, _FOLDER.get()), text)


def _module_file(module: str) -> tuple[str, os.stat_result] | None:
    """(path, stat) of the file Python imports module `module` from, beside the notebook."""
    folder = _FOLDER.get()
    parts = module.split(".")
    if folder is None or not all(part.isidentifier() for part in parts):
        return None
    base = os.path.join(folder, *parts)
    for path in (os.path.join(base, "__init__.py"), base + ".py"):  # (as Python looks: a package first)
        st = _look(path)
        if st is not None:
            return path, st
    return None


def _look(path: str) -> os.stat_result | None:
    """The stat of the regular file at `path`, or None; recorded for `looked_up`."""
    st = _regular_file(path)
    looked = _LOOKED_UP.get()
    if looked is not None:
        looked[path] = _stamp(st)
    return st


def _regular_file(path: str) -> os.stat_result | None:
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return st if stat.S_ISREG(st.st_mode) else None


def _stamp(st: os.stat_result | None) -> list | None:
    return None if st is None else [st.st_size, st.st_mtime_ns]


@contextmanager
def looked_up() -> Iterator[dict]:
    """Within it, each module file the compile looks for is recorded in the dict it yields (path →
    [size, mtime_ns], or None where none was): what a compile of the notebook depends on beyond
    its cells."""
    looked: dict = {}
    token = _LOOKED_UP.set(looked)
    try:
        yield looked
    finally:
        _LOOKED_UP.reset(token)


def unchanged(looked: dict) -> bool:
    """Whether every file `looked_up` recorded is as it was (there, and the same size and time; or
    still not there)."""
    return all(_stamp(_regular_file(path)) == was for path, was in looked.items())


@functools.lru_cache(maxsize=16)
def _bytes(path: str, size: int, mtime_ns: int) -> bytes | None:
    try:  # (not blocking: what was a file as it was looked at may be a FIFO now)
        with os.fdopen(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                return None
            return f.read(MAX_MODULE_BYTES + 1)
    except (OSError, ValueError):
        return None


@functools.lru_cache(maxsize=16)
def _text(path: str, size: int, mtime_ns: int) -> str | None:
    data = _bytes(path, size, mtime_ns)
    return None if data is None else data.decode("utf-8", "replace")


@functools.lru_cache(maxsize=64)
def _functions(path: str, size: int, mtime_ns: int) -> dict[str, Callable]:
    data = _bytes(path, size, mtime_ns)
    try:  # (from bytes: as Python reads a module, by its coding line)
        tree = parse_text(data) if data is not None else None
    except (SyntaxError, ValueError, RecursionError):
        tree = None
    if tree is None:
        return {}
    found = {}
    for stmt in tree.body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            facts = scope_facts(stmt)
            params = list(facts.params)
            found[stmt.name] = Callable(stmt.name, set(), set(), set(),
                                        [i for i, p in enumerate(params) if p in facts.mutated_params], params,
                                        set(facts.deep_mutated) & set(params),
                                        changes_module=bool(facts.global_binds or facts.mutated_free),
                                        **star_parameters(stmt))
    return found
