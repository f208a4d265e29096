"""Screenshots of the nbscale panel on the showcase examples, for the README (not a test).

    python docs/screenshots.py [model_comparison sweep dask_etl monitoring]

Copies the examples into a temporary folder, starts a real JupyterLab on it (tests/lab_harness.py)
and drives Debian's Chromium: each example is opened, run from the panel, and the window is saved
as docs/img/example-<name>.png. The sweep is run with `nbscale sweep` first and its runs are
compared in the panel; monitoring gets a `shift=0` reference run first, so that the panel's run
shows the drift and the metric drop against it. Run it on a quiet machine (`uptime` load < 3):
the runs take a minute or two.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from lab_harness import browser_page, execute, open_notebook, open_panel, running_lab  # noqa: E402

EXAMPLES = ROOT / "examples"
IMAGES = ROOT / "docs" / "img"
NAMES = ("model_comparison", "sweep", "dask_etl", "monitoring")
RUN_TIMEOUT_MS = 600_000
SIZE = {"width": 1600, "height": 1100}
PANEL_WIDTH = 560  # px: the panel's tables and the DAG need more than the default sidebar
SWEEP_VALUES = "C=0.001,0.01,0.1,1,10"


def nbscale(*args: str, cwd: Path) -> None:
    """A CLI command in the examples' copy (the same run store the panel reads)."""
    command = [str(Path(sys.executable).parent / "nbscale"), *args]
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "NO_COLOR": "1"})
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")


def prepare(root: Path, names) -> None:
    for name in names:
        shutil.copy(EXAMPLES / f"{name}.ipynb", root)
    if "sweep" in names:
        nbscale("sweep", "sweep.ipynb", "-p", SWEEP_VALUES, "--engine", "local", cwd=root)
    if "monitoring" in names:  # the reference the panel's (shifted) run is compared with
        nbscale("run", "monitoring.ipynb", "-p", "shift=0", "--engine", "local", cwd=root)


def widen_panel(page) -> None:
    """Drag the handle between the notebook and the right sidebar to make the panel PANEL_WIDTH wide."""
    handle = page.locator("#jp-main-split-panel > .lm-SplitPanel-handle:not(.lm-mod-hidden)").last
    box = handle.bounding_box()
    width = page.evaluate("() => document.querySelector('#nbscale-panel').getBoundingClientRect().width")
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x - (PANEL_WIDTH - width), y, steps=10)
    page.mouse.up()
    page.wait_for_timeout(500)


def run_in_panel(page, panel, engine: str = "dask") -> None:
    """Start a run from the panel and wait until that run (not the one shown before) has ended."""
    before = page.evaluate("() => document.querySelector('#nbscale-panel .nbscale-run-header')?.dataset.run || ''")
    panel.locator(f'button[data-engine="{engine}"]').click()
    page.wait_for_function(
        """(before) => { const h = document.querySelector('#nbscale-panel .nbscale-run-header');
                         return h && h.dataset.run !== before
                             && ['succeeded', 'failed', 'cancelled'].includes(h.dataset.status); }""",
        arg=before, timeout=RUN_TIMEOUT_MS)
    status = page.evaluate("() => document.querySelector('#nbscale-panel .nbscale-run-header').dataset.status")
    if status != "succeeded":
        raise RuntimeError(f"the panel's run {status}")


def compare_all_runs(page, panel, count: int) -> None:
    """Tick every run in the Runs section and open the comparison view."""
    page.wait_for_function("(n) => document.querySelectorAll('#nbscale-section-runs tbody tr').length >= n",
                           arg=count, timeout=60_000)
    for box in panel.locator("#nbscale-section-runs tbody input[type=checkbox]").all()[:count]:
        box.check()
    panel.locator("#nbscale-section-runs .nbscale-compare-button").click()
    page.locator(".jp-MainAreaWidget .nbscale-compare [data-table='metrics']").wait_for(timeout=60_000)


def scroll_panel_to(page, selector: str) -> None:
    """Bring a part of the panel (the run's insights, the metrics) into view, when it is there."""
    page.evaluate("""(s) => { const e = document.querySelector(s);
                             if (e) { e.scrollIntoView({block: 'start'}); } }""", selector)


def open_pipeline_view(page, panel) -> None:
    """The main-area DAG, coloured by the run's statuses (the four parallel training steps)."""
    panel.locator(".nbscale-open-pipeline-view").click()
    page.locator("#nbscale-pipeline-view svg.nbscale-dag .nbscale-dag-node").first.wait_for(timeout=60_000)


def shoot(page, lab, name: str) -> Path:
    """Open the example, show what it is about, and save the window."""
    open_notebook(page, lab, f"{name}.ipynb")
    if page.evaluate("() => !window.jupyterapp.shell.leftCollapsed"):
        execute(page, "application:toggle-left-area")  # the file browser: room for the notebook
    panel = open_panel(page)
    widen_panel(page)
    panel.locator("svg.nbscale-dag .nbscale-dag-node").first.wait_for(timeout=60_000)
    if name == "sweep":  # its runs come from `nbscale sweep`: compare them
        compare_all_runs(page, panel, SWEEP_VALUES.count(",") + 1)
        scroll_panel_to(page, "#nbscale-section-runs")
    else:
        run_in_panel(page, panel)
        scroll_panel_to(page, "#nbscale-panel .nbscale-section-run")
        if name == "model_comparison":
            open_pipeline_view(page, panel)
        elif name == "monitoring":  # the shifted run against the shift=0 one: drift and metric deltas
            compare_all_runs(page, panel, 2)
            scroll_panel_to(page, "#nbscale-panel .nbscale-section-metrics")
    page.wait_for_timeout(1500)  # charts and the cluster section settle
    path = IMAGES / f"example-{name}.png"
    page.screenshot(path=str(path))
    return path


def main(names) -> None:
    unknown = sorted(set(names) - set(NAMES))
    if unknown:
        sys.exit(f"unknown example(s) {', '.join(unknown)}; choose from {', '.join(NAMES)}")
    IMAGES.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="nbscale-screenshots-") as tmp:
        root, work = Path(tmp) / "examples", Path(tmp) / "lab"
        root.mkdir()
        work.mkdir()
        prepare(root, names)
        with running_lab(root, work) as lab, browser_page(**SIZE, timeout_ms=60_000) as page:
            for name in names:
                print(f"saved {shoot(page, lab, name).relative_to(ROOT)}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:] or NAMES)
