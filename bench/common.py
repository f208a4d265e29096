"""The benchmark harness every bench script shares: fresh processes, timing, medians, machine
load, and the machine and revision a result was measured on.

A measurement runs in a fresh process — either a real command (`timed_process`,
`median_process`) or one task of `bench/bench_runtime.py` (`run_task`) — so that no contender
inherits another one's imports, kernels, clusters or memory.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
DOC = ROOT / "docs" / "benchmarks.md"
RUNTIME = BENCH / "bench_runtime.py"
RESULT_PREFIX = "BENCH-RESULT "  # the line bench_runtime.py prints its result on
TASK_TIMEOUT = 1800  # seconds, one measurement
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS", "BLIS_NUM_THREADS")
PYCACHE = Path(tempfile.gettempdir()) / "nbscale-bench-pycache"


# -- where and what was measured --------------------------------------------------------------


def revision(*paths: str, what: str = "") -> str:
    """'commit abc123', with ' with uncommitted <what> changes' when `paths` (default: all tracked
    files) have uncommitted edits."""
    def git(*args):
        return subprocess.run(["git", *args], capture_output=True, text=True, cwd=ROOT).stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", *paths)
    except OSError:
        return "an unknown revision"
    if not commit:
        return "an unknown revision"
    return f"commit {commit}" + (f" with uncommitted {what + ' ' if what else ''}changes" if dirty else "")


def nproc() -> int:
    """Cores this process may use (`nproc`), which can be fewer than the machine has."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def machine() -> dict:
    """The facts a result depends on: cores, CPU model, memory, Python, OS, date."""
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"nproc": nproc(), "cpu": cpu, "memory_gib": psutil.virtual_memory().total / 2**30,
            "python": platform.python_version(), "system": f"{platform.system()} {platform.machine()}",
            "date": time.strftime("%Y-%m-%d"),
            "no_bytecode": bool(os.environ.get("PYTHONDONTWRITEBYTECODE"))}


# -- processes --------------------------------------------------------------------------------


def bench_env(bytecode: bool = True) -> dict:
    """The environment of every run-time contender: one BLAS/OpenMP thread, warnings quiet.

    `bytecode`: write and use .pyc files (in a private PYTHONPYCACHEPREFIX), as an installed
    package has them; PYTHONDONTWRITEBYTECODE in the caller's environment would otherwise make
    every process compile nbscale's own modules (an editable install) from source.
    """
    env = dict(os.environ)
    env.update({name: "1" for name in THREAD_VARS})
    env["PYTHONWARNINGS"] = "ignore"
    if bytecode:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    return env


def script(name: str) -> str:
    """A console script of this interpreter (a pyenv shim in between would add its own start-up)."""
    path = Path(sys.executable).parent / name
    return str(path) if path.exists() else (shutil.which(name) or name)


def nbscale_command() -> list[str]:
    """How to call the `nbscale` CLI of this interpreter."""
    path = Path(script("nbscale"))
    return [str(path)] if path.exists() else [sys.executable, "-m", "nbscale"]


def children_cpu() -> float:
    """CPU seconds of the child processes this process has waited for."""
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return c.ru_utime + c.ru_stime


def timed_process(cmd: list[str], cwd: Path | None = None, env: dict | None = None) -> tuple[float, float]:
    """Wall time and CPU time (the process and the children it reaped) of a whole command."""
    cpu0 = children_cpu()
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=TASK_TIMEOUT)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed (exit {proc.returncode}) in {cwd}:\n"
                           f"{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return elapsed, children_cpu() - cpu0


def median_process(cmd: list[str], runs: int, cwd: Path | None = None, env: dict | None = None,
                   warmup: bool = True) -> float:
    """Median wall time of `runs` runs of a whole command (after one uncounted run: file cache)."""
    if warmup:
        timed_process(cmd, cwd, env)
    return statistics.median(timed_process(cmd, cwd, env)[0] for _ in range(runs))


