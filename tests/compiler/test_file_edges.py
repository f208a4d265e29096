"""compiler/file_edges.py: a step that names a file an earlier step writes comes after it."""

from __future__ import annotations

import ast
import os
import re
import time
import warnings

import pytest
from conftest import make_notebook
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from nbscale.compiler import compile_notebook
from nbscale.compiler.file_edges import (
    _unescaped,
    file_edges,
    file_order,
    file_writes,
    named_globs,
    named_texts,
    normalised,
    written_paths,
)
from nbscale.compiler.why import why


def quoted(source: str) -> list[str]:
    return list(named_texts(source, quoted_only=True))


def test_the_text_between_two_literals_is_no_quoted_name_after_a_backslash_escape():
    # `'a\n'` used to leave its closing quote to open a "literal" running to the next one: `: 1.0, `
    assert quoted(r"d = {'a\n': 1.0, 'b.csv': 2.0}") == ["b.csv"]
    assert quoted(r"x = '\\'; y = 'ok.csv'") == ["\\", "ok.csv"]


def test_an_escaped_quote_ends_no_literal_and_is_read_as_python_reads_it():
    assert quoted(r"""x = 'it\'s'; y = "a\"b"; z = 'data.csv'""") == ["it's", 'a"b', "data.csv"]


def test_raw_byte_and_f_string_literals_are_read_whole_with_their_prefix():
    assert quoted(r"""pattern = r'\d+' + 'x.csv'; p = r'data/raw.csv' + rb"x.bin" + f'{day}/out.csv'""") == [
        "\\d+", "x.csv", "data/raw.csv", "x.bin", "{day}/out.csv"]


def test_a_literal_holding_quotes_names_its_text_of_one_line_and_what_is_quoted_inside_it():
    assert quoted('''q = """say "hi" to 'x.csv'"""\nz = 'b.csv' ''') == [
        'say "hi" to \'x.csv\'', "hi", "x.csv", "b.csv"]
    assert quoted("""sql = '''\nselect * from 'data.csv'\n'''\ndoc = "It's Bob's file" """) == [
        "data.csv", "It's Bob's file"]


def test_a_quote_in_a_comment_opens_no_literal():
    assert quoted("""# don't\nz = 'a.csv'  # it's "here"\nw = "b.csv" """) == ["a.csv", "b.csv"]
    assert list(named_globs("# see 'logs/*.txt'\nfiles = glob('data/*.csv')")) == ["data/*.csv"]


def test_a_lone_wildcard_among_words_is_no_glob():
    # `pd.read_sql("select * from t", con)` listed the folder: the step ran again when any file appeared
    assert list(named_globs('df = pd.read_sql("select * from t", con)\nn = "a * b"')) == []
    assert list(named_globs('a = glob("*")\nb = glob("logs/*.txt")\n!ls *')) == ["*", "logs/*.txt", "*"]


def test_ipython_syntax_and_unclosed_literals_are_read_as_far_as_they_go():
    source = "!ls 'my dir' && echo don't 'x.csv'\n%time y = np.load('arr.npy')\ns = '''never closed"
    assert quoted(source) == ["my dir", "x.csv", "arr.npy"]


def test_written_files_are_found_in_python_calls_shell_redirects_and_writefile():
    source = ("df.to_csv('clean.csv', index=False)\nopen('./log.txt', 'a').write('x')\nnp.save('arr.npy', a)\n"
              "joblib.dump(model, 'model.pkl')\nshutil.copy('a.txt', 'out/b.txt')\nPath('p.txt').write_text('x')\n"
              "open('read.txt').read()\nopen('also_read.txt', 'rb')\nfiles = !sort raw.txt > sorted.txt 2>/dev/null")
    assert written_paths(source) == {"clean.csv", "log.txt", "arr.npy", "model.pkl", "out/b.txt", "p.txt",
                                     "sorted.txt"}
    assert written_paths("%%writefile -a prep.py\nprint(1)") == {"prep.py"}
    assert written_paths("%%bash\ncut -d, -f1 data.csv >> cols.txt\n") == {"cols.txt"}
    assert written_paths("name = f'out/{day}.csv'\ndf.to_csv(name)\nx = 'a > b'") == set()


