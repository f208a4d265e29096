"""Pipeline parameter values from the command line or a file, typed by the parameters cell.

One rule for text, wherever it comes from (`nbscale run -p NAME=VALUE`, papermill's `-p`/`-r`):
the parameter's type, taken from its literal in the parameters cell, decides how the text is
read — int, float, bool (true/false/yes/no/on/off/1/0, any case), str (kept verbatim), list and
dict (JSON, or a Python literal such as `['a', 'b']`). A parameter whose literal is `None` has no
type: its text is read as JSON or a Python literal when it is one, else kept as text.
Values that are already typed (YAML files, the Python API) are checked against the type; a
string from a YAML file is text to read for a typed parameter, and a string for one of no type.
"""

from __future__ import annotations

import ast
import json
import math
import sys

from ..compiler.credentials import NAME_KEYS, named_by, named_by_before
from .errors import ParameterError

TRUE, FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off"}


def parse_assignments(pairs) -> dict[str, str]:
    """["alpha=0.1", ...] → {"alpha": "0.1"} (values still text)."""
    values = {}
    for pair in pairs:
        name, eq, value = pair.partition("=")
        if not eq or not name.strip():
            raise ParameterError(f"'{pair}' is not NAME=VALUE")
        if name.strip() in values:  # (`-p x=1 -p x=2`: which one was meant?)
            raise ParameterError(f"parameter '{name.strip()}' is given twice")
        values[name.strip()] = value
    return values


class FileString(str):
    """A string a parameters file gives (YAML `name: "5"`): a value, not text to read, for a
    parameter of no type, as papermill's `-f` hands it to the notebook."""


def load_file(path) -> dict:
    """{name: value} of a YAML parameters file; anything else (not YAML, not UTF-8, not a mapping of
    names, a key given twice) raises ParameterError naming the file (and the line)."""
    import yaml

    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.load(fh, Loader=_loader()) or {}
    except UnicodeDecodeError as exc:
        byte = exc.object[exc.start]
        raise ParameterError(f"{path}: not UTF-8 text (byte {byte:#04x} at offset {exc.start})") from None
    except OSError as exc:
        raise ParameterError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        raise ParameterError(f"{path}{_yaml_problem(exc)}") from None
    if not isinstance(data, dict):
        raise ParameterError(f"{path}: a parameters file holds a mapping of NAME: VALUE")
    for name in data:
        if not isinstance(name, str):
            raise ParameterError(f"{path}: a parameter's name is text, not {name!r}")
    return {name: FileString(value) if isinstance(value, str) else value for name, value in data.items()}


def _yaml_problem(exc) -> str:
    """`, line 2, column 1: expected ',' or ']'`: what YAML found wrong, and where."""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    mark = getattr(exc, "problem_mark", None)
    return f", line {mark.line + 1}, column {mark.column + 1}: {problem}" if mark is not None else f": {problem}"


def _loader():
    """YAML's safe loader, refusing a mapping that gives a key twice (YAML keeps the last without a
    word; `-p x=1 -p x=2` is refused too: which one was meant?)."""
    import yaml

    class ParametersLoader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            seen = set()
            for key_node, _ in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                    if (key_node.tag, key_node.value) in seen:
                        raise yaml.constructor.ConstructorError(
                            None, None, f"'{key_node.value}' is given twice", key_node.start_mark)
                    seen.add((key_node.tag, key_node.value))
            return super().construct_mapping(node, deep=deep)

    return ParametersLoader


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
        values[name] = checked(name, coerce(declared[name], value))
    return values


