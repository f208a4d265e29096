"""Reading notebooks: v4 in, v3 upgraded, everything else refused with a clear NotebookReadError."""

import json
import subprocess
from pathlib import Path

import nbformat
import pytest

from nbscale.compiler import NbscaleCompileError, NotebookReadError, compile_notebook
from nbscale.compiler.notebook import cell_index, cell_label, cell_number, notebook_from_dict, read_notebook


def v4(cells, **extra):
    return {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells, **extra}


def code(source, tags=None, **extra):
    cell = {"cell_type": "code", "source": source, "metadata": {"tags": tags} if tags is not None else {},
            "outputs": [], "execution_count": None}
    cell.update(extra)
    return cell


def write(tmp_path, data, name="nb.ipynb"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


def read_error(path):
    with pytest.raises(NotebookReadError) as info:
        read_notebook(path)
    return info.value


def test_reads_a_notebook_written_by_nbformat(make_notebook, tmp_path):
    path = make_notebook(tmp_path, [
        "import os",
        ("x = 1\ny = 2", ["step:a", "retries:1"]),
        nbformat.v4.new_markdown_cell("# Title"),
        nbformat.v4.new_raw_cell("raw text"),
    ], name="demo")
    nb = read_notebook(path)
    assert nb.name == "demo"
    assert [c.cell_type for c in nb.cells] == ["code", "code", "markdown", "raw"]
    assert [c.index for c in nb.cells] == [0, 1, 2, 3]
    assert nb.cells[1].source == "x = 1\ny = 2"
    assert nb.cells[1].tags == ("step:a", "retries:1")
    assert nb.cells[0].tags == ()


def test_source_as_a_list_of_lines_is_joined():
    nb = notebook_from_dict(v4([code(["x = 1\n", "y = x"])]))
    assert nb.cells[0].source == "x = 1\ny = x"


def test_tags_are_stripped_and_blank_tags_dropped():
    nb = notebook_from_dict(v4([code("x = 1", [" step:a ", "", "   ", "skip"])]))
    assert nb.cells[0].tags == ("step:a", "skip")


def test_cells_without_metadata_or_source_are_fine():
    nb = notebook_from_dict(v4([{"cell_type": "code"}, {"cell_type": "markdown", "source": "hi"}]))
    assert nb.cells[0].source == "" and nb.cells[0].tags == ()


def test_markdown_and_raw_cells_are_not_run(make_notebook, tmp_path):
    path = make_notebook(tmp_path, [
        nbformat.v4.new_markdown_cell("x = undefined_in_markdown"),
        ("a = 1", ["step:load"]),
        nbformat.v4.new_raw_cell("this is not python ((("),
        nbformat.v4.new_markdown_cell("step 2", metadata={"tags": ["step:bogus", "paramters"]}),
        ("b = a", ["step:use"]),
    ])
    p = compile_notebook(path)
    assert [(d.code, d.cell) for d in p.diagnostics] == [("tags-on-text-cell", 3)]  # (said, not applied)
    assert [s.name for s in p.steps] == ["load", "use"]
    assert p.step("load").cells == [1] and p.step("use").cells == [4]


def test_missing_file():
    err = read_error(Path("/nonexistent/dir/nb.ipynb"))
    assert "no such file" in str(err)
    assert err.path.endswith("nb.ipynb")


def test_a_directory_is_not_a_notebook(tmp_path):
    err = read_error(tmp_path)
    assert "is not a file" in str(err)


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_a_pipe_or_a_device_is_refused_without_reading_it(tmp_path, kind):
    """A FIFO nobody writes to blocked every command for ever; /dev/zero filled the memory."""
    import os

    path = tmp_path / "nb.ipynb"
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path = Path("/dev/zero")
    err = read_error(path)
    assert "is not a file (a pipe, a device or a folder)" in str(err)


def test_invalid_json_reports_line_and_column(tmp_path):
    path = write(tmp_path, '{\n  "nbformat": 4,\n  "cells": [,]\n}')
    err = read_error(path)
    assert "not valid JSON" in err.reason
    assert "line 3" in err.reason and "column 13" in err.reason
    assert str(path) in str(err)


def test_not_utf8(tmp_path):
    path = tmp_path / "latin.ipynb"
    path.write_bytes(b'{"nbformat": 4, "cells": [], "x": "\xe9"}')
    assert "cannot be read" in str(read_error(path))
    for text in ('{"nbformat": 4, "cells": [], "x": "\u00e9"}', '{"nbformat": 4, "cells": []}'):
        for encoding in ("utf-16", "utf-16-le", "utf-16-be"):  # with its byte order mark, and without
            path.write_bytes(text.encode(encoding))
            assert "it is UTF-16 text; a notebook is UTF-8" in str(read_error(path)), (text, encoding)


def test_notebook_metadata_that_is_not_a_mapping(tmp_path):
    err = read_error(write(tmp_path, '{"nbformat": 4, "cells": [], "metadata": [1]}'))
    assert "'metadata' is not a mapping" in err.reason


@pytest.mark.parametrize("text, why", [
    ('{"nbformat": 4, "cells": [], "metadata": ' + "[" * 100000 + "]" * 100000 + "}", "nested too deeply"),
    ('{"nbformat": 4, "cells": [], "metadata": {"n": 1' + "0" * 5000 + "}}", "digits"),
    ('{"nbformat": 4, "cells": [{"cell_type": "code", "source": "", "metadata": {"tags": ["step:a\\ud800"]}}]}',
     "lone UTF-16 surrogate"),
], ids=["deep", "long-number", "lone-surrogate"])
def test_json_python_cannot_hold_is_not_valid_json(tmp_path, text, why):
    err = read_error(write(tmp_path, text))
    assert err.reason.startswith("not valid JSON") and why in err.reason


def test_a_surrogate_pair_is_text(tmp_path):
    path = write(tmp_path, '{"nbformat": 4, "cells": [{"cell_type": "code", "source": "x = \'\\ud83d\\ude00\'"}]}')
    assert read_notebook(path).cells[0].source == "x = '\U0001F600'"


def test_deeply_nested_json_is_a_clear_error_in_the_cli(tmp_path):
    path = write(tmp_path, "[" * 100000 + "]" * 100000, name="deep.ipynb")
    for command in (["check"], ["compile", "--target", "ir"], ["graph"]):
        out = subprocess.run(["nbscale", *command, str(path)], capture_output=True, text=True, timeout=120)
        assert "Traceback" not in out.stderr, out.stderr[-2000:]
        assert out.returncode == 2 and "not valid JSON (nested too deeply)" in out.stderr


@pytest.mark.parametrize("data", [[], [1, 2], "\"text\"", 3, None, {"cells": []}, {"metadata": {}}])
def test_json_that_is_not_a_notebook(tmp_path, data):
    err = read_error(write(tmp_path, data))
    assert "not a Jupyter notebook" in err.reason


def test_cells_that_are_not_a_list(tmp_path):
    assert "'cells' is not a list" in read_error(write(tmp_path, {"nbformat": 4, "cells": {}})).reason
    assert "'cells' is not a list" in read_error(write(tmp_path, {"nbformat": 4})).reason


@pytest.mark.parametrize("major", [5, 2, "4", None])
def test_other_nbformat_versions_are_refused(tmp_path, major):
    err = read_error(write(tmp_path, {"nbformat": major, "nbformat_minor": 0, "cells": [], "metadata": {}}))
    assert "not supported" in err.reason
    assert repr(major) in err.reason


def _v3_notebook():
    return {
        "nbformat": 3, "nbformat_minor": 0,
        "metadata": {"name": "old"},
        "worksheets": [{"metadata": {}, "cells": [
            {"cell_type": "heading", "level": 1, "source": "Old notebook", "metadata": {}},
            {"cell_type": "code", "language": "python", "collapsed": False, "outputs": [],
             "input": ["import math\n"], "metadata": {"tags": ["imports"]}},
            {"cell_type": "code", "language": "python", "collapsed": False, "outputs": [],
             "input": ["x = math.pi\n", "y = x * 2"], "metadata": {"tags": ["step:a"]}},
            {"cell_type": "markdown", "source": "text", "metadata": {}},
            {"cell_type": "code", "language": "python", "collapsed": False, "outputs": [],
             "input": "z = y + 1", "metadata": {"tags": ["step:b"]}},
        ]}],
    }


def test_v3_notebook_is_upgraded(tmp_path):
    nb = read_notebook(write(tmp_path, _v3_notebook(), "old.ipynb"))
    assert [c.cell_type for c in nb.cells] == ["markdown", "code", "code", "markdown", "code"]
    assert nb.cells[2].source == "x = math.pi\ny = x * 2"
    assert nb.cells[2].tags == ("step:a",)
    p = compile_notebook(tmp_path / "old.ipynb")
    assert not p.diagnostics, p.diagnostics
    assert [s.name for s in p.steps] == ["a", "b"]
    assert p.step("b").sources == {"y": "a"}
    assert p.prelude.cells == [1]


def test_broken_v3_notebook_is_a_read_error(tmp_path):
    err = read_error(write(tmp_path, {"nbformat": 3, "worksheets": "nope"}))
    assert "v3" in err.reason


@pytest.mark.parametrize("cell, what", [
    ("not a cell", "cell_type"),
    ({"source": "x = 1"}, "cell_type"),
    ({"cell_type": "heading", "source": "x"}, "cell_type"),
    ({"cell_type": "code", "source": 42}, "'source' is not text"),
    ({"cell_type": "code", "source": ["a", 1]}, "'source' is not text"),
    ({"cell_type": "code", "source": "x", "metadata": {"tags": "step:a"}}, "metadata.tags"),
    ({"cell_type": "code", "source": "x", "metadata": {"tags": [1]}}, "metadata.tags"),
    ({"cell_type": "code", "source": "x", "metadata": "m"}, "'metadata' is not a mapping"),
    ({"cell_type": "code", "source": "x", "metadata": [1]}, "'metadata' is not a mapping"),
])
def test_malformed_cells(tmp_path, cell, what):
    err = read_error(write(tmp_path, v4([code("ok = 1"), cell])))
    assert "cell 2 is malformed" in err.reason  # the second cell, as JupyterLab numbers it
    assert what in err.reason


def test_read_errors_are_compile_errors_and_raised_by_compile_notebook(tmp_path):
    path = write(tmp_path, "{")
    with pytest.raises(NbscaleCompileError):
        compile_notebook(path)
    assert issubclass(NotebookReadError, NbscaleCompileError)


def test_pipeline_name_comes_from_the_file_or_metadata(make_notebook, tmp_path):
    p = compile_notebook(make_notebook(tmp_path, ["x = 1"], name="churn"))
    assert (p.name, p.notebook) == ("churn", "churn.ipynb")
    named = make_notebook(tmp_path, ["x = 1"], name="other", metadata={"nbscale": {"name": "custom"}})
    assert compile_notebook(named).name == "custom"


def test_a_cell_is_named_as_jupyterlab_numbers_it_from_its_0_based_index():
    # the model, the IR and the wire keep the 0-based index; people read JupyterLab's "Cell N/M"
    assert [cell_number(i) for i in (0, 1, 11)] == [1, 2, 12]
    assert [cell_index(cell_number(i)) for i in (0, 1, 11)] == [0, 1, 11]
    assert cell_label(0) == "cell 1" and cell_label(4, 2) == "cell 5, line 2" and cell_label(4, None) == "cell 5"
