"""The cell editor, the Run gate, the shortcuts and the notebook toolbar button, in a real browser
(Debian's Chromium driven by Playwright against a real JupyterLab with nbscale installed).

The tests run in order on one page: turn a skip cell into a step with *Set Pipeline Step…* (the
saved notebook must not keep `skip`), give a step `after:` and resources with the editor (the
compiler must accept them), see Run disabled while the notebook has an undefined name and enabled
once it is fixed, run with the keyboard shortcut, and run and cancel from the toolbar button and
the Cancel shortcut.
"""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path

import nbformat
import pytest
from lab_harness import KERNEL, browser_page, open_notebook, open_panel, running_lab

NOTEBOOK = "editor.ipynb"
RUN_TIMEOUT_MS = 120_000
CELLS = [  # (tags, source); the cell editor works on cells 3 (skip) and 4 (step total), the command on 6
    (["imports"], "import time"),
    (["parameters"], "n = 3\npause = 0.0"),
    (["step:load"], "x = list(range(n))\ntime.sleep(pause)"),
    (["skip"], "print(x)"),
    (["step:total"], "total = 3 * 2"),
    (["metrics"], "total"),
    (["skip"], "print(total)"),
]



@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("lab-root")
    nb = nbformat.v4.new_notebook()
    nb.metadata.update(KERNEL)
    nb.cells = [nbformat.v4.new_code_cell(source, metadata={"tags": tags}) for tags, source in CELLS]
    nbformat.write(nb, root / NOTEBOOK)
    work = tmp_path_factory.mktemp("lab-work")
    # the local engine: no cluster to start, so the runs here are quick
    settings = {"nbscale/plugin": {"defaultEngine": "local"}}
    with running_lab(root, work, settings=settings) as server:
        yield server


@pytest.fixture(scope="module")
def page(lab):
    with browser_page() as p:
        open_notebook(p, lab, NOTEBOOK)
        open_panel(p)
        yield p


def _saved_tags(lab, index: int) -> list[str]:
    nb = json.loads((Path(lab.root) / NOTEBOOK).read_text())
    return nb["cells"][index]["metadata"].get("tags", [])


def _pipeline(lab) -> dict:
    return lab.api(f"nbscale/api/pipeline?path={urllib.parse.quote(NOTEBOOK)}")


def _errors(pipeline: dict) -> list[dict]:
    return [d for d in pipeline["diagnostics"] if d["severity"] == "error"]


def _save(page) -> None:
    page.keyboard.press("Escape")
    # the context's save resolves once the file is written (the pipeline compiles again on save)
    page.evaluate("() => window.jupyterapp.shell.currentWidget.context.save()")


def _open_editor(page, index: int):
    cell = page.locator(".jp-Notebook .jp-Cell").nth(index)
    cell.locator(".jp-InputArea-prompt").click(button="right")
    page.locator(".lm-Menu-itemLabel", has_text="Set Pipeline Step…").click()
    dialog = page.locator(".jp-Dialog")
    dialog.locator("select[name='role']").wait_for()
    return dialog


def _run_button(page):
    return page.locator("#nbscale-panel button[data-engine='dask']")


def _toolbar_button(page):
    # a <jp-button> (JupyterLab's toolbar button): its state is in aria-disabled and title
    return page.locator(".jp-NotebookPanel-toolbar [data-jp-item-name='nbscale-run'] jp-button")


def _wait_run(page, status: str) -> None:
    page.wait_for_function(
        "(s) => document.querySelector('#nbscale-panel .nbscale-run-header')?.dataset.status === s",
        arg=status, timeout=RUN_TIMEOUT_MS)


def test_set_pipeline_step_on_a_skip_cell_removes_skip(page, lab):
    dialog = _open_editor(page, 3)
    assert dialog.locator("select[name='role']").input_value() == "skip"
    dialog.locator("select[name='role']").select_option("step")
    dialog.locator("input[name='step']").fill("explore")
    dialog.get_by_role("button", name="Apply").click()
    dialog.wait_for(state="detached")
    page.locator(".jp-Notebook .jp-Cell").nth(3).locator('.nbscale-badge-step[data-step="explore"]').wait_for()
    _save(page)
    assert _saved_tags(lab, 3) == ["step:explore"]
    pipeline = _pipeline(lab)
    assert not [d for d in pipeline["diagnostics"] if d["code"] == "misplaced-tag"], pipeline["diagnostics"]
    assert "explore" in [s["name"] for s in pipeline["steps"]]
    # the command with a name (no dialog) does the same
    page.evaluate("""async () => { const app = window.jupyterapp;
        app.shell.currentWidget.content.activeCellIndex = 6;
        await app.commands.execute('nbscale:set-step-tag', {name: 'report'}); }""")
    _save(page)
    assert _saved_tags(lab, 6) == ["step:report"]
    assert [d for d in _pipeline(lab)["diagnostics"] if d["code"] == "misplaced-tag"] == []


