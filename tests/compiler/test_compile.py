"""compile_notebook end to end: golden IR for the examples, and the fidelity property."""

import copy
import json
import os
import types
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nbscale.compiler import compile_notebook, compile_source
from nbscale.compiler.graph import topological_order

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).resolve().parent / "golden"
EXAMPLES = sorted((ROOT / "examples").glob("*.ipynb"))


def test_examples_match_golden_ir():
    assert EXAMPLES, "examples/ has no notebooks"
    for notebook in EXAMPLES:
        ir = compile_notebook(notebook).to_json()
        golden = GOLDEN / f"{notebook.stem}.json"
        if os.environ.get("NBSCALE_UPDATE_GOLDEN"):
            golden.write_text(json.dumps(ir, indent=2, ensure_ascii=False) + "\n")
        assert ir == json.loads(golden.read_text()), f"{notebook.name} differs from {golden.name}"


def test_generated_notebooks_match_the_ir_of_the_compiler_before_shared_trees():
    # The golden IR was written by the compiler that parsed each cell once per pass and walked
    # every statement for settings; the shared-tree compile must give exactly the same IR and
    # diagnostics: a generated notebook (bench/bench_compile.py), its alias-heavy variant, and
    # settings, seeds, magics, a syntax error and dynamic code (settings_mix).
    notebooks = sorted(GOLDEN.glob("*.ipynb"))
    assert {n.stem for n in notebooks} >= {"generated_120", "generated_120_alias", "settings_mix"}
    for notebook in notebooks:
        ir = compile_notebook(notebook).to_json()
        assert ir == json.loads((GOLDEN / f"{notebook.stem}.json").read_text()), notebook.name


def test_an_empty_or_markdown_only_notebook_says_nothing_to_run():
    from nbscale.compiler.notebook import Cell, Notebook

    markdown = Notebook(path="notes.ipynb", cells=(Cell(index=0, cell_type="markdown", source="# Notes"),))
    for pipeline, why in [(compile_notebook(Notebook(path="empty.ipynb", cells=())), "no code cells"),
                          (compile_notebook(markdown), "no code cells"),
                          (compile_source(["# just a comment", ("import os", ["imports"]), ("x = 1", ["skip"])]),
                           "tagged imports")]:
        assert pipeline.steps == [] and not pipeline.has_errors
        assert [(d.code, d.severity) for d in pipeline.diagnostics] == [("nothing-to-run", "info")]
        assert why in pipeline.diagnostics[0].message
    assert "nothing-to-run" not in [d.code for d in compile_source(["x = 1"]).diagnostics]
    # a notebook whose cells all have errors says what is wrong, not "nothing to run"
    assert [d.code for d in compile_source([("x = 1", ["paramters"])]).diagnostics] == ["unknown-tag"]


@pytest.mark.parametrize("meta, key, shown", [({"nbscale": {"name": 5}}, "nbscale.name", "5"),
                                              ({"nbscale": {"name": ["a"]}}, "nbscale.name", '["a"]'),
                                              ({"nbscale": {"name": True}}, "nbscale.name", "true"),
                                              ({"nbscale": "x"}, "nbscale", '"x"'),
                                              ({"nbscale": ["x" * 100]}, "nbscale", "...")])
def test_mistyped_nbscale_metadata_is_an_error_naming_the_key(meta, key, shown):
    # it was dropped in silence: the pipeline took the file's name instead of the one meant
    from nbscale.compiler.notebook import Cell, Notebook

    notebook = Notebook(path="nb.ipynb", cells=(Cell(index=0, cell_type="code", source="x = 1"),), metadata=meta)
    pipeline = compile_notebook(notebook)
    [problem] = pipeline.diagnostics
    assert (problem.code, problem.severity) == ("bad-metadata", "error") and pipeline.has_errors
    assert problem.message.startswith(f"notebook metadata {key} must be ") and shown in problem.message
    assert len(problem.message) < 120 and pipeline.name == "nb"


def test_a_string_nbscale_name_names_the_pipeline():
    from nbscale.compiler.notebook import Cell, Notebook

    cells = (Cell(index=0, cell_type="code", source="x = 1"),)
    for meta, name in [({"nbscale": {"name": "train"}}, "train"), ({"nbscale": {"name": " "}}, "nb"),
                       ({"nbscale": {"kfp": {}}}, "nb"), ({}, "nb")]:
        pipeline = compile_notebook(Notebook(path="nb.ipynb", cells=cells, metadata=meta))
        assert pipeline.name == name and pipeline.diagnostics == []


def test_examples_have_no_diagnostics():
    for notebook in EXAMPLES:
        assert compile_notebook(notebook).diagnostics == [], notebook.name


# --- fidelity property -------------------------------------------------------------------------
# A generated notebook of straight-line cells over ints and lists, with in-place mutation,
# aliasing, functions reading globals and deletion, is split into steps at random. Running the
# steps in a topological order of the IR, each with only its declared inputs (copied, as the
# run time copies them), must leave the same final values as running the cells top to bottom.

NAMES = ["a", "b", "c", "d", "e"]


