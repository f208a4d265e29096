"""IPython syntax → Python for analysis: what magics bind and read, and line numbers kept."""

import ast
import subprocess
import sys
import textwrap

import pytest

from nbscale.compiler import compile_source
from nbscale.compiler.syntax import expanded_names, to_python


def codes(pipeline):
    return [d.code for d in pipeline.diagnostics]


def names(source):
    """(stored, loaded) names of the Python that `source` stands for."""
    tree = ast.parse(to_python(source))
    stored = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    loaded = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    return stored, loaded


def test_time_line_magic_is_the_statement_it_times():
    assert to_python("%time x = f(y)") == "x = f(y)"
    assert names("%time x = f(y)") == ({"x"}, {"f", "y"})


def test_timeit_options_are_dropped():
    assert to_python("%timeit -n 10 -r 3 total = sum(xs)") == "class __nbscale_timeit__: total = sum(xs)"


def test_time_inside_a_block_keeps_its_indentation():
    assert to_python("if ok:\n    %time x = 1") == "if ok:\n    x = 1"


def test_capture_binds_its_target_and_the_body_is_analysed():
    stored, loaded = names("%%capture out\nz = g(w)\nprint(z)")
    assert stored == {"out", "z"}
    assert loaded == {"g", "w", "print", "z"}


def test_capture_with_options_binds_the_name_after_them():
    assert names("%%capture --no-stderr cap\nx = 1")[0] == {"cap", "x"}


def test_capture_without_a_name_binds_nothing_extra():
    assert names("%%capture\nx = 1")[0] == {"x"}


@pytest.mark.parametrize("magic", ["%%bash", "%%sh", "%%writefile out.py", "%%html", "%%javascript", "%%python3"])
def test_non_python_cell_magic_body_is_ignored(magic):
    source = f"{magic}\necho $x\nimport os\ny = z"
    python = to_python(source)
    assert python.strip() == ""
    assert python.count("\n") == source.count("\n")


def test_time_cell_magic_body_is_python():
    assert names("%%time\nmodel = fit(X)")[0] == {"model"}


def test_shell_escapes():
    stored, loaded = names("!ls -la")
    assert stored == set() and loaded == {"get_ipython"}
    assert names("files = !ls")[0] == {"files"}


def test_help_syntax_reads_nothing():
    stored, loaded = names("obj?")
    assert "obj" not in loaded and stored == set()
    assert "obj" not in names("obj??")[1]


def test_line_magic_in_an_assignment():
    assert names("home = %env HOME")[0] == {"home"}


def test_modulo_is_not_a_magic():
    assert to_python("x = 5 % 3") == "x = 5 % 3"
    assert to_python("x = a %b") == "x = a %b"


def test_line_numbers_are_kept():
    source = "%matplotlib inline\n!pip list\nx = 1\n%time y = x\nz = y"
    python = to_python(source)
    assert python.count("\n") == source.count("\n")
    assert python.split("\n")[2:] == ["x = 1", "y = x", "z = y"]


def test_cell_magic_after_blank_lines_keeps_line_numbers():
    source = "\n\n%%capture out\nx = 1\ny = x"
    python = to_python(source)
    assert python.split("\n") == ["", "", "out = None", "x = 1", "y = x"]


def test_syntax_error_after_a_magic_reports_the_users_line():
    p = compile_source(["%matplotlib inline\nx = 1\ny = (\n"])
    [diag] = p.diagnostics
    assert diag.code == "syntax-error"
    assert (diag.cell, diag.line) == (0, 3)


def test_syntax_error_in_a_capture_body_reports_the_users_line():
    p = compile_source(["%%capture out\nx = 1\nx +* 2"])
    [diag] = p.diagnostics
    assert (diag.code, diag.line) == ("syntax-error", 3)


def test_undefined_name_after_magics_points_at_the_right_line_and_column():
    p = compile_source(["!echo hi\n%time a = 1\nb = a + missing"])
    [diag] = p.diagnostics
    assert (diag.code, diag.line, diag.col) == ("undefined-name", 3, 9)


