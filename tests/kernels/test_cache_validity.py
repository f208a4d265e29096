"""A cached result equals what a fresh run would give (runner + task + store + dependencies, end to end):
keys chain on the values upstream produced, and a step's recorded dependencies (files read and written,
local modules, environment) decide whether its stored result still holds."""

from __future__ import annotations

import json
import os
import py_compile
import shutil
import subprocess
import sys

import pandas as pd
import pytest
from conftest import install_library, make_notebook, rewrite_keeping_mtime

from nbscale.compiler import compile_notebook
from nbscale.kernels.runner import RunOptions, cache_report, run_notebook

LOCAL = RunOptions(engine="local")


def status(result) -> dict:
    return {s["name"]: s["status"] for s in result.steps}


def stale(result, step) -> list:
    return next(s for s in result.steps if s["name"] == step)["stale"]


def test_a_cache_off_reader_of_a_changed_file_reruns_its_readers(tmp_path):
    (tmp_path / "data.csv").write_text("1\n2\n")
    nb = make_notebook(tmp_path, [("rows = open('data.csv').read().split()", ["step:load", "cache:off"]),
                                  ("total = sum(map(int, rows))", ["step:total"])])
    assert run_notebook(nb, options=LOCAL).load("total")["total"] == 3
    again = run_notebook(nb, options=LOCAL)
    assert status(again) == {"load": "succeeded", "total": "cached"}  # same values: early cutoff
    (tmp_path / "data.csv").write_text("1\n2\n30\n")
    changed = run_notebook(nb, options=LOCAL)
    assert status(changed) == {"load": "succeeded", "total": "succeeded"}
    assert changed.load("total")["total"] == 33


def test_a_changed_data_file_reruns_the_step_and_touch_alone_does_not(tmp_path):
    data = tmp_path / "data.csv"
    data.write_text("5\n")
    nb = make_notebook(tmp_path, [("n = int(open('data.csv').read())", ["step:read"]), ("m = n * 2", ["step:use"])])
    assert run_notebook(nb, options=LOCAL).load("use")["m"] == 10
    os.utime(data)  # touched: same content
    assert set(status(run_notebook(nb, options=LOCAL)).values()) == {"cached"}
    stamp = data.stat().st_mtime_ns
    data.write_text("70\n")
    os.utime(data, ns=(stamp, stamp))  # a new content under the same mtime (another size)
    changed = run_notebook(nb, options=LOCAL)
    assert status(changed) == {"read": "succeeded", "use": "succeeded"} and changed.load("use")["m"] == 140
    assert any("data.csv" in text for text in stale(changed, "read"))


def test_a_data_file_rewritten_under_its_old_size_and_mtime_reruns_the_step(tmp_path):
    # `cp -p` / `rsync -t` of new data, or a tool that sets the mtime back: only the ctime shows it
    data = tmp_path / "data.csv"
    data.write_text("5\n")
    nb = make_notebook(tmp_path, [("n = int(open('data.csv').read())", ["step:read"]), ("m = n * 2", ["step:use"])])
    assert run_notebook(nb, options=LOCAL).load("use")["m"] == 10
    rewrite_keeping_mtime(data, "7\n")
    changed = run_notebook(nb, options=LOCAL)
    assert status(changed) == {"read": "succeeded", "use": "succeeded"} and changed.load("use")["m"] == 14


def test_a_changed_local_module_and_environment_variable_rerun_the_step(tmp_path, monkeypatch):
    (tmp_path / "helpers.py").write_text("def factor():\n    return 2\n")
    monkeypatch.setenv("NBSCALE_TEST_OFFSET", "1")
    nb = make_notebook(tmp_path, [("import os\nimport helpers", ["imports"]),
                                  ("v = helpers.factor() + int(os.environ['NBSCALE_TEST_OFFSET'])", ["step:calc"])])
    assert run_notebook(nb, options=LOCAL).load("calc")["v"] == 3
    (tmp_path / "helpers.py").write_text("def factor():\n    return 20\n")
    edited = run_notebook(nb, options=LOCAL)
    assert status(edited) == {"calc": "succeeded"} and edited.load("calc")["v"] == 21
    assert any("helpers.py" in text for text in stale(edited, "calc"))
    monkeypatch.setenv("NBSCALE_TEST_OFFSET", "5")
    env = run_notebook(nb, options=LOCAL)
    assert env.load("calc")["v"] == 25 and any("NBSCALE_TEST_OFFSET" in t for t in stale(env, "calc"))
    assert status(run_notebook(nb, options=LOCAL)) == {"calc": "cached"}


def test_a_variable_a_shell_command_expands_is_a_dependency(tmp_path, monkeypatch):
    """`!echo $REGION > region.txt`: the shell reads REGION, not the step's Python; a new REGION
    reused the stale file's value."""
    monkeypatch.setenv("NBSCALE_TEST_REGION", "eu")
    cell = "!echo $NBSCALE_TEST_REGION > region.txt\nregion = open('region.txt').read().strip()"
    nb = make_notebook(tmp_path, [(cell, ["step:ask"])])
    assert run_notebook(nb, options=LOCAL).load("ask")["region"] == "eu"
    assert status(run_notebook(nb, options=LOCAL)) == {"ask": "cached"}
    monkeypatch.setenv("NBSCALE_TEST_REGION", "us")
    changed = run_notebook(nb, options=LOCAL)
    assert changed.load("ask")["region"] == "us" and any("NBSCALE_TEST_REGION" in t for t in stale(changed, "ask"))


@pytest.mark.parametrize("cell", [
    "import json\nstate = json.load(open('state.json'))\nstart = state['last']\n"
    "json.dump({'last': start + 50}, open('state.json', 'w'))",
    "with open('state.json', 'a') as f:\n    f.write(' ')\nstart = len(open('state.json').read())",
], ids=["read_then_written", "appended_then_read"])
def test_a_step_that_advances_a_state_file_it_reads_runs_every_time(tmp_path, cell):
    """An incremental watermark or a history it counts: its second run was `cached` with the first
    run's value, where a run top to bottom reads what the first left."""
    (tmp_path / "state.json").write_text('{"last": 100}')
    nb = make_notebook(tmp_path, [(cell, ["step:advance"])])
    first = run_notebook(nb, options=LOCAL).load("advance")["start"]
    second = run_notebook(nb, options=LOCAL)
    assert status(second) == {"advance": "succeeded"} and second.load("advance")["start"] != first
    assert any("changed it itself" in text for text in stale(second, "advance"))


def test_a_step_that_draws_from_numpys_unseeded_global_generator_runs_every_time(tmp_path):
    """Step a seeds, step b draws: b drew from a generator nbscale reseeded from entropy after a, and
    its second run was `cached` with the first run's draw, where a fresh run draws another number.
    A step that seeds before it draws (c), or runs after the imports cell seeded (d's notebook), is
    reused; so is one that draws nothing (e)."""
    nb = make_notebook(tmp_path, [
        ("import numpy as np", ["imports"]),
        ("np.random.seed(0)\nx = 1", ["step:a"]),
        ("r = float(np.random.rand())", ["step:b"]),
        ("np.random.seed(1)\ns = float(np.random.rand())", ["step:c"]),
        ("t = x + 1", ["step:e"])])
    first = run_notebook(nb, options=LOCAL)
    drawn, seeded_draw = first.load("b")["r"], first.load("c")["s"]
    again = run_notebook(nb, options=LOCAL)
    assert status(again) == {"a": "cached", "b": "succeeded", "c": "cached", "e": "cached"}
    assert any("without seeding it" in text for text in stale(again, "b"))
    assert again.load("b")["r"] != drawn and again.load("c")["s"] == seeded_draw
    seeded = make_notebook(tmp_path, [("import numpy as np\nnp.random.seed(0)", ["imports"]),
                                      ("r = float(np.random.rand())", ["step:d"])], name="seeded")
    assert run_notebook(seeded, options=LOCAL).load("d")["r"] == run_notebook(seeded, options=LOCAL).load("d")["r"]
    assert status(run_notebook(seeded, options=LOCAL)) == {"d": "cached"}


def test_a_step_that_draws_from_pythons_unseeded_global_generator_runs_every_time(tmp_path):
    # its second run was `cached` with the first run's draws; a step that only imports a library
    # that draws as it is imported (scikit-learn does) is reused
    (tmp_path / "drawing_library.py").write_text("import random\nFLAVOUR = random.random()\n")
    nb = make_notebook(tmp_path, [("import random", ["imports"]),
                                  ("picks = [random.randint(0, 10**9) for _ in range(3)]", ["step:draw"]),
                                  ("import drawing_library\nn = 1", ["step:imports_one"])])
    picks = run_notebook(nb, options=LOCAL).load("draw")["picks"]
    again = run_notebook(nb, options=LOCAL)
    assert status(again) == {"draw": "succeeded", "imports_one": "cached"}
    assert any("drew from random's global generator" in text for text in stale(again, "draw"))
    assert again.load("draw")["picks"] != picks


