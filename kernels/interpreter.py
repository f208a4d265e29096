"""The Python installation a step runs on: its folders, and the distributions installed there.

`is_interpreter_path` tells the interpreter's own files (prefix trees, stdlib, site- and
dist-packages, `__pycache__`) from the user's. `installed_versions` and `providers` read the
`.dist-info`/`.egg-info` folders on `sys.path` — folder names give name and version,
`top_level.txt` (else `RECORD`) the top-level modules — much faster than
`importlib.metadata.packages_distributions()`, and cached until a site folder's times change
(installing or removing a distribution changes them; `site_folders`).
"""

from __future__ import annotations

import importlib.metadata
import itertools
import os
import re
import site
import stat
import sys
import sysconfig
from functools import lru_cache

__all__ = ["installed_versions", "is_interpreter_path", "metadata_folder", "providers"]


# what an installation keeps in its prefix (a virtual environment, conda, /usr/local): not the whole
# prefix, which may be a project's own folder (`python -m venv .` in it, data and code beside `lib/`)
PREFIX_FOLDERS = ("lib", "lib64", "Lib", "DLLs", "include", "Include", "bin", "Scripts", "share", "etc",
                  "libexec", "conda-meta", "Library", "ssl", "man")


@lru_cache(maxsize=1)
def _interpreter_prefixes() -> tuple[str, ...]:
    prefixes = {sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix}
    roots = {site.getusersitepackages(), *site.getsitepackages(),
             *(os.path.join(prefix, folder) for prefix in prefixes if prefix for folder in PREFIX_FOLDERS)}
    roots.update(v for k, v in sysconfig.get_paths().items() if k in ("stdlib", "platstdlib", "purelib", "platlib",
                                                                     "include", "platinclude", "scripts"))
    return folder_prefixes(roots)


def folder_prefixes(folders) -> tuple[str, ...]:
    """`folder/` for each folder, as given and with links resolved, for `str.startswith`; never "/"."""
    folders = {f for f in folders if f}
    resolved = {os.path.abspath(f) for f in folders} | {os.path.realpath(f) for f in folders}
    return tuple(sorted(f.rstrip(os.sep) + os.sep for f in resolved if f.rstrip(os.sep)))


@lru_cache(maxsize=8192)
def is_interpreter_path(path: str) -> bool:
    """Is this absolute path part of the Python installation (or a bytecode cache)?"""
    if path.startswith(_interpreter_prefixes()):
        return True
    parts = path.split(os.sep)
    return "site-packages" in parts or "dist-packages" in parts or "__pycache__" in parts


def site_folders() -> tuple[tuple[str, int, int, int], ...]:
    """(folder, mtime, ctime, look) of the interpreter's folders on sys.path: what the caches of
    what is installed are keyed by. Local folders (the notebook's) are left out: their mtime changes
    with every file a step writes there. `look` is 0, or a number no other call gives when the folder
    had just changed: an install finishing in the same tick of a coarse file clock would keep its
    times (`fingerprints.racy`), so what is listed then is not remembered by them."""
    from .fingerprints import racy  # (it builds on this module)

    found = []
    for entry in sys.path:
        folder = os.path.abspath(entry or ".")
        try:
            st = os.stat(folder)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode) and is_interpreter_path(folder + os.sep):
            found.append((folder, st.st_mtime_ns, st.st_ctime_ns, next(_LOOKS) if racy(st) else 0))
    return tuple(found)


_LOOKS = itertools.count(1)


def canonical_name(name: str) -> str:
    """A distribution name as PEP 503 compares them: `scikit_learn` → `scikit-learn`."""
    return re.sub(r"[-_.]+", "-", name).lower()


@lru_cache(maxsize=4)
def _metadata_folders(site_folders: tuple) -> tuple[tuple[str, str, str], ...]:
    """(distribution, version, metadata folder) of what is installed; the first on sys.path wins."""
    found, seen = [], set()
    for folder, *_ in site_folders:
        try:
            entries = sorted(os.listdir(folder))
        except OSError:  # gone since it was looked at
            continue
        for entry in entries:
            stem, ext = os.path.splitext(entry)
            if ext not in (".dist-info", ".egg-info"):
                continue
            name, _, version = stem.partition("-")
            name = canonical_name(name)
            if name in seen:
                continue
            seen.add(name)
            version = version.split("-py")[0] or _metadata_version(name)  # name-1.0-py3.11.egg-info
            found.append((name, version, os.path.join(folder, entry)))
    return tuple(found)


def _metadata_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except Exception:  # noqa: BLE001 - broken metadata: no version to compare
        return ""


def installed_versions(folders: tuple | None = None) -> dict[str, str]:
    """{distribution: version} installed now (canonical names); `folders`: `site_folders()` if
    the caller has them."""
    return {name: version for name, version, _ in _metadata_folders(folders or site_folders()) if version}


def metadata_folder(distribution: str, folders: tuple | None = None) -> str | None:
    """The metadata folder (`name-1.0.dist-info`) of an installed distribution (canonical name)."""
    return _metadata_folder_of(folders or site_folders()).get(distribution)


@lru_cache(maxsize=4)
def _metadata_folder_of(site_folders: tuple) -> dict[str, str]:
    return {name: folder for name, _, folder in _metadata_folders(site_folders)}


def providers(folders: tuple | None = None) -> dict[str, list[str]]:
    """Top-level module name → the distributions that provide it."""
    return _providers(folders or site_folders())


@lru_cache(maxsize=4)
def _providers(site_folders: tuple) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for name, _, folder in _metadata_folders(site_folders):
        for top in _top_levels(folder):
            found.setdefault(top, []).append(name)
    return found


def _top_levels(folder: str) -> set[str]:
    try:
        with open(os.path.join(folder, "top_level.txt"), encoding="utf-8") as f:
            return {line.strip() for line in f if line.strip()}
    except (OSError, UnicodeDecodeError):
        pass
    try:
        with open(os.path.join(folder, "RECORD"), encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError):
        return set()
    tops = set()
    for line in lines:
        first, sep, _ = line.split(",", 1)[0].partition("/")
        if sep and not first.endswith((".dist-info", ".data", ".libs")) and first not in ("..", "__pycache__"):
            tops.add(first)
        elif not sep and first.endswith(".py"):
            tops.add(first[:-3])
    return tops
