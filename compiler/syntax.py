"""IPython syntax (%magic, %%cellmagic, !shell, obj?) → plain Python, for analysis only.

The step keeps its original text; IPython runs it at run time. The transformed text keeps the
cell's line numbers so diagnostics point at the line the user wrote.
"""

from __future__ import annotations

import ast
import re

from .pyparse import parse_text

# Cell magics whose body is Python: analyse the body. Any other cell magic (%%bash,
# %%writefile, %%html, ...) holds no Python names.
PYTHON_BODY_CELL_MAGICS = {"time", "timeit", "capture", "prun", "memit", "debug", "pypy"}
# Line magics whose argument is a Python statement: analyse the statement.
STATEMENT_LINE_MAGIC = re.compile(r"^(\s*)%(time|timeit|prun|memit)\s+(?:-\w+(?:\s+\d+)?\s+)*(.*)$")
# %timeit runs its code in a scope of its own: it reads names but binds none. A class body says
# exactly that to the analysis (it runs now, and its names stay inside).
READS_ONLY_SCOPE = "class __nbscale_timeit__:"
# Cheap test for "might hold IPython syntax", so that pure-Python cells never import IPython.
MAYBE_IPYTHON = re.compile(r"^\s*[%!?]|^[^#'\"\n]*=\s*[%!]|\?\s*$", re.MULTILINE)

# `get_ipython()` methods (as to_python writes IPython syntax) whose string argument, at this index,
# IPython expands with the names of the code that runs it: `!echo {path}`, `files = !ls $folder`,
# `%cd {folder}`, `%%writefile {name}`.
EXPANDED_ARGUMENT = {"system": 0, "getoutput": 0, "run_line_magic": 1, "run_cell_magic": 1}

_transformer = None


def to_python(source: str) -> str:
    if "%" not in source:  # no magic: the text is its own Python, unless IPython reads it otherwise
        maybe = ("!" in source or "?" in source) and MAYBE_IPYTHON.search(source)  # (it needs one of %!?)
        return _transformed(source) if maybe else source
    lines = source.split("\n")
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is not None and lines[first].lstrip().startswith("%%"):
        return _cell_magic(lines, first)
    source = "\n".join(_statement_magic(line) for line in lines)
    if not MAYBE_IPYTHON.search(source):
        return source
    return _transformed(source)


def _transformed(source: str) -> str:
    """IPython's own rewriting of `source` (`!shell`, `obj?`, `x = %magic`...)."""
    python = _ipython_transformer().transform_cell(source)
    if python.endswith("\n") and not source.endswith("\n"):
        python = python[:-1]
    return python


def _statement_magic(line: str) -> str:
    match = STATEMENT_LINE_MAGIC.match(line)
    if not match:
        return line
    indent, magic, statement = match.groups()
    return indent + (f"{READS_ONLY_SCOPE} {statement}" if magic == "timeit" else statement)


def _cell_magic(lines, first):
    magic_line = lines[first].strip()[2:]  # strip: a "\r" of CRLF text is not part of the name
    name, _, args = magic_line.partition(" ")
    blank = [""] * (first + 1)
    if name not in PYTHON_BODY_CELL_MAGICS:
        if "{" in args or "$" in args:  # its line may expand names (its body is not expanded)
            blank[first] = f"get_ipython().run_cell_magic({name!r}, {args!r}, '')"
        return "\n".join(blank + [""] * (len(lines) - first - 1))
    if name == "capture":
        # %%capture [--no-stdout ...] NAME binds NAME to the captured output
        target = next((a for a in args.split() if not a.startswith("-")), None)
        if target and target.isidentifier():
            blank[first] = f"{target} = None"
    body = to_python("\n".join(lines[first + 1:]))
    if name == "timeit":
        blank[first] = READS_ONLY_SCOPE
        indented = [" " + line for line in body.split("\n")]
        return "\n".join(blank) + "\n" + "\n".join(indented) + "\n pass"
    return "\n".join(blank) + "\n" + body


def _ipython_transformer():
    global _transformer
    if _transformer is None:
        from IPython.core.inputtransformer2 import TransformerManager

        _transformer = TransformerManager()
    return _transformer


def expanded_names(command: str) -> set[str]:
    """The names IPython's expansion of `command` reads: `{expression}` and `$name` (its
    `var_expand`). A name it cannot find there leaves the command as written (`!echo $HOME` is
    the shell's), so none of them need exist."""
    if "{" not in command and "$" not in command:
        return set()
    from IPython.utils.text import DollarFormatter

    names: set[str] = set()
    try:
        fields = [(field, spec) for _, field, spec, _ in DollarFormatter().parse(command) if field]
    except ValueError:  # unbalanced braces: IPython leaves such a command as written
        return names
    for field, spec in fields:
        try:  # IPython evaluates `{a[1:2]}` whole: what a format string calls a spec is a slice
            tree = parse_text(f"{field}:{spec}" if spec else field, mode="eval")
        except SyntaxError:
            continue
        names |= {node.id for node in ast.walk(tree) if type(node) is ast.Name and type(node.ctx) is ast.Load}
    return names
