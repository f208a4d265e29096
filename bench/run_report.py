"""The `bench_run.py` section of docs/benchmarks.md, from one run's results.

It shows what was run (the command, the revision, the machine and its load), how each number is
defined, the numbers, and ratios to the peers (papermill, kfp.local) computed from the same run.
Nothing in it is written by hand about what the numbers mean.
"""

from __future__ import annotations

from common import THREAD_VARS
from contenders import LABELS, NBSCALE_DASK, NBSCALE_LOCAL, PAPERMILL
from doc_sections import gbps, ms, produced_by, ratio, sec, table, usage_note
from whole_process import DASK_CLI, LOCAL_CLI, PAPERMILL_CLI, PLOOMBER_CLI

START, END = "<!-- bench_run:start -->", "<!-- bench_run:end -->"
TARGET_PARALLEL = 1.7  # speed-up, 4 independent steps on 2 workers
TARGET_CACHED = 0.3  # seconds, whole `nbscale run` process, nothing changed (issue 14)
TARGET_HANDOFF_GBPS = 1.5  # a 1 GB value from one step to the next on Dask (issue 14)
TARGET_HANDOFF_MEMORY = 2.0  # peak memory above the process's own, per byte of the value (issue 14)
SHARED_CORES = 0.15  # other processes' average use above which the machine counts as shared


def render(res: dict, quick: bool) -> str:
    parts = [(name, fn) for name, fn in (("chain", chain), ("parallel", parallel), ("whole", cached),
                                         ("handoff", handoff), ("whole", whole), ("warm_up", warm_up))
             if name in res]
    lines = [START, "## Run time (`bench/bench_run.py`)", "", *header(res), *targets(res)]
    for name, fn in parts:
        lines += ["", *fn(res), *usage_line(res["usage"][name])]
    if quick:
        lines += ["", "*(--quick sizes: a smoke test, not a result.)*"]
    lines.append(END)
    return "\n".join(lines) + "\n"


def header(res: dict) -> list[str]:
    m, cfg = res["machine"], res["cfg"]
    lines = [produced_by(res["command"], res["revision"], m) + f" The whole run took {res['elapsed'] / 60:.0f} min.",
             ""]
    if m["other_cores"] >= SHARED_CORES or m["load"]["max"] >= 0.5:
        lines += [f"Other processes used {m['other_cores']:.2f} of the {m['nproc']} cores on average during the run "
                  f"(1-minute load average {m['load']['min']:.1f}–{m['load']['max']:.1f}, median "
                  f"{m['load']['median']:.1f}); each benchmark below says how much during its own part.", ""]
    bytecode = ("`PYTHONDONTWRITEBYTECODE` was set in the caller's environment; the benchmark uses a private "
                "`PYTHONPYCACHEPREFIX` instead, as an installed package has its `.pyc` files (column \"as given\" "
                "in (3): with the caller's setting). " if m["no_bytecode"] else "")
    lines += [
        "How: every measurement is a fresh Python process (`bench/bench_runtime.py` for in-process timings, the "
        "real commands for whole-process ones) in a fresh folder; in-process timings start after the imports. "
        f"Median of {cfg['repeats']} repeats ({cfg['handoff_repeats']} for the hand-off, {cfg['warm_up_repeats']} for "
        "the warm-up); (1), (3), (5) and (6) run an uncounted round first. "
        f"`{'`, `'.join(v + '=1' for v in THREAD_VARS[:3])}` etc. are set for every contender. " + bytecode
        + "Console scripts are called by their full path. Ratios: the other tool's time / nbscale's, so > 1 means "
        "nbscale is faster.",
    ]
    return lines


