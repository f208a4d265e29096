"""`papermill --engine nbscale`: the real papermill CLI and Python API, compared with plain papermill.

Plain papermill runs each notebook top to bottom in a real ipykernel; the nbscale engine runs
it as a pipeline (on a 2-worker Dask LocalCluster shared by the module, reached through
NBSCALE_SCHEDULER / `scheduler=`; the `local` engine where Dask is not the point).
"""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
import sys
import time
from datetime import datetime

import nbformat
import papermill
import pytest
from papermill.exceptions import PapermillException, PapermillExecutionError

from nbscale.compiler.ir import Parameter
from nbscale.kernels import params
from nbscale.kernels.errors import ParameterError

KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


@pytest.fixture(scope="module")
def scheduler():
    from distributed import LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0",
                           host="127.0.0.1")
    yield cluster.scheduler_address
    cluster.close()


def write_nb(folder, cells, name="nb"):
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": KERNELSPEC})
    for cell in cells:
        if isinstance(cell, str) and cell.startswith("# "):
            nb.cells.append(nbformat.v4.new_markdown_cell(cell))
        else:
            source, tags = cell if isinstance(cell, tuple) else (cell, [])
            nb.cells.append(nbformat.v4.new_code_cell(source, metadata={"tags": list(tags)}))
    path = folder / f"{name}.ipynb"
    nbformat.write(nb, str(path))
    return path


def plain_papermill(path, out, parameters=None):
    return papermill.execute_notebook(str(path), str(out), parameters=parameters, kernel_name="python3",
                                      progress_bar=False)


def nbscale_api(path, out, parameters=None, **options):
    return papermill.execute_notebook(str(path), str(out), parameters=parameters, engine_name="nbscale",
                                      progress_bar=False, **options)


def outputs(cell):
    """A cell's outputs, ignoring execution counts: the text of each stream (a kernel flushes
    stdout and stderr separately, so their interleaving is timing) and the other outputs in
    order, errors reduced to name and value (tracebacks are formatted differently)."""
    streams, rich = {}, []
    for output in cell.get("outputs", []):
        output = json.loads(json.dumps(output))
        output.pop("execution_count", None)
        if output["output_type"] == "stream":
            streams[output["name"]] = streams.get(output["name"], "") + output["text"]
        elif output["output_type"] == "error":
            rich.append({"output_type": "error", "ename": output["ename"], "evalue": output["evalue"]})
        else:
            rich.append(output)
    return streams, rich


def compare(plain, ours, *, skipped=()):
    assert [c.cell_type for c in plain.cells] == [c.cell_type for c in ours.cells]
    for index, (a, b) in enumerate(zip(plain.cells, ours.cells)):
        if a.cell_type == "code" and index not in skipped:
            assert outputs(b) == outputs(a), f"cell {index}: {b.source!r}"


def stamp(text):
    return datetime.fromisoformat(text)


FIDELITY = [
    "# A pipeline that papermill runs",
    ("import sys\nimport pandas as pd\nfrom IPython.display import HTML, display", ["imports"]),
    ("alpha = 0.5\nname = 'x'\nitems = [1, 2]", ["parameters"]),
    ("print('a starts', alpha)\nxs = [alpha * i for i in items]\ndisplay(HTML('<b>a</b>'))\n"
     "print('to stderr', file=sys.stderr)\nprint('a ends')\nlen(xs)", ["step:a"]),
    "total = sum(xs)\ntotal",
    ("print('eda only')\ntotal * 2", ["skip"]),
    ("ys = {'n': name * 3}\nprint(ys)\nys", ["step:b"]),
    "# Combine",
    ("print(total, ys['n'])\nframe = pd.DataFrame({'x': xs})\nframe", ["step:c"]),
    ("total", ["metrics"]),
]


