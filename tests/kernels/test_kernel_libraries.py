"""Tests for nbscale.kernels.kernel_libraries: a step's matplotlib figures and pandas output are a
kernel's. Real matplotlib (skipped where it is not installed), real pandas, real IPython; the
engines' own tests (test_papermill, test_engines) compare with a real papermill run."""

from __future__ import annotations

import base64
import importlib
import json
import os
import subprocess
import sys

import pandas  # noqa: F401 - imported outside any shell, as a worker unpickling a DataFrame does
import pytest
from test_executor import ok, run

from nbscale.kernels.kernel_libraries import INLINE_BACKEND, KERNEL_MAX_COLUMNS

PLOT = "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nprint('drawn')"


def figures(cell: dict) -> list[dict]:
    return [o for o in cell["outputs"] if o["output_type"] == "display_data" and "image/png" in o["data"]]


def is_png(output: dict) -> bool:
    return base64.b64decode(output["data"]["image/png"]).startswith(b"\x89PNG")


@pytest.fixture
def matplotlib():
    return importlib.import_module("matplotlib")  # a test dependency: an ImportError must fail, not skip


def test_figures_land_in_the_cell_that_made_them(matplotlib):
    result = run(PLOT, "print('no figure here')", "fig, ax = plt.subplots()\nax.bar([1, 2], [3, 4])\nfig.suptitle('t')",
                 "plt.plot([0, 1])\nraise ValueError('after the plot')")
    assert result.error.ename == "ValueError" and len(result.cells) == 4
    first, second, third, failing = result.cells
    assert [o["output_type"] for o in first["outputs"]] == ["stream", "display_data"]
    shown = figures(first)[0]
    assert is_png(shown) and shown["data"]["text/plain"] == "<Figure size 640x480 with 1 Axes>"
    assert figures(second) == [] and len(figures(third)) == 1
    assert len(figures(failing)) == 1  # flushed after a failing cell too, as a kernel does
    assert [(d["cell"], d["output_type"]) for d in result.displays] == [
        (1, "display_data"), (3, "execute_result"), (3, "display_data"), (4, "display_data")]


def test_the_inline_backend_is_the_default_and_every_step_gets_its_figures(matplotlib):
    for _ in range(2):  # the second step reuses the process's pyplot and inline backend
        result = ok(run(PLOT + "\nimport matplotlib\nbackend = matplotlib.get_backend()", defines=["backend"]))
        assert result.namespace_values["backend"] == INLINE_BACKEND
        assert len(figures(result.cells[0])) == 1
    assert "MPLBACKEND" not in os.environ  # set for the step only, as ipykernel sets it for its process


def test_open_figures_do_not_reach_the_next_step(matplotlib):
    ok(run("import matplotlib.pyplot as plt\nplt.ioff()\nfig = plt.figure()\nplt.plot([5, 6])\n"
           "plt.rcParams['lines.linewidth'] = 9"))
    later = ok(run("import matplotlib.pyplot as plt\nopen_before = plt.get_fignums()\n"
                   "width = plt.rcParams['lines.linewidth']", "plt.plot([1])", "plt.ioff()\nplt.ion()",
                   defines=["open_before", "width"]))
    assert later.namespace_values["open_before"] == []
    assert later.namespace_values["width"] != 9  # the step's rcParams were put back
    assert len(figures(later.cells[1])) == 1  # interactive again: plt.ioff() stayed in its step
    import matplotlib.pyplot as plt

    assert plt.get_fignums() == []  # closed at the end of the step


def test_a_backend_the_user_chose_is_kept(matplotlib, monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "agg")
    result = ok(run(PLOT + "\nimport matplotlib\nbackend = matplotlib.get_backend()", defines=["backend"]))
    assert result.namespace_values["backend"] == "agg" and figures(result.cells[0]) == []
    monkeypatch.delenv("MPLBACKEND")
    chosen = ok(run("import matplotlib\nmatplotlib.use('agg')", PLOT))
    assert figures(chosen.cells[1]) == []  # matplotlib.use in the step: no inline figures, as in a kernel
    again = ok(run("import matplotlib\n" + PLOT + "\nbackend = matplotlib.get_backend()", defines=["backend"]))
    assert again.namespace_values["backend"] == INLINE_BACKEND and len(figures(again.cells[0])) == 1


FRESH_PROCESS = """
import json, os, sys
from nbscale.compiler.ir import Prelude, Step
from nbscale.kernels.executor import execute_step

step = Step(name="s", cells=[1, 2], source=[sys.argv[2], "plt.plot([4])"], outputs=[], defines=[])
results = [execute_step(step, Prelude(), {}, {}, cwd=sys.argv[1]) for _ in range(2)]
print(json.dumps({"status": [r.status for r in results], "env": results[0].dependencies["env"],
                  "figures": [[len([o for o in c["outputs"] if "image/png" in o.get("data", {})]) for c in r.cells]
                              for r in results],
                  "MPLBACKEND": os.environ.get("MPLBACKEND")}))
"""


def test_a_fresh_process_shows_the_figures_of_its_first_and_later_steps(matplotlib, tmp_path):
    """A new worker: the step imports matplotlib, which reads the MPLBACKEND the step was given."""
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    proc = subprocess.run([sys.executable, "-c", FRESH_PROCESS, str(tmp_path), PLOT], capture_output=True,
                          text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.splitlines()[-1])
    assert report["status"] == ["succeeded", "succeeded"]
    assert report["figures"] == [[1, 1], [1, 1]]
    assert "MPLBACKEND" not in report["env"] and report["MPLBACKEND"] is None  # not a dependency, not left


WIDE = "import pandas as pd\ndf = pd.DataFrame({f'column_{i}': [i * 1000.5] for i in range(14)})\nprint(df)\ndf"


def test_pandas_prints_wide_frames_as_in_a_kernel():
    result = ok(run(WIDE + "\nmax_columns = pd.get_option('display.max_columns')\n"
                    "pd.reset_option('display.max_columns')\nreset = pd.get_option('display.max_columns')",
                    "from pandas.io.formats.console import in_ipython_frontend\nfrontend = in_ipython_frontend()",
                    defines=["max_columns", "reset", "frontend"]))
    values = result.namespace_values
    assert values == {"max_columns": KERNEL_MAX_COLUMNS, "reset": KERNEL_MAX_COLUMNS, "frontend": True}
    printed = result.cells[0]["outputs"][0]["text"]
    assert "..." not in printed and "\\" in printed  # wrapped over lines, every column shown
