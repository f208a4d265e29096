"""Benchmark (1): per-step overhead of a chain of trivial steps, nbscale vs papermill vs kfp.local.

Every contender runs a chain of N trivial steps and a chain of 1, in-process timings in a fresh
process each. Per-step overhead = (T(N) - T(1)) / (N - 1); step to step = (end of the last step
- end of the first) / (N - 1), from the steps' own time stamps.

Run on its own, it measures growth: chains of N steps (default 10, 100, 1000) one after another
on one warm cluster (`nbscale cluster start` in a fresh folder, 2 workers, started before the
clock, with an uncounted chain of 20 run on it first), cache off: the run time, per step, the
medians of the steps' own time stamps, whether the step-to-step time grows over the run (mean
per fifth of it), and the CPU time per step of this process (client), the cluster's scheduler
process and its workers (with their nannies):

    python bench/step_overhead.py [--engine local] [--workers 2] [--one-task-per-step] [N ...]
    python bench/step_overhead.py --write   # Dask (chains as one task, and one task per step) and
                                            # local, 10 to 1,000 steps: docs/benchmarks.md section
                                            # and docs/img/step-overhead.png
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


# -- growth: chains of N steps on one warm cluster ------------------------------------------------


def growth(sizes: list[int], engine: str = "dask", workers: int = 2, fuse: bool = True) -> list[dict]:
    """Chains of each size in `sizes`, run one after another on one warm cluster (or `engine`);
    `fuse`: the Dask engine runs a chain of steps as one task (its default)."""
    import tempfile

    from nbscale.kernels import warm_cluster

    folder = tempfile.mkdtemp(prefix="nbscale-growth-")
    if engine == "dask":
        warm_cluster.start(folder, workers=workers)
    try:
        options = {"fuse": fuse} if engine == "dask" else {}
        # uncounted: the workers' first steps import the run time
        growth_run(folder, GROWTH_REPEATS * len(sizes), 20, engine, options)
        return [_median_run([growth_run(folder, GROWTH_REPEATS * i + r, n, engine, options)
                             for r in range(GROWTH_REPEATS)]) for i, n in enumerate(sizes)]
    finally:
        if engine == "dask":
            warm_cluster.stop(folder)


GROWTH_REPEATS = 3  # chains of each size; the one of median run time is reported (one of 100 steps lasts 0.5 s)


def _median_run(runs: list[dict]) -> dict:
    return sorted(runs, key=lambda run: run["total"])[len(runs) // 2]


def growth_run(folder: str, index: int, n: int, engine: str, engine_options: dict) -> dict:
    import os
    import statistics
    import time

    import nbformat
    from bench_runtime import StepClock

    from nbscale.compiler import compile_notebook
    from nbscale.kernels import params
    from nbscale.kernels.runner import RunOptions, run_pipeline

    path = os.path.join(folder, f"chain{index}.ipynb")
    nbformat.write(notebooks.chain(n), path)
    pipeline = compile_notebook(path)
    values = params.resolve(pipeline, {})
    processes = _processes(folder, engine)
    cpu0 = _cpu(processes)
    clock = StepClock()
    t0, start = time.time(), time.perf_counter()
    result = run_pipeline(pipeline, values, path, RunOptions(engine=engine, use_cache=False), on_event=clock.on_event,
                          engine_options=engine_options)
    total = time.perf_counter() - start
    cpu1 = _cpu(processes)
    if not result.ok:
        raise SystemExit(f"chain of {n} failed: {result.steps[:3]}")
    steps = sorted(clock.steps.values(), key=lambda s: s["started"])
    pairs = list(zip(steps, steps[1:]))
    cadence = [b["finished"] - a["finished"] for a, b in pairs]
    fifth = len(cadence) // 5
    med = statistics.median
    return {
        "n": n, "total": total, "per_step": total / n,
        "executor": med([s["wall_s"] for s in steps[1:]]) if n > 1 else None,
        "in_task": med([s["finished"] - s["started"] - s["wall_s"] for s in steps[1:]]) if n > 1 else None,
        "between": med([b["started"] - a["finished"] for a, b in pairs]) if pairs else None,
        "head": steps[0]["started"] - t0, "tail": t0 + total - steps[-1]["finished"],
        # while the chain runs: the first step's start to the last one's end, per step (the run's
        # fixed cost, head and tail, left out)
        "running": (max(s["finished"] for s in steps) - steps[0]["started"]) / n,
        "fifths": [statistics.mean(cadence[i * fifth:(i + 1) * fifth]) for i in range(5)] if fifth else None,
        "cpu_per_step": {k: (cpu1[k] - cpu0[k]) / n for k in cpu1},
    }


def _processes(folder, engine) -> dict:
    import psutil

    from nbscale.kernels import warm_cluster

    roles = {"client": [psutil.Process()]}
    if engine == "dask":
        serve = psutil.Process(warm_cluster.lookup(folder).cluster.pid)
        roles["scheduler"] = [serve]
        roles["workers"] = serve.children(recursive=True)
    return roles


def _cpu(roles: dict) -> dict:
    import psutil

    out = {}
    for role, processes in roles.items():
        out[role] = 0.0
        for process in processes:
            try:
                out[role] += sum(process.cpu_times()[:2])
            except psutil.Error:
                pass
    return out


def _ms(value) -> str:
    return "-" if value is None else f"{1000 * value:.1f}"


MODES = {"Dask, warm cluster (a chain of steps is one task)": ("dask", True),
         "Dask, warm cluster, one task per step": ("dask", False),
         "local engine": ("local", True)}
WRITE_SIZES = [10, 30, 100, 300, 1000]
TARGET_PER_STEP = 0.005  # s, on a warm cluster, flat from 10 to 1,000 steps (issue 14)
TARGET_CHAIN_1000 = 10.0  # s, a 1,000-step chain run on 2 cores (issue 14)
START, END = "<!-- step_overhead:start -->", "<!-- step_overhead:end -->"
IMAGE = "step-overhead.png"


def main(argv: list[str]) -> int:
    import argparse
    import os

    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    parser = argparse.ArgumentParser(description="Chains of N trivial steps on one warm cluster: growth")
    parser.add_argument("sizes", nargs="*", type=int)
    parser.add_argument("--engine", default="dask", choices=("dask", "local"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--one-task-per-step", action="store_true", help="Dask: do not run chains as one task")
    parser.add_argument("--write", action="store_true", help="every mode; write the doc section and the plot")
    args = parser.parse_args(argv)
    if args.write:
        return write(args.sizes or WRITE_SIZES, args.workers)
    for row in growth(args.sizes or [10, 100, 1000], args.engine, args.workers, fuse=not args.one_task_per_step):
        _print(row)
    return 0


def _print(row: dict) -> None:
    cpu = ", ".join(f"{k} {_ms(v)}" for k, v in row["cpu_per_step"].items())
    print(f"n={row['n']:5d}  run {row['total']:7.2f} s  per step {_ms(row['per_step'])} ms, while running "
          f"{_ms(row['running'])} ms | medians: executor "
          f"{_ms(row['executor'])}, in task {_ms(row['in_task'])}, between steps {_ms(row['between'])} ms | "
          f"head {row['head']:.2f} s, tail {row['tail']:.2f} s", flush=True)
    if row["fifths"]:
        fifths = [round(1000 * f, 1) for f in row["fifths"]]
        print(f"         step to step by fifth of the run (mean, ms): {fifths}")
    print(f"         CPU ms per step: {cpu}", flush=True)


def write(sizes: list[int], workers: int) -> int:
    from common import DOC, Usage, machine, revision
    from doc_sections import publish

    results = {}
    with Usage() as usage:
        for label, (engine, fuse) in MODES.items():
            print(label, flush=True)
            results[label] = growth(sizes, engine, workers, fuse)
            for row in results[label]:
                _print(row)
    plot(results)
    command = "python bench/step_overhead.py --write"
    section = render(results, command, revision("kernels", "compiler", "nbscale", what="run-time"), machine(),
                     usage.to_json(), workers)
    publish(section, DOC, START, END)
    return 0


def render(results: dict, command: str, rev: str, machine: dict, usage: dict, workers: int) -> str:
    from doc_sections import produced_by, table, usage_note

    sizes = [row["n"] for row in next(iter(results.values()))]
    rows = [[label, *(f"{1000 * row['per_step']:.1f} ms" for row in mine), f"{mine[-1]['total']:.2f} s"]
            for label, mine in results.items()]
    running = [[label, *(f"{1000 * row['running']:.1f} ms" for row in mine),
                f"{1000 * (mine[0]['head'] + mine[0]['tail']):.0f} ms"] for label, mine in results.items()]
    dask = next(iter(results.values()))
    worst, biggest = max(row["running"] for row in dask), dask[-1]
    whole = max(row["per_step"] for row in dask)
    lines = [START, "## Per-step overhead against pipeline size (`bench/step_overhead.py`)", "",
             produced_by(command, rev, machine), "",
             f"A chain of N trivial steps (`v{{i}} = v{{i-1}} + 1`, `notebooks.chain(N)`), cache off, run with "
             f"`run_pipeline` in this process; on Dask, on one warm cluster of {workers} workers (`nbscale cluster "
             "start`, before the clock), chains of every size one after another after an uncounted chain of 20; "
             f"{GROWTH_REPEATS} chains of each size, the one of median run time shown. "
             "Per step = the whole run's wall time / N (nothing subtracted: compile excluded, run store, "
             "scheduling and the steps' own set-up included).", "",
             *table(["mode", *(f"N = {n:,}" for n in sizes), f"run of {sizes[-1]:,}"], rows), "",
             "Per step while the chain runs: the first step's start to the last step's end, / N. What the run "
             "costs besides (connecting, submitting, the run store's first and last writes) is a fixed cost, "
             f"not a per-step one: the last column, for N = {sizes[0]:,} (before the first step starts and after "
             "the last one ends).", "",
             *table(["mode", *(f"N = {n:,}" for n in sizes), f"fixed cost, N = {sizes[0]:,}"], running), "",
             "Where a step's time goes (medians over the steps of the largest chain, from each step's own stamps):",
             "",
             *table(["mode", "executor", "in the task, outside the executor", "step end → next step start"],
                    [[label, _ms(mine[-1]["executor"]) + " ms", _ms(mine[-1]["in_task"]) + " ms",
                      _ms(mine[-1]["between"]) + " ms"] for label, mine in results.items()]), "",
             f"Targets (issue 14), on the warm Dask cluster: per step ≤ {TARGET_PER_STEP * 1000:.0f} ms and flat from "
             f"10 to 1,000 steps, while the chain runs — worst {1000 * worst:.1f} ms: "
             f"**{'met' if worst <= TARGET_PER_STEP else 'missed'}** (the whole run / N, fixed cost included: worst "
             f"{1000 * whole:.1f} ms, **{'met' if whole <= TARGET_PER_STEP else 'missed'}**); "
             f"a {biggest['n']:,}-step chain ≤ {TARGET_CHAIN_1000:.0f} s — {biggest['total']:.2f} s: "
             f"**{'met' if biggest['total'] <= TARGET_CHAIN_1000 else 'missed'}**.", "",
             f"![per-step overhead against pipeline size](img/{IMAGE})", "", usage_note(usage), END]
    return "\n".join(lines) + "\n"


def plot(results: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import time

    from common import ROOT
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=120)
    for label, rows in results.items():
        line, = ax.plot([r["n"] for r in rows], [1000 * r["running"] for r in rows], marker="o", label=label)
        ax.plot([r["n"] for r in rows], [1000 * r["per_step"] for r in rows], marker=".", linestyle=":",
                color=line.get_color(), label=f"{label}: whole run / N")
    ax.axhline(1000 * TARGET_PER_STEP, color="grey", linewidth=0.8, linestyle="--", label="target on warm Dask")
    ax.set_xscale("log")
    ax.set_ylim(bottom=0)
    ax.set_xlabel("steps in the chain")
    ax.set_ylabel("ms per step (solid: while the chain runs)")
    ax.set_title(f"Per-step overhead against pipeline size, {time.strftime('%Y-%m-%d')}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = ROOT / "docs" / "img" / IMAGE
    fig.savefig(path)
    print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
