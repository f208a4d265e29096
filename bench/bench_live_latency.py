"""Live status latency: from a step's end to its `step_finished` event on the panel's websocket.

Run on demand (not part of the tests):

    python bench/bench_live_latency.py              # measure, print, update docs/benchmarks.md
    python bench/bench_live_latency.py --runs 5     # more runs per mode

It starts a real JupyterLab server (tests/lab_harness.py) serving a generated notebook, connects a
websocket client to `/nbscale/api/events` as the panel does, and runs the notebook on Dask with
the cache off. The pipeline is the shape that showed the lag: a quick step whose dependents start
at once, quick and slow siblings side by side on the embedded 2-worker LocalCluster, and a last
step after all of them. The latency of a step is the time its `step_finished` event arrived on the
websocket minus the step's `finished` timestamp in the run store (taken in the step's task when its
code ended; same machine, same clock).

Two modes: *panel*, runs the server starts (`POST /nbscale/api/runs`: the run process sends each
event to the server as it happens); *cli*, `nbscale run` in a process of its own while the
websocket watches the notebook (the server follows the run store as its files change).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from common import DOC, ROOT, LoadSampler, machine, revision
from doc_sections import ms, produced_by, replace_section, table

sys.path.insert(0, str(ROOT / "tests"))

from lab_harness import running_lab  # noqa: E402

START, END = "<!-- bench_live_latency:start -->", "<!-- bench_live_latency:end -->"
TARGET_S = 0.3
NOTEBOOK = "live.ipynb"
FINAL = ("succeeded", "failed", "cancelled")


def write_notebook(path: Path) -> int:
    """The measured pipeline; the number of its steps."""
    import nbformat

    cells = [("import time", ["imports"]), ("x = 1", ["step:first"])]
    for i in range(3):
        cells.append((f"time.sleep(0.02)\nq{i} = x + {i}", [f"step:quick{i}"]))
        cells.append((f"time.sleep(1.0)\ns{i} = x * {i}", [f"step:slow{i}"]))
    cells.append(("total = " + " + ".join([f"q{i} + s{i}" for i in range(3)]), ["step:last"]))
    nb = nbformat.v4.new_notebook()
    for source, tags in cells:
        cell = nbformat.v4.new_code_cell(source)
        cell.metadata["tags"] = tags
        nb.cells.append(cell)
    nbformat.write(nb, path)
    return len(cells) - 1


async def measure_run(lab, mode: str) -> dict:
    """One run; per step, (its `finished` in the run store, when its step_finished arrived)."""
    from tornado.websocket import websocket_connect

    url = f"ws://{lab.url.removeprefix('http://')}/nbscale/api/events?path={NOTEBOOK}&token={lab.token}"
    ws = await websocket_connect(url)
    arrived: dict[str, float] = {}
    run_id = None
    process = None
    started = time.monotonic()
    try:
        if mode == "panel":
            summary = await asyncio.to_thread(lab.api, "nbscale/api/runs", "POST",
                                              {"path": NOTEBOOK, "engine": "dask", "use_cache": False})
            run_id = summary["run_id"]
        else:
            await asyncio.sleep(1.5)  # the server notes where the store's events end
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "nbscale", "run", str(lab.root / NOTEBOOK), "--engine", "dask", "--no-cache",
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=lab.root)
        while True:
            message = await asyncio.wait_for(ws.read_message(), 300)
            if message is None:
                raise RuntimeError("the websocket closed")
            now = time.time()
            event = json.loads(message)
            if event.get("type") == "cluster" or (run_id and event.get("run_id") != run_id):
                continue
            run_id = run_id or event.get("run_id")
            kind = (event.get("payload") or {}).get("kind")
            if kind == "step_finished":
                arrived.setdefault(event["step"], now)
            if event.get("type") == "run" and event.get("status") in FINAL:
                break
    finally:
        ws.close()
        if process is not None:
            await process.wait()
    detail = await asyncio.to_thread(lab.api, f"nbscale/api/runs/{run_id}?path={NOTEBOOK}")
    delays = {s["name"]: arrived[s["name"]] - datetime.fromisoformat(s["finished"]).timestamp()
              for s in detail["steps"] if s.get("finished") and s["name"] in arrived}
    return {"status": detail["status"], "delays": delays, "seconds": time.monotonic() - started}


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def render(results: dict[str, list[dict]], steps: int, command: str, load: dict) -> str:
    rows = []
    for mode, runs in results.items():
        delays = [d for r in runs for d in r["delays"].values()]
        if not delays:
            rows.append([mode, str(len(runs)), "0", "—", "—", "—", "—", "**no data**"])
            continue
        p90 = quantile(delays, 0.9)
        verdict = "met" if p90 < TARGET_S else "**missed**"
        per_run = ", ".join(ms(quantile(list(r["delays"].values()), 0.9)) for r in runs if r["delays"])
        rows.append([mode, str(len(runs)), str(len(delays)), ms(statistics.median(delays)), ms(p90), ms(max(delays)),
                     per_run, verdict])
    lines = [
        START,
        "## Live status latency (`bench/bench_live_latency.py`)",
        "",
        produced_by(command, revision("jupyter_ext", "kernels", what="run-time"), machine(),
                    "a real JupyterLab server and a websocket client"),
        "",
        f"Delay from a step's end (its `finished` time in the run store) to its `step_finished` event on the "
        f"panel's websocket, for every step of a generated {steps}-step pipeline (a quick first step; three quick "
        "and three 1 s steps after it, side by side; a last step after all) run on Dask with the cache off. "
        "*panel*: runs the server starts (the run process sends each event as it happens); *cli*: `nbscale run` "
        "in its own process, followed from the run store by the server.",
        "",
        *table(["mode", "runs", "steps measured", "median", "p90", "max", "p90 of each run", "target p90 < 300 ms"],
               rows),
        "",
        f"1-minute load average during the measurement: {load['min']:.1f}–{load['max']:.1f} (median "
        f"{load['median']:.1f}) on {machine()['nproc']} cores; the run process, the scheduler, two workers and "
        "the server share them, so a loaded machine shows in the tail.",
        END,
    ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per mode (default 3)")
    parser.add_argument("--modes", default="panel,cli", help="comma-separated: panel, cli")
    parser.add_argument("--no-doc", action="store_true", help=f"do not update {DOC.relative_to(ROOT)}")
    parser.add_argument("-v", "--verbose", action="store_true", help="print each step's delay")
    args = parser.parse_args(argv)
    results: dict[str, list[dict]] = {}
    sampler = LoadSampler(every=2.0)
    sampler.start()
    with tempfile.TemporaryDirectory(prefix="nbscale-bench-live-") as tmp:
        root, work = Path(tmp) / "root", Path(tmp) / "work"
        root.mkdir()
        steps = write_notebook(root / NOTEBOOK)
        os.environ.setdefault("PYTHONUNBUFFERED", "1")
        with running_lab(root, work) as lab:
            for mode in (m.strip() for m in args.modes.split(",")):
                print(f"measuring {mode} ({args.runs} runs)…", file=sys.stderr)
                for _ in range(args.runs):
                    result = asyncio.run(measure_run(lab, mode))
                    results.setdefault(mode, []).append(result)
                    if args.verbose:
                        for step, delay in result["delays"].items():
                            print(f"  {mode} {result['status']:>9} {step:>7} {delay * 1000:7.0f} ms", file=sys.stderr)
    load = sampler.stop()
    section = render(results, steps, load=load, command=" ".join(["python bench/bench_live_latency.py",
                                               *(argv if argv is not None else sys.argv[1:])]))
    print(section)
    if not args.no_doc:
        replace_section(DOC, START, END, section)
        print(f"updated {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
