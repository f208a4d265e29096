"""The pipeline view in a real browser (Debian Chromium, Playwright, a real JupyterLab): the
sidebar's DAG stays readable (labels drawn at 11 px or more, scrolling instead of shrinking) on
a 16-step notebook, the main-area view shows the names that flow on its edges, colours a run
live, and a click on a step selects its cell and shows what the step showed: a figure and a
Python warning. Screenshots of the view and the step detail go to docs/img/.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nbformat
import pytest
from lab_harness import browser_page, execute, open_notebook, open_panel, running_lab

ROOT = Path(__file__).resolve().parents[2]
DOCS_IMG = ROOT / "docs" / "img"
SCREENSHOTS = ("pipeline-view.png", "step-detail.png")
RUN_TIMEOUT_MS = 180_000
MIN_FONT_PX = 11

# iris with one more step after `evaluate`: it warns and draws a figure, as a data scientist's would
PLOT_STEP = """import warnings
import matplotlib.pyplot as plt
warnings.warn("iris is a small data set", UserWarning)
plt.bar(["logistic", "forest"], [acc_lr, acc_rf])
plt.title("accuracy")
plt.show()
print("plotted")"""

# readable px of an SVG text: its CSS font size times the drawing's scale on screen
EFFECTIVE_FONT = """(selector) => Array.from(document.querySelectorAll(selector)).map(t => {
    const svg = t.ownerSVGElement;
    const scale = svg.getBoundingClientRect().width / svg.viewBox.baseVal.width;
    return parseFloat(getComputedStyle(t).fontSize) * scale;
})"""


# the notebook's own active cell (the restored workspace may hold another notebook's cells too)
ACTIVE_CELL_IS = """([path, i]) => {
    const nb = Array.from(window.jupyterapp.shell.widgets('main')).find(w => w.context && w.context.path === path);
    return !!nb && nb.content.activeCellIndex === i && nb.content.activeCell.node.classList.contains('jp-mod-active');
}"""



def _sixteen_steps(path: Path) -> None:
    """Four chains of four steps with names as long as real ones, and a parameter."""
    iris = nbformat.read(str(ROOT / "examples" / "iris.ipynb"), as_version=4)
    nb = nbformat.v4.new_notebook(metadata=iris.metadata)  # its kernel: no "select a kernel" dialog
    nb.cells.append(nbformat.v4.new_code_cell("scale = 2", metadata={"tags": ["parameters"]}))
    for chain in range(4):
        previous = None
        for depth in range(4):
            name = f"feature_block_{chain}_{depth}"
            source = f"v_{chain}_{depth} = {f'v_{chain}_{depth - 1} + 1' if previous else 'scale'}"
            nb.cells.append(nbformat.v4.new_code_cell(source, metadata={"tags": [f"step:{name}"]}))
            previous = name
    nbformat.write(nb, str(path))


def _iris_with_a_plot(path: Path) -> int:
    """examples/iris.ipynb with a `plot` step before the metrics cell; the plot cell's index."""
    nb = nbformat.read(str(ROOT / "examples" / "iris.ipynb"), as_version=4)
    index = next(i for i, c in enumerate(nb.cells) if "metrics" in c.metadata.get("tags", []))
    nb.cells.insert(index, nbformat.v4.new_code_cell(PLOT_STEP, metadata={"tags": ["step:plot"]}))
    nbformat.write(nb, str(path))
    return index


@pytest.fixture(scope="module")
def img(tmp_path_factory) -> Path:
    """docs/img/ when the screenshots are missing or NBSCALE_UPDATE_SCREENSHOTS=1, else a temporary folder."""
    if os.environ.get("NBSCALE_UPDATE_SCREENSHOTS") == "1" or not all((DOCS_IMG / n).exists() for n in SCREENSHOTS):
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        return DOCS_IMG
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("lab-root")
    shutil.copy(ROOT / "examples" / "iris.ipynb", root / "iris.ipynb")
    _sixteen_steps(root / "wide.ipynb")
    plot_cell = _iris_with_a_plot(root / "iris_plot.ipynb")
    work = tmp_path_factory.mktemp("lab-work")
    with running_lab(root, work) as server:
        server.plot_cell = plot_cell
        yield server


@pytest.fixture(scope="module")
def page(lab):
    with browser_page() as p:
        yield p


def _view(page):
    return page.locator("#nbscale-pipeline-view")


def _open_view(page):
    """Open the main-area view from the sidebar's pipeline section, as a user does."""
    panel = open_panel(page)
    panel.locator(".nbscale-open-pipeline-view").click()
    view = _view(page)
    view.locator("svg.nbscale-dag .nbscale-dag-node").first.wait_for()
    return view


