"""The parameters cell: literal assignments become typed pipeline parameters."""

import json

import pytest

from nbscale.compiler import compile_source
from nbscale.compiler.parameters import parse_parameters


def params(source, cell=2):
    found, problems = parse_parameters([(cell, source)])
    return {p.name: p for p in found}, problems


def one(source):
    found, problems = params(source)
    assert problems == [], problems
    [param] = found.values()
    return param


@pytest.mark.parametrize("source, type_name, default", [
    ("seed = 42", "int", 42),
    ("seed = -7", "int", -7),
    ("big = 1_000_000", "int", 1000000),
    ("alpha = 0.5", "float", 0.5),
    ("lr = 1e-3", "float", 0.001),
    ("neg = -2.5", "float", -2.5),
    ("model = 'rf'", "str", "rf"),
    ('model = "rf"', "str", "rf"),
    ("empty = ''", "str", ""),
    ("flag = True", "bool", True),
    ("flag = False", "bool", False),
    ("nothing = None", "none", None),
    ("layers = [64, 32]", "list", [64, 32]),
    ("empty = []", "list", []),
    ("cfg = {'depth': 3, 'name': 'x'}", "dict", {"depth": 3, "name": "x"}),
    ("nested = {'a': [1, {'b': None}], 'c': {'d': [True, 1.5, 's']}}", "dict",
     {"a": [1, {"b": None}], "c": {"d": [True, 1.5, "s"]}}),
])
def test_literal_types(source, type_name, default):
    param = one(source)
    assert (param.type, param.default) == (type_name, default)
    assert type(param.default) is type(default)


def test_strings_with_quotes_newlines_and_braces_survive_exactly():
    param = one("""text = 'it\\'s "x" {y}\\n'""")
    assert param.default == 'it\'s "x" {y}\n'
    assert json.loads(json.dumps(param.default)) == param.default


def test_triple_quoted_multiline_string():
    source = 'sql = """select *\nfrom t\nwhere a = \'{x}\'"""'
    assert one(source).default == "select *\nfrom t\nwhere a = '{x}'"


def test_bool_is_not_int():
    assert one("flag = True").type == "bool"


def test_several_parameters_keep_order_cell_and_line():
    found, problems = params('"""Parameters of the run."""\na = 1\n\n# a comment\nb = "two"  # trailing\nc = [3]')
    assert not problems
    assert list(found) == ["a", "b", "c"]
    assert [(p.cell, p.line) for p in found.values()] == [(2, 2), (2, 5), (2, 6)]


@pytest.mark.parametrize("source, type_name, default", [
    ("alpha: float = 1", "float", 1.0),
    ("alpha: float = 0.5", "float", 0.5),
    ("n: int = 3", "int", 3),
    ("name: str = 'x'", "str", "x"),
    ("flag: bool = False", "bool", False),
    ("xs: list = [1]", "list", [1]),
    ("d: dict = {}", "dict", {}),
])
def test_annotations(source, type_name, default):
    param = one(source)
    assert (param.type, param.default) == (type_name, default)
    assert type(param.default) is type(default)


@pytest.mark.parametrize("source, words", [
    ("n: int = 1.5", "declared int"),
    ("flag: bool = 1", "declared bool"),
    ("alpha: float = True", "declared float"),
    ("x: tuple = [1]", "not one of"),
    ("x: int", "not a parameter assignment"),
])
def test_bad_annotations(source, words):
    found, [diag] = params(source)
    assert not found
    assert diag.code == "bad-parameter" and words in diag.message


@pytest.mark.parametrize("source, line", [
    ("x = f()", 1),
    ("a = 1\ny = other", 2),
    ("a = 1\nb = 2\ns = f'{a}'", 3),
    ("x = 1 + 2", 1),
    ("x = [i for i in range(3)]", 1),
    ("x = float('nan')", 1),
    ("a = b = 1", 1),
    ("a, b = 1, 2", 1),
    ("import os", 1),
    ("x += 1", 1),
    ("x = 1e400", 1),
    ("x = 1j", 1),
    ("x = b'bytes'", 1),
    ("x = {1: 'a'}", 1),
])
def test_non_literals_are_bad_parameters_with_cell_and_line(source, line):
    found, problems = params(source, cell=5)
    assert [d.code for d in problems] == ["bad-parameter"]
    diag = problems[0]
    assert (diag.cell, diag.line, diag.col) == (5, line, 1)
    assert diag.severity == "error"


def test_non_literal_message_names_the_parameter():
    _, [diag] = params("x = f()")
    assert "'x'" in diag.message and "f()" in diag.message
    assert "literal" in diag.hint


@pytest.mark.parametrize("source", ["t = (1, 2)", "s = {1, 2}", "xs = [1, (2, 3)]"])
def test_tuples_and_sets_suggest_a_list(source):
    _, [diag] = params(source)
    assert diag.code == "bad-parameter"
    assert "list" in diag.hint


def test_a_bad_line_does_not_hide_the_good_ones():
    found, problems = params("a = 1\nb = f()\nc = 3")
    assert list(found) == ["a", "c"]
    assert [d.line for d in problems] == [2]


def test_duplicate_is_a_warning_and_the_last_value_wins():
    found, [diag] = params("a = 1\nb = 2\na = 3")
    assert found["a"].default == 3
    assert (diag.code, diag.severity, diag.line) == ("duplicate-parameter", "warning", 3)


