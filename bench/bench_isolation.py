"""What isolating steps from each other costs per step: `python bench/bench_isolation.py`.

Run on demand (not part of the tests):

    python bench/bench_isolation.py              # measure, print, update docs/benchmarks.md
    python bench/bench_isolation.py --no-doc     # measure and print only

A step that runs in-process (the `dask` and `local` engines) runs inside `task.isolated_step()`:
`process_state` saves process-wide state before it and puts back what it changed after it, and
`children` records the processes below this one and ends the new ones. This measures, in a fresh
process (`bench_env()`) with pandas and scikit-learn loaded (well over 1,000 modules), median of
`RUNS` each: `ProcessState.save()` + `restore()` with nothing changed and after a step-like patch,
`step_children()` around nothing, `isolated_step()` around nothing, and an empty step through
`execute_step` with and without `isolated_step()`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from common import DOC, Usage, bench_env, machine, revision
from doc_sections import ms, produced_by, publish, table, usage_note

START, END = "<!-- bench_isolation:start -->", "<!-- bench_isolation:end -->"
RUNS = 50
MEASURE_FLAG = "--measure-in-this-process"


def measure_here() -> dict:
    """The measurements, in this process (the parent starts it fresh with `MEASURE_FLAG`)."""
    import json as json_module
    import operator
    import os
    import statistics
    import time

    import pandas  # noqa: F401 - loaded modules are what the snapshot walks
    import sklearn.ensemble  # noqa: F401
    import sklearn.linear_model  # noqa: F401
    import sklearn.model_selection  # noqa: F401

    from nbscale.compiler.ir import Prelude, Step
    from nbscale.kernels.children import step_children
    from nbscale.kernels.executor import execute_step
    from nbscale.kernels.process_state import ProcessState, dict_version
    from nbscale.kernels.task import isolated_step

    def median(fn) -> tuple[float, float, float]:
        """Median wall time, best wall time and median CPU time of `RUNS` calls: on a busy machine
        the wall time includes waiting for a core; the CPU time is this process's own work."""
        walls, cpus = [], []
        for _ in range(RUNS):
            start, cpu = time.perf_counter(), time.process_time()
            fn()
            walls.append(time.perf_counter() - start)
            cpus.append(time.process_time() - cpu)
        return statistics.median(walls), min(walls), statistics.median(cpus)

    def save_restore():
        ProcessState.save().restore()

    def patched():
        state = ProcessState.save()
        json_module.dumps = lambda *a, **k: "patched"
        os.environ["NBSCALE_BENCH"] = "1"
        state.restore()

    def children():
        with step_children():
            pass

    def isolated():
        with isolated_step():
            pass

    dicts = [m.__dict__ for m in list(sys.modules.values()) if isinstance(getattr(m, "__dict__", None), dict)]

    def copy_all():  # the way without version numbers
        copies = [d.copy() for d in dicts]
        all([len(d) == len(c) and all(map(operator.is_, d.values(), c.values())) for d, c in zip(dicts, copies)])

    empty = Step(name="empty", cells=[0], source=["x = 1"])

    def step_alone():
        execute_step(empty, Prelude(), {}, {})

    def step_isolated():
        with isolated_step():
            execute_step(empty, Prelude(), {}, {})

    step_alone()  # the step shell is made once per process
    step_isolated()
    with Usage() as usage:
        modules = len(sys.modules)
        entries = sum(len(m.__dict__) for m in list(sys.modules.values()) if hasattr(m, "__dict__"))
        result = {"modules": modules, "entries": entries, "save_restore": median(save_restore),
                  "patched": median(patched), "copy_all": median(copy_all), "children": median(children),
                  "isolated": median(isolated), "step_alone": median(step_alone),
                  "step_isolated": median(step_isolated)}
        state = ProcessState.save()
        result["save"] = median(ProcessState.save)
        result["restore"] = median(state.restore)
    result["usage"] = usage.to_json()
    result["versions"] = dict_version({}) is not None
    return result


def measure() -> dict:
    proc = subprocess.run([sys.executable, __file__, MEASURE_FLAG], env=bench_env(), capture_output=True,
                          text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"the measuring process failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def section(result: dict, command: str) -> str:
    labels = {
        "save": "`ProcessState.save()`",
        "restore": "`restore()`, nothing changed",
        "save_restore": "`save()` + `restore()`, nothing changed",
        "patched": "`save()` + `restore()` after patching `json.dumps` and setting a variable",
        "copy_all": "without version numbers: copy every module dict, compare it by identity",
        "children": "`step_children()` around nothing",
        "isolated": "`isolated_step()` around nothing (both, plus the shell lock and evicting edited modules)",
        "step_alone": "an empty step (`x = 1`) through `execute_step`",
        "step_isolated": "the same step inside `isolated_step()`",
    }
    rows = [[label, *(ms(v) for v in result[key])] for key, label in labels.items()]
    extra = [result["step_isolated"][i] - result["step_alone"][i] for i in (0, 1, 2)]
    versions = "available" if result["versions"] else "not available, every dict copied and compared"
    usage = result["usage"]
    lines = [
        START,
        "## Isolation between steps (`bench/bench_isolation.py`)",
        "",
        produced_by(command, revision("kernels", what="run-time"), machine()),
        "",
        f"In one fresh process with pandas and scikit-learn loaded: {result['modules']:,} modules, "
        f"{result['entries']:,} module attributes; {RUNS} runs each: median and best wall time, median CPU time "
        "(this process's own work; the wall time also holds waiting for a core on a busy machine).",
        "",
        *table(["what", "wall, median", "wall, best", "CPU, median"], rows),
        "",
        f"Extra per step on a shared worker (the last two rows): {ms(extra[0])} wall from the medians, "
        f"{ms(extra[1])} from the best runs, {ms(extra[2])} CPU. The snapshot keeps a copy of every "
        "loaded module's dict and makes it again only for a module whose dict has a new version number "
        f"(CPython's per-dict version tag, read in C for all modules at once; here: {versions}); after the "
        "step only modules with a new version number are compared, by identity, name by name. A step costs "
        "more than `isolated_step()` around nothing because running it changes a few module dicts itself (the "
        "step shell swaps `sys.stdout`, builtins and `__main__` in and out), which are compared and copied again.",
        "",
        usage_note(usage),
        END,
        "",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-doc", action="store_true", help="print only; leave docs/benchmarks.md alone")
    parser.add_argument(MEASURE_FLAG, action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure_in_this_process:
        print(json.dumps(measure_here()))
        return 0
    text = section(measure(), "python bench/bench_isolation.py")
    publish(text, DOC, START, END, write=not args.no_doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
