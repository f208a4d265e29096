"""Steps that hand a file on: a step whose cells name a file that an earlier step writes comes after it.

Data edges come from names. A file that one step writes and a later one reads
(`df.to_csv("clean.csv")`, then `pd.read_csv("clean.csv")`; `!sort raw.txt > sorted.txt`, then
`!wc -l sorted.txt`) is no name: without an edge the reader could run first or beside the writer,
or keep a cached result while the writer runs again and rewrites the file. So each step comes
after the last earlier step that writes a file its cells name, as it would top to bottom. What
counts as written is what the text shows (`open(P, "w")`, `.to_csv(P)`, `np.save(P, …)`,
`joblib.dump(m, P)`, `shutil.copy(src, P)`, `Path(P).write_text(…)`, a shell redirect `> P`,
`%%writefile P`, `!cp a P`, `!tar -czf P …`, a program's output option, `!python train.py --out P`
or `subprocess.run([..., "-o", P])`; a removal too: `os.remove(P)`, `!rm P`), with `P` written out
as a string, or held in a constant of the imports cell, a text parameter, or one a step binds once (`path_constants`);
steps that only read a file stay parallel, and a step that writes it anew comes after them (they
read the version it replaces: `file_versions`).
A name built as the step runs (`f"out/{day}.csv"`) makes no edge: use `after:`.
"""

from __future__ import annotations

import ast
import functools
import os
import re
import shlex
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field

# A cell's string literals and comments, in the order they start, so that an escaped quote (`'a\n'`,
# `'it\'s'`), a triple-quoted text or a comment (`# don't`) pairs no quote with the next literal's.
# A regex, not `tokenize`: about 25 times faster, and a cell may hold IPython syntax (`!ls 'x'`).
# A quote right after a letter (`don't`) opens nothing: a literal may follow only its prefix there.
# (No possessive quantifiers: Python 3.10 has none. Each repeat has one way to match a character,
# so an unclosed literal costs one pass over its line, or over the cell for a triple quote.)
_LITERAL = re.compile(r"""(?=[\#'"rRbBuUfF])(?:\#[^\n]*|(?<!\w)[rRbBuUfF]{0,2}(?:
    '''(?P<s3>(?:[^'\\]|\\.|'(?!''))*)'''|"\"\"(?P<d3>(?:[^"\\]|\\.|"(?!""))*)"\"\"
    |'(?P<s1>(?:[^'\\\n]|\\.)*)'|"(?P<d1>(?:[^"\\\n]|\\.)*)"))""", re.VERBOSE | re.DOTALL)
