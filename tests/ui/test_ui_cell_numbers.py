"""Cell numbers in the panel, in a real browser: the panel names a cell by the number JupyterLab's
own status bar shows for it ("Cell N/M", 1-based, markdown cells counted), for a compile
diagnostic and for the cell a failed step points to; a click selects that very cell.

Each notebook starts with a markdown cell, so a number that skipped markdown cells, or one that
was 0-based, would differ from the status bar's.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from conftest import make_notebook
from lab_harness import KERNEL, browser_page, open_notebook, open_panel, running_lab

ROOT = Path(__file__).resolve().parents[2]
RUN_TIMEOUT_MS = 180_000
CELL_COUNTER = re.compile(r"^Cell (\d+)/(\d+)$")



@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("lab-root")
    title = nbformat.v4.new_markdown_cell("# Cell numbers")
    make_notebook(root, [title, ("x = 1", ["step:a"]), ("y = x + undefined_thing", ["step:b"])], name="broken",
                  metadata=KERNEL)
    make_notebook(root, [title, ("x = 1", ["step:a"]), ("y = x\nraise ValueError('boom')", ["step:b"])],
                  name="failing", metadata=KERNEL)
    work = tmp_path_factory.mktemp("lab-work")
    with running_lab(root, work) as server:
        yield server


@pytest.fixture(scope="module")
def page(lab):
    with browser_page() as p:
        yield p


def _status_bar_cell(page) -> int:
    """The active cell's number as JupyterLab's status bar shows it ("Cell 3/3")."""
    counter = page.locator("#jp-main-statusbar").get_by_text(CELL_COUNTER)
    counter.wait_for()
    return int(CELL_COUNTER.match(counter.inner_text().strip()).group(1))


def _select_first_cell(page) -> None:
    page.locator(".jp-Notebook:visible .jp-Cell").nth(0).click()  # of the notebook shown
    page.wait_for_function("() => window.jupyterapp.shell.currentWidget.content.activeCellIndex === 0")


def test_a_diagnostic_names_the_cell_as_the_status_bar_numbers_it(lab, page):
    open_notebook(page, lab, "broken.ipynb")
    panel = open_panel(page)
    diagnostic = panel.locator('.nbscale-diagnostic[data-code="undefined-name"]')
    diagnostic.wait_for()
    where = diagnostic.locator(".nbscale-diagnostic-where").inner_text()
    assert where == "cell 3, line 1", where  # the third cell: index 2, after the markdown title
    _select_first_cell(page)
    assert _status_bar_cell(page) == 1
    diagnostic.click()
    page.wait_for_function("() => window.jupyterapp.shell.currentWidget.content.activeCellIndex === 2")
    assert _status_bar_cell(page) == 3


def test_a_failed_step_names_its_cell_as_the_status_bar_numbers_it(lab, page):
    open_notebook(page, lab, "failing.ipynb")
    panel = open_panel(page)
    panel.locator(".nbscale-dag-node").first.wait_for()
    panel.locator('button[data-engine="dask"]').click()
    page.wait_for_function(
        """() => document.querySelector('#nbscale-panel .nbscale-run-header')?.dataset.status === 'failed'""",
        timeout=RUN_TIMEOUT_MS)
    jump = panel.locator(".nbscale-error-box .nbscale-link-button")
    jump.wait_for()
    assert jump.inner_text() == "cell 3, line 2"
    _select_first_cell(page)
    jump.click()
    page.wait_for_function("() => window.jupyterapp.shell.currentWidget.content.activeCellIndex === 2")
    assert _status_bar_cell(page) == 3