def test_what_a_program_writes_is_read_off_its_output_options_and_cp_mv_tar():
    assert written_paths("!python train.py --out model.pkl --epochs 3\n!python m.py --output=out/m.bin") == {
        "model.pkl", "out/m.bin"}
    assert written_paths("!cp a.csv b.csv && cat c.csv\n!mv -f x y/z.txt\n!tar -czf data.tgz data") == {
        "b.csv", "y/z.txt", "data.tgz"}
    assert written_paths("!python t.py save_path=ck.pt\n!wget -O f.zip http://x\n!x --model-out m.bin") == {
        "ck.pt", "f.zip", "m.bin"}
    assert written_paths('subprocess.run(["python", "train.py", "--out", "model.pkl"])\nrun(["gcc", "-o", "o.bin"])\n'
                         'run(["grep", "-o", "pattern.x", "f.txt"])') == {"model.pkl", "o.bin"}
    assert written_paths("%cd work\n!python t.py --out m.pkl\n%cd ..\n!cat x.txt > y.txt") == {"work/m.pkl", "y.txt"}
    assert written_paths("!x --layout g.json\n!git checkout main.py\nx = 'a-b'\n!cat a | cp - b.txt") == set()
    # each line of a %%bash cell is a command of its own; `-o` is an output only for the programs it is
    assert written_paths("%%bash\nmkdir -p runs\ncp runs/m.txt models/best.txt\necho copied model\n"
                         "cp data/raw.csv backup/raw.csv\npython train.py --data data/raw.csv") == {
        "runs", "models/best.txt", "backup/raw.csv"}
    assert written_paths("!unzip -o data.zip\n!python -O train.py\n!grep -o foo d.txt\n!ssh -o K=V h\n"
                         "!python x.py --output-format json --save-every 5 --out=$(date).pkl") == set()
    assert written_paths("!cp -t backup a.csv b.csv\n!python t.py 2>&1 | tee logs/t.log\n!curl -sSLo f.zip u\n"
                         "!gsutil cp gs://b/x.csv data/x.csv\n!wget -P dl u\nos.system('python f.py --out e.pkl')") == {
        "backup", "logs/t.log", "f.zip", "data/x.csv", "dl", "e.pkl"}
    assert written_paths("!(cd data && sort raw.txt > sorted.txt); python t.py --out model.txt") == {
        "data/sorted.txt", "model.txt"}  # (a subshell's cd ends with it)


def test_a_folder_gathers_what_every_writer_puts_in_it():
    steps = [("train", ["!python train.py --output-dir runs/exp1"]), ("read", ["m = open('runs/exp1/m.json')"]),
             ("rf", ["!python t.py --out models/rf.pkl"]), ("gbm", ["!python t.py --out models/gbm.pkl"]),
             ("compare", ["fs = glob.glob('models/*.pkl')"]), ("one", ["x = open('models/rf.pkl')"]),
             ("other", ["y = open('elsewhere/rf.pkl')"])]
    edges = file_edges(steps)
    assert edges["read"] == {"train": ["runs/exp1/m.json"]}  # in a folder the writer writes
    assert set(edges["compare"]) == {"rf", "gbm"}  # every writer in the folder a wildcard names
    assert edges["one"] == {"rf": ["models/rf.pkl"]} and "other" not in edges


def test_shell_words_are_read_as_the_shell_reads_them_and_after_cd_in_its_folder():
    from nbscale.compiler.file_edges import shell_words

    assert list(shell_words("!cat my\\ data.csv 'x y.txt' 2>/dev/null || echo none")) == [
        "cat", "my data.csv", "x y.txt", "2", "/dev/null", "echo", "none"]
    assert list(shell_words("!cd sub && wc -l x.csv > out.txt; cd deeper && cat ../y.csv /abs/z.csv")) == [
        "wc", "-l", "sub/x.csv", "sub/out.txt", "cat", "sub/y.csv", "/abs/z.csv"]
    assert list(shell_words("!cd $DIR && cat z.csv\n!cat a.csv")) == ["cat", "z.csv", "cat", "a.csv"]
    assert list(shell_words("!echo 'open quote > q.txt")) == ["echo", "open", "quote", "q.txt"]
    bash = "%%bash\ncd data\nsort a.csv > b.csv\nrm -f c.txt\n"
    assert written_paths(bash) == {"data/b.csv", "data/c.txt"}
    assert written_paths("!cd out && sort ../a.csv > ../b.csv") == {"b.csv"}