_PLAIN = re.compile(r"""[^'"\\\n\x00]{1,4096}""")  # a literal taken whole: `"my data.csv"`, spaces and all
_INNER_QUOTED = re.compile(r"""(?<!\w)(['"])([^'"\\\n\x00]{1,4096})\1""")  # `"select * from 'x.csv'"`
_WORD = re.compile(r"""[^\s'"`()\[\]{},;=<>|&*?\\\x00]{1,4096}""")  # `!wc -l data/x.csv`, `prep.py`
# A name written as a string literal of one line, read as Python reads it (`_path`): with escapes
# (`"a\tb.csv"`, `'O\'Brien.csv'`, `"x\u2028.csv"`) and the other quote (`"O'Brien.csv"`). (Each character
# has one way to match: a literal that does not close costs one pass over its line.)
_PATH = r"""(?P<prefix>[rRuU]?)(?P<q>['"])(?P<path>(?:[^'"\\\n\x00]|\\[^\n\x00]|(?!(?P=q))['"]){1,4096})(?P=q)"""
_WRITES = [re.compile(pattern) for pattern in (
    rf"\bopen\(\s*{_PATH}\s*,\s*(?:mode\s*=\s*)?['\"](?P<mode>[rbt]*[wax+])",
    rf"\.(?:to_csv|to_parquet|to_json|to_pickle|to_excel|to_feather|to_hdf|to_orc|to_stata|to_xml|to_html"
    rf"|to_latex|to_markdown|to_netcdf|to_zarr|savefig|save|save_model|write_csv|write_parquet|write_json"
    rf"|write_ndjson|write_ipc|write_excel|write_database|write_delta)\(\s*(?:\w+\s*=\s*)?{_PATH}"
    r"""(?:(?=[^()]*?\bmode\s*=\s*['"](?P<mode>[rbtwax+]*)['"]))?""",  # `df.to_csv(P, mode="a")`: appends
    rf"\bPath\(\s*{_PATH}\s*\)\s*\.\s*(?:write_text|write_bytes|touch|open\(\s*(?:mode\s*=\s*)?['\"](?P<mode>[rbt]*[wax+]))",
    # the same once the scans' text has a Path's name written out (`path_constants`: `Path("d") / "x.csv"`
    # and a constant `p = Path("x.csv")` become "d/x.csv", "x.csv"): a text has no such methods of its own
    # (spaces only after a parenthesis: at every space of a long run, `\s*` first would try the rest of it)
    rf"(?<![\w.)\]])(?:\(\s*)?{_PATH}\s*\)?\s*\.\s*(?:write_text|write_bytes|touch|open\(\s*(?:mode\s*=\s*)?['\"](?P<mode>[rbt]*[wax+]))",
    rf"\b(?:np|numpy)\.(?:save|savez|savez_compressed|savetxt)\(\s*{_PATH}",
    rf"\b(?:joblib\.dump|torch\.save|pickle_dump|cloudpickle\.dump)\([^,()]+,\s*{_PATH}",
    rf"\b(?:shutil\.(?:copy|copy2|copyfile|move)|os\.(?:rename|replace|link|symlink))\([^,()]+,\s*{_PATH}",
    rf"\b(?:os\.(?:remove|unlink)|shutil\.rmtree)\(\s*{_PATH}",  # a removal changes the file too
    rf"(?:\bPath\(\s*|(?<![\w.)\]])(?:\(\s*)?){_PATH}\s*\)?\s*\.\s*unlink\(",
)]
# A database file a step connects to (`sqlite3.connect("res.db")`, `duckdb.connect(database="w.duckdb")`,
# `create_engine("sqlite:///res.db")`, `df.to_sql("t", "sqlite:///res.db")`, `shelve.open("cache")`) is
# changed in place from C, unseen as a write, when the step's text shows a change (`DATABASE_CHANGES`):
# what it holds afterwards depends on what it held, as for a file edited in place (`open(P, "r+")`)
_DATABASE = re.compile(rf"\b(?:sqlite3\.connect|duckdb\.connect|shelve\.open)\(\s*(?:database\s*=\s*)?{_PATH}"
                       r"""|(?P<uq>['"])sqlite(?:\+\w+)?:///(?P<url>[^'"\\\n\x00?]{1,4096})""")  # (a URL)
DATABASE_CHANGES = re.compile(r"\.to_sql\(|\.commit\(|\.executescript\(|\.executemany\(|\bshelve\.open\("
                              r"|\b(?:INSERT\s+(?:OR\s+\w+\s+)?INTO|REPLACE\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM"
                              r"|(?:CREATE|DROP)\s+(?:TEMP\w*\s+|UNIQUE\s+|VIRTUAL\s+)?(?:TABLE|INDEX|VIEW|TRIGGER)"
                              r"|ALTER\s+TABLE|VACUUM|COPY\s+\w+\s+FROM)\b", re.IGNORECASE)
_MAY_WRITE = re.compile(r"open\(|\.(?:to_|save|write)|save|dump\(|shutil\.|os\.(?:rename|replace|link|symlink|remove)"
                        r"|unlink\(|touch\(")
_SHELL_LINE = re.compile(r"^\s*(?:\w+\s*=\s*)?!(?P<command>.*)$", re.MULTILINE)  # `!cmd`, `files = !ls`
_SHELL_CELL = re.compile(r"\A\s*%%(?:bash|sh|script\b[^\n]*)\n(?P<command>.*)", re.DOTALL)
_REDIRECT = re.compile(r"(?<![<>&0-9])[0-9]?>>?\s*(?P<path>[^\s;|&<>()]+)")
_WRITEFILE = re.compile(r"\A\s*%%writefile(?:\s+-a)?\s+(?P<path>\S+)")
_REMOVE = re.compile(r"(?:^|[;&|\n]\s*)rm\s+(?P<args>[^;&|<>\n]*)")  # `!rm -f a.txt b.txt`
_GLOB = re.compile(r"[\w./~-]*[*?][\w./*?-]*")
_NUMBER = re.compile(r"[-+]?[\d.]+(?:e[-+]?\d+)?j?", re.IGNORECASE)
_CD = re.compile(r"(?:^|(?<=[;&|(\n]))[ \t]*(?:cd|pushd|popd)(?![^\s;&|()])(?:[ \t]+(?P<folder>[^\s;&|()<>]+))?"
                 r"[^;&|()\n]*(?=$|[;&|)\n])")  # `cd sub &&`, `pushd sub >/dev/null &&`
