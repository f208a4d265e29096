"""Helpers of the warm cluster tests (tests/kernels/test_warm_cluster.py,
tests/cli/test_cluster_commands.py): waiting, finding and ending the cluster processes of a folder."""

from __future__ import annotations

import sys

import conftest
import psutil

from nbscale.kernels import warm_cluster

DEADLINE_S = 90
NBSCALE = [sys.executable, "-m", "nbscale"]


def wait_for(condition, what, timeout=DEADLINE_S):
    conftest.wait_for(condition, what, timeout)


def gone(pid) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def serving_pids(folder) -> list[int]:
    """The warm cluster processes of `folder` (not their forked workers, whose parent is one)."""
    found = []
    for p in psutil.process_iter(["pid", "ppid", "cmdline"]):
        command = p.info["cmdline"] or []
        if warm_cluster.SERVE_MODULE in command and str(folder) in command:
            found.append(p.info)
    pids = {p["pid"] for p in found}
    return sorted(p["pid"] for p in found if p["ppid"] not in pids)


def end_clusters(folder) -> None:
    """Stop the warm cluster of `folder`, and kill any process of it left (a test that failed midway)."""
    try:
        warm_cluster.stop(folder, timeout=20)
    finally:
        killed = []
        for pid in serving_pids(folder):
            try:
                process = psutil.Process(pid)
                killed += [process, *process.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
        for p in killed:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(killed, timeout=DEADLINE_S)  # a killed process is listed until it is gone


def serving_folders(under) -> list[str]:
    """The folders below `under` whose warm cluster processes run."""
    folders = set()
    for p in psutil.process_iter(["cmdline"]):
        command = p.info["cmdline"] or []
        if warm_cluster.SERVE_MODULE in command[:-1]:
            folder = command[command.index(warm_cluster.SERVE_MODULE) + 1]
            if folder.startswith(f"{under}/"):
                folders.add(folder)
    return sorted(folders)
