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
as a string; steps that only read a file stay parallel.
A name built as the step runs (`f"out/{day}.csv"`) makes no edge: use `after:`.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Iterator

_QUOTED = re.compile(r"""(['"])([^'"\\\n\x00]{1,4096})\1""")  # `"my data.csv"`, spaces and all
_WORD = re.compile(r"""[^\s'"`()\[\]{},;=<>|&*?\\\x00]{1,4096}""")  # `!wc -l data/x.csv`, `prep.py`
_PATH = r"""(?P<q>['"])(?P<path>[^'"\\\n\x00]{1,4096})(?P=q)"""
_WRITES = [re.compile(pattern) for pattern in (
    rf"\bopen\(\s*{_PATH}\s*,\s*(?:mode\s*=\s*)?['\"](?P<mode>[rbt]*[wax+])",
    rf"\.(?:to_csv|to_parquet|to_json|to_pickle|to_excel|to_feather|to_hdf|to_orc|to_stata|to_xml|to_html"
    rf"|to_latex|to_markdown|to_netcdf|to_zarr|savefig|save|save_model|write_csv|write_parquet|write_json"
    rf"|write_ndjson|write_ipc|write_excel|write_database|write_delta)\(\s*(?:\w+\s*=\s*)?{_PATH}",
    rf"\bPath\(\s*{_PATH}\s*\)\s*\.\s*(?:write_text|write_bytes|touch|open\(\s*['\"][rb]*[wax+])",
    rf"\b(?:np|numpy)\.(?:save|savez|savez_compressed|savetxt)\(\s*{_PATH}",
    rf"\b(?:joblib\.dump|torch\.save|pickle_dump|cloudpickle\.dump)\([^,()]+,\s*{_PATH}",
    rf"\b(?:shutil\.(?:copy|copy2|copyfile|move)|os\.(?:rename|replace|link|symlink))\([^,()]+,\s*{_PATH}",
    rf"\b(?:os\.(?:remove|unlink)|shutil\.rmtree)\(\s*{_PATH}",  # a removal changes the file too
    rf"\bPath\(\s*{_PATH}\s*\)\s*\.\s*unlink\(",
)]
_MAY_WRITE = re.compile(r"open\(|\.(?:to_|save|write)|save|dump\(|shutil\.|os\.(?:rename|replace|link|symlink|remove)"
                        r"|unlink\(")
_SHELL_LINE = re.compile(r"^\s*(?:\w+\s*=\s*)?!(?P<command>.*)$", re.MULTILINE)  # `!cmd`, `files = !ls`
_SHELL_CELL = re.compile(r"\A\s*%%(?:bash|sh|script\b[^\n]*)\n(?P<command>.*)", re.DOTALL)
_REDIRECT = re.compile(r"(?<![<>&0-9])[0-9]?>>?\s*(?P<path>[^\s;|&<>()]+)")
_WRITEFILE = re.compile(r"\A\s*%%writefile(?:\s+-a)?\s+(?P<path>\S+)")
_REMOVE = re.compile(r"(?:^|[;&|\n]\s*)rm\s+(?P<args>[^;&|<>\n]*)")  # `!rm -f a.txt b.txt`
_GLOB = re.compile(r"[\w./~-]*[*?][\w./*?-]*")
_NUMBER = re.compile(r"[-+]?[\d.]+(?:e[-+]?\d+)?j?", re.IGNORECASE)
_CD = re.compile(r"(?:^|(?<=[;&|(\n]))[ \t]*(?:cd|pushd|popd)(?![^\s;&|()])(?:[ \t]+(?P<folder>[^\s;&|()<>]+))?"
                 r"[^;&|()\n]*(?=$|[;&|)\n])")  # `cd sub &&`, `pushd sub >/dev/null &&`
_CWD = re.compile(rf"\bcwd\s*=\s*{_PATH}")  # a process's folder: `subprocess.run(..., cwd="tools")`
# an option naming what a program writes: one of its words (`--out`, `--output-file`, `save_path`,
# `--model-out`, `--outdir`), not a word holding one (`--layout`, `--checkout`)
_OUTPUT_WORDS = {"o", "out", "output", "outfile", "outdir", "outpath", "save", "dest", "destination", "export", "dump"}
_OUTPUT_ARGUMENT = re.compile(rf"""(['"])-(?P<option>-?[\w-]+)\1\s*,\s*{_PATH}""")  # ["--out", "m.pkl"]
_SEPARATORS = {"&&", "||", ";", "|", "&", "(", ")"}
_PUNCTUATION = re.compile(r"[;&|<>()]+|[0-9]?>>?|&>")


def named_texts(source: str, quoted_only: bool = False) -> Iterator[str]:
    """Every quoted text and every word that may be a path (it holds `/` or `.`) in `source`; a
    quoted one also in each folder a process is started in (`subprocess.run([...], cwd="tools")`)."""
    folders = [m["path"] for m in _CWD.finditer(source)] if "cwd" in source else []
    for match in _QUOTED.finditer(source):
        yield match.group(2)
        for folder in folders:
            text = match.group(2)
            if ("/" in text or "." in text) and not text.startswith(("/", "~")) and text != folder:
                yield os.path.normpath(os.path.join(folder, text))
    if quoted_only:
        return
    for match in _WORD.finditer(source):
        word = match.group(0)
        if ("/" in word or "." in word) and not _NUMBER.fullmatch(word):
            yield word


