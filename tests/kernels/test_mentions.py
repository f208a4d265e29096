"""kernels/mentions.py: the files a step's cells name as text."""

from __future__ import annotations

import os

from nbscale.kernels import mentions
from nbscale.kernels.mentions import named_files, step_texts


def test_quoted_names_shell_words_written_and_absent_files_are_found(tmp_path):
    for name in ("data.csv", "my data.csv", "sub/x.parquet", "prep.py"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("x")
    sources = ['df = pl.read_csv("data.csv")\nother = open("my data.csv")\ndf.to_csv("out/new.csv")',
               "!python prep.py --input sub/x.parquet --extra later.txt > sorted.txt\nsub.method(0.5)",
               f"t = duckdb.sql(\"select * from '{tmp_path / 'data.csv'}'\")"]
    found, cut = named_files(sources, str(tmp_path))
    assert not cut
    assert found == {str(tmp_path / n): w for n, w in [
        ("out/new.csv", "writes"), ("sorted.txt", "writes"), ("data.csv", "names"), ("my data.csv", "names"),
        ("prep.py", "names"), ("sub/x.parquet", "names"), ("later.txt", "names")]}  # (later.txt: absent, a shell word)
    assert named_files(["!echo x >> run.log\nopen('b.log', 'a')"], str(tmp_path))[0] == {
        str(tmp_path / "run.log"): "appends", str(tmp_path / "b.log"): "appends"}
    assert named_files(["x = 'sub'\ny = df.head\nz = '.'\nn = 0.5"], str(tmp_path)) == ({}, False)


def test_home_names_parameters_and_the_cap_on_texts_looked_up(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "cfg.json").write_text("{}")
    assert named_files(["c = load('~/cfg.json')"], "/")[0] == {str(tmp_path / "cfg.json"): "names"}
    assert step_texts(["!wc -l {DATA}"], ["import os"], {"DATA": "cfg.json", "n": 3}) == [
        "import os", "!wc -l {DATA}", "'cfg.json'"]
    monkeypatch.setattr(mentions, "MAX_CANDIDATES", 3)
    many = "\n".join(f"v{i} = 'f{i}.txt'" for i in range(10)) + "\nlast = 'cfg.json'"
    assert named_files([many], str(tmp_path))[1] is True


def test_wildcards_and_folders_inside_quotes_and_shell_commands_are_named(tmp_path):
    from nbscale.kernels.mentions import named_globs_and_folders

    (tmp_path / "data").mkdir()
    sources = ["!cat data/*.csv | wc -l\nfiles = glob('logs/**/*.txt')", "names = !ls data/\nx = a * b"]
    patterns, folders = named_globs_and_folders(sources, str(tmp_path))
    assert patterns == ["logs/**/*.txt", "data/*.csv"] and folders == [str(tmp_path / "data")]


def test_a_named_wildcard_outside_the_notebook_folder_is_not_searched(tmp_path):
    from nbscale.kernels.dependencies import Recording

    (tmp_path / "p1.csv").write_text("1")
    recording = Recording(str(tmp_path))
    recording.mention_globs(["/**/*.csv", "~/*.csv", "../*.csv", "*.csv"], [])
    assert [g[2] for g in recording.globs] == ["*.csv"] and list(recording.mentioned) == [str(tmp_path / "p1.csv")]


def test_texts_among_values_are_taken_whole_bounded_and_without_running_the_values_code(tmp_path):
    import json
    from pathlib import Path

    from nbscale.kernels.mentions import value_names, value_texts

    class Hostile(str):
        def __str__(self):
            raise AssertionError("a value's own code ran")

    class Items(list):
        def __iter__(self):
            raise AssertionError("a value's own code ran")

    class OwnPath(type(Path())):
        def __str__(self):
            raise AssertionError("a value's own code ran")

    values = ["a.csv", Path("b c.txt"), {"deep": [("x/y.bin", {"k": ["too/deep.bin"]})], "key.csv": 1},
              Hostile("h.csv"), Items(["in/items.csv"]), "two\nlines.csv", "x" * 5000, "plain words", 3.5,
              b"bytes.csv", "x\x00.csv", Path("nul\x00.csv"), json.loads('"\\ud800.csv"'), OwnPath("own.csv")]
    # level by level: the top level's texts first, then a dict's keys and values, then deeper
    assert value_texts(values) == ["a.csv", "b c.txt", "h.csv", "plain words", "deep", "key.csv", "in/items.csv",
                                   "x/y.bin"]
    assert value_texts([[f"f{i}.csv" for i in range(5000)]]) == [f"f{i}.csv" for i in range(mentions.MAX_VALUE_TEXTS)]
    # a name beside a large table of numbers is found, and the table is looked at only so far
    assert value_texts([[[i] * 10 for i in range(10_000)], "late.csv"]) == ["late.csv"]
    (tmp_path / "a.csv").write_text("1")
    (tmp_path / "data").mkdir()
    named, patterns, folders = value_names(
        ["a.csv", "later.csv", "data/*.csv", "missing/dir.csv", "label", "data", "/elsewhere/x.csv"], str(tmp_path))
    # a name not there yet counts (as a quoted one), also in a folder not there yet inside the notebook's
    assert named == {str(tmp_path / n): "names" for n in ("a.csv", "later.csv", "missing/dir.csv")}
    assert patterns == ["data/*.csv"] and folders == [str(tmp_path / "data")]


def test_texts_among_the_values_a_step_made_name_only_the_files_there(tmp_path):
    from nbscale.kernels.mentions import built_files

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x.csv").write_text("1")
    (tmp_path / "y.bin").write_text("1")
    values = ["data/x.csv", ["y.bin", "data"], "data/*.csv", "later.csv", "s3://bucket/y.bin", "v1.2", 7]
    # not a folder (a later step adding a file there would make this one run again), nor a name not
    # there yet (where the step would write), nor a wildcard or a URL
    assert built_files(values, str(tmp_path)) == [str(tmp_path / "data" / "x.csv"), str(tmp_path / "y.bin")]
    assert built_files(values, str(tmp_path), but=["y.bin"]) == [str(tmp_path / "data" / "x.csv")]


def test_the_commands_a_step_starts_name_files_as_they_run(tmp_path):
    from nbscale.kernels.mentions import command_names

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x.csv").write_text("1")
    (tmp_path / "a.csv").write_text("1")
    # --in=a.csv: a.csv of the folder it runs in, not there yet (a process's output, maybe)
    assert command_names(["cat", "x.csv", "--in=a.csv", "-v", 3], str(tmp_path / "data")) == (
        {str(tmp_path / "data" / "x.csv"): "names", str(tmp_path / "data" / "a.csv"): "names"}, [], [])
    assert command_names(["python", "prep.py", "--in=a.csv", "data"], str(tmp_path)) == (
        {str(tmp_path / "prep.py"): "names", str(tmp_path / "a.csv"): "names"}, [], [str(tmp_path / "data")])
    named, patterns, folders = command_names(
        ["/bin/bash", "-c", "cat data/x.csv > out.txt; cat data/*.csv >> run.log; cd data && cat y.csv"], str(tmp_path))
    assert named == {str(tmp_path / "out.txt"): "writes", str(tmp_path / "run.log"): "appends",
                     str(tmp_path / "data" / "x.csv"): "names", str(tmp_path / "data" / "y.csv"): "names"}
    assert patterns == ["data/*.csv"] and folders == []
    x = str(tmp_path / "data" / "x.csv")
    for argv in (["bash", "-lc", "wc -l data/x.csv"], ["/usr/bin/env", "bash", "-e", "-c", "wc -l data/x.csv"],
                 ["timeout", "60", "sh", "-c", 'wc -l < "$1"', "_", "data/x.csv"],
                 ["python", "prep.py", "data.path=data/x.csv"], ["sh", "-c", "python prep.py --input=data/x.csv"]):
        named = command_names(argv, str(tmp_path))[0]
        assert named.get(x) == "names", argv


def test_a_script_a_command_runs_names_the_files_its_text_names(tmp_path):
    # `python tool.py` reads what tool.py opens: no audit hook of the step's sees it, and a cached
    # result outlived a change to it
    from nbscale.kernels.mentions import MAX_SCRIPT_BYTES, command_names

    for name in ("raw.csv", "lookup.json", "list.txt"):
        (tmp_path / name).write_text("1")
    (tmp_path / "tool.py").write_text("import json\nrows = open('raw.csv').read()\n"
                                      "cfg = json.load(open(\"lookup.json\"))\nopen('out.csv', 'w').write(rows)\n")
    (tmp_path / "fetch.sh").write_text("#!/bin/sh\nwc -l list.txt > counts.txt\necho done >> run.log\n")
    named = command_names(["python", "tool.py"], str(tmp_path))[0]
    assert named == {str(tmp_path / "tool.py"): "names", str(tmp_path / "raw.csv"): "names",
                     str(tmp_path / "lookup.json"): "names", str(tmp_path / "out.csv"): "writes"}
    named = command_names(["bash", "fetch.sh"], str(tmp_path))[0]
    assert named == {str(tmp_path / "fetch.sh"): "names", str(tmp_path / "list.txt"): "names",
                     str(tmp_path / "counts.txt"): "writes", str(tmp_path / "run.log"): "appends"}
    # the modules beside a script that it imports, and a module run with -m: their code and their names
    (tmp_path / "tools").mkdir()
    (tmp_path / "tools" / "helpers.py").write_text("def rows():\n    return open('list.txt').read()\n")
    (tmp_path / "report.py").write_text("from tools.helpers import rows\nimport json, os\nprint(rows())\n")
    named = command_names(["python", "report.py"], str(tmp_path))[0]
    assert named == {str(tmp_path / "report.py"): "names", str(tmp_path / "tools" / "helpers.py"): "names",
                     str(tmp_path / "list.txt"): "names"}
    named = command_names(["sh", "-c", "python -m tools.helpers"], str(tmp_path))[0]  # (`tools.helpers`: a name too)
    assert named[str(tmp_path / "tools" / "helpers.py")] == named[str(tmp_path / "list.txt")] == "names"
    # a package run with -m: its __init__, its __main__, and what that imports, relatively or not
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "__main__.py").write_text("from .core import VALUE\nfrom pkg.util import f\n")
    (tmp_path / "pkg" / "core.py").write_text("VALUE = open('raw.csv').read()\n")
    (tmp_path / "pkg" / "util.py").write_text("def f():\n    return 1\n")
    named = command_names(["python", "-m", "pkg"], str(tmp_path))[0]
    assert {str(tmp_path / "pkg" / name) for name in ("__init__.py", "__main__.py", "core.py", "util.py")} | {
        str(tmp_path / "raw.csv")} <= set(named)
    # a name the command gives keeps its use; a script too big, or not text, is not read
    assert command_names(["python", "tool.py", "--out=raw.csv"], str(tmp_path))[0][str(tmp_path / "raw.csv")] == "names"
    (tmp_path / "big.py").write_text("open('raw.csv')\n" + "#" * MAX_SCRIPT_BYTES)
    (tmp_path / "bin.py").write_bytes(b"open('raw.csv')\x00")
    os.mkfifo(tmp_path / "pipe.py")  # (no file: read, it would never end)
    assert command_names(["python", "pipe.py"], str(tmp_path))[0] == {}
    for script in ("big.py", "bin.py"):
        assert command_names(["python", script], str(tmp_path))[0] == {str(tmp_path / script): "names"}


