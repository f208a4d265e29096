"""Benchmark (6): the Dask engine's warm-up — importing the notebook's libraries on idle workers
while the first step runs — on and off (`DaskEngine(warm_up=...)`).

`notebooks.warm_up()`: a `load` step, then two sibling steps that need scikit-learn (the engine
puts siblings on different workers), then `report`; the `imports` cell loads pandas and
scikit-learn. Each run is a fresh process with a fresh 2-worker cluster made by nbscale's own
`local_cluster` (the embedded cluster's settings), started before the clock. Latency = run start
→ the end of the first step that ran on a worker other than the first step's: without warm-up,
that worker imports the libraries only when that step starts.
"""

from __future__ import annotations

import re

import notebooks
from common import med, run_task
from contenders import Context, in_fresh_folder
from doc_sections import sec

WORKERS = 2
WATCH_PREFIX = "nbscale-warm-up-"  # the key prefix of the engine's warm-up tasks
ERROR_LINE = re.compile(r"Traceback|Error|Exception|Compute Failed")


def measure(ctx: Context) -> dict:
    nb = notebooks.warm_up()
    raw = {"on": [], "off": []}
    # an uncounted round: the file cache, and the bytecode of the libraries in the private pycache
    in_fresh_folder(ctx, "warm-up-round", nb, "warm_up.ipynb", lambda path: run_once(ctx, path, False))
    for r in range(ctx.cfg["warm_up_repeats"]):
        for mode in ("on", "off") if r % 2 == 0 else ("off", "on"):  # alternate: no mode always goes first
            runs = raw[mode]
            runs.append(in_fresh_folder(ctx, f"warm-up-{mode}", nb, "warm_up.ipynb",
                                        lambda path, on=(mode == "on"): run_once(ctx, path, on)))
            t = timeline(runs[-1])
            ctx.log(f"  warm-up {mode:<3} repeat {r + 1}: first step on another worker ({t['other_step']}) ends "
                    f"after {sec(t['other_end'])}; whole run {sec(t['total'])}")
    rows = {mode: summary(runs) for mode, runs in raw.items()}
    gain = {k: _minus(rows["off"][k], rows["on"][k]) for k in ("first_end", "other_end", "other_wall", "total")}
    return {"workers": WORKERS, "libraries": list(notebooks.WARM_UP_LIBRARIES), "rows": rows, "gain": gain}


def run_once(ctx: Context, path, on: bool) -> dict:
    return run_task({"task": "warm_up", "notebook": str(path), "warm_up": on, "workers": WORKERS,
                     "libraries": list(notebooks.WARM_UP_LIBRARIES), "watch_prefix": WATCH_PREFIX},
                    ctx.envs["default"])


def timeline(run: dict) -> dict:
    """The first step, and the first step that ran on another worker: when they ended (from the
    run's start), and the latter's own time in the executor (its prelude imports included)."""
    steps = sorted(run["steps"].items(), key=lambda kv: kv[1]["started"])
    first_name, first = steps[0]
    other = next(((n, s) for n, s in steps if s["worker"] != first["worker"]), (None, None))
    warmed = {task["worker"] for task in run["watched"].values()}
    return {"first_step": first_name, "first_end": first["finished"] - run["t0"],
            "first_on_warmed_worker": first["worker"] in warmed,
            "other_step": other[0], "other_end": other[1]["finished"] - run["t0"] if other[1] else None,
            "other_wall": other[1]["wall_s"] if other[1] else None, "total": run["total"]}


def summary(runs: list[dict]) -> dict:
    times = [timeline(run) for run in runs]
    watched = [task for run in runs for task in run["watched"].values()]
    return {
        **{k: med([t[k] for t in times]) for k in ("first_end", "other_end", "other_wall", "total")},
        "other_steps": sorted({t["other_step"] for t in times if t["other_step"]}),
        "one_worker_runs": sum(t["other_step"] is None for t in times),
        "first_on_warmed_worker": sum(t["first_on_warmed_worker"] for t in times),
        "warm_up_tasks": len(watched) / len(runs),
        "warm_up_failed": sum(task["state"] == "erred" for task in watched),
        "warm_up_compute": med([task["compute_s"] for task in watched]),
        "errors": sorted({task["error"] for task in watched if task["error"]}),
        "stderr_errors": sorted({line.strip() for run in runs for line in run["_stderr"].splitlines()
                                 if ERROR_LINE.search(line)})[:10],
        "inherited": sorted({m for run in runs for m in run["inherited"]}),
    }


def _minus(a, b):
    return None if a is None or b is None else a - b
