"""compiler/recursion.py: code nested as deep as Python compiles it compiles here too."""

from __future__ import annotations

import sys

import pytest

from nbscale.compiler import compile_source
from nbscale.compiler.errors import NbscaleCompileError
from nbscale.compiler.recursion import with_room_to_recurse


@pytest.mark.parametrize("code", [
    "x = " + " + ".join(["a"] * 2000),  # a long sum: one BinOp inside the next
    "x = a" + ".lower()" * 900,  # chained calls
    "x = " + "[" * 190 + "a" + "]" * 190,  # as deep as Python's parser nests brackets
    "if a == 0:\n    x = 0\n" + "".join(f"elif a == {i}:\n    x = {i}\n" for i in range(1, 700)),
])
def test_deeply_nested_code_compiles_with_its_dataflow(code):
    compile(code, "cell", "exec")  # Python takes it
    pipeline = compile_source([("a = 1", ["step:first"]), (code, ["step:deep"]), ("y = x", ["step:last"])])
    assert not pipeline.diagnostics, pipeline.diagnostics
    assert pipeline.step("deep").inputs == ["a"] and pipeline.step("last").inputs == ["x"]


def test_the_recursion_limit_is_given_back_and_errors_pass_through():
    limit = sys.getrecursionlimit()
    assert with_room_to_recurse(sys.getrecursionlimit) > limit
    assert sys.getrecursionlimit() == limit
    with pytest.raises(KeyError):
        with_room_to_recurse({}.__getitem__, "missing")


def test_deeper_than_the_room_given_is_a_clear_error():
    def endless(n):
        return endless(n + 1)

    with pytest.raises(NbscaleCompileError, match="nests deeper than nbscale can analyse"):
        with_room_to_recurse(endless, 0)


def test_deep_compiles_on_several_threads_at_once_all_compile_and_give_the_limit_back():
    # the limit is the process's: overlapping deep compiles once lowered it under each other
    from concurrent.futures import ThreadPoolExecutor

    limit = sys.getrecursionlimit()
    cells = [("a = 1", ["step:first"]), ("x = " + " + ".join(["a"] * 2500), ["step:deep"])]
    with ThreadPoolExecutor(8) as pool:
        pipelines = list(pool.map(lambda _: compile_source(cells), range(64)))
    assert all(not p.diagnostics and p.step("deep").inputs == ["a"] for p in pipelines)
    assert sys.getrecursionlimit() == limit


def test_no_compile_runs_while_a_deep_compile_holds_the_limit_high():
    # a compile beside it recursed past its own stack, then past the limit as it came down: an abort
    import threading

    high, release, done = threading.Event(), threading.Event(), threading.Event()

    def deep():
        high.set()
        release.wait(10)

    holder = threading.Thread(target=with_room_to_recurse, args=(deep,))
    holder.start()
    assert high.wait(10)
    other = threading.Thread(target=lambda: (compile_source([("x = 1", ["step:a"])]), done.set()))
    other.start()
    assert not done.wait(0.5), "a compile ran while the limit was raised"
    release.set()
    assert done.wait(10)
    holder.join(10)
    other.join(10)
