"""Calls of the notebook's own functions: which callee, and which arguments it changes."""

import ast

from nbscale.compiler.analysis import analyse_cells
from nbscale.compiler.callables import callee_of, changed_arguments


def call(text):
    return ast.parse(text).body[0].value


KNOWN = analyse_cells([(0, "def add_col(d, col='c'):\n    d[col] = 1\n    return d\n"
                          "def ratio(d):\n    return d.a / d.b\n")]).callables


def test_a_direct_call_and_a_pipe_call_the_same_function():
    callee, args, _ = callee_of(call("add_col(df)"), KNOWN)
    assert callee.name == "add_col" and [ast.unparse(a) for a in args] == ["df"]
    callee, args, _ = callee_of(call("df.pipe(add_col, 'z')"), KNOWN)
    assert callee.name == "add_col" and [ast.unparse(a) for a in args] == ["df", "'z'"]
    assert callee_of(call("print(df)"), KNOWN) == (None, [], [])


def test_changed_arguments_follow_positions_and_keywords():
    callee, args, keywords = callee_of(call("add_col(df)"), KNOWN)
    assert [(ast.unparse(e), p) for e, p in changed_arguments(callee, args, keywords)] == [("df", "d")]
    callee, args, keywords = callee_of(call("add_col(d=frame)"), KNOWN)
    assert [(ast.unparse(e), p) for e, p in changed_arguments(callee, args, keywords)] == [("frame", "d")]
    callee, args, keywords = callee_of(call("ratio(df)"), KNOWN)
    assert changed_arguments(callee, args, keywords) == []


def test_a_piped_lambda_changes_its_receiver_only_when_its_body_does():
    callee, args, keywords = callee_of(call("df.pipe(lambda d: d.dropna(inplace=True))"), KNOWN)
    assert [ast.unparse(e) for e, _ in changed_arguments(callee, args, keywords)] == ["df"]
    callee, args, keywords = callee_of(call("df.pipe(lambda d: d[d.a > 0])"), KNOWN)
    assert changed_arguments(callee, args, keywords) == []
