"""Which nbscale code this process runs: a digest taken as `nbscale.kernels` is imported.

A warm cluster's processes keep the nbscale they imported for as long as they live, and runs that
keep it busy keep it alive. After nbscale is installed again, or edited in an editable install,
a run on such a cluster would have its steps executed and their dependencies recorded by the old
code (which may miss a dependency the new code sees: a cached value the new code would not
trust), and would hand it tasks the old code may not understand. `warm_cluster` records the
digest of the code a cluster runs and compares it with the run's own.

The digest is of the files' names, sizes and modification times, not of their bytes: a stat per
file (about 150 files, a fraction of a millisecond) is cheap enough for every process that
imports the run time, and taking it at import is what makes it the code the process runs, not
the code on disk later. A reinstall that writes the same bytes again counts as other code: at
worst a warm cluster is started again once.
"""

from __future__ import annotations

import hashlib
import os
import sys

# (package, whether its subfolders hold its code too): the top package's subfolders, in an
# installed wheel, are the other packages and the server extension, which no worker runs
PACKAGES = (("nbscale", False), ("nbscale.compiler", True), ("nbscale.kernels", True))


def code_digest(folders: list[tuple[str, str, bool]]) -> str:
    """SHA-256 of every ``.py`` file's path, size and modification time under each `(label, folder,
    recursive)`; a folder that cannot be read counts as empty."""
    digest = hashlib.sha256()
    for label, folder, recursive in folders:
        for relative, st in _python_files(folder, recursive):
            digest.update(f"{label}/{relative}\0{st.st_size}\0{st.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def _python_files(folder: str, recursive: bool):
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__") if recursive else []
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(root, name)
                try:
                    found.append((os.path.relpath(path, folder), os.stat(path)))
                except OSError:  # removed meanwhile: what is there now is what counts
                    pass
    return found


def _package_folders() -> list[tuple[str, str, bool]]:
    here = os.path.dirname(os.path.abspath(__file__))  # nbscale.kernels
    folders = []
    for package, recursive in PACKAGES:
        module = sys.modules.get(package)
        if package == __package__:
            folder = here
        elif module is not None and getattr(module, "__file__", None):
            folder = os.path.dirname(os.path.abspath(module.__file__))
        else:
            import importlib.util

            spec = importlib.util.find_spec(package)  # (nbscale.compiler: found, not imported)
            locations = list(spec.submodule_search_locations or []) if spec is not None else []
            folder = locations[0] if locations else None
        if folder is not None:
            folders.append((package, folder, recursive))
    return folders


def on_disk() -> str:
    """The digest of the code installed now (what a process started now would import)."""
    return code_digest(_package_folders())


IMPORTED = on_disk()  # the code this process runs
