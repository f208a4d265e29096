"""Reads and writes that bypass Python's `open`, made visible to the dependency recorder.

Dask's readers (`dd.read_csv("data/*.csv")`, `db.read_text`, `dd.read_parquet`...) build a graph
whose tasks open the files, in threads or processes the step's recorder does not watch: the files
their path (a glob, a list, a folder) names count as read by the step that calls them.

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
import glob
import importlib.abc
import os
import sys
from urllib.parse import unquote, urlsplit

READ_FLAGS = os.O_RDONLY
WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
APPEND_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_APPEND
MODE = None  # flags: those of the call's `mode` argument, the one after the path ("r", "r+", "w", "a")
# not flags but what the call opens: a Parquet `_metadata` file and the data files it names; the
# files a dataset writer writes (known only as it writes them); a file system's `open_*` methods
METADATA, WRITTEN, FILE_SYSTEM = "metadata", "written", "file system"
_MODE_FLAGS = {"r": READ_FLAGS, "r+": os.O_RDWR, "w": WRITE_FLAGS, "a": APPEND_FLAGS}
_FILE_SYSTEM_OPENS = {"open_input_file": READ_FLAGS, "open_input_stream": READ_FLAGS,
                      "open_output_stream": WRITE_FLAGS, "open_append_stream": APPEND_FLAGS}
_installed = False

# Where each reader and writer takes its path: (name, argument, position, flags), by module.
# Classes are wrapped as subclasses (an instance of the original, as pyarrow makes them itself, still
# counts as one for isinstance), functions as functions.
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
                    ("RecordBatchFileReader", "source", 0, READ_FLAGS),
                    ("RecordBatchStreamReader", "source", 0, READ_FLAGS),
                    ("new_file", "sink", 0, WRITE_FLAGS), ("new_stream", "sink", 0, WRITE_FLAGS),
                    ("RecordBatchFileWriter", "sink", 0, WRITE_FLAGS),
                    ("RecordBatchStreamWriter", "sink", 0, WRITE_FLAGS)),
    "pyarrow.dataset": (("dataset", "source", 0, READ_FLAGS), ("parquet_dataset", "metadata_path", 0, METADATA),
                        # also `pq.write_to_dataset`, so pandas' `to_parquet(partition_cols=...)`
                        ("write_dataset", "base_dir", 1, WRITTEN)),
    "pyarrow.fs": (("LocalFileSystem", None, None, FILE_SYSTEM), ("SubTreeFileSystem", None, None, FILE_SYSTEM)),
}
AUDITED["pyarrow.csv"] += (("CSVWriter", "sink", 0, WRITE_FLAGS),)
# Dask's readers: their tasks open the files (in other threads, or other processes), which the
# recorder of the step that builds the collection does not see; the path may be a glob, a list, a folder
AUDITED.update({
    "dask.dataframe": tuple((name, argument, 0, READ_FLAGS) for name, argument in (
        ("read_csv", "urlpath"), ("read_table", "urlpath"), ("read_fwf", "urlpath"), ("read_json", "url_path"),
        ("read_parquet", "path"), ("read_orc", "path"), ("read_hdf", "pattern"))),
    "dask.bag": (("read_text", "urlpath", 0, READ_FLAGS), ("read_avro", "urlpath", 0, READ_FLAGS)),
    "dask.bytes": (("read_bytes", "urlpath", 0, READ_FLAGS),),
    "dask.array": (("from_zarr", "url", 0, READ_FLAGS), ("from_npy_stack", "dirname", 0, READ_FLAGS)),
})


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
            if flags is FILE_SYSTEM:
                setattr(module, name, _audited_file_system(original, module.__name__))
            elif isinstance(original, type):
                setattr(module, name, _audited_class(original, where, module.__name__))
            elif flags is WRITTEN:
                setattr(module, name, _audited_dataset_writer(original, where))
            else:
                setattr(module, name, _audited(original, where))


def _audited(function, where: tuple):
    @functools.wraps(function)
    def audited(*args, **kwargs):
        _audit_call(args, kwargs, *where)
        return function(*args, **kwargs)

    audited.__nbscale_audited__ = True
    return audited


def _audited_dataset_writer(function, where: tuple):
    """`ds.write_dataset(data, "out", ...)`: the files it writes under the folder (part names pyarrow
    makes up, one folder per partition) are its products, each as Python's `open` of it to write
    would show it. Known from a `file_visitor` (chained to the caller's), audited once the call
    returns (pyarrow may call the visitor from its own threads; the recorder sees the step's)."""
    argument, position, _flags = where

    @functools.wraps(function)
    def audited(*args, **kwargs):
        root = _local_root(kwargs.get("filesystem"))
        base = args[position] if len(args) > position else kwargs.get(argument)
        if root is None or not _local_paths(base, root):
            return function(*args, **kwargs)
        written, visitor = [], kwargs.get("file_visitor")

        def file_visitor(written_file):
            written.append(written_file.path)
            if visitor is not None:
                visitor(written_file)

        try:
            return function(*args, **{**kwargs, "file_visitor": file_visitor})
        finally:
            for path in written:
                sys.audit("open", _under(root, path), "wb", WRITE_FLAGS)

    audited.__nbscale_audited__ = True
    return audited


class _AuditedType(type):
    """The metaclass of a wrapping subclass: an instance of the original class (pyarrow makes those
    itself: `pa.input_stream(path)` is an `OSFile`) is one of the wrapper, as before it was wrapped.
    Only for the wrapper itself; a user's subclass of it checks as any class does."""

    def __instancecheck__(cls, instance):
        original = cls.__dict__.get("__nbscale_original__")
        return isinstance(instance, original) if original is not None else super().__instancecheck__(instance)

    def __subclasscheck__(cls, subclass):
        original = cls.__dict__.get("__nbscale_original__")
        return issubclass(subclass, original) if original is not None else super().__subclasscheck__(subclass)


def _audited_class(original: type, where: tuple, module: str) -> type:
    plain = original.__new__ is object.__new__  # else an extension type, opened in C by its __new__

    class Audited(original, metaclass=_AuditedType):
        __nbscale_audited__ = True

        def __new__(cls, *args, **kwargs):
            _audit_call(args, kwargs, *where)  # before the file is opened, as Python's own `open`
            return super().__new__(cls) if plain else super().__new__(cls, *args, **kwargs)

    return _named_as(Audited, original, module)


def _audited_file_system(original: type, module: str) -> type:
    """`LocalFileSystem().open_input_file(path)`, `SubTreeFileSystem(base, LocalFileSystem())`'s
    (the path is under `base`): each `open_*` method audited as Python's `open` with that mode. A
    file system pyarrow makes itself (`FileSystem.from_uri`) is the original class, not audited."""
    namespace = {"__nbscale_audited__": True}
    for name, flags in _FILE_SYSTEM_OPENS.items():
        namespace[name] = _audited_open_method(getattr(original, name), flags)
    return _named_as(_AuditedType(original.__name__, (original,), namespace), original, module)


def _audited_open_method(method, flags: int):
    mode = "rb" if flags == READ_FLAGS else "ab" if flags == APPEND_FLAGS else "wb"

    @functools.wraps(method)
    def audited(self, path, *args, **kwargs):
        root = _local_root(self)
        for local in _local_paths(path, root) if root is not None else ():
            sys.audit("open", local, mode, flags)
        return method(self, path, *args, **kwargs)

    return audited


def _named_as(audited: type, original: type, module: str) -> type:
    audited.__nbscale_original__ = original
    audited.__qualname__ = audited.__name__ = original.__name__
    # pickled by reference as `module.Name`, which is now this class (and the original elsewhere)
    audited.__module__, audited.__doc__ = module, original.__doc__
    return audited


def _audit_call(args: tuple, kwargs: dict, argument: str, position: int, flags: int | None) -> None:
    source = args[position] if len(args) > position else kwargs.get(argument)
    root = _local_root(kwargs.get("filesystem"))
    if root is None:
        return
    if flags is METADATA:
        for path in _local_paths(source, root):
            sys.audit("open", path, "rb", READ_FLAGS)
            _audit_metadata_files(path)
        return
    if flags is MODE:
        mode = args[position + 1] if len(args) > position + 1 else kwargs.get("mode", "r")
        flags = _MODE_FLAGS.get(str(mode).replace("b", ""), WRITE_FLAGS)
    mode = "rb" if flags == READ_FLAGS else "wb"
    for path in _local_paths(source, root):
        if path.startswith("~") and not os.path.exists(path):
            path = os.path.expanduser(path)  # (as fsspec, whose paths Dask's readers take, reads it)
        if flags == READ_FLAGS and not os.path.exists(path) and glob.has_magic(path):
            for match in _matches(path):
                _audit_read(match, mode)
        elif not os.path.isdir(path):
            sys.audit("open", path, mode, flags)
        elif flags == READ_FLAGS:
            _audit_dataset(path, mode)


def _matches(pattern: str) -> list[str]:
    """What a glob matches as Dask's readers expand it: fsspec's glob (hidden files too, `**` at any
    depth), which lists the folders it looks in (listings the recorder sees)."""
    from fsspec.implementations.local import LocalFileSystem

    try:
        return LocalFileSystem().glob(pattern)
    except Exception:  # noqa: BLE001 - the reader raises its own error for a pattern it cannot take
        return []


def _audit_read(path: str, mode: str) -> None:
    if os.path.isdir(path):
        _audit_dataset(path, mode)
    else:
        sys.audit("open", path, mode, READ_FLAGS)


def _local_root(filesystem) -> str | None:
    """Where a file system's paths are on the local disk: "" for none given or a local one (pyarrow's
    and fsspec's LocalFileSystem read the path as a local one), the folder of a
    `SubTreeFileSystem` of a local one (its paths are relative to it); None for S3 and the like (no
    local file, and no dependency nbscale can see)."""
    if filesystem is None or type(filesystem).__name__ == "LocalFileSystem":
        return ""
    if type(filesystem).__name__ == "SubTreeFileSystem":
        root = _local_root(getattr(filesystem, "base_fs", None))
        base = getattr(filesystem, "base_path", None)
        return None if root is None or not isinstance(base, str) else _under(root, base)
    return None


def _under(root: str, path: str) -> str:
    return os.path.join(root, path.lstrip("/")) if root else path


def _local_paths(source, root: str = "") -> list:
    """The local paths named by a path, or a list of them (a dataset's files); none for a file
    object or a buffer (opened already, or no file), nor for the URI of another file system."""
    sources = source if isinstance(source, (list, tuple)) else [source]
    paths = []
    for path in (os.fspath(s) for s in sources if isinstance(s, (str, os.PathLike))):
        if isinstance(path, str) and path.startswith("file://"):
            path = unquote(urlsplit(path).path)
        elif isinstance(path, str) and "://" in path:
            continue
        paths.append(_under(root, os.fsdecode(path)) if root else path)
    return paths


def _audit_metadata_files(path) -> None:
    """`ds.parquet_dataset("data/_metadata")` reads the data files that `_metadata` names, relative
    to its folder: read from its row groups (pyarrow reads them the same way). A `_metadata` that
    cannot be read is pyarrow's error to raise."""
    try:
        import pyarrow.parquet as pq

        metadata = pq.read_metadata(path)
        names = {metadata.row_group(i).column(0).file_path for i in range(metadata.num_row_groups)
                 if metadata.num_columns}
    except Exception:  # noqa: BLE001 - pyarrow's own call raises it
        return
    folder = os.path.dirname(os.fsdecode(path))
    for name in sorted(n for n in names if n):
        sys.audit("open", os.path.join(folder, name), "rb", READ_FLAGS)


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
