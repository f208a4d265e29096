"""The embedded cluster's workers as they start: a process group of their own, SIGINT ignored."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

from conftest import make_notebook
from distributed import Client

from nbscale.kernels.engines.dask import local_cluster


def test_the_embedded_clusters_workers_are_out_of_the_runs_process_group():
    """A terminal's Ctrl-C reached the workers and every process of their steps."""
    cluster = local_cluster(1, http=False)
    try:
        with Client(cluster, set_as_default=False) as client:
            (group,) = client.run(os.getpgid, 0).values()
            (pid,) = client.run(os.getpid).values()
        assert group == pid != os.getpgrp()
    finally:
        cluster.close()


def test_a_sigint_that_reaches_a_worker_is_ignored_and_the_run_ends(tmp_path):
    # `os.kill(os.getpid(), signal.SIGINT)` in a step on Dask: KeyboardInterrupt in the worker's event
    # loop killed it, the step was never reported, and the run stayed `running` (it hung)
    notebook = make_notebook(tmp_path, [("import os, signal, time\nos.kill(os.getpid(), signal.SIGINT)\n"
                                         "time.sleep(1)\nx = 1", ["step:a"]), ("y = x + 1", ["step:b"])])
    result = run_in_a_process_of_its_own(["run", str(notebook), "--engine", "dask", "--output", "json"], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert {s["name"]: s["status"] for s in json.loads(result.stdout)["steps"]} == {"a": "succeeded", "b": "succeeded"}


def run_in_a_process_of_its_own(arguments, folder):
    """`nbscale ARGUMENTS` with SIGINT at its default (a test runner may ignore it, which the run's
    workers would inherit), in a session of its own; killed after a minute (it hung)."""
    def default_sigint():
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    return subprocess.run([sys.executable, "-m", "nbscale", *arguments], cwd=folder, capture_output=True, text=True,
                          timeout=60, preexec_fn=default_sigint, start_new_session=True)