def checked(name: str, value):
    """`value`, when the run store, the logs and KFP can hold it as given: finite numbers, text
    that is Unicode (no lone surrogate, which no UTF-8 file can hold); else ParameterError."""
    for part in _parts(value):
        if not isinstance(part, _JSON_TYPES):  # (a YAML file's `2020-01-01` is a date, `!!binary` bytes)
            raise ParameterError(f"parameter '{name}' holds {type(part).__name__} {shown(part)}, which is no JSON "
                                 "value (the run store and KFP cannot hold it): give it as text (in a YAML file, "
                                 "quoted: '2020-01-01')")
        if type(part) is int and _too_long(part):
            raise ParameterError(f"parameter '{name}' holds an int of more than {sys.get_int_max_str_digits():,} "
                                 "digits (JSON, the run store and KFP cannot hold it as text)")
        if isinstance(part, float) and not math.isfinite(part):
            raise ParameterError(f"parameter '{name}' must be a finite number, got {part!r} "
                                 "(JSON, the run store and KFP cannot hold it)")
        if isinstance(part, str):
            try:
                part.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise ParameterError(f"parameter '{name}' holds text that is not valid Unicode "
                                     f"({exc.object[exc.start:exc.end]!r} at position {exc.start})") from None
    return value


_JSON_TYPES = (str, int, float, bool, type(None), list, tuple, dict)


def _too_long(number: int) -> bool:
    try:
        str(number)
    except ValueError:  # Python writes no int of more than 4,300 digits as text
        return True
    return False


def shown(value, limit: int = 80) -> str:
    """`value` as an error message quotes it: its repr, shortened (a value may be megabytes)."""
    try:
        text = repr(value)
    except ValueError:  # an int too long to write, in it
        text = f"an int of {value.bit_length():,} bits" if type(value) is int else f"a {_type_name(value)} of such ints"
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _parts(value):
    """`value` and everything in it, dict keys too (no recursion: any depth)."""
    stack = [value]
    while stack:
        part = stack.pop()
        yield part
        if isinstance(part, dict):
            stack.extend(part.keys())
            stack.extend(part.values())
        elif isinstance(part, (list, tuple)):
            stack.extend(part)


def coerce(param, value):
    kind = param.type
    if isinstance(value, FileString):
        value = str(value)  # (the step gets a plain str)
        if kind == "none":
            return value
    if isinstance(value, str) and kind != "str":
        return _from_text(param, value)
    if kind == "float" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind != "none" and _type_name(value) != kind:
        raise ParameterError(f"parameter '{param.name}' is {kind}, got {_type_name(value)} {shown(value)}")
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
        value = _literal(text)
    except ValueError:
        if kind == "none":
            return text  # untyped: what is not a literal stays text, as papermill reads it
        raise ParameterError(f"parameter '{name}' is {kind}: cannot read {shown(text)} as {kind}") from None
    if kind != "none" and _type_name(value) != kind:
        raise ParameterError(f"parameter '{name}' is {kind}, got {_type_name(value)} {shown(text)}")
    return value


def _literal(text):
    """JSON, else a Python literal holding only JSON types; ValueError when it is neither."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise ValueError(text) from None
    if not _is_json(value):
        raise ValueError(text)
    return value


def _is_json(value) -> bool:
    if isinstance(value, list):
        return all(_is_json(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_json(v) for k, v in value.items())
    if isinstance(value, float):
        return value == value and value not in (float("inf"), float("-inf"))
    return value is None or isinstance(value, (bool, int, str))


# --- papermill -----------------------------------------------------------------------------
# papermill has already read `-p` values by guessing (True/False/None, int, float, else text),
# `-f`/`-y`/`-b` as YAML and `-r` as text. A guessed scalar that does not fit the parameter's
# type is turned back into its text and read by the rule above, so `-p name 007` keeps "007"
# only with -r, but `-p name 12` gives "12" for a str parameter and `-p flag 1` gives True.

def _papermill_text(value) -> str | None:
    """The text papermill's `-p` guess came from (None when the value is not such a scalar)."""
    if isinstance(value, bool) or value is None:
        return str(value)  # "True", "False", "None"
    if isinstance(value, (int, float)):
        return repr(value)
    return None


def from_papermill(param, value):
    """A value papermill parsed, typed by the parameter's literal (ParameterError if it cannot)."""
    kind = param.type
    fits = kind == "none" or _type_name(value) == kind or (
        kind == "float" and isinstance(value, int) and not isinstance(value, bool))
    if not fits and not isinstance(value, str):
        text = _papermill_text(value)
        if text is not None:
            return text if kind == "str" else _from_text(param, text)
    return coerce(param, value)


