"""What the benchmark scripts share: their sections of docs/benchmarks.md, the revision and the
machine they measured, and a median timer."""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def replace_section(doc: Path, start: str, end: str, section: str) -> None:
    """Put `section` (which begins with `start` and ends with `end`) in place of the old one."""
    text = doc.read_text(encoding="utf-8") if doc.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end) + r"\n?", re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    doc.write_text(text, encoding="utf-8")


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


def nproc() -> str:
    try:
        return subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip() or str(os.cpu_count())
    except OSError:
        return str(os.cpu_count())


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
