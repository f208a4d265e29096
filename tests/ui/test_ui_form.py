"""The Run form and the panel's layout in a real browser (Debian's Chromium, a real JupyterLab).

Two notebooks that share a parameter name: a value typed in one notebook's form never shows in
the other's nor is sent with its run, and it is marked as changed (visibly and through the
input's description) until it is reset. Then the panel at the default sidebar width and at a
narrower one: no section is wider than the panel, nothing is cut off in an overflow-hidden box
(ellipsized text keeps its whole text in a title), tracebacks wrap.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import pytest
from lab_harness import KERNEL, browser_page, execute, open_notebook, open_panel, running_lab

ROOT = Path(__file__).resolve().parents[2]
LONG_STEP = "a_step_with_a_name_much_too_long_for_the_sidebar"
RUN_TIMEOUT_MS = 180_000



def _train_notebook() -> nbformat.NotebookNode:
    """A second notebook with a `seed` parameter (default 1, iris.ipynb's is 42) and a step that
    fails with a long traceback line, under a long step name."""
    nb = nbformat.v4.new_notebook()
    nb.metadata.update(KERNEL)
    nb.cells = [
        nbformat.v4.new_code_cell("seed = 1\nlr = 0.1", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("values = [seed, lr]", metadata={"tags": ["step:prepare"]}),
        nbformat.v4.new_code_cell(
            "raise ValueError('this message is deliberately long: ' + '-'.join(['word'] * 40) + str(values))",
            metadata={"tags": [f"step:{LONG_STEP}"]}),
    ]
    return nb


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("lab-root")
    shutil.copy(ROOT / "examples" / "iris.ipynb", root / "iris.ipynb")
    nbformat.write(_train_notebook(), root / "train.ipynb")
    with running_lab(root, tmp_path_factory.mktemp("lab-work")) as server:
        yield server


@pytest.fixture(scope="module")
def page(lab):
    with browser_page() as p:
        open_notebook(p, lab, "iris.ipynb")
        open_panel(p)
        yield p


# a parameter only each notebook has: its input shows once the form is that notebook's
OWN_PARAMETER = {"iris.ipynb": "C", "train.ipynb": "lr"}


def _follow(page, path: str) -> None:
    """Open a notebook in the same JupyterLab page and wait until the panel shows its form."""
    execute(page, "docmanager:open", {"path": path})
    page.wait_for_function(
        """([path, own]) => document.querySelector('#nbscale-panel .nbscale-panel-notebook')?.title === path
                && !!document.querySelector(`#nbscale-panel input[name="${own}"]`)""",
        arg=[path, OWN_PARAMETER[path]])


def _field(page, name: str):
    return page.locator(f'#nbscale-panel .nbscale-field[data-param="{name}"]')


def _description(page, name: str) -> str:
    """What a screen reader hears after the input's name: the text of its aria-describedby."""
    return page.evaluate("""(name) => {
        const input = document.querySelector(`#nbscale-panel input[name="${name}"]`);
        return (input.getAttribute('aria-describedby') || '').split(' ')
            .map(id => document.getElementById(id)?.textContent || '').join(' ').trim(); }""", name)


def test_values_stay_with_their_notebook_and_changed_ones_are_marked(page):
    _follow(page, "iris.ipynb")
    seed = page.locator('#nbscale-panel input[name="seed"]')
    assert seed.input_value() == "42"
    seed.fill("7")

    _follow(page, "train.ipynb")
    assert page.locator('#nbscale-panel input[name="seed"]').input_value() == "1"  # not iris' 7
    assert page.locator("#nbscale-panel .nbscale-field.nbscale-changed").count() == 0
    # Run sends this notebook's values only (none changed: none sent)
    with page.expect_request(lambda r: r.method == "POST" and r.url.split("?")[0].endswith("/nbscale/api/runs")) as req:
        page.locator('#nbscale-panel button[data-engine="dask"]').click()
    body = json.loads(req.value.post_data)
    assert body["path"] == "train.ipynb" and body["parameters"] == {}, body

    _follow(page, "iris.ipynb")
    assert page.locator('#nbscale-panel input[name="seed"]').input_value() == "7"  # iris kept its own
    assert _field(page, "seed").get_attribute("data-changed") == "true"
    assert _field(page, "C").get_attribute("data-changed") == "false"
    mark = _field(page, "seed").locator(".nbscale-field-changed")
    assert mark.is_visible() and mark.inner_text() == "changed · notebook: 42"
    assert _description(page, "seed") == "changed · notebook: 42"
    assert _description(page, "C") == ""
    reset = page.get_by_role("button", name="Reset seed to the notebook's value 42")
    reset.click()
    assert page.locator('#nbscale-panel input[name="seed"]').input_value() == "42"
    assert _field(page, "seed").get_attribute("data-changed") == "false"
    assert not reset.is_visible()
    assert not mark.is_visible()


# Offenders in the panel: a section wider than its box, content cut off in an overflow-hidden
# box (ellipsized text is fine when a title has it whole), a traceback that does not wrap, the
# panel wider than its sidebar.
CLIPPED = """() => {
    const panel = document.querySelector('#nbscale-panel');
    const out = [];
    const name = el => `${el.tagName.toLowerCase()}.${[...el.classList].join('.')}` +
        (el.dataset.step ? `[${el.dataset.step}]` : '');
    if (panel.getBoundingClientRect().width > panel.parentElement.clientWidth + 1) {
        out.push(`panel ${panel.getBoundingClientRect().width} > sidebar ${panel.parentElement.clientWidth}`);
    }
    for (const s of panel.querySelectorAll('.nbscale-section')) {
        if (s.scrollWidth > s.clientWidth + 1) out.push(`${name(s)} ${s.scrollWidth} > ${s.clientWidth}`);
    }
    for (const el of [panel, ...panel.querySelectorAll('*')]) {
        // SVG draws its own way; a 1 px box is the visually-hidden pattern (screen readers only)
        if (el instanceof SVGElement || el.clientWidth <= 1) continue;
        const style = getComputedStyle(el);
        if (!['hidden', 'clip'].includes(style.overflowX) || el.scrollWidth <= el.clientWidth + 1) continue;
        if (style.textOverflow === 'ellipsis') {
            if (!el.closest('[title]')?.title) out.push(`${name(el)} ellipsized without a title`);
        } else if (!el.classList.contains('nbscale-bar')) {
            out.push(`${name(el)} cut off: ${el.scrollWidth} > ${el.clientWidth}`);
        }
    }
    for (const pre of panel.querySelectorAll('.nbscale-traceback')) {
        if (pre.scrollWidth > pre.clientWidth + 1) {
            out.push(`traceback does not wrap: ${pre.scrollWidth} > ${pre.clientWidth}`);
        }
    }
    return out;
}"""


def _wait_failed_run(page) -> None:
    page.wait_for_function("""() => document.querySelector('#nbscale-panel .nbscale-run-header')
        ?.dataset.status === 'failed'""", timeout=RUN_TIMEOUT_MS)
    page.locator(f'#nbscale-panel .nbscale-step[data-step="{LONG_STEP}"] .nbscale-traceback').wait_for()


def _panel_width(page) -> float:
    return page.evaluate("() => document.querySelector('#nbscale-panel').getBoundingClientRect().width")


def _narrow_the_sidebar(page, width: int) -> None:
    """Drag the right sidebar's splitter until the panel is about `width` px (the theme's minimum
    sidebar width lowered first, as a user's CSS may)."""
    page.add_style_tag(content=":root { --jp-sidebar-min-width: 150px !important; }")
    for _ in range(2):  # closing and opening the sidebar makes Lumino read the limits again
        execute(page, "application:toggle-right-area")
        page.wait_for_timeout(300)
    handles = page.locator("#jp-main-split-panel > .lm-SplitPanel-handle:not(.lm-mod-hidden)")
    handle = handles.last
    box = handle.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + (_panel_width(page) - width), y, steps=10)
    page.mouse.up()
    page.wait_for_timeout(500)


