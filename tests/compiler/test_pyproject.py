"""compiler/pyproject.py: the nearest pyproject.toml above a notebook, no higher than a boundary."""

from __future__ import annotations

import pytest

from nbscale.compiler.pyproject import PyprojectError, find_pyproject, nbscale_table, shown


def test_the_nearest_file_wins_and_a_boundary_stops_the_search(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[tool.nbscale.cost]\ncore_hour = 1\n")
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    notebook = root / "sub" / "nb.ipynb"
    assert find_pyproject(notebook) == tmp_path / "pyproject.toml"
    assert find_pyproject(notebook, boundary=root) is None
    (root / "pyproject.toml").write_text("[tool.nbscale.cost]\ncore_hour = 2\n")
    found = find_pyproject(notebook, boundary=root)
    assert found == root / "pyproject.toml" and nbscale_table(found, "cost") == {"core_hour": 2}
    assert shown(found, root) == "pyproject.toml" and shown(found) == str(found)


def test_a_notebook_path_that_is_a_symlink_loop_is_looked_up_from_its_folder(tmp_path):
    # not RuntimeError ("Symlink loop", as Path.resolve() raises): reading the notebook says what is wrong
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "a.ipynb").symlink_to("b.ipynb")
    (tmp_path / "b.ipynb").symlink_to("a.ipynb")
    assert find_pyproject(tmp_path / "a.ipynb") == tmp_path.resolve() / "pyproject.toml"


def test_problems_name_the_file_relative_to_the_boundary(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "pyproject.toml").write_text("[tool.nbscale]\ncost = 3\n")
    with pytest.raises(PyprojectError, match=r"^pyproject.toml \[tool.nbscale.cost\] must be a table$"):
        nbscale_table(root / "pyproject.toml", "cost", root)
    (root / "pyproject.toml").write_bytes(b"\xff")
    with pytest.raises(PyprojectError, match="^pyproject.toml: cannot read it") as bad:
        nbscale_table(root / "pyproject.toml", "cost", root)
    assert str(tmp_path) not in str(bad.value)
    (root / "pyproject.toml").unlink()
    (tmp_path / "outside.toml").write_text("[tool.nbscale.cost]\n")
    (root / "pyproject.toml").symlink_to(tmp_path / "outside.toml")
    with pytest.raises(PyprojectError, match="^pyproject.toml: it links outside"):
        find_pyproject(root / "nb.ipynb", boundary=root)
    assert find_pyproject(root / "nb.ipynb") == root / "pyproject.toml"  # the CLI follows it


@pytest.mark.parametrize("text, key", [("tool = 5\n", "tool"), ("[tool]\nnbscale = 5\n", "tool.nbscale"),
                                       ("[tool]\nnbscale = [1]\n", "tool.nbscale")])
def test_a_level_above_the_table_that_is_not_a_table_is_named(tmp_path, text, key):
    (tmp_path / "pyproject.toml").write_text(text)
    with pytest.raises(PyprojectError, match=rf"^pyproject.toml \[{key}\] must be a table$"):
        nbscale_table(tmp_path / "pyproject.toml", "kfp", tmp_path)
