"""The files a step names through the notebook's own modules it imports: an importer comes after
the step that writes its module, or a file its module reads."""

from __future__ import annotations

from conftest import make_notebook

from nbscale.compiler import compile_notebook
from nbscale.compiler.compile_cache import compile_cached
from nbscale.compiler.local_modules import modules_beside
from nbscale.compiler.module_files import MAX_MODULES, imported_files, imported_modules, module_paths
from nbscale.compiler.why import why


def test_every_import_form_names_its_modules_and_the_submodules_it_may_import():
    source = ("import a.b as c, d\nfrom pk import (gen,\n    other as o)\nfrom x.y import *\n"
              "def f():\n    import lazy\nm = importlib.import_module('dyn.mod')\n__import__(\"old\")\n"
              "print('import not_a_module here')\n")
    assert imported_modules(source) == ["a.b", "d", "pk", "pk.gen", "pk.other", "x.y", "lazy", "dyn.mod", "old"]


def test_a_module_may_be_loaded_from_its_file_or_its_package_and_its_packages_init():
    assert module_paths("gen_mod") == ["gen_mod.py", "gen_mod/__init__.py"]
    assert module_paths("pk.gen") == ["pk/__init__.py", "pk/gen.py", "pk/gen/__init__.py"]


def test_the_texts_of_the_notebooks_own_modules_are_read_with_what_they_import_relative_or_not(tmp_path):
    (tmp_path / "settings.py").write_text("from pk import paths\nCFG = open('config.json').read()\n")
    (tmp_path / "pk").mkdir()
    (tmp_path / "pk" / "__init__.py").write_text("")
    (tmp_path / "pk" / "paths.py").write_text("from . import deep\nDATA = 'data/in.csv'\n")
    (tmp_path / "pk" / "deep.py").write_text("LOG = 'logs/deep.txt'\n")
    with modules_beside(make_notebook(tmp_path, ["x = 1"])):
        found = imported_files(["import settings, numpy"])
    assert {"settings.py", "pk/paths.py", "pk/deep.py", "numpy.py"} <= found.paths
    joined = "\n".join(found.texts.values())
    assert all(name in joined for name in ("config.json", "data/in.csv", "logs/deep.txt"))
    assert imported_files(["x = 1"]).texts == {}  # (no import: nothing read)


def test_modules_importing_each_other_are_read_once_and_at_most_max_modules(tmp_path):
    for i in range(MAX_MODULES + 20):
        (tmp_path / f"m{i}.py").write_text(f"import m{i + 1}\nimport m0\n")
    with modules_beside(make_notebook(tmp_path, ["x = 1"])):
        found = imported_files(["import m0"])
    assert len(found.texts) == MAX_MODULES


WRITES_MODULE = [("import json", ["imports"]), ("k = 2", ["parameters"]),
                 ("with open('gen_mod.py', 'w') as f:\n    f.write('K = %d\\n' % (k * 10))", ["step:gen"]),
                 ("import gen_mod\nv = gen_mod.K", ["step:use"]),
                 ("from pk.gen import K\nw = K", ["step:use_pkg"]),
                 ("%%writefile pk/gen.py\nK = 1", ["step:gen_pkg"]),
                 ("from pk.gen import K\nw2 = K", ["step:use_pkg_after"])]


def test_a_step_that_imports_a_module_an_earlier_step_writes_comes_after_it(tmp_path):
    # the importer ran beside the writer (a missing module, or the old one), or stayed cached with
    # the module's old value while the writer wrote a new one
    nb = make_notebook(tmp_path, WRITES_MODULE)
    p = compile_notebook(nb)
    assert p.step("use").after == ["gen"]
    assert p.step("use_pkg").after == []  # (pk/gen.py is written later: it reads the version before)
    assert p.step("gen_pkg").after == ["use_pkg"]
    assert p.step("use_pkg_after").after == ["gen_pkg"]
    assert why(nb, "gen", "use") == ["use names the file gen_mod.py, which gen writes"]


def test_a_file_a_module_of_the_notebook_names_orders_the_steps_that_import_it(tmp_path):
    (tmp_path / "settings.py").write_text("import json\nCFG = json.load(open('config.json'))\n")
    (tmp_path / "helpers.py").write_text("def load():\n    with open('data/v.txt') as f:\n        return f.read()\n")
    (tmp_path / "config.json").write_text('{"k": 1}')
    nb = make_notebook(tmp_path, [("import json", ["imports"]),
                                  ("json.dump({'k': 2}, open('config.json', 'w'))\nopen('data/v.txt', 'w').write('2')",
                                   ["step:gen"]),
                                  ("import settings\nv = settings.CFG['k']", ["step:use"]),
                                  ("from helpers import load\nu = load()", ["step:use_helper"]),
                                  ("w = 3", ["step:other"])])
    p = compile_notebook(nb)
    assert p.step("use").after == ["gen"] and p.step("use_helper").after == ["gen"]
    assert p.step("other").after == []
    assert why(nb, "gen", "use") == ["use names the file config.json, which gen writes"]


def test_the_compile_cache_compiles_again_when_a_module_names_another_file(tmp_path):
    (tmp_path / "settings.py").write_text("CFG = 'other.json'\n")
    nb = make_notebook(tmp_path, [("open('config.json', 'w').write('{}')", ["step:gen"]),
                                  ("import settings\nv = settings.CFG", ["step:use"])])
    folder = tmp_path / "cache"
    assert compile_cached(nb, folder).step("use").after == []
    (tmp_path / "settings.py").write_text("CFG = open('config.json').read()\n")
    assert compile_cached(nb, folder).step("use").after == ["gen"]


def test_a_folder_a_module_names_orders_no_steps_that_write_in_it(tmp_path):
    # `MODEL_DIR = "models"` in helpers.py, imported by three training steps that each write their
    # model there: the folder would gather every writer, and the fan-out would run one after another
    (tmp_path / "helpers.py").write_text("MODEL_DIR = 'models'\nFILES = 'models/*.pkl'\n")
    cells = [("import helpers\nimport joblib", ["imports"]),
             *((f"import helpers\njoblib.dump({i}, 'models/{name}.pkl')", [f"step:{name}"])
               for i, name in enumerate(("a", "b", "c")))]
    p = compile_notebook(make_notebook(tmp_path, cells))
    assert [s.after for s in p.steps] == [[], [], []]