def test_a_step_that_makes_a_generator_given_no_seed_runs_every_time(tmp_path):
    # `np.random.default_rng()` draws from fresh entropy: its second run was `cached` with the first's draws
    nb = make_notebook(tmp_path, [("import numpy as np\nimport random", ["imports"]),
                                  ("x = float(np.random.default_rng().random())", ["step:fresh"]),
                                  ("y = random.Random().random()", ["step:fresh_python"]),
                                  ("z = float(np.random.default_rng(7).random())", ["step:seeded"])])
    first = run_notebook(nb, options=LOCAL)
    drawn = first.load("fresh")["x"]
    again = run_notebook(nb, options=LOCAL)
    assert status(again) == {"fresh": "succeeded", "fresh_python": "succeeded", "seeded": "cached"}
    assert any("from fresh entropy (default_rng(), given no seed)" in text for text in stale(again, "fresh"))
    assert again.load("fresh")["x"] != drawn


def test_a_folder_the_step_made_from_nothing_is_no_dependency_once_gone(tmp_path):
    """Dask's disk shuffle spills into a `tempfile.mkdtemp` folder it appends to, reads back, lists
    and later removes: `set_index` steps were never reused ("/tmp/tmpXXXX.partd is missing")."""
    cell = ("import os, shutil, tempfile\nspill = tempfile.mkdtemp(suffix='.spill', dir='.')\n"
            "open(os.path.join(spill, '0'), 'a').write('12')\nn = int(open(os.path.join(spill, '0')).read())\n"
            "names = os.listdir(spill)\nos.makedirs('data', exist_ok=True)\nlisted = sorted(os.listdir('data'))")
    nb = make_notebook(tmp_path, [(cell, ["step:spill"])])
    assert run_notebook(nb, options=LOCAL).load("spill")["n"] == 12
    for spill in tmp_path.glob("*.spill"):
        shutil.rmtree(spill)
    shutil.rmtree(tmp_path / "data")  # made from nothing too: the step makes it again, as empty
    again = run_notebook(nb, options=LOCAL)
    assert status(again) == {"spill": "cached"}, stale(again, "spill")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x.csv").write_text("1")  # a folder it made, now holding more: it lists it
    changed = run_notebook(nb, options=LOCAL)
    assert status(changed) == {"spill": "succeeded"} and changed.load("spill")["listed"] == ["x.csv"]
    (tmp_path / "data" / "x.csv").unlink()
    shutil.rmtree(tmp_path / "data")  # there when that run began: its absence now is a change
    assert status(run_notebook(nb, options=LOCAL)) == {"spill": "succeeded"}


def test_a_file_a_step_writes_in_a_folder_it_made_is_made_again_once_gone(tmp_path):
    """Its product, though the step tested for it first: gone, the step runs again to make it, and
    the step that reads it finds it (reused, the reader failed on a missing file)."""
    make = ("import os\nos.makedirs('out')\nfresh = not os.path.exists('out/r.csv')\n"
            "open('out/r.csv', 'w').write('7')")
    nb = make_notebook(tmp_path, [(make, ["step:make"]), ("r = int(open('out/r.csv').read())", ["step:use"])])
    assert run_notebook(nb, options=LOCAL).load("use")["r"] == 7
    shutil.rmtree(tmp_path / "out")
    again = run_notebook(nb, options=LOCAL)
    assert status(again)["make"] == "succeeded" and again.load("use")["r"] == 7


def test_a_step_that_changes_a_file_an_earlier_step_wrote_is_reused_with_it(tmp_path):
    """load writes data.csv, clean doubles it in place, report reads it: nothing changed, so all are
    reused. Taken for a state clean advances, clean ran alone on its own last output (12, 24, 48)."""
    nb = make_notebook(tmp_path, [
        ("import pandas as pd\npd.DataFrame({'x': [1, 2, 3]}).to_csv('data.csv', index=False)", ["step:load"]),
        ("df = pd.read_csv('data.csv')\ndf['x'] = df['x'] * 2\ndf.to_csv('data.csv', index=False)", ["step:clean"]),
        ("total = int(pd.read_csv('data.csv')['x'].sum())", ["step:report"])])
    assert run_notebook(nb, options=LOCAL).load("report")["total"] == 12
    again = run_notebook(nb, options=LOCAL)
    assert status(again) == {"load": "cached", "clean": "cached", "report": "cached"}
    assert int(pd.read_csv(tmp_path / "data.csv")["x"].sum()) == 12


def test_a_step_that_writes_back_what_it_read_unchanged_is_reused(tmp_path):
    """A memo it loads, fills with nothing new and writes back: the next run reads the same."""
    (tmp_path / "memo.json").write_text('{"a": 1}')
    cell = ("import json\nmemo = json.load(open('memo.json'))\nmemo.setdefault('a', 1)\n"
            "json.dump(memo, open('memo.json', 'w'))\nn = len(memo)")
    nb = make_notebook(tmp_path, [(cell, ["step:memo"])])
    assert run_notebook(nb, options=LOCAL).load("memo")["n"] == 1
    assert status(run_notebook(nb, options=LOCAL)) == {"memo": "cached"}


def test_two_project_folders_sharing_one_store_get_their_own_results(tmp_path):
    store = RunOptions(engine="local", store_url=str(tmp_path / "shared-store"))
    results = {}
    for project, value in (("a", "1"), ("b", "2"), ("a", "1"), ("b", "2")):
        folder = tmp_path / project
        folder.mkdir(exist_ok=True)
        (folder / "data.csv").write_text(value)
        nb = make_notebook(folder, [("x = int(open('data.csv').read())", ["step:read"])])
        results.setdefault(project, []).append(run_notebook(nb, options=store).load("read")["x"])
    assert results == {"a": [1, 1], "b": [2, 2]}


def test_a_missing_product_of_a_cached_upstream_step_makes_it_run_again(tmp_path):
    cells = [("open('made.txt', 'w').write('42')\ndone = True", ["step:make"]),
             ("assert done\nvalue = int(open('made.txt').read())", ["step:read"])]
    nb = make_notebook(tmp_path, cells)
    assert run_notebook(nb, options=LOCAL).ok
    (tmp_path / "made.txt").unlink()
    cells[1] = ("assert done\nvalue = int(open('made.txt').read()) + 1", ["step:read"])  # edit the reader only
    nb = make_notebook(tmp_path, cells)
    result = run_notebook(nb, options=LOCAL)
    assert result.ok, result.steps
    assert status(result) == {"make": "succeeded", "read": "succeeded"} and result.load("read")["value"] == 43


def test_the_cli_says_which_dependency_made_a_step_run_again(tmp_path):
    from click.testing import CliRunner

    from nbscale.cli import main

    (tmp_path / "data.csv").write_text("5")
    nb = make_notebook(tmp_path, [("n = int(open('data.csv').read())", ["step:read"])])
    assert CliRunner().invoke(main, ["run", str(nb), "--engine", "local"]).exit_code == 0
    (tmp_path / "data.csv").write_text("55")
    ran = CliRunner().invoke(main, ["run", str(nb), "--engine", "local", "--output", "json"])
    assert ran.exit_code == 0
    import json

    (step,) = json.loads(ran.output)["steps"]
    assert step["status"] == "succeeded" and any("data.csv" in text for text in step["stale"])
    shown = CliRunner().invoke(main, ["show", json.loads(ran.output)["run_id"], "--notebook", str(nb)])
    assert "ran again because" in shown.output and "data.csv" in shown.output


def test_a_changed_parquet_file_reruns_the_step_that_reads_it(tmp_path):
    import pandas as pd

    pd.DataFrame({"x": [1, 2]}).to_parquet(tmp_path / "data.parquet")
    nb = make_notebook(tmp_path, [("import pandas as pd", ["imports"]),
                                  ("total = int(pd.read_parquet('data.parquet')['x'].sum())", ["step:read"])])
    assert run_notebook(nb, options=LOCAL).load("read")["total"] == 3
    assert status(run_notebook(nb, options=LOCAL)) == {"read": "cached"}
    pd.DataFrame({"x": [1, 2, 30]}).to_parquet(tmp_path / "data.parquet")
    changed = run_notebook(nb, options=LOCAL)
    assert changed.load("read")["total"] == 33 and any("data.parquet" in t for t in stale(changed, "read"))


