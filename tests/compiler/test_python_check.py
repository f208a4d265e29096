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
