"""The Cluster section in a real browser (Debian's Chromium, Playwright, a real JupyterLab with
nbscale, bokeh and jupyter-server-proxy installed).

In order, on one page: a Dask run's own cluster is shown without Scale/Adapt/Close (they showed,
the `hidden` attribute losing to `display: flex`) and a scale request names that cluster instead of
saying "no cluster to scale" beside its workers; then a cluster the server keeps scales to 2, its
dashboard link goes through jupyter-server-proxy under the server's base URL, and the task-stream
plot opens as a main-area pane whose Bokeh page draws (its websocket goes through the proxy too).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.error
from pathlib import Path

import nbformat
import pytest
from lab_harness import KERNEL, browser_page, open_notebook, open_panel, running_lab

NOTEBOOK = "slow.ipynb"
ROOT = Path(__file__).resolve().parents[2]



@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    out = subprocess.run([sys.executable, "-m", "jupyter", "labextension", "list"], capture_output=True, text=True)
    assert "nbscale" in out.stdout + out.stderr, "the nbscale labextension is not installed: pip install -e ."
    root = tmp_path_factory.mktemp("lab-root")
    nb = nbformat.v4.new_notebook(metadata=KERNEL)
    cells = [("import time", ["imports"]), ("a = 1", ["step:first"]), ("time.sleep(120)\nb = a", ["step:slow"])]
    nb.cells = [nbformat.v4.new_code_cell(src, metadata={"tags": tags}) for src, tags in cells]
    nbformat.write(nb, root / NOTEBOOK)
    work = tmp_path_factory.mktemp("lab-work")
    with running_lab(root, work) as server:
        yield server


@pytest.fixture(scope="module")
def page(lab):
    with browser_page() as p:
        open_notebook(p, lab, NOTEBOOK)
        open_panel(p)
        yield p


def _section(page):
    return page.locator("#nbscale-panel .nbscale-section-cluster")


def _post_cluster(lab, body: dict) -> tuple[int, dict]:
    try:
        return 200, lab.api("nbscale/api/cluster", "POST", body)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_a_runs_own_cluster_has_no_scale_controls_and_is_named(page, lab):
    section = _section(page)
    page.locator('#nbscale-panel button[data-engine="dask"]').click()
    title = section.locator(".nbscale-cluster-title strong")
    page.wait_for_function("""() => {
        const t = document.querySelector('#nbscale-panel .nbscale-cluster-title strong');
        const n = document.querySelector('#nbscale-panel .nbscale-worker-count');
        return t && t.textContent === "run's cluster" && n && Number(n.dataset.count) > 0; }""", timeout=120_000)
    assert title.inner_text() == "run's cluster"
    workers = int(section.locator(".nbscale-worker-count").get_attribute("data-count"))
    # the run's own cluster: nothing to scale, adapt or close it with, only the offer to start one
    for control in (".nbscale-scale-button", 'input[name="n"]', 'input[name="minimum"]'):
        assert not section.locator(control).is_visible(), control
    assert not section.get_by_role("button", name="Adapt").is_visible()
    assert not section.get_by_role("button", name="Close cluster").is_visible()
    assert section.locator(".nbscale-cluster-run-own").get_by_role("button", name="Start LocalCluster").is_visible()
    # and asked anyway (another client, an old page), the server says whose workers those are
    code, body = _post_cluster(lab, {"action": "scale", "n": 2})
    assert code == 409, body
    plural = "s" if workers != 1 else ""
    assert body["error"].startswith(f"the {workers} worker{plural} shown belong"), body
    assert "running pipeline's own cluster" in body["error"] and "no cluster to scale" not in body["error"]
    # end the run: its cluster goes with it
    runs = lab.api(f"nbscale/api/runs?path={NOTEBOOK}")["runs"]
    lab.api(f"nbscale/api/runs/{runs[0]['run_id']}?path={NOTEBOOK}", "DELETE")
    section.locator(".nbscale-cluster-none").wait_for(state="visible", timeout=60_000)


def test_a_server_cluster_scales_to_two_with_its_dashboard_through_the_proxy(page, lab):
    section = _section(page)
    section.locator(".nbscale-cluster-none").get_by_role("button", name="Start LocalCluster").click()
    section.locator(".nbscale-scale-button").wait_for(state="visible", timeout=60_000)
    section.locator('input[name="n"]').fill("2")
    section.locator(".nbscale-scale-button").click()
    section.locator('.nbscale-worker-count[data-count="2"]').wait_for(timeout=60_000)
    assert section.locator("tr[data-worker]").count() == 2
    assert not section.locator(".nbscale-notice-error").is_visible()
    # the dashboard: under the server's base URL through jupyter-server-proxy, not 127.0.0.1:<port>
    link = section.locator(".nbscale-dashboard-link")
    href = link.get_attribute("href")
    match = re.fullmatch(re.escape(lab.url) + r"/proxy/(\d+)/status", href)
    assert match, href
    assert link.get_attribute("data-proxied") == "1"
    assert not section.locator(".nbscale-dashboard-note").is_visible()
    plots = page.request.get(f"{lab.url}/proxy/{match[1]}/individual-plots.json")
    assert plots.ok, plots.status
    assert "/individual-task-stream" in json.dumps(plots.json())


def test_the_task_stream_opens_as_a_pane_and_draws(page, lab):
    section = _section(page)
    section.locator('button[data-plot="individual-task-stream"]').click()
    pane = page.locator("#nbscale-dask-individual-task-stream")
    pane.wait_for(state="visible")
    assert page.locator(".jp-MainAreaWidget, #jp-main-dock-panel").first.is_visible()
    tab = page.locator('#jp-main-dock-panel .lm-TabBar-tab[data-id="nbscale-dask-individual-task-stream"]')
    assert tab.inner_text().strip() == "Dask Task stream"
    src = pane.locator("iframe").get_attribute("src")
    assert re.fullmatch(re.escape(lab.url) + r"/proxy/\d+/individual-task-stream", src), src
    frame = page.frame_locator("#nbscale-dask-individual-task-stream iframe")
    # Bokeh builds the plot from what its websocket sends: a canvas means the proxy carried that too
    frame.locator("canvas").first.wait_for(state="attached", timeout=60_000)
    title = page.wait_for_function("""() => {
        const f = document.querySelector('#nbscale-dask-individual-task-stream iframe');
        return f && f.contentDocument && f.contentDocument.title; }""").json_value()
    assert title == "Dask: TaskStream", title
    # asked again, the one pane comes forward instead of a second one
    section.locator('button[data-plot="individual-task-stream"]').click()
    assert page.locator("#nbscale-dask-individual-task-stream").count() == 1
