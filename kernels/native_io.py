"""Reads and writes that bypass Python's `open`, made visible to the dependency recorder.

pyarrow opens files in C++ (pandas' `read_parquet` hands a local path to
`pyarrow.parquet.read_table`; `to_parquet` opens a `pyarrow.OSFile`; `pq.ParquetFile`,
`pyarrow.csv.read_csv`, `pyarrow.feather.read_table`, `pyarrow.dataset.dataset`... open the path
they are given), so the audit hook of `dependencies` would never see them. `install()` wraps each
of pyarrow's readers and writers that takes a path (`AUDITED`) — now if its module is loaded, else
as soon as it is imported (a post-import hook on `sys.meta_path`) — so that each raises the `open`
audit event Python's own `open` raises, before the file is opened. The wrappers only add that
event; what they return and raise is pyarrow's. A file object given instead of a path was opened
by Python's `open` or an `OSFile`: seen already.
"""

from __future__ import annotations

import functools
import importlib.abc
import os
import sys
from urllib.parse import unquote, urlsplit

READ_FLAGS = os.O_RDONLY
WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
MODE = None  # flags: those of the call's `mode` argument, the one after the path ("r", "r+", "w", "a")
_MODE_FLAGS = {"r": READ_FLAGS, "r+": os.O_RDWR, "w": WRITE_FLAGS, "a": os.O_WRONLY | os.O_CREAT | os.O_APPEND}
_installed = False

# Where each reader and writer takes its path: (name, argument, position, flags), by module.
# Classes are wrapped as subclasses (still the class for isinstance), functions as functions.
AUDITED = {
    "pyarrow": (("OSFile", "path", 0, MODE), ("memory_map", "path", 0, MODE),
                ("input_stream", "source", 0, READ_FLAGS), ("output_stream", "source", 0, WRITE_FLAGS)),
    "pyarrow.parquet": (("read_table", "source", 0, READ_FLAGS), ("read_pandas", "source", 0, READ_FLAGS),
                        ("read_schema", "where", 0, READ_FLAGS), ("read_metadata", "where", 0, READ_FLAGS),
                        ("ParquetFile", "source", 0, READ_FLAGS),
                        ("ParquetDataset", "path_or_paths", 0, READ_FLAGS),
                        ("write_table", "where", 1, WRITE_FLAGS), ("ParquetWriter", "where", 0, WRITE_FLAGS)),
    "pyarrow.csv": (("read_csv", "input_file", 0, READ_FLAGS), ("open_csv", "input_file", 0, READ_FLAGS),
                    ("write_csv", "output_file", 1, WRITE_FLAGS)),
    "pyarrow.json": (("read_json", "input_file", 0, READ_FLAGS), ("open_json", "input_file", 0, READ_FLAGS)),
    "pyarrow.feather": (("read_table", "source", 0, READ_FLAGS), ("read_feather", "source", 0, READ_FLAGS),
                        ("write_feather", "dest", 1, WRITE_FLAGS)),
    "pyarrow.orc": (("read_table", "source", 0, READ_FLAGS), ("ORCFile", "source", 0, READ_FLAGS),
                    ("write_table", "where", 1, WRITE_FLAGS), ("ORCWriter", "where", 0, WRITE_FLAGS)),
    "pyarrow.ipc": (("open_file", "source", 0, READ_FLAGS), ("open_stream", "source", 0, READ_FLAGS),
                    ("new_file", "sink", 0, WRITE_FLAGS), ("new_stream", "sink", 0, WRITE_FLAGS)),
    "pyarrow.dataset": (("dataset", "source", 0, READ_FLAGS),),
}


def install() -> None:
    """Once per process: audit pyarrow's reads and writes from now on."""
    global _installed
    if _installed:
        return
    _installed = True
    waiting = {}
    for name, patch in PATCHES.items():
        if name in sys.modules:
            patch(sys.modules[name])
        else:
            waiting[name] = patch
    if waiting:
        sys.meta_path.insert(0, _AfterImport(waiting))