_MAGIC_CD = re.compile(r"^\s*%cd\s+(?P<folder>[^\s;&|]+)\s*$")  # `%cd data`: later `!` lines run there
_CWD = re.compile(rf"\bcwd\s*=\s*{_PATH}")  # a process's folder: `subprocess.run(..., cwd="tools")`
# an option naming what a program writes: one of its words (`--out`, `--output-file`, `save_path`,
# `--model-out`, `--outdir`), not a word holding one (`--layout`, `--checkout`)
_OUTPUT_WORDS = {"o", "out", "output", "outfile", "outdir", "outpath", "save", "dest", "destination", "export", "dump"}
_OUTPUT_ARGUMENT = re.compile(rf"""(?:\[\s*['"](?P<program>[\w.+-]+)['"][^\]]*?)?"""
                             rf"""(['"])-(?P<option>-?[\w-]+)\2\s*,\s*{_PATH}""")  # ["gcc", ..., "-o", "a.out"]
_NOT_OUTPUT_WORDS = {"format", "fmt", "type", "level", "mode", "every", "freq", "frequency", "interval", "steps",
                     "only", "encoding", "width", "precision", "verbosity", "best", "top", "limit"}
_DASH_O_OUTPUT = {"gcc", "g++", "cc", "c++", "clang", "clang++", "gfortran", "nvcc", "ld", "rustc", "go", "sort",
                  "curl", "pandoc", "jupyter", "nuitka", "pyinstaller", "f2py"}  # whose `-o X` is what they write
_SEPARATORS = {"&&", "||", ";", "|", "&", "(", ")", "|&"}
_COMMAND_STRING = re.compile(r"""\b(?:os\.system|os\.popen|subprocess\.(?:run|call|check_call|check_output|Popen))"""
                             r"""\(\s*(?P<q>['"])(?P<command>[^'"\n\x00]{1,4096})(?P=q)""")
_CD_OR_PARENTHESIS = re.compile(rf"{_CD.pattern}|(?P<open>\()|(?P<close>\))")
_PUNCTUATION = re.compile(r"[;&|<>()]+|[0-9]?>>?|&>")


def named_texts(source: str, quoted_only: bool = False) -> Iterator[str]:
    """Every quoted text and every word that may be a path (it holds `/` or `.`) in `source`; a
    quoted one also in each folder a process is started in (`subprocess.run([...], cwd="tools")`)."""
    folders = [f for m in _CWD.finditer(source) if (f := _path(m))] if "cwd" in source else []
    for text in _quoted_texts(source):
        yield text
        for folder in folders:
            if ("/" in text or "." in text) and not text.startswith(("/", "~")) and text != folder:
                yield os.path.normpath(os.path.join(folder, text))
    if quoted_only:
        return
    for match in _WORD.finditer(source):
        word = match.group(0)
        if ("/" in word or "." in word) and not _NUMBER.fullmatch(word):
            yield word


@functools.lru_cache(maxsize=32)
def _quoted_texts(source: str) -> tuple[str, ...]:
    """The texts of `source`'s string literals of one line (`"my data.csv"`; `"O'Brien.csv"` and
    `'a\\tb.csv'` as Python reads them), and the quoted texts inside them (`"select * from 'x.csv'"`,
    `os.system("cat 'a b.txt'")`): never the code between two literals, nor a comment's text. Kept
    for the next scan of the same cell (`named_texts`, `named_globs`: three per step, and the
    imports cell with every step)."""
    texts = []
    for match in _LITERAL.finditer(source):
        body = match.group(match.lastgroup) if match.lastgroup else None
        if not body:  # a comment, or `''`
            continue
        if _PLAIN.fullmatch(body):  # (most: the text is the literal's value, but for an f-string's braces)
            texts.append(body)
            continue
        value = _line_text(match, body)
        if value:
            texts.append(value)
        if "'" in body or '"' in body:
            texts.extend(m.group(2) for m in _INNER_QUOTED.finditer(body))
    return tuple(texts)


# an escape that is a line break (`"done\n"`, not `"C:\\new"`)
_LINE_BREAK_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\[nr]")
_QUOTES = {"s3": "'''", "d3": '"""', "s1": "'", "d1": '"'}  # (`_LITERAL`'s groups)


