"""compiler/python_check.py: cells Python's compiler refuses, found before a run."""

from __future__ import annotations

from nbscale.compiler import compile_source
from nbscale.compiler.python_check import refused_cells


def test_what_only_pythons_compiler_refuses_is_found_at_its_cell_and_line():
    pipeline = compile_source([
        ("import os", ["imports"]),
        ("x = 1\nnames = [i async for i in x]", ["step:a"]),  # top-level async, as IPython allows
        ("def f():\n    nonlocal y\n    y = 1", ["step:b"]),
        ("def g(a, a):\n    pass", ["step:c"]),
        ("%time z = 1\nr = await something()", ["step:d"]),  # magics and a top-level await, as IPython runs them
    ])
    found = [(d.code, d.cell, d.line) for d in refused_cells(pipeline)]
    assert found == [("syntax-error", 2, 2), ("syntax-error", 3, 1)]
    assert "nonlocal 'y'" in refused_cells(pipeline)[0].message


def test_a_pipeline_python_takes_has_nothing_refused():
    pipeline = compile_source([("import math", ["imports"]), ("x = math.pi\nprint(x)", ["step:a"])])
    assert refused_cells(pipeline) == []
