"""The panel's live run status in a real browser (Debian's Chromium, a real JupyterLab, real Dask
runs): a quick step shows succeeded while the steps after it run, queued steps are not shown as
running, a running step ticks its elapsed time and shows its output, the embedded cluster's start
shows as a phase, and a cancelled run never shows 100 %.

A MutationObserver in the page records every status each step row and the run header show, in
order: the tests read what the panel showed, not only where it ended.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from lab_harness import KERNEL, browser_page, open_notebook, open_panel, running_lab

RUN_TIMEOUT_MS = 180_000
# on the embedded 2-worker LocalCluster: `fast` ends in milliseconds, then three siblings read its
# value; two run at once, the third waits for a worker (queued), and `last` waits for all three
CELLS = [
    ("import time", ["imports"]),
    ("x = 1", ["step:fast"]),
    ("print('tick 1', flush=True)\ntime.sleep(0.5)\nprint('tick 2', flush=True)\ntime.sleep(5)\na = x + 1",
     ["step:s1"]),
    ("time.sleep(5)\nb = x + 2", ["step:s2"]),
    ("time.sleep(3)\nc = x + 3", ["step:s3"]),
    ("total = a + b + c", ["step:last"]),
]
SLOW = [("import time", ["imports"]), ("time.sleep(60)\ny = 1", ["step:long"]), ("z = y + 1", ["step:after"]),
        ("w = z + 1", ["step:end"])]

RECORDER = """() => {
  window.__nbscaleSeen = [];
  const seen = window.__nbscaleSeen;
  const last = {};
  const note = (key, value) => { if (last[key] !== value) { last[key] = value; seen.push([key, value]); } };
  const look = () => {
    const header = document.querySelector('#nbscale-panel .nbscale-run-header');
    if (!header) return;
    note('run', header.dataset.status);
    const phase = header.querySelector('.nbscale-run-phase');
    note('phase', phase ? phase.textContent : '');
    for (const row of document.querySelectorAll('#nbscale-panel .nbscale-step')) {
      note(row.dataset.step, row.dataset.status);
      const live = row.querySelector('.nbscale-live-output');
      if (live) note('output:' + row.dataset.step, live.textContent);
      const elapsed = row.querySelector('.nbscale-elapsed');
      if (elapsed) note('elapsed:' + row.dataset.step, elapsed.textContent);
    }
    const bar = document.querySelector('#nbscale-panel .nbscale-run-progress .nbscale-bar-label');
    if (bar) note('bar', bar.textContent);
  };
  new MutationObserver(look).observe(document.querySelector('#nbscale-panel'),
                                     { subtree: true, childList: true, attributes: true, characterData: true });
}"""


def labextension_installed() -> bool:
    out = subprocess.run([sys.executable, "-m", "jupyter", "labextension", "list"], capture_output=True, text=True)
    return "nbscale" in out.stdout + out.stderr


def _write(path: Path, cells) -> None:
    nb = nbformat.v4.new_notebook()
    for source, tags in cells:
        cell = nbformat.v4.new_code_cell(source)
        cell.metadata["tags"] = tags
        nb.cells.append(cell)
    nb.metadata.update(KERNEL)
    nbformat.write(nb, path)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    assert labextension_installed(), "the nbscale labextension is not installed: pip install -e . builds it"
    root = tmp_path_factory.mktemp("lab-root")
    _write(root / "live.ipynb", CELLS)
    _write(root / "slow.ipynb", SLOW)
    settings = {"nbscale/plugin": {"useCache": False}}
    with running_lab(root, tmp_path_factory.mktemp("lab-work"), settings=settings) as server:
        yield server


@pytest.fixture(scope="module")
def page(lab):
    with browser_page() as p:
        yield p


def _start(page, lab, notebook: str):
    open_notebook(page, lab, notebook)
    panel = open_panel(page)
    panel.locator(".nbscale-dag-node").first.wait_for(timeout=60_000)
    page.wait_for_function("() => document.querySelector('#nbscale-panel .nbscale-live')?.textContent === 'live'",
                           timeout=30_000)
    page.evaluate(RECORDER)
    panel.locator('button[data-engine="dask"]').click()
    return panel


def _wait_header(page, statuses) -> None:
    page.wait_for_function(
        """(wanted) => wanted.includes(document.querySelector('#nbscale-panel .nbscale-run-header')?.dataset.status)""",
        arg=list(statuses), timeout=RUN_TIMEOUT_MS)


class Seen(list):
    """What the panel showed, in order: (step or 'run'/'phase'/'bar'/..., value); it prints whole."""

    def __repr__(self):
        return "\n" + "\n".join(f"  {key} = {value!r}" for key, value in self)


def _seen(page) -> Seen:
    return Seen(tuple(x) for x in page.evaluate("() => window.__nbscaleSeen"))


def _snapshots(seen, steps):
    """The steps' statuses after each change the panel showed."""
    current = {}
    for key, value in seen:
        if key in steps:
            current[key] = value
            yield dict(current)


