"""The functions of the notebook's own modules: the parameters they change, as a call sees them."""

from __future__ import annotations

import os

import pytest
from conftest import make_notebook

from nbscale.compiler import compile_notebook
from nbscale.compiler.compile_cache import compile_cached

HELPERS = ("CONFIG = {}\n\n"
           "def addcol(df):\n    df['z'] = 1\n\n"
           "def bump(a):\n    a += 1\n\n"
           "def clean(d):\n    d.dropna(inplace=True)\n\n"
           "def total(df):\n    CONFIG['n'] = len(df)\n    return df.sum() + MISSING_HERE\n")
CELLS = [("import helpers\nimport helpers as h\nfrom helpers import clean as cl, total", ["imports"]),
         ("df = [1]\na = [2]\nd2 = [3]\nkept = [4]", ["step:make"]),
         ("helpers.addcol(df)\nh.bump(a)\ncl(d2)\nt = total(kept)", ["step:mutate"]),
         ("r = (df, a, d2, kept)", ["step:read"])]


def test_a_helper_that_changes_its_argument_hands_the_change_on_under_every_import_form(tmp_path):
    """`helpers.addcol(df)` in a step: later steps read df as it was before it (a local module's
    function was taken to change nothing)."""
    (tmp_path / "helpers.py").write_text(HELPERS)
    p = compile_notebook(make_notebook(tmp_path, CELLS))
    assert p.diagnostics == []  # (what the helpers read of their own module is theirs: no undefined name)
    assert sorted(p.step("mutate").outputs) == ["a", "d2", "df"]  # (t: no later step reads it)
    assert p.step("read").sources == {"a": "mutate", "d2": "mutate", "df": "mutate", "kept": "make"}


def test_without_the_module_beside_the_notebook_its_functions_are_a_librarys(tmp_path):
    elsewhere = tmp_path / "lib"
    elsewhere.mkdir()
    (elsewhere / "helpers.py").write_text(HELPERS)  # not beside the notebook
    p = compile_notebook(make_notebook(tmp_path, CELLS))
    assert p.step("read").sources["df"] == "make"
    (tmp_path / "helpers.py").write_text("def addcol(df):\n    df['z'] = (\n")  # does not parse: nothing known
    assert compile_notebook(make_notebook(tmp_path, CELLS)).step("read").sources["df"] == "make"


def test_the_compile_cache_compiles_again_when_a_helper_changes(tmp_path):
    path = make_notebook(tmp_path, CELLS)
    helpers = tmp_path / "helpers.py"
    helpers.write_text(HELPERS.replace("df['z'] = 1", "return df"))
    folder = tmp_path / "cache"
    assert compile_cached(path, folder).step("read").sources["df"] == "make"
    helpers.write_text(HELPERS)
    os.utime(helpers, ns=(helpers.stat().st_atime_ns, helpers.stat().st_mtime_ns + 10**9))
    assert compile_cached(path, folder).step("read").sources["df"] == "mutate"


def test_a_module_that_is_no_regular_file_is_not_read(tmp_path):
    os.mkfifo(tmp_path / "helpers.py")  # (a FIFO held every compile of the folder)
    assert compile_notebook(make_notebook(tmp_path, CELLS)).step("read").sources["df"] == "make"


PACKAGE_CELLS = [("import utils.features\nimport utils.features as F\nfrom utils import features as feats\n"
                  "from utils.features import addcol as add_z", ["imports"]),
                 ("df = [1]\na = [2]\nd2 = [3]\nd3 = [4]\nkept = [5]", ["step:make"]),
                 ("utils.features.addcol(df)\nF.addcol(a)\nfeats.addcol(d2)\nadd_z(d3)\nutils.top(kept)",
                  ["step:mutate"]),
                 ("r = (df, a, d2, d3, kept)", ["step:read"])]


@pytest.mark.parametrize("layout", ["package", "namespace_package"])
def test_a_module_of_a_package_beside_the_notebook_hands_its_changes_on(tmp_path, layout):
    # `utils/features.py`: its functions were taken to change nothing, so later steps read df unchanged
    package = tmp_path / "utils"
    package.mkdir()
    (package / "features.py").write_text(HELPERS)
    if layout == "package":
        (package / "__init__.py").write_text("def top(rows):\n    rows.append(0)\n")
    p = compile_notebook(make_notebook(tmp_path, PACKAGE_CELLS))
    assert p.diagnostics == []
    expected = {"a": "mutate", "d2": "mutate", "d3": "mutate", "df": "mutate"}
    assert p.step("read").sources == {**expected, "kept": "mutate" if layout == "package" else "make"}


def test_the_compile_cache_compiles_again_when_a_module_of_a_package_comes_or_changes(tmp_path):
    path = make_notebook(tmp_path, PACKAGE_CELLS)
    folder = tmp_path / "cache"
    assert compile_cached(path, folder).step("read").sources["df"] == "make"  # no such package yet
    package = tmp_path / "utils"
    package.mkdir()
    features = package / "features.py"
    features.write_text(HELPERS.replace("df['z'] = 1", "return df"))
    assert compile_cached(path, folder).step("read").sources["df"] == "make"
    features.write_text(HELPERS)
    os.utime(features, ns=(features.stat().st_atime_ns, features.stat().st_mtime_ns + 10**9))
    assert compile_cached(path, folder).step("read").sources["df"] == "mutate"
    assert compile_cached(path, folder).step("read").sources["df"] == "mutate"  # (from the entry now)
    features.unlink()
    assert compile_cached(path, folder).step("read").sources["df"] == "make"


def test_a_module_the_notebook_imports_that_appears_beside_it_later_compiles_again(tmp_path):
    # `import helpers` resolved to an installed library's: a helpers.py written since shadows it
    path = make_notebook(tmp_path, CELLS)
    folder = tmp_path / "cache"
    assert compile_cached(path, folder).step("read").sources["df"] == "make"
    (tmp_path / "helpers.py").write_text(HELPERS)
    assert compile_cached(path, folder).step("read").sources["df"] == "mutate"
