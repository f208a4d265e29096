"""The `papermill` engine of `nbscale run`: every step a notebook executed by papermill in a real
ipykernel — in threads of this process, or as Dask tasks on workers — and the same engine
inside `papermill --engine nbscale`."""

from __future__ import annotations

import importlib
import json
import re
import subprocess
from datetime import datetime
from pathlib import Path

import dask
import nbformat
import numpy as np
import pandas as pd
import papermill
import pytest

import nbscale
from nbscale.kernels.runner import default_run_store
from nbscale.kernels.store import ArtifactStore

KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def write_nb(folder, cells, name="nb"):
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": KERNELSPEC})
    for source, tags in cells:
        nb.cells.append(nbformat.v4.new_code_cell(source, metadata={"tags": list(tags)}))
    path = Path(folder) / f"{name}.ipynb"
    nbformat.write(nb, str(path))
    return path


def events(path, run_id, kind):
    store = default_run_store(path)
    return [e for e in store.events_since(run_id) if e["kind"] == kind]


PIPELINE = [
    ("import numpy as np\nimport pandas as pd", ["imports"]),
    ("def scale(v):\n    return v * FACTOR", ["functions"]),
    ("FACTOR = 2\nlabel = 'run'\nitems = [1]", ["parameters"]),
    ("df = pd.DataFrame({'x': np.arange(5.0)})\narr = np.ones(3)\nOFFSET = 100\n"
     "def shift(v):\n    return v + OFFSET\ndata = [df]\nprint('loaded', len(df))", ["step:load"]),
    ("df['y'] = scale(df['x'])\nsame = data[0] is df\ntotal = float(df['y'].sum()) + shift(0) + sum(items)\n"
     "kernel = type(get_ipython()).__name__\nprint(label, total)\n"
     "from IPython.display import Markdown, display\ndisplay(Markdown('**done**'))", ["step:use"]),
    ("total", ["metrics"]),
]


