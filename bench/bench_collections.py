"""A Dask DataFrame built in one step and computed in the next: the compute's time under nbscale
against the same code run top to bottom with Dask's default scheduler (issue 14, item 3).

Run on demand (not part of the tests), when the machine is quiet:

    python bench/bench_collections.py             # 2,000,000 rows, median of 3, update docs/benchmarks.md
    python bench/bench_collections.py --rows 200000 --no-doc

The notebook: step `build` makes a pandas frame of ROWS rows (an integer key of 1,000 values and a
float) and `dd.from_pandas(pdf, npartitions=8)`; step `agg` computes
`ddf.groupby("key").x.mean()` and stamps the compute's own time. Top to bottom: the same cells
in one fresh Python process (Dask's default threaded scheduler). nbscale: `run_notebook` on the
Dask engine in a fresh process, the embedded LocalCluster with 1 and with 2 workers (cache off);
the collection is handed on as a graph and computed on the run's cluster from inside the step.
Each figure is the median of REPEATS fresh processes. `OMP_NUM_THREADS=1` etc. as for every bench.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import DOC, Usage, bench_env, machine, revision
from doc_sections import duration, produced_by, publish, ratio, table, usage_note

START, END = "<!-- bench_collections:start -->", "<!-- bench_collections:end -->"
REPEATS = 3
PARTITIONS = 8
MAKE = """import numpy as np
import pandas as pd
import dask.dataframe as dd
rng = np.random.default_rng(0)
pdf = pd.DataFrame({{"key": rng.integers(0, 1000, {rows}), "x": rng.random({rows})}})
ddf = dd.from_pandas(pdf, npartitions={partitions})"""
# the two ways of the issue: a frame in memory (its data travels in the graph) and files (it does not)
BUILD = {"dd.from_pandas": MAKE, "dd.read_parquet": 'import dask.dataframe as dd\nddf = dd.read_parquet("data")'}
AGG = """import time
started = time.perf_counter()
means = ddf.groupby("key").x.mean().compute()
compute_s = time.perf_counter() - started
groups = len(means)"""

TOP_TO_BOTTOM = """import json, sys
namespace = {}
exec(sys.argv[1], namespace)
exec(sys.argv[2], namespace)
print(json.dumps({"compute_s": namespace["compute_s"], "groups": namespace["groups"]}))"""

NBSCALE = """import json, sys
from nbscale.kernels.runner import RunOptions, run_notebook
if __name__ == "__main__":
    result = run_notebook(sys.argv[1], options=RunOptions(engine="dask", workers=int(sys.argv[2]), use_cache=False))
    assert result.ok, result.steps
    agg = result.load("agg")
    print(json.dumps({"compute_s": agg["compute_s"], "groups": agg["groups"]}))"""


def notebook(folder: Path, build: str) -> Path:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import dask.dataframe as dd", metadata={"tags": ["imports"]}),
                nbformat.v4.new_code_cell(build, metadata={"tags": ["step:build"]}),
                nbformat.v4.new_code_cell(AGG, metadata={"tags": ["step:agg"]})]
    path = folder / "collections.ipynb"
    nbformat.write(nb, str(path))
    return path


def write_parquet(folder: Path, rows: int) -> None:
    """The same frame as PARTITIONS parquet files in `folder/data`."""
    namespace: dict = {}
    exec(MAKE.format(rows=rows, partitions=PARTITIONS), namespace)  # noqa: S102 - the bench's own code
    namespace["ddf"].to_parquet(str(folder / "data"), write_index=False)


def measured(command: list[str], cwd: Path) -> dict:
    done = subprocess.run(command, capture_output=True, text=True, cwd=cwd, env=bench_env(), timeout=900)
    if done.returncode:
        raise SystemExit(f"{' '.join(command[:3])} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(rows: int) -> dict:
    """Source → contender → the compute's median seconds."""
    results = {}
    for source, template in BUILD.items():
        found: dict = {"top to bottom": [], "nbscale, 1 worker": [], "nbscale, 2 workers": []}
        build = template.format(rows=rows, partitions=PARTITIONS)
        with tempfile.TemporaryDirectory(prefix="nbscale-bench-collections-") as tmp:
            folder = Path(tmp)
            write_parquet(folder, rows)
            path = notebook(folder, build)
            (folder / "run.py").write_text(NBSCALE)
            for _ in range(REPEATS):  # alternating, so that load hits every contender alike
                found["top to bottom"].append(measured([sys.executable, "-c", TOP_TO_BOTTOM, build, AGG], folder))
                for workers in (1, 2):
                    found[f"nbscale, {workers} worker{'s' if workers > 1 else ''}"].append(
                        measured([sys.executable, str(folder / "run.py"), str(path), str(workers)], folder))
        groups = {m["groups"] for ms in found.values() for m in ms}
        assert len(groups) == 1, groups  # every contender computed the same groups
        results[source] = {name: statistics.median(m["compute_s"] for m in ms) for name, ms in found.items()}
    return results


def section(rows: int, results: dict, usage: dict, command: str) -> str:
    rows_ = [[source, name, duration(s), ratio(result["top to bottom"], s)]
             for source, result in results.items() for name, s in result.items()]
    lines = [
        START,
        "## Dask collections computed in a step (`bench/bench_collections.py`)",
        "",
        produced_by(command, revision("kernels", what="run-time"), machine()),
        "",
        f"`ddf.groupby(\"key\").x.mean().compute()` of a Dask DataFrame of {rows:,} rows in {PARTITIONS} "
        "partitions, built in the step before and handed on as a graph: from a pandas frame made in that step "
        "(`dd.from_pandas`: the data travels in the graph to the cluster) or from parquet files "
        f"(`dd.read_parquet`); the compute's own time, median of {REPEATS} fresh processes. Top to bottom: both "
        "cells in one process, Dask's default (threaded) scheduler. Ratio: top to bottom / this (> 1: faster).",
        "",
        *table(["built with", "how", "compute", "ratio"], rows_),
        "",
        usage_note(usage),
        END,
        "",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args(argv)
    command = "python bench/bench_collections.py" + (f" --rows {args.rows}" if args.rows != 2_000_000 else "")
    with Usage() as usage:
        result = measure(args.rows)
    publish(section(args.rows, result, usage.to_json(), command), DOC, START, END, write=not args.no_doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