def _statuses_of(seen, step) -> list[str]:
    return [value for key, value in seen if key == step]


def test_live_status_is_truthful_while_a_run_goes(page, lab):
    _start(page, lab, "live.ipynb")
    _wait_header(page, ["succeeded", "failed", "cancelled"])
    seen = _seen(page)
    assert _statuses_of(seen, "run")[-1] == "succeeded", seen
    order = [(key, value) for key, value in seen]
    # the 7 ms step shows succeeded before any step after it finishes (not batched with them)
    fast_done = order.index(("fast", "succeeded"))
    for sibling in ("s1", "s2", "s3"):
        assert fast_done < order.index((sibling, "succeeded")), seen
    # queued is not running: while two siblings ran on the 2 workers, the third was shown queued
    snapshots = list(_snapshots(seen, ("fast", "s1", "s2", "s3", "last")))
    assert any(sorted(shot[s] for s in ("s1", "s2", "s3")) == ["queued", "running", "running"]
               for shot in snapshots if all(s in shot for s in ("s1", "s2", "s3"))), seen
    for step in ("s1", "s2", "s3", "last"):
        statuses = _statuses_of(seen, step)
        if "queued" in statuses:
            assert statuses.index("queued") < statuses.index("running"), (step, statuses)
    # the embedded cluster's start showed as a phase; a running step ticked and showed its output
    assert "starting cluster" in _statuses_of(seen, "phase"), seen
    assert any("tick 2" in text for text in _statuses_of(seen, "output:s1")), seen
    assert len(set(_statuses_of(seen, "elapsed:s1"))) >= 2, seen  # e.g. "0 s", "1 s", ...
    # only now, finished: 100 %
    assert _statuses_of(seen, "bar")[-1] == "100%"
    assert "100%" not in _statuses_of(seen, "bar")[:-1], seen


def test_a_cancelled_run_never_shows_100_percent(page, lab):
    panel = _start(page, lab, "slow.ipynb")
    page.wait_for_function("""() => document.querySelector(
        '#nbscale-panel .nbscale-step[data-step="long"]')?.dataset.status === 'running'""", timeout=RUN_TIMEOUT_MS)
    panel.get_by_role("button", name="Cancel", exact=True).click()
    _wait_header(page, ["cancelled"])
    page.wait_for_function("""() => Array.from(document.querySelectorAll('#nbscale-panel .nbscale-step'))
        .every(r => r.dataset.status === 'cancelled')""", timeout=60_000)
    seen = _seen(page)
    assert "100%" not in _statuses_of(seen, "bar"), seen
    assert panel.locator(".nbscale-run-progress .nbscale-bar-label").inner_text() == "cancelled: 0/3"
    assert panel.locator(".nbscale-progress-count").inner_text() == "0 of 3 steps finished"
