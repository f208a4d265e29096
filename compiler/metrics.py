"""The metrics cell: names, expressions, assignments and dicts of numbers → metric names."""

from __future__ import annotations

import ast

from .diagnostics import Diagnostic
from .ir import Metrics
from .syntax import to_python


def parse_metrics(index: int, source: str, step: str) -> tuple[Metrics, list[Diagnostic]]:
    metrics, problems = Metrics(step=step), []
    try:
        tree = ast.parse(to_python(source))
    except SyntaxError:
        return metrics, problems  # reported once, by the dataflow analysis of the step
    for stmt in tree.body:
        for name, expr in _metric_entries(stmt, index, problems):
            if name not in metrics.exprs:
                metrics.names.append(name)
            metrics.exprs[name] = expr
    return metrics, problems


def _metric_entries(stmt, index, problems):
    if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
        return [(stmt.targets[0].id, stmt.targets[0].id)]
    if isinstance(stmt, ast.AnnAssign) and stmt.value is not None and isinstance(stmt.target, ast.Name):
        return [(stmt.target.id, stmt.target.id)]  # acc: float = ...
    if not isinstance(stmt, ast.Expr):
        return []  # other statements are ordinary code of the metrics step
    value = stmt.value
    if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "print":
        return [_entry(arg) for arg in value.args]  # Kale's style: print(acc)
    if isinstance(value, ast.Dict):
        entries = []
        for key, item in zip(value.keys, value.values):
            if not (isinstance(key, ast.Constant) and isinstance(key.value, str)):
                problems.append(Diagnostic(
                    "bad-metric", "a metrics dict needs string keys", cell=index,
                    line=stmt.lineno, col=stmt.col_offset + 1, hint='write {"accuracy": acc}'))
                continue
            entries.append((key.value, ast.unparse(item)))
        return entries
    return [_entry(value)]


def _entry(expr):
    text = ast.unparse(expr)
    return text, text
