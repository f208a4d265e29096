"""The project's pyproject.toml: the nearest one above a notebook, and its `[tool.nbscale.NAME]`
tables. The KFP target's options and the run time's project settings (profiles, cost, regressions,
drift) read it here.

A `boundary` (the Jupyter server's root) keeps the search below it: a project file above the root
is not the server's to read, and messages then name the file relative to the boundary, so that an
answer carries no absolute server path.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import NbscaleCompileError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: tomli when installed, else project settings are not read
    try:
        import tomli as tomllib
    except ModuleNotFoundError:
        tomllib = None


class PyprojectError(NbscaleCompileError):
    """The project file is unreadable, a table in it is not a table, or it links out of the boundary."""


def find_pyproject(notebook, boundary=None) -> Path | None:
    """The pyproject.toml in the notebook's folder or the nearest folder above it (no higher than
    `boundary`)."""
    boundary = resolved(boundary)
    # realpath: a notebook path that is a symlink loop is then found unreadable where it is read,
    # as a missing notebook is, rather than raising RuntimeError here as Path.resolve() does
    folder = Path(os.path.realpath(notebook)).parent
    for candidate in (folder, *folder.parents):
        if boundary is not None and not candidate.is_relative_to(boundary):
            return None
        path = candidate / "pyproject.toml"
        if path.is_file():
            if boundary is not None and not Path(os.path.realpath(path)).is_relative_to(boundary):
                raise PyprojectError(f"{shown(path, boundary)}: it links outside the folder project settings "
                                     "are read from, so it is not read")
            return path
    return None


def nbscale_table(path: Path, name: str, boundary=None) -> dict:
    """`[tool.nbscale.<name>]` of the file ({} when it has none, or no TOML reader is installed)."""
    if tomllib is None:
        return {}
    where = shown(path, resolved(boundary))
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        # an OSError's own text names the file by its whole path: the message names it as `where`
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise PyprojectError(f"{where}: cannot read it: {reason}") from None
    table = data
    # every level is checked, not only the last: `tool = 5` or `[tool] nbscale = 5` is a user's
    # file, and the error must name the key rather than fail on the next level's lookup
    keys = ("tool", "nbscale", name)
    for depth, key in enumerate(keys, start=1):
        table = table.get(key, {})
        if not isinstance(table, dict):
            raise PyprojectError(f"{where} [{'.'.join(keys[:depth])}] must be a table")
    return table


def shown(path: Path, boundary=None) -> str:
    """How messages name the file: relative to the boundary, else as found."""
    boundary = resolved(boundary)
    return path.relative_to(boundary).as_posix() if boundary is not None else str(path)


def resolved(boundary) -> Path | None:
    return Path(boundary).resolve() if boundary is not None else None
