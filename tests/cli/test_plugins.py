"""docs/plugins.md's example plug-in (examples/plugin), installed with pip and used from the CLI:
an engine, a marshaller and a target that nbscale finds through their entry points."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import ROOT, make_notebook

PLUGIN = ROOT / "examples" / "plugin"


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory) -> str:
    """The example plug-in pip-installed into a folder of its own, put on PYTHONPATH by the tests."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                    "--target", str(target), str(PLUGIN)], check=True, capture_output=True, timeout=300)
    return str(target)


def nbscale(*args, plugin_path, cwd):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([plugin_path, os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "nbscale", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=120)


def test_the_plugin_engine_runs_and_its_marshaller_stores_values(plugin_path, tmp_path):
    nb = make_notebook(tmp_path, [("from fractions import Fraction", ["imports"]),
                                  ("third = Fraction(1, 3)", ["step:make"]), ("total = third * 3", ["step:use"])])
    run = nbscale("run", str(nb), "--engine", "serial", "--output", "json", plugin_path=plugin_path, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "serial engine: make" in run.stderr and "serial engine: use" in run.stderr
    stored = list((tmp_path / ".nbscale" / "artifacts").rglob("*.fraction"))
    assert sorted(f.read_text() for f in stored) == ["1/1", "1/3"]  # third, and total (kept)


def test_the_plugin_target_writes_and_is_listed(plugin_path, tmp_path):
    nb = make_notebook(tmp_path, [("a = 1", ["step:first"]), ("b = a", ["step:second"])])
    out = tmp_path / "steps.txt"
    done = nbscale("compile", str(nb), "--target", "step-list", "-o", str(out), plugin_path=plugin_path, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert out.read_text() == "first <- -\nsecond <- first\n"
    helped = nbscale("compile", "--help", plugin_path=plugin_path, cwd=tmp_path)
    assert "step-list" in helped.stdout


def test_an_unknown_engine_names_the_installed_ones(plugin_path, tmp_path):
    nb = make_notebook(tmp_path, [("a = 1", ["step:first"])])
    run = nbscale("run", str(nb), "--engine", "warp", plugin_path=plugin_path, cwd=tmp_path)
    assert run.returncode == 2
    assert "unknown engine 'warp'" in run.stderr and "serial" in run.stderr