def test_files_a_script_the_step_runs_names_are_dependencies(tmp_path):
    # `python tool.py` reading input.txt: a change to it left the step cached with the old value
    (tmp_path / "tool.py").write_text("print(open('input.txt').read().strip())\n")
    (tmp_path / "input.txt").write_text("one")
    nb = make_notebook(tmp_path, [
        ("import subprocess, sys\nout = subprocess.run([sys.executable, 'tool.py'], capture_output=True, text=True,"
         " check=True).stdout.strip()", ["step:tool"])])
    assert run_notebook(nb, options=LOCAL).load("tool")["out"] == "one"
    assert status(run_notebook(nb, options=LOCAL)) == {"tool": "cached"}
    (tmp_path / "input.txt").write_text("two")
    changed = run_notebook(nb, options=LOCAL)
    assert status(changed) == {"tool": "succeeded"} and changed.load("tool")["out"] == "two"


def test_files_a_shell_command_or_a_process_reads_or_writes_by_a_name_in_the_cells_are_dependencies(tmp_path):
    # no audit event shows what `cat` or `cp` open (nor a C or Rust library): the names in the cells do
    (tmp_path / "notes.txt").write_text("a\nb\n")
    (tmp_path / "in data.txt").write_text("5")
    nb = make_notebook(tmp_path, [
        ("lines = !cat notes.txt\nn = len(lines)", ["step:shell"]),
        ("import subprocess\nv = int(subprocess.run(['cat', 'in data.txt'], capture_output=True).stdout)\n"
         "subprocess.run(['cp', 'in data.txt', 'copy.txt'], check=True)", ["step:process"])])
    first = run_notebook(nb, options=LOCAL)
    assert (first.load("shell")["n"], first.load("process")["v"]) == (2, 5)
    assert set(status(run_notebook(nb, options=LOCAL)).values()) == {"cached"}
    (tmp_path / "notes.txt").write_text("a\nb\nc\n")
    (tmp_path / "in data.txt").write_text("7")
    changed = run_notebook(nb, options=LOCAL)
    assert status(changed) == {"shell": "succeeded", "process": "succeeded"}
    assert (changed.load("shell")["n"], changed.load("process")["v"]) == (3, 7)
    (tmp_path / "copy.txt").unlink()  # what `cp` wrote is the step's product: gone, the step runs again
    assert status(run_notebook(nb, options=LOCAL)) == {"shell": "cached", "process": "succeeded"}
    assert (tmp_path / "copy.txt").read_text() == "7"


def test_a_file_one_step_writes_and_a_later_one_reads_is_read_after_each_new_write(tmp_path):
    # no name passes between them: the file's name orders them, and the reader is decided after the writer
    (tmp_path / "data.csv").write_text("1\n")
    nb = make_notebook(tmp_path, [("open('out.txt', 'w').write(open('data.csv').read())", ["step:write"]),
                                  ("v = open('out.txt').read()", ["step:read"])])
    assert run_notebook(nb, options=LOCAL).load("read")["v"] == "1\n"
    assert set(status(run_notebook(nb, options=LOCAL)).values()) == {"cached"}
    (tmp_path / "data.csv").write_text("2\n")
    changed = run_notebook(nb, options=LOCAL)
    assert status(changed) == {"write": "succeeded", "read": "succeeded"} and changed.load("read")["v"] == "2\n"


def test_a_file_a_shell_command_writes_for_the_first_time_is_the_steps_product(tmp_path):
    (tmp_path / "raw.txt").write_text("b\na\n")
    nb = make_notebook(tmp_path, [("!sort raw.txt > sorted.txt\nok = 1", ["step:sort"]),
                                  ("lines = !cat sorted.txt", ["step:read"])])
    assert list(run_notebook(nb, options=LOCAL).load("read")["lines"]) == ["a", "b"]
    (tmp_path / "sorted.txt").unlink()  # gone: the step that wrote it runs again, and its reader after it
    again = run_notebook(nb, options=LOCAL)
    assert status(again)["sort"] == "succeeded" and list(again.load("read")["lines"]) == ["a", "b"]


def test_steps_that_append_to_one_log_or_clean_up_a_file_do_not_run_each_other_again(tmp_path):
    (tmp_path / "data.txt").write_text("5")
    nb = make_notebook(tmp_path, [("!echo a >> run.log\n!rm -f report.txt\nok = 1", ["step:first"]),
                                  ("!echo b >> run.log\nv = int(open('data.txt').read())", ["step:second"]),
                                  ("open('report.txt', 'w').write(str(v))", ["step:report"])])
    run_notebook(nb, options=LOCAL)
    for _ in range(2):  # the log grew and the report came back: neither is a change to the others
        again = run_notebook(nb, options=LOCAL)
        assert set(status(again).values()) == {"cached"}, status(again)
    assert (tmp_path / "report.txt").read_text() == "5"


def test_a_named_file_that_appears_and_a_file_a_text_parameter_names_are_dependencies(tmp_path):
    (tmp_path / "sales.csv").write_text("1\n")
    nb = make_notebook(tmp_path, [("DATA = 'sales.csv'", ["parameters"]),
                                  ("extra = !cat extra.txt 2>/dev/null || echo none", ["step:optional"]),
                                  ("rows = !cat {DATA}", ["step:by_parameter"])])
    first = run_notebook(nb, options=LOCAL)
    assert (list(first.load("optional")["extra"]), list(first.load("by_parameter")["rows"])) == (["none"], ["1"])
    (tmp_path / "extra.txt").write_text("here\n")
    (tmp_path / "sales.csv").write_text("1\n2\n")
    changed = run_notebook(nb, options=LOCAL)
    assert status(changed) == {"optional": "succeeded", "by_parameter": "succeeded"}
    assert list(changed.load("optional")["extra"]) == ["here"]
    assert list(changed.load("by_parameter")["rows"]) == ["1", "2"]


def test_a_wildcard_or_a_folder_a_shell_command_names_is_a_dependency(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "p1.csv").write_text("1\n")
    nb = make_notebook(tmp_path, [("rows = !cat data/*.csv", ["step:glob"]), ("names = !ls data/", ["step:folder"])])
    first = run_notebook(nb, options=LOCAL)
    assert (list(first.load("glob")["rows"]), list(first.load("folder")["names"])) == (["1"], ["p1.csv"])
    assert set(status(run_notebook(nb, options=LOCAL)).values()) == {"cached"}
    (tmp_path / "data" / "p1.csv").write_text("10\n")  # a matched file changes: the glob step only
    assert status(run_notebook(nb, options=LOCAL)) == {"glob": "succeeded", "folder": "cached"}
    (tmp_path / "data" / "p2.csv").write_text("2\n")  # a new match, a new entry: both
    both = run_notebook(nb, options=LOCAL)
    assert list(both.load("glob")["rows"]) == ["10", "2"] and list(both.load("folder")["names"]) == ["p1.csv", "p2.csv"]


def test_files_named_by_texts_a_step_is_given_or_by_the_commands_it_starts_are_dependencies(tmp_path):
    # `cat` opens them where no audit event shows it, under names no cell writes out: an earlier step
    # built one, the step built the other and started the process with it
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "2024-01.csv").write_text("1\n")
    (tmp_path / "data" / "notes.txt").write_text("a\n")
    nb = make_notebook(tmp_path, [
        ("month = '2024-01'\nDATA = f'data/{month}.' + 'csv'\nCFG = {'inputs': [DATA]}", ["step:config"]),
        ("import subprocess\nrows = subprocess.run(['cat', CFG['inputs'][0]], capture_output=True).stdout",
         ["step:given"]),
        ("import pathlib, subprocess\nnotes = pathlib.Path('data') / ('notes' + '.txt')\n"
         "text = subprocess.run(['cat', str(notes)], capture_output=True).stdout", ["step:made"])])
    first = run_notebook(nb, options=LOCAL)
    assert (first.load("given")["rows"], first.load("made")["text"]) == (b"1\n", b"a\n")
    assert set(status(run_notebook(nb, options=LOCAL)).values()) == {"cached"}
    (tmp_path / "data" / "2024-01.csv").write_text("1\n2\n")
    (tmp_path / "data" / "notes.txt").write_text("b\n")
    changed = run_notebook(nb, options=LOCAL)
    assert status(changed) == {"config": "cached", "given": "succeeded", "made": "succeeded"}
    assert (changed.load("given")["rows"], changed.load("made")["text"]) == (b"1\n2\n", b"b\n")
    assert any("2024-01.csv" in text for text in stale(changed, "given"))


