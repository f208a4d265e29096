"""File names held in constants, written out for the scans of the files steps name (compiler/path_constants.py)."""

from __future__ import annotations

import pytest
from conftest import make_notebook

from nbscale.compiler import compile_notebook
from nbscale.compiler.ir import Step
from nbscale.compiler.path_constants import (
    MAX_TEXT,
    WRITTEN_OUT_ROOM,
    prelude_constants,
    scanned_steps,
    with_constants,
)


@pytest.mark.parametrize(("code", "expected"), [
    ("P = 'data/x.csv'", "data/x.csv"),
    ("D = 'data'\nP = D + '/x.csv'", "data/x.csv"),
    ("D = 'data'\nP = f'{D}/x.csv'", "data/x.csv"),
    ("import os\nD = 'data'\nP = os.path.join(D, 'x.csv')", "data/x.csv"),
    ("from pathlib import Path\nD = Path('data')\nP = D / 'x.csv'", "data/x.csv"),
    ("P: str = 'x.csv'", "x.csv"),
    ("P = 'a.csv'\nP = 'b.csv'", "b.csv"),  # as the cell leaves it
])
def test_constants_folded_from_texts(code, expected):
    assert prelude_constants([code], {})["P"] == expected


@pytest.mark.parametrize("code", [
    "P = 'x.csv'\nP = load()",  # bound again to what is not known
    "P = f'{D:>5}.csv'", "P = 3", "P = open('x').read()", "P = 'a\\nb'",
    "P = __import__('os').system('touch pwned')",  # folded, never run
])
def test_what_is_not_a_text_of_texts_is_no_constant(code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert "P" not in prelude_constants([code], {})
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("last", [
    "P40 = P39 + P39", "P40 = f'{P39}{P39}'", "P40 = os.path.join(P39, P39)", "P40 = P39 / P39"])
def test_a_fold_gives_up_as_its_text_passes_the_longest_name_not_at_the_end(last):
    # each line doubles the text: folded to the end, the 40th would be 2**40 times the first
    doubling = "\n".join(["import os", "P0 = 'data/x'"] + [f"P{k} = P{k - 1} + P{k - 1}" for k in range(1, 40)])
    found = prelude_constants([f"{doubling}\n{last}"], {})
    assert len(found["P9"]) == 6 * 2 ** 9 and "P10" not in found and "P40" not in found
    assert "P" not in prelude_constants(["P = Q + 'x'"], {"Q": "q" * (MAX_TEXT + 1)})


def test_constants_written_out_add_at_most_their_room_to_a_cell():
    source = "\n".join(["x = f(LONG)"] * 2000)
    written = with_constants([source], {"LONG": "d" * 4000})[0]
    assert len(written) <= len(source) + WRITTEN_OUT_ROOM
    assert written.startswith(f"x = f({'d' * 4000!r})") and written.endswith("x = f(LONG)")


def test_text_parameters_are_constants_as_their_defaults_name_them():
    assert prelude_constants([], {"OUT": "o.csv", "n": 3}) == {"OUT": "o.csv"}


def test_uses_are_written_out_but_bindings_attributes_and_texts_are_not():
    source = "df.to_csv(CLEAN)\ny = pd.read_csv(CLEAN2)\ncfg.CLEAN = 1\nCLEAN = 2\nz = 'CLEAN'\nif CLEAN == 1: pass"
    assert with_constants([source], {"CLEAN": "c.csv", "CLEAN2": "d.csv"}) == [
        "df.to_csv('c.csv')\ny = pd.read_csv('d.csv')\ncfg.CLEAN = 1\nCLEAN = 2\nz = 'CLEAN'\nif 'c.csv' == 1: pass"]


def test_a_name_a_step_binds_again_is_not_written_out():
    steps = [Step(name="a", cells=[1], source=["df.to_csv(P)"], defines=["P"]),
             Step(name="b", cells=[2], source=["x = read(P)"])]
    assert scanned_steps({"P": "x.csv"}, steps) == [("a", ["df.to_csv(P)"]), ("b", ["x = read(P)"])]


@pytest.mark.parametrize("imports", ["DATA = 'data'\nCLEAN = DATA + '/clean.csv'",
                                     "import os\nCLEAN = os.path.join('data', 'clean.csv')"])
def test_a_file_named_by_a_constant_orders_its_writer_and_reader(tmp_path, imports):
    # no edge: the reader ran beside the writer, or stayed cached while the writer wrote the file anew
    nb = make_notebook(tmp_path, [("import pandas as pd\n" + imports, ["imports"]), ("thr = 2", ["parameters"]),
                                  ("df = pd.read_csv('raw.csv')\ndf[df.a > thr].to_csv(CLEAN)", ["step:prep"]),
                                  ("n = len(pd.read_csv(CLEAN))", ["step:use"])])
    assert compile_notebook(nb).step("use").after == ["prep"]


def test_a_file_named_by_a_text_parameter_orders_its_writer_and_reader(tmp_path):
    nb = make_notebook(tmp_path, [("OUT = 'out.txt'", ["parameters"]), ("open(OUT, 'w').write('1')", ["step:w"]),
                                  ("v = open(OUT).read()", ["step:r"])])
    assert compile_notebook(nb).step("r").after == ["w"]


@pytest.mark.parametrize(("binder", "constant"), [
    ("P = os.path.join('res', 'out.txt')\nopen(P, 'w').write('a')", True),
    ("P: str = f'{DATA}/out.txt'\nopen(P, 'w').write('a')", True),  # folded with the imports' constants
    ("P = 'res/out.txt'\nopen(P, 'w').write('a')\nP = 'res/other.txt'", False),  # bound again
    ("P = 'res/out.txt'\nfor P in ['res/a.txt']:\n    open(P, 'w')", False),
    ("P = 'res/out.txt'\ndef f():\n    global P\n    P = 'x'", False),
    ("P = 'res/out.txt'\nwith open('res/x.txt') as P:\n    pass", False),
    ("P = 'res/out.txt'\ntry:\n    pass\nexcept OSError as P:\n    pass", False),
    ("P = 'res/out.txt' if flag else 'res/x.txt'\nopen(P, 'w')", False),  # not one text
])
def test_a_constant_one_step_binds_once_is_written_out_in_it_and_later_steps(binder, constant):
    steps = [Step(name="a", cells=[1], source=["import os", binder], defines=["P", "os"]),
             Step(name="b", cells=[2], source=["s = open(P).read()\nopen(P, 'w').write(s + 'b')"], defines=["s"])]
    scanned = dict(scanned_steps({"DATA": "res"}, steps))
    assert ("open('res/out.txt').read()" in scanned["b"][0]) is constant


def test_a_step_constant_another_step_the_imports_or_a_parameter_binds_is_not_written_out():
    binder = Step(name="a", cells=[1], source=["P = 'res/out.txt'"], defines=["P"])
    reader = Step(name="b", cells=[2], source=["x = open(P).read()"], defines=["x"])
    again = Step(name="c", cells=[3], source=["P = 'res/other.txt'"], defines=["P"])
    changed = Step(name="d", cells=[4], source=["set_path()"], defines=["P"])  # (a function rebinding it)
    assert dict(scanned_steps({}, [binder, reader]))["b"] == ["x = open('res/out.txt').read()"]
    for steps in ([binder, reader, again], [binder, reader, changed]):
        assert dict(scanned_steps({}, steps))["b"] == ["x = open(P).read()"]
    assert dict(scanned_steps({}, [binder, reader], {"P"}))["b"] == ["x = open(P).read()"]


def test_two_steps_writing_a_file_in_turn_through_a_step_constant_are_ordered_and_reused(tmp_path):
    # the name held in a value one step binds made no file edge: both steps ran again at every run
    from nbscale.kernels.runner import RunOptions, run_notebook

    nb = make_notebook(tmp_path, [
        ("import os", ["imports"]),
        ("P = os.path.join('res', 'out.txt')\nos.makedirs('res', exist_ok=True)\nwith open(P, 'w') as f:\n"
         "    f.write('a')", ["step:a"]),
        ("with open(P) as f:\n    seen = f.read()\nwith open(P, 'w') as f:\n    f.write(seen + 'b')", ["step:b"]),
    ])
    options = RunOptions(engine="local")
    assert run_notebook(nb, options=options).ok and (tmp_path / "res" / "out.txt").read_text() == "ab"
    again = run_notebook(nb, options=options)
    assert {s["name"]: s["status"] for s in again.steps} == {"a": "cached", "b": "cached"}
    assert (tmp_path / "res" / "out.txt").read_text() == "ab"


@pytest.mark.parametrize(("code", "written"), [
    ("df.to_csv(os.path.join(DATA_DIR, 'clean.csv'))", "df.to_csv('data/clean.csv')"),
    ("df.to_parquet(Path(DATA_DIR) / 'sub' / \"c.parquet\")", "df.to_parquet('data/sub/c.parquet')"),
    ("p = os.path.join(os.path.join('a', 'b'), 'c.csv')", "p = 'a/b/c.csv'"),
    ("t = ','.join(parts)\nr = a / b\ns = 'x/y'", "t = ','.join(parts)\nr = a / b\ns = 'x/y'"),  # (nothing joined)
])
def test_texts_a_cell_joins_are_written_out_as_one_name(code, written):
    assert with_constants([code], {"DATA_DIR": "data"}) == [written]


def test_a_file_named_by_joined_texts_orders_its_writer_and_reader_from_the_first_run(tmp_path):
    # learned from the steps' latest results only from the second run on: the first ran them side by side
    nb = make_notebook(tmp_path, [("import os\nimport pandas as pd\nDATA_DIR = 'data'", ["imports"]),
                                  ("df.to_csv(os.path.join(DATA_DIR, 'clean.csv'))", ["step:prep"]),
                                  ("n = len(pd.read_csv(os.path.join('data', 'clean.csv')))", ["step:use"])])
    assert compile_notebook(nb).step("use").after == ["prep"]