def test_nbscale_run_papermill_engine_keeps_step_notebooks_and_values(tmp_path):
    path = write_nb(tmp_path, PIPELINE)
    proc = subprocess.run(["nbscale", "run", path.name, "--engine", "papermill", "-p", "label=hello",
                           "-p", "items=[2, 3]", "--output", "json"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert "running over TCP" not in proc.stderr  # the kernels' start-up warning is kept out
    report = json.loads(proc.stdout)
    assert report["status"] == "succeeded" and report["metrics"] == {"total": 125.0}
    run_id = report["run_id"]

    # The same pipeline in-process (local engine): the kernel run hands on the same values.
    local = nbscale.run(path, {"label": "hello", "items": "[2, 3]"}, engine="local", use_cache=False,
                        store_url=str(tmp_path / "local-store"))
    store = default_run_store(path)
    ours = {s["step"]: s["hash"] for s in store.get_run(run_id)["steps"]}
    # keys chain on the values handed on: a step whose values differ by engine (`kernel`) keys its
    # readers differently, the first step's key is its static hash on both
    assert ours.keys() == local.hashes.keys() and ours["load"] == local.hashes["load"]
    artifacts = ArtifactStore(str(tmp_path / ".nbscale" / "artifacts"))
    kernel_values, local_values = artifacts.get(ours["use"]), local.load("use")
    pd.testing.assert_frame_equal(kernel_values["df"], local_values["df"])
    assert kernel_values["total"] == local_values["total"] == 125.0
    assert kernel_values["same"] is True  # df and data were handed on in one pass: still shared
    assert kernel_values["kernel"] == "ZMQInteractiveShell"  # a real Jupyter kernel
    np.testing.assert_array_equal(artifacts.get(ours["load"])["arr"], np.ones(3))

    folder = tmp_path / ".nbscale" / "runs" / run_id
    assert sorted(p.name for p in folder.iterdir()) == ["load.ipynb", "metrics.ipynb", "use.ipynb"]
    linked = {e["step"]: e["payload"]["path"] for e in events(path, run_id, "step_notebook")}
    assert linked == {name: str(folder / f"{name}.ipynb") for name in ("load", "use", "metrics")}
    use = nbformat.read(folder / "use.ipynb", as_version=4)
    nbformat.validate(use)
    roles = [c.metadata.nbscale["role"] for c in use.cells]
    assert roles == ["prelude", "prelude", "load", "step", "save"]
    assert [c.metadata.nbscale.get("cell") for c in use.cells] == [0, 1, None, 4, None]
    step_cell = use.cells[3]
    assert step_cell.outputs[0]["text"] == "hello 125.0\n"
    assert step_cell.outputs[1]["data"]["text/markdown"] == "**done**"
    assert "hello" not in use.cells[2].source  # parameter values travel as data, not as code

    again = nbscale.run(path, {"label": "hello", "items": "[2, 3]"}, engine="papermill")
    assert {s["name"]: s["status"] for s in again.steps} == {"load": "cached", "use": "cached",
                                                            "metrics": "cached"}
    assert again.metrics == {"total": 125.0}
    assert not (tmp_path / ".nbscale" / "runs" / again.run_id).exists()  # nothing ran, nothing kept


def test_failures_map_to_notebook_cell_and_line_like_the_local_engine(tmp_path):
    path = write_nb(tmp_path, [
        ("def ratio(a, b):\n    c = a\n    return c / b", ["functions"]),
        ("x = 1\nzero = 0", ["step:prep"]),
        ("print('before')\ny = ratio(x, zero)", ["step:divide"]),
        ("gen = (i for i in range(3))", ["step:make"]),
        ("print(y)", ["step:after"]),
        ("print(list(gen))", ["step:consume"]),
    ])
    kernel = nbscale.run(path, engine="papermill")
    local = nbscale.run(path, engine="local", use_cache=False, store_url=str(tmp_path / "local"))
    assert kernel.status == local.status == "failed"
    statuses = {s["name"]: s["status"] for s in kernel.steps}
    assert statuses == {s["name"]: s["status"] for s in local.steps} == {
        "prep": "succeeded", "divide": "failed", "make": "failed", "after": "upstream_failed",
        "consume": "upstream_failed"}
    k_err, l_err = kernel.step("divide")["error"], local.step("divide")["error"]
    assert (k_err["ename"], k_err["cell"], k_err["line"], k_err["running_cell"]) == \
        (l_err["ename"], l_err["cell"], l_err["line"], l_err["running_cell"]) == ("ZeroDivisionError", 0, 3, 2)
    assert [(f["cell"], f["line"]) for f in k_err["frames"]] == [(2, 2), (0, 3)]
    marshal = kernel.step("make")["error"]
    assert marshal["ename"] == "MarshalError" and "'gen'" in marshal["evalue"] and "generator" in marshal["evalue"]
    kept = nbformat.read(tmp_path / ".nbscale" / "runs" / kernel.run_id / "divide.ipynb", as_version=4)
    failed = next(c for c in kept.cells if c.metadata.get("nbscale", {}).get("cell") == 2)
    assert [o["output_type"] for o in failed.outputs] == ["stream", "error"]


def test_a_kernel_that_dies_of_a_crash_or_os_exit_says_at_which_line(tmp_path):
    # it said "DeadKernelError: Kernel died", and no more
    path = write_nb(tmp_path, [("import ctypes, os", ["imports"]),
                               ("x = 1\nctypes.string_at(0)", ["step:crashes"]),
                               ("y = 2\n\nos._exit(3)", ["step:exits"])])
    result = nbscale.run(path, engine="papermill")
    crashed, exited = result.step("crashes")["error"], result.step("exits")["error"]
    assert (crashed["ename"], crashed["running_cell"]) == (exited["ename"], exited["running_cell"] - 1) == \
        ("DeadKernelError", 1)
    assert re.match(r"Kernel died: Segmentation fault at line 2 of the cell it ran \(in string_at, \S+\.py:\d+\)",
                    crashed["evalue"]), crashed
    assert exited["evalue"].startswith("Kernel died: os._exit(3) called by the step's code at line 3 of the cell"), \
        exited


@pytest.mark.parametrize("first, timeout", [("import os\nos._exit(3)", None), ("import time\ntime.sleep(30)", 2)],
                         ids=["kernel-dies", "execution-timeout"])
def test_cells_a_dead_or_timed_out_kernel_never_ran_stay_pending(tmp_path, first, timeout):
    """papermill marks the cells it never started completed as it ends: they were written so, with a count."""
    path = write_nb(tmp_path, [(first, ["step:a"]), ("print('second cell ran')", [])])
    with pytest.raises(papermill.PapermillExecutionError):
        papermill.execute_notebook(str(path), str(tmp_path / "out.ipynb"), engine_name="nbscale",
                                   nbscale_engine="papermill", execution_timeout=timeout, progress_bar=False)
    cells = [c for c in nbformat.read(tmp_path / "out.ipynb", as_version=4).cells
             if "papermill-error-cell-tag" not in c.metadata.get("tags", [])]
    assert [(c.metadata.papermill["status"], c.execution_count) for c in cells] == [("failed", 1), ("pending", None)]
    assert cells[1].outputs == [] and cells[1].metadata.papermill["start_time"] is None


def test_a_timed_out_step_says_so_without_the_kernels_own_noise(tmp_path):
    """The kernel shut down at the timeout logs ipykernel's ZMQError traceback: it was added to the
    step's error as "kernel stderr", shown by `nbscale run` and kept for `nbscale show`."""
    path = write_nb(tmp_path, [("import time\ntime.sleep(30)\nx = 1", ["step:sleeps", "timeout:2s"])])
    error = nbscale.run(path, engine="papermill").step("sleeps")["error"]
    assert error["ename"] == "StepTimeout" and "timeout of 2 s" in error["evalue"]
    assert "kernel stderr" not in error["evalue"] and "ZMQError" not in error["traceback"]


def test_a_timeout_is_the_whole_steps_not_each_cells(tmp_path):
    # papermill's execution timeout is per cell: three cells of 0.8 s under `timeout:1s` succeeded
    path = write_nb(tmp_path, [("import time\ntime.sleep(0.8)\na = 1", ["step:slow", "timeout:1s"]),
                               ("time.sleep(0.8)\nb = 2", []), ("time.sleep(0.8)\nc = 3", [])])
    error = nbscale.run(path, engine="papermill").step("slow")["error"]
    assert error["ename"] == "StepTimeout" and "timeout of 1 s" in error["evalue"]
    assert (error["cell"], error["line"]) == (1, 1)  # (the second cell, where the interrupt landed)


@pytest.mark.parametrize("ending", ["    except BaseException:\n        pass",  # for ever: the kernel is killed
                                    "    except BaseException:\n        break"])  # ends: no later cell runs
def test_a_step_that_catches_its_timeout_fails_and_runs_no_later_cell(tmp_path, ending):
    import time

    code = f"import time\nwhile True:\n    try:\n        time.sleep(0.05)\n{ending}\nn = 1"
    path = write_nb(tmp_path, [(code, ["step:stubborn", "timeout:1s"]), ("open('later.txt', 'w').close()", [])])
    start = time.monotonic()
    result = nbscale.run(path, engine="papermill")
    assert time.monotonic() - start < 30
    error = result.step("stubborn")["error"]
    assert result.status == "failed" and error["ename"] == "StepTimeout" and "timeout of 1 s" in error["evalue"]
    assert not (tmp_path / "later.txt").exists()
    assert not ArtifactStore(result.store_url).has(result.hashes["stubborn"], ["n"])


@pytest.fixture(scope="module")
def scheduler():
    from distributed import LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0",
                           host="127.0.0.1")
    yield cluster
    cluster.close()


def test_step_notebooks_run_as_dask_tasks_in_parallel(tmp_path, scheduler):
    path = write_nb(tmp_path, [
        ("import time", ["imports"]),
        ("time.sleep(1.5)\nleft = 1", ["step:left"]),
        ("time.sleep(1.5)\nright = 2", ["step:right"]),
        ("both = left + right", ["step:join"]),
    ])
    with dask.config.set({"scheduler-address": scheduler.scheduler_address}):
        result = nbscale.run(path, engine="papermill")
    assert result.ok and result.load("join")["both"] == 3
    workers = {e["step"]: e["payload"]["worker"] for e in events(path, result.run_id, "step_started")}
    assert set(workers) == {"left", "right", "join"}
    assert set(workers.values()) <= set(scheduler.scheduler_info["workers"])
    assert workers["left"] != workers["right"]  # siblings spread over the two workers
    steps = {s["step"]: s for s in default_run_store(path).get_run(result.run_id)["steps"]}
    left, right = steps["left"], steps["right"]
    stamp = datetime.fromisoformat
    assert max(stamp(left["started"]), stamp(right["started"])) < min(stamp(left["finished"]),
                                                                      stamp(right["finished"]))
    folder = tmp_path / ".nbscale" / "runs" / result.run_id  # written by the client, not the workers
    assert sorted(p.name for p in folder.iterdir()) == ["join.ipynb", "left.ipynb", "right.ipynb"]


def test_papermill_engine_inside_papermill_engine_nbscale(tmp_path):
    path = write_nb(tmp_path, [
        ("import sys", ["imports"]),
        ("n = 2", ["parameters"]),
        ("values = list(range(n))\nprint(values)\nvalues", ["step:a"]),
        ("print('err', file=sys.stderr)\nsum(values)", ["step:b"]),
    ])
    plain = papermill.execute_notebook(str(path), str(tmp_path / "plain.ipynb"), parameters={"n": 4},
                                       kernel_name="python3", progress_bar=False)
    ours = papermill.execute_notebook(str(path), str(tmp_path / "ours.ipynb"), parameters={"n": 4},
                                      engine_name="nbscale", nbscale_engine="papermill", progress_bar=False)
    nbformat.validate(ours)
    for a, b in zip(plain.cells, ours.cells):
        strip = [{k: v for k, v in o.items() if k != "execution_count"} for o in a.outputs]
        assert strip == [{k: v for k, v in o.items() if k != "execution_count"} for o in b.outputs]
        assert a.execution_count == b.execution_count
    assert ours.cells[3].outputs[0]["text"] == "[0, 1, 2, 3]\n"
    run_id = ours.metadata.nbscale["run_id"]
    assert ours.metadata.nbscale["engine"] == "papermill"
    assert sorted(p.name for p in (tmp_path / ".nbscale" / "runs" / run_id).iterdir()) == ["a.ipynb", "b.ipynb"]


def test_a_step_run_in_a_kernel_records_what_it_reads(tmp_path):
    """The papermill engine records a step's dependencies inside the kernel: a changed file re-runs it."""
    (tmp_path / "data.csv").write_text("3")
    path = write_nb(tmp_path, [("n = int(open('data.csv').read())", ["step:read"])])
    first = nbscale.run(path, engine="papermill")
    assert first.ok and first.load("read")["n"] == 3
    assert nbscale.run(path, engine="papermill").steps[0]["status"] == "cached"
    (tmp_path / "data.csv").write_text("30")
    changed = nbscale.run(path, engine="papermill")
    assert changed.load("read")["n"] == 30 and any("data.csv" in text for text in changed.steps[0]["stale"])



def test_a_step_run_in_a_kernel_records_files_named_by_texts_it_is_given_or_makes(tmp_path):
    """`cat` opens them unseen, by names built as the steps run (`mentions.value_names`, `made_names`)."""
    (tmp_path / "a.txt").write_text("1")
    (tmp_path / "b.txt").write_text("2")
    path = write_nb(tmp_path, [("NAME = 'a' + '.txt'", ["step:config"]),
                               ("import subprocess\nother = 'b' + '.txt'\n"
                                "v = subprocess.run(['cat', NAME, other], capture_output=True, text=True).stdout",
                                ["step:read"])])
    assert nbscale.run(path, engine="papermill").load("read")["v"] == "12"
    assert [s["status"] for s in nbscale.run(path, engine="papermill").steps] == ["cached", "cached"]
    for name, text in (("a.txt", "3"), ("b.txt", "4")):
        (tmp_path / name).write_text(text)
        changed = nbscale.run(path, engine="papermill")
        assert changed.steps[1]["status"] == "succeeded" and any(name in t for t in changed.steps[1]["stale"])
    assert changed.load("read")["v"] == "34"


def test_a_final_value_that_pickles_and_cannot_be_made_again_is_left_out_not_the_steps_failure(tmp_path):
    # kept values are best effort, in a kernel as in process: a ctypes buffer pickles, and does not load
    path = write_nb(tmp_path, [("import ctypes\nbuf = ctypes.create_string_buffer(8)\nn = 3", ["step:make"]),
                               ("m = n * 2", ["step:use"])])
    result = nbscale.run(path, engine="papermill")
    assert result.ok and result.load("use")["m"] == 6, result.steps


SHOWN = [
    ("import matplotlib.pyplot as plt\nimport pandas as pd", ["imports"]),
    ("df = pd.DataFrame({f'column_{i}': [i * 1000.5, i] for i in range(14)})\nprint(df)\ndf", ["step:wide"]),
    ("plt.plot([3, 1, 2])\nprint('plotted')", ["step:plot"]),
    ("fig, ax = plt.subplots()\nax.bar([1, 2], [3, 4])\nfig.suptitle('two')", ["step:bars"]),
]


def plain_outputs(cell) -> list[dict]:
    return [{k: v for k, v in o.items() if k != "execution_count"} for o in cell.outputs]


@pytest.mark.parametrize("nbscale_engine", ["local", "papermill"])
def test_prints_and_figures_equal_a_plain_papermill_run_cell_by_cell(tmp_path, nbscale_engine):
    importlib.import_module("matplotlib")  # a test dependency: an ImportError must fail, not skip
    path = write_nb(tmp_path, SHOWN)
    plain = papermill.execute_notebook(str(path), str(tmp_path / "plain.ipynb"), kernel_name="python3",
                                       progress_bar=False)
    ours = papermill.execute_notebook(str(path), str(tmp_path / "ours.ipynb"), engine_name="nbscale",
                                      nbscale_engine=nbscale_engine, progress_bar=False)
    printed = plain.cells[1].outputs[0]["text"]
    assert "..." not in printed and "column_13" in printed  # wrapped as in a kernel, not cut to a terminal
    for index, (a, b) in enumerate(zip(plain.cells, ours.cells)):
        assert plain_outputs(a) == plain_outputs(b), f"cell {index}"
    kinds = [[(o["output_type"], sorted(o.get("data", {}))) for o in c.outputs] for c in ours.cells[2:]]
    assert kinds == [[("stream", []), ("display_data", ["image/png", "text/plain"])],
                     [("execute_result", ["text/plain"]), ("display_data", ["image/png", "text/plain"])]]


def test_a_step_passing_the_kernels_whole_environment_to_a_process_is_cached(tmp_path):
    """ipykernel and its launcher set CLICOLOR, PAGER, JPY_PARENT_PID...: no dependency of the step's."""
    path = write_nb(tmp_path, [("import os, subprocess\n"
                                "n = subprocess.run(['true'], env=dict(os.environ, X='0')).returncode", ["step:s"])])
    assert nbscale.run(path, engine="papermill").ok
    again = nbscale.run(path, engine="papermill")
    assert again.steps[0]["status"] == "cached", again.steps[0].get("stale")


def test_a_step_that_imports_matplotlib_in_a_kernel_is_cached(tmp_path):
    """ipykernel sets MPLBACKEND for its figures: matplotlib reading it is no dependency of the step."""
    importlib.import_module("matplotlib")  # a test dependency: an ImportError must fail, not skip
    path = write_nb(tmp_path, [("import matplotlib.pyplot as plt\nplt.plot([1])\nn = 1", ["step:plot"])])
    assert nbscale.run(path, engine="papermill").ok
    again = nbscale.run(path, engine="papermill")
    assert again.steps[0]["status"] == "cached", again.steps[0].get("stale")


def test_a_clean_exit_in_the_imports_cell_ends_each_step_as_in_process(tmp_path):
    """In a kernel the exit comes before the inputs are loaded: the step still succeeds, unrun."""
    path = write_nb(tmp_path, [("import sys\nsys.exit(0)", ["imports"]), ("print('not reached')", ["step:a"])])
    kernel = nbscale.run(path, engine="papermill")
    local = nbscale.run(path, engine="local", use_cache=False, store_url=str(tmp_path / "local"))
    for result in (kernel, local):
        step = result.step("a")
        assert (result.status, step["status"], step.get("error")) == ("succeeded", "succeeded", None)


def test_ctrl_c_stops_the_steps_kernel_and_its_code(tmp_path):
    # the run said "cancelled" only when the step had ended, and the step's code ran on to its end
    import signal
    import sys
    import time

    import psutil

    marker = tmp_path / "marker.txt"
    slow = f"import time\nfor i in range(15):\n    time.sleep(1)\nopen({str(marker)!r}, 'w')\nr = 1"
    path = write_nb(tmp_path, [(slow, ["step:slow"]), ("s = r", ["step:after"])])
    run = subprocess.Popen([sys.executable, "-m", "nbscale", "run", str(path), "--engine", "papermill", "--no-cache"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert "running 2 steps" in run.stderr.readline()
    assert "▶ slow" in run.stderr.readline()
    time.sleep(3)  # the kernel runs the loop
    kernels = [p for p in psutil.Process(run.pid).children(recursive=True) if "ipykernel" in " ".join(p.cmdline())]
    asked = time.monotonic()
    run.send_signal(signal.SIGINT)
    run.communicate(timeout=60)
    assert run.returncode == 130 and time.monotonic() - asked < 8
    assert kernels and not [p for p in kernels if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    time.sleep(13)  # past the moment the loop would have ended
    assert not marker.exists()


@pytest.mark.parametrize("to_thread", [False, True], ids=["to-the-process", "to-the-starting-thread"])
def test_ctrl_c_while_the_steps_kernel_starts_stops_it_and_leaves_no_step_running(tmp_path, monkeypatch, to_thread):
    """A cancel that came while a step's kernel was starting stopped nothing: the kernel ran the step
    after the run was recorded cancelled (in a process that lives on after its run, as the Jupyter
    server's run process and a kernel do). Linux may give the Ctrl-C to the thread starting the
    kernel: the waiting main thread saw it only as the step ended, after it ran (a failure under load)."""
    import os
    import signal
    import threading
    import time

    from nbscale.kernels.engines import papermill as engine
    from nbscale.kernels.runner import RunOptions, run_notebook

    real = engine._kernel_manager_class

    def interrupted_as_it_starts(log_path, on_kernel=None):
        manager = real(log_path, on_kernel)

        class Interrupted(manager):
            async def start_kernel(self, **kw):
                if to_thread:  # (the handler still runs in the main thread, as Python next runs code there)
                    signal.pthread_kill(threading.get_ident(), signal.SIGINT)
                else:
                    os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C, handled by the main thread meanwhile
                time.sleep(1)
                return await super().start_kernel(**kw)

        return Interrupted

    monkeypatch.setattr(engine, "_kernel_manager_class", interrupted_as_it_starts)
    marker = tmp_path / "marker.txt"
    path = write_nb(tmp_path, [(f"open({str(marker)!r}, 'w').write('ran')\nr = 1", ["step:slow"])])
    with pytest.raises(KeyboardInterrupt):
        run_notebook(path, options=RunOptions(engine="papermill", use_cache=False))
    time.sleep(8)  # as long as the kernel takes to start and run the cell
    assert not marker.exists()
    store = default_run_store(path)
    run = store.get_run(store.list_runs()[0]["id"])
    assert (run["status"], [s["status"] for s in run["steps"]]) == ("cancelled", ["cancelled"])
