"""compiler/targets/kfp/image.py: what an image built from the defaults would lack."""

from __future__ import annotations

from conftest import ROOT

from nbscale.compiler import compile_notebook
from nbscale.compiler.targets.kfp import KfpOptions, missing_packages_note, third_party_imports


def test_imports_an_image_from_the_defaults_would_lack():
    assert third_party_imports(compile_notebook(ROOT / "examples" / "iris.ipynb")) == ["sklearn"]
    assert third_party_imports(compile_notebook(ROOT / "examples" / "magics.ipynb")) == []


def test_the_note_only_when_the_project_kept_the_defaults():
    iris = compile_notebook(ROOT / "examples" / "iris.ipynb")
    note = missing_packages_note(iris, KfpOptions())
    assert note.startswith("the steps import sklearn, which python:3.11-slim with only nbscale[run]==")
    assert missing_packages_note(iris, KfpOptions(base_image="team/ml:1")) is None
    assert missing_packages_note(iris, KfpOptions(packages_to_install=["scikit-learn"])) is None
    assert missing_packages_note(compile_notebook(ROOT / "examples" / "magics.ipynb"), KfpOptions()) is None
