"""Tests for nbscale.compiler.pyparse: real parses, with a real finalizer parsing in the middle."""

from __future__ import annotations

import ast
import gc
import sys
from contextlib import contextmanager

import pytest

from nbscale.compiler.parsing import parse_cell
from nbscale.compiler.pyparse import parse_text

SOURCE = "\n".join(f"a{i} = [{i}, ({i}, {{{i}: {i}}})]" for i in range(2000))


class _ParsesAsItGoes:
    """Garbage whose finalizer parses, as reporting an exception raised in a `__del__` does (its
    traceback's carets come from `ast.parse` in 3.11), at another depth of the stack; and leaves
    garbage like itself, for the next collections, while `left` lasts."""

    left = 0

    def __init__(self):
        self.me = self  # (a cycle: the collector, not the reference count, finalizes it)

    def __del__(self):
        def deeper(n):
            return ast.parse("x = 1") if n == 0 else deeper(n - 1)

        deeper(5)
        if _ParsesAsItGoes.left > 0:
            _ParsesAsItGoes.left -= 1
            _ParsesAsItGoes()


@contextmanager
def _finalizers_parsing_meanwhile():
    """The next 50 collections each run such a finalizer: a parse of SOURCE (about 300 collections
    at this threshold) meets them; one after them does not."""
    threshold = gc.get_threshold()
    gc.collect()
    _ParsesAsItGoes.left = 50
    _ParsesAsItGoes()
    gc.set_threshold(50)
    try:
        yield
    finally:
        _ParsesAsItGoes.left = 0
        gc.set_threshold(*threshold)
        gc.collect()


def test_a_parse_a_finalizer_parses_in_the_middle_of_gives_the_tree():
    with _finalizers_parsing_meanwhile():
        tree = parse_text(SOURCE)
    assert len(tree.body) == 2000 and ast.unparse(tree.body[-1]) == "a1999 = [1999, (1999, {1999: 1999})]"


@pytest.mark.skipif(sys.version_info >= (3, 13), reason="CPython 3.13 counts the depth per parse")
def test_that_interference_makes_a_plain_parse_fail_here():
    """What `parse_text` is for: without it, the same parse raises (this interpreter's bug)."""
    with pytest.raises(SystemError, match="recursion depth mismatch"), _finalizers_parsing_meanwhile():
        ast.parse(SOURCE)


def test_a_cell_parsed_meanwhile_has_no_diagnostic():
    with _finalizers_parsing_meanwhile():
        cell = parse_cell(0, SOURCE)
    assert cell.error is None and len(cell.tree.body) == 2000


def test_a_syntax_error_and_the_modes_are_ast_parses():
    with pytest.raises(SyntaxError):
        parse_text("x = (")
    assert isinstance(parse_text("a + 1", mode="eval"), ast.Expression)
