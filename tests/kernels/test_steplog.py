"""Tests for nbscale.kernels.steplog: a finished step's log file, its images, its warnings."""

from __future__ import annotations

import base64
import json

from test_executor import ok, run

from nbscale.kernels.steplog import OutputSoFar, log_text, warnings_in, write_step_log

PNG = b"\x89PNG\r\n\x1a\n" + bytes(16)


def test_the_log_holds_each_cells_outputs_as_text_and_saves_images(tmp_path):
    result = ok(run(
        "print('hello')\n40 + 2",
        "from IPython.display import Image, HTML\n"
        f"display(Image(data={PNG!r}, format='png'))\ndisplay(HTML('<b>x</b>'))",
        name="s", cells=[3, 4]))
    log = write_step_log(tmp_path / "logs" / "s.log", "s", result.to_json())
    image = tmp_path / "logs" / "s-cell5-1.png"
    # headers number the cells (indexes 3, 4) as JupyterLab does
    assert log.read_text() == (f"── cell 4 ──\nhello\n42\n── cell 5 ──\n[image/png saved to {image}]\n"
                               "<IPython.core.display.HTML object>\n")
    assert image.read_bytes() == PNG


def test_a_step_that_showed_nothing_has_no_log(tmp_path):
    assert write_step_log(tmp_path / "s.log", "s", ok(run("x = 1")).to_json()) is None
    assert not (tmp_path / "s.log").exists()


def test_outputs_as_papermill_keeps_them():
    cells = [{"cell": 1, "outputs": [
        {"output_type": "stream", "name": "stdout", "text": ["a\n", "b"]},
        {"output_type": "execute_result", "data": {"text/html": "<p>"}, "metadata": {}},
        {"output_type": "display_data", "data": {"image/png": base64.b64encode(PNG).decode()}},
        {"output_type": "error", "ename": "ValueError", "evalue": "bad", "traceback": []}]}]
    assert log_text(cells, lambda cell, n, mime, data: f"/img/{cell}-{n}") == (
        "── cell 2 ──\na\nb\n[text/html output]\n[image/png saved to /img/1-1]\nValueError: bad\n")


def test_warnings_are_found_per_cell_once_each_with_their_line():
    result = ok(run(
        "import warnings\nwarnings.warn('old API', FutureWarning)",
        "def f():\n    warnings.warn('again', UserWarning)\nfor _ in range(3):\n    f()\nprint('after')",
        cells=[2, 5]))
    found = warnings_in(result.to_json()["cells"])
    assert [(w["cell"], w["line"], w["category"], w["message"], w["where"]) for w in found] == [
        (2, 2, "FutureWarning", "old API", "cell 3, line 2"),
        (5, 2, "UserWarning", "again", "cell 6, line 2"),
    ]
    assert "FutureWarning: old API" in result.stderr  # as a kernel shows it: on the cell's stderr


def test_a_library_warning_names_the_library_line_and_the_cell():
    cells = [{"cell": 7, "outputs": [{"output_type": "stream", "name": "stderr", "text":
              "/venv/sklearn/linear_model/_logistic.py:469: ConvergenceWarning: lbfgs failed to converge\n"
              "  n_iter_i = _check_optimize_result(\n"}]}]
    assert warnings_in(cells) == [{"cell": 7, "line": None, "category": "ConvergenceWarning",
                                   "message": "lbfgs failed to converge",
                                   "where": "/venv/sklearn/linear_model/_logistic.py:469"}]
    assert warnings_in([{"cell": 1, "outputs": [{"output_type": "stream", "name": "stderr",
                                                 "text": "no warning here: 12: Foo\n"}]}]) == []


def test_beside_the_log_each_cells_outputs_as_data_with_warnings_apart(tmp_path):
    from nbscale.kernels.steplog import cells_json_path

    result = ok(run(
        "print('hello')\n40 + 2",
        "import warnings\nfrom IPython.display import Image, HTML\nwarnings.warn('old API', FutureWarning)\n"
        f"display(Image(data={PNG!r}, format='png'))\ndisplay(HTML('<b>x</b>'))",
        name="s", cells=[3, 4]))
    log = write_step_log(tmp_path / "logs" / "s.log", "s", result.to_json())
    data = json.loads(cells_json_path(log).read_text())
    assert cells_json_path(log) == tmp_path / "logs" / "s.cells.json"
    assert data["step"] == "s"
    first, second = data["cells"]
    assert first == {"cell": 3, "warnings": [], "outputs": [
        {"type": "stream", "name": "stdout", "text": "hello\n"}, {"type": "text", "text": "42"}]}
    assert second["cell"] == 4
    assert [(w["category"], w["message"], w["where"]) for w in second["warnings"]] == [
        ("FutureWarning", "old API", "cell 5, line 3")]
    # the warning is in `warnings`, not again as stderr text; HTML is its text/plain, never markup
    assert second["outputs"] == [{"type": "image", "mime": "image/png", "file": "s-cell5-1.png"},
                                 {"type": "text", "text": "<IPython.core.display.HTML object>"}]
    assert (log.parent / second["outputs"][0]["file"]).read_bytes() == PNG


def test_a_huge_stream_is_cut_in_the_data_but_whole_in_the_log(tmp_path):
    from nbscale.kernels.steplog import CELL_TEXT_CHARS, cells_json_path

    text = "x" * (CELL_TEXT_CHARS * 2)
    summary = {"cells": [{"cell": 0, "outputs": [{"output_type": "stream", "name": "stdout", "text": text}]}]}
    log = write_step_log(tmp_path / "s.log", "s", summary)
    stored = json.loads(cells_json_path(log).read_text())["cells"][0]["outputs"][0]["text"]
    assert len(stored) < CELL_TEXT_CHARS + 200 and "output truncated" in stored and str(log) in stored
    assert text in log.read_text()


def test_output_so_far_keeps_each_streams_last_characters_and_says_how_many_went():
    printed = OutputSoFar(limit=10)
    printed.add("a", "stdout", "0123456789")
    printed.add("a", "stdout", "abcdefghij" * 3)
    printed.add("a", "stderr", "oops\n")
    printed.add("a", "display", "not a stream")
    printed.add("b", "stdout", "other step")
    assert printed.take("a") == {"stdout": "[… 30 earlier characters not kept]\nabcdefghij", "stderr": "oops\n"}
    assert printed.take("a") == {}  # (taken once)
    printed.forget("b")  # ended, handing back all it printed
    assert printed.take("b") == {}
