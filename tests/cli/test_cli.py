"""The `nbscale` command line, run as a real process: exit codes, output, files and import weight."""

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap

import nbformat
import pytest
from click.testing import CliRunner
from conftest import ROOT

from nbscale.cli import main

IRIS = ROOT / "examples" / "iris.ipynb"
HEAVY = ["dask", "distributed", "kfp", "papermill", "jupyter_server", "IPython", "pandas", "numpy"]


def nbscale(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "nbscale", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd or ROOT, timeout=60)


@pytest.fixture
def undefined_nb(make_notebook, tmp_path):
    return make_notebook(tmp_path, [
        ("import math", ["imports"]),
        ("x = math.pi", ["step:a"]),
        ("y = x\nz = y + missing_name", ["step:b"]),
    ], name="broken")


@pytest.fixture
def malformed_nb(tmp_path):
    path = tmp_path / "malformed.ipynb"
    path.write_text('{"nbformat": 4,\n "cells": [}', encoding="utf-8")
    return path


# -- check ---------------------------------------------------------------------------------


def test_check_passes_on_iris():
    out = nbscale("check", IRIS)
    assert out.returncode == 0, out.stdout + out.stderr
    assert re.search(r"iris\.ipynb: \d+ steps, 0 error\(s\), 0 warning\(s\)", out.stdout)


def test_check_reports_an_undefined_name_and_exits_1(undefined_nb):
    out = nbscale("check", undefined_nb)
    assert out.returncode == 1
    # the third cell (index 2), as JupyterLab's status bar numbers it
    line = f"{undefined_nb}:cell 3:2:9: error[undefined-name]: name 'missing_name' is not defined before it is used"
    assert line in out.stdout.splitlines()
    assert "1 error(s)" in out.stdout


def test_check_numbers_cells_as_jupyterlab_does_markdown_cells_included(tmp_path, make_notebook):
    path = make_notebook(tmp_path, [("print(missing)", []), nbformat.v4.new_markdown_cell("# Notes"),
                                    ("print(missing_too)", [])])
    out = nbscale("check", path)
    assert out.returncode == 1
    assert [line.split(": ")[0] for line in out.stdout.splitlines() if "error[" in line] == [
        f"{path}:cell 1:1:7", f"{path}:cell 3:1:7"]


def test_check_prints_hints(tmp_path, make_notebook):
    path = make_notebook(tmp_path, [("value = 1", ["step:a"]), ("print(valeu)", ["step:b"])])
    out = nbscale("check", path)
    assert out.returncode == 1
    assert "    hint: did you mean 'value'?" in out.stdout


def test_check_warnings_alone_exit_0(tmp_path, make_notebook):
    path = make_notebook(tmp_path, [("a = 1", ["parameters"]), ("a = 2", ["parameters"]), ("b = a", [])])
    out = nbscale("check", path)
    assert out.returncode == 0, out.stdout
    assert "warning[duplicate-parameter]" in out.stdout
    assert "0 error(s), 1 warning(s)" in out.stdout


def test_a_second_check_of_an_unchanged_notebook_comes_from_the_users_cache_folder(tmp_path, make_notebook):
    import os

    (tmp_path / "project").mkdir()
    path = make_notebook(tmp_path / "project", [("x = 1", ["step:a"]), ("y = x + z", ["step:b"])])
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    first, second = (subprocess.run([sys.executable, "-m", "nbscale", "check", str(path)], capture_output=True,
                                    text=True, env=env, timeout=60) for _ in range(2))
    assert first.returncode == second.returncode == 1 and "undefined" in first.stdout
    assert (first.stdout, first.stderr) == (second.stdout, second.stderr)
    assert len(list((tmp_path / "cache" / "nbscale" / "compile").glob("*.ir"))) == 1
    assert sorted(p.name for p in (tmp_path / "project").iterdir()) == ["nb.ipynb"]  # nothing beside it


def test_check_exits_2_on_malformed_json(malformed_nb):
    out = nbscale("check", malformed_nb)
    assert out.returncode == 2
    assert "not valid JSON (line 2" in out.stderr
    assert "Traceback" not in out.stderr


def test_check_exits_2_on_a_missing_file(tmp_path):
    out = nbscale("check", tmp_path / "nope.ipynb")
    assert out.returncode == 2
    assert "no such file" in out.stderr


def test_check_exits_2_on_a_bad_notebook_version(tmp_path):
    path = tmp_path / "v5.ipynb"
    path.write_text(json.dumps({"nbformat": 5, "cells": []}))
    assert nbscale("check", path).returncode == 2


def test_ctrl_c_while_a_command_loads_exits_130_not_1(monkeypatch, tmp_path, make_notebook):
    # click's own answer to a Ctrl-C is "Aborted!" and 1, which reads as a failure
    import nbscale.cli as cli

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_compile", interrupted)
    result = CliRunner().invoke(main, ["check", str(make_notebook(tmp_path, [("x = 1", ["step:a"])]))])
    assert result.exit_code == 130 and "Aborted" not in result.output