def test_a_reader_comes_after_the_last_earlier_writer_and_readers_stay_parallel():
    steps = [("a", ["df.to_csv('clean.csv')"]), ("b", ["x = pd.read_csv('./clean.csv')"]),
             ("c", ["y = pd.read_csv('clean.csv')"]), ("d", ["!sort clean.csv > clean.csv"]),
             ("e", ["z = open('clean.csv').read()"]), ("f", ["w = open('raw.csv').read()"])]
    assert file_edges(steps) == {"b": {"a": ["clean.csv"]}, "c": {"a": ["clean.csv"]}, "d": {"a": ["clean.csv"]},
                                 "e": {"d": ["clean.csv"]}}


def test_the_pipeline_orders_a_file_handed_on_and_says_why(tmp_path):
    nb = make_notebook(tmp_path, [("open('out.txt', 'w').write('1')\nok = 1", ["step:write"]),
                                  ("v = open('out.txt').read()", ["step:read"]), ("w = 2", ["step:other"])])
    pipeline = compile_notebook(nb)
    assert {s.name: s.after for s in pipeline.steps} == {"write": [], "read": ["write"], "other": []}
    assert not [d for d in pipeline.diagnostics if d.severity == "error"]
    assert why(nb, "write", "read") == ["read names the file out.txt, which write writes"]


NAMES_WITH_QUOTES_AND_ESCAPES = ["O'Brien.csv", 'say "hi".csv', "back\\slash.csv", "tab\there.csv",
                                 "line\u2028sep.csv", "both'\".csv"]


def literals(name: str) -> list[str]:
    """`name` written as a literal by `repr`, and in each quote style with every character beyond ASCII
    escaped (`\\u2028`, `\\xe9`)."""
    escaped = name.encode("unicode_escape").decode("ascii")
    return [repr(name), "'" + escaped.replace("'", "\\'") + "'", '"' + escaped.replace('"', '\\"') + '"']


@pytest.mark.parametrize("name", NAMES_WITH_QUOTES_AND_ESCAPES)
def test_a_file_named_with_a_quote_or_an_escape_orders_its_writer_and_reader(name):
    # `_PATH` and the quoted texts took no literal holding a quote or a backslash: the edge was lost
    for writer in literals(name):
        for reader in literals(name):
            for write in (f"open({writer}, 'w').write('1')", f"df.to_csv(path_or_buf={writer})",
                          f"np.save({writer}, a)", f"shutil.copy('src.txt', {writer})"):
                steps = [("a", [write]), ("b", [f"print(open({reader}).read())"])]
                assert file_edges(steps) == {"b": {"a": [name]}}, (write, reader)


def test_a_name_with_a_quote_orders_the_pipeline_and_says_why(tmp_path):
    nb = make_notebook(tmp_path, [("open(\"O'Brien.csv\", 'w').write('1')", ["step:a"]),
                                  ("print(open(\"O'Brien.csv\").read())", ["step:b"])])
    assert compile_notebook(nb).step("b").after == ["a"]
    assert why(nb, "a", "b") == ["b names the file O'Brien.csv, which a writes"]


def test_a_literal_is_read_as_python_reads_it_without_a_warning_and_never_run(tmp_path, monkeypatch):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # (`"C:\d"`: Python warns of `\d`; the read of it does not)
        assert quoted(r"""a = 'C:\data.csv'; b = "\N{BULLET}.txt"; c = '\x41\101\u0041.csv'""") == [
            "C:\\data.csv", "\N{BULLET}.txt", "AAA.csv"]
        # no name: a line break, an escape Python refuses, an f-string's or bytes' escapes, a NUL, a surrogate
        assert quoted(r"""a = "done\n"; b = 'x\x4'; c = f"{d}\t.csv"; e = b'\t.csv'; g = "a\0b"; h = "\ud800" """) == []
    monkeypatch.chdir(tmp_path)
    hostile = "__import__('os').system('touch pwned')"  # (a name, only compared: no file is made)
    assert written_paths(f"df.to_csv({hostile!r})\nopen({hostile!r}, 'w')") == {hostile}
    assert quoted(f"x = {hostile!r}")[0] == hostile
    assert quoted(r"""y = "__import__\x28'os').system('touch pwned')" """)[0] == hostile
    assert not (tmp_path / "pwned").exists()
    assert written_paths(r"""open('C:\\out\'s.csv', "w"); np.save(r"raw\'s.npy", a); open("\x4.csv", 'w')""") == {
        "C:\\out's.csv", "raw\\'s.npy"}