@st.composite
def programs(draw):
    ints, lists, funcs, cells = set(), set(), [], []
    for _ in range(draw(st.integers(3, 14))):
        options = ["int", "list"]
        if ints:
            options += ["sum", "aug", "func"]
        if lists:
            options += ["append", "setitem", "alias", "loop", "len"]
        if funcs:
            options.append("call")
        if len(ints) + len(lists) > 2:
            options.append("del")
        kind = draw(st.sampled_from(options))
        target = draw(st.sampled_from(NAMES))
        some_int = lambda: draw(st.sampled_from(sorted(ints)))  # noqa: E731
        some_list = lambda: draw(st.sampled_from(sorted(lists)))  # noqa: E731
        if kind == "int":
            code, new = f"{target} = {draw(st.integers(-5, 5))}", "int"
        elif kind == "list":
            code, new = f"{target} = [{draw(st.integers(0, 9))}]", "list"
        elif kind == "sum":
            code, new = f"{target} = {some_int()} + {some_int()}", "int"
        elif kind == "aug":
            target = some_int()
            code, new = f"{target} += 1", "int"
        elif kind == "len":
            code, new = f"{target} = len({some_list()})", "int"
        elif kind == "func":
            name, read = f"f{len(cells)}", some_int()
            code, new, target = f"def {name}():\n    return {read} * 2\n", None, name
            funcs.append((name, read))
        elif kind == "call":
            code, new = f"{target} = {draw(st.sampled_from(funcs))[0]}()", "int"
        elif kind == "append":
            code, new, target = f"{some_list()}.append({draw(st.integers(0, 9))})", None, None
        elif kind == "setitem":
            code, new, target = f"{some_list()}[0] = {draw(st.integers(0, 9))}", None, None
        elif kind == "alias":
            code, new = f"{target} = {some_list()}", "list"
        elif kind == "loop":
            pair = f"[{some_list()}, {some_list()}]"
            code, new, target = f"for item in {pair}:\n    item.append(7)\n", None, None
            lists.add("item")
        else:  # del
            target = draw(st.sampled_from(sorted(ints | lists)))
            code, new = f"del {target}", "gone"
        if new in ("int", "list", "gone"):
            # functions read ints: drop those whose global stops being one
            funcs = [f for f in funcs if f[1] != target or new == "int"]
            ints.discard(target)
            lists.discard(target)
            if new == "int":
                ints.add(target)
            elif new == "list":
                lists.add(target)
        cells.append(code)
    starts = draw(st.lists(st.booleans(), min_size=len(cells), max_size=len(cells)))
    return cells, starts


def _notebook(cells, starts):
    tagged, step = [], 0
    for i, (code, start) in enumerate(zip(cells, starts)):
        tags = []
        if start or i == 0:
            step += 1
            tags = [f"step:s{step}"]
        tagged.append((code, tags))
    return tagged


def _top_to_bottom(cells):
    ns = {}
    for code in cells:
        exec(code, ns)
    return {k: v for k, v in ns.items() if k != "__builtins__" and not callable(v)}


def _run_pipeline(pipeline):
    by_name = {s.name: s for s in pipeline.steps}
    order = topological_order([s.name for s in pipeline.steps], {s.name: s.after for s in pipeline.steps})
    results = {}
    for name in order:
        step = by_name[name]
        ns = {}
        for producer in {step.sources[n] for n in step.inputs}:
            names = [n for n in step.inputs if step.sources[n] == producer]
            # one copy per producer, so objects shared between its outputs stay shared
            ns.update(copy.deepcopy({n: results[producer][n] for n in names}))
        for key, value in list(ns.items()):
            if isinstance(value, types.FunctionType):  # as the executor does: globals are this step's
                ns[key] = types.FunctionType(value.__code__, ns, value.__name__)
        for code in step.source:
            exec(code, ns)
        results[name] = ns
    final = {}
    for step in pipeline.steps:  # notebook order: the last step defining a name holds its value
        for name in step.defines:
            if name in results[step.name]:
                final[name] = results[step.name][name]
    return {k: v for k, v in final.items() if not callable(v)}


EXAMPLES_TO_TRY = int(os.environ.get("NBSCALE_PROPERTY_EXAMPLES", "300"))


@settings(max_examples=EXAMPLES_TO_TRY, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs())
def test_pipeline_gives_the_same_values_as_top_to_bottom(program):
    cells, starts = program
    pipeline = compile_source(_notebook(cells, starts))
    assert not pipeline.has_errors, [d.message for d in pipeline.diagnostics]
    expected = _top_to_bottom(cells)
    actual = _run_pipeline(pipeline)
    for name, value in expected.items():
        assert actual.get(name) == value, f"{name}: pipeline {actual.get(name)!r} != notebook {value!r}\n" + \
            "\n---\n".join(cells)


def test_columns_are_counted_in_characters_as_an_editor_counts_them():
    """A syntax tree counts UTF-8 bytes: each `é` before the name moved the column one further,
    each CJK character two."""
    p = compile_source([("s = 'héllo 中文' + undefined_q\r\nt = 'ü' + also_undefined", ["step:a"])])
    assert [(d.line, d.col) for d in p.diagnostics] == [(1, 18), (2, 11)]
    assert compile_source([("s = 'é' + ", ["step:a"])]).diagnostics[0].col == 11  # (a syntax error's already)
