"""Where an output file goes (`compile -o`, `suggest --write/--in-place`): into the file its path
names, that file kept what it is.

A regular file is written beside its place and renamed into it, so that readers never see half of
it; a symlink is followed to the file it names (renamed over, the link became a copy and the file
it named kept its old text). A file with other hard links, a FIFO or a device (`-o /dev/stdout`,
`-o >(gzip > x.gz)`) is written through, in place: a rename would put a new file where it was,
split from its links or its reader.
"""

from __future__ import annotations

import os
import secrets
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def output_place(path) -> tuple[Path, bool]:
    """(the file to write for `path`, whether to write it in place rather than rename a new one onto it)."""
    path = Path(path)
    try:
        status = os.stat(path)  # (through a symlink)
    except OSError:  # new (or a dangling link: the file it names is made), or unreadable: the write says
        return Path(os.path.realpath(path)), False
    if not stat.S_ISREG(status.st_mode) or status.st_nlink > 1:
        return path, True
    return Path(os.path.realpath(path)), False


@contextmanager
def written_to(path, suffix: str = "") -> Iterator[Path]:
    """A temporary file to write the output in; when the block ends without an error, it takes
    `path`'s place (`output_place`), its mode kept; else it is removed and `path` is left as it was."""
    target, in_place = output_place(path)
    # a file of its own per writer (two at once never mix their halves), made as any new file is (the
    # umask applies); beside its place, to be renamed there (a FIFO's or a device's folder may not be
    # writable: /dev)
    folder = Path(tempfile.gettempdir()) if in_place else target.parent
    partial = folder / f".{target.name}.{secrets.token_hex(6)}.partial{suffix}"
    try:
        os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except OSError as exc:  # (a folder that is not there: named as the user gave it, not the temporary file)
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    try:
        yield partial
        if in_place:
            with open(partial, "rb") as text, open(target, "wb") as out:
                shutil.copyfileobj(text, out)
        else:
            if target.exists():  # written over, the file keeps its own mode
                os.chmod(partial, target.stat().st_mode & 0o7777)
            os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
