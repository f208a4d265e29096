"""The JupyterLab panel in a real browser: Debian's Chromium driven by Playwright against a real
JupyterLab with nbscale installed, serving a copy of examples/iris.ipynb.

The tests run in order on one page, as a user would: open the notebook and the panel, see the
DAG, run on Dask, see the metrics, run again with another parameter, scale the cluster, break
the notebook and see the diagnostic (the cell editor has tests/ui/test_ui_cell_editor.py). Screenshots of the panel
(light and dark theme) are saved under docs/img/ for the README.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from lab_harness import browser_page, execute, open_notebook, open_panel, running_lab

ROOT = Path(__file__).resolve().parents[2]
DOCS_IMG = ROOT / "docs" / "img"
RUN_TIMEOUT_MS = 180_000
STEPS = ["load", "split", "train_lr", "train_rf", "evaluate", "metrics"]


def _labextension_installed() -> bool:
    out = subprocess.run([sys.executable, "-m", "jupyter", "labextension", "list"], capture_output=True, text=True)
    return "nbscale" in out.stdout + out.stderr


@pytest.fixture(scope="module")
def img(tmp_path_factory) -> Path:
    """docs/img/ when the screenshots are missing or NBSCALE_UPDATE_SCREENSHOTS=1 (so that a test run
    does not churn the committed PNGs), else a temporary folder."""
    wanted = ("panel-light.png", "panel-dark.png", "lab-light.png", "lab-dark.png")
    if os.environ.get("NBSCALE_UPDATE_SCREENSHOTS") == "1" or not all((DOCS_IMG / n).exists() for n in wanted):
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        return DOCS_IMG
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    assert _labextension_installed(), "the nbscale labextension is not installed: pip install -e . builds it"
    root = tmp_path_factory.mktemp("lab-root")
    shutil.copy(ROOT / "examples" / "iris.ipynb", root / "iris.ipynb")
    with running_lab(root, tmp_path_factory.mktemp("lab-work")) as server:
        yield server


@pytest.fixture(scope="module")
def page(lab):
    timings = {}
    start = time.monotonic()
    with browser_page() as p:
        open_notebook(p, lab, "iris.ipynb")
        timings["notebook open"] = time.monotonic() - start
        yield p


def _panel(page):
    return page.locator("#nbscale-panel")


def _statuses(page) -> dict[str, str]:
    return page.evaluate("""() => Object.fromEntries(Array.from(
        document.querySelectorAll('#nbscale-panel .nbscale-step')).map(
        r => [r.dataset.step, r.dataset.status]))""")


def _wait_count(page, selector: str, n: int, timeout: int = 30_000) -> None:
    page.wait_for_function("([s, n]) => document.querySelectorAll(s).length === n", arg=[selector, n], timeout=timeout)


def _wait_run_finished(page) -> None:
    try:
        page.wait_for_function(
            """() => { const h = document.querySelector('#nbscale-panel .nbscale-run-header');
                       return h && ['succeeded', 'failed', 'cancelled'].includes(h.dataset.status); }""",
            timeout=RUN_TIMEOUT_MS)
    except Exception as exc:  # say what the panel shows, not only that it timed out
        run = page.evaluate("() => document.querySelector('#nbscale-panel .nbscale-section-run')?.innerText")
        raise AssertionError(f"the run did not finish; the Run section shows:\n{run}") from exc


def _screenshot(page, folder: Path, name: str) -> None:
    """The whole panel (a tall viewport, so nothing is scrolled away) and the whole window."""
    page.screenshot(path=str(folder / f"lab-{name}.png"))
    size = page.viewport_size
    page.set_viewport_size({"width": size["width"], "height": 2000})
    try:
        page.evaluate("() => { document.querySelector('#nbscale-panel').scrollTop = 0; }")
        page.wait_for_timeout(300)
        panel = _panel(page)
        height = page.evaluate("() => document.querySelector('#nbscale-panel').scrollHeight")
        box = panel.bounding_box()
        clip = {"x": box["x"], "y": box["y"], "width": box["width"], "height": min(height, box["height"])}
        page.screenshot(path=str(folder / f"panel-{name}.png"), clip=clip)
    finally:
        page.set_viewport_size(size)
    for kind in ("lab", "panel"):
        assert (folder / f"{kind}-{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_panel_shows_the_dag_of_the_notebook(page):
    for command in ("nbscale:run", "nbscale:export-kfp", "nbscale:scale-cluster", "nbscale:open-panel",
                    "nbscale:set-step-tag"):
        assert page.evaluate("(c) => window.jupyterapp.commands.hasCommand(c)", command), command
    panel = open_panel(page)
    nodes = panel.locator("svg.nbscale-dag .nbscale-dag-node")
    nodes.first.wait_for()
    assert nodes.count() == 6
    assert sorted(nodes.evaluate_all("ns => ns.map(n => n.dataset.step)")) == sorted(STEPS)
    assert panel.locator(".nbscale-section-pipeline .nbscale-section-extra").inner_text() == "6 steps"
    assert "No problems found" in panel.locator(".nbscale-diagnostics").inner_text()
    # the parameters form is pre-filled from the parameters cell, with typed inputs
    assert panel.locator('input[name="seed"]').input_value() == "42"
    assert panel.locator('input[name="seed"]').get_attribute("step") == "1"
    assert panel.locator('input[name="test_size"]').input_value() == "0.25"
    # badges on the tagged cells (drawn once the notebook has loaded: wait for all of them)
    badges = page.locator(".jp-Notebook .nbscale-badge-step")
    _wait_count(page, ".jp-Notebook .nbscale-badge-step", 5)
    assert badges.evaluate_all("bs => bs.map(b => b.dataset.step)") == [
        "load", "split", "train_lr", "train_rf", "evaluate"]
    # a click on a step selects its cell
    panel.locator('.nbscale-dag-node[data-step="train_rf"]').click()
    page.wait_for_function("""() => Array.from(document.querySelectorAll('.jp-Notebook .jp-Cell'))
        .findIndex(c => c.classList.contains('jp-mod-active')) === 10""")


def test_run_on_dask_reaches_succeeded_and_shows_metrics(page):
    panel = _panel(page)
    panel.locator('button[data-engine="dask"]').click()
    panel.locator(".nbscale-run-header").wait_for()
    _wait_run_finished(page)
    statuses = _statuses(page)
    assert statuses == dict.fromkeys(STEPS, "succeeded"), statuses
    assert panel.locator(".nbscale-progress-count").inner_text() == "6/6 steps"
    assert panel.locator(".nbscale-run-header").get_attribute("data-status") == "succeeded"
    durations = panel.locator(".nbscale-step .nbscale-duration").all_inner_texts()
    assert all(d.strip() for d in durations), durations
    # the DAG shows the run too
    assert set(panel.locator(".nbscale-dag-node").evaluate_all("ns => ns.map(n => n.dataset.status)")) == {"succeeded"}
    # metrics of this run, and the history table + chart
    metric = panel.locator('.nbscale-metrics-run [data-metric="acc_lr"] td.nbscale-num')
    metric.wait_for()
    assert 0.5 < float(metric.inner_text().replace("★", "").strip()) <= 1.0
    panel.locator(".nbscale-metrics-table tbody tr").first.wait_for()
    assert panel.locator("svg.nbscale-chart .nbscale-chart-point").count() == 1


def test_scale_the_cluster_to_two_workers(page):
    section = _panel(page).locator(".nbscale-section-cluster")
    # the first run brought its own cluster, gone with it; start one the server keeps
    start = section.locator(".nbscale-cluster-none").get_by_role("button", name="Start LocalCluster")
    start.wait_for(timeout=30_000)
    start.click()
    section.locator(".nbscale-worker-count").wait_for(timeout=60_000)
    assert section.locator(".nbscale-cluster-title strong").inner_text() == "LocalCluster"
    for n in (1, 2):
        section.locator('input[name="n"]').fill(str(n))
        section.locator(".nbscale-scale-button").click()
        section.locator(f'.nbscale-worker-count[data-count="{n}"]').wait_for(timeout=60_000)
        _wait_count(page, "#nbscale-panel .nbscale-section-cluster tr[data-worker]", n)
    assert section.locator(".nbscale-section-extra").inner_text() == "2 workers"
    assert not section.locator(".nbscale-notice-error").is_visible()


def test_second_run_with_a_parameter_reuses_the_cache(page, img):
    panel = _panel(page)
    c = panel.locator('input[name="C"]')
    c.fill("0.05")
    panel.locator('button[data-engine="dask"]').click()
    _wait_count(page, "#nbscale-panel .nbscale-metrics-table tbody tr", 2, RUN_TIMEOUT_MS)
    _wait_run_finished(page)
    statuses = _statuses(page)
    assert statuses["load"] == statuses["split"] == "cached", statuses
    assert statuses["train_lr"] == statuses["evaluate"] == "succeeded", statuses
    _wait_count(page, "#nbscale-panel svg.nbscale-chart .nbscale-chart-point", 2)
    assert panel.locator("svg.nbscale-chart .nbscale-chart-best").count() == 1
    assert panel.locator(".nbscale-metrics-table .nbscale-best").count() >= 1
    # it ran on the cluster the server keeps: still 2 workers
    assert _panel(page).locator(".nbscale-section-cluster .nbscale-worker-count").get_attribute("data-count") == "2"
    _screenshot(page, img, "light")


def test_export_to_kfp_downloads_yaml_and_submit_reports_in_one_line(page):
    panel = _panel(page)
    try:
        with page.expect_download(timeout=60_000) as download:
            panel.get_by_role("button", name="Export to KFP").click()
    except Exception as exc:  # say what the panel shows (a failed export is a notice), not only that it timed out
        notice = panel.locator(".nbscale-section-run .nbscale-notice").inner_text()
        raise AssertionError(f"no download; the Run section's notice says: {notice!r}") from exc
    assert download.value.suggested_filename == "iris.yaml"
    text = Path(download.value.path()).read_text()
    assert "train_lr" in text and "pipelineInfo" in text
    # no KFP host is configured here: the error is one line in the Run section
    panel.get_by_role("button", name="Submit to KFP").click()
    notice = panel.locator(".nbscale-section-run .nbscale-notice-error")
    notice.wait_for(timeout=30_000)
    assert notice.inner_text().startswith("Could not submit to KFP: ")
    assert "\n" not in notice.inner_text().strip()


def test_cancel_a_run(page):
    panel = _panel(page)
    panel.locator('input[name="C"]').fill("0.2")
    panel.locator('button[data-engine="dask"]').click()
    cancel = panel.get_by_role("button", name="Cancel", exact=True)
    page.wait_for_function("""() => { const b = Array.from(document.querySelectorAll('#nbscale-panel button'))
        .find(b => b.textContent === 'Cancel'); return b && !b.disabled; }""", timeout=30_000)
    cancel.click()
    page.wait_for_function("""() => document.querySelector('#nbscale-panel .nbscale-run-header')
        ?.dataset.status === 'cancelled'""", timeout=RUN_TIMEOUT_MS)
    assert panel.locator(".nbscale-step[data-status='running']").count() == 0
    assert cancel.is_disabled()
    panel.get_by_role("button", name="Reset to defaults").click()
    assert panel.locator('input[name="C"]').input_value() == "1"


def test_a_failed_step_shows_its_traceback_and_jumps_to_the_cell(page):
    panel = _panel(page)
    panel.locator('input[name="test_size"]').fill("1.5")  # train_test_split refuses it
    panel.locator('button[data-engine="dask"]').click()
    page.wait_for_function("""() => document.querySelector('#nbscale-panel .nbscale-run-header')
        ?.dataset.status === 'failed'""", timeout=RUN_TIMEOUT_MS)
    statuses = _statuses(page)
    assert statuses["split"] == "failed", statuses
    assert statuses["train_lr"] == statuses["evaluate"] == "upstream_failed", statuses
    failed = panel.locator('.nbscale-step[data-step="split"]')
    failed.locator(".nbscale-traceback").wait_for()
    assert "test_size" in failed.locator(".nbscale-traceback").inner_text()
    assert failed.locator(".nbscale-error-title").inner_text().startswith("InvalidParameterError") or \
        "Error" in failed.locator(".nbscale-error-title").inner_text()
    page.locator(".jp-Notebook .jp-Cell").nth(0).click()
    failed.locator(".nbscale-error-box .nbscale-link-button").click()
    page.wait_for_function("""() => Array.from(document.querySelectorAll('.jp-Notebook .jp-Cell'))
        .findIndex(c => c.classList.contains('jp-mod-active')) === 8""")
    assert panel.locator('.nbscale-dag-node[data-step="split"]').get_attribute("data-status") == "failed"
    panel.get_by_role("button", name="Reset to defaults").click()


def test_an_undefined_name_shows_a_diagnostic_that_selects_its_cell(page, img):
    panel = _panel(page)
    cell = page.locator(".jp-Notebook .jp-Cell").nth(11)  # the `evaluate` step
    cell.locator(".cm-content").click()
    # keys pressed before the editor has the focus are command-mode shortcuts (r: raw cell...)
    page.wait_for_function("""() => { const nb = window.jupyterapp.shell.currentWidget.content;
        return nb.mode === 'edit' && nb.activeCellIndex === 11 && nb.activeCell.editor.hasFocus(); }""")
    page.keyboard.press("Control+End")
    page.keyboard.type("\nprint(undefined_thing)")
    page.wait_for_function("""() => window.jupyterapp.shell.currentWidget.content.widgets[11]
        .model.sharedModel.getSource().endsWith('\\nprint(undefined_thing)')""")
    page.keyboard.press("Escape")
    page.keyboard.press("Control+s")
    diagnostic = panel.locator('.nbscale-diagnostic[data-code="undefined-name"]')
    diagnostic.wait_for(timeout=30_000)
    assert "undefined_thing" in diagnostic.inner_text()
    assert "cell 12" in diagnostic.inner_text()  # index 11, numbered as JupyterLab's status bar does
    page.locator(".jp-Notebook .jp-Cell").nth(0).click()  # select another cell first
    diagnostic.click()
    page.wait_for_function("""() => Array.from(document.querySelectorAll('.jp-Notebook .jp-Cell'))
        .findIndex(c => c.classList.contains('jp-mod-active')) === 11""")
    execute(page, "apputils:change-theme", {"theme": "JupyterLab Dark"})
    page.wait_for_function("() => document.body.dataset.jpThemeLight === 'false'", timeout=30_000)
    page.wait_for_timeout(500)
    _screenshot(page, img, "dark")