def _line_text(match: re.Match, body: str) -> str | None:
    """The text of a literal matched by `_LITERAL` that holds a quote or an escape (`"O'Brien.csv"`,
    `'a\\tb.csv'`), as Python reads it, when it may name a file: a text (no f-string, no bytes) of one
    line of at most 4,096 characters. Its escapes are read only when none is a line break (`"done\\n"`:
    most escapes in cells)."""
    prefix = match.group(0)[:match.start(match.lastgroup) - match.start()].lower()
    if "f" in prefix or "b" in prefix or len(body) > 4096 or "\n" in body:
        return None
    if "r" in prefix or "\\" not in body:
        return body  # (a raw literal's text is as written: `r"C:\new"`)
    if _LINE_BREAK_ESCAPE.search(body):
        return None
    value = _unescaped(body, _QUOTES[match.lastgroup])
    return value if value and "\n" not in value and "\r" not in value and "\x00" not in value else None


def _path(match: re.Match) -> str | None:
    """The name a literal matched by `_PATH` holds: as written when it is raw or has no escape (most),
    else as Python reads it; None when it holds none (`"\\x4"`)."""
    text = match["path"]
    if "\\" not in text or match["prefix"] in ("r", "R"):
        return text
    return _unescaped(text, match["q"])


# An escape Python warns of as it reads it (`"C:\data"`, `"\400"`: the cell's run warned of it), or a
# backslash before a character beyond ASCII
_WARNED_ESCAPE = re.compile(r"""\\(?:[^\n\\'"abfnrtv0-7xNuU]|[4-7][0-7]{2})""")


def _unescaped(body: str, quote: str) -> str | None:
    """The text of a literal (not raw) whose text between its quotes is `body`, read as Python reads
    it; None for one Python refuses (`"\\x4"`) or no file can have (`"\\ud800"`: no name the system
    takes). Read, never run: by the decoder Python's own reading of escapes uses (`unicode_escape`;
    other characters than latin-1's escaped before, as `\\u2028`), or, when an escape is one Python
    warns of, by `ast.literal_eval` (the decoder would warn too)."""
    try:
        if _WARNED_ESCAPE.search(body) is None:  # (every backslash starts an escape: none is added before)
            value = body.encode("latin-1", "backslashreplace").decode("unicode_escape")
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                value = ast.literal_eval(quote + body + quote)
        os.fsencode(value)
    except (SyntaxError, ValueError, MemoryError, RecursionError):  # (a Unicode error is a ValueError)
        return None
    return value


def named_globs(source: str) -> Iterator[str]:
    """Wildcard names in `source`'s quoted texts and shell commands (`"data/*.csv"`, `!cat logs/*.txt`)."""
    for text in _quoted_texts(source):
        if "*" in text or "?" in text:  # (a lone `*` among words is no file's: `"select * from t"`, `"a * b"`)
            words = any(c.isspace() for c in text)
            yield from (g for m in _GLOB.finditer(text) if (g := m.group(0)).strip("*?") or not words)
    for text in _shell_commands(source):
        if "*" in text or "?" in text:
            yield from (m.group(0) for m in _GLOB.finditer(text))


def shell_words(source: str) -> Iterator[str]:
    """The words of the shell commands in `source` (`!cmd`, `%%bash`): there a name is a file's.
    Read as the shell reads them (`my\\ data.csv` is one word), and after `cd DIR` relative to DIR."""
    for command in _shell_commands(source):
        for folder, segment in _shell_segments(command):
            for word in _shell_split(segment):
                yield _in_folder(folder, word)


def _shell_split(segment: str) -> list[str]:
    return [w for w in _shell_tokens(segment) if not _PUNCTUATION.fullmatch(w)]


def _shell_tokens(segment: str) -> list[str]:
    """Words and operators (`&&`, `|`, `>`), as the shell reads them."""
    try:
        lexer = shlex.shlex(segment, posix=True, punctuation_chars=";&|<>()")
        lexer.whitespace_split, lexer.commenters = True, ""
        words = list(lexer)
    except ValueError:  # an open quote: the words as they are written
        words = [m.group(0) for m in _WORD.finditer(segment)]
    return [w for w in words if w and len(w) <= 4096 and "\x00" not in w]