def test_a_file_a_shell_command_names_after_cd_or_with_an_escaped_space_is_a_dependency(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x.csv").write_text("1\n")
    (tmp_path / "my data.csv").write_text("a\n")
    nb = make_notebook(tmp_path, [("rows = !cd data && cat x.csv", ["step:cd"]),
                                  ("lines = !cat my\\ data.csv", ["step:escaped"])])
    first = run_notebook(nb, options=LOCAL)
    assert (list(first.load("cd")["rows"]), list(first.load("escaped")["lines"])) == (["1"], ["a"])
    assert set(status(run_notebook(nb, options=LOCAL)).values()) == {"cached"}
    (tmp_path / "data" / "x.csv").write_text("2\n")
    (tmp_path / "my data.csv").write_text("b\n")
    changed = run_notebook(nb, options=LOCAL)
    assert (list(changed.load("cd")["rows"]), list(changed.load("escaped")["lines"])) == (["2"], ["b"])


def test_a_file_a_process_started_in_a_folder_names_is_a_dependency(tmp_path):
    (tmp_path / "tools").mkdir()
    (tmp_path / "tools" / "x.txt").write_text("1")
    nb = make_notebook(tmp_path, [("import subprocess\n"
                                   "v = subprocess.run(['cat', 'x.txt'], cwd='tools', capture_output=True).stdout",
                                   ["step:in_folder"])])
    assert run_notebook(nb, options=LOCAL).load("in_folder")["v"] == b"1"
    assert set(status(run_notebook(nb, options=LOCAL)).values()) == {"cached"}
    (tmp_path / "tools" / "x.txt").write_text("2")
    assert run_notebook(nb, options=LOCAL).load("in_folder")["v"] == b"2"


def test_what_commands_name_as_they_run_counts_in_the_folder_they_run_in(tmp_path):
    # `{name}` filled in as `!cat` runs, `%cd` and `os.chdir` before a command: seen as the command starts
    (tmp_path / "data").mkdir()
    for name in ("x", "y", "z"):
        (tmp_path / "data" / f"{name}.csv").write_text("1\n")
    nb = make_notebook(tmp_path, [
        ("name = 'x' + '.csv'\nrows = !cat data/{name}", ["step:filled_in"]),
        ("%cd data\nlines = !cat y.csv\n%cd ..", ["step:magic_cd"]),
        ("import os, subprocess\nos.chdir('data')\n"
         "v = subprocess.run(['cat', 'z' + '.csv'], capture_output=True, text=True).stdout\nos.chdir('..')",
         ["step:chdir"])])
    run_notebook(nb, options=LOCAL)
    assert set(status(run_notebook(nb, options=LOCAL)).values()) == {"cached"}
    for name in ("x", "y", "z"):
        (tmp_path / "data" / f"{name}.csv").write_text("2\n")
    changed = run_notebook(nb, options=LOCAL)
    assert set(status(changed).values()) == {"succeeded"}
    assert [s["warnings"] for s in changed.steps] == [[], [], []]  # (seeing `!cmd` changes nothing of the step's)
    assert (list(changed.load("filled_in")["rows"]), list(changed.load("magic_cd")["lines"]),
            changed.load("chdir")["v"]) == (["2"], ["2"], "2\n")


def test_a_file_read_then_removed_and_one_in_a_folder_not_there_yet_count_and_a_clean_up_does_not(tmp_path):
    (tmp_path / "job.txt").write_text("first\n")
    nb = make_notebook(tmp_path, [
        ("job = !cat job.txt\n!rm job.txt", ["step:consume"]),
        ("extra = !cat overrides/extra.txt 2>/dev/null || echo none", ["step:optional"]),
        ("!rm -f report.txt\nok = 1", ["step:clean"]),
        ("open('report.txt', 'w').write('r')", ["step:report"])])
    first = run_notebook(nb, options=LOCAL)
    assert (list(first.load("consume")["job"]), list(first.load("optional")["extra"])) == (["first"], ["none"])
    assert set(status(run_notebook(nb, options=LOCAL)).values()) == {"cached"}  # the clean-up's file came back
    (tmp_path / "job.txt").write_text("second\n")
    (tmp_path / "overrides").mkdir()
    (tmp_path / "overrides" / "extra.txt").write_text("here\n")
    changed = run_notebook(nb, options=LOCAL)
    assert status(changed) == {"consume": "succeeded", "optional": "succeeded", "clean": "cached", "report": "cached"}
    assert (list(changed.load("consume")["job"]), list(changed.load("optional")["extra"])) == (["second"], ["here"])


def test_a_folder_a_given_text_names_is_listed_and_a_log_a_command_appends_to_is_nothing(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "p1.csv").write_text("1\n")
    nb = make_notebook(tmp_path, [
        ("DIR = 'da' + 'ta'\nLOG = 'run' + '.log'", ["step:config"]),
        ("import subprocess\nnames = subprocess.run(['ls', DIR], capture_output=True, text=True).stdout.split()",
         ["step:listing"]),
        ("!echo a >> {LOG}\nlogged = 1", ["step:logs"]),
        ("!echo b >> {LOG}\nalso = 1", ["step:also_logs", "cache:off"])])
    assert run_notebook(nb, options=LOCAL).load("listing")["names"] == ["p1.csv"]
    again = run_notebook(nb, options=LOCAL)
    assert status(again) == {"config": "cached", "listing": "cached", "logs": "cached", "also_logs": "succeeded"}
    (tmp_path / "data" / "p2.csv").write_text("2\n")
    changed = run_notebook(nb, options=LOCAL)
    assert changed.load("listing")["names"] == ["p1.csv", "p2.csv"] and status(changed)["logs"] == "cached"


def test_a_file_whose_name_is_not_utf8_is_a_dependency_and_fails_nothing(tmp_path):
    # os.listdir gives its undecodable byte as a lone surrogate, which UTF-8 (the run store's JSON) cannot hold
    (tmp_path / "raw").mkdir()
    (tmp_path / os.fsdecode(b"raw/caf\xe9.txt")).write_text("1")
    nb = make_notebook(tmp_path, [("import os, subprocess\nname = os.listdir('raw')[0]\n"
                                   "v = subprocess.run(['cat', 'raw/' + name], capture_output=True, text=True).stdout\n"
                                   "w = open('raw/' + name).read()", ["step:a"])])
    assert run_notebook(nb, options=LOCAL).load("a")["v"] == "1"
    assert status(run_notebook(nb, options=LOCAL)) == {"a": "cached"}
    (tmp_path / os.fsdecode(b"raw/caf\xe9.txt")).write_text("2")
    assert run_notebook(nb, options=LOCAL).load("a")["w"] == "2"


@pytest.mark.parametrize("engine", ["local", "dask"])
def test_a_step_passing_the_whole_environment_to_a_process_is_cached(tmp_path, engine):
    # dict(os.environ) reads every variable, those the process running the step is given among them
    # (on Dask: the nanny's pid, its thread counts)
    nb = make_notebook(tmp_path, [("import os, subprocess\n"
                                   "a = subprocess.run(['true'], env=dict(os.environ, CUDA_VISIBLE_DEVICES='0'))\n"
                                   "b = subprocess.run(['true'], env={**os.environ, 'OMP_NUM_THREADS': '1'})\n"
                                   "done = a.returncode + b.returncode", ["step:a"])])
    options = RunOptions(engine=engine, workers=1)
    assert run_notebook(nb, options=options).load("a")["done"] == 0
    again = run_notebook(nb, options=options)
    assert status(again) == {"a": "cached"}, stale(again, "a")


def test_a_product_a_process_rewrites_longer_is_still_a_product(tmp_path):
    # a model written again, longer, on the same inode looked like a log that grew: nothing
    (tmp_path / "make.py").write_text("import sys\nopen(sys.argv[2], 'w').write('a' * 10)\n")
    nb = make_notebook(tmp_path, [("!python make.py --out model.bin\nok = 1", ["step:train"])])
    run_notebook(nb, options=LOCAL)
    (tmp_path / "make.py").write_text("import sys\nopen(sys.argv[2], 'r+').write('b' * 20)\n")  # in place
    assert status(run_notebook(nb, options=LOCAL)) == {"train": "succeeded"}
    assert (tmp_path / "model.bin").read_text() == "b" * 20
    (tmp_path / "model.bin").write_text("")  # the product is emptied: the step makes it again
    assert status(run_notebook(nb, options=LOCAL)) == {"train": "succeeded"}
    assert (tmp_path / "model.bin").read_text() == "b" * 20


def test_a_report_one_step_begins_and_a_later_one_appends_to_stays_whole(tmp_path):
    nb = make_notebook(tmp_path, [("!echo 'epoch,loss' > report.txt\nok = 1", ["step:start"]),
                                  ("!echo 1,0.5 >> report.txt\nalso = 1", ["step:train"])])
    run_notebook(nb, options=LOCAL)
    for _ in range(2):  # the report grew after `start` wrote it: what it wrote is still there
        assert set(status(run_notebook(nb, options=LOCAL)).values()) == {"cached"}
    assert (tmp_path / "report.txt").read_text() == "epoch,loss\n1,0.5\n"


@pytest.mark.parametrize(("start", "add"), [
    ("with open('report.txt', 'w') as f:\n    f.write('epoch,loss\\n')",
     "with open('report.txt', 'a') as f:\n    f.write('1,0.5\\n')"),
    ("!echo 'epoch,loss' > report.txt", "!echo 1,0.5 >> report.txt"),
    ("OUT = 'rep' + 'ort.txt'\nopen(OUT, 'w').write('epoch,loss\\n')", "open(OUT, 'a').write('1,0.5\\n')"),
], ids=["python", "shell", "by-a-value"])
def test_a_product_another_hand_appended_to_is_made_again(tmp_path, start, add):
    # `echo garbage >> report.txt` between runs looked like the later step's append: both steps
    # stayed cached, and the reader got the garbage, where a run top to bottom writes the report anew
    nb = make_notebook(tmp_path, [(start + "\nok = 1", ["step:start"]), (add + "\nalso = 1", ["step:train"]),
                                  ("lines = open('report.txt').read().splitlines()", ["step:read"])])
    assert run_notebook(nb, options=LOCAL).load("read")["lines"] == ["epoch,loss", "1,0.5"]
    assert set(status(run_notebook(nb, options=LOCAL)).values()) == {"cached"}  # its own append is no change
    with open(tmp_path / "report.txt", "a") as report:
        report.write("garbage\n")
    again = run_notebook(nb, options=LOCAL)
    assert again.load("read")["lines"] == ["epoch,loss", "1,0.5"]
    assert status(again)["start"] == "succeeded"
    assert any("report.txt was added to since the step wrote it" in t for t in stale(again, "start"))
    assert set(status(run_notebook(nb, options=LOCAL)).values()) == {"cached"}


def test_a_log_the_steps_append_to_and_none_writes_grows_with_no_step_run_again(tmp_path):
    # what was added to a log no step writes anew is read by none: reused steps stay reused
    nb = make_notebook(tmp_path, [("open('run.log', 'a').write('a\\n')\nx = 1", ["step:a"]),
                                  ("open('run.log', 'a').write('b\\n')\ny = x", ["step:b"])])
    run_notebook(nb, options=LOCAL)
    with open(tmp_path / "run.log", "a") as log:
        log.write("by hand\n")
    assert set(status(run_notebook(nb, options=LOCAL)).values()) == {"cached"}


def test_a_file_a_step_writes_back_longer_is_written_anew_by_its_writer_first(tmp_path):
    # `init` stayed cached while `add_rf` (which reads the board and writes it back with a row more)
    # ran again: the board grew by a row at every run, where top to bottom it always has two
    nb = make_notebook(tmp_path, [
        ("import pandas as pd", ["imports"]),
        ("BOARD = 'leaderboard.csv'\npd.DataFrame({'model': ['baseline']}).to_csv(BOARD, index=False)", ["step:init"]),
        ("board = pd.concat([pd.read_csv(BOARD), pd.DataFrame({'model': ['rf']})])\nboard.to_csv(BOARD, index=False)",
         ["step:add_rf"]),
        ("models = pd.read_csv(BOARD)['model'].tolist()", ["step:report", "cache:off"])])
    assert run_notebook(nb, options=LOCAL).load("report")["models"] == ["baseline", "rf"]
    again = run_notebook(nb, options=LOCAL)  # (`BOARD` is a constant `init` binds: the file orders them)
    assert again.load("report")["models"] == ["baseline", "rf"]
    assert status(again) == {"init": "cached", "add_rf": "cached", "report": "succeeded"}
    source = (tmp_path / "nb.ipynb").read_text().replace("'rf'", "'gb'")  # `add_rf` alone changed
    (tmp_path / "nb.ipynb").write_text(source)
    for _ in range(2):
        again = run_notebook(nb, options=LOCAL)
        assert again.load("report")["models"] == ["baseline", "gb"]
    assert status(again) == {"init": "cached", "add_rf": "cached", "report": "succeeded"}


def test_a_later_writer_of_a_file_an_earlier_step_writes_anew_writes_it_again(tmp_path):
    # the file's name reaches the second writer through a value: `first` ran again for its new
    # parameter, `second` stayed cached, and the file was left with first's text, where top to
    # bottom second writes it last
    def notebook(text):
        return make_notebook(tmp_path, [(f"text = {text!r}", ["parameters"]),
                                        ("OUT = 'out.txt'\nopen(OUT, 'w').write(text)", ["step:first"]),
                                        ("open(OUT, 'w').write('second')\ndone = 1", ["step:second"])])
    run_notebook(notebook("one"), options=LOCAL)
    again = run_notebook(notebook("two"), options=LOCAL)
    assert status(again) == {"first": "succeeded", "second": "succeeded"}
    assert (tmp_path / "out.txt").read_text() == "second"


def test_a_file_a_process_writes_is_read_after_it_on_a_cluster_too(tmp_path):
    # `--out model.pkl` orders the reader after the writer (on Dask they ran side by side), and a new
    # model makes the reader run again
    (tmp_path / "train.py").write_text("import pickle, sys\npickle.dump(10, open(sys.argv[2], 'wb'))\n")
    nb = make_notebook(tmp_path, [("!python train.py --out model.pkl\nok = 1", ["step:train"]),
                                  ("import pickle\nm = pickle.load(open('model.pkl', 'rb'))", ["step:use"])])
    dask = RunOptions(engine="dask", workers=2)
    assert run_notebook(nb, options=dask).load("use")["m"] == 10
    (tmp_path / "train.py").write_text("import pickle, sys\npickle.dump(1000, open(sys.argv[2], 'wb'))\n")
    changed = run_notebook(nb, options=dask)
    assert status(changed) == {"train": "succeeded", "use": "succeeded"} and changed.load("use")["m"] == 1000


def test_a_named_folder_the_steps_process_writes_into_is_no_change_while_it_ran(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "w.py").write_text("import sys\nopen(sys.argv[2] + '/a.txt', 'w').write('a')\n")
    nb = make_notebook(tmp_path, [("!python w.py --in out\nok = 1", ["step:write"])])
    run_notebook(nb, options=LOCAL)
    assert status(run_notebook(nb, options=LOCAL)) == {"write": "cached"}
    (tmp_path / "out" / "b.txt").write_text("b")  # a new entry in the folder it names: it runs again
    assert status(run_notebook(nb, options=LOCAL)) == {"write": "succeeded"}


def test_a_folder_a_step_makes_or_writes_in_is_no_listing_of_it(tmp_path):
    # a later step adding to `data` made `download` run again once ("the listing of data changed")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / ".gitkeep").write_text("")
    nb = make_notebook(tmp_path, [("!mkdir -p data && seq 1 3 > data/raw.txt\nok = 1", ["step:download"]),
                                  ("!python -c 'print(1)' --output-dir data > data/sorted.txt\nalso = 1",
                                   ["step:prep"])])
    run_notebook(nb, options=LOCAL)
    again = run_notebook(nb, options=LOCAL)
    assert set(status(again).values()) == {"cached"}, [s["stale"] for s in again.steps]


def test_a_librarys_import_reading_a_variable_an_earlier_import_set_is_no_dependency(tmp_path):
    # (a fresh process: sklearn imported by the step, after joblib's import set KMP_INIT_AT_FORK)
    import json
    import subprocess
    import sys

    nb = make_notebook(tmp_path, [("import joblib", ["imports"]), ("x = 1", ["step:a"]),
                                  ("import sklearn\ny = x + 1", ["step:b"])])

    def statuses():
        done = subprocess.run([sys.executable, "-m", "nbscale", "run", str(nb), "--engine", "local", "--output",
                               "json"], capture_output=True, text=True, cwd=tmp_path, timeout=120)
        assert done.returncode == 0, done.stderr
        return {s["name"]: (s["status"], s["stale"]) for s in json.loads(done.stdout)["steps"]}

    statuses()
    assert statuses() == {"a": ("cached", []), "b": ("cached", [])}


def test_a_url_holding_a_password_is_no_file_name_kept_anywhere(tmp_path):
    # a text that names no file yet is kept as a file that may appear: never a URL, nor a credential
    nb = make_notebook(tmp_path, [("db_url = 'postgresql://localhost/db'", ["parameters"]),
                                  ("host = db_url.split('@')[-1]\n"
                                   "other = 'mysql://root:An0therPassw0rd@db:3306/x'.split('@')[-1]", ["step:a"])])
    result = run_notebook(nb, {"db_url": "postgresql://admin:S3cretPassw0rd@dbhost:5432/prod"}, LOCAL)
    assert result.load("a")["host"] == "dbhost:5432/prod"
    for path in (tmp_path / ".nbscale").rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert b"S3cretPassw0rd" not in data and b"An0therPassw0rd" not in data, path


def test_a_package_installed_again_under_its_version_with_other_code_reruns_the_step(tmp_path):
    # a data scientist's own package, `pip install .` after an edit, its version left at 0.1.0; each
    # run a fresh `nbscale run` process, as from a terminal
    site = tmp_path / "venv" / "lib" / "site-packages"  # (beside the project, not in its folder)
    install_library(site, "mypkg", "0.1.0", "first")
    (tmp_path / "project").mkdir()
    nb = make_notebook(tmp_path / "project", [("import mypkg\nopen('seen.txt', 'w').write(mypkg.VALUE)", ["step:use"])])
    env = {**os.environ, "PYTHONPATH": str(site)}

    def run() -> dict:
        done = subprocess.run([sys.executable, "-m", "nbscale", "run", str(nb), "--engine", "local", "--output",
                               "json"], capture_output=True, text=True, env=env, timeout=300, cwd=nb.parent)
        assert done.returncode == 0, done.stderr
        return {step["name"]: step for step in json.loads(done.stdout)["steps"]}

    assert run()["use"]["status"] == "succeeded"
    assert run()["use"]["status"] == "cached"
    install_library(site, "mypkg", "0.1.0", "edited")
    use = run()["use"]
    assert use["status"] == "succeeded" and use["stale"] == ["mypkg 0.1.0 was installed again with other files"]
    assert (nb.parent / "seen.txt").read_text() == "edited"


def test_a_module_rewritten_under_its_old_size_and_mtime_reruns_the_step_with_its_new_code(tmp_path):
    # nbscale sees the change (its ctime), and the step it runs again must not import the module's
    # old bytecode, which Python checks against size and mtime only; each run a fresh `nbscale run`
    helpers = tmp_path / "helpers.py"
    helpers.write_text("def f():\n    return 1\n")
    py_compile.compile(str(helpers))  # as an import writes it
    nb = make_notebook(tmp_path, [("from helpers import f\nopen('seen.txt', 'w').write(str(f()))", ["step:use"])])

    def run() -> str:
        done = subprocess.run([sys.executable, "-m", "nbscale", "run", str(nb), "--engine", "local"],
                              capture_output=True, text=True, timeout=300, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        return (tmp_path / "seen.txt").read_text()

    assert run() == "1"
    rewrite_keeping_mtime(helpers, "def f():\n    return 2\n")
    assert run() == "2"
    # and with the cell edited too: a step that has no result to check imports the file as well
    py_compile.compile(str(helpers))  # (an import since, by anything)
    rewrite_keeping_mtime(helpers, "def f():\n    return 3\n")
    nb.write_text(nb.read_text().replace("str(f())", "str(f() + 0)"))
    assert run() == "3"


# C code (here libc through ctypes, as polars, DuckDB or h5py do) opens files where no audit event shows
C_READ = '''import ctypes
libc = ctypes.CDLL(None)
path = "/".join(["da" + "ta", "rows" + ".txt"])  # built as the step runs: no cell names the file
fd = libc.open(path.encode(), 0)
buf = ctypes.create_string_buffer(64)
size = libc.read(fd, buf, 64)
libc.close(fd)
rows = buf.raw[:size].decode().split()
del buf'''
C_WRITE = '''import ctypes, os
libc = ctypes.CDLL(None)
out = "-".join(["sum", "mary.txt"])
fd = libc.open(out.encode(), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
libc.write(fd, b"done", 4)
libc.close(fd)
made = True'''


def _counts_then_is_cached(nb, options, rows: int) -> None:
    """The first run of a notebook whose `count` step counts `rows`; run again unchanged, all is cached."""
    assert run_notebook(nb, options=options).load("count")["n"] == rows
    assert set(status(run_notebook(nb, options=options)).values()) == {"cached"}


@pytest.mark.parametrize("engine", ["dask", "papermill"])
def test_a_file_c_code_reads_or_writes_by_a_name_the_step_built_and_kept_is_a_dependency(tmp_path, engine):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "rows.txt").write_text("1 2\n")
    nb = make_notebook(tmp_path, [(C_READ, ["step:read"]), (C_WRITE, ["step:write"]),
                                  ("n = len(rows)", ["step:count"])])
    options = RunOptions(engine=engine)
    _counts_then_is_cached(nb, options, 2)
    (tmp_path / "data" / "rows.txt").write_text("1 2 3\n")  # read by C code only
    (tmp_path / "sum-mary.txt").unlink()  # written by C code only
    again = run_notebook(nb, options=options)
    assert status(again) == {"read": "succeeded", "write": "succeeded", "count": "succeeded"}
    assert again.load("count")["n"] == 3 and (tmp_path / "sum-mary.txt").read_text() == "done"
    assert any("data/rows.txt changed" in text for text in stale(again, "read"))
    assert any("sum-mary.txt" in text and "missing" in text for text in stale(again, "write"))
    assert set(status(run_notebook(nb, options=options)).values()) == {"cached"}  # its own write is no change


THREADED_READ = '''from concurrent.futures import ThreadPoolExecutor
import threading, subprocess
def load(i):
    with open("part%d.txt" % i) as f:
        return int(f.read())
with ThreadPoolExecutor(2) as ex:
    total = sum(ex.map(load, range(3)))
def write_summary():
    subprocess.run(["cp", "part" + "0.txt", "co" + "py.txt"], check=True)
writer = threading.Thread(target=write_summary)
writer.start()
writer.join()'''


@pytest.mark.parametrize("engine", ["dask", "local", "papermill"])
def test_files_a_steps_threads_read_and_their_processes_write_by_names_they_build_are_dependencies(tmp_path, engine):
    # the names are built in the threads: no audit event of the step's thread, no text of the step names them
    for i in range(3):
        (tmp_path / f"part{i}.txt").write_text(str(i))
    nb = make_notebook(tmp_path, [(THREADED_READ, ["step:load"]), ("doubled = 2 * total", ["step:use"])])
    options = RunOptions(engine=engine)
    assert run_notebook(nb, options=options).load("use")["doubled"] == 6
    assert set(status(run_notebook(nb, options=options)).values()) == {"cached"}
    (tmp_path / "part2.txt").write_text("12")
    again = run_notebook(nb, options=options)
    assert status(again) == {"load": "succeeded", "use": "succeeded"} and again.load("use")["doubled"] == 26
    assert any("part2.txt changed" in text for text in stale(again, "load"))
    (tmp_path / "copy.txt").unlink()  # written by a process a thread of the step started
    assert status(run_notebook(nb, options=options)) == {"load": "succeeded", "use": "cached"}
    assert (tmp_path / "copy.txt").read_text() == "0"
    assert set(status(run_notebook(nb, options=options)).values()) == {"cached"}


TESTED_FILES = '''import os
frames = []
for month in ["may", "june", "july"]:
    if os.path.exists("data/" + month + ".csv"):
        with open("data/" + month + ".csv") as f:
            frames.append(f.read())
del month
rows = len(frames)'''


@pytest.mark.parametrize("engine", ["dask", "local", "papermill"])
def test_a_file_a_step_tested_for_and_did_not_find_runs_it_again_when_it_appears(tmp_path, engine):
    # a month's data dropped later: no step opened it, no text of theirs names it
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "may.csv").write_text("a\n")
    nb = make_notebook(tmp_path, [(TESTED_FILES, ["step:load"]), ("n = rows", ["step:count"])])
    options = RunOptions(engine=engine)
    _counts_then_is_cached(nb, options, 1)
    (tmp_path / "data" / "july.csv").write_text("b\n")
    again = run_notebook(nb, options=options)
    assert status(again) == {"load": "succeeded", "count": "succeeded"} and again.load("count")["n"] == 2
    assert "data/july.csv appeared" in stale(again, "load")
    assert set(status(run_notebook(nb, options=options)).values()) == {"cached"}


