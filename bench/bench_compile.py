"""Compile-time benchmark: how fast nbscale analyses notebooks of 10 to 5,000 code cells and one big cell.

Run on demand (not part of the tests):

    python bench/bench_compile.py            # measure, print, update docs/benchmarks.md
    python bench/bench_compile.py --profile  # also print a cProfile of the 1,000-cell compile

It generates realistic notebooks (assignments reading earlier names, function definitions and
calls, in-place mutation, a step tag every ~5 cells, markdown between cells), then measures
  - `compile_notebook(path)` in-process: read + tags + layout + dataflow analysis + hashes,
    median of several runs after one warm-up;
  - the whole `nbscale check NB` process, wall clock, median of 5 runs: the first check (no entry in
    the compile cache in the user's cache folder) and a check again of the unchanged
    notebook (its compile read from that cache);
  - one code cell of 2.75 MB (about 50,000 lines of assignments and calls), compiled in a fresh
    process: time, and how far the compile raises the process's peak memory (VmHWM).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
from common import (
    DOC,
    ROOT,
    Usage,
    bench_env,
    machine,
    median_process,
    median_time,
    nbscale_command,
    revision,
    timed_process,
)
from doc_sections import duration, ms, produced_by, publish, table, usage_note

from nbscale.compiler import compile_notebook

SIZES = (10, 100, 1000, 5000)
TARGET_ANALYSIS_1000 = 0.3  # seconds, 1,000 cells
TARGET_CLI_SMALL = 0.5  # seconds, whole process on a small notebook
TARGET_CLI_5000 = 1.0  # seconds, whole `nbscale check` process on 5,000 cells (issue 14)
BIG_CELL_CHARS = 2_750_000  # one code cell of 2.75 MB
TARGET_BIG_CELL_MEMORY = 10  # the compile's memory, as a multiple of the cell's size (issue 14)
BIG_CELL_RUNS = 3
# Run in a fresh process: compile one notebook, print time and peak memory (KiB) as JSON.
BIG_CELL_PROBE = """
import json, sys, time
from nbscale.compiler import compile_notebook
from nbscale.compiler.notebook import read_notebook

def peak_kib():  # VmHWM: unlike ru_maxrss, not inherited from the parent through fork and exec
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))

notebook = read_notebook(sys.argv[1])
before = peak_kib()
start = time.perf_counter()
pipeline = compile_notebook(notebook)
seconds = time.perf_counter() - start
after = peak_kib()
print(json.dumps({"seconds": seconds, "peak_kib": after, "growth_kib": after - before,
                  "errors": sum(d.severity == "error" for d in pipeline.diagnostics)}))