def targets(res: dict) -> list[str]:
    rows = []
    if "parallel" in res:
        speedup = res["parallel"]["speedup"]
        rows.append([f"(2) 4 independent CPU-bound steps, 2-worker LocalCluster vs papermill ≥ {TARGET_PARALLEL}×",
                     f"{speedup:.2f}×", verdict(speedup >= TARGET_PARALLEL)])
    for kind, data in res.get("handoff", {}).get("kinds", {}).items():
        nbytes = data["actual_bytes"]
        speed = gbps(nbytes, data["rows"][NBSCALE_DASK]["seconds"])
        rows.append([f"(4) {kind} value of {nbytes / 1e9:.2f} GB handed on, Dask ≥ {TARGET_HANDOFF_GBPS} GB/s",
                     f"{speed:.2f} GB/s", verdict(speed >= TARGET_HANDOFF_GBPS)])
        for contender, r in data["rows"].items():
            rows.append([f"(4) memory of the process that made the {kind} value ≤ {TARGET_HANDOFF_MEMORY:g}× "
                         f"the value, {contender.split('-')[1]}", f"{r['memory']:.2f}×",
                         verdict(r["memory"] <= TARGET_HANDOFF_MEMORY)])
    for label, row in res.get("whole", {}).get("notebooks", {}).items():
        rows.append([f"(3) re-run with nothing changed, whole `nbscale run` ≤ {TARGET_CACHED} s, {label}",
                     sec(row["cached"]), verdict(row["cached"] <= TARGET_CACHED)])
    for label, row in res.get("whole", {}).get("notebooks", {}).items():
        share = row[DASK_CLI] / row[PAPERMILL_CLI]
        rows.append([f"(5) whole `nbscale run` (Dask) / whole `papermill` ≤ {row['goal']:g}, {label}",
                     f"{share:.2f}", verdict(share <= row["goal"])])
    return ["", "### Targets", "", *table(["target", "measured", ""], rows)] if rows else []


def verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def chain(res: dict) -> list[str]:
    c = res["chain"]
    n, rows = c["n"], c["rows"]
    base, base_cad = rows[NBSCALE_DASK]["per_step"], rows[NBSCALE_DASK]["cadence"]
    bd, bl = rows[NBSCALE_DASK]["breakdown"], rows[NBSCALE_LOCAL]["breakdown"]
    return [
        f"### (1) Per-step overhead: a chain of {n} trivial steps",
        "",
        f"Step *i* is `v{{i}} = v{{i-1}} + 1` (`notebooks.chain({n})`); the KFP pipeline chains {n} lightweight "
        "components `inc(x: int) -> int`. T(N): in-process wall time of a whole run of N steps (nbscale: cache off, "
        "cluster start and close included; papermill: `execute_notebook`, kernel start included; kfp: calling the "
        f"pipeline under `kfp.local`). Per-step overhead = (T({n}) − T(1)) / {n - 1}; fixed = T(1) − per-step. Step "
        f"to step = (end of the last step − end of the first) / {n - 1}, from the steps' own time stamps (nbscale: "
        "taken in the task; papermill: the cells' `end_time`; kfp: each task's `executor_output.json`). Ratios: "
        "the contender's figure / nbscale-on-Dask's.",
        "",
        *table(["contender", f"T({n})", "T(1)", "per-step overhead", "ratio", "step to step", "ratio", "fixed cost"],
               [[LABELS[k], sec(r["t_n"]), sec(r["t_1"]), ms(r["per_step"]), ratio(r["per_step"], base),
                 ms(r["cadence"]), ratio(r["cadence"], base_cad), sec(r["fixed"])]
                for k, r in rows.items()]),
        "",
        f"nbscale's time per step (medians over steps 2…{n}, from the time stamps of each step's task): *executor* "
        "= the executor's own wall time; *in the task, outside the executor* = task start → end minus that; "
        "*between steps* = one step's end stamp → the next one's start stamp; *run store* = time in `RunStore` "
        "writes in the client, per step.",
        "",
        *table(["", "Dask", "local"], [
            ["executor", ms(bd["executor"]), ms(bl["executor"])],
            ["in the task, outside the executor", ms(bd["in_task"]), ms(bl["in_task"])],
            ["between steps", ms(bd["between"]), ms(bl["between"])],
            ["run store (client, per step)", ms(bd["run_store"]), ms(bl["run_store"])],
            ["run starts → first step starts", sec(bd["head"]), sec(bl["head"])],
            ["… of which cluster start (`DaskEngine.connect`, then its workers' start, which the first step "
             "overlaps)", sec(bd["cluster_start"]), "—"],
            ["last step ends → run returns", sec(bd["tail"]), sec(bl["tail"])],
            ["… of which cluster close (`DaskEngine.close`)", sec(bd["cluster_close"]), "—"]]),
        "",
        f"papermill: median cell {ms(rows[PAPERMILL]['cell'])}; T(1) − its cell "
        f"{sec(rows[PAPERMILL]['kernel_and_io'])} (kernel start, notebook I/O).",
    ]


