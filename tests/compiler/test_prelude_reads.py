"""The files the imports and functions cells read as they run: a step that writes one is warned of."""

from __future__ import annotations

from conftest import make_notebook

from nbscale.compiler import compile_notebook
from nbscale.compiler.parsing import parse_cell
from nbscale.compiler.prelude_reads import prelude_reads


def reads(source, constants=None):
    return [(line, path, module) for _, line, path, module in prelude_reads([parse_cell(0, source)], constants or {})]


def test_texts_handed_to_calls_that_run_are_read_and_a_functions_body_is_not():
    source = ("import json\nCFG = json.load(open('./cfg.json'))\nDF = read_csv(DATA + '/x.csv')\n"
              "P = os.path.join('data', 'y.csv')\ndef load(cfg=json.load(open('dflt.txt'))):\n"
              "    return open('in_body.txt').read()\n"
              "loader = lambda: open('in_lambda.txt')\nclass C:\n    T = open('in_class.txt')\n")
    assert reads(source, {"DATA": "data"}) == [(2, "cfg.json", None), (3, "data/x.csv", None),
                                              (5, "dflt.txt", None), (8, "in_class.txt", None)]


def test_what_a_module_of_the_notebook_reads_as_it_is_imported_is_the_import_lines(tmp_path):
    (tmp_path / "settings.py").write_text("import json\nDIR = 'conf'\nCFG = json.load(open(DIR + '/config.json'))\n"
                                          "def later():\n    return open('later.json')\n")
    nb = make_notebook(tmp_path, [("x = 1", [])])
    from nbscale.compiler.local_modules import modules_beside

    with modules_beside(nb):
        assert reads("import os\nimport settings") == [(2, "conf/config.json", "settings.py")]


CELLS = [("import json\nimport settings\nCLEAN = 'data' + '/clean.csv'", ["imports"]),
         ("CFG = json.load(open('cfg.json'))\ndef load():\n    return open('other.json').read()", ["functions"]),
         ("k = 2", ["parameters"]),
         ("json.dump({'k': k}, open('cfg.json', 'w'))\nopen(CLEAN, 'w').write('x')\n"
          "open('other.json', 'w').write('1')\nopen('config.json', 'w').write('{}')", ["step:gen"]),
         ("v = CFG['k']\nw = open(CLEAN).read()\nu = load()", ["step:use"])]


def test_a_file_the_prelude_reads_as_it_runs_that_a_step_writes_is_warned_of_at_its_line(tmp_path):
    # the functions cell read cfg.json before each step, so `use` got what `gen` wrote, where top to
    # bottom it reads the file once, before `gen`; and no step was ever reused (each read it, then
    # `gen` changed it)
    (tmp_path / "settings.py").write_text("import json\nCFG2 = json.load(open('config.json'))\n")
    p = compile_notebook(make_notebook(tmp_path, CELLS))
    found = [(d.cell, d.line, d.message.split(" is read")[0], d.severity) for d in p.diagnostics
             if d.code == "prelude-reads-step-file"]
    assert found == [(0, 2, "config.json", "warning"), (1, 1, "cfg.json", "warning")]
    assert "by settings.py, which this cell imports" in p.diagnostics[0].message
    assert all("'gen'" in d.message for d in p.diagnostics)


def test_a_constant_naming_a_file_and_a_function_reading_one_are_no_such_read(tmp_path):
    (tmp_path / "settings.py").write_text("def f():\n    return open('config.json')\n")
    cells = [CELLS[0], ("def load():\n    return open('cfg.json').read()", ["functions"]), *CELLS[2:4],
             ("w = open(CLEAN).read()\nu = load()", ["step:use"])]
    assert compile_notebook(make_notebook(tmp_path, cells)).diagnostics == []
