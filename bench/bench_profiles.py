"""What data profiles cost: profiling a 1 GB DataFrame against making it and against the step's time.

Run on demand (not part of the tests), when the machine is quiet (`uptime` load below 2):

    python bench/bench_profiles.py              # measure, print, update docs/benchmarks.md
    python bench/bench_profiles.py --no-doc     # measure and print only
    python bench/bench_profiles.py --gb 0.25    # a smaller frame

The frame: 8 float64 columns, an int64, a bool and a 20-level categorical (about 74 bytes a row,
13.5 M rows for 1 GB). In this process it is made, then profiled (`kernels.profiles.step_profiles`,
what a step pays once it succeeded: moments in one chunked pass, sketches fed a 50 k-row sample),
median of RUNS. Then `nbscale run --engine local` runs a notebook whose step makes the same frame
and hands it to a second step: the step's execution time, the profile time the step recorded
(`profiles.seconds`) and the whole process's wall time (which includes storing the frame).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import DOC, ROOT, Usage, machine, revision
from doc_sections import duration, produced_by, publish, table, usage_note

from nbscale.kernels.profiles import step_profiles

START, END = "<!-- bench_profiles:start -->", "<!-- bench_profiles:end -->"
RUNS = 3
ROW_BYTES = 8 * 8 + 8 + 1 + 1
MAKE = """import numpy as np
import pandas as pd
rng = np.random.default_rng(0)
rows = {rows}
df = pd.DataFrame({{f"f{{i}}": rng.standard_normal(rows) for i in range(8)}})
df["i"] = rng.integers(0, 1000, rows)
df["b"] = rng.random(rows) < 0.3
df["cat"] = pd.Categorical.from_codes(rng.integers(0, 20, rows), [f"c{{i}}" for i in range(20)])"""


def in_process(rows: int) -> dict:
    """Make the frame, then profile it RUNS times: the seconds of each."""
    namespace: dict = {}
    started = time.perf_counter()
    exec(MAKE.format(rows=rows), namespace)  # noqa: S102 - the bench's own code
    make_s = time.perf_counter() - started
    frame = namespace["df"]
    profile_s = []
    for _ in range(RUNS):
        started = time.perf_counter()
        profiles = step_profiles({"df": frame})
        profile_s.append(time.perf_counter() - started)
    assert profiles and profiles["values"]["df"]["columns_profiled"] == 11, profiles
    return {"make_s": make_s, "profile_s": statistics.median(profile_s), "profile_all": profile_s,
            "bytes": int(frame.memory_usage(deep=True).sum())}


def in_a_run(rows: int) -> dict:
    """A real `nbscale run --engine local` of a notebook whose step makes the frame."""
    import nbformat

    with tempfile.TemporaryDirectory(prefix="nbscale-bench-profiles-") as folder:
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell(MAKE.format(rows=rows), metadata={"tags": ["step:make"]}),
                    nbformat.v4.new_code_cell("total = len(df)", metadata={"tags": ["step:use"]})]
        path = Path(folder) / "profiled.ipynb"
        nbformat.write(nb, str(path))
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "nbscale", "run", str(path), "--engine", "local", "--no-cache",
                               "--output", "json"], capture_output=True, text=True, cwd=ROOT)
        wall = time.perf_counter() - started
        if done.returncode:
            raise SystemExit(f"nbscale run failed: {done.stderr}")
        result = json.loads(done.stdout)
        make = next(s for s in result["steps"] if s["name"] == "make")
        from nbscale.kernels.runner import default_run_store

        with default_run_store(path) as store:
            row = next(s for s in store.get_run(result["run_id"])["steps"] if s["step"] == "make")
        return {"step_s": make["duration_s"], "profile_s": row["profiles"]["seconds"], "wall_s": wall}


def measure(gb: float) -> dict:
    rows = int(gb * 1e9 / ROW_BYTES)
    with Usage() as usage:
        here = in_process(rows)
        run = in_a_run(rows)
    return {"rows": rows, "here": here, "run": run, "usage": usage.to_json()}


def section(result: dict, command: str) -> str:
    here, run = result["here"], result["run"]
    share = lambda part, whole: f"{part / whole:.1%}"  # noqa: E731
    rows = [
        ["make the frame (in this process)", duration(here["make_s"]), "—"],
        [f"profile it (in this process, median of {RUNS})", duration(here["profile_s"]),
         share(here["profile_s"], here["make_s"]) + " of making it"],
        ["the step that makes it (`nbscale run`, its execution)", duration(run["step_s"]), "—"],
        ["profile taken by that step after it succeeded", duration(run["profile_s"]),
         share(run["profile_s"], run["step_s"]) + " of the step's execution"],
        ["the whole `nbscale run` (two steps, storing the frame)", duration(run["wall_s"]),
         share(run["profile_s"], run["wall_s"]) + " taken by the profile"],
    ]
    lines = [
        START,
        "## Data profiles (`bench/bench_profiles.py`)",
        "",
        produced_by(command, revision("kernels", what="run-time"), machine()),
        "",
        f"A DataFrame of {here['bytes'] / 1e9:.2f} GB ({result['rows']:,} rows: 8 float64 columns, an int64, a bool, "
        "a 20-level categorical). The profile (`kernels/profiles.py`) reads each column once in cache-sized chunks "
        "for counts, nulls and moments and feeds the KLL and frequent-items sketches a seeded sample of 50 000 "
        f"rows. Profile runs in this process: {', '.join(duration(s) for s in here['profile_all'])}. The target: "
        "under 5 % of the step's time.",
        "",
        *table(["what", "time", "profile's share"], rows),
        "",
        verdict(here, run),
        "",
        usage_note(result["usage"]),
        END,
        "",
    ]
    return "\n".join(lines)


def verdict(here: dict, run: dict) -> str:
    """Whether the 5 % target held, said against each measure of the step's time."""
    shares = {"making the frame": here["profile_s"] / here["make_s"],
              "the step's execution": run["profile_s"] / run["step_s"],
              "the whole run (execution and storing the frame)": run["profile_s"] / run["wall_s"]}
    held = [f"{name} ({share:.1%})" for name, share in shares.items() if share < 0.05]
    missed = [f"{name} ({share:.1%})" for name, share in shares.items() if share >= 0.05]
    return (f"Under 5 % against {', '.join(held) or 'none'}" + (f"; over it against {', '.join(missed)}" if missed
                                                                  else "") + ".")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=1.0, help="size of the frame (default 1 GB)")
    parser.add_argument("--no-doc", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args(argv)
    command = "python bench/bench_profiles.py" + (f" --gb {args.gb:g}" if args.gb != 1.0 else "")
    publish(section(measure(args.gb), command), DOC, START, END, write=not args.no_doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