def resolve_papermill(pipeline, given: dict) -> tuple[dict, dict]:
    """(values of every declared parameter, the given values the notebook does not declare)."""
    declared = {p.name: p for p in pipeline.parameters}
    values = {name: p.default for name, p in declared.items()}
    unknown = {}
    for name, value in given.items():
        if name in declared:
            values[name] = checked(name, from_papermill(declared[name], value))
        else:
            unknown[name] = value
    return values, unknown


def recorded(values: dict) -> dict:
    """Parameter values as run records keep them (run store, lineage): a value that may be a
    credential (`api_token`, a DSN with a password, `{"password": ...}` or `{"Authorization": ...}`
    at any depth of a dict or list) as a keyed digest, which still shows whether two runs had the
    same value; the run itself (and its cache key) gets the value."""
    return {name: _recorded(name, value, set()) for name, value in values.items()}


def hidden_texts(values: dict) -> dict[str, set[str]]:
    """Per parameter, the texts `recorded` hides (strings, and numbers as text, of what it replaced
    by a digest; not the dict keys around them): what a log must not show either."""
    found = {}
    for name, value in values.items():
        _recorded(name, value, texts := set())
        if texts:
            found[name] = texts
    return found


def _recorded(name, value, hidden: set):
    """`value` with what may be a credential hidden: all of it under a secret-looking `name`, else
    each string, dict key and value inside that looks like one (no part of a secret is kept); the
    texts it hides are added to `hidden`. A stack, not recursion, as in `_parts`: any depth the run
    store can hold."""
    root = [None]
    stack = [(name, value, root, 0)]  # (name, value, the copy it goes into, its place there)
    while stack:
        name, value, into, place = stack.pop()
        if _secret_name(name) or not isinstance(value, (dict, list, tuple)):
            into[place] = _recorded_leaf(name, value, hidden)
        elif isinstance(value, dict):
            keys = [_recorded_key(key, hidden) for key in value]
            into[place] = copy = dict.fromkeys(keys)  # (keeps the order)
            named = named_by(value)
            stack.extend((key if named is None or key in NAME_KEYS else named, item, copy, kept)
                         for (key, item), kept in zip(value.items(), keys))
        else:
            into[place] = copy = [None] * len(value)
            stack.extend((named_by_before(value, i), item, copy, i) for i, item in enumerate(value))
    return root[0]


def _recorded_leaf(name, value, texts: set):
    from .fingerprints import hidden, may_be_credential
    from .masking import holds_credential

    if value is None:
        return None
    text = _text(value)
    secret = may_be_credential(str(name), text) or (isinstance(value, str) and holds_credential(value))
    if not secret:
        return value
    texts |= _values_as_text(value)
    return hidden(text)


def _secret_name(name) -> bool:
    from .fingerprints import may_be_credential

    return may_be_credential(str(name), "")


def _recorded_key(key, texts: set):
    """A dict key that is itself a token or a URL with a password (`{"https://u:pw@host": 1}`)."""
    from .fingerprints import hidden, may_be_credential

    if isinstance(key, str) and may_be_credential("", key):
        texts.add(key)
        return hidden(key)
    return key


def _values_as_text(value) -> set[str]:
    """The strings and numbers (as text) in a value, at any depth; of its dict keys, those that are
    credentials themselves (not `password` in `{"password": …}`)."""
    from .fingerprints import may_be_credential

    found, stack = set(), [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            found.update(key for key in item if isinstance(key, str) and may_be_credential("", key))
            stack += item.values()
        elif isinstance(item, (list, tuple)):
            stack += item
        elif isinstance(item, str) and item:
            found.add(item)
        elif type(item) in (int, float):
            found.add(str(item))
    return found


def _text(value) -> str:
    # the text the digest is taken of: as before for a whole value, so records made earlier still match
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _type_name(value):
    return {bool: "bool", int: "int", float: "float", str: "str", list: "list", dict: "dict",
            type(None): "none"}.get(type(value), type(value).__name__)
