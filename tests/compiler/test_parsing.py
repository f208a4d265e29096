"""compiler/parsing.py: each cell is parsed once per compile, a big cell in pieces to the same
tree, and the cycle collector is paused only while a compile runs."""

from __future__ import annotations

import ast
import gc
import json
from collections import Counter
from pathlib import Path

import pytest

from nbscale.compiler import compile_notebook, parsing
from nbscale.compiler.notebook import read_notebook
from nbscale.compiler.parsing import ParsedCells, Visitor, parse_cell, parse_python
from nbscale.compiler.syntax import to_python

GOLDEN = Path(__file__).resolve().parent / "golden"


@pytest.fixture
def parse_calls(monkeypatch):
    """Every text given to `ast.parse`, counted (the real parser still parses it)."""
    calls: Counter[str] = Counter()
    real = ast.parse

    def counting(source, *args, **kwargs):
        calls[source] += 1
        return real(source, *args, **kwargs)

    monkeypatch.setattr(ast, "parse", counting)
    return calls


def test_a_compile_parses_each_code_cell_once(parse_calls):
    # prelude, parameters, steps with settings and seeds, a skipped cell and the metrics cell:
    # every pass that reads a cell (analysis, settings, metrics) shares one tree of it
    notebook = read_notebook(GOLDEN / "settings_mix.ipynb")
    pipeline = compile_notebook(notebook)
    assert pipeline.steps and pipeline.metrics.names
    for cell in notebook.cells:
        python = to_python(cell.source)
        assert parse_calls[python] == 1, (cell.index, parse_calls[python])


def test_a_generated_notebook_is_parsed_once_per_cell(parse_calls):
    notebook = read_notebook(GOLDEN / "generated_120.ipynb")
    compile_notebook(notebook)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert sum(parse_calls.values()) == len(code)


def big_source(statements: int) -> str:
    """A cell longer than parsing.BIG_CELL with every shape that could cut a statement in two:
    strings and brackets holding lines at column 0, else/except/finally at column 0,
    decorators, backslash continuations, comments and `;`."""
    parts = ["import numpy as np", "@staticmethod\n\n@property\ndef grow(v, k=1):\n    return v + k", "v_0 = 0"]
    for i in range(1, statements):
        kind = i % 11
        if kind == 1:
            parts.append(f'note_{i} = """\nx_{i} = 1\nelse:\n"""\nv_{i} = v_{i - 1}')
        elif kind == 2:
            parts.append(f"if v_{i - 1} > 3:\n    v_{i} = v_{i - 1}\nelif v_{i - 1}:\n    pass\nelse:\n    v_{i} = 1")
        elif kind == 3:
            parts.append(f"try:\n    v_{i} = grow(v_{i - 1})\nexcept ValueError:\n    v_{i} = 0\nfinally:\n    pass")
        elif kind == 4:
            parts.append(f"v_{i} = (v_{i - 1} +\n1 +\n# a comment at column 0\n2)")
        elif kind == 5:
            parts.append(f"v_{i} = v_{i - 1} + \\\n3; w_{i} = [\n]")
        elif kind == 6:
            parts.append(f"# comment {i}\n\nv_{i} = grow(v_{i - 1}, k={i})  # trailing")
        else:
            parts.append(f"v_{i} = grow(v_{i - 1}, k={i}) * 2")
    source = "\n".join(parts) + "\n"
    assert len(source) > parsing.BIG_CELL
    return source


def test_a_big_cell_is_parsed_in_pieces_to_the_same_tree(parse_calls):
    source = big_source(9000)
    tree = parse_python(source)
    assert sum(parse_calls.values()) > 2  # in pieces, not in one parse
    whole = compile(source, "<unknown>", "exec", ast.PyCF_ONLY_AST)
    assert ast.dump(tree, include_attributes=True) == ast.dump(whole, include_attributes=True)


def test_a_syntax_error_in_a_big_cell_is_reported_as_one_parse_reports_it():
    source = big_source(9000).replace("v_4000 = ", "v_4000 = = ", 1)
    with pytest.raises(SyntaxError) as whole:
        compile(source, "<unknown>", "exec", ast.PyCF_ONLY_AST)
    parsed = parse_cell(3, source)
    assert parsed.tree is None
    assert parsed.error == (whole.value.lineno, whole.value.offset, whole.value.msg)