def test_duplicate_across_two_parameters_cells():
    found, problems = parse_parameters([(0, "a = 1"), (3, "a = 2.5")])
    assert [(p.name, p.type, p.default, p.cell) for p in found] == [("a", "float", 2.5, 3)]
    assert [(d.code, d.cell) for d in problems] == [("duplicate-parameter", 3)]


def test_syntax_error_in_parameters_cell():
    found, [diag] = params("a = 1\nb = (")
    assert not found
    assert (diag.code, diag.line) == ("syntax-error", 2)


def test_magics_in_parameters_cell_are_allowed():
    assert one("%time a = 1").default == 1


def test_parameters_in_the_ir_and_as_step_inputs():
    p = compile_source([
        ("import math", ["imports"]),
        ("alpha: float = 1\nname = 'it\\'s {x}'\nlayers = [64, 32]", ["parameters"]),
        ("y = math.sqrt(alpha) * len(layers)", ["step:train"]),
        ("z = y\nprint(name)", ["step:report"]),
    ])
    assert not p.diagnostics, p.diagnostics
    assert [(q.name, q.type, q.default) for q in p.parameters] == [
        ("alpha", "float", 1.0), ("name", "str", "it's {x}"), ("layers", "list", [64, 32])]
    assert p.step("train").parameters == ["alpha", "layers"]
    assert p.step("train").inputs == []
    assert p.step("report").parameters == ["name"]
    ir = p.to_json()
    assert ir["parameters"][0] == {"name": "alpha", "type": "float", "default": 1.0, "cell": 1, "line": 1}


def test_kale_parameters_tag():
    p = compile_source([("n = 3", ["pipeline-parameters"]), ("m = n * 2", ["block:a"])])
    assert [q.name for q in p.parameters] == ["n"]
    assert p.step("a").parameters == ["n"]


def test_bad_parameter_in_a_notebook_is_an_error():
    p = compile_source([("x = 1", ["parameters"]), ("y = compute()", ["parameters"])])
    bad = [d for d in p.diagnostics if d.code == "bad-parameter"]
    assert [(d.cell, d.line) for d in bad] == [(1, 1)]
    assert p.has_errors


def test_papermill_injected_cell_overrides_defaults_without_warning():
    from nbscale.compiler import compile_source

    p = compile_source([("alpha = 0.5\nname = 'x'", ["parameters"]), ("alpha = 0.9", ["injected-parameters"]),
                        ("b = alpha", ["step:a"])])
    assert [(q.name, q.default) for q in p.parameters] == [("alpha", 0.9), ("name", "x")]
    assert not p.diagnostics and p.step("a").parameters == ["alpha"] and p.step("a").inputs == []


def test_injected_values_keep_the_declared_type():
    from nbscale.compiler import compile_source

    p = compile_source([("name = 'abc'\nrate = 0.5\nn = 3\nopt = None", ["parameters"]),
                        ("name = 12\nrate = 1\nn = 4.0\nopt = 'x'", ["injected-parameters"]),
                        ("b = (name, rate, n, opt)", ["step:a"])])
    assert {q.name: (q.type, q.default) for q in p.parameters} == {
        "name": ("str", "12"), "rate": ("float", 1.0), "n": ("int", 4), "opt": ("str", "x")}
    p = compile_source([("n = 3", ["parameters"]), ("n = 'many'", ["injected-parameters"]), ("b = n", ["step:a"])])
    assert [d.code for d in p.diagnostics] == ["bad-parameter"] and p.diagnostics[0].cell == 1
    assert "parameter 'n' is int (cell 1) but" in p.diagnostics[0].message  # the declaring cell, numbered from 1


def test_an_int_too_long_to_write_as_text_is_a_bad_parameter_at_its_line():
    pipeline = compile_source([("a = 1\nn = 0x" + "f" * 5000, ["parameters"]), ("m = n % 7", ["step:s"])])
    (problem,) = [d for d in pipeline.diagnostics if d.code == "bad-parameter"]
    assert (problem.cell, problem.line) == (0, 2) and "more than 4,300 digits" in problem.message
    assert len(problem.message) < 200


@pytest.mark.parametrize("source, where", [('s = "\\ud800x"', "'\\ud800' at position 0"),
                                           ('xs = ["ok", "a\\udfff"]', "'\\udfff' at position 1"),
                                           ('d = {"\\ud83d": 1}', "'\\ud83d' at position 0")])
def test_text_with_a_lone_surrogate_is_a_bad_parameter_at_its_line(source, where):
    # a Python literal, but no UTF-8 YAML or JSON can hold it: `compile --target kfp` failed
    # without naming the cell and `run --engine kfp-local` crashed
    pipeline = compile_source([("a = 1\n" + source, ["parameters"]), ("b = a", ["step:s"])])
    (problem,) = [d for d in pipeline.diagnostics if d.code == "bad-parameter"]
    assert (problem.cell, problem.line, problem.severity) == (0, 2, "error")
    name = source.split(" ")[0]
    assert f"parameter '{name}' holds text that is not valid Unicode ({where})" in problem.message
    problem.message.encode("utf-8")  # the message itself can be printed