"""
START, END = "<!-- bench_compile:start -->", "<!-- bench_compile:end -->"


# -- notebook generator --------------------------------------------------------------------


def generate(n_cells: int, seed: int = 0, alias_heavy: bool = False) -> nbformat.NotebookNode:
    """A notebook with `n_cells` code cells (plus markdown) that compiles without errors.

    Typical cells compute new values from earlier ones; lists are built from computed values,
    and every ~20 cells a loop mutates two earlier lists through an alias list (the
    `for df in [train, test]` pattern). `alias_heavy` puts earlier *names* into every new list,
    so nearly all names end up in one group that may share objects: a stress case.
    """
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
            source = f"v{i} = len(sizes) * scale\nl{i} = [v{i} * 2, 1.0, 2.0]"
            values.append(f"v{i}")
            lists.append(f"l{i}")
        elif i % 20 == 0 and len(lists) >= 2:
            x, y = rng.sample(lists, 2)
            source = f"pair{i} = [{x}, {y}]\nfor part{i} in pair{i}:\n    part{i}.append(len(part{i}) * scale)"
        elif kind < 0.15:
            a = rng.choice(values)
            source = (f"def f{i}(x, n=3):\n    \"\"\"Helper {i}.\"\"\"\n    total = 0.0\n"
                      f"    for t in range(n):\n        total += x * t + {a}\n    return total / scale")
            funcs.append(f"f{i}")
        elif kind < 0.25 and lists:
            target, a = rng.choice(lists), rng.choice(values)
            source = f"{target}.append({a} + 1)\n{target}[0] = {a} * 2\nprint(len({target}))"
        elif kind < 0.35:
            a, b = rng.choice(values), rng.choice(values)
            source = (f"rows{i} = [{{'k': k, 'v': {a} * k}} for k in range(5)]\n"
                      f"v{i} = sum(r['v'] for r in rows{i}) + {b}\n"
                      f"text{i} = json.dumps(rows{i})")
            values.append(f"v{i}")
        else:
            a, b = rng.choice(values), rng.choice(values)
            call = f"{rng.choice(funcs)}({b})" if funcs and rng.random() < 0.5 else f"math.sqrt(abs({b}))"
            items = f"v{i}, {a}, {b}" if alias_heavy else f"v{i} * 2, {a} + {b}, 1.0"
            source = (f"v{i} = {a} * scale + {call}\n"
                      f"l{i} = [{items}]\n"
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


def big_cell_notebook(chars: int = BIG_CELL_CHARS) -> nbformat.NotebookNode:
    """One code cell of about `chars` characters: a chain of assignments through calls and list
    comprehensions (`value_3 = compute(value_1, scale=3) + 1.5`), every name read later."""
    lines = ["def compute(x, scale=1):\n    return x * scale", "value_0 = 0.0"]
    size, i = sum(map(len, lines)), 0
    while size < chars:
        i += 1
        if i % 2:
            line = f"value_{i} = compute(value_{i - 1}, scale={i % 97}) + 1.5"
        else:
            line = f"result_{i} = [x * 2 for x in range({i % 50})] + [value_{i - 1}]\nvalue_{i} = value_{i - 1}"
        lines.append(line)
        size += len(line) + 1
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_code_cell("\n".join(lines)))
    return nb


# -- measurements --------------------------------------------------------------------------


PROCESS_RUNS = 5  # whole-process timings: median of this many runs after a warm-up


def check_times(path: Path, runs: int = PROCESS_RUNS) -> tuple[tuple[float, float], tuple[float, float]]:
    """Whole `nbscale check` process, (wall, CPU) seconds: the first check, with no compile cache
    entry, and a check again of the unchanged notebook, its compile read from the cache; medians of
    `runs` after one uncounted run. CPU time says what wall time would be on an idle machine."""
    cmd = [*nbscale_command(), "check", str(path)]

    def medians(first: bool) -> tuple[float, float]:
        times = []
        for _ in range(runs + 1):
            if first:
                shutil.rmtree(home, ignore_errors=True)
            times.append(timed_process(cmd, env=env))
        return statistics.median(t[0] for t in times[1:]), statistics.median(t[1] for t in times[1:])

    # the user's cache folder of these checks (XDG_CACHE_HOME): a temporary one, never one beside
    # the notebook (for examples/iris.ipynb that was a folder left in the repository)
    with tempfile.TemporaryDirectory(prefix="nbscale-bench-cache-") as tmp:
        home = Path(tmp) / "cache-home"
        # with .pyc files, as an installed package has them (`bench_env`: the caller's
        # PYTHONDONTWRITEBYTECODE would make every check compile nbscale's modules from source)
        env = {**bench_env(), "XDG_CACHE_HOME": str(home)}
        return medians(first=True), medians(first=False)  # (the last first check left the entry)


def cached_run_times(path: Path, runs: int = 3) -> tuple[float, float]:
    """Whole `nbscale run` of `path` with every step cached, (wall, CPU) seconds: median of `runs`
    after a first run that runs every step (uncounted), in a copy of the notebook in a fresh folder."""
    with tempfile.TemporaryDirectory(prefix="nbscale-bench-run-") as tmp:
        notebook = Path(tmp) / path.name
        shutil.copy(path, notebook)
        env = {**bench_env(), "XDG_CACHE_HOME": str(Path(tmp) / "cache-home")}
        cmd = [*nbscale_command(), "run", str(notebook)]
        timed_process(cmd, cwd=Path(tmp), env=env)
        times = [timed_process(cmd, cwd=Path(tmp), env=env) for _ in range(runs)]
        return statistics.median(t[0] for t in times), statistics.median(t[1] for t in times)


def bound_methods(n_cells: int) -> nbformat.NotebookNode:
    """Every cell keeps bound methods of two shared objects and calls one: every step changes what
    every earlier step's list reaches (the dataflow's worst case found so far)."""
    cells = [nbformat.v4.new_code_cell("lst = []\nd = {}", metadata={"tags": ["step:s0"]})]
    for i in range(1, n_cells):
        tags = [f"step:s{i}"] if i % 5 == 0 else []
        cells.append(nbformat.v4.new_code_cell(f"x{i} = [lst.append, d.update]\nx{i}[0]({i})", metadata={"tags": tags}))
    return nbformat.v4.new_notebook(cells=cells)


def write_generated(folder: Path, size: int, alias_heavy: bool = False) -> tuple[Path, object]:
    path = folder / f"gen_{size}{'_alias' if alias_heavy else ''}.ipynb"
    nbformat.write(generate(size, alias_heavy=alias_heavy), str(path))
    pipeline = compile_notebook(path)
    errors = [d for d in pipeline.diagnostics if d.severity == "error"]
    if errors:
        raise SystemExit(f"generated notebook {path.name} has errors: {errors[:3]}")
    return path, pipeline


def measure(folder: Path, stress: bool = True) -> dict:
    iris = ROOT / "examples" / "iris.ipynb"
    rows = [{
        "name": "examples/iris.ipynb", "steps": len(compile_notebook(iris).steps),
        "cells": sum(c["cell_type"] == "code" for c in nbformat.read(str(iris), 4).cells),
        "compile": median_time(lambda: compile_notebook(iris), 15, warmup=True),
        "check": check_times(iris),
    }]
    for size in SIZES:
        path, pipeline = write_generated(folder, size)
        rows.append({
            "name": f"generated, {size:,} code cells", "cells": size, "steps": len(pipeline.steps),
            "compile": median_time(lambda p=path: compile_notebook(p), 15 if size <= 100 else 7 if size <= 1000 else 3,
                                   warmup=True),
            "check": check_times(path),
            "path": path,
        })
    if stress:  # slow while it is quadratic: 3 runs, no process timing
        path, pipeline = write_generated(folder, 1000, alias_heavy=True)
        rows.append({
            "name": "stress: 1,000 cells, every list holds earlier names", "cells": 1000,
            "steps": len(pipeline.steps), "compile": median_time(lambda: compile_notebook(path), 3, warmup=False),
            "check": ((None, None), (None, None)),
        })
        path = folder / "bound_methods_1000.ipynb"
        nbformat.write(bound_methods(1000), str(path))
        rows.append({
            "name": "stress: 1,000 cells keeping bound methods of shared objects", "cells": 1000,
            "steps": len(compile_notebook(path).steps),
            "compile": median_time(lambda: compile_notebook(path), 3, warmup=False),
            "check": ((None, None), (None, None)),
        })
    largest = next(r for r in rows if r["name"] == f"generated, {SIZES[-1]:,} code cells")
    return {"rows": rows, "python_startup": median_process([sys.executable, "-c", "pass"], PROCESS_RUNS),
            "big_cell": measure_big_cell(folder), "cached_run": cached_run_times(largest["path"])}


def measure_big_cell(folder: Path) -> dict:
    """One 2.75 MB code cell, each run in a fresh process: median time and peak memory."""
    path = folder / "big_cell.ipynb"
    nbformat.write(big_cell_notebook(), str(path))
    source = nbformat.read(str(path), 4).cells[0].source
    runs = []
    for _ in range(BIG_CELL_RUNS):
        out = subprocess.run([sys.executable, "-c", BIG_CELL_PROBE, str(path)], capture_output=True, text=True,
                             check=True).stdout
        runs.append(json.loads(out.strip().splitlines()[-1]))
    if runs[0]["errors"]:
        raise SystemExit(f"the big cell has {runs[0]['errors']} error(s)")
    return {"chars": len(source), "lines": source.count("\n") + 1,
            "seconds": statistics.median(r["seconds"] for r in runs),
            "growth": statistics.median(r["growth_kib"] for r in runs) * 1024,
            "peak": statistics.median(r["peak_kib"] for r in runs) * 1024,
            "check": check_times(path, 1)}


def profile_compile(path: Path) -> pstats.Stats:
    compile_notebook(path)
    profiler = cProfile.Profile()
    profiler.enable()
    compile_notebook(path)
    profiler.disable()
    return pstats.Stats(profiler)


def hot_spots(stats: pstats.Stats, top: int = 8) -> list[tuple[str, float, float]]:
    """The compiler's own functions with the most cumulative time: (function, cumulative s, own s)."""
    total = max(ct for (_, _, _, ct, _) in stats.stats.values())
    found = []
    for (file, line, func), (_, _, tt, ct, _) in stats.stats.items():
        skip = func.startswith("<") or func in ("compile_notebook", "build_flow")  # comprehensions, wrappers
        if "/compiler/" in file.replace(os.sep, "/") and not skip:
            found.append((f"compiler/{Path(file).name}:{line} {func}", ct, tt))
    found.sort(key=lambda item: -item[1])
    return [item for item in found if item[1] >= 0.05 * total][:top]


