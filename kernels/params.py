"""Pipeline parameter values from the command line or a file, typed by the parameters cell."""

from __future__ import annotations

import json

from .errors import ParameterError

TRUE, FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off"}


def parse_assignments(pairs) -> dict[str, str]:
    """["alpha=0.1", ...] → {"alpha": "0.1"} (values still text)."""
    values = {}
    for pair in pairs:
        name, eq, value = pair.partition("=")
        if not eq or not name.strip():
            raise ParameterError(f"'{pair}' is not NAME=VALUE")
        values[name.strip()] = value
    return values


def load_file(path) -> dict:
    import yaml

    with open(path, encoding="utf-8") as fh:
        data = yaml.safe_load(fh) or {}
    if not isinstance(data, dict):
        raise ParameterError(f"{path}: a parameters file holds a mapping of NAME: VALUE")
    return data


def resolve(pipeline, given: dict) -> dict:
    """Values for every parameter: defaults overridden by `given` (text is typed by the default's
    type; typed values are checked). Unknown names and bad values raise ParameterError."""
    declared = {p.name: p for p in pipeline.parameters}
    unknown = sorted(set(given) - set(declared))
    if unknown:
        known = ", ".join(declared) or "none (the notebook has no parameters cell)"
        raise ParameterError(f"unknown parameter(s) {', '.join(unknown)}; parameters: {known}")
    values = {name: p.default for name, p in declared.items()}
    for name, value in given.items():
        values[name] = coerce(declared[name], value)
    return values


def coerce(param, value):
    kind = param.type
    if isinstance(value, str) and kind != "str":
        return _from_text(param, value)
    if kind == "float" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind != "none" and _type_name(value) != kind:
        raise ParameterError(f"parameter '{param.name}' is {kind}, got {_type_name(value)} {value!r}")
    return value


def _from_text(param, text):
    kind, name = param.type, param.name
    try:
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
        if kind == "bool":
            lowered = text.strip().lower()
            if lowered in TRUE | FALSE:
                return lowered in TRUE
            raise ValueError(text)
        value = json.loads(text)
    except ValueError:
        raise ParameterError(f"parameter '{name}' is {kind}: cannot read {text!r} as {kind}") from None
    if kind != "none" and _type_name(value) != kind:
        raise ParameterError(f"parameter '{name}' is {kind}, got {_type_name(value)} {text!r}")
    return value


def _type_name(value):
    return {bool: "bool", int: "int", float: "float", str: "str", list: "list", dict: "dict",
            type(None): "none"}.get(type(value), type(value).__name__)
