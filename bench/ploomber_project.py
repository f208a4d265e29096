"""Ploomber (0.23) projects equivalent to the generated notebooks, for Ploomber's parallel executor.

Ploomber runs a pipeline of whole scripts: each task is a percent-format script that Ploomber
turns into a notebook and runs with papermill in its own kernel, reading its `upstream` tasks'
products (pickles here) and writing its own. `executor: parallel` runs independent tasks in
separate processes at once — the peer feature that matches nbscale's parallel steps.

Ploomber is measured from its own virtual environment (it pins other versions of nbscale's
dependencies), given to `bench_run.py --ploomber PATH`:

    python -m venv /tmp/ploomber-venv && /tmp/ploomber-venv/bin/pip install ploomber==0.23.3 ipykernel
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import notebooks

PARAMETERS = '# %% tags=["parameters"]\nupstream = {upstream}\nproduct = None\n{extra}\n# %%\n'


def version(ploomber: str) -> str:
    out = subprocess.run([ploomber, "--version"], capture_output=True, text=True, check=True).stdout
    return out.strip().rsplit(" ", 1)[-1]


def build_command(ploomber: str) -> list[str]:
    """Build every task (`--force`: nothing is up to date in a fresh folder anyway)."""
    return [ploomber, "build", "--force"]


def cpu_parallel(folder: Path, iters: int, trainings: int) -> Path:
    """The tasks of `notebooks.cpu_parallel(iters, trainings)`: `data` → `train_*` → `report`."""
    names = "abcdefgh"[:trainings]
    header = "import math\nimport pickle\nimport random\n"
    scripts = {"data": (PARAMETERS.format(upstream=None, extra="") + header + notebooks.DATA_SOURCE
                        + 'with open(product["data"], "wb") as f:\n    pickle.dump(data, f)\n')}
    for k, name in enumerate(names, start=1):
        scripts[f"train_{name}"] = (
            PARAMETERS.format(upstream=["data"], extra=f"iters = {iters}\n") + header + notebooks.TRAIN_FUNCTION
            + 'with open(upstream["data"]["data"], "rb") as f:\n    data = pickle.load(f)\n'
            + f"model = train(data, seed={k}, iters=iters)\n"
            + 'with open(product["model"], "wb") as f:\n    pickle.dump(model, f)\n')
    trains = [f"train_{name}" for name in names]
    scripts["report"] = (
        PARAMETERS.format(upstream=["data", *trains], extra="") + header + notebooks.TRAIN_FUNCTION
        + 'with open(upstream["data"]["data"], "rb") as f:\n    data = pickle.load(f)\n'
        + "scores = {}\n"
        + f"for name in {trains!r}:\n"
        + '    with open(upstream[name]["model"], "rb") as f:\n'
        + "        scores[name] = accuracy(pickle.load(f), data)\n"
        + "best = max(scores.values())\nprint(scores)\n")
    tasks = []
    for task, source in scripts.items():
        (folder / f"{task}.py").write_text(source)
        products = {"nb": f"out/{task}.ipynb"}
        if task == "data":
            products["data"] = "out/data.pkl"
        elif task.startswith("train_"):
            products["model"] = f"out/{task}.pkl"
        tasks.append(f"  - source: {task}.py\n    product: {{"
                     + ", ".join(f"{k}: {v}" for k, v in products.items()) + "}\n")
    (folder / "pipeline.yaml").write_text("executor: parallel\ntasks:\n" + "".join(tasks))
    return folder
