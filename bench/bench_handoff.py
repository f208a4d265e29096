"""Hand-off throughput against value size: a numpy array and a DataFrame handed from one step to the
next on the Dask engine (embedded LocalCluster), each run in a fresh process, beside the machine's
copy speed for the same value. Writes its section of docs/benchmarks.md and docs/img/handoff-throughput.png.

    python bench/bench_handoff.py                 # 16 MB … 1 GB, median of 3
    python bench/bench_handoff.py --quick         # 16 and 64 MB, one repeat (does not touch the doc)

Hand-off = `t_got − t_made`, stamped by the two steps' own code (`notebooks.handoff`). The goal
(issue 14): 1 GB at ≥ 1.5 GB/s, the store written off the critical path, memory ≤ 2× the value.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import notebooks
from common import DOC, ROOT, Folders, Usage, bench_env, machine, med, revision
from contenders import NBSCALE_DASK, Context, contender_task, in_fresh_folder
from doc_sections import produced_by, publish, usage_note
from handoff import parts_alone

START, END = "<!-- bench_handoff:start -->", "<!-- bench_handoff:end -->"
IMAGE = ROOT / "docs" / "img" / "handoff-throughput.png"
FULL = {"sizes": [16 * 10**6, 64 * 10**6, 256 * 10**6, 10**9], "repeats": 3}
QUICK = {"sizes": [16 * 10**6, 64 * 10**6], "repeats": 1}
KINDS = ("numpy", "pandas")
GOAL_GBPS = 1.5


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    command = "python bench/bench_handoff.py" + (" --quick" if args.quick else "")
    with tempfile.TemporaryDirectory(prefix="nbscale-bench-handoff-") as tmp, Usage() as usage:
        ctx = Context({"handoff_repeats": cfg["repeats"]}, Folders(Path(tmp), notebooks.write),
                      {"default": bench_env()}, lambda text: print(text, flush=True), ROOT / "examples" / "iris.ipynb")
        rows = [measure(ctx, kind, nbytes, cfg["repeats"]) for kind in KINDS for nbytes in cfg["sizes"]]
    write = not args.quick and not args.no_doc
    if write:
        plot(rows)
    publish(render(rows, command, usage.to_json()), DOC, START, END, write=write)
    return 0


def measure(ctx: Context, kind: str, nbytes: int, repeats: int) -> dict:
    nb = notebooks.handoff(kind, nbytes)
    seconds, actual = [], nbytes
    for r in range(repeats):
        run = in_fresh_folder(ctx, f"handoff-{kind}-{nbytes}", nb, "handoff.ipynb",
                              lambda path: contender_task(ctx, NBSCALE_DASK, path, handoff=True))
        seconds.append(run["handoff"]["t_got"] - run["handoff"]["t_made"])
        actual = run["handoff"]["nbytes"]
        ctx.log(f"  {kind} {actual / 1e6:,.0f} MB repeat {r + 1}: {seconds[-1]:.3f} s")
    base = parts_alone(ctx, kind, actual)
    return {"kind": kind, "nbytes": actual, "seconds": med(seconds), "copy": base["copy"]}


def render(rows: list[dict], command: str, usage: dict) -> str:
    lines = [START, "## Hand-off throughput against value size (`bench/bench_handoff.py`)", "",
             produced_by(command, revision("kernels", "compiler", "nbscale", what="run-time"), machine()), "",
             "Each row: a fresh `nbscale run` process on the Dask engine (embedded LocalCluster, cache off), "
             "median of the repeats. Hand-off = `t_got − t_made`, stamped by the steps' own code: it holds "
             "everything between the two steps (digests, scheduling, the reader's inputs). The artifact store "
             "is written in the background meanwhile and before the run ends. Copy speed: `arr.copy()` / "
             "`df.copy(deep=True)` of the same value in a fresh process. At small sizes the hand-off is the "
             "fixed cost of starting the next step (scheduling, the step's set-up), not the value's size.", "",
             "| value | size | hand-off | throughput | copy speed | vs copy |", "|---|---:|---:|---:|---:|---:|"]
    for row in rows:
        gbps, copy = row["nbytes"] / row["seconds"] / 1e9, row["nbytes"] / row["copy"] / 1e9
        lines.append(f"| {row['kind']} | {row['nbytes'] / 1e6:,.0f} MB | {row['seconds'] * 1000:,.0f} ms | "
                     f"{gbps:.2f} GB/s | {copy:.2f} GB/s | {gbps / copy:.2f}× |")
    biggest = [r for r in rows if r["nbytes"] >= 9 * 10**8]
    for row in biggest:
        gbps = row["nbytes"] / row["seconds"] / 1e9
        lines += ["", f"Goal: 1 GB at ≥ {GOAL_GBPS} GB/s — {row['kind']}: {gbps:.2f} GB/s, "
                      f"**{'met' if gbps >= GOAL_GBPS else 'missed'}**."]
    lines += ["", f"![hand-off throughput](img/{IMAGE.name})", "", usage_note(usage), END]
    return "\n".join(lines) + "\n"


def plot(rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=120)
    for kind in KINDS:
        mine = [r for r in rows if r["kind"] == kind]
        ax.plot([r["nbytes"] / 1e6 for r in mine], [r["nbytes"] / r["seconds"] / 1e9 for r in mine], marker="o",
                label=f"nbscale hand-off, {kind}")
        ax.plot([r["nbytes"] / 1e6 for r in mine], [r["nbytes"] / r["copy"] / 1e9 for r in mine], linestyle=":",
                label=f"copy speed, {kind}")
    ax.axhline(GOAL_GBPS, color="grey", linewidth=0.8, linestyle="--", label=f"goal at 1 GB ({GOAL_GBPS} GB/s)")
    ax.set_xscale("log")
    ax.set_xlabel("value size (MB)")
    ax.set_ylabel("GB/s")
    ax.set_title(f"Hand-off between two steps (Dask engine), {time.strftime('%Y-%m-%d')}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(IMAGE)
    print(f"wrote {IMAGE.relative_to(ROOT)}")


if __name__ == "__main__":
    raise SystemExit(main())