def test_a_proxy_claiming_to_be_a_text_and_a_folder_with_wildcard_characters(tmp_path):
    from nbscale.kernels.mentions import value_names, value_texts

    class Proxy:  # isinstance(Proxy(), str) is True through `__class__`; it is no text
        __class__ = str

    assert isinstance(Proxy(), str) and value_texts([Proxy(), "a.csv"]) == ["a.csv"]
    folder = tmp_path / "runs[1]"  # the folder's name is no wildcard: its files are still named
    folder.mkdir()
    (folder / "a.csv").write_text("1")
    assert value_names(["a.csv"], str(folder))[0] == {str(folder / "a.csv"): "names"}


def test_a_named_wildcard_of_many_double_stars_is_not_walked(tmp_path):
    from nbscale.kernels.dependencies import Recording

    (tmp_path / "p1.csv").write_text("1")
    recording = Recording(str(tmp_path))
    recording.mention_globs(["**/**/**/**/*.csv", "a/**/b/**/c/**/*.csv"], [])
    assert [g[2] for g in recording.globs] == ["**/*.csv"]  # (`**/**` is `**`)
    assert recording.problems == ["a named wildcard with more than two '**' is not followed: a/**/b/**/c/**/*.csv"]


def test_a_database_the_step_changes_is_written_also_when_it_connects_in_another_cell(tmp_path):
    (tmp_path / "res.db").write_bytes(b"")
    db = str(tmp_path / "res.db")
    connect, change, query = "con = sqlite3.connect('res.db')", "df.to_sql('t', con)", "con.execute('select 1')"
    assert named_files([connect + "\n" + change], str(tmp_path))[0][db] == mentions.WRITES
    assert named_files([connect, change], str(tmp_path))[0][db] == mentions.WRITES
    assert named_files([connect, query], str(tmp_path))[0][db] == mentions.NAMES
