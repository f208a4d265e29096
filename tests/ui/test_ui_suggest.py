"""*nbscale: Suggest Steps…* in a real browser (Debian's Chromium driven by Playwright against a
real JupyterLab with nbscale installed).

On one page, in order: open an untagged notebook, run the command from the command palette, see the
proposed steps with their cells numbered from 1 and the expected speed-up, click Apply and find
the tags in the open notebook's cells (one change to undo; unsaved: the file changes only when the user saves; then
it compiles into the parallel steps proposed); then edit a code cell and see Apply refused.
"""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path

import nbformat
import pytest
from lab_harness import KERNEL, browser_page, execute, open_notebook, running_lab
from playwright.sync_api import TimeoutError as PlaywrightTimeout

NOTEBOOK = "plain.ipynb"
CODE = [
    "import time",
    "n = 3",
    "a = [i * 2 for i in range(n)]\nfor _ in a:\n    time.sleep(0)",
    "b = [i * 3 for i in range(n)]\nfor _ in b:\n    time.sleep(0)",
    "total = sum(a) + sum(b)\nprint(total)",
]

MODEL_TAGS = """() => {
    const cells = window.jupyterapp.shell.currentWidget.content.model.cells;
    const tags = [];
    for (let i = 0; i < cells.length; i++) { tags.push(cells.get(i).getMetadata('tags') ?? null); }
    return tags;
}"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("lab-root")
    nb = nbformat.v4.new_notebook()
    nb.metadata.update(KERNEL)
    nb.cells = [nbformat.v4.new_markdown_cell("# Two loops"), *(nbformat.v4.new_code_cell(s) for s in CODE)]
    nbformat.write(nb, root / NOTEBOOK)
    with running_lab(root, tmp_path_factory.mktemp("lab-work")) as server:
        yield server


@pytest.fixture(scope="module")
def page(lab):
    with browser_page() as p:
        open_notebook(p, lab, NOTEBOOK)
        yield p


def _from_palette(page) -> None:
    """Run "Suggest Steps…" from the command palette, under its nbscale header. The modal palette
    closes when focus moves while it opens, so a palette gone before the click is opened again."""
    palette = page.locator(".lm-CommandPalette").filter(has=page.locator(".lm-CommandPalette-input:visible"))
    for attempt in range(5):
        page.locator(".jp-Notebook .jp-Cell").nth(1).locator(".jp-InputArea-prompt").click()  # command mode
        execute(page, "apputils:activate-command-palette")  # what Ctrl+Shift+C does
        try:
            palette.wait_for(state="visible", timeout=5_000)
            palette.locator(".lm-CommandPalette-input").fill("Suggest Steps", timeout=5_000)
            item = palette.locator(".lm-CommandPalette-item", has_text="Suggest Steps…")
            item.wait_for(timeout=5_000)
            header = item.locator("xpath=preceding-sibling::*[contains(@class,'lm-CommandPalette-header')][1]")
            assert header.inner_text(timeout=5_000).strip().lower() == "nbscale"
            item.click(timeout=5_000)
            return
        except PlaywrightTimeout:
            if attempt == 4:
                raise


def _saved(lab) -> dict:
    return json.loads((Path(lab.root) / NOTEBOOK).read_text())


def test_suggest_steps_and_apply_writes_the_tags_into_the_open_notebook(page, lab):
    expected = lab.api(f"nbscale/api/notebooks/suggest?path={urllib.parse.quote(NOTEBOOK)}")
    names = [s["name"] for s in expected["steps"]]
    assert len(names) == 3, expected["steps"]  # two parallel loops and the step joining them
    _from_palette(page)
    dialog = page.locator(".jp-Dialog")
    dialog.locator(".nbscale-suggest").wait_for()
    rows = dialog.locator("tr.nbscale-suggest-step").evaluate_all(
        "rs => rs.map(r => Array.from(r.cells).map(c => c.textContent))")
    assert [r[0] for r in rows] == names and [r[1] for r in rows] == ["cell 4", "cell 5", "cell 6"], rows
    assert "expected speed-up" in dialog.locator(".nbscale-suggest-speedup").inner_text()
    assert "Cell 2 becomes 'imports'" in dialog.inner_text()
    dialog.get_by_role("button", name="Apply").click()
    dialog.wait_for(state="detached")
    tags = page.evaluate(MODEL_TAGS)
    assert tags == [None, *(expected["tags"][str(i)] or None for i in range(1, 6))], tags
    assert tags[3] == [f"step:{names[0]}"] and tags[1] == ["imports"] and tags[2] == ["parameters"]
    # one change, undone by Undo (Z in command mode) and back with Redo (Shift+Z)
    page.locator(".jp-Notebook .jp-Cell").nth(1).locator(".jp-InputArea-prompt").click()
    page.keyboard.press("z")
    page.wait_for_function(f"() => ({MODEL_TAGS})().every(t => t === null)")
    page.keyboard.press("Shift+Z")
    page.wait_for_function(f"() => ({MODEL_TAGS})()[3] !== null")
    assert page.evaluate(MODEL_TAGS) == tags
    # the model changed, not the file: the user saves
    assert all("tags" not in c["metadata"] for c in _saved(lab)["cells"])
    assert page.evaluate("() => window.jupyterapp.shell.currentWidget.context.model.dirty")
    page.evaluate("() => window.jupyterapp.shell.currentWidget.context.save()")
    assert [c["metadata"].get("tags") for c in _saved(lab)["cells"]] == tags
    pipeline = lab.api(f"nbscale/api/pipeline?path={urllib.parse.quote(NOTEBOOK)}")
    assert [s["name"] for s in pipeline["steps"]] == names
    assert not [d for d in pipeline["diagnostics"] if d["severity"] == "error"], pipeline["diagnostics"]


def test_apply_is_refused_once_a_code_cell_differs(page, lab):
    page.evaluate("""() => window.jupyterapp.shell.currentWidget.content.model.cells.get(3)
        .sharedModel.setSource('a = [i * 5 for i in range(n)]')""")  # not saved: the server plans from the file
    before = page.evaluate(MODEL_TAGS)
    _from_palette(page)
    dialog = page.locator(".jp-Dialog").filter(has=page.locator(".nbscale-suggest"))
    stale = dialog.locator(".nbscale-suggest-stale")
    stale.wait_for()
    assert "Cell 4 differs" in stale.inner_text()
    dialog.get_by_role("button", name="Apply").click()
    error = page.locator(".jp-Dialog", has_text="Could not suggest steps")
    error.wait_for()
    assert "Cell 4 differs" in error.inner_text()
    error.get_by_role("button").last.click()
    assert page.evaluate(MODEL_TAGS) == before
