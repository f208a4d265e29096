"""Benchmark (4): handing a large numpy array and a large DataFrame from one step to the next,
on the Dask and local engines, beside the machine's copy speed for the same value.

Hand-off = `t_got - t_made`, stamped by the two steps' own code (`notebooks.handoff`). The parts
a hand-off is made of (copy, deepcopy, persist, cloudpickle) are measured alone in another fresh
process (bench_runtime.py `memcopy`). Memory: the peak resident memory of the process that made the
value (its worker's, or the run's own process on the local engine) from the moment the value was
made to the run's end, above what the process held before the value existed, per byte of the value
(1.0: the value alone); the worst of the repeats.
"""

from __future__ import annotations

import notebooks
from common import med, run_task
from contenders import NBSCALE_DASK, NBSCALE_LOCAL, Context, contender_task, in_fresh_folder

KINDS = ("numpy", "pandas")
CONTENDERS = (NBSCALE_DASK, NBSCALE_LOCAL)


def measure(ctx: Context) -> dict:
    nbytes = ctx.cfg["handoff_bytes"]
    return {"nbytes": nbytes, "kinds": {kind: measure_kind(ctx, kind, nbytes) for kind in KINDS}}


def measure_kind(ctx: Context, kind: str, nbytes: int) -> dict:
    base = parts_alone(ctx, kind, nbytes)
    nb = notebooks.handoff(kind, nbytes)
    rows, actual = {}, None
    for contender in CONTENDERS:
        runs = []
        for r in range(ctx.cfg["handoff_repeats"]):
            runs.append(in_fresh_folder(ctx, f"handoff-{kind}-{contender}", nb, "handoff.ipynb",
                                        lambda path, c=contender: contender_task(ctx, c, path, handoff=True)))
            h = runs[-1]["handoff"]
            ctx.log(f"  hand-off {kind} {contender:<13} repeat {r + 1}: {h['t_got'] - h['t_made']:.2f} s")
        rows[contender] = summary(runs)
        actual = runs[-1]["handoff"]["nbytes"]
    return {"base": base, "rows": rows, "actual_bytes": actual}


def parts_alone(ctx: Context, kind: str, nbytes: int) -> dict:
    folder, _ = ctx.folders.new(f"memcopy-{kind}")
    try:
        base = run_task({"task": "memcopy", "kind": kind, "nbytes": nbytes, "store_dir": str(folder), "runs": 5},
                        ctx.envs["default"])
    finally:
        ctx.folders.drop(folder)
    ctx.log(f"  memcopy {kind}: copy {base['copy']:.3f} s (first {base['copy_first']:.3f} s), persist "
            f"{base['persist']:.3f} s")
    return base


def summary(runs: list[dict]) -> dict:
    seconds, persist_sched, copy_setup, same, memory = [], [], [], [], []
    for run in runs:
        h, make, use = run["handoff"], run["steps"]["make"], run["steps"]["use"]
        seconds.append(h["t_got"] - h["t_made"])
        memory.append((h["peak"] - h["rss_before"]) / h["nbytes"])
        # `finished` is stamped before the outputs are persisted; `started` before inputs are copied
        persist_sched.append(use["started"] - make["finished"])
        copy_setup.append(h["t_got"] - use["started"])
        same.append(make.get("worker") == use.get("worker"))
    return {"seconds": med(seconds), "persist_and_schedule": med(persist_sched), "copy_and_setup": med(copy_setup),
            "same_worker": all(same), "memory": max(memory)}