@settings(max_examples=500, deadline=None)
@given(st.text(min_size=1, max_size=30).filter(lambda t: t.strip() and not {"\n", "\r", "\x00"} & set(t)
                                                and not t.strip().startswith("~")  # (the home folder)
                                                and normalised(t) not in ("/dev/null", "&1", "&2")))
def test_any_name_of_one_line_is_read_as_python_reads_its_literal(name):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for literal in literals(name):
            assert name in quoted(f"x = {literal}")
            steps = [("a", [f"open({literal}, 'w').write('1')"]), ("b", [f"print(open({literal}).read())"])]
            assert normalised(name) in file_edges(steps)["b"]["a"]


@settings(max_examples=1000, deadline=None)
@given(st.text(alphabet=["\\", "\\", '"', "'", "n", "t", "x", "4", "1", "0", "7", "d", "N", "{", "}", "u",
                         "U", "a", "é", "\u2028", "€"], max_size=14))
def test_the_escapes_of_a_literal_are_read_as_python_reads_them(body):
    # the decoder Python reads escapes with, or `ast.literal_eval` where Python warns of an escape
    assume(re.fullmatch(r'(?:[^"\\]|\\.)*', body, re.DOTALL))  # (a literal's text, as `_PATH` takes it)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            expected = ast.literal_eval(f'"{body}"')
            os.fsencode(expected)  # (`"\\ud800"`: no file's name)
        except (SyntaxError, UnicodeError):
            expected = None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _unescaped(body, '"') == expected


def test_steps_that_append_to_one_log_stay_parallel():
    steps = [(n, [f"{n} = 1\nopen('ran.log', 'a').write('{n}')\n!echo {n} >> run.log"]) for n in "abc"]
    assert file_edges(steps) == {}


def test_a_reader_comes_after_the_steps_that_append_to_a_file_an_earlier_step_writes():
    steps = [("make", ["open('report.txt', 'w').write('header')"]),
             ("add", ["open('report.txt', 'a').write('line')"]),
             ("more", ["!echo more >> report.txt"]),
             ("show", ["text = open('report.txt').read()"])]
    assert file_edges(steps) == {"add": {"make": ["report.txt"]}, "more": {"add": ["report.txt"]},
                                 "show": {"more": ["report.txt"]}}


def test_a_step_that_writes_a_file_anew_comes_after_the_steps_that_read_the_version_it_replaces():
    steps = [("input", ["raw = open('data.txt').read()"]),  # the file the notebook found
             ("w1", ["open('data.txt', 'w').write('first')"]),
             ("r1", ["a = open('data.txt').read()"]), ("r2", ["!wc -c data.txt"]),
             ("w2", ["open('data.txt', 'w').write('second')"]),
             ("r3", ["b = open('data.txt').read()"])]
    order = file_order(steps)
    assert order.replaces == {"w1": {"input": ["data.txt"]}, "w2": {"r1": ["data.txt"], "r2": ["data.txt"]}}
    assert order.handed_on == {"r1": {"w1": ["data.txt"]}, "r2": {"w1": ["data.txt"]}, "w2": {"w1": ["data.txt"]},
                               "r3": {"w2": ["data.txt"]}}


def test_the_pipeline_orders_a_file_written_anew_after_its_readers_and_says_why(tmp_path):
    nb = make_notebook(tmp_path, [("open('out.txt', 'w').write('1')", ["step:first"]),
                                  ("v = open('out.txt').read()", ["step:read"]),
                                  ("open('out.txt', 'w').write('2')", ["step:again"])])
    pipeline = compile_notebook(nb)
    assert {s.name: s.after for s in pipeline.steps} == {"first": [], "read": ["first"], "again": ["first", "read"]}
    assert why(nb, "read", "again") == ["again writes the file out.txt anew, which read reads before"]


