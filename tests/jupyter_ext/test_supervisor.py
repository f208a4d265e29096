"""The supervisor of a run process the server started, with real run processes: when the process is
killed (a cancel its step ignores, past the grace time) or dies (a crash, the OOM killer), what its
step started ends too, as it does when `nbscale run` is killed (the run store's reap)."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import psutil
import pytest
from conftest import make_notebook
from server_parts import run, wait_finished

from nbscale.jupyter_ext.events import EventHub
from nbscale.jupyter_ext.notebooks import Notebooks
from nbscale.jupyter_ext.runs import Runs
from nbscale.kernels.contract import CANCELLED, FAILED

# The step starts a process and will not stop: it swallows the cancel's Ctrl-C. It says the pid
# of its process once the cancel can no longer stop it.
STUBBORN = [
    ("import os, subprocess, time", ["imports"]),
    ("child = subprocess.Popen(['sleep', '600'])\n"
     "for _ in range(600):\n    try:\n"
     "        with open('child.pid.tmp', 'w') as f:\n            f.write(str(child.pid))\n"
     "        os.replace('child.pid.tmp', 'child.pid')\n"
     "        time.sleep(1)\n    except BaseException:\n        pass\nx = 1",
     ["step:stubborn"]),
]


def running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def child_started(root, timeout=60.0) -> int:
    deadline = time.monotonic() + timeout
    while not (root / "child.pid").exists():
        assert time.monotonic() < deadline, "the step never started its process"
        await asyncio.sleep(0.05)
    return int((root / "child.pid").read_text())




def kill_run_process(runs, run_id) -> None:
    os.kill(runs.process(run_id).proc.pid, signal.SIGKILL)  # as the OOM killer does


@pytest.mark.parametrize("engine, stop, status", [
    ("local", "cancel", CANCELLED),
    ("local", "kill", FAILED),
    ("dask", "kill", FAILED),
])
def test_the_processes_a_step_started_end_when_its_run_process_is_killed(root, engine, stop, status):
    nb = make_notebook(root, STUBBORN, name="stubborn").resolve()
    child = None

    async def main():
        nonlocal child
        runs = Runs(Notebooks(root), EventHub(), default_engine=engine, cancel_grace_s=1.0)
        try:
            run_id = (await runs.start(nb))["run_id"]
            child = await child_started(root)
            if stop == "cancel":
                await runs.cancel(nb, run_id)  # ignored by the step: killed after the grace time
            else:
                kill_run_process(runs, run_id)
            return await wait_finished(runs, nb, run_id, timeout=60.0)
        finally:
            await runs.close()

    try:
        detail = run(main())
        assert detail["status"] == status, detail
        assert not running(child), f"the step's process {child} outlived its run process"
    finally:
        if child is not None and running(child):
            os.kill(child, signal.SIGKILL)
