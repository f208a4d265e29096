"""compiler/targets/kfp/literals.py: values written into the generated module as Python source."""

from __future__ import annotations

import ast

import pytest
from kfp_compiled import TRICKY

from nbscale.compiler.targets.kfp.literals import WIDTH, Code, docstring, literal, string_literal, wrapped


@pytest.mark.parametrize("value", [
    TRICKY, "", "a\n", "\n\n", "'''", '"""', "\\", "{{{{", "x" * 300, "é ✓ 🙂", "\r\n\x00",
    [TRICKY, {"k": [1, 2.5, None, True]}], {"a": {"b": {"c": [[], {}]}}}, -0.0, 1e300, 10**30,
])
def test_literals_round_trip_and_never_hold_placeholders(value):
    text = literal(value, 8)
    assert ast.literal_eval(text) == value
    assert "{{" not in text


def test_long_values_span_lines_within_the_width():
    value = {"source": [f"line {i} of a long cell\n" for i in range(12)], "cells": list(range(30))}
    text = literal(value, 8)
    assert ast.literal_eval(text) == value
    assert all(len(line) + 8 <= WIDTH for line in text.splitlines())


def test_code_is_written_as_it_is_and_strings_prefer_double_quotes():
    assert literal({"x": Code("out_x")}, 0) == '{"x": out_x}'
    assert string_literal("it's") == '"it\'s"' and string_literal('say "hi"') == "'say \"hi\"'"
    assert docstring("Step a: cell 1.") == '"""Step a: cell 1."""'
    assert ast.literal_eval(docstring('a "quoted" {{x}}')) == 'a "quoted" {{x}}'


def test_a_reference_too_long_for_the_line_is_still_a_reference():
    # it was written as a quoted string: a 41-character parameter's step got the text "p_number_of…"
    name = Code("p_number_of_trees_in_the_random_forest_model_and_more")
    assert literal(name, 8, 60) == str(name)
    assert literal({"k": name, "j": [name, "x" * 90]}, 8).count(str(name)) == 2
    assert f'"{name}"' not in literal({"k": name, "j": [name, "x" * 90]}, 8)


def test_wrapped_is_one_line_when_it_fits():
    assert wrapped("def f(", ["a: int", "b: str"], "):") == ["def f(a: int, b: str):"]
    long = wrapped("    t = f(", [f"argument_{i}=value_{i}" for i in range(8)], "    )")
    assert long[0] == "    t = f(" and long[-1] == "    )" and long[1] == "        argument_0=value_0,"


@pytest.mark.parametrize("text", [
    "Step a: cell 1 of nb.ipynb.", "two\nlines\n", '"""\nimport os\n"""', "x'''; import os; '''", 'ends "', "ends \\",
    "{{$.inputs}}", "nul \x00", "line\u2028separator", "tab\there", "\r\n",
])
def test_a_docstring_is_one_string_whatever_the_text(text):
    for indent in (0, 4):
        source = docstring(text, indent)
        tree = ast.parse(source if indent == 0 else f"def f():\n    {source}\n")
        body = tree.body if indent == 0 else tree.body[0].body
        assert len(body) == 1 and body[0].value.value == text
        assert "{{" not in source
    assert docstring("two\nlines\n") == '"""two\nlines\n"""'  # plain text stays readable


def test_subclasses_do_not_choose_their_own_source():
    class Sneaky(str):
        def __repr__(self):
            return "__import__('os')"

    class SneakyInt(int):
        def __repr__(self):
            return "__import__('os')"

    assert ast.literal_eval(string_literal(Sneaky("x"))) == "x"
    assert ast.literal_eval(literal({"k": [Sneaky("x")]}, 0)) == {"k": ["x"]}
    with pytest.raises(TypeError):
        literal(SneakyInt(3), 0)
    with pytest.raises(TypeError):
        string_literal(3)
