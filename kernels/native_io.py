"""Reads and writes that bypass Python's `open`, made visible to the dependency recorder.

pyarrow opens Parquet files in C++ (pandas' `read_parquet` hands a local path to
`pyarrow.parquet.read_table`; `to_parquet` opens a `pyarrow.OSFile`), so the audit hook of
`dependencies` would never see them. `install()` wraps `pyarrow.parquet.read_table`/`write_table`
and `pyarrow.OSFile` — now if pyarrow is loaded, else as soon as it is imported (a post-import
hook on `sys.meta_path`) — so that each raises the `open` audit event Python's own `open` raises.
The wrappers only add that event; what they return and raise is pyarrow's.
"""

from __future__ import annotations

import functools
import importlib.abc
import os
import sys

READ_FLAGS = os.O_RDONLY
WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
_installed = False


def install() -> None:
    """Once per process: audit pyarrow's Parquet reads and writes from now on."""
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


def audit_parquet(module) -> None:
    for name, argument, position, flags in (("read_table", "source", 0, READ_FLAGS),
                                            ("write_table", "where", 1, WRITE_FLAGS)):
        function = getattr(module, name, None)
        if function is not None and not getattr(function, "__nbscale_audited__", False):
            setattr(module, name, _audited(function, argument, position, flags))


def audit_os_file(module) -> None:
    original = getattr(module, "OSFile", None)
    if original is None or getattr(original, "__nbscale_audited__", False):
        return

    class OSFile(original):  # still an OSFile for isinstance, and opened in C++ as before
        __nbscale_audited__ = True

        def __init__(self, path, mode="r", *args, **kwargs):
            if isinstance(path, (str, os.PathLike)):
                sys.audit("open", os.fspath(path), mode, READ_FLAGS if mode == "r" else WRITE_FLAGS)
            super().__init__()

    OSFile.__qualname__ = OSFile.__name__ = original.__name__
    OSFile.__module__ = original.__module__
    module.OSFile = OSFile


def _audited(function, argument: str, position: int, flags: int):
    @functools.wraps(function)
    def audited(*args, **kwargs):
        path = args[position] if len(args) > position else kwargs.get(argument)
        if isinstance(path, (str, os.PathLike)):
            mode = "rb" if flags == READ_FLAGS else "wb"
            if not os.path.isdir(path):
                sys.audit("open", os.fspath(path), mode, flags)
            elif flags == READ_FLAGS:
                _audit_dataset(os.fspath(path), mode)
        return function(*args, **kwargs)

    audited.__nbscale_audited__ = True
    return audited


def _audit_dataset(folder: str, mode: str) -> None:
    """A dataset folder (`parts/*.parquet`, Hive-style `year=2024/` subfolders) pyarrow lists and
    reads in C: each folder listed (`os.walk` lists through `os.scandir`, itself audited) and every
    file in them read, as pyarrow may read any of them."""
    for root, _folders, files in os.walk(folder):
        for name in files:
            sys.audit("open", os.path.join(root, name), mode, READ_FLAGS)


PATCHES = {"pyarrow": audit_os_file, "pyarrow.parquet": audit_parquet}


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
