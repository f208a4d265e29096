"""KFP benchmark: compile to KFP YAML (whole CLI process) beside Kale, and per-step run time
under kfp.local beside nbscale's Dask and local engines.

Run on demand (not part of the tests):

    python bench/bench_kfp.py                         # measure, print, update docs/benchmarks.md
    python bench/bench_kfp.py --kale /tmp/kale-venv/bin/kale --runs 5 --no-doc

Kale is measured only from its own virtual environment (it pins other versions of nbscale's
dependencies), installed with:

    python -m venv /tmp/kale-venv && /tmp/kale-venv/bin/pip install kubeflow-kale==2.3.0

Without it, the section says so and quotes Kale's published figures (PEERS.md).

Compile: `nbscale compile NB --target kfp -o NB.yaml` and `kale --nb NB` (which writes its DSL
script and YAML under .kale/), whole process, wall clock, median of N runs after a warm-up, on
the same notebooks: 4 steps with imports, parameters and metrics, and a chain of 60 steps, both
written with tags both tools read (`step:`, `prev:`, `pipeline-parameters`, `pipeline-metrics`).

Run time: the same notebooks run with `--engine kfp-local` (YAML → kfp.local SubprocessRunner,
one process per step), `dask` (a LocalCluster started beforehand, as a running cluster is used)
and `local` (in-process); caching off. Per step = run wall time / steps; overhead per step =
(run wall time − the steps' own execution time) / steps.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from common import DOC, ROOT, machine, median_process, nbscale_command, revision
from doc_sections import duration, produced_by, publish, table

START, END = "<!-- bench_kfp:start -->", "<!-- bench_kfp:end -->"
KALE_PUBLISHED = {"4 steps": 5.2, "60-step chain": 4.4 + 1.3}  # seconds, PEERS.md
KALE_PER_STEP_PUBLISHED = 25.0  # seconds per step under kfp.local, PEERS.md


# -- notebooks --------------------------------------------------------------------------------


def _cell(source: str, tags: list[str]):
    return nbformat.v4.new_code_cell(source, metadata={"tags": tags})


def four_steps() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        _cell("import math\nimport statistics", ["imports"]),
        _cell("n = 2000\nscale = 2.5", ["pipeline-parameters"]),
        _cell("data = [i * scale for i in range(n)]", ["step:load"]),
        _cell("clean = [x for x in data if int(x) % 3]", ["step:clean", "prev:load"]),
        _cell("total = sum(clean)\ncount = len(clean)\nspread = statistics.pstdev(clean)",
              ["step:features", "prev:clean"]),
        _cell("mean = total / count\nratio = spread / mean\nprint(math.floor(mean))", ["step:report", "prev:features"]),
        _cell("print(mean)\nprint(ratio)", ["pipeline-metrics"]),
    ]
    return nb


def chain(steps: int) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [_cell("import math", ["imports"]), _cell("x0 = 1", ["step:s0"])]
    for i in range(1, steps):
        nb.cells.append(_cell(f"x{i} = x{i - 1} + math.floor({i} / 2)", [f"step:s{i}", f"prev:s{i - 1}"]))
    nb.cells.append(_cell(f"print(x{steps - 1})", ["pipeline-metrics"]))
    return nb


# -- measuring --------------------------------------------------------------------------------


def checked_median(cmd: list[str], runs: int, cwd: Path, check) -> float:
    """Median wall time of the whole command, then `check()` what it wrote."""
    took = median_process(cmd, runs, cwd)
    check()
    return took


def compile_times(folder: Path, notebooks: dict[str, Path], runs: int, kale: str | None) -> list[dict]:
    from nbscale.compiler import compile_notebook

    rows = []
    for label, nb in notebooks.items():
        yaml_path = nb.with_suffix(".yaml")

        def nbscale_ok(yaml_path=yaml_path):
            from kfp.components import load_component_from_file

            load_component_from_file(str(yaml_path))

        row = {"notebook": label, "steps": len(compile_notebook(nb).steps),
               "nbscale": checked_median([*nbscale_command(), "compile", str(nb), "--target", "kfp", "-o",
                                          str(yaml_path)], runs, folder, nbscale_ok)}
        if kale:
            kale_dir = folder / f"kale-{nb.stem}"
            kale_dir.mkdir(exist_ok=True)
            shutil.copy(nb, kale_dir / nb.name)

            def kale_ok(kale_dir=kale_dir):
                if not list((kale_dir / ".kale").glob("*.yaml")):
                    raise RuntimeError(f"kale wrote no YAML in {kale_dir / '.kale'}")

            row["kale"] = checked_median([kale, "--nb", nb.name], runs, kale_dir, kale_ok)
            row["kale_steps"] = _kale_steps(kale_dir)
        rows.append(row)
    return rows


def _kale_steps(kale_dir: Path) -> int | None:
    import yaml

    docs = [next(yaml.safe_load_all(p.read_text())) for p in (kale_dir / ".kale").glob("*.yaml")]
    return len(docs[0]["root"]["dag"]["tasks"]) if docs else None


def run_times(folder: Path, notebooks: dict[str, Path], kfp_runs: int) -> list[dict]:
    from distributed import LocalCluster

    from nbscale.kernels.runner import RunOptions, run_notebook

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                           host="127.0.0.1")
    rows = []
    try:
        for label, source in notebooks.items():
            for engine in ("kfp-local", "dask", "local"):
                walls, overheads = [], []
                for i in range(kfp_runs if engine == "kfp-local" else 3):
                    run_dir = folder / f"run-{engine}-{source.stem}-{i}"
                    run_dir.mkdir()
                    nb = run_dir / source.name
                    shutil.copy(source, nb)
                    options = RunOptions(engine=engine, use_cache=False,
                                         scheduler=cluster.scheduler_address if engine == "dask" else None)
                    start = time.perf_counter()
                    result = run_notebook(nb, None, options)
                    wall = time.perf_counter() - start
                    if not result.ok:
                        raise RuntimeError(f"{engine} run of {nb} failed: {result.steps}")
                    own = sum(s["duration_s"] or 0.0 for s in result.steps)
                    walls.append(wall)
                    overheads.append((wall - own) / len(result.steps))
                steps = len(result.steps)
                rows.append({"notebook": label, "engine": engine, "steps": steps, "runs": len(walls),
                             "wall": statistics.median(walls), "per_step": statistics.median(walls) / steps,
                             "overhead": statistics.median(overheads)})
                print(f"  {label:<28} {engine:<10} {statistics.median(walls):7.2f} s", file=sys.stderr)
    finally:
        cluster.close()
    return rows


# -- the report -------------------------------------------------------------------------------


def render(result: dict) -> str:
    kale = result["kale"]
    lines = [START, "## KFP (`bench/bench_kfp.py`)", ""]
    lines.append(produced_by(result["command"], result["revision"], result["machine"],
                             f"kfp {result['kfp']}, load average {result['load'][0]:.1f} at the start and "
                             f"{result['load'][1]:.1f} at the end"))
    lines.append("")
    lines.append("### Compile to KFP YAML, whole process")
    lines.append("")
    lines.append(
        f"Wall clock of the whole command, median of {result['runs']} runs after a warm-up: "
        "`nbscale compile NB --target kfp -o NB.yaml` (notebook → IR → DSL module → kfp SDK → YAML) "
        "and `kale --nb NB` (Kale 2.3.0: DSL script formatted with autopep8, then YAML), on the same "
        "notebooks, written with tags both read. Each tool's YAML is checked after the timed runs "
        "(nbscale's loads with `load_component_from_file`).")
    lines.append("")
    if kale["installed"]:
        lines += table(["notebook", "steps (nbscale / Kale)", "nbscale", "Kale 2.3.0 (measured)", "Kale / nbscale"],
                       [[row["notebook"], f"{row['steps']} / {row.get('kale_steps') or '?'}",
                         duration(row["nbscale"]), duration(row.get("kale")),
                         f"{row['kale'] / row['nbscale']:.1f}×" if row.get("kale") else "—"]
                        for row in result["compile"]])
        lines.append("")
        lines.append(f"Kale ran from its own virtual environment ({kale['path']}).")
    else:
        lines += table(["notebook", "steps", "nbscale", "Kale 2.3.0 (published, not measured here)"],
                       [[row["notebook"], str(row["steps"]), duration(row["nbscale"]),
                         duration(KALE_PUBLISHED.get(row["notebook"]))] for row in result["compile"]])
        lines.append("")
        lines.append(f"Kale was not measured: {kale['reason']}. Its figures are the published ones (PEERS.md).")
    lines.append("")
    lines.append("nbscale's steps include the `metrics` cell's own step (Kale folds it into the last step).")
    lines.append("")
    lines.append("### Run time per step: kfp.local vs nbscale's engines")
    lines.append("")
    lines.append(
        "`run_notebook(NB, engine=…)` with caching off. `kfp-local`: the YAML run by "
        "`kfp.local.SubprocessRunner(use_venv=False)`, one process per step, one step at a time "
        "(median of "
        f"{result['kfp_runs']} runs); `dask`: a LocalCluster of 2 worker processes started beforehand; "
        "`local`: in-process (median of 3 runs each). Per step = run wall time / steps; overhead = "
        "(run wall time − the steps' own execution time) / steps.")
    lines.append("")
    lines += table(["notebook", "steps", "engine", "run", "per step", "overhead per step"],
                   [[row["notebook"], str(row["steps"]), f"`{row['engine']}`", duration(row["wall"]),
                     duration(row["per_step"]), duration(row["overhead"])] for row in result["run"]])
    lines.append("")
    lines.append(
        f"For comparison, a published figure (not measured here): Kale's pipelines take ≈ "
        f"{KALE_PER_STEP_PUBLISHED:.0f} s per step under kfp.local (PEERS.md).")
    lines.append(END)
    return "\n".join(lines) + "\n"


def _kale(path: str | None) -> dict:
    candidates = [path] if path else [os.environ.get("KALE"), "/tmp/kale-venv/bin/kale"]
    for candidate in filter(None, candidates):
        if Path(candidate).exists():
            return {"installed": True, "path": candidate}
    reason = (f"{path} does not exist" if path else
              "no Kale venv at /tmp/kale-venv (create it as the module docstring shows)")
    return {"installed": False, "reason": reason}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="compile runs per tool and notebook (median)")
    parser.add_argument("--kfp-runs", type=int, default=2, help="kfp-local runs per notebook (median)")
    parser.add_argument("--kale", help="the kale executable (default: /tmp/kale-venv/bin/kale if present)")
    parser.add_argument("--no-run", action="store_true", help="skip the run-time part")
    parser.add_argument("--no-doc", action="store_true", help=f"do not update {DOC.relative_to(ROOT)}")
    args = parser.parse_args(argv)
    import kfp

    kale = _kale(args.kale)
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="nbscale-bench-kfp-") as tmp:
        folder = Path(tmp)
        notebooks = {"4 steps": folder / "four_steps.ipynb", "60-step chain": folder / "chain60.ipynb"}
        nbformat.write(four_steps(), str(notebooks["4 steps"]))
        nbformat.write(chain(60), str(notebooks["60-step chain"]))
        print("compiling …", file=sys.stderr)
        compile_rows = compile_times(folder, notebooks, args.runs, kale["path"] if kale["installed"] else None)
        run_rows = []
        if not args.no_run:
            print("running …", file=sys.stderr)
            nbformat.write(chain(8), str(folder / "chain8.ipynb"))
            run_rows = run_times(folder, {"8-step chain (light)": folder / "chain8.ipynb",
                                          "examples/iris.ipynb": ROOT / "examples" / "iris.ipynb"}, args.kfp_runs)
    result = {
        "command": " ".join(["python bench/bench_kfp.py", *(argv if argv is not None else sys.argv[1:])]),
        "revision": revision(), "machine": machine(), "kfp": kfp.__version__,
        "load": (load_start, os.getloadavg()[0]), "runs": args.runs,
        "kfp_runs": args.kfp_runs, "kale": kale, "compile": compile_rows, "run": run_rows,
    }
    section = render(result)
    publish(section, DOC, START, END, write=not args.no_doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
