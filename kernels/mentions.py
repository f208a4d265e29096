"""Files a step's code names as text: dependencies that no audit event shows.

The recorder (`dependencies`) sees the files Python opens. A C or Rust library given a path
(polars, DuckDB, h5py, OpenCV, a model file loaded by XGBoost), a shell command (`!wc -l data.csv`)
or a process the step starts (`subprocess.run(["python", "prep.py"])`) opens them where no audit
hook looks, and a cached result would outlive a change to them. Their names are mostly written in
the step's cells (and the imports, functions and parameters cells it runs with): every quoted
text, and every word that holds `/` or `.`, that names a file is one of the step's files too.
How the file looks as the step ends says what it was (`Recording._named_files`): one that is as
it was is read (an absent one too: appearing later is a change); one the text writes (`!sort a >
b.txt`, `df.to_csv(P)`, `!rm P`), or that appeared, or that changed otherwise, is the step's
product once it exists (its own unseen writer, most likely: a file another process rewrites while
the step runs is taken for the step's); one that only grew (the same file, longer: a log) is
nothing, so steps that append to one log do not make each other run again (a copy onto an existing
file that makes it longer reads as such a log: its step is not run again when it goes).

Names built as the steps run are values: a text a step is given (`DATA = f"data/{month}.csv"` in
an earlier step, then `pl.read_csv(DATA)`), whole, names a file as a quoted text does; one a step
makes and keeps in a variable (`path = Path("data") / name`, then `!wc -l {path}`) names a file
it read, as the file is when the step ends. A name built and used inside one expression
(`pl.read_csv(f"data/{m}.csv")`) is not seen: such a step still needs `cache:off`.
"""

from __future__ import annotations

import itertools
import os
import re
from pathlib import PurePath

from ..compiler.file_edges import file_writes, named_globs, named_texts, shell_words

MAX_CANDIDATES = 10_000  # distinct texts looked up per step (a 2.75 MB cell holds about 100,000 words)
MAX_ABSENT = 100  # names of files not there yet kept per step
MAX_VALUE_TEXTS = 1_000  # texts taken from a step's values (a list of 100,000 file names: the first ones)
_VALUE_DEPTH = 3  # lists in dicts in lists: configs, not data
_WILDCARD = re.compile(r"[*?\[]")  # a pattern (`named_globs_and_folders`), not a file's name


NAMES, WRITES, APPENDS = "names", "writes", "appends"


def named_files(sources, cwd: str) -> tuple[dict[str, str], bool]:
    """The files (absolute path → NAMES, WRITES or APPENDS: what the text does with it) that the
    texts in `sources` name, relative to `cwd`: those that exist, those the text writes or appends
    to (`file_edges.file_writes`), and, up to MAX_ABSENT, quoted names and shell words of files
    not there yet (a later one is a change); and whether MAX_CANDIDATES cut the search short
    (then some may be missing)."""
    found: dict[str, str] = {}
    for source in sources:
        for text, appends in file_writes(source).items():
            found[_resolved(cwd, text)] = APPENDS if appends else WRITES
    seen, absent = set(), 0
    for source in sources:
        shell = list(shell_words(source))  # (`cd sub && cat x.csv`: sub/x.csv, no word of the cell)
        quoted_or_shell = {*named_texts(source, quoted_only=True), *shell}
        for text in (*named_texts(source), *shell):
            if text in seen:
                continue
            if len(seen) >= MAX_CANDIDATES:
                return found, True
            seen.add(text)
            path = _resolved(cwd, text)
            if path in found:
                continue
            if os.path.isfile(path):
                found[path] = NAMES
            elif absent < MAX_ABSENT and text in quoted_or_shell and _may_appear(text, path):
                found[path], absent = NAMES, absent + 1
    return found, False