def parallel(res: dict) -> list[str]:
    par, cfg = res["parallel"], res["cfg"]
    rows, cols = par["rows"], (NBSCALE_DASK, NBSCALE_LOCAL)
    pm = rows[PAPERMILL]

    def row(label, fn, papermill="—"):
        return [label, papermill, *(fn(c, rows[c]) for c in cols)]

    return [
        "### (2) Four independent CPU-bound training steps: 2-worker LocalCluster vs papermill",
        "",
        f"`notebooks.cpu_parallel({par['iters']:,})`: a `data` step, four `train_*` steps (pure-Python SGD, "
        f"{par['iters']:,} updates each, calibrated to ≈ {cfg['cpu_seconds']:g} s here; no BLAS, one thread), a "
        "`report` step reading the four models. nbscale: engine `dask` with `workers=2`, cache off, cluster start "
        "and close included; papermill: `execute_notebook` (sequential), kernel start included.",
        "",
        *table(["", "papermill", "nbscale Dask, 2 workers", "nbscale local"], [
            row("whole run", lambda c, r: sec(r["total"]), sec(pm["total"])),
            row("**speed-up vs papermill**", lambda c, r: f"**{r['speedup']:.2f}×**", "1.00×"),
            row("one training step (median)", lambda c, r: sec(r["train_step"]), sec(pm["train_step"])),
            row("code cells / first step start → last step end", lambda c, r: sec(r["span"]), sec(pm["cells"])),
            row("speed-up of that span", lambda c, r: f"{r['speedup_span']:.2f}×", "1.00×"),
            row("run starts → first step starts", lambda c, r: sec(r["head"]),
                sec(pm["total"] - pm["cells"]) + " (kernel, I/O)"),
            row("… cluster start", lambda c, r: sec(r["cluster_start"]) if c == NBSCALE_DASK else "—"),
            row("last step ends → run returns (cluster close)",
                lambda c, r: sec(r["tail"]) + (f" ({sec(r['cluster_close'])})" if c == NBSCALE_DASK else "")),
            row("workers the 4 training steps ran on",
                lambda c, r: f"{r['workers_used']:.0f}" if c == NBSCALE_DASK else "—")]),
        "",
        f"Critical-path limit on 2 cores (papermill's cell times: data + report + 4 × train over data + report + "
        f"2 × train): {par['ideal']:.2f}×.",
    ]


def cached(res: dict) -> list[str]:
    whole, cfg = res["whole"], res["cfg"]
    lines = [
        "### (3) Re-run with nothing changed (whole process)",
        "",
        f"`{whole['commands'][DASK_CLI]}` in the folder of a finished run: every step is cached, nothing runs. "
        f"Median of {cfg['cached_repeats']} re-runs × {cfg['repeats']} folders.",
        "",
        *table(["notebook", "cached re-run", "its CPU time", "slowest", "as given (caller's bytecode setting)",
                "papermill whole run / this"],
               [[label, sec(r["cached"]), sec(r["cached_cpu"]), sec(r["cached_max"]), sec(r["cached_as_given"]),
                 ratio(r[PAPERMILL_CLI], r["cached"])] for label, r in whole["notebooks"].items()]),
        "",
        f"For scale: `python -c pass` {ms(whole['python_startup'])}, `nbscale --help` {ms(whole['nbscale_help'])}.",
    ]
    if "imports" in res:
        imp = res["imports"]
        lines[-1] += (" Cumulative import times inside a cached `nbscale run` (`python -X importtime`, which itself "
                      "slows imports down): "
                      + ", ".join(f"`{k}` {ms(v)}" for k, v in imp["imports"].items() if v is not None and v >= 0.015)
                      + f". After the imports, the cached run itself takes {ms(imp['profile']['total'])} (cProfile, "
                      "in-process).")
    return lines