def test_a_big_cell_compiles_as_it_does_when_parsed_whole(monkeypatch, tmp_path):
    from conftest import make_notebook  # noqa: PLC0415 - the tests' shared notebook writer

    path = make_notebook(tmp_path, [("import numpy as np\nnp.random.seed(1)", ["step:first"]),
                                    (big_source(9000), ["step:big"]), ("out = v_8999 + w_5", ["step:last"])])
    in_pieces = compile_notebook(path).to_json()
    monkeypatch.setattr(parsing, "BIG_CELL", 10**9)
    assert compile_notebook(path).to_json() == in_pieces


def test_parsed_cells_parse_on_first_use_and_keep_the_tree(parse_calls):
    cells = ParsedCells({0: "x = 1", 2: "%time y = x"})
    assert not parse_calls
    first = cells[2]
    assert cells.cells([2, 0])[0] is first and first.tree is not None
    assert sum(parse_calls.values()) == 2


def test_parse_cell_keeps_the_error_instead_of_raising():
    assert parse_cell(4, "def f(:\n").error[:2] == (1, 7)
    assert parse_cell(4, "x = '\0'").error == (1, 1, "source code string cannot contain null bytes")


def test_the_visitor_visits_what_node_visitor_visits():
    source = (GOLDEN / "settings_mix.ipynb").read_text()
    trees = [ast.parse(to_python("".join(c["source"]))) for c in json.loads(source)["cells"][:7]]

    def record(base):
        seen = []

        class Recorder(base):
            def visit_Name(self, node):
                seen.append((node.id, type(node.ctx).__name__))

            def visit_Call(self, node):
                seen.append(("call", node.lineno, node.col_offset))
                self.generic_visit(node)

        for tree in trees:
            Recorder().visit(tree)
        return seen

    assert record(Visitor) == record(ast.NodeVisitor)


def test_a_compile_pauses_the_cycle_collector_and_resumes_it(tmp_path):
    seen = []

    class Probe(Visitor):
        def visit_Module(self, node):
            seen.append(gc.isenabled())

    assert gc.isenabled()
    with parsing.collector_paused():
        Probe().visit(ast.parse("x = 1"))
    assert seen == [False] and gc.isenabled()
    gc.disable()
    try:
        with parsing.collector_paused():
            pass
        assert not gc.isenabled()  # it stays as the caller had it
    finally:
        gc.enable()


def test_a_big_cell_keeps_where_its_pieces_are_and_gives_the_same_statements(parse_calls):
    source = big_source(9000)
    parsed = parse_cell(5, source)
    assert parsed.error is None and parsed.tree is None and len(parsed.pieces) > 2
    statements = ast.Module(body=list(parsed.statements()), type_ignores=[])
    whole = compile(source, "<unknown>", "exec", ast.PyCF_ONLY_AST)
    assert ast.dump(statements, include_attributes=True) == ast.dump(whole, include_attributes=True)
    first = next(parsed.parts())
    assert first.line == 0 and source.startswith(first.text)
    node = first.statements()[2].targets[0]  # v_0 = 0
    assert first.segment(node) == "v_0"
    last = list(parsed.parts())[-1]
    node = last.statements()[-1]
    assert last.line > 0 and last.segment(node) == source.rstrip("\n").rsplit("\n", 1)[-1]


def test_the_analysis_of_a_big_cell_keeps_none_of_its_tree():
    from nbscale.compiler.analysis import analyse_cells  # noqa: PLC0415 - this test is about parsing

    def nodes_alive():
        gc.collect()  # (garbage of earlier tests would count before and not after)
        return sum(isinstance(o, ast.AST) for o in gc.get_objects())

    before = nodes_alive()
    facts = analyse_cells([parse_cell(0, big_source(9000))])
    assert len(facts.binds) > 8000
    assert nodes_alive() - before < 100  # (a tree of the cell: over 100,000 nodes)
    assert facts.bind_sites["v_8990"].code.startswith("v_8990 = ")


def test_a_released_cell_gives_the_same_statements_parsed_again():
    source = "import math\nx = [1, 2]  # note\ny = math.sqrt(len(x))"
    parsed = parse_cell(3, source)
    kept = ast.dump(ast.Module(body=list(parsed.statements()), type_ignores=[]), include_attributes=True)
    parsed.release()
    assert parsed.tree is None
    again = ast.dump(ast.Module(body=list(parsed.statements()), type_ignores=[]), include_attributes=True)
    assert again == kept
    piece = next(parsed.parts())
    assert piece.segment(piece.statements()[2].value) == "math.sqrt(len(x))"
