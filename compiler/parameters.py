"""The parameters cell: literal assignments → typed pipeline parameters."""

from __future__ import annotations

import ast
import sys

from .diagnostics import Diagnostic
from .errors import NbscaleCompileError
from .ir import Parameter
from .notebook import cell_label
from .pyparse import parse_text
from .syntax import to_python

TYPES = {bool: "bool", int: "int", float: "float", str: "str", list: "list", dict: "dict",
         type(None): "none"}
ANNOTATIONS = {"int", "float", "str", "bool", "list", "dict"}
# values of these types are never changed in place; a parameter declared None may be given a list
IMMUTABLE_TYPES = {"int", "float", "str", "bool"}


def immutable_names(parameters) -> set[str]:
    """Names of the parameters whose values no code can change in place."""
    return {p.name for p in parameters if p.type in IMMUTABLE_TYPES}


def parse_parameters(cells, injected_cells=()) -> tuple[list[Parameter], list[Diagnostic]]:
    """`cells`: (index, source) pairs of the parameters cells, in notebook order;
    `injected_cells`: which of them papermill injected."""
    found: dict[str, Parameter] = {}
    problems: list[Diagnostic] = []
    for index, source in cells:
        injected = index in injected_cells
        try:
            tree = parse_text(to_python(source))
        except SyntaxError as exc:
            problems.append(Diagnostic("syntax-error", f"syntax error: {exc.msg}", cell=index,
                                       line=exc.lineno, col=exc.offset))
            continue
        for stmt in tree.body:
            try:
                param = _parameter(stmt, index)
            except _NotLiteral as exc:
                problems.append(Diagnostic("bad-parameter", str(exc), cell=index, line=stmt.lineno,
                                           col=stmt.col_offset + 1, hint=exc.hint))
                continue
            if param is None:
                continue
            if param.name in found and injected:
                try:  # papermill's injected value overrides, keeping the declared type
                    param = _as_declared(found[param.name], param)
                except _NotLiteral as exc:
                    problems.append(Diagnostic("bad-parameter", str(exc), cell=index, line=param.line,
                                               hint=exc.hint))
                    continue
            elif param.name in found:
                problems.append(Diagnostic(
                    "duplicate-parameter", f"parameter '{param.name}' is assigned twice; the last value wins",
                    cell=index, line=param.line))
            found[param.name] = param
    return list(found.values()), problems


def _as_declared(declared: Parameter, injected: Parameter) -> Parameter:
    """The injected value in the declared type: papermill guesses types (`-p name 007` → 7)."""
    value, want = injected.default, declared.type
    if injected.type == want or want == "none" or (want == "float" and injected.type == "int"):
        converted = float(value) if want == "float" else value
    elif want == "str" and injected.type in ("int", "float", "bool"):
        converted = str(value)
    elif want == "int" and injected.type == "float" and float(value).is_integer():
        converted = int(value)
    else:
        raise _NotLiteral(f"parameter '{declared.name}' is {want} ({cell_label(declared.cell)}) but the injected "
                          f"value is {injected.type} {value!r}", "pass a value of the declared type")
    return Parameter(name=declared.name, type=declared.type if want != "none" else injected.type,
                     default=converted, cell=injected.cell, line=injected.line)


class _NotLiteral(NbscaleCompileError):
    def __init__(self, message, hint="a parameters cell holds only NAME = literal lines "
                                     "(numbers, strings, True/False/None, lists, dicts)"):
        super().__init__(message)
        self.hint = hint


def _parameter(stmt, index) -> Parameter | None:
    if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str):
        return None  # a docstring-like comment
    if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
        name, value, annotation = stmt.targets[0].id, stmt.value, None
    elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value is not None:
        name, value, annotation = stmt.target.id, stmt.value, stmt.annotation
    else:
        raise _NotLiteral(f"'{ast.unparse(stmt).splitlines()[0]}' is not a parameter assignment")
    try:
        literal = ast.literal_eval(value)
    except (ValueError, SyntaxError, TypeError):
        raise _NotLiteral(f"parameter '{name}' is not a literal: {ast.unparse(value)}") from None
    json_value = _as_json(literal, name)
    type_name = _declared_type(annotation, json_value, name) or TYPES[type(json_value)]
    if type_name == "float" and isinstance(json_value, int):
        json_value = float(json_value)
    return Parameter(name=name, type=type_name, default=json_value, cell=index, line=stmt.lineno)


def _as_json(value, name):
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            str(value)  # (Python refuses to write an int of more than 4,300 digits as text, as JSON must)
        except ValueError:
            raise _NotLiteral(f"parameter '{name}': an int of more than {sys.get_int_max_str_digits():,} "
                              "digits is not a JSON value") from None
        return value
    if isinstance(value, str):
        return _unicode(value, name)
    if isinstance(value, (bool, type(None))):
        return value
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise _NotLiteral(f"parameter '{name}': NaN and infinity are not JSON values")
        return value
    if isinstance(value, list):
        return [_as_json(v, name) for v in value]
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise _NotLiteral(f"parameter '{name}': dict keys must be strings")
        return {_unicode(k, name): _as_json(v, name) for k, v in value.items()}
    kind = type(value).__name__
    raise _NotLiteral(f"parameter '{name}': a {kind} is not a JSON value",
                      "use a list instead of a tuple or set" if kind in ("tuple", "set") else None)


def _unicode(text, name):
    """`text`, when UTF-8 can hold it: a lone surrogate ("\\ud800") is a Python literal, but no
    YAML, JSON file or run store can write it, so it is refused here, at its cell, as the run
    time refuses it in a `-p` value (kernels/params.checked)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise _NotLiteral(f"parameter '{name}' holds text that is not valid Unicode "
                          f"({exc.object[exc.start:exc.end]!r} at position {exc.start})",
                          "a lone surrogate such as \\ud800 has no UTF-8 form; "
                          "write the character it is half of, or drop it") from None
    return text


def _declared_type(annotation, value, name):
    if annotation is None:
        return None
    declared = ast.unparse(annotation)
    if declared not in ANNOTATIONS:
        raise _NotLiteral(f"parameter '{name}': type '{declared}' is not one of {sorted(ANNOTATIONS)}")
    actual = TYPES[type(value)]
    if declared != actual and not (declared == "float" and actual == "int"):
        raise _NotLiteral(f"parameter '{name}' is declared {declared} but its value is {actual}")
    return declared
