"""How pipeline parameter values travel through KFP, for the generated module and for run time.

`int`, `float`, `str` and `bool` are KFP's own parameter types and carry a value unchanged.
`list`, `dict` and `None` travel as JSON text in a `str` input, because KFP's protobuf structs
turn the ints inside them into floats and reorder dict keys; so do strings holding "{{", which
kfp.local would take for one of its placeholders. The run time (`kfp_component`) decodes them.
"""

from __future__ import annotations

import json

NATIVE_TYPES = ("int", "float", "str", "bool")  # KFP parameter types that carry a value unchanged


def is_native(type_name: str) -> bool:
    return type_name in NATIVE_TYPES


def wire_type(type_name: str, default=None) -> str:
    """How a parameter travels: its own KFP type (int, float, str, bool), or "json" — JSON text
    in a str input — for lists, dicts and None, whose values KFP's protobuf structs would change,
    and for strings holding "{{", which kfp.local would take for one of its placeholders."""
    if not is_native(type_name) or (isinstance(default, str) and "{{" in default):
        return "json"
    return type_name


def kfp_argument(type_name: str, value):
    """A parameter value as the KFP pipeline takes it (`type_name` from `wire_type`)."""
    return value if is_native(type_name) else _json_text(value)


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
