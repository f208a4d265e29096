"""Staging folders of the artifact store, and the sweep of those whose writer died.

A writer stages an artifact in ``.tmp-<host>-<pid>-<id>`` beside where it will be published
(and a folder being removed is first renamed to such a name). A writer killed mid-write leaves
its folder behind; the next writer sweeps, now and then, folders that nobody has touched for
an hour and whose writer is not a live process on this host.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import re
import shutil
import socket
import time
import uuid
from contextlib import suppress
from datetime import datetime

TEMP_PREFIX = ".tmp-"
STALE_AFTER_S = 3600.0  # untouched this long: its writer is gone (or a reader finished long ago)
SWEEP_EVERY_S = 600.0  # per process and folder: how often a writer looks for stale temp folders

_HOST = re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname())  # no "-": temp names are split on it
_last_sweep: dict[str, float] = {}  # folder URL → when this process last swept it


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2  # linux/fs.h


def exchange(staged: str, final: str) -> bool:
    """Swap two existing folders in one atomic step (Linux `renameat2(RENAME_EXCHANGE)`): a reader of
    `final` sees the old version or the new one, never no folder, as it would between moving the old
    one aside and renaming the new one in. False where the system or file system cannot do it."""
    renameat2 = _renameat2()
    if renameat2 is None:
        return False
    if renameat2(_AT_FDCWD, os.fsencode(staged), _AT_FDCWD, os.fsencode(final), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOENT, errno.EPERM, errno.ENOTSUP):
        return False  # no such call or flag here, or `final` went away meanwhile: the caller moves it aside
    raise OSError(code, os.strerror(code), final)


@functools.lru_cache(maxsize=1)
def _renameat2():
    try:
        return getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    except OSError:
        return None


def temp_name() -> str:
    """A unique staging folder name that tells its writer."""
    return f"{TEMP_PREFIX}{_HOST}-{os.getpid()}-{uuid.uuid4().hex[:12]}"


def listing(fs, folder: str) -> list[dict]:
    """`fs.ls` with details, fresh (object stores cache listings), empty for a missing folder."""
    fs.invalidate_cache(folder)
    try:
        return fs.ls(folder, detail=True)
    except (FileNotFoundError, NotADirectoryError):
        return []


def age(info: dict) -> float:
    """Seconds since a listed file or folder last changed (0 when the file system does not say)."""
    when = info.get("mtime") or info.get("LastModified") or info.get("created")
    if isinstance(when, datetime):
        when = when.timestamp()
    return time.time() - when if isinstance(when, (int, float)) else 0.0


def sweep_now_and_then(fs, parent: str) -> None:
    """`sweep` at most every SWEEP_EVERY_S per process and folder: one listing, usually nothing to do."""
    key = fs.unstrip_protocol(parent)
    if time.time() - _last_sweep.get(key, 0.0) >= SWEEP_EVERY_S:
        _last_sweep[key] = time.time()
        sweep(fs, parent)


def sweep(fs, parent: str, older_than: float = STALE_AFTER_S) -> list[str]:
    """Remove the temp folders in `parent` of writers that are gone; return their paths."""
    removed = []
    for info in listing(fs, parent):
        name = info["name"].rstrip("/").rsplit("/", 1)[-1]
        if not name.startswith(TEMP_PREFIX) or writer_alive(name):
            continue
        if info.get("islink"):  # a link planted in the store, moved aside: it goes, never what it names
            with suppress(OSError):
                fs.rm_file(info["name"])
                removed.append(info["name"])
            continue
        # A folder's time changes when a file is added, not while one grows: ask its files too.
        if min([age(info)] + [age(i) for i in listing(fs, info["name"])]) > older_than:
            try:
                fs.rm(info["name"], recursive=True)
                removed.append(info["name"])
            except OSError:
                pass  # another sweeper was faster
    return removed


def remove_local_tree(path: str) -> None:
    """`shutil.rmtree(path)` of a local folder, quietly; a link there is removed itself (rmtree
    refuses links, and a link planted in the store stayed, then barred its folder from the server)."""
    if os.path.islink(path):
        with suppress(OSError):
            os.unlink(path)
        return
    shutil.rmtree(path, ignore_errors=True)


def writer_alive(name: str) -> bool:
    """Is the writer of a temp folder a live process on this host? (Elsewhere, age decides.)"""
    parts = name[len(TEMP_PREFIX):].split("-")
    if os.name != "posix" or len(parts) != 3 or parts[0] != _HOST or not parts[1].isdigit() or parts[1] == "0":
        return False
    try:
        os.kill(int(parts[1]), 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True
