"""Panel latency benchmark: the delay from a step finishing to the JupyterLab panel showing it.

Run on demand (not part of the tests; needs Debian's chromium and the installed labextension):

    python bench/bench_panel.py             # measure, print, update docs/benchmarks.md
    python bench/bench_panel.py --runs 5    # more runs per mode

It starts a real JupyterLab (tests/lab_harness.py) serving a copy of examples/iris.ipynb, opens
the notebook and the nbscale panel in headless Chromium, and runs the pipeline on Dask from the
panel with the cache off (so all 6 steps execute every time). A MutationObserver in the page
records, per step, the first time the panel's step row shows a finished status, and the frame
after it (requestAnimationFrame: the update is painted). The delay of a step is that paint time
minus the step's `finished` timestamp in the run store (same machine, same clock).

Two modes: the event websocket (normal), and the polling fallback (the browser's websocket to
`/nbscale/api/events` is refused, so the panel polls every `pollInterval` = 1 s).
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from common import DOC, ROOT, machine, revision
from doc_sections import ms, produced_by, publish, table

sys.path.insert(0, str(ROOT / "tests"))

from lab_harness import CHROMIUM, browser_page, open_notebook, open_panel, running_lab  # noqa: E402

from nbscale.kernels.contract import CACHED, FAILED, SUCCEEDED  # noqa: E402

START, END = "<!-- bench_panel:start -->", "<!-- bench_panel:end -->"
TARGET_S = 1.0
FINISHED = (SUCCEEDED, FAILED, CACHED)  # the statuses the observer below waits for

OBSERVER = """() => {
  window.__nbscaleShown = {};
  const mark = () => {
    const header = document.querySelector('#nbscale-panel .nbscale-run-header');
    if (!header) return;
    for (const row of document.querySelectorAll('#nbscale-panel .nbscale-step')) {
      const key = header.dataset.run + '/' + row.dataset.step;
      if (!['succeeded', 'failed', 'cached'].includes(row.dataset.status) || key in window.__nbscaleShown) continue;
      const record = { dom: Date.now(), painted: null, status: row.dataset.status };
      window.__nbscaleShown[key] = record;
      requestAnimationFrame(() => { record.painted = Date.now(); });
    }
  };
  new MutationObserver(mark).observe(document.querySelector('#nbscale-panel'),
                                     { subtree: true, childList: true, attributes: true });
}"""


def _wait_started(page, previous: str | None) -> None:
    """The new run is shown, or the panel says why it did not start (then stop with that)."""
    page.wait_for_function(
        """(previous) => { const h = document.querySelector('#nbscale-panel .nbscale-run-header');
            const notice = document.querySelector('#nbscale-panel .nbscale-section-run .nbscale-notice-error');
            return (h && h.dataset.run !== previous) || (notice && notice.textContent); }""",
        arg=previous, timeout=120_000)
    notice = page.locator("#nbscale-panel .nbscale-section-run .nbscale-notice-error")
    if notice.count() and notice.inner_text().strip():
        raise RuntimeError(f"the run did not start: {notice.inner_text().strip()}")


def _epoch_ms(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp() * 1000


def measure_mode(lab, mode: str, runs: int, verbose: bool = False) -> dict:
    delays, dom_delays, seconds = [], [], []
    with browser_page() as page:
        if mode == "polling":
            page.route_web_socket(re.compile(r".*/nbscale/api/events.*"), lambda ws: ws.close())
        open_notebook(page, lab, "iris.ipynb")
        panel = open_panel(page)
        panel.locator(".nbscale-dag-node").first.wait_for(timeout=60_000)
        expected = "live" if mode == "websocket" else "polling"
        page.wait_for_function(
            f"() => document.querySelector('#nbscale-panel .nbscale-live').textContent === '{expected}'",
            timeout=30_000)
        page.evaluate(OBSERVER)
        for _ in range(runs):
            previous = panel.locator(".nbscale-run-header").get_attribute("data-run") if panel.locator(
                ".nbscale-run-header").count() else None
            start = time.monotonic()
            panel.locator('button[data-engine="dask"]').click()
            _wait_started(page, previous)
            page.wait_for_function(
                """(previous) => { const h = document.querySelector('#nbscale-panel .nbscale-run-header');
                    return h && h.dataset.run !== previous
                        && ['succeeded', 'failed', 'cancelled'].includes(h.dataset.status); }""",
                arg=previous, timeout=300_000)
            seconds.append(time.monotonic() - start)
            page.wait_for_timeout(300)  # the last rAF
            run_id = panel.locator(".nbscale-run-header").get_attribute("data-run")
            shown = page.evaluate("() => window.__nbscaleShown")
            detail = lab.api(f"nbscale/api/runs/{run_id}?path=iris.ipynb")
            for step in detail["steps"]:
                record = shown.get(f"{run_id}/{step['name']}")
                if not step.get("finished") or record is None or step["status"] not in FINISHED:
                    continue
                finished = _epoch_ms(step["finished"])
                dom_delays.append((record["dom"] - finished) / 1000)
                delays.append(((record["painted"] or record["dom"]) - finished) / 1000)
                if verbose:
                    print(f"  {mode} run {run_id[:8]} {step['name']:>9} {step['status']:>9} "
                          f"{delays[-1] * 1000:7.0f} ms", file=sys.stderr)
    return {"mode": mode, "runs": runs, "delays": delays, "dom_delays": dom_delays, "run_seconds": seconds}


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def render(results: list[dict], command: str) -> str:
    rev = revision("jupyter_ext", what="jupyter_ext")
    rows = []
    for r in results:
        d = r["delays"]
        if not d:
            rows.append([r["mode"], str(r["runs"]), "0", "—", "—", "—", "—", "**no data**"])
            continue
        p90 = _quantile(d, 0.9)
        if p90 < TARGET_S:
            verdict = "met (p90)"
        else:
            verdict = "met (median)" if statistics.median(d) < TARGET_S else "**missed**"
        if r["mode"] == "polling":
            verdict += "; fallback only"
        rows.append([r["mode"], str(r["runs"]), str(len(d)), ms(statistics.median(d)), ms(p90), ms(max(d)),
                     f"{statistics.median(r['run_seconds']):.1f} s", verdict])
    paint = [p - d for r in results for p, d in zip(r["delays"], r["dom_delays"])]
    lines = [
        START,
        "## Panel latency (`bench/bench_panel.py`)",
        "",
        produced_by(command, rev, machine(), f"headless Debian Chromium, JupyterLab {_version('jupyterlab')}"),
        "",
        "Delay from a step finishing (its `finished` timestamp in the run store) to the panel painting the "
        "step's finished status, for every step of `examples/iris.ipynb` run on Dask from the panel with "
        "the cache off (6 steps a run). *websocket*: the event stream (normal); *polling*: the websocket "
        "refused, the panel polls the run every `pollInterval` (1 s).",
        "",
        *table(["mode", "runs", "steps measured", "median", "p90", "max", "run, click to finished (median)",
                "target < 1 s"], rows),
        "",
        f"DOM update → paint (the next animation frame): median {ms(statistics.median(paint) if paint else None)}.",
        END,
    ]
    return "\n".join(lines) + "\n"


def _version(name: str) -> str:
    from importlib.metadata import version

    try:
        return version(name)
    except Exception:  # noqa: BLE001
        return "?"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="pipeline runs per mode (default 3)")
    parser.add_argument("--modes", default="websocket,polling", help="comma-separated: websocket, polling")
    parser.add_argument("--no-doc", action="store_true", help=f"do not update {DOC.relative_to(ROOT)}")
    parser.add_argument("-v", "--verbose", action="store_true", help="print each step's delay")
    args = parser.parse_args(argv)
    if CHROMIUM is None:
        print("needs chromium: apt-get install -y chromium", file=sys.stderr)
        return 2
    results = []
    with tempfile.TemporaryDirectory(prefix="nbscale-bench-panel-") as tmp:
        root, work = Path(tmp) / "root", Path(tmp) / "work"
        root.mkdir()
        shutil.copy(ROOT / "examples" / "iris.ipynb", root / "iris.ipynb")
        with running_lab(root, work, settings={"nbscale/plugin": {"useCache": False}}) as lab:
            for mode in args.modes.split(","):
                print(f"measuring {mode} ({args.runs} runs)…", file=sys.stderr)
                results.append(measure_mode(lab, mode.strip(), args.runs, args.verbose))
    section = render(results, " ".join(["python bench/bench_panel.py",
                                        *(argv if argv is not None else sys.argv[1:])]))
    publish(section, DOC, START, END, write=not args.no_doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