def _shell_segments(command: str) -> Iterator[tuple[str | None, str]]:
    """(the folder a `cd` moved to, relative to the notebook's, or None; the command's text run
    there). After a `cd` to a folder not written out (`cd $DIR`, `cd -`), the notebook's, as before."""
    folder, start, outer = None, 0, []
    for m in _CD_OR_PARENTHESIS.finditer(command):
        yield folder, command[start:m.start()]
        start = m.end()
        if m["open"]:  # a subshell: its `cd` ends with it
            outer.append(folder)
            continue
        if m["close"]:
            folder = outer.pop() if outer else folder
            continue
        target = m["folder"]
        if not target or target == "~" or target.startswith(("$", "-", "{", "`")):
            folder = None
        else:
            folder = os.path.normpath(os.path.join(folder or "", target))
    yield folder, command[start:]


def _in_folder(folder: str | None, name: str) -> str:
    if folder is None or name.startswith(("/", "~", "-", "$", "{")) or ("." not in name and "/" not in name):
        return name  # (a word without . or / names no file here: `cat`, `-l`)
    return os.path.normpath(os.path.join(folder, name))


def _outputs(segment: str) -> Iterator[str]:
    """The files (and folders) the commands in `segment` say they write: the value of an output
    option (`--out X`, `--output=X`, `save_path=X`, `--output-dir D`; `-o X` of the programs whose
    `-o` is that: compilers, `sort`, `curl`, `pandoc`; `wget -O X`, `wget -P D`), `tee`'s files,
    the target of `cp`/`mv` (also `gsutil cp`, `aws s3 cp`, `cp -t D`), the archive `tar -czf X`
    makes, the folder `mkdir` makes. A program's own options are guesses: a file so named and not
    written is nothing."""
    for line in segment.split("\n"):
        for words in _commands(_shell_tokens(line)):
            yield from _command_outputs(words)


def _commands(tokens: list[str]) -> Iterator[list[str]]:
    command: list[str] = []
    for token in tokens:
        if token in _SEPARATORS or _PUNCTUATION.fullmatch(token) and token.rstrip("<>&0123456789") == "":
            if token in _SEPARATORS:
                yield command
                command = []
            else:
                command.append(token)  # (a redirect: `_REDIRECT` sees its file)
        else:
            command.append(token)
    yield command


def _command_outputs(words: list[str]) -> Iterator[str]:
    program = os.path.basename(words[0]) if words else ""
    for i, word in enumerate(words[1:], 1):
        name, equals, value = word.partition("=")
        following = words[i + 1] if i + 1 < len(words) else None
        if equals and _is_output_option(name) and value and "$" not in value:
            yield value
        elif following is None or following.startswith(("-", "$", ">", "<", "|")):
            continue
        elif (word.startswith("--") and _is_output_option(word)) or (word == "-o" and program in _DASH_O_OUTPUT) \
                or (word in ("-O", "-P") and program == "wget") or (word == "-t" and program in ("cp", "mv")) \
                or (program == "curl" and re.fullmatch(r"-[a-zA-Z]*o", word)) \
                or (program == "tar" and re.fullmatch(r"-?[a-zA-Z]*c[a-zA-Z]*f", word)):
            yield following
    if program == "tee" or program == "mkdir":
        yield from (w for w in words[1:] if not w.startswith(("-", ">", "<")))
    moving = next((i for i, w in enumerate(words[:3]) if w in ("cp", "mv")), None)  # (`gsutil cp`, `aws s3 cp`)
    if moving is not None and "-t" not in words:
        arguments = [w for w in words[moving + 1:] if not w.startswith(("-", ">", "<"))]
        if len(arguments) >= 2:
            yield arguments[-1]


def _is_output_option(name: str) -> bool:
    words = set(re.split(r"[-_]", name.lstrip("-").lower()))
    return bool(_OUTPUT_WORDS & words) and not _NOT_OUTPUT_WORDS & words


def _shell_commands(source: str) -> list[str]:
    """The shell commands of `source`: its `!` lines, each after the `%cd` before it (`cd DIR &&`),
    and a `%%bash` cell's script."""
    if "!" not in source and "%%" not in source:
        return []
    if "%cd" not in source:
        return [m["command"] for m in (*_SHELL_LINE.finditer(source), *_SHELL_CELL.finditer(source))]
    commands, folder = [], None
    for line in source.splitlines():
        if (moved := _MAGIC_CD.match(line)) is not None:
            folder = None if moved["folder"] in ("~", "-") else os.path.join(folder or "", moved["folder"])
        elif (shell := _SHELL_LINE.match(line)) is not None:
            commands.append(f"cd {shlex.quote(os.path.normpath(folder))} && {shell['command']}" if folder
                            else shell["command"])
    return commands + [m["command"] for m in _SHELL_CELL.finditer(source)]