def handoff(res: dict) -> list[str]:
    hand = res["handoff"]
    rows, parts = [], []
    for kind, data in hand["kinds"].items():
        b, nbytes = data["base"], data["actual_bytes"]
        copy_speed = gbps(nbytes, b["copy"])
        for contender, r in data["rows"].items():
            tp = gbps(nbytes, r["seconds"])
            rows.append([f"{kind} ({nbytes / 1e9:.2f} GB)", contender.split("-")[1], sec(r["seconds"]),
                         f"{tp:.2f} GB/s", f"{tp / copy_speed:.3f}×", sec(r["persist_and_schedule"]),
                         sec(r["copy_and_setup"]), "yes" if r["same_worker"] else "no", f"{r['memory']:.2f}×"])
        parts.append([kind, f"{sec(b['copy'], 3)} ({gbps(nbytes, b['copy']):.1f} GB/s)",
                      f"{sec(b['copy_first'], 3)} ({gbps(nbytes, b['copy_first']):.2f} GB/s)", sec(b["deepcopy"], 3),
                      f"{sec(b['persist'])} ({gbps(nbytes, b['persist']):.2f} GB/s)", sec(b["cloudpickle"])])
    return [
        f"### (4) Handing a {hand['nbytes'] / 1e9:g} GB value from one step to the next",
        "",
        "`notebooks.handoff(kind, nbytes)`: step `make` builds a float64 array (or an 8-column float64 DataFrame) "
        "and then stamps `t_made = time.time()`; step `use` starts with `t_got = time.time()` and reads the value. "
        "Hand-off = `t_got − t_made`. It splits at the `use` task's start stamp: *end of make → start of use* "
        "(`make`'s task after its code: persisting its outputs; Dask scheduling; moving the value if `use` runs "
        "elsewhere) and *start of use → its code* (the step's copy of its inputs, setting up the step). "
        "Throughput = bytes / hand-off; ratio = throughput / copy speed. Copy speed: `arr.copy()` / "
        "`df.copy(deep=True)` of the same value in a fresh process, median of 5 after a first copy. Memory: the "
        "peak resident memory (VmHWM, reset by `make` once the value is made, read as the run ends) of the process "
        "that made the value (its worker; on the local engine the run's own process), minus its resident memory as "
        "`make` began, per byte of the value (1.00×: the value alone; building it is not counted); the worst of "
        "the repeats. It holds the value, the reader's inputs and the store write.",
        "",
        *table(["value", "engine", "hand-off", "throughput", "vs copy speed", "end of make → start of use",
                "start of use → its code", "same worker", "memory / value"], rows),
        "",
        "The parts, measured on their own in another fresh process (median of 2–5):",
        "",
        *table(["value", "copy", "first copy in the process", "`copy.deepcopy`", "`ArtifactStore.put`",
                "cloudpickle dumps + loads"], parts),
    ]