@pytest.mark.parametrize("engine", ["dask", "local"])
def test_a_step_that_picks_the_newest_file_by_its_listing_runs_again_when_another_becomes_newest(tmp_path, engine):
    # the names stay the same; only what the entries' stat() shows changes, which no os.stat shows
    (tmp_path / "exports").mkdir()
    for i, name in enumerate(["a.csv", "b.csv"]):
        (tmp_path / "exports" / name).write_text(f"{name}\n")
        os.utime(tmp_path / "exports" / name, ns=(10**18 + i, 10**18 + i))
    code = "import os\nnewest = max(os.scandir('exports'), key=lambda e: e.stat().st_mtime_ns).name"
    nb = make_notebook(tmp_path, [(code, ["step:pick"])])
    options = RunOptions(engine=engine)
    assert run_notebook(nb, options=options).load("pick")["newest"] == "b.csv"
    assert status(run_notebook(nb, options=options)) == {"pick": "cached"}
    os.utime(tmp_path / "exports" / "a.csv")
    again = run_notebook(nb, options=options)
    assert again.load("pick")["newest"] == "a.csv" and stale(again, "pick") == ["exports/a.csv changed (size or times)"]


LOADED_IN_WORKERS = """from joblib import Parallel, delayed

def load(month):
    with open(f"data/{month}.csv") as rows:
        return len(rows.read().split())

rows = sum(Parallel(n_jobs=2)(delayed(load)(m) for m in ["may", "june"]))"""


