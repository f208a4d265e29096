"""Benchmark (2): four independent CPU-bound training steps, nbscale on a 2-worker LocalCluster
vs papermill running the same notebook top to bottom.

The training steps are pure-Python SGD (no BLAS, one thread), calibrated to take
`cfg["cpu_seconds"]` each on this machine.
"""

from __future__ import annotations

import math
import random
import time

import notebooks
from common import med
from contenders import NBSCALE_DASK, NBSCALE_LOCAL, PAPERMILL, Context, contender_task, in_fresh_folder

CONTENDERS = (PAPERMILL, NBSCALE_DASK, NBSCALE_LOCAL)
TRAIN_STEPS = [f"train_{k}" for k in "abcd"]


def measure(ctx: Context) -> dict:
    iters = calibrate(ctx.cfg["cpu_seconds"])
    nb = notebooks.cpu_parallel(iters)
    raw = {c: [] for c in CONTENDERS}
    for r in range(ctx.cfg["repeats"]):
        for c in CONTENDERS:
            workers = 2 if c == NBSCALE_DASK else None
            raw[c].append(in_fresh_folder(ctx, f"cpu-{c}", nb, "cpu.ipynb",
                                          lambda path, c=c, w=workers: contender_task(ctx, c, path, workers=w)))
            ctx.log(f"  4 CPU steps {c:<14} repeat {r + 1}: {raw[c][-1]['total']:.2f} s")
    rows = {c: papermill_row(runs) if c == PAPERMILL else nbscale_row(runs) for c, runs in raw.items()}
    pm = rows[PAPERMILL]
    for c in CONTENDERS[1:]:
        rows[c]["speedup"] = pm["total"] / rows[c]["total"]
        rows[c]["speedup_span"] = pm["cells"] / rows[c]["span"]
    t, other = pm["train_step"], pm["data_and_report"]
    return {"iters": iters, "rows": rows, "speedup": rows[NBSCALE_DASK]["speedup"],
            "ideal": (other + 4 * t) / (other + 2 * t)}  # the critical path on 2 cores


def calibrate(seconds: float) -> int:
    """SGD updates that take about `seconds` in one process here (best of 3, so least disturbed)."""
    ns = {"math": math, "random": random}
    exec(notebooks.TRAIN_FUNCTION, ns)
    exec(notebooks.DATA_SOURCE, ns)
    probe = 100_000
    best = min(_timed(lambda: ns["train"](ns["data"], 1, probe)) for _ in range(3))
    return max(1000, int(seconds / best * probe))


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def papermill_row(runs: list[dict]) -> dict:
    # code cells: imports, parameters, functions, data, 4 x train, report
    return {"total": med([x["total"] for x in runs]),
            "train_step": med([med(x["cell_durations"][4:8]) for x in runs]),
            "cells": med([x["cells_s"] for x in runs]),
            "data_and_report": med([x["cell_durations"][3] + x["cell_durations"][8] for x in runs])}


def nbscale_row(runs: list[dict]) -> dict:
    def first_start(x):
        return min(s["started"] for s in x["steps"].values())

    def last_end(x):
        return max(s["finished"] for s in x["steps"].values())

    return {
        "total": med([x["total"] for x in runs]),
        "train_step": med([med([x["steps"][k]["wall_s"] for k in TRAIN_STEPS]) for x in runs]),
        "span": med([last_end(x) - first_start(x) for x in runs]),
        "cluster_start": med([x["timers"].get("cluster start", 0.0) for x in runs]),
        "cluster_close": med([x["timers"].get("cluster close", 0.0) for x in runs]),
        "head": med([first_start(x) - x["t0"] for x in runs]),
        "tail": med([x["t0"] + x["total"] - last_end(x) for x in runs]),
        "workers_used": med([len({x["steps"][k]["worker"] for k in TRAIN_STEPS}) for x in runs]),
    }
