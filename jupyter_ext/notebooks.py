"""The notebooks the server serves: API paths confined to the contents root, and their pipelines.

Every endpoint that names a notebook resolves it here first, so a path outside the root, a hidden
path or a file that is not a notebook is refused the same way everywhere — and every path the file
system rejects (a symlink loop, a name too long, a NUL byte) is a request error with a message,
never the server's own failure.
"""

from __future__ import annotations

import asyncio
import errno
import os
from pathlib import Path

from . import models
from .errors import InvalidInput, NotAllowed, NotFound

# how deep below a state folder links are looked for: `.nbscale/NAME/NAME` covers the folders of
# runs (`logs/RUN_ID`, `runs/RUN_ID`, `kfp-local/RUN`) and the store's (`artifacts/sha256`)
STATE_LINK_DEPTH = 2


class Notebooks:
    def __init__(self, root_dir, allow_hidden: bool = False):
        self.root = Path(root_dir).expanduser().resolve()
        self.allow_hidden = allow_hidden

    def resolve(self, path: str | None) -> Path:
        """The notebook file `path` names (relative to the root; absolute only inside it)."""
        if not path or not isinstance(path, str):
            raise InvalidInput("missing 'path': a notebook path relative to the server's root")
        if "\0" in path:
            raise InvalidInput("invalid path: it holds a NUL character")
        try:
            path.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate (`"\ud800"` is valid JSON): no file has such a name
            raise InvalidInput("invalid path: it is not valid Unicode text (a lone surrogate)") from None
        try:
            return self._resolve(path)
        except (OSError, RuntimeError) as exc:  # Python 3.11's resolve() raises RuntimeError on a loop
            raise path_error(path, exc) from None

    def _resolve(self, path: str) -> Path:
        given = Path(path)
        resolved = (given if given.is_absolute() else self.root / given).resolve()
        if not resolved.is_relative_to(self.root):
            raise NotAllowed("path is outside the server's root directory")
        if not self.allow_hidden and any(p.startswith(".") for p in resolved.relative_to(self.root).parts):
            raise NotAllowed("hidden files are not served (ContentsManager.allow_hidden)")
        if resolved.suffix != ".ipynb":
            raise InvalidInput(f"{shown(path)} is not a notebook (.ipynb)")
        if not resolved.is_file():
            raise NotFound(f"no notebook {shown(path)}")
        self._refuse_state_outside(resolved)
        return resolved

    def _refuse_state_outside(self, notebook: Path) -> None:
        self.refuse_state_outside(notebook.parent)

    def refuse_state_outside(self, folder: Path, whose: str = "beside this notebook") -> None:
        """The state folder in `folder` (run store, artifacts, logs, executed notebooks, the warm
        cluster's files — whatever runs and cluster actions write, and the panel reads) must not link
        out of the root. Every link in it is checked rather than a list of its files, so a state
        file added later is covered too; `STATE_LINK_DEPTH` levels, as far as a request's writes
        reach through names that exist before it (deeper, a run writes only into folders it makes)."""
        from nbscale.kernels.contract import STATE_DIR_NAME

        state = folder / STATE_DIR_NAME
        outside = state if os.path.islink(state) and not self.inside(state) else self._link_out(state, STATE_LINK_DEPTH)
        if outside is not None:
            where = outside.relative_to(folder).as_posix()
            raise NotAllowed(f"{where} {whose} links outside the server's root directory")

    def _link_out(self, folder: Path, depth: int) -> Path | None:
        """The first symbolic link in `folder`, or up to `depth` - 1 levels below it, that resolves
        outside the root (None: none does). Only links are resolved (a plain entry of a checked
        folder cannot lead out), and `scandir` tells links and folders without a stat: the check
        costs one directory read per folder, however many runs the state folder holds."""
        try:
            with os.scandir(folder) as found:  # (at the last level only links matter: logs/ holds a folder per run)
                entries = [(e.path, e.is_symlink()) for e in found
                           if e.is_symlink() or (depth > 1 and e.is_dir(follow_symlinks=False))]
        except OSError:  # none there, or not a folder: nothing is used through it
            return None
        for path, link in entries:
            if link and not self.inside(path):
                return Path(path)
            if depth > 1 and (deeper := self._link_out(path, depth - 1)) is not None:
                return deeper
        return None

    def inside(self, path) -> bool:
        """Does `path`, its links followed, stay inside the root? (A link loop is taken as it
        stands: it cannot be opened anyway.)"""
        return Path(os.path.realpath(path)).is_relative_to(self.root)

    def api_path(self, notebook: Path) -> str:
        """The path the API shows for a resolved notebook: relative to the root, never absolute."""
        return notebook.relative_to(self.root).as_posix()

    async def pipeline_model(self, notebook: Path) -> dict:
        pipeline = await asyncio.to_thread(compile_pipeline, notebook)
        return models.pipeline_model(pipeline.to_json(), self.api_path(notebook))


def path_error(path: str, exc: BaseException) -> InvalidInput | NotAllowed:
    """What a file-system error while resolving `path` means to the client, without server paths."""
    code = getattr(exc, "errno", None)
    if code in (errno.EACCES, errno.EPERM):
        return NotAllowed(f"permission denied: {shown(path)}")
    if code == errno.ENAMETOOLONG:
        return InvalidInput(f"invalid path {shown(path)}: the path or a name in it is too long")
    if code == errno.ELOOP or isinstance(exc, RuntimeError):
        return InvalidInput(f"invalid path {shown(path)}: symbolic links loop")
    reason = os.strerror(code) if code else type(exc).__name__
    return InvalidInput(f"invalid path {shown(path)}: {reason}")


def shown(path: str, limit: int = 120) -> str:
    """A client's path as an answer may quote it: shortened, so a 5000-character path is not echoed."""
    return path if len(path) <= limit else f"{path[:limit // 2]}…{path[-limit // 2:]}"


def compile_pipeline(notebook: Path):
    """The notebook's pipeline (with its diagnostics); an unreadable notebook is invalid input."""
    from nbscale.compiler import NotebookReadError, compile_notebook

    try:
        return compile_notebook(notebook)
    except NotebookReadError as exc:
        raise InvalidInput(str(exc)) from None


def compile_without_errors(notebook: Path, doing: str):
    """The notebook's pipeline, or InvalidInput with its error diagnostics as detail: "fix them before
    `doing`" (running, exporting, submitting)."""
    from nbscale.compiler.diagnostics import ERROR

    pipeline = compile_pipeline(notebook)
    if pipeline.has_errors:
        errors = [d.to_json() for d in pipeline.diagnostics if d.severity == ERROR]
        raise InvalidInput(f"{notebook.name} has errors; fix them before {doing}", {"diagnostics": errors})
    return pipeline
