"""Cache validity's costs: `python bench/bench_cache.py` (writes its section of docs/benchmarks.md).

- a cached re-run of examples/iris.ipynb, whole process (`nbscale run`, nothing changed: every
  step's recorded dependencies are checked), median of 5 — the target is under 0.5 s;
- what recording dependencies costs per step and per opened file: `bench/bench_dependencies.py`
  run as its own process (its printed lines are quoted).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from common import DOC, ROOT, bench_env, machine, median_process, nbscale_command, revision
from doc_sections import produced_by, publish, sec

START, END = "<!-- bench_cache:start -->", "<!-- bench_cache:end -->"
RUNS = 5


def cached_rerun(folder: Path) -> tuple[float, float]:
    notebook = folder / "iris.ipynb"
    shutil.copy(ROOT / "examples" / "iris.ipynb", notebook)
    cmd = [*nbscale_command(), "run", str(notebook)]
    env = bench_env()  # bytecode caching on, as on a user's machine
    subprocess.run(cmd, cwd=folder, env=env, check=True, capture_output=True, timeout=600)  # fills the cache
    return (median_process(cmd, RUNS, cwd=folder, env=env),
            median_process([*cmd, "--engine", "local"], RUNS, cwd=folder, env=env))


def recording_costs() -> str:
    out = subprocess.run([sys.executable, str(Path(__file__).with_name("bench_dependencies.py"))],
                         capture_output=True, text=True, check=True, timeout=600)
    return out.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-doc", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nbscale-bench-cache-") as tmp:
        dask, local = cached_rerun(Path(tmp))
    costs = recording_costs()
    text = "\n".join([
        START, "## Cache validity (`bench/bench_cache.py`)", "",
        produced_by("python bench/bench_cache.py", revision(), machine()), "",
        f"- Cached re-run of `examples/iris.ipynb`, whole process, nothing changed (median of {RUNS}): "
        f"{sec(dask)} with the default engine, {sec(local)} with `--engine local` (target: under 0.5 s).",
        "- Recording dependencies (`bench/bench_dependencies.py`, its output):", "",
        "```", costs, "```", END, ""])
    publish(text, DOC, START, END, write=not args.no_doc)


if __name__ == "__main__":
    main()
