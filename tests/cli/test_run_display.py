"""`nbscale.run(..., display=True)` (nbscale/run_display.py): in a real ipykernel driven by nbclient,
the live view of `%nbscale run` with its static fallbacks, and the RunResult once the run ends;
outside IPython, the final state printed as the static text view.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import nbclient
import nbformat
from conftest import make_notebook

KERNELSPEC = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
STEPS = [
    ("x = 40\nprint('hello')", ["step:a"]),
    ("y = x + 2", ["step:b"]),
    ("accuracy = y / 100", ["metrics"]),
]


def execute(path, timeout=300, timeout_func=None):
    nb = nbformat.read(str(path), as_version=4)
    client = nbclient.NotebookClient(nb, timeout=timeout, allow_errors=True, interrupt_on_timeout=True,
                                     timeout_func=timeout_func, resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    return nb


def printed(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


def run_display(cell) -> dict:
    shown = [o for o in cell.outputs if o.output_type == "display_data" and "text/html" in o.data
             and "nbscale-run" in o.data["text/html"]]
    assert len(shown) == 1, cell.outputs
    return shown[0].data


def test_in_a_kernel_the_live_view_then_the_run_result(tmp_path):
    make_notebook(tmp_path, ["x = ("], name="broken")
    path = make_notebook(tmp_path, [
        *STEPS,
        ("import nbscale\nresult = nbscale.run('nb.ipynb', engine='local', display=True)\n"
         "print('status', result.status, result.metrics, result.load('b')['y'])", ["skip"]),
        ("try:\n    nbscale.run('broken.ipynb', engine='local', display=True)\n"
         "except Exception as exc:\n    print('refused', type(exc).__name__)", ["skip"]),
    ], metadata=KERNELSPEC)
    nb = execute(path)
    cell = nb.cells[3]
    assert not [o for o in cell.outputs if o.output_type == "error"], cell.outputs
    data = run_display(cell)
    assert "application/vnd.jupyter.widget-view+json" in data  # the live view ...
    html, text = data["text/html"], data["text/plain"]  # ... and its static fallbacks, final
    assert 'data-status="succeeded"' in html.split("\n")[0]
    assert re.findall(r'data-step="(\w+)" data-status="(\w+)"', html) == [("a", "succeeded"), ("b", "succeeded"),
                                                                          ("metrics", "succeeded")]
    assert ": succeeded (3/3 steps)" in text and "metric accuracy = 0.42" in text
    assert "status succeeded {'accuracy': 0.42} 42" in printed(cell)  # the RunResult, values loadable
    assert "refused PipelineNotRunnable" in printed(nb.cells[4])
    assert not [o for o in nb.cells[4].outputs if o.output_type == "display_data"]  # nothing started


def test_a_failed_run_returns_its_result_and_shows_the_failure(tmp_path):
    path = make_notebook(tmp_path, [
        ("data = [1, 2, 3]", ["step:load"]),
        ("total = sum(data)\nratio = total / 0", ["step:divide"]),
        ("import nbscale\nresult = nbscale.run('nb.ipynb', engine='local', display=True)\n"
         "print('status', result.status, result.step('divide')['status'])", ["skip"]),
    ], metadata=KERNELSPEC)
    nb = execute(path)
    data = run_display(nb.cells[2])
    assert "divide failed at cell 2, line 2: ZeroDivisionError" in data["text/plain"]
    assert "status failed failed" in printed(nb.cells[2])


def test_a_kernel_interrupt_cancels_the_run(tmp_path):
    from nbscale.kernels.contract import run_store_path
    from nbscale.kernels.runstore import RunStore

    path = make_notebook(tmp_path, [
        ("pause = 0.0", ["parameters"]),  # the kernel runs every cell too: slow only in the run
        ("import time\ntime.sleep(pause)", ["step:slow"]),
        ("import nbscale\nresult = nbscale.run('nb.ipynb', {'pause': 600}, engine='local', display=True)", ["skip"]),
        ("print('after', 'result' in dir())", ["skip"]),
    ], metadata=KERNELSPEC)
    # nbclient interrupts the kernel (SIGINT, as the Interrupt button) when the cell's time is up
    nb = execute(path, timeout_func=lambda cell: 20 if "nbscale.run" in cell.source else 300)
    errors = [o for o in nb.cells[2].outputs if o.output_type == "error"]
    assert errors and errors[0].ename == "KeyboardInterrupt", nb.cells[2].outputs
    assert "after False" in printed(nb.cells[3])  # the kernel goes on
    store = RunStore(run_store_path(path))
    try:
        runs = store.list_runs(str(path.resolve()))
    finally:
        store.close()
    assert [r["status"] for r in runs] == ["cancelled"], runs


def test_outside_ipython_the_text_view_is_printed(tmp_path):
    path = make_notebook(tmp_path, STEPS)
    script = (f"import nbscale\nr = nbscale.run({str(path)!r}, engine='local', display=True)\n"
              "print('result', r.status, r.load('a')['x'])")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          cwd=tmp_path, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert done.returncode == 0, done.stderr
    assert ": succeeded (3/3 steps)" in done.stdout and "metric accuracy = 0.42" in done.stdout, done.stdout
    assert done.stdout.rstrip().endswith("result succeeded 40"), done.stdout
    assert "<" not in done.stdout  # text, not HTML


def test_the_result_read_back_from_the_run_store_refuses_values_a_later_run_replaced(tmp_path):
    # what `nbscale.run()` in a kernel returns is rebuilt from the run store: it knew no digests, and
    # `load` gave a later run's values as this run's
    import pytest

    from nbscale.kernels.errors import ValuesReplaced
    from nbscale.kernels.runner import RunOptions, run_notebook
    from nbscale.run_display import stored_result

    nb = make_notebook(tmp_path, [("z = open('data.txt').read()", ["step:reader"]), ("n = len(z)", ["step:count"])],
                       name="replaced")
    (tmp_path / "data.txt").write_text("version-1")
    first = stored_result(nb, run_notebook(nb, options=RunOptions(engine="local")).run_id, None)
    cached = stored_result(nb, run_notebook(nb, options=RunOptions(engine="local")).run_id, None)
    assert first.load("reader") == cached.load("reader") == {"z": "version-1"} and first.load("count") == {"n": 9}
    (tmp_path / "data.txt").write_text("version-two")
    later = stored_result(nb, run_notebook(nb, options=RunOptions(engine="local")).run_id, None)
    assert later.hashes["reader"] == first.hashes["reader"] and later.load("reader") == {"z": "version-two"}
    for earlier in (first, cached):  # one that ran the steps, one that found them cached
        with pytest.raises(ValuesReplaced, match=f"run {earlier.run_id[:12]} were replaced"):
            earlier.load("reader")
    assert later.load("count") == {"n": 11} and later.hashes["count"] != first.hashes["count"]
    (tmp_path / "other.txt").write_text("a")  # a last step that hands nothing on, stored again
    nb = make_notebook(tmp_path, [("n = len(open('other.txt').read())\nm = n * 2", ["step:final"])], name="last")
    ones = [stored_result(nb, run_notebook(nb, options=RunOptions(engine="local")).run_id, None) for _ in range(2)]
    (tmp_path / "other.txt").write_text("abc")
    assert stored_result(nb, run_notebook(nb, options=RunOptions(engine="local")).run_id, None).load("final") == {
        "n": 3, "m": 6}
    for one in ones:
        with pytest.raises(ValuesReplaced):
            one.load("final")
