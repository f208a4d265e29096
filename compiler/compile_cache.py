"""A folder of compiled pipelines, so that checking an unchanged notebook again does not analyse it again.

`compile_cached(notebook, folder)` gives exactly what `compile_notebook(notebook)` gives. An entry
is keyed by a SHA-256 of everything a compile reads: the compiler's own source, the Python
version (its parser), the notebook's file name and folder, metadata and cells (type, source, tags),
encoded as one JSON array, so no cell's text can pose as another cell or as a field. An entry
is one file: the key, a SHA-256 of the rest, the module files of the notebook's folder the compile
looked for (`local_modules.looked_up`, one line of JSON), the IR text (`Pipeline.to_json`, compact).
It is used only when the key and the digest match, those files are as they were, and the IR
loads; anything else (a torn, corrupt or foreign file) counts as no entry and is written over.
Entries are written whole to a temporary file and renamed into place, so two processes checking at
once each see a whole entry or none. The folder keeps the MAX_ENTRIES entries used last.

IPython turns magics into Python: the key also holds the identity of the installed IPython (its
path and a digest of its input transformer, read without importing it: its version would cost
more than reading an entry), so upgrading or editing it compiles notebooks again. The compiler's
own digest is taken as the package is imported, so a long-lived process (a kernel, the server)
whose compiler or IPython was replaced on disk since never files what it compiles under the new
one's key. No user cache folder (no home), or one that cannot be read, means no cache, never a
failed check or run.

The analysis is whole-notebook (each step continues the objects and functions of the steps
before it), so an entry holds a whole compile: a changed cell compiles the notebook again.

The compile also asks Python's compiler (`python_check`), whose warning filters may turn a
SyntaxWarning into a refusal (`-W error`): they are in the key too.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

from . import local_modules
from .compile import compile_notebook
from .ir import Pipeline
from .notebook import Notebook, read_notebook, regular_file_bytes
from .parsing import collector_paused

CACHE_FORMAT = "nbscale.compile-cache/2"
MAX_ENTRIES = 64  # notebooks remembered (an entry is about the size of the notebook's code)
MAX_ENTRY_BYTES = 64 * 2**20  # bigger compiles are not kept
SUFFIX = ".ir"
PART = ".part"  # an entry being written
STALE_PART_SECONDS = 600  # a part file this old was left by a process that died while writing
_compiler_digest: str | None = None


def default_folder() -> Path | None:
    """The user's compile cache (a check or a run writes nothing beside the notebook); None where
    the user has no home to keep it in (a container's user without one)."""
    from platformdirs import user_cache_path

    try:
        folder = user_cache_path("nbscale") / "compile"
    except (RuntimeError, OSError, KeyError):
        return None
    return folder if folder.is_absolute() else None  # (`~` left as it is: no home either)


def compile_cached(notebook, folder) -> Pipeline:
    """`compile_notebook(notebook)`, from `folder` when an entry for the same input is there."""
    with collector_paused():  # (reading a big notebook makes as many objects as a compile)
        return _compile_cached(notebook, folder)


def _compile_cached(notebook, folder) -> Pipeline:
    if not isinstance(notebook, Notebook):
        notebook = read_notebook(notebook)
    key = notebook_key(notebook) if folder is not None else None
    if key is None:
        return compile_notebook(notebook)
    entry = Path(folder) / (key + SUFFIX)
    pipeline = load_entry(entry, key)
    if pipeline is None:
        with local_modules.looked_up() as modules:
            pipeline = compile_notebook(notebook)
        store_entry(entry, key, pipeline, modules)
    return pipeline


def notebook_key(notebook: Notebook) -> str | None:
    """SHA-256 of what a compile of `notebook` reads, and of the compiler that reads it (None: no
    key, no entry)."""
    ipython = ipython_identity()
    if ipython is None:
        return None
    content = [CACHE_FORMAT, compiler_digest(), sys.version, sys.warnoptions, ipython, Path(notebook.path).name,
               os.path.dirname(os.path.abspath(notebook.path)),  # (where its modules are looked for)
               notebook.metadata,
               [[c.index, c.cell_type, c.source, list(c.tags)] for c in notebook.cells]]
    try:
        text = json.dumps(content, ensure_ascii=False, sort_keys=True, allow_nan=True)
    except (TypeError, ValueError):  # metadata that is no JSON (a Notebook made in code)
        return None
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def ipython_identity() -> list | None:
    """Which IPython rewrites cells ([] without one): its package's path and a digest of its input
    transformer (where `%magic` and `!shell` become Python), read without importing it (that would
    cost more than reading an entry). None when this process runs an IPython replaced on disk since
    it started (a kernel after `%pip install -U ipython`): what it compiles is keyed by nothing."""
    origin = _ipython_origin()
    if origin is None:
        return []
    transformer = Path(origin).parent / "core" / "inputtransformer2.py"
    try:
        source = transformer.read_bytes()
        if "IPython" in sys.modules and max(os.stat(origin).st_mtime, os.stat(transformer).st_mtime) \
                >= _process_started():
            return None
    except OSError:
        return [origin]
    return [origin, hashlib.sha256(source).hexdigest()]


def _ipython_origin() -> str | None:
    spec = importlib.util.find_spec("IPython")  # (the loaded one's, once imported)
    return spec.origin if spec is not None and spec.origin else None


def _process_started() -> float:
    try:
        import psutil

        return psutil.Process().create_time()
    except Exception:  # noqa: BLE001 - not known: take the files as newer than the process
        return 0.0


def compiler_digest() -> str:
    """SHA-256 of the compiler package's Python files (an editable install changes without a version),
    taken as the package is imported (`compiler/__init__.py`): a long-lived process whose compiler
    was edited since keys what it compiles by the code it runs."""
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
        data = regular_file_bytes(entry, MAX_ENTRY_BYTES + 4096)  # (a FIFO there would block)
        stored_key, digest, body = data.split(b"\n", 2)
        if stored_key.decode() != key or digest.decode() != hashlib.sha256(body).hexdigest():
            return None
        modules, ir = body.split(b"\n", 1)
        modules = json.loads(modules.decode("utf-8", "surrogatepass"))
        if not isinstance(modules, dict) or not local_modules.unchanged(modules):
            return None  # a module of the notebook's folder changed, or came or went, since
        pipeline = Pipeline.from_json(json.loads(ir.decode("utf-8", "surrogatepass")))
    except (OSError, ValueError, TypeError, RecursionError):  # too few lines, bad UTF-8, bad JSON, not an IR
        return None
    _used(entry)
    return pipeline


def _used(path: Path) -> None:
    try:
        os.utime(path)  # used now: pruning keeps it
    except OSError:
        pass


def store_entry(entry: Path, key: str, pipeline: Pipeline, modules: dict | None = None) -> None:
    """Write `entry` whole (a temporary file renamed into place); a folder that cannot be written
    only means no entry. `modules`: the module files the compile looked for (`local_modules.looked_up`)."""
    try:  # (C encoder: no indent)
        ir = json.dumps(pipeline.to_json(copied=False), ensure_ascii=False, separators=(",", ":"))
        looked = json.dumps(modules or {}, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError):  # an int too long to write as text: no entry
        return
    body = b"%s\n%s" % (looked.encode("utf-8", "surrogatepass"), ir.encode("utf-8", "surrogatepass"))
    if len(body) > MAX_ENTRY_BYTES:
        return
    data = b"%s\n%s\n%s" % (key.encode(), hashlib.sha256(body).hexdigest().encode(), body)
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


def prune(folder: Path, keep: int | None = None) -> None:
    """Remove all but the `keep` entries used last, and part files left by dead writers (another
    process may be removing them too)."""
    kept: dict[str, list] = {SUFFIX: []}
    keep, now = MAX_ENTRIES if keep is None else keep, time.time()
    for path in folder.iterdir():
        try:
            modified = path.stat().st_mtime
        except OSError:
            continue
        if path.suffix in kept:
            kept[path.suffix].append((modified, path.name))
        elif path.name.endswith(PART) and now - modified > STALE_PART_SECONDS:
            _remove(path)
    for files in kept.values():
        for _, name in sorted(files, reverse=True)[keep:]:
            _remove(folder / name)


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass
