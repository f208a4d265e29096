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
the step runs is taken for the step's, a longer one too); one the text appends to (`>> run.log`)
is nothing. Steps that append to one log do not make each other run again: a product that only
grew since its step wrote it, the same first bytes, is no change (`fingerprints`).

Names built as the steps run are seen three more ways. A text among the values a step is given
(`DATA = f"data/{month}.csv"` in an earlier step, then `pl.read_csv(DATA)`), whole, names a file
or folder as a quoted text does (`value_names`). So does a text among the values the step made
itself and hands on to no later step (`path = f"data/{m}.csv"`, then `pl.read_csv(path)` in the
same step), but only a file, and only as the step ends (`built_files`): unchanged since the step
began, it was read; changed, it is the step's product. A process the step starts names files as it
starts (`command_names`, from its audit event: `subprocess`, `os.system`, and `!cmd` with its
`{name}`s filled in), and so do the texts of the scripts it runs (`python prep.py`: the names in
prep.py and in the modules beside it that it imports), relative to the folder it runs in then
(after `%cd`, `os.chdir`). A file a step reads and then removes (`!cat job.txt`, `!rm job.txt`) is
read as absent: one that comes back runs the step again; one only removed (`!rm -f report.txt`, a
clean-up) is nothing. A name built inside the step and given to a C library without being kept
(`pl.read_csv(f"data/{m}.csv")`, or a local variable of a function) is not seen: such a step still needs `cache:off`.
"""

from __future__ import annotations

import functools
import itertools
import os
import re
import stat
from collections import Counter
from pathlib import Path, PosixPath, PurePath, PurePosixPath, PureWindowsPath, WindowsPath
from typing import NamedTuple

from ..compiler.file_edges import database_edits, file_writes, named_globs, named_texts, shell_words
from ..compiler.module_files import module_imports, module_paths
from .masking import holds_credential

MAX_CANDIDATES = 10_000  # distinct texts looked up per step (a 2.75 MB cell holds about 100,000 words)
MAX_ABSENT = 100  # names of files not there yet kept per step
MAX_VALUE_TEXTS = 1_000  # texts taken from a step's values (a list of 100,000 file names: the first ones)
MAX_VALUE_ITEMS = 50_000  # values looked at for them per step (a table as nested lists: its first cells)
_SHELLS = {"sh", "bash", "dash", "zsh", "ksh", "ash"}  # `sh -c COMMAND`: the command's words name its files
_PATH_TYPES = (PurePath, PurePosixPath, PureWindowsPath, Path, PosixPath, WindowsPath)
_VALUE_DEPTH = 3  # lists in dicts in lists: configs, not data
_URL = re.compile(r"[A-Za-z][\w+.-]*://")  # `s3://`, `https://`, `postgresql://`: no local file
_WILDCARD = re.compile(r"[*?\[]")  # a pattern (`named_globs_and_folders`), not a file's name
# scripts a process runs (`python prep.py`, `bash fetch.sh`) whose text names the files it opens:
# their suffix → whether the text is a shell's; at most MAX_SCRIPTS per command, of MAX_SCRIPT_BYTES
SCRIPT_SUFFIXES = {".py": False, ".sh": True, ".bash": True}
MAX_SCRIPTS = 32
MAX_SCRIPT_BYTES = 1_000_000


NAMES, WRITES, APPENDS = "names", "writes", "appends"
NAMES_AND_WRITES = "names and writes"  # written, and named elsewhere too: `!cat job.txt` then `!rm job.txt`


def named_files(sources, cwd: str) -> tuple[dict[str, str], bool]:
    """The files (absolute path → NAMES, WRITES or APPENDS: what the text does with it) that the
    texts in `sources` name, relative to `cwd`: those that exist, those the text writes or appends
    to (`file_edges.file_writes`), and, up to MAX_ABSENT, quoted names and shell words of files
    not there yet (a later one is a change); and whether MAX_CANDIDATES cut the search short
    (then some may be missing)."""
    found: dict[str, str] = {}
    for source in sources:
        for text, appends in _scanned(source).writes:
            found[_resolved(cwd, text)] = APPENDS if appends else WRITES
    for text in database_edits(sources) if len(sources) > 1 else ():  # (connected in one cell, changed in another)
        found[_resolved(cwd, text)] = WRITES
    seen, absent, named_again = set(), 0, Counter()
    for source in sources:
        scan = _scanned(source)
        quoted_or_shell = {*scan.quoted, *scan.shell}
        texts = [*scan.texts, *scan.shell]  # (`cd sub && cat x.csv`: sub/x.csv, no word of the cell)
        if found:
            named_again.update(_resolved(cwd, text) for text in texts[:MAX_CANDIDATES])
        for text in texts:
            if text in seen:
                continue
            if len(seen) >= MAX_CANDIDATES:
                return found, True
            seen.add(text)
            absent = _name_file(found, text, cwd, text in quoted_or_shell, absent)
    for path, use in found.items():
        if use == WRITES and named_again[path] > 2:  # (once where it is written, once as a shell word)
            found[path] = NAMES_AND_WRITES
    return found, False


def named_globs_and_folders(sources, cwd: str) -> tuple[list[str], list[str]]:
    """The wildcard names (`data/*.csv`) and the existing folders (`!ls data/`, `"data"`) that the
    quoted texts and shell commands in `sources` name, relative to `cwd` (not `cwd` itself; the
    recording keeps the folders inside it only); not a folder the text writes in (`!mkdir -p out`,
    `--output-dir out`): what later steps put there is no change to this one."""
    patterns, folders = {}, {}
    for source in sources:
        scan = _scanned(source)
        patterns.update(dict.fromkeys(scan.globs))
        written = {_resolved(cwd, text) for text, _appends in scan.writes}
        for text in {*scan.quoted, *scan.shell}:
            path = _resolved(cwd, text)
            if path != cwd and path not in written and len(folders) < MAX_ABSENT and os.path.isdir(path):
                folders[path] = None
    return list(patterns)[:MAX_ABSENT], list(folders)


class _Scan(NamedTuple):
    texts: tuple[str, ...]  # quoted texts and path-like words (`file_edges.named_texts`)
    quoted: tuple[str, ...]  # quoted texts alone
    shell: tuple[str, ...]  # shell commands' words
    globs: tuple[str, ...]  # wildcard names
    writes: tuple[tuple[str, bool], ...]  # what it writes, and whether it only appends


@functools.lru_cache(maxsize=32)
def _scanned(source: str) -> _Scan:
    """One scan of a cell's text for `named_files` and `named_globs_and_folders`, kept for the next
    step that runs it: the imports and functions cells run with every step."""
    return _Scan(tuple(named_texts(source)), tuple(named_texts(source, quoted_only=True)),
                 tuple(shell_words(source)), tuple(named_globs(source)), tuple(file_writes(source).items()))


def step_texts(source: list[str], prelude_source: list[str], parameters: dict) -> list[str]:
    """What names a step's files: its cells, the imports and functions cells it runs with, and the
    text parameters it is given (`DATA = "sales.csv"`, then `!wc -l {DATA}`)."""
    return [*prelude_source, *source, *(repr(v) for v in (parameters or {}).values() if isinstance(v, str))]


def value_texts(values) -> list[str]:
    """The texts among `values` that may be a file's name: strings of one line of at most 4,096
    characters and pathlib paths, also in lists, tuples, sets and dicts (keys and values) up to
    three levels down, level by level (a name beside a large table is found before the table's
    cells); at most MAX_VALUE_TEXTS of them among the first MAX_VALUE_ITEMS values looked at, and no
    code of the values' own runs (a subclass's `__iter__` or `__str__`: the built-in one is used)."""
    texts, level, looked = [], list(values), 0
    for depth in range(_VALUE_DEPTH + 1):
        deeper = []
        for value in level:
            looked += 1
            if looked > MAX_VALUE_ITEMS or len(texts) >= MAX_VALUE_TEXTS:
                return texts
            text = _text(value)
            if text is not None:
                texts.append(text)
            elif depth < _VALUE_DEPTH and (items := _items(value)) is not None:
                deeper.extend(itertools.islice(items, MAX_VALUE_ITEMS - looked))
        level = deeper
    return texts


def _text(value) -> str | None:
    kind = type(value)  # (not isinstance: a proxy's `__class__` may claim to be a str)
    if issubclass(kind, str):
        text = str.__str__(value)
    elif kind in _PATH_TYPES:  # (not a subclass: its own code could run)
        text = str(value)
    else:
        return None
    if not 0 < len(text) <= 4096 or "\n" in text or "\x00" in text:
        return None
    try:
        os.fsencode(text)  # (a lone surrogate names no file)
    except UnicodeError:
        return None
    return text


def _items(value):
    kind = type(value)
    if issubclass(kind, dict):
        return itertools.chain(dict.keys(value), dict.values(value))  # ({"a.csv": "sales"}: keys too)
    if issubclass(kind, list):
        return list.__iter__(value)
    if issubclass(kind, tuple):
        return tuple.__iter__(value)
    if kind in (set, frozenset):  # (a subclass may define its own iteration)
        return iter(value)
    return None


def value_names(values, cwd: str) -> tuple[dict[str, str], list[str], list[str]]:
    """What the texts among a step's given values name as a whole (`value_texts`), relative to
    `cwd`, as a quoted text does: files (absolute path → NAMES; those not there yet as a quoted
    name's, `_may_appear`), wildcards (patterns) and folders (`Recording.mention_globs`)."""
    named, patterns, folders, absent = {}, [], [], 0
    for text in value_texts(values):
        if "." not in text and "/" not in text:  # a word, a label, a category: no file's name, but
            path = _resolved(cwd, text)  # maybe a folder's (`DIR = "data"`)
            if path != cwd and len(folders) < MAX_ABSENT and os.path.isdir(path):
                folders.append(path)
            continue
        if _WILDCARD.search(text):
            if len(patterns) < MAX_ABSENT:
                patterns.append(text)
            continue
        path = _resolved(cwd, text)
        if os.path.isfile(path):
            named[path] = NAMES
        elif os.path.isdir(path):
            if path != cwd and len(folders) < MAX_ABSENT:
                folders.append(path)
        elif absent < MAX_ABSENT and _may_appear(text, path, cwd):
            named[path], absent = NAMES, absent + 1
    return named, patterns, folders


def built_files(values, cwd: str, but=()) -> list[str]:
    """The files that texts among the values a step made itself name as a whole (`value_texts`),
    relative to `cwd`, but for the texts in `but`: files there now only (a name of one not there is
    where the step would have written, had it written); no folders or wildcards, whose listings
    would change with every file a later step adds."""
    found, but = [], set(but)
    for text in value_texts(values):
        if text in but:
            continue
        if ("." in text or "/" in text) and not _WILDCARD.search(text) and not _URL.match(text):
            path = _resolved(cwd, text)
            if os.path.isfile(path):
                found.append(path)
    return found


def command_names(command, cwd: str) -> tuple[dict[str, str], list[str], list[str]]:
    """What a command a step starts names, as it starts (`dependencies`: a process's audit event):
    its arguments, whole, and the value of each `--input=x.csv` or `data.path=x.csv`; or, for a
    shell command (`sh -c`, `bash -lc`, `env bash -e -c`, `timeout 60 sh -c`, `os.system`, `!cmd`
    with its `{name}`s filled in), its words and the arguments after it; relative to `cwd`, the
    folder it runs in. The files (absolute path → NAMES, WRITES or APPENDS, as `named_files` gives
    them) that exist, or are written, or may appear; a shell command's wildcards, as patterns
    relative to `cwd`; and the folders inside `cwd` it names (`ls data`)."""
    writes, patterns = {}, []
    if isinstance(command, str):
        script, words = command, []
    else:
        argv = [text for text in map(_argument, command) if text is not None]
        script, words = _shell_script(argv)
    if script is not None:
        script = f"%%bash\n{script}"  # (a shell command of several lines is one script)
        writes = _shell_writes(script, cwd)
        words += shell_words(script)
        patterns = list(named_globs(script))[:MAX_ABSENT]
    words = [part for word in words for part in _word_parts(word)]
    folders = [folder for folder in _folders_named(words, cwd) if folder not in writes]  # (not `mkdir -p out`)
    return _with_scripts_names(_files_named(words, writes, cwd), cwd, words), patterns, folders


def _with_scripts_names(found: dict[str, str], cwd: str, argv=()) -> dict[str, str]:
    """`found`, and the files named in the text of the scripts among them (`python prep.py` opens
    what prep.py names: `open("raw.csv")`, `df.to_csv("out.csv")`; `bash fetch.sh`, its commands'
    words) and of the module a process runs (`python -m prep`), relative to `cwd` as the process runs
    there; and the files of the notebook's own modules a Python script imports (`import helpers`,
    `from .core import X` in a package run with -m: their code is the process's too), with what
    they name. A name `found` holds keeps its use. A name the script builds as it runs is not seen.
    At most MAX_SCRIPTS texts are read."""
    queue = [(path, os.path.dirname(path), os.path.splitext(os.path.basename(path))[0])
             for path, use in found.items() if use == NAMES and os.path.splitext(path)[1] in SCRIPT_SUFFIXES]
    queue += _module_run(argv, cwd)
    done: set[str] = set()
    while queue and len(done) < MAX_SCRIPTS:
        path, root, module = queue.pop(0)
        if path in done:
            continue
        done.add(path)
        found.setdefault(path, NAMES)
        try:
            st = os.stat(path)
        except OSError:
            continue
        named, imported = _script_names(path, (st.st_ino, st.st_size, st.st_mtime_ns, st.st_mode), cwd, root, module)
        queue += [(file, root, name) for file, name in imported if os.path.isfile(file)]
        for name, use in named:  # (a name of no file, such as a password in `export DB_PASSWORD=…`, is left out)
            if use != NAMES or os.path.isfile(name):
                found.setdefault(name, use)
    return found


@functools.lru_cache(maxsize=64)  # (a step that starts `python tool.py` in a loop: the script is read once)
def _script_names(path: str, state: tuple, cwd: str, root: str, module: str) -> tuple[tuple, tuple]:
    """((name, use), …) of the files a script's text names, and (file, module name) of the files the
    modules it imports may be in under `root` (where Python looks first: the script's folder, or the
    folder of `-m`; whether they are there is asked each time); `module`: its own name, for its
    relative imports; `state`: its stat, the cache's key. A name that holds a credential is left
    out: a fingerprint would keep it."""
    if not stat.S_ISREG(state[3]):  # (a FIFO would never end its read)
        return (), ()
    text = _script_text(path)
    if text is None:
        return (), ()
    imported: list[tuple[str, str]] = []
    if SCRIPT_SUFFIXES[os.path.splitext(path)[1]]:  # (a shell's: as `sh -c` is given it, but its `#!` line)
        script = "%%bash\n" + (text.partition("\n")[2] if text.startswith("#!") else text)
        named = _files_named([p for w in shell_words(script) for p in _word_parts(w)], _shell_writes(script, cwd), cwd)
    else:
        named = named_files([text], cwd)[0]
        package = os.path.basename(path) == "__init__.py"
        for name in dict.fromkeys(module_imports(text, module, package)):
            imported += [(os.path.join(root, relative), _module_of(relative)) for relative in module_paths(name)]
    return tuple((name, use) for name, use in named.items() if not holds_credential(os.path.basename(name))), \
        tuple(imported)


def _shell_writes(script: str, cwd: str) -> dict[str, str]:
    """The files a shell script writes or appends to (path → WRITES or APPENDS), relative to `cwd`."""
    return {_resolved(cwd, text): APPENDS if appends else WRITES for text, appends in file_writes(script).items()}


def _module_run(argv, cwd: str) -> list[tuple[str, str, str]]:
    """(file, folder, module name) of the module beside `cwd` a Python process runs with `-m NAME`,
    and of the packages it is in (their `__init__.py` runs first); none: []."""
    argv = list(argv)
    if "-m" not in argv[:4] or argv.index("-m") + 1 >= len(argv):
        return []
    module = argv[argv.index("-m") + 1]
    if not all(part.isidentifier() for part in module.split(".")):
        return []
    files = [(os.path.join(cwd, relative), cwd, _module_of(relative)) for relative in module_paths(module)]
    files.append((os.path.join(cwd, *module.split("."), "__main__.py"), cwd, module + ".__main__"))
    return [entry for entry in files if os.path.isfile(entry[0])]


def _module_of(relative: str) -> str:
    """The module a file of `module_files.module_paths` holds (`a/b/__init__.py` → `a.b`)."""
    return relative.removesuffix(".py").removesuffix("/__init__").replace("/", ".")


def _script_text(path: str) -> str | None:
    """The text of a script (None: too big, or binary)."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_SCRIPT_BYTES + 1)
    except OSError:
        return None
    return None if len(data) > MAX_SCRIPT_BYTES or b"\x00" in data else data.decode("utf-8", "replace")


def _shell_script(argv: list[str]) -> tuple[str | None, list[str]]:
    """(the script a shell among `argv` is given with `-c`, and the arguments after it; or None and
    `argv`)."""
    for i, arg in enumerate(argv[:4]):  # (`env bash -c`, `timeout 60 sh -c`, `nice -n 5 bash -c`)
        if os.path.basename(arg) not in _SHELLS:
            continue
        j = i + 1
        while j < len(argv) - 1 and argv[j].startswith("-"):
            if not argv[j].startswith("--") and "c" in argv[j][1:]:  # -c, -lc, -ec
                return argv[j + 1], argv[j + 2:]
            j += 1
    return None, argv


def _word_parts(word: str) -> list[str]:
    """A word, and the value of an option or setting it holds (`--input=x.csv`, `data.path=x.csv`)."""
    name, equals, value = word.partition("=")
    if not equals:
        return [word]
    return [value] if word.startswith("-") else [word, value]


def _folders_named(words: list[str], cwd: str) -> list[str]:
    inside = os.path.join(cwd, "")
    paths = {_resolved(cwd, word) for word in words[:MAX_CANDIDATES] if not word.startswith("-")}
    return sorted(path for path in paths if path.startswith(inside) and os.path.isdir(path))[:MAX_ABSENT]


def _files_named(texts: list[str], found: dict[str, str], cwd: str) -> dict[str, str]:
    absent = 0
    for text in texts[:MAX_CANDIDATES]:
        if ("." in text or "/" in text) and not _WILDCARD.search(text) and not text.startswith("-"):
            absent = _name_file(found, text, cwd, True, absent)
    return found


def _name_file(found: dict[str, str], text: str, cwd: str, may_be_absent: bool, absent: int) -> int:
    """Adds the file `text` names to `found` (unless there already) when it is there, or when it
    may appear (`_may_appear`, and fewer than MAX_ABSENT such names so far); the count of those."""
    path = _resolved(cwd, text)
    if path in found:
        return absent
    if os.path.isfile(path):
        found[path] = NAMES
    elif may_be_absent and absent < MAX_ABSENT and _may_appear(text, path, cwd):
        found[path], absent = NAMES, absent + 1
    return absent


def _argument(arg) -> str | None:
    if isinstance(arg, (str, bytes)) or type(arg) in _PATH_TYPES:
        text = os.fsdecode(arg)
        return text if 0 < len(text) <= 4096 and "\x00" not in text else None
    return None


def _may_appear(text: str, path: str, cwd: str) -> bool:
    """Whether a quoted or shell name of no file may name one that appears later: a name like a
    file's (it holds `.` or `/`), no wildcard, nothing there now, in a folder that exists or inside
    the notebook folder (`overrides/extra.txt`, the folder made later too); never a URL
    (`postgresql://u:pw@db/x`) nor a text holding a credential, which the record would keep."""
    return ("." in text or "/" in text) and not _WILDCARD.search(text) and not _URL.match(text) \
        and not os.path.exists(path) \
        and (os.path.isdir(os.path.dirname(path)) or path.startswith(os.path.join(cwd, ""))) \
        and not holds_credential(text)


def _resolved(cwd: str, text: str) -> str:
    return os.path.abspath(os.path.join(cwd, os.path.expanduser(text)))
