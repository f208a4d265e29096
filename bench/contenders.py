"""Who the run-time benchmarks measure, and how one of them runs one notebook in a fresh process.

Contenders: nbscale on the Dask engine (embedded LocalCluster), nbscale on the local engine,
papermill running the same notebook top to bottom in one kernel, and kfp.local running chained
lightweight components. `Context` is what every benchmark of `bench_run.py` is given.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from common import Folders, run_task

NBSCALE_DASK, NBSCALE_LOCAL, PAPERMILL, KFP = "nbscale-dask", "nbscale-local", "papermill", "kfp"
LABELS = {
    NBSCALE_DASK: "nbscale, Dask (embedded LocalCluster)",
    NBSCALE_LOCAL: "nbscale, local engine",
    PAPERMILL: "papermill (`execute_notebook`, same notebook)",
    KFP: "kfp.local SubprocessRunner(use_venv=False), install_kfp_package=False",
}


@dataclass
class Context:
    """What a benchmark needs: its sizes, fresh folders, the contenders' environments, a log."""

    cfg: dict  # sizes and repeats (bench_run.FULL or QUICK)
    folders: Folders
    envs: dict  # "default": bench_env(); "as_given": bytecode as the caller's environment has it, or None
    log: Callable[[str], None]
    iris: Path  # examples/iris.ipynb (of the measured revision)
    ploomber: str | None = None  # the `ploomber` command of its own virtual environment, if given


def contender_task(ctx: Context, contender: str, path: Path, **extra) -> dict:
    """Run notebook `path` once with `contender` (nbscale or papermill) in a fresh process."""
    if contender == PAPERMILL:
        return run_task({"task": "papermill", "notebook": str(path)}, ctx.envs["default"])
    engine = "dask" if contender == NBSCALE_DASK else "local"
    return run_task({"task": "nbscale", "notebook": str(path), "engine": engine, **extra}, ctx.envs["default"])


def in_fresh_folder(ctx: Context, label: str, notebook, name: str, measure):
    """`measure(path)` on a copy of `notebook` in a fresh folder, removed afterwards."""
    folder, path = ctx.folders.new(label, notebook, name)
    try:
        return measure(path)
    finally:
        ctx.folders.drop(folder)
