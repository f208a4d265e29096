"""Tests for nbscale.kernels.kernel_libraries: a step's matplotlib figures and pandas output are a
kernel's. Real matplotlib, real pandas, real IPython.

The corpus test (at the end) runs tutorial notebooks (tests/kernels/corpus/) split one step per cell
on the local and dask engines, and compares each cell's outputs with a plain papermill run's (a real
ipykernel)."""

from __future__ import annotations

import base64
import difflib
import importlib
import itertools
import json
import os
import pprint
import re
import subprocess
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path

import nbformat
import pandas  # noqa: F401 - imported outside any shell, as a worker unpickling a DataFrame does
import papermill
import pytest
from test_executor import ok, run

from nbscale.kernels.contract import STEP_FINISHED
from nbscale.kernels.kernel_libraries import INLINE_BACKEND, KERNEL_MAX_COLUMNS
from nbscale.kernels.runner import RunOptions, run_notebook

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



def test_a_steps_inline_backend_config_ends_with_the_step(matplotlib):
    """`%config InlineBackend.figure_formats = ...` changes the step's figures (as in a kernel), and
    the next step on the process draws PNG again (a later step of its notebook gets it by replay)."""
    svg = ok(run("%config InlineBackend.figure_formats = ['svg']\n" + PLOT))
    shown = [o for o in svg.cells[0]["outputs"] if o["output_type"] == "display_data"]
    assert len(shown) == 1 and "image/svg+xml" in shown[0]["data"] and "image/png" not in shown[0]["data"]
    after = ok(run(PLOT))
    assert len(figures(after.cells[0])) == 1
    assert not [o for o in after.cells[0]["outputs"] if "image/svg+xml" in o.get("data", {})]


def test_tqdm_auto_prints_a_text_progress_bar_on_stderr():
    """A step has no widget front end: tqdm.auto (papermill brings tqdm) picks its text form, and the
    bar is kept as stderr of the cell (docs/running.md)."""
    result = ok(run("from tqdm.auto import tqdm\nfor _ in tqdm(range(3), desc='epochs'):\n    pass"))
    streams = [o for o in result.cells[0]["outputs"] if o["output_type"] == "stream"]
    assert [o["name"] for o in streams] == ["stderr"] and "epochs: 100%" in streams[0]["text"]
    assert not [o for o in result.cells[0]["outputs"] if o["output_type"] == "display_data"]

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



SETTINGS_PROCESS = """
import json, sys
from nbscale.compiler.ir import Prelude, Step
from nbscale.kernels.executor import execute_step

IMPORTS = "import numpy as np\\nimport pandas as pd\\nimport sklearn\\n"
SET = ("np.set_printoptions(precision=2, threshold=5)\\nnp.seterr(divide='ignore')\\n"
       "pd.set_option('display.max_rows', 3)\\npd.set_option('display.precision', 1)\\n"
       "sklearn.set_config(display='text')\\n")
READ = ("seen = {'array': repr(np.arange(10) / 3), 'divide': np.geterr()['divide'],"
        " 'rows': pd.get_option('display.max_rows'), 'precision': pd.get_option('display.precision'),"
        " 'columns': pd.get_option('display.max_columns'), 'sklearn': sklearn.get_config()['display']}")

def step(source):
    result = execute_step(Step(name="s", cells=[1], source=[IMPORTS + source], outputs=[], defines=["seen"]),
                          Prelude(), {}, {}, cwd=sys.argv[1])
    assert result.status == "succeeded", result.error
    return result.namespace_values["seen"]

# the first step imports the libraries; the third finds them imported
print(json.dumps([step(SET + READ), step(READ), step(SET + READ), step(READ)]))
"""


