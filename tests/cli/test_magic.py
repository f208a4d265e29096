"""`%load_ext nbscale` and `%nbscale` in a real ipykernel, driven by nbclient as papermill drives it.

The notebook under test is also the pipeline: its `%nbscale` cells are tagged `skip`. The kernel
finds the notebook through JPY_SESSION_NAME (as Jupyter Server tells it) or `--notebook`.
"""

from __future__ import annotations

import os
import re

import nbclient
import nbformat
import pytest
from conftest import make_notebook

KERNELSPEC = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
HOSTILE = "<img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def scheduler():
    from distributed import LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                           host="127.0.0.1")
    yield cluster.scheduler_address
    cluster.close()


def execute(path, *, session=True, allow_errors=False, timeout=300, timeout_func=None):
    """Run the notebook in a real kernel (started in its folder); the executed notebook."""
    nb = nbformat.read(str(path), as_version=4)
    env = {**os.environ, **({"JPY_SESSION_NAME": str(path)} if session else {})}
    client = nbclient.NotebookClient(nb, timeout=timeout, allow_errors=allow_errors, timeout_func=timeout_func,
                                     interrupt_on_timeout=True, resources={"metadata": {"path": str(path.parent)}})
    client.execute(env=env)
    return nb


def run_display(cell) -> dict:
    """The data of the display a `%nbscale run` cell made."""
    shown = [o for o in cell.outputs if o.output_type == "display_data" and "text/html" in o.data
             and "nbscale-run" in o.data["text/html"]]
    assert len(shown) == 1, cell.outputs
    return shown[0].data