def test_magic_bound_names_flow_between_steps():
    p = compile_source([
        ("%time x = 1\nfiles = !ls", ["step:a"]),
        ("%%capture log\nprint(x, files)", ["step:b"]),
        ("log.show()", ["step:c"]),
    ])
    assert not p.has_errors, p.diagnostics
    assert p.step("b").inputs == ["files", "x"]
    assert p.step("c").sources == {"log": "b"}


def test_the_names_ipython_expands_in_a_command():
    assert expanded_names("echo {a} {b + 1} $c $d.e {x[1:2]} {{literal}} $$f {len(g)!r}") == {
        "a", "b", "c", "d", "x", "len", "g"}
    assert expanded_names("ls -la") == set()
    assert expanded_names("echo {unbalanced") == set()  # IPython leaves it as written
    assert expanded_names("echo {not python here}") == set()


def test_names_in_shell_commands_and_magic_lines_are_inputs():
    p = compile_source([
        ("folder = 'data'\nname = 'out.txt'", ["parameters"]),
        ("n = 3", ["step:a"]),
        ("out = !echo {n + 1} $name\n%cd {folder}", ["step:b"]),
        ("%%writefile {name}\ntext {n}", ["step:c"]),
    ])
    assert not p.has_errors, p.diagnostics
    assert (p.step("b").inputs, p.step("b").parameters) == (["n"], ["folder", "name"])
    # a cell magic's body is not expanded, its line is
    assert (p.step("c").inputs, p.step("c").parameters) == ([], ["name"])


def test_a_name_a_command_expands_need_not_exist():
    """`!echo $HOME` is the shell's variable when the notebook has no HOME: IPython leaves the
    command as written when a name is missing."""
    p = compile_source([("!echo $HOME {missing}", ["step:a"])])
    assert "undefined-name" not in codes(p) and p.step("a").inputs == []


def test_bash_cell_reads_no_python_names():
    p = compile_source([("w = 1", ["step:a"]), ("%%bash\necho $w", ["step:b"])])
    assert p.step("b").inputs == [] and p.step("b").after == []
    assert "undefined-name" not in codes(p)


def test_original_text_is_kept_in_the_step():
    source = "%time x = 1\n!ls"
    p = compile_source([source])
    assert p.steps[0].source == [source]


def test_pure_python_notebook_does_not_import_ipython(tmp_path):
    script = textwrap.dedent("""
        import sys
        from nbscale.compiler import compile_source
        p = compile_source([
            ("import math\\nx = [1, 2]\\ns = 'what? 50% = !'", ["step:a"]),
            ("y = math.fsum(x)  # comment\\nz = {'k': y % 2}", ["step:b"]),
        ])
        assert not p.diagnostics, p.diagnostics
        print("IPython" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_a_notebook_with_magics_does_use_ipython(tmp_path):
    script = "import sys\nfrom nbscale.compiler import compile_source\ncompile_source(['!ls'])\n" \
             "print('IPython' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert out.stdout.strip() == "True", out.stderr


def test_cell_magic_with_crlf_line_endings_is_still_recognised():
    assert names("%%time\r\nx = f(y)\r\n") == ({"x"}, {"f", "y"})
    p = compile_source([("%%time\r\nx = 1\r\n", ["step:a"]), ("y = x", ["step:b"])])
    assert not p.diagnostics, p.diagnostics
    assert p.step("b").sources == {"x": "a"}


def test_timeit_reads_but_binds_nothing():
    from nbscale.compiler import compile_source

    p = compile_source([("y = 1", ["step:a"]), ("%timeit -n1 -r1 x = y + 1", ["step:b"]), ("z = x", ["step:c"])])
    assert p.step("b").sources == {"y": "a"}
    assert [d.code for d in p.diagnostics] == ["undefined-name"] and p.diagnostics[0].cell == 2
    p = compile_source([("y = 1", ["step:a"]), ("%%timeit\nx = y + 1\nw = x", ["step:b"]), ("z = x", ["step:c"])])
    assert p.step("b").sources == {"y": "a"} and [d.code for d in p.diagnostics] == ["undefined-name"]


def test_a_cell_without_magics_is_its_own_python_not_a_copy():
    source = "x = 1\nif x:\n    y = [x,\n         2]\n" * 3
    assert to_python(source) is source  # (a big cell would be held twice)
    assert to_python("files = !ls\nn = 50%3") == "files = get_ipython().getoutput('ls')\nn = 50%3"
