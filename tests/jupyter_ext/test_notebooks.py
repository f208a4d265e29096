"""Notebooks: API paths confined to the server's root, and the pipeline model of a notebook."""

from __future__ import annotations

import asyncio
import os

import pytest
from conftest import make_notebook
from server_parts import TWO_STEPS

from nbscale.jupyter_ext.errors import InvalidInput, NotAllowed, NotFound
from nbscale.jupyter_ext.notebooks import Notebooks, compile_without_errors


def test_notebook_paths_are_confined_to_the_root(root, tmp_path):
    (root / "sub").mkdir()
    make_notebook(root / "sub", TWO_STEPS, name="nb")
    make_notebook(tmp_path, TWO_STEPS, name="outside")
    (root / "notes.txt").write_text("x")
    (root / ".hidden").mkdir()
    make_notebook(root / ".hidden", TWO_STEPS, name="h")
    os.symlink(tmp_path / "outside.ipynb", root / "link.ipynb")
    notebooks = Notebooks(root)
    assert notebooks.resolve("sub/nb.ipynb") == root / "sub" / "nb.ipynb"
    assert notebooks.resolve("sub/../sub/nb.ipynb") == root / "sub" / "nb.ipynb"
    assert notebooks.resolve(str(root / "sub" / "nb.ipynb")) == root / "sub" / "nb.ipynb"  # absolute, inside
    for bad in ("../outside.ipynb", "sub/../../outside.ipynb", str(tmp_path / "outside.ipynb"), "link.ipynb",
                "/etc/passwd.ipynb", ".hidden/h.ipynb"):
        with pytest.raises(NotAllowed):
            notebooks.resolve(bad)
    for bad in ("", None, "a\0b.ipynb", "notes.txt"):
        with pytest.raises(InvalidInput):
            notebooks.resolve(bad)
    with pytest.raises(NotFound):
        notebooks.resolve("missing.ipynb")
    assert Notebooks(root, allow_hidden=True).resolve(".hidden/h.ipynb").name == "h.ipynb"
    assert notebooks.api_path(root / "sub" / "nb.ipynb") == "sub/nb.ipynb"


def test_pipeline_model_of_a_notebook(root):
    make_notebook(root, TWO_STEPS, name="nb")
    notebooks = Notebooks(root)
    model = asyncio.run(notebooks.pipeline_model(notebooks.resolve("nb.ipynb")))
    assert model["notebook"] == "nb.ipynb" and [s["name"] for s in model["steps"]] == ["first", "second"]
    assert model["edges"] == [{"from": "first", "to": "second", "names": ["a"]}]


def test_unreadable_notebook_is_invalid_input(root):
    (root / "broken.ipynb").write_text("{not json")
    notebooks = Notebooks(root)
    with pytest.raises(InvalidInput):
        asyncio.run(notebooks.pipeline_model(notebooks.resolve("broken.ipynb")))


def test_a_notebook_with_errors_names_them_in_the_detail(root):
    nb = make_notebook(root, [("x = undefined_name + 1", ["step:a"])], name="broken")
    with pytest.raises(InvalidInput, match="broken.ipynb has errors; fix them before running") as err:
        compile_without_errors(nb, "running")
    assert [d["code"] for d in err.value.detail["diagnostics"]] == ["undefined-name"]
    assert compile_without_errors(make_notebook(root, TWO_STEPS), "running").name == "nb"


def test_file_system_errors_are_request_errors_with_a_message(root, tmp_path):
    (root / "loop-a.ipynb").symlink_to("loop-b.ipynb")
    (root / "loop-b.ipynb").symlink_to("loop-a.ipynb")
    notebooks = Notebooks(root)
    cases = {"loop-a.ipynb": "symbolic links loop", "a" * 5000 + ".ipynb": "too long",
             "x" * 300 + "/nb.ipynb": "too long", "nb\0.ipynb": "NUL", "\ud800.ipynb": "lone surrogate"}
    for path, says in cases.items():
        with pytest.raises(InvalidInput, match=says) as err:
            notebooks.resolve(path)
        assert len(err.value.message) < 300 and str(root) not in err.value.message


@pytest.mark.parametrize("linked", ["", "runs.sqlite", "artifacts", "logs"])
def test_a_state_folder_linking_out_of_the_root_is_refused(root, tmp_path, linked):
    # runs of the notebook would write there, and its panel read from there
    make_notebook(root, TWO_STEPS, name="nb")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    state = root / ".nbscale"
    if linked:
        state.mkdir()
    (state / linked if linked else state).symlink_to(elsewhere)
    shown = f".nbscale/{linked}" if linked else ".nbscale"
    with pytest.raises(NotAllowed, match=f"^{shown} beside this notebook links outside"):
        Notebooks(root).resolve("nb.ipynb")
    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize("linked, is_file", [("artifacts/sha256", False), ("runs", False), ("kfp-local", False),
                                              ("logs/0123abcd", False), ("warm-cluster.log", True),
                                              ("a-state-file-added-later", True)])
def test_any_link_out_of_the_root_in_a_state_folder_is_refused(root, tmp_path, linked, is_file):
    # step results, executed notebooks, kfp-local's files, a run's logs, the warm cluster's log:
    # a run or a cluster action would write or read through the link
    (root / "sub").mkdir()
    make_notebook(root / "sub", TWO_STEPS, name="nb")
    target = tmp_path / "victim"
    target.write_text("precious\n") if is_file else target.mkdir()
    link = root / "sub" / ".nbscale" / linked
    link.parent.mkdir(parents=True)
    link.symlink_to(target)
    notebooks = Notebooks(root)
    with pytest.raises(NotAllowed, match=f"^.nbscale/{linked} beside this notebook links outside") as refused:
        notebooks.resolve("sub/nb.ipynb")
    assert str(tmp_path) not in refused.value.message
    # the root's own state folder, which the server's warm cluster writes, the same way
    (root / ".nbscale").symlink_to(root / "sub" / ".nbscale")
    with pytest.raises(NotAllowed, match=f"^.nbscale/{linked} in the server's root links outside"):
        notebooks.refuse_state_outside(root, "in the server's root")


def test_links_inside_the_root_below_a_state_folder_are_followed(root):
    nb = make_notebook(root, TWO_STEPS, name="nb")
    (root / "kept" / "sha256").mkdir(parents=True)
    (root / ".nbscale").mkdir()
    (root / ".nbscale" / "artifacts").symlink_to(root / "kept")
    (root / ".nbscale" / "runs").symlink_to(root / "missing")  # dangling, but inside
    assert Notebooks(root).resolve("nb.ipynb") == nb
    (root / "kept" / "out").symlink_to(root.parent)  # below a followed link: still checked
    with pytest.raises(NotAllowed, match="^.nbscale/artifacts/out beside"):
        Notebooks(root).resolve("nb.ipynb")


def test_a_state_folder_linking_inside_the_root_is_followed(root):
    nb = make_notebook(root, TWO_STEPS, name="nb")
    (root / "state").mkdir()
    (root / ".nbscale").symlink_to(root / "state")
    assert Notebooks(root).resolve("nb.ipynb") == nb