def named_globs_and_folders(sources, cwd: str) -> tuple[list[str], list[str]]:
    """The wildcard names (`data/*.csv`) and the existing folders (`!ls data/`, `"data"`) that the
    quoted texts and shell commands in `sources` name, relative to `cwd` (not `cwd` itself; the
    recording keeps the folders inside it only)."""
    patterns, folders = {}, {}
    for source in sources:
        patterns.update(dict.fromkeys(named_globs(source)))
        for text in {*named_texts(source, quoted_only=True), *shell_words(source)}:
            path = _resolved(cwd, text)
            if path != cwd and len(folders) < MAX_ABSENT and os.path.isdir(path):
                folders[path] = None
    return list(patterns)[:MAX_ABSENT], list(folders)


def step_texts(source: list[str], prelude_source: list[str], parameters: dict) -> list[str]:
    """What names a step's files: its cells, the imports and functions cells it runs with, and the
    text parameters it is given (`DATA = "sales.csv"`, then `!wc -l {DATA}`)."""
    return [*prelude_source, *source, *(repr(v) for v in (parameters or {}).values() if isinstance(v, str))]


def value_texts(values) -> list[str]:
    """The texts among `values` that may be a file's name: strings of one line of at most 4,096
    characters and pathlib paths, also in lists, tuples, sets and dict values up to three levels
    down; at most MAX_VALUE_TEXTS, and no code of the values' own runs (a subclass's `__iter__`
    or `__str__`: the built-in one is used)."""
    texts, stack, visits = [], [(value, 0) for value in reversed(list(values))], 0
    while stack and len(texts) < MAX_VALUE_TEXTS and visits < 10 * MAX_VALUE_TEXTS:
        value, depth = stack.pop()
        visits += 1
        kind = type(value)  # (not isinstance: a proxy's `__class__` may claim to be a str)
        if issubclass(kind, str):
            text = str.__str__(value)
            if 0 < len(text) <= 4096 and "\n" not in text and "\x00" not in text:
                texts.append(text)
        elif issubclass(kind, PurePath):
            texts.append(PurePath.__str__(value))
        elif depth < _VALUE_DEPTH and (items := _items(value)) is not None:
            stack.extend((item, depth + 1) for item in reversed(list(itertools.islice(items, MAX_VALUE_TEXTS))))
    return texts


def _items(value):
    kind = type(value)
    if issubclass(kind, dict):
        return dict.values(value)
    if issubclass(kind, list):
        return list.__iter__(value)
    if issubclass(kind, tuple):
        return tuple.__iter__(value)
    if kind in (set, frozenset):  # (a subclass may define its own iteration)
        return iter(value)
    return None


def value_names(values, cwd: str) -> tuple[dict[str, str], list[str]]:
    """The files (absolute path → NAMES) that the texts among a step's given values name as a whole
    (`value_texts`), relative to `cwd`, those not there yet as a quoted name's (`_may_appear`); and
    the wildcard ones, as patterns (`Recording.mention_globs`)."""
    named, patterns, absent = {}, [], 0
    for text in value_texts(values):
        if "." not in text and "/" not in text:
            continue  # a word, a label, a category: no file's name
        if _WILDCARD.search(text):
            if len(patterns) < MAX_ABSENT:
                patterns.append(text)
            continue
        path = _resolved(cwd, text)
        if os.path.isfile(path):
            named[path] = NAMES
        elif absent < MAX_ABSENT and _may_appear(text, path):
            named[path], absent = NAMES, absent + 1
    return named, patterns


def made_names(values, cwd: str) -> list[str]:
    """The existing files that the texts among the values a step made name as a whole."""
    paths = [_resolved(cwd, text) for text in value_texts(values)
             if ("." in text or "/" in text) and not _WILDCARD.search(text)]
    return [path for path in paths if os.path.isfile(path)]


def _may_appear(text: str, path: str) -> bool:
    """Whether a quoted or shell name of no file may name one that appears later: a name like a
    file's (it holds `.` or `/`), no wildcard, nothing there now, in a folder that exists."""
    return ("." in text or "/" in text) and not _WILDCARD.search(text) and not os.path.exists(path) \
        and os.path.isdir(os.path.dirname(path))


def _resolved(cwd: str, text: str) -> str:
    return os.path.abspath(os.path.join(cwd, os.path.expanduser(text)))
