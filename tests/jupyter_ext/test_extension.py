"""The extension in a real Jupyter server process, stopped as a service manager or Ctrl-C stops it
(SIGTERM): the runs it started end with it, even one whose step ignores the cancel."""

from __future__ import annotations

import os
import signal
import time

import psutil
from conftest import make_notebook
from lab_harness import running_lab

from nbscale.kernels.contract import CANCELLED, SERVER_WENT_AWAY
from nbscale.kernels.runner import default_run_store

# The step will not stop: it swallows the cancel's Ctrl-C; it says so once the cancel can no longer stop it.
STUBBORN = [
    ("import time", ["imports"]),
    ("for _ in range(600):\n    try:\n        open('started', 'w').close()\n        time.sleep(1)\n"
     "    except BaseException:\n        pass\nx = 1",
     ["step:stubborn"]),
]


def run_processes(server: psutil.Process) -> list[psutil.Process]:
    return [p for p in server.children() if "nbscale.jupyter_ext.runproc" in " ".join(p.cmdline())]


def running(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_a_server_stopped_with_sigterm_ends_its_runs_even_a_step_that_ignores_the_cancel(root, tmp_path):
    nb = make_notebook(root, STUBBORN, name="stubborn").resolve()
    left = []
    try:
        with running_lab(root, tmp_path / "lab", extra_args=("--Nbscale.default_engine=local",
                                                             "--Nbscale.cancel_grace=1")) as lab:
            run_id = lab.api("nbscale/api/runs", "POST", {"path": "stubborn.ipynb"})["run_id"]
            deadline = time.monotonic() + 60
            while not (root / "started").exists():
                assert time.monotonic() < deadline, "the step never ran"
                time.sleep(0.05)
            left = run_processes(psutil.Process(lab.process.pid))
            lab.process.send_signal(signal.SIGTERM)
            lab.process.wait(timeout=60)  # its extensions stopped
        assert left and not any(running(p) for p in left)
        stored = default_run_store(nb).get_run(run_id)
        assert (stored["status"], stored["error"]) == (CANCELLED, SERVER_WENT_AWAY), stored
    finally:
        for process in left:
            if running(process):
                os.kill(process.pid, signal.SIGKILL)
