"""Benchmarks (3) and (5): whole processes — `nbscale run` vs `papermill` on the workloads of
issue 14 (a generated chain, two independent CPU-bound steps and a join, examples/iris.ipynb, a
large array handed between two steps), and `nbscale run` again with nothing changed (every step
cached).

Also, to see inside those numbers: the iris run in-process on Dask and local (per-step
timeline), Python's own start-up, and `python -X importtime` of a cached `nbscale run`.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import notebooks
import parallel_steps
import ploomber_project
from common import ROOT, TASK_TIMEOUT, med, run_task, script, timed_process
from contenders import NBSCALE_DASK, NBSCALE_LOCAL, Context, contender_task, in_fresh_folder

PAPERMILL_CLI, DASK_CLI, LOCAL_CLI = "papermill", "nbscale (Dask)", "nbscale (local)"
PLOOMBER_CLI = "Ploomber (parallel executor)"
COMMANDS = {
    PAPERMILL_CLI: lambda p: [script("papermill"), p.name, "out.ipynb", "-k", "python3", "--no-progress-bar"],
    DASK_CLI: lambda p: [script("nbscale"), "run", p.name],
    LOCAL_CLI: lambda p: [script("nbscale"), "run", p.name, "--engine", "local"],
}
IMPORTS_WATCHED = ("nbscale.cli", "nbscale.run_commands", "nbscale.kernels.runner", "nbscale.kernels.task",
                   "nbscale.kernels.executor", "IPython", "nbscale.compiler", "nbscale.kernels.store", "fsspec",
                   "cloudpickle", "psutil", "rich.console", "rich.table", "nbformat", "click", "distributed",
                   "dask", "numpy", "pandas", "yaml")


def workloads(ctx: Context) -> list[tuple[str, object, float, object]]:
    """(label, notebook, goal, Ploomber project writer or None): the goal is issue 14's bound on
    nbscale (Dask) / papermill."""
    cfg = ctx.cfg
    mb = cfg["whole_handoff_bytes"] / 1e6
    iters = parallel_steps.calibrate(cfg["cpu_seconds"])
    return [
        (f"generated chain of {cfg['whole_chain']} steps", notebooks.chain(cfg["whole_chain"]), 0.5, None),
        (f"2 independent steps of {cfg['cpu_seconds']:g} s CPU each + join",
         notebooks.cpu_parallel(iters, trainings=2), 0.45,
         lambda folder: ploomber_project.cpu_parallel(folder, iters, trainings=2)),
        ("examples/iris.ipynb", ctx.iris, 0.7, None),
        (f"a {mb:,.0f} MB numpy array handed between 2 steps",
         notebooks.handoff("numpy", cfg["whole_handoff_bytes"]), 0.5, None),
    ]


def measure(ctx: Context) -> dict:
    out = {"notebooks": {}, "commands": {k: " ".join(Path(c).name if i == 0 else c
                                                     for i, c in enumerate(v(Path("NB"))))
                                         for k, v in COMMANDS.items()}}
    if ctx.ploomber:
        out["commands"][PLOOMBER_CLI] = " ".join(["ploomber", *ploomber_project.build_command(ctx.ploomber)[1:]])
        out["ploomber_version"] = ploomber_project.version(ctx.ploomber)
    for label, nb, goal, project in workloads(ctx):
        out["notebooks"][label] = {**measure_notebook(ctx, label, nb), "goal": goal}
        if ctx.ploomber and project:
            out["notebooks"][label][PLOOMBER_CLI] = measure_ploomber(ctx, label, project)
    out["iris_timeline"] = iris_timeline(ctx)
    env = ctx.envs["default"]
    out["python_startup"] = med([timed_process([sys.executable, "-c", "pass"], ROOT, env)[0] for _ in range(5)])
    out["nbscale_help"] = med([timed_process([script("nbscale"), "--help"], ROOT, env)[0] for _ in range(5)])
    return out


def measure_ploomber(ctx: Context, label: str, project) -> float:
    """`ploomber build` of the equivalent project in a fresh folder (round 0 uncounted, as for the others)."""
    times = []
    for r in range(ctx.cfg["repeats"] + 1):
        folder, _ = ctx.folders.new("ploomber")
        try:
            project(folder)
            measured = timed_process(ploomber_project.build_command(ctx.ploomber), folder, ctx.envs["default"])[0]
        finally:
            ctx.folders.drop(folder)
        ctx.log(f"  whole {label[:24]:<24} {PLOOMBER_CLI:<16} repeat {r}: {measured:.2f} s")
        if r:
            times.append(measured)
    return med(times)


def measure_notebook(ctx: Context, label: str, nb) -> dict:
    """Each command in a fresh folder; after the Dask run, cached re-runs in the same folder."""
    name = nb.name if isinstance(nb, Path) else "chain.ipynb"
    times = {k: [] for k in COMMANDS}
    cached, cached_as_given = [], []
    for r in range(ctx.cfg["repeats"] + 1):  # round 0 warms the file cache and the bytecode
        for contender, cmd in COMMANDS.items():
            folder, path = ctx.folders.new("whole", nb, name)
            try:
                measured = timed_process(cmd(path), folder, ctx.envs["default"])
                if r == 0:
                    continue
                times[contender].append(measured)
                if contender == DASK_CLI:
                    cached += [timed_process(cmd(path), folder, ctx.envs["default"])
                               for _ in range(ctx.cfg["cached_repeats"])]
                    if ctx.envs.get("as_given") is not None:
                        cached_as_given += [timed_process(cmd(path), folder, ctx.envs["as_given"])
                                            for _ in range(ctx.cfg["cached_repeats"])]
            finally:
                ctx.folders.drop(folder)
            ctx.log(f"  whole {label[:24]:<24} {contender:<16} repeat {r}: {measured[0]:.2f} s")
    row = {k: med([t[0] for t in v]) for k, v in times.items()}
    row["cpu"] = {k: med([t[1] for t in v]) for k, v in times.items()}
    row["cached"] = med([t[0] for t in cached])
    row["cached_cpu"] = med([t[1] for t in cached])
    row["cached_max"] = max(t[0] for t in cached)
    row["cached_as_given"] = med([t[0] for t in cached_as_given])
    ctx.log(f"  cached re-run {label}: {row['cached']:.2f} s (CPU {row['cached_cpu']:.2f} s)")
    return row


def iris_timeline(ctx: Context) -> dict:
    """examples/iris.ipynb in-process on Dask and local: when each step starts and ends."""
    raw = {NBSCALE_DASK: [], NBSCALE_LOCAL: []}
    for _ in range(ctx.cfg["repeats"]):
        for c, runs in raw.items():
            runs.append(in_fresh_folder(ctx, f"iris-{c}", ctx.iris, "iris.ipynb",
                                        lambda path, c=c: contender_task(ctx, c, path)))
    dask_runs, local_runs = raw[NBSCALE_DASK], raw[NBSCALE_LOCAL]
    steps = {name: {"dask_wall": med([x["steps"][name]["wall_s"] for x in dask_runs]),
                    "local_wall": med([x["steps"][name]["wall_s"] for x in local_runs]),
                    "dask_start": med([x["steps"][name]["started"] - x["t0"] for x in dask_runs]),
                    "dask_end": med([x["steps"][name]["finished"] - x["t0"] for x in dask_runs])}
             for name in dask_runs[0]["steps"]}
    out = {"steps": steps, "total": med([x["total"] for x in dask_runs]),
           "local_total": med([x["total"] for x in local_runs]),
           "cluster_start": med([x["timers"].get("cluster start", 0.0) for x in dask_runs]),
           "cluster_close": med([x["timers"].get("cluster close", 0.0) for x in dask_runs]),
           "first_on_worker": first_step_per_worker(dask_runs[-1])}
    ctx.log(f"  iris in-process: Dask {out['total']:.2f} s (cluster start {out['cluster_start']:.2f} s, close "
            f"{out['cluster_close']:.2f} s), local {out['local_total']:.2f} s")
    return out


def first_step_per_worker(run: dict) -> list[str]:
    """The first step each worker ran, in the order the workers started their first step."""
    firsts = {}
    for name, s in sorted(run["steps"].items(), key=lambda kv: kv[1]["started"]):
        firsts.setdefault(s["worker"], name)
    return list(firsts.values())


def import_breakdown(ctx: Context) -> dict:
    """`python -X importtime -m nbscale run NB` on a cached notebook: cumulative import times;
    and a cProfile of the cached run in-process."""
    env = ctx.envs["default"]
    folder, path = ctx.folders.new("importtime", notebooks.chain(3), "chain.ipynb")
    try:
        timed_process([script("nbscale"), "run", path.name], folder, env)
        proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "nbscale", "run", path.name], cwd=folder,
                              env=env, capture_output=True, text=True, timeout=TASK_TIMEOUT)
        profile = run_task({"task": "profile_cached", "notebook": str(path)}, env)
    finally:
        ctx.folders.drop(folder)
    cumulative = {}
    for line in proc.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if m:
            name, cum = m.group(4), int(m.group(2)) / 1e6
            cumulative[name] = max(cumulative.get(name, 0.0), cum)
    return {"imports": {k: cumulative.get(k) for k in IMPORTS_WATCHED}, "profile": profile}
