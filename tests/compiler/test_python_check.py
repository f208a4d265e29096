"""compiler/python_check.py: cells Python's compiler refuses, found by the compile (`check` says
what a run would refuse)."""

from __future__ import annotations

import pytest

from nbscale.compiler import compile_source
from nbscale.compiler.parsing import ParsedCells
from nbscale.compiler.python_check import refused_cells


def test_what_only_pythons_compiler_refuses_is_found_at_its_cell_and_line():
    pipeline = compile_source([
        ("import os", ["imports"]),
        ("x = 1\nnames = [i async for i in x]", ["step:a"]),  # top-level async, as IPython allows
        ("def f():\n    nonlocal y\n    y = 1", ["step:b"]),
        ("def g(a, a):\n    pass", ["step:c"]),
        ("%time z = 1\nr = await something()", ["step:d"]),  # magics and a top-level await, as IPython runs them
    ])
    found = [(d.code, d.cell, d.line) for d in pipeline.diagnostics if d.code == "syntax-error"]
    assert found == [("syntax-error", 2, 2), ("syntax-error", 3, 1)]
    assert "nonlocal 'y'" in pipeline.diagnostics[0].message


@pytest.mark.parametrize("code, said", [
    ("from __future__ import braces", "not a chance"),
    ("v = [(yield i) for i in range(3)]", "'yield' inside list comprehension"),
    ("*a = [1, 2]", "starred assignment target must be in a list or tuple"),
    ("def f():\n    q = 1\n    global q", "name 'q' is assigned to before global declaration"),
])
def test_check_says_what_the_run_would_refuse(code, said):
    """`check` was clean, and the run refused the notebook."""
    pipeline = compile_source([(code, ["step:a"])])
    assert pipeline.has_errors and [d.code for d in pipeline.diagnostics] == ["syntax-error"]
    assert said in pipeline.diagnostics[0].message


def test_a_skipped_cell_is_not_compiled_and_a_syntax_error_is_said_once():
    pipeline = compile_source([("def g(a, a):\n    pass", ["skip"]), ("x = (", ["step:a"]), ("y = 1", ["step:b"])])
    assert [(d.code, d.cell) for d in pipeline.diagnostics] == [("syntax-error", 1)]


def test_a_pipeline_python_takes_has_nothing_refused():
    cells = ParsedCells({0: "import math", 1: "x = math.pi\nprint(x)\n%time y = 1"})
    assert refused_cells([cells[0], cells[1]]) == []


def test_a_cell_magic_below_a_cells_first_line_is_an_error_at_its_line():
    """IPython runs it as a line magic that does not exist: check was clean and the step failed
    as it ran, after the steps before it."""
    pipeline = compile_source([("x = 1", ["step:a"]), ("y = x\n%%capture\nprint(y)", ["step:b"]),
                               ("%%time\nz = 2", ["step:c"]),  # (on its first line: a cell magic)
                               ("s = \"get_ipython().run_line_magic('%x', '')\"", ["step:d"])])  # (a string)
    assert [(d.code, d.cell, d.line) for d in pipeline.diagnostics] == [("misplaced-magic", 1, 2)]
    assert pipeline.diagnostics[0].message == "cell magic %%capture must be the first line of its cell"


# --- a big notebook: the check runs in a forked child, beside the analysis ------------------------

REFUSED = ["def f():\n    nonlocal y", "def g(a, a):\n    pass", "x = 1\nbreak", "print(1)\n%%capture\nz = 2",
           "v = [(yield i) for i in range(3)]", "w = (", "from __future__ import braces"]


def _big_notebook_cells(n: int) -> list:
    """`n` code cells, a step every 3, with a cell Python's compiler refuses every 37 (and one whose
    syntax error the analysis reports)."""
    cells = [("import math", ["imports"])]
    for i in range(1, n):
        source = REFUSED[(i // 37) % len(REFUSED)] if i % 37 == 0 else f"v{i} = math.sqrt({i}) + {i % 7}"
        cells.append((source, [f"step:s{i}"] if i % 3 == 1 else []))
    return cells


# (in a process of one thread: where this test runs, other threads may run, and no child is forked)
FORKED_AND_NOT = """
import json, os, sys, threading
sys.path.insert(0, {tests!r})
from test_python_check import _big_notebook_cells
from nbscale.compiler import compile_source, python_check
from nbscale.compiler.parsing import ParsedCells

cells = _big_notebook_cells(400)
sources = dict(enumerate(source for source, _ in cells))
assert threading.active_count() == 1
beside = python_check.RefusalCheck(sources, list(sources))
forked = beside.beside
beside.close()
found = {{}}
for way, threshold in (("beside", python_check.BESIDE_FROM), ("here", 10 ** 9)):
    python_check.BESIDE_FROM = threshold
    found[way] = [d.to_json() for d in compile_source(cells).diagnostics]
try:
    os.waitpid(-1, os.WNOHANG)
    left = True
except ChildProcessError:
    left = False  # every child reaped
# a child that fails part way (a cell it cannot find): the cells after are checked here
parsed = ParsedCells(sources)
check = python_check.RefusalCheck({{i: sources[i] for i in range(100)}}, list(range(200)), beside=True)
partly = [d.to_json() for d in check.of(parsed.cells(range(200)))]
check.close()
whole = [d.to_json() for d in python_check.refused_cells(ParsedCells(sources).cells(range(200)))]
print(json.dumps({{"forked": forked, "found": found, "left": left, "partly": partly == whole, "n": len(whole)}}))
"""


def test_a_big_notebook_is_checked_in_a_child_with_the_same_diagnostics_and_no_child_left():
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = FORKED_AND_NOT.format(tests=str(Path(__file__).parent))
    out = json.loads(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                                    check=True).stdout)
    assert out["forked"] and not out["left"]
    beside, here = out["found"]["beside"], out["found"]["here"]
    assert beside == here
    refused = [d for d in here if d["code"] in ("syntax-error", "misplaced-magic")]
    assert len(refused) == 399 // 37 and {d["cell"] for d in refused} == {i for i in range(37, 400, 37)}
    assert out["partly"] and out["n"] == 4  # (cells 37, 74, 111, 148; 185, `w = (`, is the parser's to report)


def test_no_child_is_forked_beside_other_threads_or_for_a_small_notebook():
    import threading

    from nbscale.compiler.python_check import BESIDE_FROM, RefusalCheck

    sources = {i: f"x{i} = {i}" for i in range(BESIDE_FROM)}
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert not RefusalCheck(sources, list(sources)).beside
    finally:
        stop.set()
        other.join()
    assert not RefusalCheck(sources, list(sources)[:BESIDE_FROM - 1]).beside


def test_no_child_is_forked_on_one_core(monkeypatch):
    from nbscale.compiler import python_check

    monkeypatch.setattr(python_check.threading, "active_count", lambda: 1)  # (as in a process of one thread)
    monkeypatch.setattr(python_check.os, "sched_getaffinity", lambda pid: {0})
    sources = {i: f"x{i} = {i}" for i in range(python_check.BESIDE_FROM)}
    assert not python_check.RefusalCheck(sources, list(sources)).beside