def audit_module(module) -> None:
    for name, argument, position, flags in AUDITED[module.__name__]:
        original = getattr(module, name, None)
        if original is not None and not getattr(original, "__nbscale_audited__", False):
            where = (argument, position, flags)
            if isinstance(original, type):
                setattr(module, name, _audited_class(original, where, module.__name__))
            else:
                setattr(module, name, _audited(original, where))


def _audited(function, where: tuple):
    @functools.wraps(function)
    def audited(*args, **kwargs):
        _audit_call(args, kwargs, *where)
        return function(*args, **kwargs)

    audited.__nbscale_audited__ = True
    return audited


def _audited_class(original: type, where: tuple, module: str) -> type:
    plain = original.__new__ is object.__new__  # else an extension type, opened in C by its __new__

    class Audited(original):
        __nbscale_audited__ = True

        def __new__(cls, *args, **kwargs):
            _audit_call(args, kwargs, *where)  # before the file is opened, as Python's own `open`
            return super().__new__(cls) if plain else super().__new__(cls, *args, **kwargs)

    Audited.__qualname__ = Audited.__name__ = original.__name__
    # pickled by reference as `module.Name`, which is now this class (and the original elsewhere)
    Audited.__module__, Audited.__doc__ = module, original.__doc__
    return Audited


def _audit_call(args: tuple, kwargs: dict, argument: str, position: int, flags: int | None) -> None:
    source = args[position] if len(args) > position else kwargs.get(argument)
    if not _local_file_system(kwargs.get("filesystem")):
        return
    if flags is MODE:
        mode = args[position + 1] if len(args) > position + 1 else kwargs.get("mode", "r")
        flags = _MODE_FLAGS.get(str(mode).replace("b", ""), WRITE_FLAGS)
    mode = "rb" if flags == READ_FLAGS else "wb"
    for path in _local_paths(source):
        if not os.path.isdir(path):
            sys.audit("open", path, mode, flags)
        elif flags == READ_FLAGS:
            _audit_dataset(path, mode)


def _local_file_system(filesystem) -> bool:
    # pyarrow's and fsspec's LocalFileSystem both read the path as a local one; S3 and the like are
    # no local file (and no dependency nbscale can see)
    return filesystem is None or type(filesystem).__name__ == "LocalFileSystem"


def _local_paths(source) -> list:
    """The local paths named by a path, or a list of them (a dataset's files); none for a file
    object or a buffer (opened already, or no file), nor for the URI of another file system."""
    sources = source if isinstance(source, (list, tuple)) else [source]
    paths = []
    for path in (os.fspath(s) for s in sources if isinstance(s, (str, os.PathLike))):
        if isinstance(path, str) and path.startswith("file://"):
            path = unquote(urlsplit(path).path)
        elif isinstance(path, str) and "://" in path:
            continue
        paths.append(path)
    return paths


def _audit_dataset(folder, mode: str) -> None:
    """A dataset folder (`parts/*.parquet`, Hive-style `year=2024/` subfolders) pyarrow lists and
    reads in C: each folder listed (`os.walk` lists through `os.scandir`, itself audited) and every
    file in them read, as pyarrow may read any of them."""
    for root, _folders, files in os.walk(folder):
        for name in files:
            sys.audit("open", os.path.join(root, name), mode, READ_FLAGS)


PATCHES = dict.fromkeys(AUDITED, audit_module)


class _AfterImport(importlib.abc.MetaPathFinder):
    """Finds nothing itself: it lets the other finders find a module to patch, and wraps the
    loader so that the module is patched once it has run."""

    def __init__(self, waiting: dict):
        self.waiting = waiting

    def find_spec(self, name, path, target=None):
        if name not in self.waiting:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
                spec.loader = _PatchingLoader(spec.loader, self.waiting[name])
                return spec
        return None


class _PatchingLoader(importlib.abc.Loader):
    def __init__(self, loader, patch):
        self.loader, self.patch = loader, patch

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        self.loader.exec_module(module)
        self.patch(module)

    def __getattr__(self, name):  # get_resource_reader, get_filename, is_package, ...
        return getattr(self.loader, name)
