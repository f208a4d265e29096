"""The files a step names through the notebook's own modules it imports.

A step that imports `gen_mod` reads `gen_mod.py` as surely as one that opens it: when an earlier
step writes that file (`open("gen_mod.py", "w")`, `%%writefile pk/gen.py`), the importer must come
after the writer, and be decided when the writer has run (its module may be new), as for a data
file the two name (`file_edges`). And a module beside the notebook may itself name the files it
reads (`CFG = json.load(open("config.json"))` in `settings.py`, or in a function of it the step
calls): they count as named by each step that imports it. So for each step, the files Python may
load each module it imports from (`pk/__init__.py`, `pk/gen.py`, `pk/gen/__init__.py`) and the
texts of those found beside the notebook, and of the modules they import in turn. Read, never run
(`local_modules.module_source`, which the compile cache's key records).
"""

from __future__ import annotations

import ast
import functools
import re
from dataclasses import dataclass, field

from .local_modules import module_source
from .pyparse import parse_text

MAX_MODULES = 100  # modules of the notebook's own read for one step, imports of imports included
# `import a.b as c, d`; `from a.b import (c, d as e)`; `importlib.import_module("a.b")`, `__import__("a")`
_IMPORT = re.compile(r"^[ \t]*(?:import[ \t]+(?P<modules>[\w. \t,]+)|from[ \t]+(?P<module>[\w.]+)[ \t]+import[ \t]+"
                     r"(?:\((?P<grouped>[\w \t,\n]+)\)|(?P<names>[\w \t,*]+(?:\\\n[\w \t,*]+)*)))", re.MULTILINE)
_IMPORT_CALL = re.compile(r"""\b(?:import_module|__import__)\(\s*(['"])(?P<module>[\w.]+)\1""")
_ALIAS = re.compile(r"[ \t]+as[ \t]+\w+")


@dataclass
class ImportedFiles:
    paths: set[str] = field(default_factory=set)  # the files the imported modules may be loaded from
    texts: dict[str, str] = field(default_factory=dict)  # path → text, of those beside the notebook


def imported_files(sources: list[str]) -> ImportedFiles:
    """What the cells `sources` import: the files, and the texts of the notebook's own modules."""
    found = ImportedFiles()
    pending = [module for source in sources if "import" in source for module in imported_modules(source)]
    seen: set[str] = set()
    while pending and len(seen) < MAX_MODULES:
        module = pending.pop(0)
        if module in seen:
            continue
        seen.add(module)
        found.paths.update(module_paths(module))
        source = module_source(module)
        if source is not None:
            path, text = source
            found.texts[path] = text
            pending += module_imports(text, module, is_package=path.endswith("__init__.py"))
    return found


def imported_modules(source: str) -> list[str]:
    """The modules a cell's text imports, by absolute name: `from a import b` imports `a`, and `a.b`
    where `b` is a module."""
    modules = []
    for match in _IMPORT.finditer(source):
        if match["modules"] is not None:
            modules += [_ALIAS.sub("", part).strip() for part in match["modules"].split(",")]
        else:
            names = [_ALIAS.sub("", part).strip(" \t\\\n") for part in (match["grouped"] or match["names"]).split(",")]
            modules += [match["module"], *(f"{match['module']}.{name}" for name in names if name and name != "*")]
    modules += [match["module"] for match in _IMPORT_CALL.finditer(source)]
    return [module for module in modules if module and all(part.isidentifier() for part in module.split("."))]


def module_paths(module: str) -> list[str]:
    """The files, relative to the notebook's folder, Python may load `module` and its packages from."""
    parts = module.split(".")
    paths = ["/".join(parts[:i]) + "/__init__.py" for i in range(1, len(parts))]
    return paths + ["/".join(parts) + ".py", "/".join(parts) + "/__init__.py"]


@functools.lru_cache(maxsize=64)  # (each step importing a module: its text is the same object, parsed once)
def module_imports(text: str, module: str, is_package: bool) -> list[str]:
    """The modules a module's text imports, relative imports resolved against its package."""
    try:
        tree = parse_text(text)
    except (SyntaxError, ValueError, RecursionError):
        return imported_modules(text)
    package = module.split(".") if is_package else module.split(".")[:-1]
    found = []
    for node in ast.walk(tree):
        if type(node) is ast.Import:
            found += [alias.name for alias in node.names]
        elif type(node) is ast.ImportFrom:
            if node.level:
                if node.level - 1 > len(package):
                    continue
                base = package[:len(package) - node.level + 1]
                parent = ".".join([*base, *([node.module] if node.module else [])])
            else:
                parent = node.module or ""
            if parent:
                found.append(parent)
            found += [f"{parent}.{a.name}" if parent else a.name for a in node.names if a.name != "*"]
        elif type(node) is ast.Call and node.args and type(node.args[0]) is ast.Constant \
                and isinstance(node.args[0].value, str) and getattr(node.func, "attr", getattr(node.func, "id", None)) \
                in ("import_module", "__import__"):
            found.append(node.args[0].value)
    return [m for m in found if m and all(part.isidentifier() for part in m.split("."))]