def test_sixteen_steps_stay_readable_in_the_sidebar_and_the_view(page, lab):
    open_notebook(page, lab, "wide.ipynb")
    panel = open_panel(page)
    panel.locator("svg.nbscale-dag .nbscale-dag-node").first.wait_for()
    assert panel.locator(".nbscale-dag-node").count() == 16
    sidebar = page.evaluate(EFFECTIVE_FONT, "#nbscale-panel .nbscale-dag-label")
    assert len(sidebar) == 16 and min(sidebar) >= MIN_FONT_PX, sidebar
    # too wide for the sidebar: it scrolls, it does not shrink
    scroll = panel.locator(".nbscale-dag-scroll")
    assert scroll.evaluate("e => e.scrollWidth > e.clientWidth"), "the 16-step DAG should scroll sideways"
    view = _open_view(page)
    assert view.locator(".nbscale-dag-node").count() == 16
    labels = page.evaluate(EFFECTIVE_FONT, "#nbscale-pipeline-view .nbscale-dag-label")
    assert min(labels) >= MIN_FONT_PX, labels
    edge_labels = view.locator(".nbscale-dag-edge-label")
    assert edge_labels.count() == 12  # 4 chains × 3 edges, each with the name that flows
    assert "v_0_0" in edge_labels.all_inner_texts() or "v_0_0" in " ".join(
        edge_labels.evaluate_all("ls => ls.map(l => l.textContent)"))
    assert min(page.evaluate(EFFECTIVE_FONT, "#nbscale-pipeline-view .nbscale-dag-edge-label")) >= MIN_FONT_PX
    # zoom and layout controls in the view's toolbar
    toolbar = page.locator("#nbscale-pipeline-view-area .nbscale-pipeline-view-controls")
    toolbar.get_by_role("button", name="Zoom in").click()
    assert toolbar.locator(".nbscale-zoom-label").inner_text() == "125%"
    toolbar.locator(".nbscale-direction").click()
    assert view.locator("svg.nbscale-dag").get_attribute("data-direction") == "TB"
    toolbar.locator(".nbscale-zoom-reset").click()


def test_a_run_is_coloured_live_and_a_click_shows_the_steps_figure_and_warning(page, lab, img):
    open_notebook(page, lab, "iris_plot.ipynb")
    page.evaluate("() => window.jupyterapp.shell.collapseLeft()")  # room for the screenshots
    view = _open_view(page)
    assert view.locator(".nbscale-dag-node").count() == 7
    assert view.locator('.nbscale-dag-edge-label[data-from="split"][data-to="train_lr"]').text_content().startswith(
        "X_train, y_train")
    execute(page, "nbscale:run", {"engine": "local"})
    page.wait_for_function(
        """() => { const ns = Array.from(document.querySelectorAll('#nbscale-pipeline-view .nbscale-dag-node'));
                   return ns.length === 7 && ns.every(n => n.dataset.status === 'succeeded'); }""",
        timeout=RUN_TIMEOUT_MS)
    # a step without a warning or error mark (those draw their own stroke) shows the success
    # colour; read in one evaluation, since live updates redraw the nodes
    colours = page.evaluate("""() => {
        const svg = document.querySelector('#nbscale-pipeline-view svg.nbscale-dag');
        const box = svg.querySelector('.nbscale-dag-node[data-step="split"] .nbscale-dag-box');
        const r = document.createElementNS('http://www.w3.org/2000/svg', 'rect');
        r.style.stroke = 'var(--jp-success-color1)';
        svg.appendChild(r);
        const expected = getComputedStyle(r).stroke; r.remove();
        return {marked: box.parentNode.matches('.nbscale-dag-has-warning, .nbscale-dag-has-error'),
                drawn: getComputedStyle(box).stroke, expected}; }""")
    assert not colours["marked"], colours
    assert colours["drawn"] == colours["expected"], f"a succeeded step is drawn in the success colour: {colours}"
    page.screenshot(path=str(img / "pipeline-view.png"))
    view.locator('.nbscale-dag-node[data-step="plot"]').click()
    page.wait_for_function(ACTIVE_CELL_IS, arg=["iris_plot.ipynb", lab.plot_cell])
    detail = view.locator('.nbscale-step-detail[data-step="plot"]')
    detail.wait_for(timeout=30_000)
    assert detail.locator('dd[data-fact="status"]').inner_text() == "succeeded"
    assert detail.locator(".nbscale-cell-label").first.inner_text() == f"Cell {lab.plot_cell + 1}"
    warning = detail.locator('[data-output="warning"]')
    assert "UserWarning: iris is a small data set" in warning.inner_text()
    assert "plotted" in detail.locator('[data-output="stream"]').first.inner_text()
    figure = detail.locator('[data-output="image"] img')
    figure.wait_for()
    page.wait_for_function(
        "() => { const i = document.querySelector('#nbscale-pipeline-view .nbscale-output-image img');"
        " return i && i.complete && i.naturalWidth > 100; }")
    inputs = detail.locator('.nbscale-step-values tr[data-kind="in"]').evaluate_all("rs => rs.map(r => r.dataset.name)")
    assert sorted(inputs) == ["acc_lr", "acc_rf"]
    detail.scroll_into_view_if_needed()
    page.screenshot(path=str(img / "step-detail.png"))
    for name in SCREENSHOTS:
        assert (img / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