def test_bad_arguments_exit_2():
    assert nbscale("check").returncode == 2
    assert nbscale("frobnicate", IRIS).returncode == 2


def test_version_and_help():
    out = nbscale("--version")
    assert out.returncode == 0 and "0.1.0" in out.stdout
    out = nbscale("--help")
    assert out.returncode == 0
    for command in ["check", "compile", "graph"]:
        assert command in out.stdout


# -- compile -------------------------------------------------------------------------------


def test_compile_writes_the_ir(tmp_path):
    target = tmp_path / "out.json"
    out = nbscale("compile", IRIS, "--target", "ir", "-o", target)
    assert out.returncode == 0, out.stderr
    ir = json.loads(target.read_text(encoding="utf-8"))
    assert ir["schema"] == "nbscale.pipeline/1"
    assert ir["name"] == "iris" and ir["notebook"] == "iris.ipynb"
    assert [s["name"] for s in ir["steps"]]
    assert out.stdout == ""
    assert not list(tmp_path.glob(".*.tmp")), "no temporary file left behind"


def test_compile_to_stdout(tmp_path):
    out = nbscale("compile", IRIS)
    assert out.returncode == 0
    assert json.loads(out.stdout)["schema"] == "nbscale.pipeline/1"
    dashed = nbscale("compile", IRIS, "-o", "-", cwd=tmp_path)  # (it wrote a file named "-")
    assert dashed.returncode == 0 and json.loads(dashed.stdout) == json.loads(out.stdout)
    assert not (tmp_path / "-").exists()


def test_compile_with_errors_writes_nothing_and_exits_1(undefined_nb, tmp_path):
    target = tmp_path / "out.json"
    out = nbscale("compile", undefined_nb, "--target", "ir", "-o", target)
    assert out.returncode == 1
    assert not target.exists()
    assert "error[undefined-name]" in out.stderr
    assert "nothing written" in out.stderr
    assert out.stdout == ""


def test_a_notebook_name_with_escape_codes_is_printed_as_text(tmp_path, make_notebook):
    name = "e\x1b]0;PWNED\x07\u202ex"  # a window title change and a right-to-left override
    path = make_notebook(tmp_path, [("y = missing", ["step:a"])], name=name)
    checked, compiled = nbscale("check", path), nbscale("compile", path, "--target", "kfp", "-o", tmp_path / "p.yaml")
    assert (checked.returncode, compiled.returncode) == (1, 1)
    for printed in (checked.stdout, compiled.stderr):
        assert "\x1b" not in printed and "\u202e" not in printed and "e\\x1b]0;PWNED\\x07\\u202ex.ipynb" in printed


def test_compile_with_errors_prints_nothing_on_stdout(undefined_nb):
    out = nbscale("compile", undefined_nb)
    assert out.returncode == 1 and out.stdout == ""


def test_compile_malformed_exits_2(malformed_nb, tmp_path):
    target = tmp_path / "out.json"
    out = nbscale("compile", malformed_nb, "-o", target)
    assert out.returncode == 2 and not target.exists()


def test_compile_into_a_missing_folder_is_a_clear_error(tmp_path):
    out = nbscale("compile", IRIS, "-o", tmp_path / "no" / "such" / "out.json")
    assert out.returncode == 2
    assert "cannot write" in out.stderr
    assert "Traceback" not in out.stderr


def test_compile_never_writes_over_the_notebook_or_one_output_over_the_other(tmp_path):
    nb = tmp_path / "iris.ipynb"
    shutil.copy(IRIS, nb)
    (tmp_path / "link.ipynb").symlink_to(nb)
    os.link(nb, tmp_path / "hard.ipynb")
    original = nb.read_bytes()
    for args in (["-o", nb], ["--target", "kfp", "-o", "./iris.ipynb"], ["-o", tmp_path / "link.ipynb"],
                 ["-o", tmp_path / "hard.ipynb"], ["--target", "kfp", "-o", "p.yaml", "--emit-python", nb]):
        out = nbscale("compile", nb, *args, cwd=tmp_path)
        assert out.returncode == 2 and "is the notebook itself; nothing written" in out.stderr, (args, out.stderr)
    both = nbscale("compile", nb, "--target", "kfp", "-o", "p.yaml", "--emit-python", tmp_path / "p.yaml", cwd=tmp_path)
    assert both.returncode == 2 and "-o and --emit-python are both p.yaml; nothing written" in both.stderr
    assert nb.read_bytes() == original and not (tmp_path / "p.yaml").exists()


def test_compile_to_kfp_of_a_notebook_with_nothing_to_run_is_refused_as_run_refuses_it(tmp_path):
    nb = tmp_path / "notes.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("notes"),
                                                   nbformat.v4.new_code_cell("")]), nb)
    out = nbscale("compile", "--target", "kfp", "-o", "p.yaml", "notes.ipynb", cwd=tmp_path)
    assert out.returncode == 2 and out.stderr == (
        "error: notes.ipynb: nothing to run: its code cells are empty, comments, or tagged imports, functions, "
        "parameters or skip\n"), out.stderr
    assert not (tmp_path / "p.yaml").exists()


