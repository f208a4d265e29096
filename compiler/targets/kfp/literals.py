"""Python literals for the generated DSL module, laid out for reading and safe inside KFP.

Values (a step's code, parameter defaults, names) enter generated code only through these
functions: `literal` writes any JSON-like value as Python source, one line when it fits, else
one item per line; `docstring` writes text as a docstring. Whatever the text holds, the result
is one literal and nothing else: strings are written by `str.__repr__` (never by a subclass's
`__repr__`), and triple quotes are used only for text that holds no quote, backslash or
unprintable character. `string_literal` never leaves "{{" in the text, because KFP resolves
"{{$...}}" placeholders anywhere in a component's command — and a component's source code is
part of its command.
"""

from __future__ import annotations

import math

WIDTH = 99  # generated lines stay within this many characters where the content allows


class Code(str):
    """Text that `literal` writes as it is: a reference to a variable, not a value."""


def string_literal(text: str) -> str:
    """A string literal, in double quotes unless the text holds some (then as Python's repr).

    "{{" is written "{\\x7b", so no placeholder KFP would resolve appears in the source."""
    if not isinstance(text, str):
        raise TypeError(f"a string literal needs a str, got {type(text).__name__}")
    r = str.__repr__(text)
    if r[0] == "'" and '"' not in text:
        r = '"' + r[1:-1] + '"'
    return r.replace("{{", "{\\x7b")


def docstring(text: str, indent: int = 0) -> str:
    """A docstring: triple-quoted when every character is printable (or a newline) and none is
    a quote or a backslash, else `literal` (one quoted piece per line). `indent`: its column."""
    plain = isinstance(text, str) and "{{" not in text and not any(c in text for c in '"\\') \
        and all(c.isprintable() or c == "\n" for c in text)
    return f'"""{text}"""' if plain else literal(text, indent)


def literal(value, indent: int, used: int = 0) -> str:
    """`value` as Python source. `indent`: the column of the line it starts on; `used`: how many
    characters stand before it on that line. One line when it fits; else one item per line."""
    if isinstance(value, Code):  # (a reference, however long: quoted, it would be a text in its place)
        return str(value)
    flat = _flat(value)
    if flat is not None and indent + used + len(flat) + 1 <= WIDTH:
        return flat
    inner = " " * (indent + 4)
    if isinstance(value, str):  # a multi-line or long string: one piece per line
        pieces = value.splitlines(keepends=True) or [value]
        if len(pieces) == 1:
            return string_literal(value)
        return "(\n" + "".join(f"{inner}{string_literal(p)}\n" for p in pieces) + " " * indent + ")"
    if isinstance(value, dict):
        items = [f"{inner}{string_literal(k)}: {literal(v, indent + 4, len(string_literal(k)) + 2)},"
                 for k, v in value.items()]
        return "{\n" + "\n".join(items) + "\n" + " " * indent + "}"
    if isinstance(value, (list, tuple)):
        items = [f"{inner}{literal(v, indent + 4)}," for v in value]
        return "[\n" + "\n".join(items) + "\n" + " " * indent + "]"
    return _scalar(value)


def _flat(value) -> str | None:
    """One-line source of `value`, or None when it must span lines (a string with newlines)."""
    if isinstance(value, Code):
        return str(value)
    if isinstance(value, str):
        return None if "\n" in value[:-1] else string_literal(value)
    if isinstance(value, dict):
        items = [(_flat(k), _flat(v)) for k, v in value.items()]
        if any(k is None or v is None for k, v in items):
            return None
        return "{" + ", ".join(f"{k}: {v}" for k, v in items) + "}"
    if isinstance(value, (list, tuple)):
        items = [_flat(v) for v in value]
        return None if any(i is None for i in items) else "[" + ", ".join(items) + "]"
    return _scalar(value)


def _scalar(value) -> str:
    if type(value) is float and not math.isfinite(value):
        return f"float({str(value)!r})"
    if value is None or type(value) in (bool, int, float):  # not a subclass: its repr could be anything
        return repr(value)
    raise TypeError(f"cannot write {type(value).__name__} as a literal")


def wrapped(opening: str, items: list[str], closing: str) -> list[str]:
    """`opening` items `closing` on one line when it fits, else one item per line (indented one
    level deeper than `opening`): a signature, a call, a decorator's arguments."""
    one = opening + ", ".join(items) + closing.strip()
    if len(one) <= WIDTH:
        return [one]
    pad = " " * (len(opening) - len(opening.lstrip()) + 4)
    return [opening] + [f"{pad}{item}," for item in items] + [closing]