def file_writes(source: str) -> dict[str, bool]:
    """The files `source` writes under a name it writes out, normalised (`normalised`), each with
    whether it only appends to it (`open(P, "a")`, `>> P`, `%%writefile -a P`: a log)."""
    found: dict[str, bool] = {}

    def wrote(path, appends=False):
        found[path] = found.get(path, True) and appends

    if _MAY_WRITE.search(source):  # (one search: most cells write no file)
        for pattern in _WRITES:
            for m in pattern.finditer(source):
                if path := _path(m):
                    wrote(path, (m.groupdict().get("mode") or "").endswith("a"))
    for command in _shell_commands(source):
        for folder, segment in _shell_segments(command):
            for m in _REDIRECT.finditer(segment):
                wrote(_in_folder(folder, m["path"]), m.group(0).lstrip("0123456789").startswith(">>"))
            for m in _REMOVE.finditer(segment):
                for word in m["args"].split():
                    if not word.startswith("-"):
                        wrote(_in_folder(folder, word))
            for path in _outputs(segment):
                wrote(_in_folder(folder, path))
    if "os." in source or "subprocess." in source:  # os.system("python train.py --out m.pkl")
        for m in _COMMAND_STRING.finditer(source):
            for path in _outputs(m["command"]):
                wrote(path)
    if '"-' in source or "'-" in source:
        for m in _OUTPUT_ARGUMENT.finditer(source):  # subprocess.run(["python", "train.py", "--out", "m.pkl"])
            if _is_output_option(m["option"]) and (m["option"] != "o" or m["program"] in _DASH_O_OUTPUT) \
                    and (path := _path(m)):
                wrote(path)
    for m in _WRITEFILE.finditer(source):
        wrote(m["path"], "-a" in m.group(0).split())
    for path in database_edits([source]):
        wrote(path)
    return {normalised(path): appends for path, appends in found.items() if path not in ("/dev/null", "&1", "&2")}


_EDITS = re.compile(rf"\bopen\(\s*{_PATH}\s*,\s*(?:mode\s*=\s*)?['\"][bt]*r[bt]*\+")  # `open(P, "r+")`, `"rb+"`


def edited_in_place(source: str) -> set[str]:
    """The files `source` opens to change in place (`open(P, "r+")`), normalised: what they hold
    afterwards depends on what they held, as for a file appended to. A database it changes too
    (`database_edits`)."""
    edited = database_edits([source])
    if "+" not in source:
        return edited
    return edited | {normalised(path) for m in _EDITS.finditer(source) if (path := _path(m))}


def database_edits(sources: list[str]) -> set[str]:
    """The database files the cells of one step connect to (`_DATABASE`), normalised, when their
    text changes a database (`DATABASE_CHANGES`: the connection and the change may be in two cells).
    A step that only queries one reads it."""
    if not any("connect(" in s or "open(" in s or "sqlite:" in s for s in sources):  # (most steps: none)
        return set()
    found = {normalised(path) for source in sources for m in _DATABASE.finditer(source)
             if (path := _path(m) if m["path"] else m["url"])}
    found.discard(":memory:")  # (no file)
    return found if found and any(DATABASE_CHANGES.search(source) for source in sources) else set()


def written_paths(source: str) -> set[str]:
    """The files `source` writes under a name it writes out (`file_writes`)."""
    return set(file_writes(source))


def normalised(text: str) -> str:
    """A name as the same file is named elsewhere in the notebook (`./out.csv` is `out.csv`)."""
    return os.path.normpath(os.path.expanduser(text.strip()))


@dataclass
class FileOrder:
    """Step → earlier step → the files it comes after that step for."""

    handed_on: dict[str, dict[str, list[str]]]  # it names a file the earlier step writes
    replaces: dict[str, dict[str, list[str]]]  # it writes anew (or appends to) a file the earlier step read
    written: dict[str, list[str]] = field(default_factory=dict)  # file → the steps that write it, in order


def file_edges(steps: list[tuple[str, list[str]]]) -> dict[str, dict[str, list[str]]]:
    """The steps each step comes after because it names a file they write (`file_order`)."""
    return file_order(steps).handed_on