def printed(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


def error_text(cell) -> str:
    """What a cell showed of its error (IPython prints a UsageError on stderr, without a traceback)."""
    return printed(cell) + "".join(o.get("evalue", "") for o in cell.outputs if o.output_type == "error")


def test_run_reaches_succeeded_and_the_output_notebook_keeps_the_final_state(tmp_path):
    path = make_notebook(tmp_path, [
        ("%load_ext nbscale", ["skip"]),
        ("x = 40\nprint('hello')", ["step:a"]),
        ("y = x + 2", ["step:b"]),
        ("accuracy = y / 100", ["metrics"]),
        ("%nbscale run", ["skip"]),  # no --notebook: the kernel's session names it
        ("%nbscale wait", ["skip"]),
        ("%nbscale load b\nprint('loaded', x, y)", ["skip"]),
        ("%nbscale runs", ["skip"]),
    ], metadata=KERNELSPEC)
    nb = execute(path)
    data = run_display(nb.cells[4])
    assert "application/vnd.jupyter.widget-view+json" in data  # the live view ...
    html, text = data["text/html"], data["text/plain"]  # ... and its static fallbacks, final
    assert 'data-status="succeeded"' in html.split("\n")[0]
    assert re.findall(r'data-step="(\w+)" data-status="(\w+)"', html) == [("a", "succeeded"), ("b", "succeeded"),
                                                                          ("metrics", "succeeded")]
    assert ": succeeded (3/3 steps)" in text and "metric accuracy = 0.42" in text
    assert "cluster: 2 workers" in text  # the run's own LocalCluster, sampled
    assert "saved at" in printed(nb.cells[4])  # the file is older than the cell: "save first"
    assert "succeeded" in printed(nb.cells[5])
    assert "loaded 40 42" in printed(nb.cells[6])
    runs = [o for o in nb.cells[7].outputs if o.output_type == "display_data"][0].data
    assert "succeeded" in runs["text/plain"] and "<table>" in runs["text/html"]


def test_a_failing_step_shows_its_cell_and_line_and_load_brings_what_it_received(tmp_path, scheduler):
    path = make_notebook(tmp_path, [
        ("%load_ext nbscale", ["skip"]),
        ("data = [1, 2, 3]", ["step:load"]),
        ("total = sum(data)\nratio = total / 0", ["step:divide"]),
        (f"%nbscale run --scheduler {scheduler} --wait", ["skip"]),
        ("%nbscale load divide\nprint('got', data)", ["skip"]),
    ], metadata=KERNELSPEC)
    nb = execute(path, allow_errors=True)  # the kernel runs the failing cell too, top to bottom
    data = run_display(nb.cells[3])
    assert 'data-step="divide" data-status="failed"' in data["text/html"]
    assert "divide failed at cell 3, line 2: ZeroDivisionError" in data["text/plain"]
    assert "ratio = total / 0" in data["text/plain"]  # the traceback
    assert "got [1, 2, 3]" in printed(nb.cells[4])
    assert "only what it received is loaded" in printed(nb.cells[4])


def test_user_text_is_escaped_in_the_static_view(tmp_path, scheduler):
    path = make_notebook(tmp_path, [
        ("%load_ext nbscale", ["skip"]),
        (f"print({HOSTILE!r})\nraise ValueError({HOSTILE!r})", ["step:hostile"]),
        (f"%nbscale run --notebook {tmp_path / 'nb.ipynb'} --scheduler {scheduler} --wait", ["skip"]),
    ], metadata=KERNELSPEC)
    nb = execute(path, session=False, allow_errors=True)
    html = run_display(nb.cells[2])["text/html"]
    assert "ValueError" in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<img" not in html


def test_unknown_notebook_and_a_pipeline_that_would_run_itself_are_clear_errors(tmp_path):
    path = make_notebook(tmp_path, [
        ("%load_ext nbscale", ["skip"]),
        "%nbscale check",
        "%nbscale run",
    ], metadata=KERNELSPEC)
    nb = execute(path, session=False, allow_errors=True)
    assert "pass --notebook PATH" in error_text(nb.cells[1])
    nb = execute(path, allow_errors=True)
    assert "cell 2 uses %nbscale but is part of the pipeline" in error_text(nb.cells[2])


def test_check_graph_scale_and_suggest(tmp_path):
    path = make_notebook(tmp_path, [
        ("%load_ext nbscale", ["skip"]),
        ("a = 1", ["step:first"]),
        ("b = a + undefined_name", ["step:second"]),
        ("%nbscale check", ["skip"]),
        ("%nbscale graph", ["skip"]),
        ("%nbscale scale 3", ["skip"]),
        ("%nbscale nonsense", ["skip"]),
    ], metadata=KERNELSPEC)
    nb = execute(path, allow_errors=True)
    check = nb.cells[3].outputs[0]
    assert "cell 3" in check["data"]["text/plain"] and "undefined_name" in check["data"]["text/plain"]
    svg = nb.cells[4].outputs[0]["data"]["image/svg+xml"]
    assert svg.startswith("<svg") and 'data-step="first"' in svg and 'data-step="second"' in svg
    assert "3 workers" in printed(nb.cells[5])
    assert "invalid choice: 'nonsense'" in error_text(nb.cells[6])


def test_a_bad_parameter_is_refused_before_anything_starts(tmp_path):
    path = make_notebook(tmp_path, [
        ("%load_ext nbscale", ["skip"]),
        ("alpha = 0.5", ["parameters"]),
        ("beta = alpha * 2", ["step:a"]),
        ("%nbscale run -p nope=1", ["skip"]),
        ("%nbscale run -p alpha=abc", ["skip"]),
    ], metadata=KERNELSPEC)
    nb = execute(path, allow_errors=True)
    assert "%nbscale run:" in error_text(nb.cells[3]) and "nope" in error_text(nb.cells[3])
    assert "%nbscale run:" in error_text(nb.cells[4]) and "alpha" in error_text(nb.cells[4])
    assert not (tmp_path / ".nbscale").exists()  # no run, not even a run store


def test_an_unclosed_quote_and_workers_below_one_are_one_line_usage_errors(tmp_path):
    path = make_notebook(tmp_path, [
        ("%load_ext nbscale", ["skip"]),
        ("name = 'a'", ["parameters"]),
        ("x = name", ["step:a"]),
        ("%nbscale run -p 'name=it", ["skip"]),
        ("%nbscale run --workers 0 --engine local", ["skip"]),
        ("%nbscale run --workers -2 --engine local", ["skip"]),
    ], metadata=KERNELSPEC)
    nb = execute(path, allow_errors=True)
    assert "%nbscale: no closing quotation in: run -p 'name=it" in error_text(nb.cells[3])
    for cell, value in ((nb.cells[4], "'0'"), (nb.cells[5], "'-2'")):
        assert f"argument --workers: a whole number of at least 1, not {value}" in error_text(cell)
    assert "Traceback" not in "".join(error_text(c) for c in nb.cells[3:])
    assert not (tmp_path / ".nbscale").exists()  # no run started


def test_suggest_shows_a_proposal(tmp_path):
    path = make_notebook(tmp_path, [
        ("%load_ext nbscale", ["skip"]),
        "import math",
        "a = [math.sqrt(i) for i in range(1000)]",
        "b = [math.log(i + 1) for i in range(1000)]",
        "c = sum(a) + sum(b)",
        ("%nbscale suggest", ["skip"]),
    ], metadata=KERNELSPEC)
    nb = execute(path)
    data = nb.cells[5].outputs[0]["data"]
    assert "steps proposed" in data["text/plain"] and "<svg" in data["text/html"]


def test_without_ipywidgets_the_view_is_static_and_says_so(tmp_path, scheduler):
    path = make_notebook(tmp_path, [
        ("import sys\nsys.modules['ipywidgets'] = None  # as if it were not installed", ["skip"]),
        ("%load_ext nbscale", ["skip"]),
        ("x = 1", ["step:a"]),
        (f"%nbscale run --scheduler {scheduler}", ["skip"]),
        ("%nbscale wait", ["skip"]),
    ], metadata=KERNELSPEC)
    nb = execute(path)
    assert "ipywidgets is not installed" in printed(nb.cells[3])
    data = run_display(nb.cells[3])
    assert "application/vnd.jupyter.widget-view+json" not in data
    assert 'data-step="a" data-status="succeeded"' in data["text/html"]


def test_scale_names_the_warm_cluster_the_runs_share(tmp_path):
    from nbscale.kernels import warm_cluster

    (tmp_path / "sub").mkdir()  # the notebook is in a subfolder of the cluster's folder
    path = make_notebook(tmp_path / "sub", [("%load_ext nbscale", ["skip"]), ("%nbscale scale 2", ["skip"])],
                         metadata=KERNELSPEC)
    warm_cluster.start(tmp_path, workers=1)
    try:
        nb = execute(path)
        assert warm_cluster.status(tmp_path)["workers"] == 2
    finally:
        warm_cluster.stop(tmp_path)
    assert f"scaled the warm cluster of {tmp_path.resolve()}, which the runs share, to 2 workers" in printed(
        nb.cells[1])


def test_papermill_and_nbconvert_keep_the_final_table(tmp_path, scheduler):
    import papermill
    from nbconvert import HTMLExporter

    path = make_notebook(tmp_path, [
        ("%load_ext nbscale", ["skip"]),
        ("x = 1", ["step:a"]),
        ("y = x + 1", ["step:b"]),
        (f"%nbscale run --notebook nb.ipynb --scheduler {scheduler} --wait", ["skip"]),
    ], metadata=KERNELSPEC)
    out = tmp_path / "out.ipynb"
    papermill.execute_notebook(str(path), str(out), cwd=str(tmp_path), progress_bar=False)
    data = run_display(nbformat.read(str(out), as_version=4).cells[3])
    assert 'data-step="b" data-status="succeeded"' in data["text/html"]
    # nbconvert's HTML draws the widget from the widget state papermill saved: the final state too
    page, _ = HTMLExporter().from_filename(str(out))
    assert 'class=\\"nbscale-run-status\\" data-status=\\"succeeded\\"' in page