# (not the local engine here: a step there starts loky's workers and resource tracker in this test
# process, marked as a step's, and they outlive it; `test_other_processes` records in this process)
@pytest.mark.parametrize("engine", ["dask", "papermill"])
def test_files_a_step_reads_in_joblib_workers_by_names_they_build_are_dependencies(tmp_path, engine):
    # loky's worker processes read them (and outlive the step): no audit hook of the step's sees it
    (tmp_path / "data").mkdir()
    for month in ("may", "june"):
        (tmp_path / "data" / f"{month}.csv").write_text("a\n")
    nb = make_notebook(tmp_path, [(LOADED_IN_WORKERS, ["step:load"]), ("n = rows", ["step:count"])])
    options = RunOptions(engine=engine)
    _counts_then_is_cached(nb, options, 2)
    (tmp_path / "data" / "june.csv").write_text("a\nb\n")
    again = run_notebook(nb, options=options)
    assert again.load("count")["n"] == 3 and stale(again, "load") == ["data/june.csv changed (content)"]
    assert set(status(run_notebook(nb, options=options)).values()) == {"cached"}


@pytest.mark.parametrize("engine", ["dask", "local"])
def test_a_step_that_looks_up_a_version_is_cached_on_a_cluster_whose_scratch_folders_are_gone(tmp_path, engine):
    # the lookup stats every folder on sys.path, the Dask worker's scratch folder among them
    nb = make_notebook(tmp_path, [("import importlib.metadata\nv = importlib.metadata.version('numpy')",
                                   ["step:version"])])
    options = RunOptions(engine=engine)
    assert run_notebook(nb, options=options).load("version")["v"]
    assert status(run_notebook(nb, options=options)) == {"version": "cached"}


