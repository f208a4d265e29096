"""The step DAG: topological order, cycles, ancestry and the three renderings."""

import re

import pytest

from nbscale.compiler import compile_notebook, compile_source
from nbscale.compiler.graph import ancestors, find_cycle, render, topological_order
from nbscale.compiler.notebook import Cell, Notebook


def diamond():
    return compile_source([
        ("X, y = [1, 2], [3, 4]", ["step:split"]),
        ("lr = ('lr', X, y)", ["step:train_lr"]),
        ("rf = ('rf', X, y)", ["step:train_rf"]),
        ("best = max(lr, rf)", ["step:pick"]),
        ("open('log', 'w').write('x')", ["step:log", "after:pick"]),
    ], name="demo")


# -- order and cycles ----------------------------------------------------------------------


def test_topological_order_keeps_notebook_order_for_ties():
    names = ["a", "b", "c", "d", "e"]
    assert topological_order(names, {}) == names
    assert topological_order(names, {"d": ["a"], "b": ["c"]}) == ["a", "c", "b", "d", "e"]


def test_topological_order_puts_upstream_first():
    names = ["late", "early", "mid"]
    order = topological_order(names, {"late": ["mid"], "mid": ["early"]})
    assert order == ["early", "mid", "late"]


def test_topological_order_ignores_unknown_upstream_names():
    assert topological_order(["a", "b"], {"a": ["ghost"]}) == ["a", "b"]


def test_topological_order_of_a_cycle_is_none():
    assert topological_order(["a", "b", "c"], {"a": ["c"], "b": ["a"], "c": ["b"]}) is None
    assert topological_order(["a"], {"a": ["a"]}) is None


def test_topological_order_is_valid_on_a_larger_dag():
    names = [f"s{i}" for i in range(50)]
    upstream = {f"s{i}": [f"s{j}" for j in range(i) if (i * 7 + j) % 5 == 0] for i in range(50)}
    order = topological_order(names, upstream)
    position = {n: i for i, n in enumerate(order)}
    assert sorted(order) == sorted(names)
    assert all(position[u] < position[n] for n, ups in upstream.items() for u in ups)


def test_find_cycle_returns_the_cycle_in_run_order():
    # b runs after a, c after b, a after c
    cycle = find_cycle(["a", "b", "c"], {"b": ["a"], "c": ["b"], "a": ["c"]})
    assert cycle[0] == cycle[-1]
    assert len(cycle) == 4 and set(cycle) == {"a", "b", "c"}
    for first, then in zip(cycle, cycle[1:]):
        assert first in {"b": ["a"], "c": ["b"], "a": ["c"]}[then], f"{then} does not run after {first}"


def test_find_cycle_self_loop():
    assert find_cycle(["a"], {"a": ["a"]}) == ["a", "a"]


def test_find_cycle_none_on_a_dag():
    assert find_cycle(["a", "b", "c"], {"b": ["a"], "c": ["a", "b"]}) is None
    assert find_cycle([], {}) is None


def test_find_cycle_in_a_part_of_the_graph():
    upstream = {"b": ["a"], "c": ["b"], "d": ["e"], "e": ["d"]}
    assert set(find_cycle(["a", "b", "c", "d", "e"], upstream)) == {"d", "e"}


def test_find_cycle_on_a_chain_longer_than_the_recursion_limit():
    n = 3000
    names = [f"s{i}" for i in range(n)]
    upstream = {f"s{i}": [f"s{i - 1}"] for i in range(1, n)}
    assert find_cycle(names[::-1], upstream) is None
    upstream["s0"] = [f"s{n - 1}"]
    cycle = find_cycle(names[::-1], upstream)
    assert len(cycle) == n + 1 and cycle[0] == cycle[-1]


def test_ancestors():
    upstream = {"b": ["a"], "c": ["b"], "d": ["a"]}
    assert ancestors("c", upstream) == {"a", "b"}
    assert ancestors("a", upstream) == set()


def test_cycle_from_after_tags_is_a_diagnostic():
    p = compile_source([("a = 1", ["step:s", "after:t"]), ("b = a", ["step:t"])])
    [diag] = [d for d in p.diagnostics if d.code == "cycle"]
    assert "s" in diag.message and "t" in diag.message
    assert diag.cell == 0