def file_order(steps: list[tuple[str, list[str]]], imported=None) -> FileOrder:
    """`steps`: (name, its cells' sources) in notebook order. Each step comes after the last earlier
    writer of each file its cells name (and, given `imported`, the files of the notebook's own modules
    they import and the files those name: `module_files.imported_files` of the cells); after every
    earlier step that writes into a folder the file
    is in (`--output-dir runs/exp1`, then `runs/exp1/metrics.json`) or, for a folder or wildcard it
    names (`glob("models/*.pkl")`), every earlier step that writes in it: a folder gathers what each
    writer puts there. A step that writes a file anew comes after the earlier steps that named the
    version it replaces (they read it as a run top to bottom has them read it). Appending to a log
    orders nothing (steps that log stay parallel); appending to a file an earlier step writes builds
    it on, and counts as writing it (`file_versions`)."""
    writes = [(name, step_writes(sources)) for name, sources in steps]
    files = {path for _, written in writes for path in written}
    parts = {part for path in files for part in path.split("/")}
    wrote: dict[str, list[str]] = {}  # path → the steps so far that write it, in order
    inside: dict[str, list[str]] = {}  # folder → the steps so far that write a path in it
    named_since: dict[str, list[str]] = {}  # path → the steps that named it since it was last written
    order = FileOrder({}, {})
    for (name, sources), (_, written) in zip(steps, writes):
        named = named_paths(sources, parts)
        if imported is not None and parts:  # (a file a step writes, as named: no folder or wildcard of a
            through = imported(sources)      # module's, which every step importing it would come after)
            named |= {path for path in through.paths | named_paths(list(through.texts.values()), parts)
                      if path in files}
        for path in sorted(named) if wrote else ():
            for writer in _writers_of(path, wrote, inside):
                if writer != name:
                    _add(order.handed_on, name, writer, path)
        counted = [path for path, appends in written.items() if not appends or path in wrote]
        for path in counted:
            for reader in named_since.pop(path, ()):
                if reader != name and path not in order.handed_on.get(name, {}).get(reader, ()):
                    _add(order.replaces, name, reader, path)
            if wrote.setdefault(path, [])[-1:] != [name]:
                wrote[path].append(name)
            for folder in _folders_of(path):
                if name not in inside.setdefault(folder, []):
                    inside[folder].append(name)
        for path in named.difference(counted):
            named_since.setdefault(path, []).append(name)
    order.written = wrote
    return order


def _add(edges: dict, step: str, earlier: str, path: str) -> None:
    files = edges.setdefault(step, {}).setdefault(earlier, [])
    if path not in files:
        files.append(path)


def named_paths(sources: list[str], parts: set[str]) -> set[str]:
    """The texts of `sources` that may name a file (`named_texts`), normalised, among those with a
    part in `parts` (of the paths some step writes: a cheap test first, as most words name none)."""
    if not parts:
        return set()
    return {normalised(t) for source in sources for t in named_texts(source)
            if parts.intersection(t.strip().split("/"))}  # (as `normalised`: `" out.csv"` is `out.csv`)


def step_writes(sources: list[str]) -> dict[str, bool]:
    """The files a step's cells write (`file_writes`), each with whether the step only appends to it;
    and the databases it changes (`database_edits`)."""
    writes: dict[str, bool] = {}
    for source in sources:
        for path, appends in file_writes(source).items():
            writes[path] = writes.get(path, True) and appends
    for path in database_edits(sources) if len(sources) > 1 else ():
        writes[path] = False
    return writes


def _writers_of(path: str, wrote: dict[str, list[str]], inside: dict[str, list[str]]) -> list[str]:
    """The steps a reader of `path` comes after: its last writer, every writer of a folder it is in
    (`--output-dir runs`), and, for a folder or a wildcard's folder, every step that writes in it."""
    folder = re.split(r"[*?\[]", path, maxsplit=1)[0].rstrip("/")  # (a file's own name: nothing is in it)
    writers = wrote[path][-1:] if path in wrote else []
    writers += [w for ancestor in _folders_of(path) for w in wrote.get(ancestor, ())]
    writers += inside.get(folder, []) if folder else []
    return list(dict.fromkeys(writers))


def _folders_of(path: str) -> list[str]:
    """`a/b/c.txt`: `a`, `a/b`."""
    pieces = path.split("/")
    return ["/".join(pieces[:i]) for i in range(1, len(pieces)) if pieces[:i] != [""]]
