"""How pipeline parameter values travel through KFP, for the generated module and for run time.

`int`, `float`, `str` and `bool` are KFP's own parameter types and carry a value unchanged.
`list`, `dict` and `None` travel as JSON text in a `str` input, because KFP's protobuf structs
turn the ints inside them into floats and reorder dict keys; so do strings holding "{{", which
kfp.local would take for one of its placeholders, and an int parameter whose default a float
cannot hold (KFP keeps an int's value as a double). The run time (`kfp_component`) decodes them.
"""

from __future__ import annotations

import json

from ...errors import TargetError

NATIVE_TYPES = ("int", "float", "str", "bool")  # KFP parameter types that carry a value unchanged
EXACT_INT = 2**53  # KFP carries an int as a double: a larger one would arrive changed


def is_native(type_name: str) -> bool:
    return type_name in NATIVE_TYPES


def wire_type(type_name: str, default=None) -> str:
    """How a parameter travels: its own KFP type (int, float, str, bool), or "json" — JSON text
    in a str input — for lists, dicts and None, whose values KFP's protobuf structs would change,
    and for strings holding "{{", which kfp.local would take for one of its placeholders, and for
    an int whose default a double cannot hold."""
    if not is_native(type_name) or (isinstance(default, str) and "{{" in default) or _inexact(default):
        return "json"
    return type_name


def kfp_argument(type_name: str, value):
    """A parameter value as the KFP pipeline takes it (`type_name` from `wire_type`)."""
    if type_name == "int" and _inexact(value):
        raise TargetError(f"{value} is beyond what a Kubeflow Pipelines int carries unchanged (±2**53: KFP keeps "
                          "it as a double); pass it as a str, or give the parameter a default beyond ±2**53, "
                          "which makes it travel as text")
    return value if is_native(type_name) else _json_text(value)


def _inexact(value) -> bool:
    return type(value) is int and abs(value) > EXACT_INT


def _json_text(value) -> str:
    """JSON with every "{" inside strings written as \\u007b: valid JSON, same value, and no
    "{{" anywhere (structural braces never follow each other)."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False).replace("{", "\\u007b")
    if isinstance(value, list):
        return "[" + ", ".join(_json_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_json_text(str(k))}: {_json_text(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)
