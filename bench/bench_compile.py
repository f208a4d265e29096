"""Compile-time benchmark: how fast nbscale analyses notebooks of 10, 100 and 1,000 code cells.

Run on demand (not part of the tests):

    python bench/bench_compile.py            # measure, print, update docs/benchmarks.md
    python bench/bench_compile.py --profile  # also print a cProfile of the 1,000-cell compile

It generates realistic notebooks (assignments reading earlier names, function definitions and
calls, in-place mutation, a step tag every ~5 cells, markdown between cells), then measures
  - `compile_notebook(path)` in-process: read + tags + layout + dataflow analysis + hashes,
    median of several runs after one warm-up;
  - the whole `nbscale check NB` process, wall clock, median of 5 runs.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import platform
import pstats
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from nbscale.compiler import compile_notebook

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
SIZES = (10, 100, 1000)
TARGET_ANALYSIS_1000 = 0.3  # seconds, 1,000 cells
TARGET_CLI_SMALL = 0.5  # seconds, whole process on a small notebook
START, END = "<!-- bench_compile:start -->", "<!-- bench_compile:end -->"


# -- notebook generator --------------------------------------------------------------------


def generate(n_cells: int, seed: int = 0) -> nbformat.NotebookNode:
    """A notebook with `n_cells` code cells (plus markdown) that compiles without errors."""
    rng = random.Random(seed)
    nb = nbformat.v4.new_notebook()
    cells = nb.cells
    cells.append(nbformat.v4.new_markdown_cell("# Generated benchmark notebook"))
    code = [
        ("import math\nimport json\nfrom collections import Counter", ["imports"]),
        ("scale = 1.5\nlabel = 'run \"x\" {y}'\nsizes = [8, 16, 32]", ["parameters"]),
    ]
    values: list[str] = []  # numeric names bound so far
    lists: list[str] = []  # list names bound so far
    funcs: list[str] = []  # functions defined so far
    step = 0
    i = 0
    while len(code) < n_cells:
        i += 1
        tags = []
        if i % 5 == 1:
            step += 1
            tags.append(f"step:s{step}")
            if step % 4 == 0:
                tags.append("resources:cpu=500m")
        kind = rng.random()
        if not values:
            source = f"v{i} = len(sizes) * scale\nl{i} = [v{i}, 1.0, 2.0]"
            values.append(f"v{i}")
            lists.append(f"l{i}")
        elif kind < 0.15:
            a = rng.choice(values)
            source = (f"def f{i}(x, n=3):\n    \"\"\"Helper {i}.\"\"\"\n    total = 0.0\n"
                      f"    for t in range(n):\n        total += x * t + {a}\n    return total / scale")
            funcs.append(f"f{i}")
        elif kind < 0.25 and lists:
            target, a = rng.choice(lists), rng.choice(values)
            source = f"{target}.append({a})\n{target}[0] = {a} * 2\nprint(len({target}))"
        elif kind < 0.35:
            a, b = rng.choice(values), rng.choice(values)
            source = (f"rows{i} = [{{'k': k, 'v': {a} * k}} for k in range(5)]\n"
                      f"v{i} = sum(r['v'] for r in rows{i}) + {b}\n"
                      f"text{i} = json.dumps(rows{i})")
            values.append(f"v{i}")
        else:
            a, b = rng.choice(values), rng.choice(values)
            call = f"{rng.choice(funcs)}({b})" if funcs and rng.random() < 0.5 else f"math.sqrt(abs({b}))"
            source = (f"v{i} = {a} * scale + {call}\n"
                      f"l{i} = [v{i}, {a}, {b}]\n"
                      f"c{i} = Counter(str(round(x)) for x in l{i})\n"
                      f"if v{i} > 100:\n    v{i} = v{i} / 2")
            values.append(f"v{i}")
            lists.append(f"l{i}")
        code.append((source, tags))
    for k, (source, tags) in enumerate(code):
        if k > 2 and k % 4 == 0:
            cells.append(nbformat.v4.new_markdown_cell(f"Notes on cell {k}: *results* look fine."))
        cells.append(nbformat.v4.new_code_cell(source, metadata={"tags": tags} if tags else {}))
    return nb


# -- measurements --------------------------------------------------------------------------


def median_time(fn, runs: int) -> float:
    fn()  # warm up: imports, IPython transformer, caches
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def cli_command() -> list[str]:
    script = shutil.which("nbscale")
    return [script] if script else [sys.executable, "-m", "nbscale"]


def median_process(cmd: list[str], runs: int = 5) -> float:
    subprocess.run(cmd, capture_output=True)  # warm the OS file cache
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(folder: Path) -> dict:
    rows = []
    for size in SIZES:
        path = folder / f"gen_{size}.ipynb"
        nbformat.write(generate(size), str(path))
        pipeline = compile_notebook(path)
        errors = [d for d in pipeline.diagnostics if d.severity == "error"]
        if errors:
            raise SystemExit(f"generated notebook {path.name} has errors: {errors[:3]}")
        runs = 15 if size <= 100 else 7
        compile_s = median_time(lambda p=path: compile_notebook(p), runs)
        check_s = median_process([*cli_command(), "check", str(path)])
        rows.append({"name": f"generated, {size:,} code cells", "cells": size, "steps": len(pipeline.steps),
                     "compile": compile_s, "check": check_s})
    iris = ROOT / "examples" / "iris.ipynb"
    pipeline = compile_notebook(iris)
    rows.insert(0, {
        "name": "examples/iris.ipynb", "steps": len(pipeline.steps),
        "cells": sum(c["cell_type"] == "code" for c in nbformat.read(str(iris), 4).cells),
        "compile": median_time(lambda: compile_notebook(iris), 15),
        "check": median_process([*cli_command(), "check", str(iris)]),
    })
    python_startup = median_process([sys.executable, "-c", "pass"])
    return {"rows": rows, "python_startup": python_startup}


def profile_compile(path: Path, top: int = 25) -> str:
    compile_notebook(path)
    profiler = cProfile.Profile()
    profiler.enable()
    compile_notebook(path)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(top)
    return out.getvalue()


# -- report --------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds >= 0.01 else f"{seconds * 1000:.1f} ms"


def render(result: dict) -> str:
    rows = result["rows"]
    big = next(r for r in rows if r.get("cells") == 1000 and r["name"].startswith("generated"))
    small = rows[0]
    ok = lambda good: "met" if good else "**missed**"  # noqa: E731
    cmd = " ".join(Path(c).name if i == 0 else c for i, c in enumerate(cli_command()))
    lines = [
        START,
        "## Compile time (`bench/bench_compile.py`)",
        "",
        "Produced by `python bench/bench_compile.py` on "
        f"{time.strftime('%Y-%m-%d')}: {os.cpu_count()} CPUs (`nproc` {_nproc()}), "
        f"Python {platform.python_version()} ({platform.system()} {platform.machine()}).",
        "",
        "`compile_notebook` is the in-process compile (read, tags, layout, dataflow analysis, hashes), "
        "median of 7–15 runs after a warm-up. `nbscale check` is the whole process, wall clock, "
        f"median of 5 runs (`{cmd} check NB`). "
        "Generated notebooks have a step tag every 5 code cells, function definitions and calls, "
        "in-place list mutation and a markdown cell every 4 code cells.",
        "",
        "| notebook | code cells | steps | `compile_notebook` | `nbscale check` (process) |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['name']} | {r['cells']:,} | {r['steps']} | {ms(r['compile'])} | {ms(r['check'])} |")
    lines += [
        "",
        f"Python start-up alone (`python -c pass`): {ms(result['python_startup'])}.",
        "",
        "| target | measured | |",
        "|---|---:|---|",
        f"| 1,000 cells analysed < 300 ms | {ms(big['compile'])} | {ok(big['compile'] < TARGET_ANALYSIS_1000)} |",
        f"| whole-process `nbscale check` on a small notebook (iris) < 500 ms | {ms(small['check'])} "
        f"| {ok(small['check'] < TARGET_CLI_SMALL)} |",
        "",
        "For comparison, a published figure (not measured here): Kale's CLI takes 5.2 s to compile a "
        "4-step notebook, 3.3 s of it in imports (see PEERS.md).",
        END,
    ]
    return "\n".join(lines) + "\n"


def _nproc() -> str:
    try:
        return subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip() or "?"
    except OSError:
        return str(len(os.sched_getaffinity(0))) if hasattr(os, "sched_getaffinity") else "?"


def update_doc(section: str, doc: Path = DOC) -> None:
    text = doc.read_text(encoding="utf-8") if doc.exists() else "# Benchmarks\n\n"
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END) + r"\n?", re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    doc.write_text(text, encoding="utf-8")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", action="store_true", help="print a cProfile of the 1,000-cell compile")
    parser.add_argument("--no-doc", action="store_true", help=f"do not update {DOC.relative_to(ROOT)}")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="nbscale-bench-") as tmp:
        result = measure(Path(tmp))
        section = render(result)
        print(section)
        big = next(r for r in result["rows"] if r.get("cells") == 1000)
        if args.profile or big["compile"] >= TARGET_ANALYSIS_1000:
            print(profile_compile(Path(tmp) / "gen_1000.ipynb"))
    if not args.no_doc:
        update_doc(section)
        print(f"updated {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