def run_task(spec: dict, env: dict | None = None) -> dict:
    """One bench_runtime.py task in a fresh process: its result, plus `_cpu` (CPU s of the process
    tree) and `_stderr` (what the process wrote there: worker errors show up in it)."""
    cpu0 = children_cpu()
    proc = subprocess.run([sys.executable, str(RUNTIME), json.dumps(spec)], env=env, capture_output=True,
                          text=True, timeout=TASK_TIMEOUT)
    cpu = children_cpu() - cpu0
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return {**json.loads(line[len(RESULT_PREFIX):]), "_cpu": cpu, "_stderr": proc.stderr}
    raise RuntimeError(f"task {spec['task']} failed (exit {proc.returncode}):\n"
                       f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")


class Folders:
    """A fresh folder per measurement, removed afterwards (1 GB artifacts must not pile up)."""

    def __init__(self, root: Path, write_notebook):
        """`write_notebook(nb, path)` writes a generated notebook."""
        self.root, self.count, self.write_notebook = root, 0, write_notebook

    def new(self, label: str, notebook=None, name: str | None = None) -> tuple[Path, Path | None]:
        """A new folder, holding a copy of `notebook` (a path or a generated notebook) if given."""
        self.count += 1
        folder = self.root / f"{self.count:03d}-{label}"
        folder.mkdir(parents=True)
        if notebook is None:
            return folder, None
        path = folder / (name or f"{label}.ipynb")
        if isinstance(notebook, Path):
            shutil.copy(notebook, path)
        else:
            self.write_notebook(notebook, path)
        return folder, path

    @staticmethod
    def drop(folder: Path):
        shutil.rmtree(folder, ignore_errors=True)


# -- timing -----------------------------------------------------------------------------------


def median_time(fn, runs: int, warmup: bool = False) -> float:
    """Median wall time of `runs` calls of `fn` (after one uncounted call if `warmup`)."""
    if warmup:
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def med(values):
    """Median of the values that are not None (None when there are none)."""
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


# -- machine load -----------------------------------------------------------------------------


class Usage:
    """How busy the machine was with *other* work while a block ran.

    other cores = (CPU time the whole machine was busy - CPU time of this process and the
    children it waited for) / wall time. Children that are not reaped (rare) count as others.
    """

    def __enter__(self):
        self.cpu0, self.own0, self.t0 = _busy_cpu(), _own_cpu(), time.perf_counter()
        self.load0 = os.getloadavg()
        return self

    def __exit__(self, *exc):
        wall = time.perf_counter() - self.t0
        busy, own = _busy_cpu() - self.cpu0, _own_cpu() - self.own0
        self.wall = wall
        self.own_cores = own / wall if wall else 0.0
        self.other_cores = max(0.0, (busy - own) / wall) if wall else 0.0
        self.load1 = os.getloadavg()
        return False

    def to_json(self) -> dict:
        return {"wall": self.wall, "own_cores": self.own_cores, "other_cores": self.other_cores,
                "load_start": self.load0[0], "load_end": self.load1[0]}


def _busy_cpu() -> float:
    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0) - getattr(t, "guest", 0.0) - getattr(t, "guest_nice", 0.0)


def _own_cpu() -> float:
    s = resource.getrusage(resource.RUSAGE_SELF)
    return s.ru_utime + s.ru_stime + children_cpu()


class LoadSampler(threading.Thread):
    """The 1-minute load average every `every` seconds, in the background."""

    def __init__(self, every: float = 5.0):
        super().__init__(daemon=True)
        self.every, self.samples, self.stop_event = every, [], threading.Event()

    def run(self):
        while not self.stop_event.is_set():
            self.samples.append(os.getloadavg()[0])
            self.stop_event.wait(self.every)

    def stop(self) -> dict:
        self.stop_event.set()
        self.join()
        return {"min": min(self.samples), "median": statistics.median(self.samples), "max": max(self.samples)}
