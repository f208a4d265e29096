"""`nbscale suggest` as a user runs it: the proposal as text and JSON, written only on request, bad
input refused with a message and nothing written, durations from the notebook's last run."""

from __future__ import annotations

import json
import shutil
import subprocess

from conftest import ROOT, make_notebook

import nbscale


def nbscale_cli(*args, cwd):
    return subprocess.run(["nbscale", *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=600)


def untagged_iris(folder):
    data = json.loads((ROOT / "examples" / "iris.ipynb").read_text())
    for cell in data["cells"]:
        cell.get("metadata", {}).pop("tags", None)
    path = folder / "iris.ipynb"
    path.write_text(json.dumps(data))
    return path


def test_suggest_shows_the_proposal_and_writes_nothing_unless_asked(tmp_path):
    path = untagged_iris(tmp_path)
    before = path.read_bytes()
    shown = nbscale_cli("suggest", path.name, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "4 steps proposed" in shown.stdout and "expected speed-up" in shown.stdout
    assert "cell 2 becomes 'imports'" in shown.stdout and "cells 10" in shown.stdout  # 1-based, as JupyterLab
    assert "nothing written" in shown.stdout and path.read_bytes() == before
    assert not (tmp_path / "iris.suggested.ipynb").exists()

    written = nbscale_cli("suggest", path.name, "--write", cwd=tmp_path)
    assert written.returncode == 0 and "wrote iris.suggested.ipynb" in written.stdout
    assert path.read_bytes() == before
    check = nbscale_cli("check", "iris.suggested.ipynb", cwd=tmp_path)
    assert check.returncode == 0 and "4 steps, 0 error(s)" in check.stdout

    in_place = nbscale_cli("suggest", path.name, "--in-place", "--output", "json", cwd=tmp_path)
    proposal = json.loads(in_place.stdout)
    assert proposal["written"] == path.name and len(proposal["steps"]) == 4 and proposal["speedup"] > 1
    assert json.loads(path.read_text())["cells"][1]["metadata"]["tags"] == ["imports"]


def test_bad_input_is_refused_and_nothing_is_written(tmp_path):
    bad = make_notebook(tmp_path, ["a = not_defined_anywhere", "b = a"], name="bad")
    before = bad.read_bytes()
    result = nbscale_cli("suggest", bad.name, "--in-place", cwd=tmp_path)
    assert result.returncode == 2 and "must compile cell by cell first" in result.stderr
    assert "not_defined_anywhere" in result.stderr and bad.read_bytes() == before
    broken = tmp_path / "broken.ipynb"
    broken.write_text("{not json")
    assert nbscale_cli("suggest", broken.name, cwd=tmp_path).returncode == 2
    both = nbscale_cli("suggest", bad.name, "--in-place", "-o", "x.ipynb", cwd=tmp_path)
    assert both.returncode == 2 and "--in-place" in both.stderr
    assert nbscale_cli("suggest", bad.name, "--durations", "nope", cwd=tmp_path).returncode == 2


def test_durations_from_the_last_successful_run(tmp_path):
    path = tmp_path / "iris.ipynb"
    shutil.copy(ROOT / "examples" / "iris.ipynb", path)
    none_yet = nbscale_cli("suggest", path.name, "--durations", "last-run", cwd=tmp_path)
    assert none_yet.returncode == 2 and "no successful run" in none_yet.stderr
    assert nbscale.run(path, engine="local").ok
    result = nbscale_cli("suggest", path.name, "--durations", "last-run", "--output", "json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    proposal = json.loads(result.stdout)
    assert proposal["durations"] == "given" and proposal["total"] > 0
    assert "from the last successful run" in nbscale_cli("suggest", path.name, cwd=tmp_path).stdout