def whole(res: dict) -> list[str]:
    w, cfg, m = res["whole"], res["cfg"], res["machine"]
    clis = (PAPERMILL_CLI, DASK_CLI, LOCAL_CLI)
    it = w["iris_timeline"]
    later = it["first_on_worker"][1:]
    ploomber = PLOOMBER_CLI in w["commands"]
    return [
        "### (5) Whole process: `nbscale run` vs `papermill`",
        "",
        "Each command in a fresh folder holding only the notebook (nbscale's first run there also creates its run "
        f"store and artifact store); median of {cfg['repeats']} after a warm-up round. Commands: "
        + "; ".join(f"`{v}`" for v in w["commands"].values())
        + f". The Dask run starts an embedded LocalCluster of as many workers as its steps can keep busy, "
          f"at most one per core ({m['nproc']}): one for the chain and the 400 MB hand-off, "
          f"{m['nproc']} for the others.",
        "",
        *table(["notebook", "papermill", "nbscale (Dask)", "ratio", "nbscale (Dask) / papermill", "goal",
                "nbscale (local)", "ratio", *([PLOOMBER_CLI, "ratio"] if ploomber else [])],
               [[label, sec(r[PAPERMILL_CLI]), sec(r[DASK_CLI]), ratio(r[PAPERMILL_CLI], r[DASK_CLI]),
                 f"{r[DASK_CLI] / r[PAPERMILL_CLI]:.2f}", f"≤ {r['goal']:g}", sec(r[LOCAL_CLI]),
                 ratio(r[PAPERMILL_CLI], r[LOCAL_CLI]),
                 *([sec(r[PLOOMBER_CLI]), ratio(r[PLOOMBER_CLI], r[DASK_CLI])] if PLOOMBER_CLI in r
                   else ["—", "—"] if ploomber else [])]
                for label, r in w["notebooks"].items()]),
        "",
        *([f"Ploomber {w['ploomber_version']} ran from its own virtual environment, on an equivalent project "
           "written by `bench/ploomber_project.py` (one script per step, pickles between them, `executor: "
           "parallel`); its ratio is Ploomber / nbscale (Dask).", ""] if ploomber else []),
        "CPU time of the same runs (the process and its children; Dask's includes the workers'):",
        "",
        *table(["notebook", *clis],
               [[label, *(sec(r["cpu"][k]) for k in clis)] for label, r in w["notebooks"].items()]),
        "",
        f"Inside the iris run on Dask (in-process, median of {cfg['repeats']}: whole run {sec(it['total'])}; local "
        f"engine {sec(it['local_total'])}): cluster start {sec(it['cluster_start'])} (its workers' start overlaps "
        f"the first step), cluster close "
        f"{sec(it['cluster_close'])}. Times from the run's start.",
        "",
        *table(["step", "starts", "ends", "step time on Dask", "on the local engine"],
               [[name + (" (first step on another worker)" if name in later else ""), sec(s["dask_start"]),
                 sec(s["dask_end"]), sec(s["dask_wall"]), sec(s["local_wall"])] for name, s in it["steps"].items()]),
    ]


def warm_up(res: dict) -> list[str]:
    w = res["warm_up"]
    on, off, gain = w["rows"]["on"], w["rows"]["off"], w["gain"]

    def row(label, key, fmt=sec):
        return [label, fmt(on[key]), fmt(off[key]), fmt(gain[key]), ratio(off[key], on[key])]

    problems = sorted({*on["errors"], *on["stderr_errors"], *off["stderr_errors"]})
    return [
        "### (6) Warm-up of idle Dask workers: on and off",
        "",
        "`notebooks.warm_up()`: `imports` (" + ", ".join(w["libraries"]) + "), a `load` step, two sibling steps "
        "fitting scikit-learn models, a `report` step. Engine `dask`, cache off, on a fresh "
        f"{w['workers']}-worker cluster made by `nbscale.kernels.engines.dask.local_cluster` before the clock; "
        "`DaskEngine(warm_up=True)` (the default) or `warm_up=False`, passed as "
        "`run_pipeline(..., engine_options={\"warm_up\": ...})`. Times from the run's start; *first step on "
        "another worker*: the first step that ran on a worker other than the first step's "
        f"({', '.join(sorted(set(on['other_steps'] + off['other_steps'])))}). Median of "
        f"{res['cfg']['warm_up_repeats']} runs each, after an uncounted run.",
        "",
        *table(["", "warm-up on", "warm-up off", "off − on", "off / on"], [
            row("first step ends", "first_end"),
            row("**first step on another worker ends**", "other_end"),
            row("… its own time in the executor (prelude imports included)", "other_wall"),
            row("whole run", "total")]),
        "",
        f"Runs whose steps all ran on one worker (left out of the *another worker* rows): {on['one_worker_runs']} "
        f"with warm-up on, {off['one_worker_runs']} off. "
        f"Warm-up tasks per run: {on['warm_up_tasks']:g} with warm-up on ({on['warm_up_failed']} failed; compute "
        f"time {sec(on['warm_up_compute'])}; the first step ran on a warmed worker in {on['first_on_warmed_worker']} "
        f"of {res['cfg']['warm_up_repeats']} runs), {off['warm_up_tasks']:g} with it off. Notebook libraries already "
        f"imported in the process that forked the workers: {', '.join(on['inherited'] + off['inherited']) or 'none'}. "
        f"Errors on stderr or from warm-up tasks: {'; '.join(f'`{p}`' for p in problems) or 'none'}.",
    ]


def usage_line(u: dict) -> list[str]:
    return ["", usage_note(u)]