def named_globs(source: str) -> Iterator[str]:
    """Wildcard names in `source`'s quoted texts and shell commands (`"data/*.csv"`, `!cat logs/*.txt`)."""
    for text in (*(m.group(2) for m in _QUOTED.finditer(source)), *_shell_commands(source)):
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
    folder, start = None, 0
    for m in _CD.finditer(command):
        yield folder, command[start:m.start()]
        target, start = m["folder"], m.end()
        if not target or target == "~" or target.startswith(("$", "-", "{", "`")):
            folder = None
        else:
            folder = os.path.normpath(os.path.join(folder or "", target))
    yield folder, command[start:]


def _in_folder(folder: str | None, name: str) -> str:
    if folder is None or name.startswith(("/", "~", "-", "$", "{")) or ("." not in name and "/" not in name):
        return name  # (a word without . or / names no file here: `cat`, `-l`)
    return os.path.normpath(os.path.join(folder, name))


def _outputs(words: list[str]) -> Iterator[str]:
    """The files a command's words say it writes: the value of an output option (`-o X`, `--out X`,
    `--output=X`, `save_path=X`), the target of `cp`/`mv` (`cp a b`), the archive `tar -czf X`
    makes. A program's own options are guesses: a file so named and not written is nothing."""
    for i, word in enumerate(words):
        name, equals, value = word.partition("=")
        if equals and _is_output_option(name) and value:
            yield value
        elif i + 1 < len(words) and (word in ("-o", "-O") or (word.startswith("--") and _is_output_option(word)) or (
                word.startswith("-") and not word.startswith("--") and "f" in word and "c" in word
                and i and words[i - 1] == "tar")):
            yield words[i + 1]
        elif word in ("cp", "mv", "rsync", "install") and (i == 0 or words[i - 1] in _SEPARATORS):
            arguments = [w for w in words[i + 1:_command_end(words, i)] if not w.startswith("-")]
            if len(arguments) >= 2:
                yield arguments[-1]


def _is_output_option(name: str) -> bool:
    return bool(_OUTPUT_WORDS.intersection(re.split(r"[-_]", name.lstrip("-").lower())))


def _command_end(words: list[str], start: int) -> int:
    return next((j for j in range(start + 1, len(words)) if words[j] in _SEPARATORS), len(words))


def _shell_commands(source: str) -> list[str]:
    if "!" not in source and "%%" not in source:
        return []
    return [m["command"] for m in (*_SHELL_LINE.finditer(source), *_SHELL_CELL.finditer(source))]


def file_writes(source: str) -> dict[str, bool]:
    """The files `source` writes under a name it writes out, normalised (`normalised`), each with
    whether it only appends to it (`open(P, "a")`, `>> P`, `%%writefile -a P`: a log)."""
    found: dict[str, bool] = {}

    def wrote(path, appends=False):
        found[path] = found.get(path, True) and appends

    if _MAY_WRITE.search(source):  # (one search: most cells write no file)
        for pattern in _WRITES:
            for m in pattern.finditer(source):
                wrote(m["path"], (m.groupdict().get("mode") or "").endswith("a"))
    for command in _shell_commands(source):
        for folder, segment in _shell_segments(command):
            for m in _REDIRECT.finditer(segment):
                wrote(_in_folder(folder, m["path"]), m.group(0).lstrip("0123456789").startswith(">>"))
            for m in _REMOVE.finditer(segment):
                for word in m["args"].split():
                    if not word.startswith("-"):
                        wrote(_in_folder(folder, word))
            for path in _outputs(_shell_tokens(segment)):
                wrote(_in_folder(folder, path))
    if '"-' in source or "'-" in source:
        for m in _OUTPUT_ARGUMENT.finditer(source):  # subprocess.run(["python", "train.py", "--out", "m.pkl"])
            if _is_output_option(m["option"]):
                wrote(m["path"])
    for m in _WRITEFILE.finditer(source):
        wrote(m["path"], "-a" in m.group(0).split())
    return {normalised(path): appends for path, appends in found.items() if path not in ("/dev/null", "&1", "&2")}


def written_paths(source: str) -> set[str]:
    """The files `source` writes under a name it writes out (`file_writes`)."""
    return set(file_writes(source))


def normalised(text: str) -> str:
    """A name as the same file is named elsewhere in the notebook (`./out.csv` is `out.csv`)."""
    return os.path.normpath(os.path.expanduser(text.strip()))


def file_edges(steps: list[tuple[str, list[str]]]) -> dict[str, dict[str, list[str]]]:
    """`steps`: (name, its cells' sources) in notebook order. Step → the earlier steps it comes
    after for files, each with the files: the last earlier writer of each file its cells name."""
    writer: dict[str, str] = {}  # file → the last step so far that writes it
    endings: set[str] = set()  # their base names: a cheap test first, as most words name no such file
    edges: dict[str, dict[str, list[str]]] = {}
    for name, sources in steps:
        if writer:
            named = {normalised(t) for source in sources for t in named_texts(source)
                     if t.rstrip("/").rpartition("/")[2] in endings}
            for path in sorted(named & writer.keys()):
                if writer[path] != name:
                    edges.setdefault(name, {}).setdefault(writer[path], []).append(path)
        for source in sources:  # (appending to a log orders nothing: steps that log stay parallel)
            for path in (path for path, appends in file_writes(source).items() if not appends):
                writer[path] = name
                endings.add(os.path.basename(path))
    return edges
