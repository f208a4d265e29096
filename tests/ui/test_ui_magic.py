"""`%nbscale run`'s ipywidgets view in a real JupyterLab (with jupyterlab_widgets) and Debian's Chromium:
the widget updates itself to `succeeded` (and the saved notebook's static parts show the final
state), and a click on its Cancel button during a long step ends the run `cancelled`.

The notebooks are run top to bottom in their kernel (Run All), as a user would; the kernel finds its
notebook through the session Jupyter Server started it with. Their parameters cell keeps the step's
loop empty in the kernel; the run gets `-p n=...`.
"""

from __future__ import annotations

import json

import nbformat
import pytest
from lab_harness import KERNEL, browser_page, execute, open_notebook, running_lab

RUN_TIMEOUT_MS = 180_000
STEP = ("import time\nfor i in range(n):\n    time.sleep(0.1)\ndone = n")


def _write(path, cells):
    nb = nbformat.v4.new_notebook(metadata=KERNEL)
    nb.cells = [nbformat.v4.new_code_cell(source, metadata={"tags": tags}) for source, tags in cells]
    path.write_text(json.dumps(nb))


def _cells(n: int):
    return [("%load_ext nbscale", ["skip"]), ("n = 0", ["parameters"]), (STEP, ["step:slow"]),
            ("y = done + 1", ["step:after"]), (f"%nbscale run -p n={n}", ["skip"])]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("lab-root")
    _write(root / "quick.ipynb", _cells(5))
    _write(root / "long.ipynb", _cells(3000))
    with running_lab(root, tmp_path_factory.mktemp("lab-work")) as server:
        yield server


@pytest.fixture(scope="module")
def page(lab):
    with browser_page() as p:
        yield p


def _run_all(page, lab, notebook):
    open_notebook(page, lab, notebook)
    # one notebook on the page at a time (the others closed): the selectors below then mean its view
    page.evaluate("""(path) => { for (const w of Array.from(window.jupyterapp.shell.widgets('main'))) {
        if (w.context && w.context.path !== path) { w.dispose(); } } }""", notebook)
    page.wait_for_function("() => window.jupyterapp.shell.currentWidget.sessionContext.session?.kernel",
                           timeout=60_000)
    execute(page, "notebook:run-all-cells")
    widget = page.locator(".nbscale-run-widget")
    widget.wait_for(timeout=60_000)
    return widget


def _wait_status(page, status):
    page.wait_for_function(
        "(s) => document.querySelector('.nbscale-run-widget .nbscale-run-status')?.dataset.status === s",
        arg=status, timeout=RUN_TIMEOUT_MS)


def test_the_widget_updates_to_succeeded(page, lab):
    widget = _run_all(page, lab, "quick.ipynb")
    _wait_status(page, "succeeded")
    statuses = widget.locator(".nbscale-step .nbscale-status").all_inner_texts()
    assert statuses == ["succeeded", "succeeded"]
    assert widget.locator("button", has_text="Cancel").is_disabled()
    # the run's end updated the display's static parts too: the saved notebook shows the final state
    execute(page, "docmanager:save")
    page.wait_for_function("() => !window.jupyterapp.shell.currentWidget.context.model.dirty", timeout=30_000)
    saved = nbformat.read(str(lab.root / "quick.ipynb"), as_version=4)
    shown = [o for o in saved.cells[4].outputs if o.output_type == "display_data"][0].data
    assert shown["text/html"].startswith('<div class="nbscale-run" data-status="succeeded">')
    assert "application/vnd.jupyter.widget-view+json" in shown


def test_cancel_during_a_long_step_ends_the_run_cancelled(page, lab):
    widget = _run_all(page, lab, "long.ipynb")
    page.wait_for_function(
        "() => document.querySelector('.nbscale-run-widget .nbscale-step .nbscale-status')?.textContent === 'running'",
        timeout=RUN_TIMEOUT_MS)
    widget.locator("button", has_text="Cancel").click()
    _wait_status(page, "cancelled")
    # the run's status and its steps' reach the page as separate widget updates, moments apart
    page.wait_for_function(
        """() => { const s = Array.from(document.querySelectorAll('.nbscale-run-widget .nbscale-step .nbscale-status'));
                   return s.length === 2 && s.every(e => e.textContent === 'cancelled'); }""", timeout=30_000)
    statuses = widget.locator(".nbscale-step .nbscale-status").all_inner_texts()
    assert statuses == ["cancelled", "cancelled"]