def test_a_notebook_path_that_is_a_symlink_loop_cannot_be_read(tmp_path):
    (tmp_path / "a.ipynb").symlink_to("b.ipynb")
    (tmp_path / "b.ipynb").symlink_to("a.ipynb")
    loop = "error: a.ipynb: cannot be read: [Errno 40] Too many levels of symbolic links: 'a.ipynb'\n"
    for args in (["compile", "-o", "out.json"], ["compile", "--target", "kfp", "-o", "p.yaml", "--emit-python", "p.py"],
                 ["check"], ["graph"], ["run", "--engine", "local"]):
        out = nbscale(*args, "a.ipynb", cwd=tmp_path)
        assert (out.returncode, out.stderr) == (2, loop), args
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.ipynb", "b.ipynb"]


def test_compile_unknown_target_exits_2(tmp_path):
    assert nbscale("compile", IRIS, "--target", "yaml").returncode == 2


# -- graph ---------------------------------------------------------------------------------


def test_graph_text():
    out = nbscale("graph", IRIS)
    assert out.returncode == 0
    assert "split -> train_lr  [X_train, y_train]" in out.stdout.splitlines()


def test_graph_formats_in_process():
    runner = CliRunner()
    mermaid = runner.invoke(main, ["graph", "--format", "mermaid", str(IRIS)])
    assert mermaid.exit_code == 0 and mermaid.output.startswith("graph TD\n")
    dot = runner.invoke(main, ["graph", "--format", "dot", str(IRIS)])
    assert dot.exit_code == 0 and dot.output.startswith('digraph "iris" {')
    arrows = sum("->" in line for line in dot.output.splitlines())
    assert arrows == sum("-->" in line or "-.->" in line for line in mermaid.output.splitlines()) > 0
    text = runner.invoke(main, ["graph", "--format", "text", str(IRIS)])
    assert text.exit_code == 0 and sum(" -> " in line for line in text.output.splitlines()) == arrows


def test_graph_unknown_format_exits_2():
    assert nbscale("graph", "--format", "svg", IRIS).returncode == 2


def test_graph_of_a_notebook_with_errors_shows_both_and_exits_1(undefined_nb):
    out = nbscale("graph", undefined_nb)
    assert out.returncode == 1
    assert "error[undefined-name]" in out.stderr
    assert "a -> b  [x]" in out.stdout


# -- import weight -------------------------------------------------------------------------


def test_check_imports_no_heavy_package():
    script = textwrap.dedent(f"""
        import sys
        from nbscale.cli import main
        try:
            main(["check", {str(IRIS)!r}])
        except SystemExit as exc:
            code = exc.code
        heavy = [m for m in {HEAVY!r} if m in sys.modules]
        print("RESULT", code, "heavy=" + ",".join(heavy))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    result = out.stdout.strip().splitlines()[-1]
    assert result == "RESULT 0 heavy=", result


def test_importtime_of_check_lists_no_heavy_package():
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "nbscale", "check", str(IRIS)],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0
    imported = {line.split("|")[-1].strip().split(".")[0] for line in out.stderr.splitlines()
                if line.startswith("import time:")}
    assert "nbscale" in imported
    assert not imported & set(HEAVY), imported & set(HEAVY)


def test_graph_why_explains_an_edge_and_says_when_there_is_none(tmp_path, make_notebook):
    path = make_notebook(tmp_path, [
        ("X = [[0.0], [1.0]]\ny = [0, 1]", ["step:data"]),
        ("class Model:\n    def fit(self, X, y):\n        self.n = len(X)\n        return self", ["step:model"]),
        ("m1 = Model()\nm1.fit(X, y)", ["step:a"]),
        ("m2 = Model()\nm2.fit(X, y)", ["step:b"]),
    ])
    edge = nbscale("graph", path, "--why", "data", "b")
    assert edge.returncode == 0, edge.stderr
    assert "b reads X" in edge.stdout and "cell 1" in edge.stdout  # cells numbered as JupyterLab shows them
    parallel = nbscale("graph", path, "--why", "a", "b")  # fitting m1 does not change X: no edge
    assert parallel.returncode == 0 and "b reads" not in parallel.stdout, parallel.stdout
    unknown = nbscale("graph", path, "--why", "a", "nope")
    assert unknown.returncode == 2 and "no step named 'nope'" in unknown.stdout + unknown.stderr


def test_graph_why_of_a_step_and_itself_is_refused():
    out = nbscale("graph", IRIS, "--why", "load", "load")
    assert (out.returncode, out.stdout) == (2, "")
    assert out.stderr == "error: --why needs two different steps, not load twice\n"