@pytest.mark.parametrize("source, changed", [
    ("con = sqlite3.connect('res.db')\ndf.to_sql('t', con, if_exists='append')", True),
    ("con = sqlite3.connect(database='res.db')\ncon.execute('insert into t values (1)')\ncon.commit()", True),
    ("e = create_engine('sqlite:///res.db')\nwith e.begin() as c:\n    c.execute(text('DELETE FROM t'))", True),
    ("e = create_engine('sqlite+pysqlite:///res.db')\nrows = pd.read_sql('SELECT * FROM t', e)", False),
    ("con = duckdb.connect('res.db')\ncon.execute('CREATE TABLE t AS SELECT 1')", True),
    ("db = shelve.open('res.db')\nx = db['k']", True),
    ("df.to_sql('t', 'sqlite:///res.db', if_exists='append')", True),
    ("rows = pd.read_sql('select a from t', 'sqlite:///res.db')", False),
    ("con = sqlite3.connect('res.db')\nrows = con.execute('select * from t where updated > 0').fetchall()", False),
    ("con = sqlite3.connect(':memory:')\ncon.execute('CREATE TABLE t (a)')", False),  # (no file: `:memory:`)
    ("rows = pd.read_csv('res.db')\ndf.to_sql('t', other)", False),  # (no connection to it here)
])
def test_a_database_a_step_changes_is_edited_in_place_and_one_it_queries_is_read(source, changed):
    from nbscale.compiler.file_edges import database_edits, edited_in_place, file_writes

    expected = {"res.db"} if changed else set()
    assert database_edits([source]) == expected and edited_in_place(source) == expected
    assert ("res.db" in file_writes(source)) is changed and not any(file_writes(source).values())


def test_a_steps_connection_in_one_cell_and_its_change_in_another_are_a_change():
    from nbscale.compiler.file_edges import step_writes

    assert step_writes(["con = sqlite3.connect('res.db')", "df.to_sql('t', con)"]) == {"res.db": False}
    assert step_writes(["con = sqlite3.connect('res.db')", "rows = con.execute('select 1').fetchall()"]) == {}
    order = file_order([("init", ["c = sqlite3.connect('res.db')\ndf.to_sql('t', c)"]),
                        ("add", ["c = sqlite3.connect('res.db')", "new.to_sql('t', c, if_exists='append')"]),
                        ("read", ["c = sqlite3.connect('res.db')\nrows = pd.read_sql('select * from t', c)"])])
    assert order.handed_on == {"add": {"init": ["res.db"]}, "read": {"add": ["res.db"]}}


@pytest.mark.parametrize("write", [
    "Path('x.csv').write_text('1')", "(Path('d') / 'x.csv').write_text('1')", "p = Path('x.csv')\np.write_text('1')",
    "Path('x.csv').touch()", "with Path('x.csv').open('w') as f:\n    f.write('1')",
    "pathlib.Path('x.csv').write_bytes(b'1')", "Path('x.csv').unlink()"])
def test_a_file_written_through_a_path_object_orders_its_reader(tmp_path, write):
    # the scans see a Path's name written out (`Path("x.csv")` → "x.csv"): its write was lost with it
    path = "d/x.csv" if "'d'" in write else "x.csv"
    cells = [("import pathlib\nfrom pathlib import Path", ["imports"]), (write, ["step:a"]),
             (f"y = open({path!r}).read()", ["step:b"])]
    steps = {s.name: s for s in compile_notebook(make_notebook(tmp_path, cells)).steps}
    assert steps["b"].after == ["a"]


@pytest.mark.parametrize("source", ["open('{}x.csv')", "({}'x').write_text('1')", "x = {}1"])
def test_a_long_run_of_spaces_is_scanned_in_one_pass(source):
    # a pattern that took spaces before it looked for a quote tried the rest of the run at each of
    # them: 40,000 spaces took a check a minute (a notebook's text is not trusted: the server
    # compiles what it is given). Quadratic, 200,000 spaces would take hours.
    text = source.format(" " * 200_000)
    started = time.perf_counter()
    file_writes(text)
    assert time.perf_counter() - started < 10
