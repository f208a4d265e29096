"""The wheel ships the built JupyterLab extension and the server-extension switch, so that a plain
`pip install` gives a working panel with no Node; the sdist can build that wheel without Node."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LABEXT = ROOT / "nbscale" / "labextension"
SERVER_SWITCH = {"ServerApp": {"jpserver_extensions": {"nbscale.jupyter_ext": True}}}


def _version() -> str:
    import tomllib

    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


DATA = f"nbscale-{_version()}.data/data/"
SHARE = DATA + "share/jupyter/labextensions/nbscale/"
ETC = DATA + "etc/jupyter/jupyter_server_config.d/nbscale.json"


def _built_files() -> set[str]:
    return {p.relative_to(LABEXT).as_posix() for p in LABEXT.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    env = {**os.environ, "TMPDIR": str(tmp_path_factory.mktemp("tmp"))}
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-v", "-w", str(out), str(ROOT)],
                            capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (path,) = out.glob("nbscale-*.whl")
    return zipfile.ZipFile(path)


def test_wheel_ships_exactly_the_built_labextension(wheel):
    names = set(wheel.namelist())
    shipped = {n[len(SHARE):] for n in names if n.startswith(SHARE)}
    built = _built_files()
    assert built, f"{LABEXT} is empty after the build"
    assert shipped == built | {"install.json"}
    assert "package.json" in shipped and "schemas/nbscale/plugin.json" in shipped
    assert any(n.startswith("static/remoteEntry.") for n in shipped)
    # the entry point the labextension's package.json names is in the wheel
    package = json.loads(wheel.read(SHARE + "package.json"))
    assert SHARE + package["jupyterlab"]["_build"]["load"] in names
    assert package["name"] == "nbscale"
    # no second copy as package data
    assert not any(n.startswith("nbscale/labextension/") for n in names)


def test_wheel_has_a_production_build(wheel):
    shipped = {n[len(SHARE):] for n in wheel.namelist() if n.startswith(SHARE)}
    assert "static/third-party-licenses.json" in shipped
    assert "build_log.json" not in shipped
    assert not any(n.endswith(".js.map") for n in shipped)


def test_wheel_enables_the_server_extension(wheel):
    assert json.loads(wheel.read(ETC)) == SERVER_SWITCH
    source = ROOT / "jupyter-config" / "jupyter_server_config.d" / "nbscale.json"
    assert json.loads(source.read_text()) == SERVER_SWITCH


def test_wheel_settings_schema_matches_the_source(wheel):
    shipped = json.loads(wheel.read(SHARE + "schemas/nbscale/plugin.json"))
    assert shipped == json.loads((ROOT / "schema" / "plugin.json").read_text())
    expected = {"defaultEngine", "pollInterval", "useCache", "kfpExperiment", "metricDirections"}
    assert expected <= set(shipped["properties"])


def test_sdist_builds_the_wheel_without_a_js_build(tmp_path, wheel):
    # after the wheel fixture the labextension is a fresh production build: the sdist carries it
    out = tmp_path / "sdist"
    result = subprocess.run([sys.executable, "-c", "import sys; from setuptools import build_meta as b; "
                             "print(b.build_sdist(sys.argv[1]))", str(out)],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    (sdist,) = out.glob("nbscale-*.tar.gz")
    with tarfile.open(sdist) as tar:
        members = {m.name.split("/", 1)[1] for m in tar.getmembers() if "/" in m.name}
        tar.extractall(tmp_path / "src", filter="data")
    for needed in ("setup.py", "package.json", "yarn.lock", ".yarnrc.yml", "tsconfig.json", "install.json",
                   "jupyter_ext/src/index.ts", "style/base.css", "schema/plugin.json",
                   "jupyter-config/jupyter_server_config.d/nbscale.json", "nbscale/labextension/package.json"):
        assert needed in members, needed
    assert not any(m.startswith("node_modules/") for m in members)
    (src,) = (tmp_path / "src").iterdir()
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-v",
                             "-w", str(tmp_path / "wheel"), str(src)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "up to date (production build); not rebuilding" in result.stdout + result.stderr
    assert not (src / "node_modules").exists()
    (rebuilt,) = (tmp_path / "wheel").glob("nbscale-*.whl")
    names = set(zipfile.ZipFile(rebuilt).namelist())
    assert {n for n in names if n.startswith(DATA)} == {n for n in wheel.namelist() if n.startswith(DATA)}


def test_labextension_paths_point_at_the_build():
    import nbscale

    (entry,) = nbscale._jupyter_labextension_paths()
    assert entry["dest"] == "nbscale"
    assert Path(entry["src"]).is_absolute()
    assert Path(entry["src"]) == LABEXT


def _jupyter(*args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "jupyter", *args], capture_output=True, text=True)
    plain = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout + result.stderr)
    return " ".join(plain.split())


def test_installed_extensions_are_enabled_and_ok():
    labextensions = _jupyter("labextension", "list")
    assert re.search(r"nbscale v[\w.]+ enabled OK", labextensions), labextensions
    server = _jupyter("server", "extension", "list")
    assert "nbscale.jupyter_ext enabled" in server, server
    assert "Validating nbscale.jupyter_ext... nbscale.jupyter_ext OK" in server, server
