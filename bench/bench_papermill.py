"""`papermill --engine nbscale` against plain papermill on the example notebooks, whole process.

Run on demand (not part of the tests):

    python bench/bench_papermill.py                  # measure, print, update docs/benchmarks.md
    python bench/bench_papermill.py --repeats 1 --notebooks iris.ipynb --no-doc

Per notebook and repeat, in a fresh temporary folder holding a copy of the notebook:
  1. plain papermill: `python -m papermill NB out.ipynb -k python3` (one ipykernel, top to bottom);
  2. nbscale cold: `python -m papermill --engine nbscale NB out.ipynb` (nothing cached: an
     embedded Dask LocalCluster with 2 workers starts, steps run on it);
  3. nbscale cached: the same command again (every step's outputs and cell outputs cached);
  4. nbscale cold, local engine: NBSCALE_ENGINE=local in another fresh folder (steps in the
     papermill process, one after another; no cluster to start).
Each is the wall clock of the whole process (imports, kernel or cluster start, run, writing the
output notebook), median over the repeats. Ratio = plain papermill time / nbscale time (> 1:
nbscale faster). The machine's load average is recorded: the project's machines are shared.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile

from common import DOC, ROOT, machine, revision, timed_process
from doc_sections import produced_by, publish, table

EXAMPLES = ROOT / "examples"
NOTEBOOKS = ("iris.ipynb", "kale_style.ipynb", "mutation.ipynb", "magics.ipynb", "untagged.ipynb")
START, END = "<!-- bench_papermill:start -->", "<!-- bench_papermill:end -->"
COLUMNS = ("plain papermill", "nbscale cold (Dask)", "nbscale cached", "nbscale cold (local)")


def timed(args, cwd, env=None) -> float:
    """Wall time of one whole `python -m papermill ARGS` process."""
    return timed_process([sys.executable, "-m", "papermill", *args], cwd, {**os.environ, **(env or {})})[0]


def measure(name: str, repeats: int) -> dict[str, float]:
    times: dict[str, list[float]] = {c: [] for c in COLUMNS}
    quiet = ["--no-progress-bar", "--log-level", "WARNING"]
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="nbscale-bench-pm-") as tmp:
            shutil.copy(EXAMPLES / name, tmp)
            times["plain papermill"].append(timed([name, "plain.ipynb", "-k", "python3", *quiet], tmp))
            dask_env = {"NBSCALE_ENGINE": "dask", "NBSCALE_WORKERS": "2"}
            times["nbscale cold (Dask)"].append(timed(["--engine", "nbscale", name, "cold.ipynb", *quiet], tmp,
                                                      dask_env))
            times["nbscale cached"].append(timed(["--engine", "nbscale", name, "cached.ipynb", *quiet], tmp,
                                                 dask_env))
        with tempfile.TemporaryDirectory(prefix="nbscale-bench-pm-") as tmp:
            shutil.copy(EXAMPLES / name, tmp)
            times["nbscale cold (local)"].append(timed(["--engine", "nbscale", name, "local.ipynb", *quiet], tmp,
                                                       {"NBSCALE_ENGINE": "local"}))
    return {column: statistics.median(values) for column, values in times.items()}


def section(results: dict[str, dict[str, float]], repeats: int, load: tuple[float, float], command: str) -> str:
    rows = []
    for name, t in results.items():
        plain = t["plain papermill"]
        cells = [f"{plain:.2f} s"]
        for column in COLUMNS[1:]:
            cells += [f"{t[column]:.2f} s", f"{plain / t[column]:.2f}×"]
        rows.append([f"examples/{name}", *cells])
    lines = [
        START,
        "## papermill (`bench/bench_papermill.py`)",
        "",
        produced_by(command, revision(), machine(), f"load average {load[0]:.1f} before and {load[1]:.1f} after"),
        "",
        "Whole process, wall clock, median of " + f"{repeats} run{'s' * (repeats != 1)} per cell, each in a fresh "
        "folder holding a copy of the example. *plain papermill*: `python -m papermill NB out.ipynb -k python3` "
        "(one ipykernel, cells top to bottom). *nbscale cold (Dask)*: `python -m papermill --engine nbscale NB "
        "out.ipynb` with nothing cached (an embedded 2-worker LocalCluster starts; independent steps run in "
        "parallel). *nbscale cached*: the same command again (every step and its cell outputs cached). *nbscale "
        "cold (local)*: `NBSCALE_ENGINE=local`, nothing cached, steps run in the papermill process. Ratio = plain "
        "papermill / nbscale (> 1: nbscale faster).",
        "",
        *table(["notebook", "plain papermill", "nbscale cold (Dask)", "ratio", "nbscale cached", "ratio",
                "nbscale cold (local)", "ratio"], rows),
        END,
        "",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--notebooks", nargs="+", default=list(NOTEBOOKS))
    parser.add_argument("--no-doc", action="store_true", help=f"do not update {DOC.relative_to(ROOT)}")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()[0]
    results = {}
    for name in args.notebooks:
        results[name] = t = measure(name, args.repeats)
        print(f"{name:<18} " + "  ".join(f"{column}: {t[column]:.2f}s" for column in COLUMNS), flush=True)
    command = " ".join(["python bench/bench_papermill.py", *(argv if argv is not None else sys.argv[1:])])
    text = section(results, args.repeats, (load_before, os.getloadavg()[0]), command)
    publish(text, DOC, START, END, write=not args.no_doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