def test_settings_a_step_makes_for_the_process_end_with_the_step(tmp_path):
    """A worker runs steps of many notebooks in any order: what one step sets for the whole process
    reaches the later steps of its notebook by replay, never the next step on the worker."""
    proc = subprocess.run([sys.executable, "-c", SETTINGS_PROCESS, str(tmp_path)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    set_in_step, after_import, set_again, after_saved = json.loads(proc.stdout.splitlines()[-1])
    assert set_in_step == set_again
    assert set_in_step.pop("array").startswith("array([0.  , 0.33, 0.67, ..., 2.33, 2.67, 3.  ]")  # cut, 2 digits
    assert set_in_step == {"divide": "ignore", "rows": 3, "precision": 1, "columns": KERNEL_MAX_COLUMNS,
                           "sklearn": "text"}
    defaults = {"array": "array([0.        , 0.33333333, 0.66666667, 1.        , 1.33333333,\n"
                         "       1.66666667, 2.        , 2.33333333, 2.66666667, 3.        ])",
                "divide": "warn", "rows": 60, "precision": 6, "columns": KERNEL_MAX_COLUMNS, "sklearn": "diagram"}
    assert after_import == defaults  # the libraries' defaults: the first step imported them
    assert after_saved == defaults  # as the third step found them

def test_a_client_a_step_leaves_open_does_not_become_every_later_steps_scheduler(tmp_path):
    # `Client()` sets `scheduler: dask.distributed` process-wide; left behind, the next step's (or
    # another run's) compute asked a closed client: "Requested dask.distributed scheduler but no Client active"
    import dask

    nb = tmp_path / "nb.ipynb"
    cells = [("from distributed import Client\nimport dask.array as da", ["imports"]),
             ("client = Client(processes=False, n_workers=1, dashboard_address=None)\n"
              "x = float(da.ones(10, chunks=5).sum().compute())", ["step:a"]),
             ("y = float(da.ones(10, chunks=5).sum().compute())", ["step:b"])]
    notebook = nbformat.v4.new_notebook()
    for source, tags in cells:
        notebook.cells.append(nbformat.v4.new_code_cell(source, metadata={"tags": tags}))
    nbformat.write(notebook, str(nb))
    before = dask.config.get("scheduler", None)
    result = run_notebook(nb, options=RunOptions(engine="local", use_cache=False))
    assert result.ok, [s.get("error") for s in result.steps]
    assert dask.config.get("scheduler", None) == before


# --- a corpus of tutorial notebooks, one step per cell, against a plain papermill run ------------

CORPUS = sorted((Path(__file__).parent / "corpus").glob("*.ipynb"))


def one_step_per_cell(source: Path, folder: Path) -> Path:
    """The notebook split as a user would tag it: its first code cell (its imports) `imports`,
    every other code cell a step of its own, `step:cN` (N: the cell's index in the notebook)."""
    nb = nbformat.read(source, as_version=4)
    code = [index for index, cell in enumerate(nb.cells) if cell.cell_type == "code"]
    for n, index in enumerate(code):
        nb.cells[index].metadata["tags"] = ["imports"] if n == 0 else [f"step:c{index}"]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / source.name
    nbformat.write(nb, str(path))
    return path


def joined(text) -> str:
    return "".join(text) if isinstance(text, list) else text


# What must differ between two runs, and nothing else: addresses in default reprs, %time's timings,
# the file name that code of a cell has (ipykernel: /tmp/ipykernel_PID/HASH.py; a step:
# "<cell N [HASH]>"), where a warning raised by the cell's own code says where it was raised, and
# the DOM ids of scikit-learn's HTML reprs (numbered by a counter of the process: the kernel's, or
# the worker's, which has shown other steps' estimators).
NORMALISE = [
    (re.compile(r"\bsk-(container|estimator)-id-\d+\b"), r"sk-\1-id-N"),
    (re.compile(r"\b0x[0-9a-f]{6,16}\b"), "0x..."),
    (re.compile(r"^(CPU times|Wall time):.*$", re.M), r"\1: ..."),
    (re.compile(r"^\S*ipykernel_\d+[/\\]\d+\.py:", re.M), "<cell>:"),
    (re.compile(r"^<cell \d+(?: \+\d+)? \[[0-9a-f]+\]>:", re.M), "<cell>:"),
]


def normalised(text: str) -> str:
    for pattern, replacement in NORMALISE:
        text = pattern.sub(replacement, text)
    return text


def png_size(data) -> tuple[int, int]:
    png = base64.b64decode(joined(data))
    assert png.startswith(b"\x89PNG"), png[:8]
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")  # IHDR width, height


def comparable(outputs: list[dict]) -> list[tuple]:
    """A cell's outputs as a reader sees them: what it printed between two rich outputs as text per
    stream, results and displays by their text forms, images by their pixel size.

    A kernel sends what is printed on a 0.2 s timer, and at the end of a cell stdout first, then
    stderr: a warning printed before a line of stdout may come after it, and one print may come in
    several messages. So the text of consecutive stream outputs is compared per stream, not in the
    order the two streams interleave (a rich output flushes both: order across it is compared)."""
    items: list = []
    for output in outputs:
        kind = output["output_type"]
        if kind == "stream":
            if not items or items[-1][0] != "streams":
                items.append(("streams", {}))
            streams = items[-1][1]
            streams[output["name"]] = streams.get(output["name"], "") + joined(output["text"])
        elif kind in ("display_data", "execute_result"):
            data = output["data"]
            texts = {mime: normalised(joined(value)) for mime, value in data.items() if mime.startswith("text/")}
            images = {mime: png_size(value) for mime, value in data.items() if mime == "image/png"}
            items.append((kind, texts, images, sorted(data)))
        else:
            items.append((kind, output.get("ename"), output.get("evalue")))
    for item in items:
        if item[0] == "streams":
            item[1].update((name, normalised(text)) for name, text in item[1].items())
    return items


def difference(papermill_outputs: list, nbscale_outputs: list) -> str:
    """Where two cells' outputs differ, as a diff of their lines (outputs can be long: HTML reprs)."""
    lines = [pprint.pformat(outputs, width=120).splitlines() for outputs in (papermill_outputs, nbscale_outputs)]
    diff = difflib.unified_diff(*lines, "papermill", "nbscale", n=2, lineterm="")
    return "\n".join(itertools.islice(diff, 80))


def image_bytes(outputs: list[dict]) -> list[int]:
    return [len(base64.b64decode(joined(o["data"]["image/png"]))) for o in outputs if "image/png" in o.get("data", {})]


@pytest.fixture(scope="module")
def papermill_runs(tmp_path_factory):
    """Each corpus notebook run once through plain papermill: {name: {cell index: outputs}}."""
    runs = {}

    def outputs(source: Path) -> dict[int, list]:
        if source.name not in runs:
            folder = tmp_path_factory.mktemp("papermill")
            path = one_step_per_cell(source, folder)  # the same notebook: papermill ignores the tags
            done = papermill.execute_notebook(str(path), str(folder / "out.ipynb"), kernel_name="python3",
                                              progress_bar=False, cwd=str(folder))
            runs[source.name] = {i: c.outputs for i, c in enumerate(done.cells) if c.cell_type == "code"}
        return runs[source.name]

    return outputs


@contextmanager
def python_warning_filters():
    """The warning filters of a plain `python` process, as `nbscale run` has them (Python's default
    filters), in place of pytest's, which show every DeprecationWarning; embedded Dask workers
    inherit them."""
    with warnings.catch_warnings():
        warnings.resetwarnings()
        warnings.filterwarnings("default", category=DeprecationWarning, module="__main__")
        for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
            warnings.filterwarnings("ignore", category=category, append=True)
        yield


def nbscale_outputs(path: Path, engine: str) -> tuple[dict[int, list], dict[int, list], object]:
    """Run the split notebook as `nbscale run` does (dask: on an embedded cluster, whose workers
    each run many steps): ({cell index: outputs}, {prelude cell: its outputs in every step}, RunResult)."""
    summaries = {}

    def on_event(kind, step, payload):
        if kind == STEP_FINISHED and payload.get("summary"):
            summaries[step] = payload["summary"]

    with python_warning_filters():
        result = run_notebook(path, options=RunOptions(engine=engine, use_cache=False), on_event=on_event)
    assert result.ok, [(s["name"], s["error"]) for s in result.steps if s["error"]]
    cells, prelude = {}, {}
    for step, summary in summaries.items():
        for entry in summary["cells"]:
            if entry["cell"] != int(step[1:]):  # the imports cell, run before each step
                prelude.setdefault(entry["cell"], []).append(entry["outputs"])
            else:
                cells[entry["cell"]] = entry["outputs"]
    return cells, prelude, result


@pytest.mark.parametrize("engine", ["local", "dask"])
@pytest.mark.parametrize("source", CORPUS, ids=[p.stem for p in CORPUS])
def test_a_tutorial_split_one_step_per_cell_shows_what_papermill_shows(source, engine, papermill_runs, tmp_path):
    importlib.import_module("matplotlib")  # a test dependency: an ImportError must fail, not skip
    plain = papermill_runs(source)
    ours, prelude, result = nbscale_outputs(one_step_per_cell(source, tmp_path), engine)
    (imports, *steps) = sorted(plain)
    assert sorted(ours) == steps and list(prelude) == [imports]
    differences = [f"cell {i}:\n{difference(comparable(plain[i]), comparable(ours[i]))}"
                   for i in steps if comparable(ours[i]) != comparable(plain[i])]
    differences += [f"imports cell in a step: {comparable(shown)} != {comparable(plain[imports])}"
                    for shown in prelude[imports] if comparable(shown) != comparable(plain[imports])]
    assert not differences, f"{source.name} on {engine}:\n" + "\n".join(differences)
    for i in steps:  # the same figures, within a few percent of the same encoding
        for ours_size, plain_size in zip(image_bytes(ours[i]), image_bytes(plain[i])):
            assert abs(ours_size - plain_size) <= 0.05 * plain_size, (source.name, i, ours_size, plain_size)
    for i in steps:  # the step's log in the run keeps its figures as files (`nbscale show`)
        images = len(image_bytes(ours[i]))
        if images:
            assert Path(result.step(f"c{i}")["log"]).read_text().count("[image/png saved to ") == images


def test_the_corpus_shows_what_the_comparison_is_about(papermill_runs):
    """The corpus exercises what a step must reproduce: figures, warnings, results, displays, and
    settings that later cells depend on (a comparison of empty outputs could not fail)."""
    outputs = [o for source in CORPUS for cell in papermill_runs(source).values() for o in cell]
    texts = [joined(o.get("text", "")) for o in outputs]
    assert len(CORPUS) >= 4
    assert sum(1 for o in outputs if "image/png" in o.get("data", {})) >= 8
    assert {"display_data", "execute_result", "stream"} <= {o["output_type"] for o in outputs}
    assert any("ConvergenceWarning" in t for t in texts) and any("RuntimeWarning" in t for t in texts)
    assert any("precision    recall  f1-score" in t for t in texts)  # a classification report
    assert any("..." in joined(o.get("data", {}).get("text/plain", "")) for o in outputs)  # wide frames cut
