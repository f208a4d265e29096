"""Whole-process run of example notebooks: nbscale (Dask, cold and cached) vs papermill.

Run on demand: `python bench/bench_run.py`. Writes the "Run" section of docs/benchmarks.md.
"""

from __future__ import annotations

import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ["iris.ipynb", "mutation.ipynb"]
REPEATS = 3


def timed(cmd, cwd):
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - start


def measure(name):
    rows = {"papermill": [], "nbscale cold (Dask)": [], "nbscale cached": []}
    for _ in range(REPEATS):
        with tempfile.TemporaryDirectory() as tmp:
            shutil.copy(ROOT / "examples" / name, tmp)
            rows["papermill"].append(timed([sys.executable, "-m", "papermill", name, "out.ipynb",
                                            "--kernel", "python3"], tmp))
            rows["nbscale cold (Dask)"].append(timed(["nbscale", "run", name, "--workers", "2"], tmp))
            rows["nbscale cached"].append(timed(["nbscale", "run", name], tmp))
    return {k: statistics.median(v) for k, v in rows.items()}


def main():
    lines = ["## Run: whole process, nbscale vs papermill", "",
             f"Command: `python bench/bench_run.py` — {os.cpu_count()} cores, Python {platform.python_version()}, "
             f"median of {REPEATS}. Ratio = papermill time / nbscale time (> 1: nbscale faster).", "",
             "| notebook | papermill | nbscale cold (Dask) | ratio | nbscale cached | ratio |",
             "|---|---|---|---|---|---|"]
    for name in NOTEBOOKS:
        t = measure(name)
        pm, cold, cached = t["papermill"], t["nbscale cold (Dask)"], t["nbscale cached"]
        lines.append(f"| {name} | {pm:.2f} s | {cold:.2f} s | {pm / cold:.2f}× | {cached:.2f} s | {pm / cached:.2f}× |")
        print(lines[-1])
    _write_section("## Run: whole process", "\n".join(lines) + "\n")


def _write_section(heading, text):
    path = ROOT / "docs" / "benchmarks.md"
    old = path.read_text() if path.exists() else "# Benchmarks\n"
    if heading in old:
        before, _, rest = old.partition(heading)
        after = rest.split("\n## ", 1)
        old = before + ("## " + after[1] if len(after) > 1 else "")
    path.write_text(old.rstrip() + "\n\n" + text)


if __name__ == "__main__":
    main()