def test_cli_output_matches_plain_papermill_and_second_run_is_cached(tmp_path, scheduler):
    path = write_nb(tmp_path, FIDELITY)
    plain = plain_papermill(path, tmp_path / "plain.ipynb", {"alpha": 0.1})
    env = {**os.environ, "NBSCALE_SCHEDULER": scheduler}
    proc = subprocess.run([sys.executable, "-m", "papermill", "--engine", "nbscale", path.name, "out.ipynb",
                           "-p", "alpha", "0.1"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Executing" in proc.stderr and "100%" in proc.stderr  # papermill's progress bar
    ours = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    nbformat.validate(ours)
    # plain papermill inserted the injected cell after the parameters cell (index 3); skip is 6
    assert ours.cells[3].metadata.tags == ["injected-parameters"] and "alpha = 0.1" in ours.cells[3].source
    compare(plain, ours, skipped={6})
    skip = ours.cells[6]
    assert skip.metadata.papermill["status"] == "skipped" and skip.outputs == [] and skip.execution_count is None
    assert plain.cells[6].outputs  # plain papermill did run it
    for index, cell in enumerate(ours.cells):
        pm = cell.metadata.papermill
        if index == 6:
            continue
        assert pm["status"] == "completed" and pm["exception"] is False, (index, pm)
        if cell.cell_type == "code":
            assert stamp(pm["start_time"]) <= stamp(pm["end_time"]) and pm["duration"] >= 0
            assert cell.execution_count == plain.cells[index].execution_count
    assert ours.cells[4].metadata.nbscale == {"step": "a", "cached": False}
    meta = ours.metadata.papermill
    assert meta["parameters"] == {"alpha": 0.1} and meta["exception"] is None
    assert meta["input_path"] == "nb.ipynb" and meta["output_path"] == "out.ipynb"
    assert stamp(meta["start_time"]) < stamp(meta["end_time"]) and meta["duration"] > 0
    assert ours.metadata.nbscale["status"] == "succeeded"
    assert ours.metadata.nbscale["parameters"] == {"alpha": 0.1, "name": "x", "items": [1, 2]}
    assert ours.metadata.nbscale["metrics"] == {"total": pytest.approx(0.30000000000000004)}

    again = nbscale_api(path, tmp_path / "again.ipynb", {"alpha": 0.1}, scheduler=scheduler)
    assert {s["name"]: s["status"] for s in again.metadata.nbscale["steps"]} == {
        "a": "cached", "b": "cached", "c": "cached", "metrics": "cached"}
    compare(ours, again)
    assert again.cells[9].metadata.nbscale == {"step": "c", "cached": True}
    assert again.metadata.nbscale["metrics"] == ours.metadata.nbscale["metrics"]
    other = nbscale_api(path, tmp_path / "other.ipynb", {"alpha": 1}, scheduler=scheduler)
    assert other.cells[4].outputs[0]["text"].startswith("a starts 1.0")  # typed float: 1 → 1.0
    assert {s["name"]: s["status"] for s in other.metadata.nbscale["steps"]}["b"] == "cached"


FAILING = [
    ("import math", ["imports"]),
    ("def ratio(a, b):\n    return a / b", ["functions"]),
    ("d = 0", ["parameters"]),
    ("x = 10\nprint('prep')", ["step:prep"]),
    ("print('independent')", ["step:other"]),
    ("print('dividing')\nq = ratio(x, d)\nprint('never')", ["step:divide"]),
    "print(q)",
    ("print(q + 1)", ["step:after"]),
]


def test_error_points_at_the_failing_cell_as_plain_papermill_does(tmp_path, scheduler):
    path = write_nb(tmp_path, FAILING)
    with pytest.raises(PapermillExecutionError) as plain_err:
        plain_papermill(path, tmp_path / "plain.ipynb")
    with pytest.raises(PapermillExecutionError) as ours_err:
        nbscale_api(path, tmp_path / "ours.ipynb", scheduler=scheduler)
    a, b = plain_err.value, ours_err.value
    assert (b.cell_index, b.exec_count, b.ename, b.evalue) == (a.cell_index, a.exec_count, a.ename, a.evalue)
    assert (b.cell_index, b.ename) == (5, "ZeroDivisionError") and "q = ratio(x, d)" in b.source
    assert any("return a / b" in line for line in b.traceback)  # the frame in the functions cell

    ours = nbformat.read(tmp_path / "ours.ipynb", as_version=4)  # written before raising
    plain = nbformat.read(tmp_path / "plain.ipynb", as_version=4)
    nbformat.validate(ours)
    markers = [c for c in ours.cells if "papermill-error-cell-tag" in c.metadata.get("tags", [])]
    assert len(markers) == 2 and "In [6]" in markers[0].source
    failed = next(c for c in ours.cells if c.metadata.get("papermill", {}).get("status") == "failed")
    assert failed.source.startswith("print('dividing')") and failed.metadata.papermill["exception"] is True
    assert [o["output_type"] for o in failed.outputs] == ["stream", "error"]
    compare(plain, ours)  # same outputs everywhere, the failing cell included
    after = [c for c in ours.cells if c.cell_type == "code"][-2:]
    assert all(c.metadata.papermill["status"] == "pending" and not c.outputs for c in after)
    assert ours.metadata.papermill["exception"] is True and ours.metadata.nbscale["status"] == "failed"


@pytest.mark.parametrize("engine", ["local", "dask"])
def test_an_imports_cell_that_raises_has_the_error_and_the_steps_stay_pending(tmp_path, scheduler, engine):
    """The imports cell was written completed without its error, and each step's cells failed with
    it, their code never run: papermill named the last step's cell."""
    path = write_nb(tmp_path, [("print('imports ran')\nimport no_such_module_xyz", ["imports"]),
                               ("print('a ran')", ["step:a"]), ("print('b ran')", ["step:b"])])
    with pytest.raises(PapermillExecutionError) as plain_err:
        plain_papermill(path, tmp_path / "plain.ipynb")
    options = {"nbscale_engine": engine, **({"scheduler": scheduler} if engine == "dask" else {})}
    with pytest.raises(PapermillExecutionError) as ours_err:
        nbscale_api(path, tmp_path / "ours.ipynb", **options)
    a, b = plain_err.value, ours_err.value
    assert (b.cell_index, b.exec_count, b.ename) == (a.cell_index, a.exec_count, a.ename) == \
        (0, 1, "ModuleNotFoundError")
    ours = nbformat.read(tmp_path / "ours.ipynb", as_version=4)
    plain = nbformat.read(tmp_path / "plain.ipynb", as_version=4)
    compare(plain, ours)
    cells = [c for c in ours.cells if "papermill-error-cell-tag" not in c.metadata.get("tags", [])]
    assert [(c.metadata.papermill["status"], c.execution_count) for c in cells] == \
        [("failed", 1), ("pending", None), ("pending", None)]


def test_parallel_steps_overlap_on_two_workers(tmp_path, scheduler):
    path = write_nb(tmp_path, [
        ("import time", ["imports"]),
        ("time.sleep(1.5)\nleft = 1", ["step:left"]),
        ("time.sleep(1.5)\nright = 2", ["step:right"]),
        ("print(left + right)", ["step:join"]),
    ])
    nb = nbscale_api(path, tmp_path / "out.ipynb", scheduler=scheduler)
    left, right, join = (nb.cells[i].metadata.papermill for i in (1, 2, 3))
    starts = [stamp(left["start_time"]), stamp(right["start_time"])]
    ends = [stamp(left["end_time"]), stamp(right["end_time"])]
    assert max(starts) < min(ends), (left, right)  # both sleeping at the same time
    assert stamp(join["start_time"]) >= max(ends)
    assert nb.cells[3].outputs[0]["text"] == "3\n"


def test_parameters_are_typed_by_the_parameters_cell(tmp_path):
    path = write_nb(tmp_path, [
        ("n = 3\nrate = 0.5\nname = 'a'\nflag = False\nitems = [1]\nanything = None", ["parameters"]),
        ("print(repr(n), repr(rate), repr(name), repr(flag), repr(items), repr(anything))", ["step:show"]),
    ])
    env = {**os.environ, "NBSCALE_ENGINE": "local"}
    proc = subprocess.run([sys.executable, "-m", "papermill", "--engine", "nbscale", path.name, "out.ipynb",
                           "--no-progress-bar", "-r", "n", "7", "-p", "rate", "1", "-p", "name", "12",
                           "-p", "flag", "1", "-y", "items: [4, 5]", "-p", "anything", "hello"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    nb = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    # plain papermill would bind '7' 1 12 1 [4, 5] 'hello'
    assert nb.cells[2].outputs[0]["text"] == "7 1.0 '12' True [4, 5] 'hello'\n"
    assert nb.metadata.papermill["parameters"]["n"] == "7"  # what papermill was given, unchanged

    with pytest.raises(PapermillExecutionError) as err:
        nbscale_api(path, tmp_path / "bad.ipynb", {"n": 1.5}, nbscale_engine="local")
    assert err.value.cell_index == 1 and err.value.ename == "ParameterError"  # the injected cell
    assert "'n' is int" in err.value.evalue
    bad = nbformat.read(tmp_path / "bad.ipynb", as_version=4)
    injected = next(c for c in bad.cells if "injected-parameters" in c.metadata.get("tags", []))
    assert injected.outputs[0]["ename"] == "ParameterError"


@pytest.mark.parametrize("type_, value, expected", [
    ("str", 12, "12"), ("str", True, "True"), ("str", 2.5, "2.5"), ("str", "7", "7"),
    ("int", "7", 7), ("int", 7, 7), ("float", 1, 1.0), ("float", "2", 2.0),
    ("bool", 1, True), ("bool", 0, False), ("bool", "yes", True), ("bool", True, True),
    ("list", "[1, 2]", [1, 2]), ("list", "['a', None]", ["a", None]), ("list", [3], [3]),
    ("dict", "{'k': 1}", {"k": 1}), ("none", "hello", "hello"), ("none", "[1]", [1]), ("none", 5, 5),
])
def test_papermill_values_typed_by_literal(type_, value, expected):
    typed = params.from_papermill(Parameter("x", type_, None), value)
    assert typed == expected and type(typed) is type(expected)


@pytest.mark.parametrize("type_, value", [("int", 1.5), ("int", "abc"), ("float", True), ("bool", 2),
                                          ("list", "{'a': 1}"), ("dict", [1]), ("int", [1])])
def test_papermill_values_that_do_not_fit_raise(type_, value):
    with pytest.raises(ParameterError, match=f"'x' is {type_}"):
        params.from_papermill(Parameter("x", type_, None), value)


def test_nbscale_run_text_follows_the_same_rules(tmp_path):
    from nbscale.compiler import compile_notebook

    pipeline = compile_notebook(write_nb(tmp_path, [
        ("items = [1]\nanything = None\ncfg = {'a': 1}", ["parameters"]), ("print(items, anything, cfg)", ["step:s"])]))
    given = params.parse_assignments(["items=['a', 'b']", "anything=free text", "cfg={'b': [True, None]}"])
    assert params.resolve(pipeline, given) == {"items": ["a", "b"], "anything": "free text",
                                               "cfg": {"b": [True, None]}}


def test_unknown_injected_parameters_become_parameters(tmp_path):
    path = write_nb(tmp_path, [("a = 1", ["parameters"]), ("print(a + extra)", ["step:s"])])
    nb = nbscale_api(path, tmp_path / "out.ipynb", {"extra": 41}, nbscale_engine="local")
    assert nb.cells[2].outputs[0]["text"] == "42\n"
    assert nb.metadata.nbscale["parameters"] == {"a": 1, "extra": 41}


def test_compile_error_is_an_error_at_its_cell(tmp_path):
    path = write_nb(tmp_path, [("x = 1", ["step:a"]), ("print(x)", []), ("print(nope)", ["step:b"])])
    with pytest.raises(PapermillExecutionError) as err:
        nbscale_api(path, tmp_path / "out.ipynb", nbscale_engine="local")
    assert err.value.cell_index == 2 and err.value.exec_count == 3 and err.value.ename == "NbscaleCompileError"
    assert "undefined-name" in err.value.evalue and "nope" in err.value.evalue
    assert err.value.traceback[0].startswith("cell 3, line 1: [undefined-name]")  # index 2, numbered from 1


def test_every_compile_error_of_a_cell_is_shown_and_the_raised_one_names_the_first(tmp_path):
    # papermill raises the last error cell's: "n is not defined", while the cause (n = 2 * 3, the
    # parameters cell's second error) was nowhere in the notebook
    path = write_nb(tmp_path, [("import math\nn = 2 * 3", ["parameters"]), ("x = n", ["step:a"])])
    with pytest.raises(PapermillExecutionError) as err:
        nbscale_api(path, tmp_path / "out.ipynb", nbscale_engine="local")
    assert "undefined-name" in err.value.evalue and "the notebook's first error: cell 1, line 1" in err.value.evalue
    cells = nbformat.read(tmp_path / "out.ipynb", as_version=4).cells
    (first,) = next(c for c in cells if "parameters" in c.metadata.get("tags", [])).outputs
    assert "'import math' is not a parameter assignment" in first["evalue"] and "2 * 3" in first["evalue"]


def test_stdout_file_log_output_and_language(tmp_path, caplog):
    path = write_nb(tmp_path, [("print('to the file')\n'shown'", ["step:a"])])
    sink = io.StringIO()
    with caplog.at_level("INFO", logger="papermill"):
        nbscale_api(path, tmp_path / "out.ipynb", nbscale_engine="local", stdout_file=sink, log_output=True)
    assert sink.getvalue() == "to the file\n"
    assert "to the file" in caplog.text and "'shown'" in caplog.text

    r_nb = nbformat.read(path, as_version=4)
    r_nb.metadata.kernelspec = {"name": "ir", "display_name": "R", "language": "R"}
    nbformat.write(r_nb, str(tmp_path / "r.ipynb"))
    with pytest.raises(PapermillException, match="Python notebooks"):
        nbscale_api(tmp_path / "r.ipynb", tmp_path / "r_out.ipynb", nbscale_engine="local")


# -- metric regressions and cost in the output notebook; fail_on_regression ----------------------------


def _scored(folder):
    return write_nb(folder, [("drop = 0.0", ["parameters"]),
                             ("accuracy = 0.9 - drop\nloss = 0.1 + drop", ["step:score"]),
                             ("accuracy\nloss", ["metrics"])], name="scored")


def test_output_notebook_metadata_has_regressions_and_cost(tmp_path):
    from nbscale.papermill_plugin import MetricRegression

    path = _scored(tmp_path)
    first = nbscale_api(path, tmp_path / "first.ipynb", nbscale_engine="local")
    assert first.metadata.nbscale["regressions"]["regressed"] == []
    assert first.metadata.nbscale["cost"]["total"]["cpu_s"] > 0
    worse = nbscale_api(path, tmp_path / "worse.ipynb", {"drop": 0.2}, nbscale_engine="local")
    assert worse.metadata.nbscale["regressions"]["regressed"] == ["accuracy", "loss"]
    with pytest.raises(MetricRegression, match="accuracy: -14.3% against the previous run") as caught:
        nbscale_api(path, tmp_path / "again.ipynb", {"drop": 0.3}, nbscale_engine="local", fail_on_regression=True)
    assert isinstance(caught.value, PapermillException)
    written = nbformat.read(tmp_path / "again.ipynb", as_version=4)  # written before the failure
    assert written.metadata.nbscale["status"] == "succeeded"
    assert written.metadata.nbscale["regressions"]["regressed"] == ["accuracy", "loss"]
    cached = nbscale_api(path, tmp_path / "cached.ipynb", {"drop": 0.3}, nbscale_engine="local",
                         fail_on_regression=True, regression_threshold=5)  # within 500 % of the best
    assert cached.metadata.nbscale["cost"]["total"]["saved_s"] > 0


def test_papermill_cli_fails_on_regression_by_environment(tmp_path):
    path = _scored(tmp_path)
    env = {**os.environ, "NBSCALE_ENGINE": "local", "NBSCALE_FAIL_ON_REGRESSION": "1"}
    command = [sys.executable, "-m", "papermill", "--engine", "nbscale", str(path)]
    first = subprocess.run([*command, str(tmp_path / "a.ipynb")], env=env, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    worse = subprocess.run([*command, str(tmp_path / "b.ipynb"), "-p", "drop", "0.1"], env=env, capture_output=True,
                           text=True)
    assert worse.returncode != 0 and "MetricRegression: metric regression(s) in run" in worse.stderr


@pytest.mark.parametrize("engine", ["local", "dask"])
def test_sigterm_cancels_the_run_then_ends_papermill_as_sigterm_does(tmp_path, engine):
    """It ended the process at once and left the run `running` for the next reader to fail."""

    from nbscale.kernels.contract import STOPPED_BY_SIGTERM
    from nbscale.kernels.runner import default_run_store

    path, tick, code, err, took = _papermill_signalled(tmp_path, engine, signal.SIGTERM)
    assert code == -signal.SIGTERM, err
    # (its progress bar's thread made the cluster spawn its workers: it waited seconds for the one
    # restarted under the step to start papermill again, and 8-12 s under load)
    assert took < 5, f"it ended {took:.1f} s after SIGTERM"
    with default_run_store(path) as store:
        run = store.get_run(store.list_runs()[0]["id"])
    assert (run["status"], run["error"]) == ("cancelled", STOPPED_BY_SIGTERM)
    written = nbformat.read(tmp_path / "out.ipynb", as_version=4)  # what ran, and where it stopped and why
    assert [c.execution_count for c in written.cells] == [1, 2, 3]  # (as papermill numbers them)
    assert [o.evalue for o in written.cells[2].outputs if o.output_type == "error"][0].startswith(STOPPED_BY_SIGTERM)
    assert written.metadata.nbscale["run_id"] == run["id"] and written.metadata.nbscale["status"] == "cancelled"
    size = tick.stat().st_size
    time.sleep(0.5)
    assert tick.stat().st_size == size, "the step runs on"


def test_the_runs_own_cluster_forks_its_workers_under_papermills_progress_bar(tmp_path):
    """The bar's monitor thread made the cluster spawn its workers: each started papermill's command
    again, seconds a SIGTERM or Ctrl-C waited for as the cluster closed (one restarted under a step)."""
    path = write_nb(tmp_path, [("print('spawn_main' in open('/proc/self/cmdline').read())", ["step:a"])])
    proc = subprocess.run([sys.executable, "-m", "papermill", "--engine", "nbscale", str(path),
                           str(tmp_path / "out.ipynb")], env={**os.environ, "NBSCALE_ENGINE": "dask"},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "Executing" in proc.stderr, proc.stderr  # (with its bar)
    assert nbformat.read(tmp_path / "out.ipynb", as_version=4).cells[0].outputs[0].text == "False\n"


def _papermill_signalled(tmp_path, engine, sig, then=()):
    """`papermill --engine nbscale` of a notebook whose step `loop` ticks a file for ever (followed by
    the cells `then`), sent `sig` once it ticks: the notebook, the tick file, the exit code, stderr, and
    the seconds from the signal to the exit."""
    from conftest import wait_for

    tick = tmp_path / "tick"
    path = write_nb(tmp_path, [("import time", ["imports"]), ("x = 1", ["step:one"]),
                               ("print('looping', flush=True)\n"
                                f"while True:\n    open({str(tick)!r}, 'a').write('x')\n    time.sleep(0.1)",
                                ["step:loop"]), *then])
    proc = subprocess.Popen([sys.executable, "-m", "papermill", "--engine", "nbscale", str(path),
                             str(tmp_path / "out.ipynb")], env={**os.environ, "NBSCALE_ENGINE": engine},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # and step `one` done: on Dask it runs beside `loop` (no edge between them), and under load it
        # had not ended when the signal came (its cells then rightly have no count)
        # (five ticks: what it printed first has been sent)
        wait_for(lambda: tick.exists() and len(tick.read_text()) >= 5 and _completed(tmp_path / "out.ipynb", 1),
                 "the looping step")
        proc.send_signal(sig)
        sent = time.monotonic()
        _, err = proc.communicate(timeout=60)
        took = time.monotonic() - sent
    finally:
        proc.kill()
    return path, tick, proc.returncode, err, took


def _completed(path, index) -> bool:
    """Whether papermill's notebook at `path` (written as the run goes) has cell `index` completed."""
    try:
        cell = nbformat.read(path, as_version=4).cells[index]
    except Exception:  # noqa: BLE001 - not written yet, or being written
        return False
    return cell.metadata.get("papermill", {}).get("status") == "completed"


def test_ctrl_c_ends_the_running_cell_with_a_keyboard_interrupt_as_papermills_own_engine(tmp_path):
    """The interrupted cell stayed "running", without outputs or an error, in the notebook written."""
    _, _, code, err, _ = _papermill_signalled(tmp_path, "local", signal.SIGINT, then=[("y = x", ["step:after"])])
    assert code == 1, err
    cells = nbformat.read(tmp_path / "out.ipynb", as_version=4).cells
    statuses = [c.metadata.papermill["status"] for c in cells if c.cell_type == "code"]
    assert statuses[-2:] == ["failed", "pending"], statuses
    printed, error = cells[-2].outputs  # what the step printed before: it was lost
    assert (printed.output_type, printed.text, error.ename) == ("stream", "looping\n", "KeyboardInterrupt")
    assert "so far is above and in its log" in error.evalue


def test_a_bad_regression_threshold_runs_nothing(tmp_path, monkeypatch):
    from nbscale.kernels.project_settings import SettingsError

    path = _scored(tmp_path)
    monkeypatch.setenv("NBSCALE_REGRESSION_THRESHOLD", "-1")
    with pytest.raises(SettingsError, match=r"\(NBSCALE_REGRESSION_THRESHOLD\) must be a number ≥ 0, got '-1'"):
        nbscale_api(path, tmp_path / "out.ipynb", nbscale_engine="local", fail_on_regression=True)
    assert not (tmp_path / ".nbscale" / "runs.sqlite").exists()


# -- cell outputs of cached steps, the state folder under --cwd, cells a step never reached -----------------


READS_A_FILE = [("n = 1", ["parameters"]),
                ("v = open('data.txt').read().strip()\nprint('value read:', v)", ["step:a"]),
                ("r = int(v)", ["metrics"])]


def _shown(nb):
    """(what step a printed, whether it was cached, the metric)."""
    cell = nb.cells[1]
    return "".join(o.get("text", "") for o in cell.outputs), cell.metadata.nbscale["cached"], nb.metadata.nbscale[
        "metrics"]["r"]


@pytest.mark.parametrize("engine", ["local", "dask"])
def test_a_cached_step_shows_the_outputs_of_the_run_that_stored_its_result(tmp_path, scheduler, engine):
    from nbscale.kernels.runner import RunOptions, run_notebook

    path = write_nb(tmp_path, READS_A_FILE)
    options = {"nbscale_engine": engine, "cwd": str(tmp_path), **({"scheduler": scheduler} if engine == "dask" else {})}

    def run(out, text):
        if text:
            (tmp_path / "data.txt").write_text(text)
        return _shown(nbscale_api(path, tmp_path / out, **options))

    assert run("o1.ipynb", "111\n") == ("value read: 111\n", False, 111)
    assert run("o2.ipynb", "222\n") == ("value read: 222\n", False, 222)  # the file changed: a runs again
    assert run("o3.ipynb", None) == ("value read: 222\n", True, 222)  # reused: the outputs of the run that stored it
    (tmp_path / "data.txt").write_text("333\n")
    assert run_notebook(path, options=RunOptions(engine="local")).status == "succeeded"  # stores a's result anew
    assert run("o4.ipynb", None) == ("value read: 333\n", False, 333)  # no cell outputs kept with it: runs again
    assert run("o5.ipynb", None) == ("value read: 333\n", True, 333)


def test_a_step_reused_without_its_cell_outputs_shows_none_with_a_note(tmp_path, caplog):
    from nbscale.kernels.runner import RunOptions, run_notebook

    path = write_nb(tmp_path, [("v = len(open('data.txt').read())", ["step:x"]), ("print('length', v)", ["step:y"])])
    (tmp_path / "data.txt").write_text("aaa")
    run_notebook(path, options=RunOptions(engine="local"))  # `nbscale run` keeps no cell outputs
    (tmp_path / "data.txt").write_text("bbb")  # x runs again and gives the same value: y is reused as the run goes
    with caplog.at_level("WARNING", logger="papermill"):
        nb = nbscale_api(path, tmp_path / "out.ipynb", nbscale_engine="local", cwd=str(tmp_path))
    assert {s["name"]: s["status"] for s in nb.metadata.nbscale["steps"]} == {"x": "succeeded", "y": "cached"}
    y = nb.cells[1]
    assert y.outputs == [] and y.metadata.nbscale["cached"] is True and "not kept" in y.metadata.nbscale["note"]
    assert "step y reused a stored result whose cell outputs were not kept" in caplog.text


def test_state_goes_beside_the_input_notebook_whatever_the_working_folder(tmp_path):
    path = write_nb(tmp_path, [("import os\nprint(os.getcwd())", ["step:a"])])
    (tmp_path / "d1").mkdir()
    env = {**os.environ, "NBSCALE_ENGINE": "local"}
    proc = subprocess.run([sys.executable, "-m", "papermill", "--engine", "nbscale", path.name, "out.ipynb",
                           "--cwd", "d1", "--no-progress-bar"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    nb = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    assert nb.cells[0].outputs[0]["text"] == f"{(tmp_path / 'd1').resolve()}\n"  # the steps ran in --cwd
    assert not (tmp_path / "d1" / ".nbscale").exists()
    from nbscale.kernels.runner import default_run_store

    with default_run_store(path) as store:
        assert store.get_run(nb.metadata.nbscale["run_id"])["notebook"] == str(path.resolve())


def test_cells_a_step_never_reached_stay_pending(tmp_path):
    path = write_nb(tmp_path, [("import sys\nprint('before')\nsys.exit(0)", ["step:a"]), "print('never')\nz = 1",
                               ("print('b')", ["step:b"])])
    for out in ("out.ipynb", "cached.ipynb"):
        nb = nbscale_api(path, tmp_path / out, nbscale_engine="local")
        ran, never, b = nb.cells
        assert ran.metadata.papermill["status"] == b.metadata.papermill["status"] == "completed"
        assert never.metadata.papermill["status"] == "pending" and never.metadata.papermill["start_time"] is None
        assert never.outputs == [] and never.execution_count is None and "nbscale" not in never.metadata
        assert nbformat.read(tmp_path / out, as_version=4).cells[1].metadata.papermill["status"] == "pending"


def test_the_kernel_named_must_exist_and_one_passed_over_is_said(tmp_path, monkeypatch, caplog):
    """Steps run in this Python (engines local, dask): `-k no-such-kernel` ran anyway; a kernel with a
    Python or variables of its own was passed over without a word."""
    from jupyter_client.kernelspec import NoSuchKernel

    kernels = tmp_path / "share" / "jupyter" / "kernels" / "myenv"
    kernels.mkdir(parents=True)
    (kernels / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"], "display_name": "myenv",
        "language": "python", "env": {"MYENV_MARKER": "set"}}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "share" / "jupyter"))
    path = write_nb(tmp_path, [("x = 1", ["step:a"])])
    with pytest.raises(NoSuchKernel):
        nbscale_api(path, tmp_path / "out.ipynb", kernel_name="no-such-kernel", nbscale_engine="local")
    with caplog.at_level(logging.WARNING, logger="papermill"):
        nbscale_api(path, tmp_path / "out.ipynb", kernel_name="myenv", nbscale_engine="local")
    assert "not as kernel 'myenv' would run them: its environment variables (MYENV_MARKER) go unused" in caplog.text


def test_an_execution_timeout_the_engine_does_not_apply_is_said(tmp_path, caplog):
    """--execution-timeout is papermill's per-cell timeout: the local and dask engines ran on past it
    without a word (their steps stop at the `timeout:` tag)."""
    path = write_nb(tmp_path, [("x = 1", ["step:a"])])
    with caplog.at_level(logging.WARNING, logger="papermill"):
        nbscale_api(path, tmp_path / "out.ipynb", nbscale_engine="local", execution_timeout=-1)
    assert "execution-timeout" not in caplog.text  # papermill's "no timeout"
    with caplog.at_level(logging.WARNING, logger="papermill"):
        nbscale_api(path, tmp_path / "out.ipynb", nbscale_engine="local", execution_timeout=2, use_cache=False)
    said = [r.getMessage() for r in caplog.records if "execution-timeout" in r.getMessage()]
    assert len(said) == 1 and "not applied with NBSCALE_ENGINE=local" in said[0]
    assert "timeout:2s" in said[0] and "NBSCALE_ENGINE=papermill" in said[0]


def test_a_file_built_by_several_steps_is_left_as_plain_papermill_leaves_it(tmp_path):
    def cells(line):
        return [("with open('report.txt', 'w') as f:\n    f.write('header\\n')\nn = 1", ["step:make"]),
                (f"with open('report.txt', 'a') as f:\n    f.write('{line}\\n')\nm = n + 1", ["step:append"])]

    nbscale_api(write_nb(tmp_path, cells("line A")), tmp_path / "a.ipynb", nbscale_engine="local", cwd=tmp_path)
    path = write_nb(tmp_path, cells("line B"))  # only the appending step changed
    nbscale_api(path, tmp_path / "b.ipynb", nbscale_engine="local", cwd=tmp_path)
    by_nbscale = (tmp_path / "report.txt").read_text()
    papermill.execute_notebook(str(path), str(tmp_path / "plain.ipynb"), kernel_name="python3", progress_bar=False,
                               cwd=str(tmp_path))
    assert by_nbscale == (tmp_path / "report.txt").read_text() == "header\nline B\n"
