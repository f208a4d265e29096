"""Which notebook file a kernel runs (for `%nbscale`), and whether that file may lack unsaved edits.

A kernel is not told its notebook for sure. Jupyter Server starts it with `JPY_SESSION_NAME` (which
ipykernel also puts in `__session__`), VS Code sets `__vsc_ipynb_file__`; anything else (papermill,
nbclient, a console) needs `--notebook PATH`. The session's path may be relative to the server's
root while the kernel runs in the notebook's folder, so the file's name there is tried as well.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from IPython.core.error import UsageError


def candidates(user_ns: dict) -> list[str]:
    return [v for v in (user_ns.get("__session__"), os.environ.get("JPY_SESSION_NAME"),
                        user_ns.get("__vsc_ipynb_file__")) if isinstance(v, str) and v]


def find_notebook(user_ns: dict, given: str | None = None) -> Path:
    if given:
        path = Path(given).expanduser()
        if not path.is_file():
            raise UsageError(f"%nbscale: no notebook file {given}")
        return path.resolve()
    for name in candidates(user_ns):
        path = Path(name).expanduser()
        for option in (path, Path.cwd() / path, Path.cwd() / path.name):
            if option.suffix == ".ipynb" and option.is_file():
                return option.resolve()
    known = ", ".join(candidates(user_ns)) or "none"
    raise UsageError("%nbscale: cannot tell which notebook this kernel runs (the session names: "
                     f"{known}): pass --notebook PATH")


def unsaved_warning(notebook: Path, cell_started: float, cell_source: str, own: bool = True) -> str | None:
    """A warning when the run may miss edits: the cell running `%nbscale` is not in the saved file
    (surely unsaved), or the file was last saved before this cell started (maybe: the kernel cannot
    see the editor, this is the best signal it has). `own`: the notebook is the kernel's own, not
    one named by `--notebook` (which this cell need not be part of)."""
    from .compiler.notebook import read_notebook

    source = cell_source.strip()
    if source and all(source != c.source.strip() for c in read_notebook(notebook).cells):
        if not own:
            return None  # another notebook: nothing to say about its editor
        return (f"warning: this cell is not in {notebook.name} as saved: the run uses the file on disk, "
                "so save the notebook first (Ctrl+S) to run your latest edits")
    saved = notebook.stat().st_mtime
    if saved < cell_started:
        when = time.strftime("%H:%M:%S", time.localtime(saved))
        return (f"note: {notebook.name} was last saved at {when}, before this cell started: edits not saved "
                "since are not in the run (save first)")
    return None
