"""The run store's file on disk: what goes wrong with it, said plainly.

- `store_error` turns a SQLite error into the `RunStoreError` that says what is wrong with which
  file and what to do (damaged, read-only, cannot be opened); `refuse_cut_short` says what SQLite
  would not (an emptied file whose history its write-ahead log still holds).
- `repair` / `move_aside` put a damaged store (with its `-wal`/`-shm` companions) beside itself as
  `runs.sqlite.corrupt-<time>`: a repair never loses a file silently, and leaves a sound one alone.
- `FileWatch` notices that the file was deleted or replaced while a process has it open (someone
  removed `.nbscale/` during a run): SQLite goes on writing to the unlinked file without a word.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path

from .errors import RunStoreCorrupt, RunStoreError, RunStoreReadOnly

# SQLite's primary result codes (the low byte of an extended code)
SQLITE_READONLY, SQLITE_CORRUPT, SQLITE_CANTOPEN, SQLITE_NOTADB = 8, 11, 14, 26
COMPANIONS = ("-wal", "-shm")  # SQLite finds a database's WAL and shared memory by these suffixes


def error_code(exc: sqlite3.Error) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)  # Python >= 3.11
    if code is not None:
        return code & 0xFF
    text = str(exc).lower()  # Python 3.10: the messages SQLite gives for these codes
    for needle, primary in (("readonly", SQLITE_READONLY), ("malformed", SQLITE_CORRUPT),
                            ("not a database", SQLITE_NOTADB), ("unable to open", SQLITE_CANTOPEN)):
        if needle in text:
            return primary
    return None


def store_error(exc: sqlite3.Error, path) -> RunStoreError:
    """The RunStoreError for a SQLite error on the run store at `path`."""
    code = error_code(exc)
    if os.path.isdir(path):  # (SQLite says "unable to open", or "disk I/O error" opening it read-only)
        return RunStoreError(f"the run store {path} is a folder, not a file: move it away (the next run makes "
                             "a new store there)")
    if code in (SQLITE_CORRUPT, SQLITE_NOTADB):
        return RunStoreCorrupt(path, str(exc))
    if code == SQLITE_READONLY:
        return RunStoreReadOnly(path, str(exc))
    if code == SQLITE_CANTOPEN:
        return RunStoreError(f"cannot open the run store {path} ({exc}): check that the file and its folder "
                             "exist and can be read and written")
    return RunStoreError(f"the run store {path} failed: {exc}")


def is_read_only(exc: BaseException | None) -> bool:
    """A SQLite error that means "cannot write here" (a read-only file, or a folder where the WAL
    files cannot be created)."""
    return isinstance(exc, sqlite3.Error) and error_code(exc) in (SQLITE_READONLY, SQLITE_CANTOPEN)


def read_only_uri(path, immutable: bool = False) -> str:
    """A URI that opens the database for reading only; `immutable`: without any locking or WAL file
    (for a folder where SQLite may not create them; what only the WAL holds is not seen)."""
    return Path(os.path.abspath(path)).as_uri() + ("?immutable=1" if immutable else "?mode=ro")


WAL_HEADER_BYTES = 32


def refuse_cut_short(path) -> None:
    """RunStoreCorrupt when the store at `path` is empty while its write-ahead log holds frames: the
    file was truncated (or overwritten with nothing) after its last checkpoint. SQLite takes an
    empty file for a new database and drops that log, and the history with it, without a word."""
    try:
        size, logged = os.path.getsize(path), os.path.getsize(os.fspath(path) + "-wal")
    except OSError:
        return
    if size == 0 and logged > WAL_HEADER_BYTES:
        raise RunStoreCorrupt(path, f"the file is empty, while its write-ahead log {os.path.basename(path)}-wal "
                                    f"holds {logged:,} bytes of it: it was cut short")


def is_sound(path) -> bool:
    """SQLite's quick check finds nothing wrong with the database at `path` (read only)."""
    try:
        refuse_cut_short(path)
    except RunStoreCorrupt:
        return False
    try:
        db = sqlite3.connect(read_only_uri(path), uri=True)
        try:
            return db.execute("PRAGMA quick_check").fetchone()[0] == "ok"
        finally:
            db.close()
    except sqlite3.Error as exc:
        if error_code(exc) in (SQLITE_CORRUPT, SQLITE_NOTADB):
            return False
        raise store_error(exc, path) from None  # locked, unreadable: not known to be damaged


def repair(path) -> Path | None:
    """Move a damaged store aside (the next open creates an empty one): its new name; None when the
    store is sound, and then nothing moves. Never deletes anything."""
    if is_sound(path):
        return None
    try:
        return move_aside(path)
    except OSError as exc:
        raise RunStoreReadOnly(path, f"cannot move it aside: {exc.strerror or exc}") from None


def move_aside(path) -> Path:
    """Rename the store at `path` (and its WAL files) to `<path>.corrupt-<UTC time>`; the new name."""
    path = Path(path)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while target.exists():
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
        n += 1
    os.replace(path, target)
    for suffix in COMPANIONS:
        companion = path.with_name(path.name + suffix)
        if companion.exists():
            os.replace(companion, target.with_name(target.name + suffix))
    return target


class FileWatch:
    """Holds the store's file open, so its inode cannot be reused, and tells whether the path still
    names it: deleted (no links left) or replaced (the path now names another file) means lost.

    One descriptor per file for the whole process, shared by every watch of it and closed only
    once the file is lost: closing any descriptor of a file drops every POSIX lock the process
    holds on it, SQLite's own among them (another connection of this process would then take
    itself for the last one, and delete the -wal and -shm files under its neighbours)."""

    def __init__(self, path):
        self.path = os.fspath(path)
        self.fd: int | None = None
        try:
            self.fd = _held_descriptor(self.path)
        except OSError:
            return  # a store we cannot watch is reported as never lost

    def lost(self) -> bool:
        if self.fd is None:
            return False
        held = os.fstat(self.fd)
        if held.st_nlink == 0:
            return True
        try:
            now = os.stat(self.path)
        except (FileNotFoundError, NotADirectoryError):
            return True
        return (now.st_dev, now.st_ino) != (held.st_dev, held.st_ino)

    def close(self) -> None:
        self.fd = None  # the descriptor stays with the process (see the class's docstring)


_HELD: dict[tuple[int, int], int] = {}  # (device, inode) → this process's descriptor of the file
_HELD_LOCK = threading.Lock()


def _held_descriptor(path: str) -> int:
    """This process's one descriptor of the file at `path`. Never closed while the file has a
    name: closing even a descriptor that never locked drops the process's locks on the file (a
    second one, opened as another thread opened the same file, is kept too). Descriptors of files
    deleted or replaced since are closed: nothing of this process can lock those any more."""
    with _HELD_LOCK:
        st = os.stat(path)
        held = _HELD.get((st.st_dev, st.st_ino))
        if held is not None:
            return held
        for key, other in list(_HELD.items()):
            if os.fstat(other).st_nlink == 0:
                os.close(other)
                del _HELD[key]
        fd = os.open(path, os.O_RDONLY)
        st = os.fstat(fd)
        return _HELD.setdefault((st.st_dev, st.st_ino), fd)
