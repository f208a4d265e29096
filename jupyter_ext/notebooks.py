"""The notebooks the server serves: API paths confined to the contents root, and their pipelines.

Every endpoint that names a notebook resolves it here first, so a path outside the root, a hidden
path or a file that is not a notebook is refused the same way everywhere.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from . import models
from .errors import InvalidInput, NotAllowed, NotFound


class Notebooks:
    def __init__(self, root_dir, allow_hidden: bool = False):
        self.root = Path(root_dir).expanduser().resolve()
        self.allow_hidden = allow_hidden

    def resolve(self, path: str | None) -> Path:
        """The notebook file `path` names (relative to the root; absolute only inside it)."""
        if not path or not isinstance(path, str):
            raise InvalidInput("missing 'path': a notebook path relative to the server's root")
        if "\0" in path:
            raise InvalidInput("invalid path")
        given = Path(path)
        resolved = (given if given.is_absolute() else self.root / given).resolve()
        if not resolved.is_relative_to(self.root):
            raise NotAllowed("path is outside the server's root directory")
        if not self.allow_hidden and any(p.startswith(".") for p in resolved.relative_to(self.root).parts):
            raise NotAllowed("hidden files are not served (ContentsManager.allow_hidden)")
        if resolved.suffix != ".ipynb":
            raise InvalidInput(f"{path} is not a notebook (.ipynb)")
        if not resolved.is_file():
            raise NotFound(f"no notebook {path}")
        return resolved

    def api_path(self, notebook: Path) -> str:
        """The path the API shows for a resolved notebook: relative to the root, never absolute."""
        return notebook.relative_to(self.root).as_posix()

    async def pipeline_model(self, notebook: Path) -> dict:
        pipeline = await asyncio.to_thread(compile_pipeline, notebook)
        return models.pipeline_model(pipeline.to_json(), self.api_path(notebook))


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