# -- report --------------------------------------------------------------------------------


def wall_cpu(times: tuple[float | None, float | None]) -> str:
    """"1.55 s (1.40 s CPU)": a process's wall time, and its CPU time in brackets."""
    wall, cpu = times
    return "—" if wall is None else f"{duration(wall)} ({duration(cpu)} CPU)"


def render(result: dict, profile: list | None = None) -> str:
    rows = result["rows"]
    big = next(r for r in rows if r["name"] == "generated, 1,000 code cells")
    largest = next(r for r in rows if r["name"] == "generated, 5,000 code cells")
    small = rows[0]
    cell = result["big_cell"]
    mb = cell["chars"] / 1e6

    def verdict(good):
        return "met" if good else "**missed**"

    cli = " ".join(Path(c).name if i == 0 else c for i, c in enumerate(nbscale_command()))
    no_bytecode = "`PYTHONDONTWRITEBYTECODE` set in the caller's environment (the in-process timings' process)"
    lines = [
        START,
        "## Compile time (`bench/bench_compile.py`)",
        "",
        produced_by(result["command"], revision("compiler", "nbscale", what="compiler"), result["machine"],
                    no_bytecode if result["machine"]["no_bytecode"] else ""),
        "",
        "`nbscale check` processes use .pyc files, as an installed package has them (in a private "
        "`PYTHONPYCACHEPREFIX`; the caller's `PYTHONDONTWRITEBYTECODE` is not passed on to them).",
        "",
        "`compile_notebook` is the in-process compile (read, tags, layout, dataflow analysis, hashes), "
        "median of 7–15 runs after a warm-up. `nbscale check` is the whole process, wall clock, "
        f"median of {PROCESS_RUNS} runs (`{cli} check NB`), and in brackets its CPU time (user + system): "
        "*first* with no entry in the compile cache "
        "(the user's cache folder, `nbscale/compile`, emptied before each run: the same as a check after any cell "
        "changed), *again* when the notebook is unchanged since the last check (the compile is read from "
        "the cache). "
        "From 200 cells on, a compile in a process of one thread on two cores or more has a forked child "
        "check what Python's compiler refuses, beside the analysis (`python_check.RefusalCheck`): so do the "
        "`nbscale check` processes (their CPU time in brackets counts the child's) and the in-process "
        "`compile_notebook` figures (this benchmark runs no other thread); a compile in the Jupyter server, "
        "beside its other threads, runs without one. "
        "Generated notebooks have a step tag every 5 code cells, assignments reading earlier names, "
        "function definitions and calls, `json.dumps(rows)` calls, in-place list mutation (also through an "
        "alias list every 20 cells) and a markdown cell every 4 code cells. "
        "The first stress row puts earlier names into every new list, so nearly all names may share objects; "
        "the second keeps bound methods of two shared objects in every cell (`x = [lst.append, d.update]`), so "
        "every step changes what every earlier list reaches (6.5 s before commit 73693d5, which finds the names "
        "reaching the changed objects once per chain of producers).",
        "",
        *table(["notebook", "code cells", "steps", "`compile_notebook`", "`nbscale check`, first",
                "`nbscale check`, again"],
               [[r["name"], f"{r['cells']:,}", str(r["steps"]), ms(r["compile"]), wall_cpu(r["check"][0]),
                 wall_cpu(r["check"][1])] for r in rows]),
        "",
        f"Python start-up alone (`python -c pass`): {ms(result['python_startup'])}.",
        "",
        f"One big code cell: {mb:.2f} MB, {cell['lines']:,} lines of assignments through calls and list "
        f"comprehensions, compiled in a fresh process (median of {BIG_CELL_RUNS}): "
        f"`compile_notebook` {duration(cell['seconds'])}; the compile raises the process's peak resident "
        f"memory (VmHWM) by {cell['growth'] / 1e6:,.0f} MB, {cell['growth'] / cell['chars']:.0f}× the cell "
        f"(process peak {cell['peak'] / 1e6:,.0f} MB); whole `nbscale check` {wall_cpu(cell['check'][0])} first, "
        f"{wall_cpu(cell['check'][1])} again.",
        "",
        f"`nbscale run` of the unchanged {largest['cells']:,}-cell notebook ({largest['steps']:,} steps), every step "
        f"cached, whole process (median of 3, after a first run in the same folder): {wall_cpu(result['cached_run'])}. "
        "A run reads the compile from the same cache as `check`, and remembers that Python compiles every cell "
        "it runs; before (commit 9c8d201) such a run compiled the notebook and its cells again: 2.0 s here.",
        "",
        *table(["target", "measured", ""], [
            ["1,000 cells analysed < 300 ms", ms(big["compile"]), verdict(big["compile"] < TARGET_ANALYSIS_1000)],
            ["whole-process `nbscale check` on a small notebook (iris) < 500 ms, first check",
             wall_cpu(small["check"][0]), verdict(small["check"][0][0] < TARGET_CLI_SMALL)],
            ["whole-process `nbscale check` on 5,000 cells ≤ 1 s, first check (or after a change)",
             wall_cpu(largest["check"][0]), verdict(largest["check"][0][0] <= TARGET_CLI_5000)],
            ["whole-process `nbscale check` on 5,000 cells ≤ 1 s, checked again unchanged",
             wall_cpu(largest["check"][1]), verdict(largest["check"][1][0] <= TARGET_CLI_5000)],
            [f"memory for a big cell ≤ {TARGET_BIG_CELL_MEMORY}× its size", f"{cell['growth'] / cell['chars']:.0f}×",
             verdict(cell["growth"] <= TARGET_BIG_CELL_MEMORY * cell["chars"])]]),
        "",
        "Before the compile shared one parse of each cell between its passes (commit 81b39c5, issue 14): "
        "1,000 cells 1,371 ms in `compile_notebook`, 5,000 cells 9 s in `nbscale check`, and the 2.75 MB "
        "cell 36 s and 899 MB. Before the compile cache (issue 14), every `nbscale check` cost what the *first* "
        "column shows, the notebook unchanged or not.",
        "",
        usage_note(result["usage"]),
        "",
        "For comparison, a published figure (not measured here): Kale's CLI takes 5.2 s to compile a "
        "4-step notebook, 3.3 s of it in imports (see PEERS.md).",
    ]
    if profile:
        lines += [
            "",
            "Where the 1,000-cell compile spends its time (cProfile, cumulative; profiling slows it down):",
            "",
            *table(["function", "cumulative", "own"], [[f"`{name}`", ms(cum), ms(own)] for name, cum, own in profile]),
        ]
    lines.append(END)
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", action="store_true", help="print a cProfile of the 1,000-cell compile")
    parser.add_argument("--no-stress", action="store_true", help="skip the slow alias-heavy stress notebook")
    parser.add_argument("--no-doc", action="store_true", help=f"do not update {DOC.relative_to(ROOT)}")
    args = parser.parse_args(argv)
    import nbscale.compiler

    print(f"measuring nbscale.compiler from {Path(nbscale.compiler.__file__).parent}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="nbscale-bench-") as tmp, Usage() as usage:
        result = measure(Path(tmp), stress=not args.no_stress)
        result["machine"] = machine()
        result["command"] = " ".join(["python bench/bench_compile.py", *(argv if argv is not None else sys.argv[1:])])
        big = next(r for r in result["rows"] if r["name"] == "generated, 1,000 code cells")
        profile = None
        if args.profile or big["compile"] >= TARGET_ANALYSIS_1000:
            stats = profile_compile(big["path"])
            profile = hot_spots(stats)
            if args.profile:
                stats.sort_stats("cumulative").print_stats(25)
    result["usage"] = usage.to_json()
    section = render(result, profile)
    publish(section, DOC, START, END, write=not args.no_doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
