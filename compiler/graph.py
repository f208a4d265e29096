"""The step DAG: order, cycles, ancestry and text renderings (text, Mermaid, Graphviz dot)."""

from __future__ import annotations

import heapq
import json
import unicodedata


def topological_order(names: list[str], upstream: dict[str, list[str]]) -> list[str] | None:
    """Steps in an order where each comes after its upstream steps; ties keep notebook order.

    None when there is a cycle.
    """
    position = {n: i for i, n in enumerate(names)}
    waiting = {n: {u for u in upstream.get(n, ()) if u in position} for n in names}
    downstream: dict[str, list[str]] = {}
    for name, ups in waiting.items():
        for up in ups:
            downstream.setdefault(up, []).append(name)
    # the ready step first in notebook order goes next (a heap of positions, not a sorted list)
    order, ready = [], [position[n] for n, ups in waiting.items() if not ups]
    heapq.heapify(ready)
    while ready:
        name = names[heapq.heappop(ready)]
        order.append(name)
        for other in downstream.get(name, ()):
            ups = waiting[other]
            ups.discard(name)
            if not ups:
                heapq.heappush(ready, position[other])
    return order if len(order) == len(names) else None


def find_cycle(names: list[str], upstream: dict[str, list[str]]) -> list[str] | None:
    """One cycle as a list of steps [a, b, …, a], or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for root in names:
        if state.get(root):
            continue
        # iterative depth-first search: a long chain of steps must not hit the recursion limit
        state[root] = 1
        stack, pending = [root], [iter(upstream.get(root, ()))]
        while stack:
            for up in pending[-1]:
                if state.get(up) == 1:
                    return list(reversed(stack[stack.index(up):] + [up]))
                if up in upstream and not state.get(up):
                    state[up] = 1
                    stack.append(up)
                    pending.append(iter(upstream.get(up, ())))
                    break
            else:
                state[stack.pop()] = 2
                pending.pop()
    return None


def ancestors(name: str, upstream: dict[str, list[str]]) -> set[str]:
    seen, todo = set(), list(upstream.get(name, ()))
    while todo:
        up = todo.pop()
        if up not in seen:
            seen.add(up)
            todo.extend(upstream.get(up, ()))
    return seen


def render(pipeline, fmt: str = "text") -> str:
    renderers = {"text": _text, "mermaid": _mermaid, "dot": _dot}
    if fmt not in renderers:
        raise ValueError(f"unknown graph format {fmt!r}; choose one of {', '.join(renderers)}")
    return renderers[fmt](pipeline)


def _edge_label(step, up):
    names = [n for n in step.inputs if step.sources.get(n) == up]
    return ", ".join(names)


def _text(pipeline):
    lines = []
    for step in pipeline.steps:
        if not step.after:
            lines.append(f"{step.name}")
        for up in step.after:
            label = _edge_label(step, up)
            lines.append(f"{up} -> {step.name}" + (f"  [{label}]" if label else "  [after]"))
    return "\n".join(lines) + "\n"


def _mermaid(pipeline):
    ids = {s.name: f"s{i}" for i, s in enumerate(pipeline.steps)}
    lines = ["graph TD"]
    lines += [f'    {ids[s.name]}["{s.name}"]' for s in pipeline.steps]
    for step in pipeline.steps:
        for up in step.after:
            label = _edge_label(step, up).replace('"', "'")
            arrow = f'-- "{label}" -->' if label else "-.->"
            lines.append(f"    {ids[up]} {arrow} {ids[step.name]}")
    return "\n".join(lines) + "\n"


def _dot(pipeline):
    lines = [f"digraph {_dot_string(pipeline.name)} {{", "    rankdir=TB;", "    node [shape=box];"]
    lines += [f"    {_dot_string(s.name)};" for s in pipeline.steps]
    for step in pipeline.steps:
        for up in step.after:
            label = _edge_label(step, up)
            attrs = f" [label={_dot_string(label)}]" if label else " [style=dashed]"
            lines.append(f"    {_dot_string(up)} -> {_dot_string(step.name)}{attrs};")
    lines.append("}")
    return "\n".join(lines) + "\n"


DOT_BIDI = frozenset(("LRE", "RLE", "LRO", "RLO", "PDF", "LRI", "RLI", "FSI", "PDI"))  # reorder what is shown


def _dot_string(text: str) -> str:
    """`text` as a DOT quoted string. Non-ASCII stays as it is: DOT reads UTF-8 and would show JSON's
    \\uXXXX as written. A quote or backslash is escaped, a newline is DOT's line break (\\n), other
    control and bidi characters are written as visible escapes (\\x1b): Graphviz shows them, and a
    terminal the DOT is printed on does not obey them."""
    visible = "".join(c.encode("unicode_escape").decode("ascii")
                      if c != "\n" and (unicodedata.category(c) == "Cc" or unicodedata.bidirectional(c) in DOT_BIDI)
                      else c for c in text)
    return json.dumps(visible, ensure_ascii=False)  # escapes only " \\ and newlines now: as DOT reads them