def test_nothing_is_clipped_at_the_default_width_and_narrower(page, lab):
    # content for every part: a failed run (long step name, long traceback) and two workers
    lab.api("nbscale/api/cluster", "POST", {"action": "start"})
    lab.api("nbscale/api/cluster", "POST", {"action": "scale", "n": 2})
    _follow(page, "train.ipynb")
    run = page.locator('#nbscale-panel button[data-engine="dask"]')
    page.wait_for_function("(b) => !b.disabled", arg=run.element_handle(), timeout=RUN_TIMEOUT_MS)
    run.click()
    _wait_failed_run(page)
    page.wait_for_function(
        "() => document.querySelectorAll('#nbscale-panel .nbscale-section-cluster tr[data-worker]').length === 2",
        timeout=120_000)
    default_width = _panel_width(page)
    assert page.evaluate(CLIPPED) == [], f"at the default sidebar width ({default_width:.0f} px)"
    for width in (230, 190):
        _narrow_the_sidebar(page, width)
        narrow = _panel_width(page)
        assert narrow < default_width and narrow <= width + 15, (default_width, narrow)
        assert page.evaluate(CLIPPED) == [], f"at a sidebar of {narrow:.0f} px"
    step = page.locator(f'#nbscale-panel .nbscale-step[data-step="{LONG_STEP}"] .nbscale-step-name')
    assert LONG_STEP in (step.get_attribute("title") or "")  # the ellipsized name, whole
    # every progress bar says what it measures and how far it is
    bars = page.evaluate("""() => [...document.querySelectorAll('#nbscale-panel [role=progressbar]')].map(b =>
        [b.getAttribute('aria-label'), b.getAttribute('aria-valuenow'), b.getAttribute('aria-valuetext')])""")
    assert bars and all(label and now is not None and text for label, now, text in bars), bars
