"""The metrics cell: names, expressions, assignments and dicts of numbers → metric names.

A metric is named by what the user wrote: the assigned name, a dict's keys, or an expression's
text. A dict whose keys are known only when it runs (a dict comprehension, `**scores`) goes to
`Metrics.spread`: its keys at run time are the names (`acc_gb`), never its source text.
"""

from __future__ import annotations

import ast

from .diagnostics import Diagnostic
from .ir import Metrics
from .parsing import ParsedCell, parse_cell


def parse_metrics(index: int, source: str, step: str, parsed: ParsedCell | None = None
                  ) -> tuple[Metrics, list[Diagnostic]]:
    """`parsed`: the cell parsed already (by the compile that reads it for the analysis too)."""
    metrics, problems = Metrics(step=step), []
    parsed = parsed or parse_cell(index, source)
    if parsed.error is not None:
        return metrics, problems  # reported once, by the dataflow analysis of the step
    for stmt in parsed.statements():
        for name, expr in _metric_entries(stmt, index, problems):
            if name is None:  # a dict whose keys are known only when it runs
                if expr not in metrics.spread:
                    metrics.spread.append(expr)
                continue
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
    if isinstance(value, ast.DictComp):  # {f"acc_{k}": v for k, v in scores.items()}
        return [(None, ast.unparse(value))]
    if isinstance(value, ast.Dict):
        entries = []
        for key, item in zip(value.keys, value.values):
            if key is None:  # {**scores, "loss": loss}
                entries.append((None, ast.unparse(item)))
                continue
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