def test_a_folder_a_step_tested_for_runs_it_again_when_it_appears_or_goes_not_when_it_fills(tmp_path):
    (tmp_path / "parts" / "may").mkdir(parents=True)
    nb = make_notebook(tmp_path, [("import os\nfound = [m for m in ['may', 'june'] if os.path.isdir('parts/' + m)]",
                                   ["step:find"])])
    assert run_notebook(nb, options=LOCAL).load("find")["found"] == ["may"]
    (tmp_path / "parts" / "may" / "1.csv").write_text("x\n")  # what it holds: the step never looked
    assert status(run_notebook(nb, options=LOCAL)) == {"find": "cached"}
    (tmp_path / "parts" / "june").mkdir()
    again = run_notebook(nb, options=LOCAL)
    assert again.load("find")["found"] == ["may", "june"] and "parts/june appeared" in stale(again, "find")
    shutil.rmtree(tmp_path / "parts" / "may")
    again = run_notebook(nb, options=LOCAL)
    assert again.load("find")["found"] == ["june"] and "parts/may is missing" in stale(again, "find")
    assert status(run_notebook(nb, options=LOCAL)) == {"find": "cached"}


def test_a_name_a_step_builds_and_hands_to_a_later_writer_does_not_make_it_run_again_each_time(tmp_path):
    # the later step writes the file anew every run (a PDF stamped with its time): the step that
    # named it did not read it, and must not run again after each of its writes
    nb = make_notebook(tmp_path, [("import os\nREPORT = ''.join(['rep', 'ort.txt'])\nx = 1", ["step:name"]),
                                  ("open(REPORT, 'w').write(os.urandom(8).hex())", ["step:write", "cache:off"])])
    run_notebook(nb, options=LOCAL)
    cells = json.loads(nb.read_text())
    cells["cells"][0]["source"] = "".join(cells["cells"][0]["source"]).replace("x = 1", "x = 2")
    nb.write_text(json.dumps(cells))  # the step runs again while the file is there
    assert status(run_notebook(nb, options=LOCAL))["name"] == "succeeded"
    for _ in range(2):
        assert status(run_notebook(nb, options=LOCAL)) == {"name": "cached", "write": "succeeded"}


def test_a_text_naming_the_notebook_itself_is_no_dependency_an_edit_of_another_cell_changes(tmp_path):
    nb = make_notebook(tmp_path, [("title = 'Report of ' + 'nb.ipynb'\nsource = 'nb.ipynb'", ["step:a"]),
                                  ("t = title", ["step:b"])])
    assert nb.name == "nb.ipynb"
    run_notebook(nb, options=LOCAL)
    cells = json.loads(nb.read_text())
    cells["cells"][-1]["source"] = "t = title + '!'"
    nb.write_text(json.dumps(cells))  # the notebook file changed
    assert status(run_notebook(nb, options=LOCAL)) == {"a": "cached", "b": "succeeded"}


def test_a_file_named_by_a_constant_of_the_imports_cell_is_read_after_its_writer_writes_it_anew(tmp_path):
    # `CLEAN = DATA_DIR + "/clean.csv"`: the reader, with no edge to the writer, stayed cached while
    # the writer wrote the file anew for a new parameter (2 rows read where top to bottom reads 3)
    (tmp_path / "raw.csv").write_text("a\n1\n3\n5\n")
    nb = make_notebook(tmp_path, [("import pandas as pd\nDATA_DIR = '.'\nCLEAN = DATA_DIR + '/clean.csv'", ["imports"]),
                                  ("thr = 2", ["parameters"]),
                                  ("df = pd.read_csv('raw.csv')\ndf[df.a > thr].to_csv(CLEAN, index=False)",
                                   ["step:prep"]),
                                  ("rows = len(pd.read_csv(CLEAN))", ["step:use"])])
    assert run_notebook(nb, options=LOCAL).load("use")["rows"] == 2
    again = run_notebook(nb, {"thr": 0}, options=LOCAL)
    assert again.load("use")["rows"] == 3 and status(again) == {"prep": "succeeded", "use": "succeeded"}


@pytest.mark.parametrize("append", [
    "P = 'r.txt'\nwith open(P, 'a') as f:\n    f.write(f'm1 {k}\\n')",
    "mode = 'a'\nwith open('r.txt', mode) as f:\n    f.write(f'm1 {k}\\n')",
    "import os\nwith open(os.path.join('.', 'r.txt'), 'a') as f:\n    f.write(f'm1 {k}\\n')",
], ids=["a-name", "a-mode-by-name", "a-joined-name"])
def test_a_step_that_appends_to_a_file_under_a_name_no_text_shows_runs_with_its_writer(tmp_path, append):
    # `m1` ran again alone for its new parameter and appended to the file `init` had left with m1's
    # earlier line: `start / m1 1 / m1 2`, where top to bottom gives `start / m1 2`
    nb = make_notebook(tmp_path, [("k = 1", ["parameters"]), ("open('r.txt', 'w').write('start\\n')", ["step:init"]),
                                  (append, ["step:m1"]), ("lines = open('r.txt').read().splitlines()", ["step:out"])])
    assert run_notebook(nb, options=LOCAL).load("out")["lines"] == ["start", "m1 1"]
    again = run_notebook(nb, {"k": 2}, options=LOCAL)
    assert again.load("out")["lines"] == ["start", "m1 2"]
    assert status(again)["init"] == "succeeded" and any("m1" in t for t in stale(again, "init"))


