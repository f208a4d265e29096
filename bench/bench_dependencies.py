"""What recording a step's dynamic dependencies costs: `python bench/bench_dependencies.py`.

Run it as its own process (the audit hook is installed once per process and cannot be removed,
so the "before the hook" numbers need a process that has not recorded yet). Prints:
- an open+read+close of a small file and a bare audit event: before the hook, with the hook
  idle (no recording anywhere), and inside a recording (the per-file cost);
- one recording around an empty step: the first in the process (it reads the installed
  distributions' metadata once) and later ones, with and without `fingerprint()`, before and
  after pandas and scikit-learn are loaded (the end of a step looks through `sys.modules`);
- a step reading 100 small files: recording + fingerprint, and `check` when nothing changed;
- digest speed of a 256 MiB file.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from nbscale.kernels.dependencies import record
from nbscale.kernels.fingerprints import DIGEST, check, file_state


def per_call(fn, n: int) -> float:
    """Median over 5 rounds of the time of one call, in microseconds."""
    rounds = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        rounds.append((time.perf_counter() - start) / n * 1e6)
    return statistics.median(rounds)


def once_ms(fn) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e3


def median_ms(fn, n: int = 20) -> float:
    return statistics.median(once_ms(fn) for _ in range(n))


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-deps-") as tmp:
        measure(Path(tmp))


def measure(folder: Path) -> None:
    small = folder / "small.txt"
    small.write_text("x" * 100)

    def read_small():
        with open(small) as f:
            f.read()

    audited = sys._getframe  # raises the "sys._getframe" audit event: any audited call pays the hook
    print(f"python {sys.version.split()[0]}, digest {DIGEST}")
    before = per_call(read_small, 20_000), per_call(audited, 200_000)

    first = once_ms(lambda: record_step(folder, lambda: None))
    idle = per_call(read_small, 20_000), per_call(audited, 200_000)
    with record(str(folder)):
        recording = per_call(read_small, 20_000), per_call(audited, 200_000)
    for label, (opened, event) in (("before the hook", before), ("hook idle", idle), ("recording", recording)):
        print(f"  {label:16} open+read+close {opened:6.2f} µs   audit event {event:5.3f} µs")
    print(f"per opened file while recording: +{recording[0] - before[0]:.2f} µs; idle: +{idle[0] - before[0]:.2f} µs")

    print(f"empty step, first recording in the process: {first:.1f} ms")
    print(f"empty step with {len(sys.modules)} modules loaded: record "
          f"{median_ms(lambda: record_step(folder, lambda: None, fp=False)):.2f} ms, record + fingerprint "
          f"{median_ms(lambda: record_step(folder, lambda: None)):.2f} ms")
    import pandas  # noqa: F401 - a worker that ran a data step: many more modules to look through
    import sklearn.linear_model  # noqa: F401

    print(f"empty step with {len(sys.modules)} modules loaded: record "
          f"{median_ms(lambda: record_step(folder, lambda: None, fp=False)):.2f} ms, record + fingerprint "
          f"{median_ms(lambda: record_step(folder, lambda: None)):.2f} ms")

    files = [folder / f"f{i}.csv" for i in range(100)]
    for f in files:
        f.write_text("a,b\n1,2\n" * 100)

    def read_all():
        for f in files:
            f.read_text()

    print(f"step reading 100 files, record + fingerprint: {median_ms(lambda: record_step(folder, read_all)):.2f} ms")
    fp = record_step(folder, read_all)
    print(f"check, nothing changed (100 files, {len(fp['modules'])} modules, {len(fp['distributions'])} "
          f"distributions, {len(fp['env'])} variables): {median_ms(lambda: check(fp, str(folder))):.2f} ms")

    big = folder / "big.bin"
    with open(big, "wb") as f:
        for _ in range(256):
            f.write(os.urandom(1 << 20))
    seconds = once_ms(lambda: file_state(str(big))) / 1e3
    print(f"digest of a 256 MiB file: {seconds * 1e3:.0f} ms ({256 / seconds:.0f} MiB/s)")


def record_step(folder: Path, body, fp: bool = True):
    with record(str(folder)) as rec:
        body()
    return rec.fingerprint() if fp else None


if __name__ == "__main__":
    main()
