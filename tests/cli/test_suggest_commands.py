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


def test_in_place_through_a_symlink_tags_the_notebook_it_names(tmp_path):
    """The link was replaced by a tagged copy, and the real notebook stayed untagged."""
    real = untagged_iris(tmp_path)
    link = tmp_path / "link.ipynb"
    link.symlink_to(real.name)
    result = nbscale_cli("suggest", link.name, "--in-place", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert link.is_symlink() and json.loads(real.read_text())["cells"][1]["metadata"]["tags"] == ["imports"]


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


def test_writing_over_the_notebook_takes_in_place(tmp_path):
    path = untagged_iris(tmp_path)
    (tmp_path / "link.ipynb").symlink_to(path.name)
    before = path.read_bytes()
    for args in (["--write", "-o", path.name], ["-o", "./iris.ipynb"], ["--write", "-o", "link.ipynb"]):
        result = nbscale_cli("suggest", path.name, *args, cwd=tmp_path)
        assert result.returncode == 2 and result.stdout == "", (args, result.stdout)
        assert result.stderr == (f"error: -o {args[-1]} is the notebook itself; nothing written "
                                 "(--in-place writes the tags into it)\n"), (args, result.stderr)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["iris.ipynb", "link.ipynb"]


def test_a_notebook_path_that_is_a_symlink_loop_cannot_be_read(tmp_path):
    (tmp_path / "a.ipynb").symlink_to("b.ipynb")
    (tmp_path / "b.ipynb").symlink_to("a.ipynb")
    result = nbscale_cli("suggest", "a.ipynb", cwd=tmp_path)
    assert result.returncode == 2 and result.stderr == (
        "error: a.ipynb: cannot be read: [Errno 40] Too many levels of symbolic links: 'a.ipynb'\n")


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


def test_a_notebook_path_is_printed_with_its_control_characters_as_escapes(tmp_path):
    # an OSC 52 sequence writes the terminal's clipboard; a bidi override reorders what follows
    path = make_notebook(tmp_path, ["x = 1", "y = x + 1"], name="x\x1b]52;c;cHduZWQ=\x07\u202e")
    shown = nbscale_cli("suggest", path.name, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("x\\x1b]52;c;cHduZWQ=\\x07\\u202e.ipynb: ")
    assert not any(c in shown.stdout for c in "\x1b\x07\u202e")


def test_an_nbformat_3_notebook_is_not_written_and_the_error_says_to_upgrade_it(tmp_path):
    # compared with the upgraded cells, the v3 file's always looked "changed since the proposal"
    cells = [{"cell_type": "code", "input": s, "language": "python", "metadata": {}, "outputs": []}
             for s in ("import time\nx = 1", "y = x + 1", "z = x * 2")]
    path = tmp_path / "old.ipynb"
    path.write_text(json.dumps({"nbformat": 3, "nbformat_minor": 0, "metadata": {"name": "old"},
                                "worksheets": [{"cells": cells, "metadata": {}}]}))
    before = path.read_bytes()
    for flag in ("--write", "--in-place"):
        result = nbscale_cli("suggest", path.name, flag, cwd=tmp_path)
        assert result.returncode == 2 and result.stdout == ""
        assert result.stderr.startswith("error: old.ipynb is an nbformat 3 notebook; upgrade it to version 4 first")
        assert "nbconvert --to notebook --nbformat 4" in result.stderr and len(result.stderr.splitlines()) == 1
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["old.ipynb"]
    shown = nbscale_cli("suggest", path.name, cwd=tmp_path)  # a proposal is still shown
    assert shown.returncode == 0 and "old.ipynb: 1 steps proposed" in shown.stdout
