"""Run-time benchmark: nbscale (Dask and local engines) vs papermill vs kfp.local, in one run.

Run on demand (not part of the tests):

    python bench/bench_run.py            # full sizes, print, update docs/benchmarks.md
    python bench/bench_run.py --quick    # small sizes, a smoke test (does not touch the doc)
    python bench/bench_run.py --profile  # also print a cProfile of a cached run
    python bench/bench_run.py --rev HEAD # measure nbscale as committed (the working tree may hold
                                         # someone's unfinished edits), via a `git archive` snapshot
    python bench/bench_run.py --quick --only warm_up  # some benchmarks only (never written to the doc)

The benchmarks, one module each (`run_report.py` renders their results):
  1. `step_overhead`: per-step overhead of a chain of trivial steps (50; --quick 10) — nbscale on
     Dask and on the local engine, papermill, kfp.local chained lightweight components.
  2. `parallel_steps`: four independent CPU-bound training steps, 2-worker LocalCluster vs papermill.
  3. and 5. `whole_process`: the whole `nbscale run` process with nothing changed (all cached),
     and whole `nbscale run` vs whole `papermill` on a generated chain and examples/iris.ipynb.
  4. `handoff`: handing a 1 GB numpy array and a 1 GB DataFrame from one step to the next.
  6. `warm_up`: the Dask engine's warm-up of idle workers, on and off.

The harness (fresh processes, medians, machine load) is `common.py`; the in-process side of a
measurement is `bench_runtime.py`; the generated notebooks come from `notebooks.py`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import handoff
import notebooks
import parallel_steps
import run_report
import step_overhead
import warm_up
import whole_process
from common import DOC, ROOT, Folders, LoadSampler, Usage, bench_env, machine, revision
from contenders import Context
from doc_sections import replace_section

FULL = {"chain": 50, "cpu_seconds": 2.0, "handoff_bytes": 10**9, "whole_chain": 20,
        "whole_handoff_bytes": 400 * 10**6, "repeats": 3,
        "cached_repeats": 5, "handoff_repeats": 3, "warm_up_repeats": 5}
QUICK = {"chain": 10, "cpu_seconds": 0.3, "handoff_bytes": 64 * 10**6, "whole_chain": 5,
         "whole_handoff_bytes": 32 * 10**6, "repeats": 1,
         "cached_repeats": 3, "handoff_repeats": 1, "warm_up_repeats": 1}
BENCHMARKS = {"chain": step_overhead.measure, "parallel": parallel_steps.measure, "whole": whole_process.measure,
              "handoff": handoff.measure, "warm_up": warm_up.measure}
RUNTIME_PATHS = ("kernels", "compiler", "nbscale")  # what a run-time result depends on


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.render:
        res = json.loads(args.render.read_text())
        return publish(res, all_ran=set(BENCHMARKS) <= set(res), write=not args.no_doc)
    only = set(args.only.split(",")) if args.only else set(BENCHMARKS)
    unknown = only - set(BENCHMARKS)
    if unknown:
        raise SystemExit(f"--only: unknown benchmark(s) {', '.join(sorted(unknown))}; known: {', '.join(BENCHMARKS)}")
    command = " ".join(["python bench/bench_run.py", *(["--quick"] if args.quick else []),
                        *([f"--rev {args.rev}"] if args.rev else []), *([f"--only {args.only}"] if args.only else []),
                        *([f"--ploomber {args.ploomber}"] if args.ploomber else [])])
    res = measure(QUICK if args.quick else FULL, only, args.rev, command, args.ploomber)
    if args.json:
        args.json.write_text(json.dumps(res, indent=1, default=str))
    if args.profile and "imports" in res:
        print(res["imports"]["profile"]["profile"])
    write = (not args.quick or args.doc) and not args.no_doc and only == set(BENCHMARKS)
    return publish(res, all_ran=only == set(BENCHMARKS), write=write)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one repeat: a smoke test (no doc update)")
    parser.add_argument("--profile", action="store_true", help="print the cProfile of a cached run_notebook")
    parser.add_argument("--no-doc", action="store_true", help=f"do not update {DOC.relative_to(ROOT)}")
    parser.add_argument("--doc", action="store_true", help="update the doc even with --quick")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument("--rev", help="measure nbscale as committed at this git revision (e.g. HEAD) instead "
                                      "of the working tree")
    parser.add_argument("--ploomber", help="the `ploomber` command of a virtual environment of its own: also "
                                           "measure Ploomber's parallel executor (see bench/ploomber_project.py)")
    parser.add_argument("--render", type=Path, metavar="JSON",
                        help="measure nothing: render (and write to the doc) results saved with --json")
    parser.add_argument("--only", help=f"comma-separated benchmarks to run: {','.join(BENCHMARKS)} "
                                       "(the doc is written only when all ran)")
    return parser.parse_args(argv)


def measure(cfg: dict, only: set, rev: str | None, command: str, ploomber: str | None = None) -> dict:
    """Run the benchmarks in `only`; their results, with the machine and its load."""
    started = time.perf_counter()
    sampler = LoadSampler()
    sampler.start()
    res = {"cfg": cfg, "quick": cfg == QUICK, "command": command, "usage": {}}
    envs = {"default": bench_env(bytecode=True),
            "as_given": bench_env(bytecode=False) if os.environ.get("PYTHONDONTWRITEBYTECODE") else None}
    with tempfile.TemporaryDirectory(prefix="nbscale-bench-run-") as tmp, Usage() as total:
        res["revision"], iris = revision(*RUNTIME_PATHS, what="run-time"), ROOT / "examples" / "iris.ipynb"
        if rev:
            pkg, iris = snapshot(rev, Path(tmp) / "snapshot")
            for env in filter(None, envs.values()):
                env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(pkg), env.get("PYTHONPATH")]))
            res["revision"] = f"commit {git('rev-parse', '--short', rev)} (a clean `git archive` snapshot)"
        ctx = Context(cfg, Folders(Path(tmp) / "runs", notebooks.write), envs, log, iris, ploomber)
        log(f"measuring nbscale from {nbscale_location(envs['default'], tmp)}")
        for name, fn in BENCHMARKS.items():
            if name in only:
                log(f"[{name}]")
                with Usage() as usage:
                    res[name] = fn(ctx)
                res["usage"][name] = usage.to_json()
        if "whole" in only:
            res["imports"] = whole_process.import_breakdown(ctx)
    res["elapsed"] = time.perf_counter() - started
    res["machine"] = {**machine(), "load": sampler.stop(), "other_cores": total.other_cores}
    return res


def publish(res: dict, all_ran: bool, write: bool) -> int:
    """Print the section; write it to the doc when asked and every benchmark ran."""
    section = run_report.render(res, res.get("quick", False))
    print(section)
    if write and all_ran:
        replace_section(DOC, run_report.START, run_report.END, section)
        log(f"updated {DOC.relative_to(ROOT)}")
    return 0


def snapshot(rev: str, into: Path) -> tuple[Path, Path]:
    """nbscale's packages as committed at `rev`, laid out for PYTHONPATH (nbscale/, nbscale/compiler,
    …), and the snapshot's examples/iris.ipynb.

    PYTHONPATH comes before the editable install's finder (appended to sys.meta_path), so every
    process — Dask workers included — imports the snapshot.
    """
    src, pkg = into / "src", into / "pkg"
    src.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", rev, "nbscale", "compiler", "kernels", "examples"], cwd=ROOT,
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
    shutil.copytree(src / "nbscale", pkg / "nbscale")
    shutil.copytree(src / "compiler", pkg / "nbscale" / "compiler")
    shutil.copytree(src / "kernels", pkg / "nbscale" / "kernels")
    return pkg, src / "examples" / "iris.ipynb"


def nbscale_location(env: dict, cwd) -> str:
    """Where the measured processes import nbscale from (the working tree or a snapshot)."""
    return subprocess.run([sys.executable, "-c", "import nbscale.kernels.runner as r; print(r.__file__)"],
                          env=env, capture_output=True, text=True, cwd=cwd).stdout.strip()


def git(*args) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()


def log(text: str):
    print(text, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