# -- rendering -----------------------------------------------------------------------------


def test_text_rendering_has_edges_with_the_names_they_carry():
    text = render(diamond(), "text")
    lines = text.splitlines()
    assert lines[0] == "split"
    assert "split -> train_lr  [X, y]" in lines
    assert "split -> train_rf  [X, y]" in lines
    assert "train_lr -> pick  [lr]" in lines
    assert "train_rf -> pick  [rf]" in lines
    assert "pick -> log  [after]" in lines
    assert text.endswith("\n")


def test_mermaid_rendering():
    text = render(diamond(), "mermaid")
    lines = [line.strip() for line in text.splitlines()]
    assert lines[0] == "graph TD"
    ids = dict(re.findall(r'^(s\d+)\["([^"]+)"\]$', "\n".join(lines), re.MULTILINE))
    assert sorted(ids.values()) == ["log", "pick", "split", "train_lr", "train_rf"]
    by_name = {v: k for k, v in ids.items()}
    assert f'{by_name["split"]} -- "X, y" --> {by_name["train_lr"]}' in lines
    assert f'{by_name["train_rf"]} -- "rf" --> {by_name["pick"]}' in lines
    assert f'{by_name["pick"]} -.-> {by_name["log"]}' in lines
    assert sum("-->" in line or "-.->" in line for line in lines) == 5


def _dot_edges(text):
    return re.findall(r'^\s*"([^"]+)" -> "([^"]+)"(?: \[(.*)\])?;$', text, re.MULTILINE)


def test_dot_rendering_is_a_digraph_with_every_edge():
    p = diamond()
    text = render(p, "dot")
    assert text.startswith('digraph "demo" {')
    assert text.rstrip().endswith("}")
    assert text.count("{") == text.count("}")
    edges = _dot_edges(text)
    assert sum("->" in line for line in text.splitlines()) == len(edges) == 5
    assert ("split", "train_lr", 'label="X, y"') in edges
    assert ("pick", "log", "style=dashed") in edges
    nodes = re.findall(r'^\s*"([^"]+)";$', text, re.MULTILINE)
    assert nodes == [s.name for s in p.steps]


def test_dot_keeps_non_ascii_and_escapes_quotes_newlines_and_control_characters():
    # DOT reads UTF-8 and decodes no \uXXXX: Graphviz would show 'caf\u00e9'
    cells = (Cell(0, "code", "café = 1", ("step:a",)), Cell(1, "code", "print(café)", ("step:b",)))
    name = 'Über "blick"\n🙂\x1b[31m\u202e\\'
    dot = render(compile_notebook(Notebook("x.ipynb", cells, {"nbscale": {"name": name}})), "dot")
    lines = dot.splitlines()
    assert lines[0] == 'digraph "Über \\"blick\\"\\n🙂\\\\x1b[31m\\\\u202e\\\\" {'
    assert '    "a" -> "b" [label="café"];' in lines
    assert len(lines) == 7 and "\x1b" not in dot and "\u202e" not in dot  # nothing a terminal would obey


def test_renderings_of_the_iris_example(examples_dir):
    p = compile_notebook(examples_dir / "iris.ipynb")
    edges = sum(len(s.after) for s in p.steps)
    assert edges > 0
    dot = render(p, "dot")
    assert len(_dot_edges(dot)) == edges == sum("->" in line for line in dot.splitlines())
    assert sum(" -> " in line for line in render(p, "text").splitlines()) == edges
    mermaid = render(p, "mermaid")
    assert sum("-->" in line or "-.->" in line for line in mermaid.splitlines()) == edges


def test_default_format_is_text():
    p = diamond()
    assert render(p) == render(p, "text")


def test_one_step_without_edges():
    p = compile_source(["a = 1"], name="solo")
    assert render(p, "text") == "solo\n"
    assert '"solo";' in render(p, "dot") and "->" not in render(p, "dot")
    assert render(p, "mermaid") == 'graph TD\n    s0["solo"]\n'


def test_unknown_format_is_a_value_error():
    with pytest.raises(ValueError, match="svg"):
        render(diamond(), "svg")
