"""Run history and comparison in a real browser (Debian's Chromium, Playwright, a real JupyterLab):
runs started from the panel and from the CLI are both listed (the CLI's while the panel is open);
picking two opens the comparison view in the main area with the changed parameter highlighted and
metric deltas; Export CSV downloads a CSV; a screenshot of the view goes to docs/img/compare-view.png.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import make_notebook
from lab_harness import KERNEL, browser_page, execute, open_notebook, open_panel, running_lab

ROOT = Path(__file__).resolve().parents[2]
DOCS_IMG = ROOT / "docs" / "img"
RUN_TIMEOUT_MS = 120_000
SWEEP = [
    ("alpha = 2\nlabel = 'base'", ["parameters"]),
    ("data = list(range(50))", ["step:load"]),
    ("scaled = [x * alpha for x in data]", ["step:scale"]),
    ("loss = sum(scaled) / 1000\naccuracy = 1 / (1 + loss)", ["step:evaluate"]),
    ("loss\naccuracy", ["metrics"]),
]



@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("lab-root")
    make_notebook(root, SWEEP, name="sweep", metadata=KERNEL)
    return root


@pytest.fixture(scope="module")
def lab(root, tmp_path_factory):
    work = tmp_path_factory.mktemp("lab-work")
    with running_lab(root, work) as server:
        yield server


@pytest.fixture(scope="module")
def page(lab):
    with browser_page() as p:
        open_notebook(p, lab, "sweep.ipynb")
        yield p


def _rows(page) -> list[dict]:
    return page.evaluate("""() => Array.from(document.querySelectorAll('#nbscale-section-runs tbody tr')).map(r => ({
        run: r.dataset.run, status: r.querySelector('.nbscale-dot').getAttribute('aria-label'),
        engine: r.querySelector('.nbscale-run-engine').textContent,
        params: r.querySelector('.nbscale-run-params').getAttribute('title')}))""")


def _wait_runs_finished(page, n: int) -> None:
    try:
        page.wait_for_function(
            """(n) => { const rows = document.querySelectorAll('#nbscale-section-runs tbody tr');
                        return rows.length === n && Array.from(rows).every(
                          r => r.querySelector('.nbscale-dot').getAttribute('aria-label') === 'succeeded'); }""",
            arg=n, timeout=RUN_TIMEOUT_MS)
    except Exception as exc:
        raise AssertionError(f"the run list does not show {n} finished runs: {_rows(page)}") from exc


def test_runs_from_the_panel_and_the_cli_are_listed(page, root):
    open_panel(page)
    section = page.locator("#nbscale-section-runs")
    section.wait_for()
    page.wait_for_function("() => document.querySelector('#nbscale-section-runs').textContent.includes('No runs yet')")
    execute(page, "nbscale:run", {"engine": "local"})
    _wait_runs_finished(page, 1)
    # a CLI run while the panel is open appears without a reload
    env = {**os.environ, "PATH": f"{Path(shutil.which('nbscale') or 'nbscale').parent}:{os.environ.get('PATH', '')}"}
    done = subprocess.run(["nbscale", "run", str(root / "sweep.ipynb"), "--engine", "local", "-p", "alpha=5"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    _wait_runs_finished(page, 2)
    rows = _rows(page)
    assert "alpha=5" in rows[0]["params"] and "alpha=2" in rows[1]["params"]  # newest first
    assert all(r["engine"] == "local" for r in rows)
    # a click shows the run in the Run section
    page.locator(f'#nbscale-section-runs tr[data-run="{rows[1]["run"]}"] td:nth-child(2)').click()
    page.wait_for_function("(id) => document.querySelector(`#nbscale-section-runs tr[data-run='${id}']`)"
                           ".classList.contains('nbscale-current-run')", arg=rows[1]["run"])


def test_two_picked_runs_open_the_comparison(page):
    rows = _rows(page)
    compare = page.locator("#nbscale-section-runs .nbscale-compare-button")
    assert compare.is_disabled()
    for row in rows:
        page.locator(f'#nbscale-section-runs input[data-run="{row["run"]}"]').check()
    assert compare.is_enabled()
    compare.click()
    view = page.locator(".jp-MainAreaWidget .nbscale-compare")
    view.locator("[data-table='metrics']").wait_for(timeout=30_000)
    changed = view.locator("[data-table='parameters'] tr.nbscale-changed")
    assert changed.count() == 1 and changed.locator("td").first.inner_text() == "alpha"
    values = changed.locator("td").all_inner_texts()
    assert values[1:] == ["2", "5"]  # the panel's run is the older one: the reference
    assert view.locator("[data-table='parameters'] tr:not(.nbscale-changed) td").first.inner_text() == "label"
    loss = view.locator("[data-table='metrics'] tbody tr", has_text="loss")
    cells = loss.locator("td").all_inner_texts()
    assert cells[1] == "lower" and cells[4].startswith("+")
    assert "nbscale-worse" in (loss.locator("td").nth(4).get_attribute("class") or "")
    accuracy = view.locator("[data-table='metrics'] tbody tr", has_text="accuracy")
    assert "nbscale-worse" in (accuracy.locator("td").nth(4).get_attribute("class") or "")
    scale = view.locator("[data-table='steps'] tbody tr", has_text="scale")
    assert "nbscale-reran" in (scale.get_attribute("class") or "")
    assert "parameters it reads" in scale.inner_text()
    load = view.locator("[data-table='steps'] tbody tr", has_text="load")
    assert "reused the stored result" in load.inner_text()


def test_comparison_columns_sort_and_export_as_csv(page, tmp_path):
    view = page.locator(".jp-MainAreaWidget .nbscale-compare")
    names = lambda: view.locator("[data-table='metrics'] tbody tr td:first-child").all_inner_texts()  # noqa: E731
    assert names() == ["accuracy", "loss"]
    header = view.locator("[data-table='metrics'] th button").first
    header.click()
    header.click()
    assert names() == ["loss", "accuracy"]
    with page.expect_download() as info:
        view.locator(".nbscale-export-csv").click()
    download = info.value
    assert download.suggested_filename.startswith("nbscale-compare-") and download.suggested_filename.endswith(".csv")
    target = tmp_path / download.suggested_filename
    download.save_as(target)
    rows = list(csv.reader(io.StringIO(target.read_text(encoding="utf-8"))))
    assert ["Parameters"] in rows and ["alpha", "2", "5"] in rows
    loss = next(r for r in rows if r and r[0] == "loss")
    assert loss[1] == "min" and float(loss[4]) > 0


def test_save_the_comparison_screenshot(page):
    DOCS_IMG.mkdir(parents=True, exist_ok=True)
    view = page.locator(".jp-MainAreaWidget", has=page.locator(".nbscale-compare"))
    page.wait_for_timeout(300)
    view.screenshot(path=str(DOCS_IMG / "compare-view.png"))
    assert (DOCS_IMG / "compare-view.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
