"""Benchmark (1): per-step overhead of a chain of trivial steps, nbscale vs papermill vs kfp.local.

Every contender runs a chain of N trivial steps and a chain of 1, in-process timings in a fresh
process each. Per-step overhead = (T(N) - T(1)) / (N - 1); step to step = (end of the last step
- end of the first) / (N - 1), from the steps' own time stamps.
"""

from __future__ import annotations

import notebooks
from common import med, run_task
from contenders import KFP, NBSCALE_DASK, NBSCALE_LOCAL, PAPERMILL, Context, contender_task, in_fresh_folder

CONTENDERS = (NBSCALE_DASK, NBSCALE_LOCAL, PAPERMILL, KFP)


def measure(ctx: Context) -> dict:
    n = ctx.cfg["chain"]
    raw = {(c, k): [] for c in CONTENDERS for k in (n, 1)}
    for c in CONTENDERS:  # warm-up round: OS file cache, bytecode
        run_chain(ctx, c, 2)
    for r in range(ctx.cfg["repeats"]):
        for c in CONTENDERS:
            for k in (n, 1):
                raw[(c, k)].append(run_chain(ctx, c, k))
                ctx.log(f"  chain {c:<14} n={k:<3} repeat {r + 1}: {raw[(c, k)][-1]['total']:.2f} s")
    return {"n": n, "rows": {c: summary(c, raw[(c, n)], raw[(c, 1)], n) for c in CONTENDERS}}


def run_chain(ctx: Context, contender: str, n: int) -> dict:
    if contender == KFP:
        folder, _ = ctx.folders.new(f"kfp{n}")
        try:
            return run_task({"task": "kfp", "n": n, "folder": str(folder)}, ctx.envs["default"])
        finally:
            ctx.folders.drop(folder)
    return in_fresh_folder(ctx, f"{contender}-chain{n}", notebooks.chain(n), "chain.ipynb",
                           lambda path: contender_task(ctx, contender, path))


def summary(contender: str, runs_n: list[dict], runs_1: list[dict], n: int) -> dict:
    t_n, t_1 = med([x["total"] for x in runs_n]), med([x["total"] for x in runs_1])
    slope = (t_n - t_1) / (n - 1)
    row = {"t_n": t_n, "t_1": t_1, "per_step": slope, "fixed": t_1 - slope,
           "cadence": med([cadence(contender, x, n) for x in runs_n])}
    if contender in (NBSCALE_DASK, NBSCALE_LOCAL):
        row["breakdown"] = breakdown(runs_n, n)
    if contender == PAPERMILL:
        row["cell"] = med([med(x["cell_durations"]) for x in runs_n])
        row["kernel_and_io"] = med([x["total"] - x["cells_s"] for x in runs_1])
    return row


def cadence(contender: str, run: dict, n: int) -> float | None:
    """Steady-state step-to-step time: (end of the last step - end of the first) / (n - 1)."""
    if n < 2:
        return None
    if contender == KFP:
        ends = run["task_ends"]
    elif contender == PAPERMILL:
        ends = [e for e in run["cell_ends"] if e is not None]
    else:
        ends = sorted(s["finished"] for s in run["steps"].values())
    return (max(ends) - min(ends)) / (n - 1) if len(ends) == n else None


def breakdown(runs: list[dict], n: int) -> dict:
    """Per step of an nbscale chain, from the time stamps taken in each step's task (medians)."""
    parts = {"executor": [], "in_task": [], "between": [], "run_store": [], "head": [], "tail": [],
             "cluster_start": [], "cluster_close": []}
    for run in runs:
        steps = sorted(run["steps"].values(), key=lambda s: s["started"])
        parts["executor"] += [s["wall_s"] for s in steps[1:]]
        parts["in_task"] += [s["finished"] - s["started"] - s["wall_s"] for s in steps[1:]]
        parts["between"] += [b["started"] - a["finished"] for a, b in zip(steps, steps[1:])]
        parts["run_store"].append(run["timers"].get("run store", 0.0) / n)
        parts["head"].append(steps[0]["started"] - run["t0"])
        parts["tail"].append(run["t0"] + run["total"] - steps[-1]["finished"])
        parts["cluster_start"].append(run["timers"].get("cluster start", 0.0))
        parts["cluster_close"].append(run["timers"].get("cluster close", 0.0))
    return {k: med(v) for k, v in parts.items()}
