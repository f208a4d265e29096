"""A folder of compiled pipelines, so that checking an unchanged notebook again does not analyse it again.

`compile_cached(notebook, folder)` gives exactly what `compile_notebook(notebook)` gives. An entry
is keyed by a SHA-256 of everything a compile reads: the compiler's own source, the Python
version (its parser), the notebook's file name, metadata and cells (type, source, tags),
encoded as one JSON array, so no cell's text can pose as another cell or as a field. An entry
is one file: the key, a SHA-256 of the IR text, the IR text (`Pipeline.to_json`, compact). It is used only
when the key and the digest match and the IR loads; anything else (a torn, corrupt or foreign
file) counts as no entry and is written over. Entries are written whole to a temporary file and
renamed into place, so two processes checking at once each see a whole entry or none. The
folder keeps the MAX_ENTRIES entries used last.

IPython turns magics into Python: the key also holds the identity of the installed IPython (its
`__init__.py`'s path, size and modification time, found without importing it: its version would
cost more than reading an entry), so upgrading it compiles notebooks again.

The analysis is whole-notebook (each step continues the objects and functions of the steps
before it), so an entry holds a whole compile: a changed cell compiles the notebook again.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

from .compile import compile_notebook
from .ir import Pipeline
from .notebook import Notebook, read_notebook
from .parsing import collector_paused

CACHE_FORMAT = "nbscale.compile-cache/1"
MAX_ENTRIES = 64  # notebooks remembered (an entry is about the size of the notebook's code)
MAX_ENTRY_BYTES = 64 * 2**20  # bigger compiles are not kept
SUFFIX = ".ir"
PART = ".part"  # an entry being written
STALE_PART_SECONDS = 600  # a part file this old was left by a process that died while writing
_compiler_digest: str | None = None


def compile_cached(notebook, folder) -> Pipeline:
    """`compile_notebook(notebook)`, from `folder` when an entry for the same input is there."""
    with collector_paused():  # (reading a big notebook makes as many objects as a compile)
        return _compile_cached(notebook, folder)


def _compile_cached(notebook, folder) -> Pipeline:
    if not isinstance(notebook, Notebook):
        notebook = read_notebook(notebook)
    key = notebook_key(notebook)
    if key is None:
        return compile_notebook(notebook)
    entry = Path(folder) / (key + SUFFIX)
    pipeline = load_entry(entry, key)
    if pipeline is None:
        pipeline = compile_notebook(notebook)
        store_entry(entry, key, pipeline)
    return pipeline


def notebook_key(notebook: Notebook) -> str | None:
    """SHA-256 of what a compile of `notebook` reads, and of the compiler that reads it."""
    content = [CACHE_FORMAT, compiler_digest(), sys.version, ipython_identity(), Path(notebook.path).name,
               notebook.metadata,
               [[c.index, c.cell_type, c.source, list(c.tags)] for c in notebook.cells]]
    try:
        text = json.dumps(content, ensure_ascii=False, sort_keys=True, allow_nan=True)
    except (TypeError, ValueError):  # metadata that is no JSON (a Notebook made in code)
        return None
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def ipython_identity() -> list:
    """Where the installed IPython is and when it was written ([] without one): an upgrade changes it."""
    spec = importlib.util.find_spec("IPython")
    if spec is None or not spec.origin:
        return []
    try:
        stat = os.stat(spec.origin)
    except OSError:
        return [spec.origin]
    return [spec.origin, stat.st_size, stat.st_mtime_ns]


def compiler_digest() -> str:
    """SHA-256 of the compiler package's Python files (an editable install changes without a version)."""
    global _compiler_digest
    if _compiler_digest is None:
        digest = hashlib.sha256()
        package = Path(__file__).resolve().parent
        for path in sorted(package.rglob("*.py")):
            digest.update(str(path.relative_to(package)).encode() + b"\0")
            digest.update(hashlib.sha256(path.read_bytes()).digest())
        _compiler_digest = digest.hexdigest()
    return _compiler_digest


def load_entry(entry: Path, key: str) -> Pipeline | None:
    """The pipeline stored in `entry` for `key`, or None (absent, torn, corrupt or another key)."""
    try:
        data = entry.read_bytes()
        stored_key, digest, ir = data.split(b"\n", 2)
        if stored_key.decode() != key or digest.decode() != hashlib.sha256(ir).hexdigest():
            return None
        pipeline = Pipeline.from_json(json.loads(ir.decode("utf-8", "surrogatepass")))
    except (OSError, ValueError, RecursionError):  # ValueError: too few lines, bad UTF-8, bad JSON, not an IR
        return None
    try:
        os.utime(entry)  # used now: pruning keeps it
    except OSError:
        pass
    return pipeline


def store_entry(entry: Path, key: str, pipeline: Pipeline) -> None:
    """Write `entry` whole (a temporary file renamed into place); a folder that cannot be written
    only means no entry."""
    ir = json.dumps(pipeline.to_json(copied=False), ensure_ascii=False, separators=(",", ":"))  # (C encoder: no indent)
    ir = ir.encode("utf-8", "surrogatepass")
    if len(ir) > MAX_ENTRY_BYTES:
        return
    data = b"%s\n%s\n%s" % (key.encode(), hashlib.sha256(ir).hexdigest().encode(), ir)
    import tempfile  # (only a compile that was not in the cache pays for the import)

    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=entry.parent, prefix=".", suffix=PART)
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
            os.replace(temporary, entry)
        except BaseException:
            _remove(Path(temporary))
            raise
        prune(entry.parent)
    except OSError:
        pass


def prune(folder: Path, keep: int = MAX_ENTRIES) -> None:
    """Remove all but the `keep` entries used last, and part files left by dead writers (another
    process may be removing them too)."""
    entries, now = [], time.time()
    for path in folder.iterdir():
        try:
            modified = path.stat().st_mtime
        except OSError:
            continue
        if path.name.endswith(SUFFIX):
            entries.append((modified, path.name))
        elif path.name.endswith(PART) and now - modified > STALE_PART_SECONDS:
            _remove(path)
    for _, name in sorted(entries, reverse=True)[keep:]:
        _remove(folder / name)


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass
