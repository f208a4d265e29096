"""Files one step writes and a later one reads, which a Kubeflow pipeline does not hand on.

On Kubeflow each step runs in a container of its own: a file one writes (`df.to_csv("clean.csv")`)
is not there for the step that reads it, which fails on the cluster. `nbscale run --engine
kfp-local` runs every step in one folder and hides it. The same scan that orders the steps by their
files (`file_edges.file_order`) finds them; a URL (`s3://…`) both reach is no such file.

That scan orders a step after the writer of every file its text names, read or not. A step that
only mentions the name reads nothing, and is warned of for nothing: a comment (`# writes out.csv`),
a word of a longer text (`msg = "wrote out.csv"`), a docstring or other string statement, or what
it says (`print("out.csv")`, `logger.info(OUT)`, `warnings.warn(…)`, `display(Markdown(…))`, an
exception's or an assertion's message). What the step hands to anything else (`pd.read_csv(OUT)`,
`open(P)`, `Path(P).read_text()`, `files = ["a.csv", P]`) or a shell command's words
(`!wc -l out.csv`) it reads (`_read_names`).
"""

from __future__ import annotations

import ast
import re

from ...diagnostics import Diagnostic
from ...effects import dotted_name
from ...file_edges import file_order, named_texts, normalised, shell_words
from ...parsing import parse_cell
from ...path_constants import JOINS, folded_text, prelude_constants, steps_path_constants, with_constants
from ...recursion import with_room_to_recurse

__all__ = ["file_handoff_warnings"]

_URL = re.compile(r"[A-Za-z][\w+.-]*:/")  # (as the scan writes it: `s3://b/x` is `s3:/b/x`)
# calls whose arguments are said, not opened: printed, logged, shown, warned of
_SAYING = {"print", "pprint", "display", "Markdown", "HTML", "Latex", "warn", "echo", "secho"}
_LOGGING = {"debug", "info", "warning", "error", "exception", "critical", "fatal", "log"}  # (of a logger)
_SAID_TO = {"sys.stdout.write", "sys.stderr.write", "tqdm.write"}
# calls that keep a said text said (`print("{}".format(P))`, `print(str(Path(P)))`)
_TEXT_METHODS = frozenset(name for name in dir(str) if not name.startswith("_"))
_KEEP_SAID = {*JOINS, "repr", "format", "os.path.basename", "os.path.abspath", "os.path.relpath"}


def file_handoff_warnings(pipeline) -> list[Diagnostic]:
    """A `kfp-file-handoff` warning at the first cell of each step that reads (as far as its text
    tells) a file an earlier step writes and it does not. Its folds recurse once per level of an
    expression (`P = DIR + "a" + "b" + …`), as the compile's passes do, and get the room they do."""
    try:
        return _file_handoff_warnings(pipeline)
    except RecursionError:
        return with_room_to_recurse(_file_handoff_warnings, pipeline)


def _file_handoff_warnings(pipeline) -> list[Diagnostic]:
    constants = prelude_constants(pipeline.prelude.source, {p.name: p.default for p in pipeline.parameters})
    bound_before = {*pipeline.prelude.names, *(p.name for p in pipeline.parameters)}
    constants = steps_path_constants(constants, pipeline.steps, bound_before)
    scanned = [(step.name, with_constants(step.source, constants)) for step in pipeline.steps]  # (`scanned_steps`)
    order = file_order(scanned)
    found = []
    for step, (_, scanned_sources) in zip(pipeline.steps, scanned):
        handed_on = order.handed_on.get(step.name, {})
        read = _read_names(step.source, scanned_sources, constants) if handed_on else set()
        for writer, paths in handed_on.items():
            # (one the step writes too is in its own container, if it writes before it reads)
            files = [path for path in paths if _among(path, read) and not _URL.match(path)
                     and step.name not in order.written.get(path, ())]
            if files:
                found.append(Diagnostic(
                    "kfp-file-handoff",
                    f"step '{step.name}' reads {', '.join(files)}, which step '{writer}' writes: on Kubeflow each step "
                    "runs in a container of its own, where a file another step wrote is not", cell=step.cells[0],
                    hint="hand the data on as a variable, or write and read it at a URL both steps reach "
                         "(s3://…, gs://…)"))
    return found


def _read_names(sources: list[str], scanned: list[str], constants: dict[str, str]) -> set[str]:
    """The names (`file_edges.normalised`) a step's cells may read a file by: the texts
    `file_edges.named_texts` finds in what the cells hand on (`_handed_texts`), not in what they
    only mention (the module's docstring), and the words of their shell commands; every name a cell
    that does not parse names (its text as scanned, `scanned`)."""
    found: set[str] = set()
    for source, scanned_source in zip(sources, scanned):
        found.update(normalised(word) for word in shell_words(scanned_source))
        texts = _handed_texts(source, constants)
        found.update(normalised(text) for text in (named_texts(scanned_source) if texts is None else texts))
    return found


def _among(path: str, read: set[str]) -> bool:
    """Whether the step reads `path`, a file or folder its text names (`file_edges.named_paths`):
    under that name, or a file in it (named `f"data/{day}.csv"`, the scan saw the folder `data`)."""
    return path in read or any(name.startswith(path + "/") for name in read)


_FOLDED = (ast.Name, ast.BinOp, ast.JoinedStr, ast.Call)  # (what `path_constants.folded_text` may fold)


def _handed_texts(source: str, constants: dict[str, str]) -> list[str] | None:
    """The texts of a cell's literals and constants (`constants`, folded with what joins them:
    `path_constants.folded_text`) that are not only said (`_said`), as `named_texts` reads them: a
    whole text (`"my data.csv"`), a text quoted in one (`"select * from 'x.csv'"`), in each folder
    a process is started in (`cwd="tools"`); the words of an f-string without spaces
    (`f"data/{day}.csv"`). None for a cell that does not parse."""
    cell = parse_cell(0, source)
    if cell.error is not None:
        return None
    texts, words, folders = [], [], []
    stack: list[tuple[ast.AST, bool]] = [(stmt, False) for stmt in reversed(list(cell.statements()))]
    while stack:
        node, said = stack.pop()
        kind = type(node)
        if kind is ast.Expr and type(node.value) in (ast.Constant, ast.JoinedStr):
            continue  # a docstring, or a text said by standing alone
        if kind is ast.Constant:
            if not said and type(node.value) is str:
                texts.append(node.value)
            continue
        if kind in _FOLDED and not said and (text := folded_text(node, constants)) is not None:
            texts.append(text)
            continue
        if kind is ast.JoinedStr:
            parts = [part.value for part in node.values if type(part) is ast.Constant]
            if not said and not any(c.isspace() for part in parts for c in part):
                words.extend(parts)
            stack.extend((part.value, said) for part in node.values if type(part) is ast.FormattedValue)
            continue
        if kind is ast.Call:
            folders += [text for k in node.keywords if k.arg == "cwd" and (text := folded_text(k.value, constants))]
            if _said(node):
                stack.append((node.func, said))
                stack.extend((arg, True) for arg in [*node.args, *(k.value for k in node.keywords)])
                continue
            said = said and _keeps_said(node)
        elif kind is ast.Raise and type(node.exc) is ast.Call:  # `raise FileNotFoundError(f"no {P}")`
            stack.append((node.exc.func, said))
            stack.extend((arg, True) for arg in [*node.exc.args, *(k.value for k in node.exc.keywords)])
            if node.cause is not None:
                stack.append((node.cause, said))
            continue
        elif kind is ast.Assert:
            stack.append((node.test, said))
            if node.msg is not None:
                stack.append((node.msg, True))
            continue
        stack.extend((child, said) for child in ast.iter_child_nodes(node))
    # (written out again as literals, for `named_texts` to read as it reads a cell's)
    quoted = "\n".join([*map(repr, texts), *(f"cwd={folder!r}" for folder in folders)])
    return [*named_texts(quoted, quoted_only=True), *(named_texts("\n".join(words)) if words else ())]


def _said(call: ast.Call) -> bool:
    """A call that shows, logs or warns of its arguments (`_SAYING`, `logger.info(…)`)."""
    name = dotted_name(call.func)
    if name is not None and (name in _SAYING or name in _SAID_TO or name.rpartition(".")[2] in _SAYING):
        return True
    if type(call.func) is not ast.Attribute or call.func.attr not in _LOGGING:
        return False
    receiver = call.func.value  # `logging`, `logger`, `self.log`, `logging.getLogger(__name__)`
    receiver_name = dotted_name(receiver.func if type(receiver) is ast.Call else receiver)
    return receiver_name is not None and "log" in receiver_name.rpartition(".")[2].lower()


def _keeps_said(call: ast.Call) -> bool:
    """A call in what is said that makes a text of it, and opens nothing (`"{}".format(P)`, `str(P)`)."""
    name = dotted_name(call.func)
    if name is not None and name in _KEEP_SAID:
        return True
    return type(call.func) is ast.Attribute and call.func.attr in _TEXT_METHODS