def test_the_editor_writes_after_and_resources_the_compiler_accepts(page, lab):
    dialog = _open_editor(page, 4)
    # the step names are offered: completion for the name, checkboxes for after:
    names = dialog.locator("datalist option").evaluate_all("os => os.map(o => o.value)")
    assert names == ["load", "explore", "total", "metrics", "report"], names
    assert dialog.locator("input[name='after'][value='total']").is_disabled()
    # an invalid value keeps Apply disabled and says why
    dialog.locator("input[name='timeout']").fill("soon")
    dialog.locator(".nbscale-cell-editor-errors li").first.wait_for()
    assert dialog.get_by_role("button", name="Apply").is_disabled()
    dialog.locator("input[name='timeout']").fill("90s")
    dialog.locator("input[name='after'][value='load']").check()
    dialog.locator("input[name='cpu']").fill("1")
    dialog.locator("input[name='memory']").fill("1Gi")
    apply = dialog.get_by_role("button", name="Apply")
    page.wait_for_function("(b) => !b.disabled", arg=apply.element_handle())
    apply.click()
    dialog.wait_for(state="detached")
    _save(page)
    assert _saved_tags(lab, 4) == ["step:total", "after:load", "resources:cpu=1", "resources:memory=1Gi", "timeout:90s"]
    pipeline = _pipeline(lab)
    assert _errors(pipeline) == []
    total = next(s for s in pipeline["steps"] if s["name"] == "total")
    assert total["resources"] == {"cpu": 1, "memory": "1Gi"}, total
    assert {"from": "load", "to": "total"} in [{k: e[k] for k in ("from", "to")} for e in pipeline["edges"]]


def _set_source(page, index: int, source: str) -> None:
    page.evaluate("""([i, s]) => window.jupyterapp.shell.currentWidget.content.model.cells.get(i)
        .sharedModel.setSource(s)""", [index, source])


def test_run_is_disabled_while_the_notebook_has_an_undefined_name(page, lab):
    _set_source(page, 4, "total = 3 * 2\nprint(undefined_thing)")
    _save(page)
    run = _run_button(page)
    page.wait_for_function("(b) => b.disabled", arg=run.element_handle(), timeout=30_000)
    title = run.get_attribute("title")
    assert "undefined_thing" in title and "cell 5" in title, title  # cells numbered from 1, as JupyterLab does
    toolbar = _toolbar_button(page)
    page.wait_for_function("(b) => b.getAttribute('aria-disabled') === 'true'", arg=toolbar.element_handle())
    assert "undefined_thing" in (toolbar.get_attribute("title") or ""), toolbar.get_attribute("title")
    _set_source(page, 4, "total = 3 * 2")
    _save(page)
    page.wait_for_function("(b) => !b.disabled", arg=run.element_handle(), timeout=30_000)
    page.wait_for_function("(b) => b.getAttribute('aria-disabled') === 'false'", arg=toolbar.element_handle())


def test_the_run_shortcut_runs_the_pipeline(page, lab):
    page.locator(".jp-Notebook .jp-Cell").nth(0).locator(".jp-InputArea-prompt").click()  # command mode
    page.keyboard.press("Control+Shift+Enter")
    page.locator("#nbscale-panel .nbscale-run-header").wait_for(timeout=30_000)
    _wait_run(page, "succeeded")
    runs = lab.api(f"nbscale/api/runs?path={urllib.parse.quote(NOTEBOOK)}")["runs"]
    assert len(runs) == 1 and runs[0]["engine"] == "local", runs


def test_the_toolbar_button_runs_and_the_cancel_shortcut_cancels(page, lab):
    panel = page.locator("#nbscale-panel")
    panel.locator("input[name='pause']").fill("60")
    toolbar = _toolbar_button(page)
    assert "Run as pipeline" in toolbar.inner_text()
    toolbar.click()
    page.wait_for_function("""() => document.querySelector(
        '#nbscale-panel .nbscale-step[data-step="load"]')?.dataset.status === 'running'""", timeout=60_000)
    page.locator(".jp-Notebook .jp-Cell").nth(0).locator(".jp-InputArea-prompt").click()
    page.keyboard.press("Control+Shift+Backspace")
    _wait_run(page, "cancelled")
    runs = lab.api(f"nbscale/api/runs?path={urllib.parse.quote(NOTEBOOK)}")["runs"]
    assert [r["status"] for r in runs][:2] == ["cancelled", "succeeded"], runs
