"""compiler/targets/__init__.py: the target registry — built-ins, unknown names, plug-ins.

Plug-in targets are real entry points: a distribution's metadata written to a folder on
PYTHONPATH of an `nbscale` process, as an installed plug-in package would have it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from conftest import ROOT

from nbscale.compiler import compile_notebook
from nbscale.compiler.targets import IrTarget, Target, get_target, targets
from nbscale.errors import PluginError

IRIS = ROOT / "examples" / "iris.ipynb"


def test_the_built_in_targets():
    assert {"ir", "kfp"} <= set(targets.names())
    assert isinstance(get_target("ir"), IrTarget)
    assert all(isinstance(get_target(name), Target) and get_target(name).description for name in ("ir", "kfp"))


def test_an_unknown_target_lists_the_known_ones():
    with pytest.raises(PluginError, match="unknown target 'yaml'; choose one of ir, kfp"):
        get_target("yaml")


def test_the_ir_target_writes_the_ir_atomically(tmp_path):
    pipeline = compile_notebook(IRIS)
    assert get_target("ir").write(pipeline, tmp_path / "iris.json", notebook=IRIS) == []
    assert json.loads((tmp_path / "iris.json").read_text()) == pipeline.to_json()
    assert [p.name for p in tmp_path.iterdir()] == ["iris.json"]
    with pytest.raises(OSError) as caught:
        get_target("ir").write(pipeline, tmp_path / "missing" / "iris.json", notebook=IRIS)
    assert caught.value.filename == str(tmp_path / "missing" / "iris.json")  # not the temporary file


PLUGIN = '''
"""A third-party target: the step names, one a line."""
from pathlib import Path

from nbscale.compiler.targets import Target


class StepNames(Target):
    name = "steps"
    description = "step names, one a line"

    def write(self, pipeline, path, *, notebook):
        Path(path).write_text("".join(f"{s.name}\\n" for s in pipeline.steps))
        return [f"{len(pipeline.steps)} steps"]
'''


@pytest.fixture
def plugin_path(tmp_path):
    """A folder holding a plug-in module and its distribution's entry points (one of them broken)."""
    (tmp_path / "steps_target.py").write_text(PLUGIN)
    info = tmp_path / "steps_target-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: steps-target\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(textwrap.dedent("""
        [nbscale.targets]
        steps = steps_target:StepNames
        broken = no_such_module_here:Target
    """))
    return tmp_path


def nbscale(*args, plugin_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin_path), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "nbscale", *map(str, args)], capture_output=True, text=True,
                          timeout=120, env=env)


def test_a_plug_in_target_is_a_choice_of_compile_and_writes(plugin_path, tmp_path):
    out = nbscale("compile", "--help", plugin_path=plugin_path)
    assert "[broken|ir|kfp|steps]" in out.stdout
    out = nbscale("compile", IRIS, "--target", "steps", "-o", tmp_path / "steps.txt", plugin_path=plugin_path)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "steps.txt").read_text().splitlines() == [s.name for s in compile_notebook(IRIS).steps]
    assert "note: 6 steps" in out.stderr


def test_a_broken_plug_in_target_is_one_clear_error(plugin_path):
    out = nbscale("compile", IRIS, "--target", "broken", plugin_path=plugin_path)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.startswith("error: the target 'broken' (no_such_module_here:Target, entry point group "
                                 "nbscale.targets) failed to load: ModuleNotFoundError")
    assert len(out.stderr.strip().splitlines()) == 1
    out = nbscale("compile", IRIS, "--target", "steps", "--emit-python", "x.py", plugin_path=plugin_path)
    assert out.returncode == 2 and out.stderr == "error: --emit-python only applies to --target kfp\n"
