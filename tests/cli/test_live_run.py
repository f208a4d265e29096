"""A run started from a kernel (`live_run.LiveRun`), in a real ipykernel through nbclient: Cancel
really cancels (the run ends `cancelled`, the step's code stops), and a kernel interrupt stops the
cell that was running, not the run nor its view.

The kernel runs the notebook top to bottom too: the parameters cell keeps its loop short there
(n = 0); the run gets `-p n=...`.
"""

from __future__ import annotations

import time

from conftest import make_notebook
from test_magic import KERNELSPEC, execute, printed, run_display

from nbscale.kernels.contract import CANCELLED, SUCCEEDED, run_store_path
from nbscale.kernels.runstore import RunStore

SLOW_STEP = ("import pathlib, time\nfor i in range(n):\n    with open('ticks.txt', 'a') as f:\n"
             "        f.write('.')\n    time.sleep(0.1)\ndone = n")


def test_the_cancel_button_cancels_the_run_and_stops_the_step(tmp_path):
    path = make_notebook(tmp_path, [
        ("%load_ext nbscale", ["skip"]),
        ("n = 0", ["parameters"]),
        (SLOW_STEP, ["step:slow"]),
        ("%nbscale run -p n=3000", ["skip"]),
        # the kernel side of a click: the button's handler, as the widget's model calls it
        ("import os, time, nbscale.magic as m\nlive = m.latest()\ndeadline = time.time() + 120\n"
         "while not os.path.exists('ticks.txt') and time.time() < deadline:\n    time.sleep(0.2)\n"
         "live.view.cancel_button.click()", ["skip"]),
        ("%nbscale wait", ["skip"]),
        ("print('button', live.view.cancel_button.disabled, live.model.status)", ["skip"]),
    ], metadata=KERNELSPEC)
    nb = execute(path)
    assert f"button True {CANCELLED}" in printed(nb.cells[6])
    data = run_display(nb.cells[3])
    assert f'data-step="slow" data-status="{CANCELLED}"' in data["text/html"]
    store = RunStore(run_store_path(path))
    run = store.list_runs(str(path.resolve()))[0]
    store.close()
    assert run["status"] == CANCELLED and run["error"] == "cancelled by the user"
    ticks = tmp_path / "ticks.txt"
    size = ticks.stat().st_size
    time.sleep(2)  # 20 ticks if the step's loop still ran
    assert ticks.stat().st_size == size


def test_a_kernel_interrupt_leaves_the_run_and_its_view_going(tmp_path):
    path = make_notebook(tmp_path, [
        ("%load_ext nbscale", ["skip"]),
        ("n = 0", ["parameters"]),
        (SLOW_STEP, ["step:slow"]),
        ("%nbscale run -p n=60", ["skip"]),
        ("import time\ntime.sleep(600)", ["skip"]),  # interrupted after 3 s (nbclient's timeout)
        ("%nbscale wait", ["skip"]),
    ], metadata=KERNELSPEC)
    nb = execute(path, allow_errors=True, timeout_func=lambda cell: 3 if "sleep(600)" in cell.source else 300)
    interrupted = [o for o in nb.cells[4].outputs if o.output_type == "error"]
    assert interrupted and interrupted[0]["ename"] == "KeyboardInterrupt"
    assert SUCCEEDED in printed(nb.cells[5])
    data = run_display(nb.cells[3])
    assert f'data-step="slow" data-status="{SUCCEEDED}"' in data["text/html"]
    assert (tmp_path / "ticks.txt").stat().st_size == 60