def test_a_file_whose_name_is_built_as_the_steps_run_orders_them_as_their_last_runs_recorded(tmp_path):
    # `os.path.join(DATA_DIR, f"clean_{STAMP}.csv")`, a name known only as the steps run, makes no edge:
    # the reader stayed cached while the writer wrote the file anew, and on Dask it ran beside the
    # writer; learned from their latest results, it is decided once the writer ends, and waits for it
    (tmp_path / "raw.csv").write_text("a\n1\n3\n5\n")
    nb = make_notebook(tmp_path, [
        ("import os, time\nimport pandas as pd\nDATA_DIR = '.'\nSTAMP = time.strftime('%Y')", ["imports"]),
        ("thr = 2", ["parameters"]),
        ("time.sleep(1)\ndf = pd.read_csv('raw.csv')\n"
         "df[df.a > thr].to_csv(os.path.join(DATA_DIR, f'clean_{STAMP}.csv'))", ["step:prep"]),
        ("rows = len(pd.read_csv(os.path.join(DATA_DIR, f'clean_{STAMP}.csv')))", ["step:use"])])
    assert compile_notebook(nb).step("use").after == []
    assert run_notebook(nb, options=LOCAL).load("use")["rows"] == 2  # (a first run has no record to learn from)
    why = cache_report(nb, {"thr": 0}, options=LOCAL)["use"]
    assert not why["reused"] and any("which prep (that runs again) last wrote before it" in t for t in why["why"])
    again = run_notebook(nb, {"thr": 0}, options=RunOptions(engine="dask", workers=2))
    assert again.load("use")["rows"] == 3 and status(again) == {"prep": "succeeded", "use": "succeeded"}
    assert cache_report(nb, {"thr": 0}, options=LOCAL)["use"]["reused"]  # (nothing changed since)


@pytest.mark.parametrize("engine", ["local", "dask"])
def test_a_step_importing_a_module_an_earlier_step_writes_runs_after_it_with_the_new_module(tmp_path, engine):
    # the importer was reused with the module's old value, one run behind the parameter (and on Dask
    # it could run beside the writer): its module was checked before the run, not once the writer ran
    nb = make_notebook(tmp_path, [("import json", ["imports"]), ("k = 2", ["parameters"]),
                                  ("with open('gen_mod.py', 'w') as f:\n    f.write('K = %d\\n' % (k * 10))",
                                   ["step:gen"]),
                                  ("import gen_mod\nv = gen_mod.K", ["step:use"])])
    options = RunOptions(engine=engine)
    assert run_notebook(nb, options=options).load("use")["v"] == 20
    for k in (3, 5):
        again = run_notebook(nb, {"k": k}, options=options)
        assert again.load("use")["v"] == k * 10 and status(again) == {"gen": "succeeded", "use": "succeeded"}
    assert set(status(run_notebook(nb, {"k": 5}, options=options)).values()) == {"cached"}


def test_a_module_imported_under_a_name_built_as_the_step_runs_orders_the_steps_as_their_last_runs_recorded(tmp_path):
    # no text shows which module `import_module` loads: from their latest results, the importer is
    # decided once the step that wrote its module ends
    nb = make_notebook(tmp_path, [("import importlib", ["imports"]), ("k = 2", ["parameters"]),
                                  ("with open('gen' + '_mod.py', 'w') as f:\n    f.write('K = %d\\n' % (k * 10))",
                                   ["step:gen"]),
                                  ("v = importlib.import_module('gen' + '_mod').K", ["step:use"])])
    assert compile_notebook(nb).step("use").after == []
    assert run_notebook(nb, options=LOCAL).load("use")["v"] == 20
    why = cache_report(nb, {"k": 3}, options=LOCAL)["use"]
    assert not why["reused"] and any("gen_mod.py, which gen (that runs again) last wrote" in t for t in why["why"])
    again = run_notebook(nb, {"k": 3}, options=LOCAL)
    assert again.load("use")["v"] == 30 and status(again) == {"gen": "succeeded", "use": "succeeded"}


SQLITE_STEPS = [
    ("import json\nimport sqlite3\nimport pandas as pd", ["imports"]),
    ("k = 1", ["parameters"]),
    ("con = sqlite3.connect('res.db')\npd.DataFrame({'a': [0]}).to_sql('t', con, if_exists='replace', index=False)\n"
     "con.close()", ["step:init"]),
    ("con = sqlite3.connect('res.db')", ["step:m1"]),
    ("pd.DataFrame({'a': [k]}).to_sql('t', con, if_exists='append', index=False)\ncon.close()", []),
    ("con = sqlite3.connect('res.db')\nrows = pd.read_sql('SELECT a FROM t', con).a.tolist()\ncon.close()",
     ["step:out"]),
]


@pytest.mark.parametrize("engine", ["local", "dask", "papermill", "kfp-local"])
def test_steps_that_change_a_database_in_turn_run_together_and_leave_what_top_to_bottom_leaves(tmp_path, engine):
    # `to_sql` of a table, then a step appending rows to it: SQLite changes the file from C, and once
    # no step wrote it, for nbscale: they could run in any order, the rerun of `init` alone (its
    # file changed) emptied the table under a cached `m1`, a new `k` ran `m1` alone ([0, 1, 2])
    nb = make_notebook(tmp_path, SQLITE_STEPS)
    options = RunOptions(engine=engine)

    def table():
        import sqlite3

        with sqlite3.connect(tmp_path / "res.db") as con:
            return [a for (a,) in con.execute("SELECT a FROM t")]

    assert run_notebook(nb, options=options).load("out")["rows"] == [0, 1] and table() == [0, 1]
    assert set(status(run_notebook(nb, options=options)).values()) == {"cached"} and table() == [0, 1]
    changed = run_notebook(nb, {"k": 2}, options=options)
    assert status(changed) == {"init": "succeeded", "m1": "succeeded", "out": "succeeded"}
    assert changed.load("out")["rows"] == [0, 2] and table() == [0, 2]
    with __import__("sqlite3").connect(tmp_path / "res.db") as con:  # another hand adds a row
        con.execute("INSERT INTO t VALUES (99)")
    again = run_notebook(nb, {"k": 2}, options=options)
    assert again.load("out")["rows"] == [0, 2] and table() == [0, 2]
    assert set(status(run_notebook(nb, {"k": 2}, options=options)).values()) == {"cached"}


def test_steps_that_only_query_a_database_stay_parallel_and_cached(tmp_path):
    import sqlite3

    with sqlite3.connect(tmp_path / "data.db") as con:
        con.execute("CREATE TABLE t (a)")
        con.executemany("INSERT INTO t VALUES (?)", [(1,), (2,)])
    nb = make_notebook(tmp_path, [
        ("import sqlite3", ["imports"]),
        ("n = sqlite3.connect('data.db').execute('SELECT count(*) FROM t').fetchone()[0]", ["step:count"]),
        ("s = sqlite3.connect('data.db').execute('SELECT sum(a) FROM t').fetchone()[0]", ["step:total"]),
    ])
    first = run_notebook(nb, options=LOCAL)
    assert first.load("count")["n"] == 2 and first.load("total")["s"] == 3
    assert set(status(run_notebook(nb, options=LOCAL)).values()) == {"cached"}
    assert [s.after for s in compile_notebook(nb).steps] == [[], []]


def test_a_password_in_a_script_the_step_runs_is_kept_nowhere(tmp_path):
    # the scripts' words that name no file (a password) were kept in the fingerprint as absent files,
    # and nbscale's own look at them as the step's stats
    (tmp_path / "fetch.sh").write_text("#!/bin/sh\nexport DB_PASSWORD=Tr0ub4dor.3\ncat list.txt\n")
    (tmp_path / "tool.py").write_text('PASSWORD = "Zebra.Horse.42"\nprint(open("list.txt").read())\n')
    (tmp_path / "list.txt").write_text("a")
    nb = make_notebook(tmp_path, [
        ("import subprocess, sys\nsubprocess.run(['bash', 'fetch.sh'], check=True)\n"
         "out = subprocess.run([sys.executable, 'tool.py'], capture_output=True, text=True).stdout", ["step:run"])])
    assert run_notebook(nb, options=LOCAL).load("run")["out"].strip() == "a"
    kept = b"".join(p.read_bytes() for p in (tmp_path / ".nbscale").rglob("*") if p.is_file())
    assert b"Zebra.Horse.42" not in kept and b"Tr0ub4dor.3" not in kept
    (tmp_path / "list.txt").write_text("b")  # what both scripts read is still the step's
    assert status(run_notebook(nb, options=LOCAL)) == {"run": "succeeded"}
