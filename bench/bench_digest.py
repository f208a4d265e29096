"""What checking artifacts costs: digests of stored files, per GB, through the artifact store.

Run on demand (not part of the tests):

    python bench/bench_digest.py              # measure, print, update docs/benchmarks.md
    python bench/bench_digest.py --no-doc     # measure and print only
    python bench/bench_digest.py --gb 0.25    # a smaller value

The store hashes each file while the marshaller writes it and again while it reads it back
(`kernels/digest.py`). This puts and gets one float64 numpy array (1 GB by default) through a
local `ArtifactStore` with the digest it ships (xxh3-128), with SHA-256 in its place, and with
a hash that does nothing (the cost of the store without digests), median of 6 each, the
contenders interleaved; and it times each hash alone over the array in memory.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import tempfile
import time

import numpy as np
import xxhash
from common import DOC, Usage, machine, median_time, revision
from doc_sections import produced_by, publish, table, usage_note

from nbscale.kernels import digest
from nbscale.kernels.store import ArtifactStore

START, END = "<!-- bench_digest:start -->", "<!-- bench_digest:end -->"
RUNS = 6  # a multiple of the 3 contenders: each is first, second and third as often


class NoHash:
    """A hash that does nothing: the store's cost without digests."""

    def update(self, data) -> None:
        pass

    def hexdigest(self) -> str:
        return "-"


HASHES = {"xxh3_128 (shipped)": xxhash.xxh3_128, "sha256": hashlib.sha256, "none": NoHash}


def hash_speed(new, value: np.ndarray) -> float:
    """Seconds to hash the array's bytes in memory, in the store's read chunks."""
    view = memoryview(value).cast("B")

    def run():
        h = new()
        for start in range(0, len(view), digest.CHUNK):
            h.update(view[start:start + digest.CHUNK])
        h.hexdigest()

    return median_time(run, RUNS)


def put_get(store: ArtifactStore, value: np.ndarray, key: int) -> tuple[float, float]:
    step_hash = f"sha256:{key:064x}"  # a new key each time: a stored artifact would win the put
    start = time.perf_counter()
    store.put(step_hash, {"X": value}, [], "bench")
    put = time.perf_counter() - start
    start = time.perf_counter()
    back = store.get(step_hash)["X"]
    get = time.perf_counter() - start
    assert back.shape == value.shape
    del back
    store.delete(step_hash)
    return put, get


def measure(gb: float) -> dict:
    value = np.random.default_rng(0).random(int(gb * 1e9) // 8)
    nbytes = value.nbytes
    results = {name: {"put": [], "get": []} for name in HASHES}
    with tempfile.TemporaryDirectory(prefix="nbscale-bench-digest-") as tmp, Usage() as usage:
        store = ArtifactStore(tmp)
        key = 0
        names = list(HASHES)
        for round_ in range(RUNS):
            # interleaved and rotated: drift in the machine, and the write-back of the previous
            # round's gigabyte, hit every contender alike
            for name in names[round_ % len(names):] + names[:round_ % len(names)]:
                new = HASHES[name]
                digest.new_hash = new
                key += 1
                put, get = put_get(store, value, key)
                results[name]["put"].append(put)
                results[name]["get"].append(get)
        digest.new_hash = xxhash.xxh3_128
        speeds = {name: hash_speed(new, value) for name, new in HASHES.items() if name != "none"}
    rows = {name: {"put": statistics.median(r["put"]), "get": statistics.median(r["get"]),
                   "best": min(r["put"]) + min(r["get"])} for name, r in results.items()}
    gets = [g for r in results.values() for g in r["get"]]
    return {"bytes": nbytes, "rows": rows, "hash_s": speeds, "usage": usage.to_json(), "gets": (min(gets), max(gets))}


def section(result: dict, command: str) -> str:
    gb = result["bytes"] / 1e9
    none = result["rows"]["none"]
    rows = []
    for name, r in result["rows"].items():
        medians = (r["put"] + r["get"] - none["put"] - none["get"]) / gb
        best = (r["best"] - none["best"]) / gb
        rows.append([name, *(f"{r[op]:.2f} s ({gb / r[op]:.2f} GB/s)" for op in ("put", "get")),
                     *(["—", "—"] if name == "none" else [f"{medians:+.2f} s", f"{best:+.2f} s"])])
    speeds = [[name, f"{s / gb:.3f} s", f"{gb / s:.1f} GB/s"] for name, s in result["hash_s"].items()]
    usage = result["usage"]
    lines = [
        START,
        "## Artifact digests (`bench/bench_digest.py`)",
        "",
        produced_by(command, revision("kernels", what="run-time"), machine()),
        "",
        f"One float64 numpy array of {gb:.2f} GB put into and read back from a local `ArtifactStore` (a new key "
        f"each time, deleted after), median of {RUNS}, the contenders interleaved in turns. The store hashes each file "
        "while it is written and again while it is read; *none* swaps in a hash that does nothing (the store "
        "without digests). Extra per GB = (put + get) minus the same without digests, per GB, from the medians "
        f"and from the best runs. A get took {result['gets'][0]:.2f}–{result['gets'][1]:.2f} s across runs "
        "(allocating the array while other work ran): the best runs and the hash alone, below, are the steadier "
        "measures.",
        "",
        *table(["digest", "put", "get", "extra per GB (medians)", "extra per GB (best runs)"], rows),
        "",
        "The hash alone over the array in memory, in the store's 16 MiB read chunks, per GB:",
        "",
        *table(["hash", "per GB", "speed"], speeds),
        "",
        usage_note(usage),
        END,
        "",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=1.0, help="size of the array (default 1 GB)")
    parser.add_argument("--no-doc", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args(argv)
    command = "python bench/bench_digest.py" + (f" --gb {args.gb:g}" if args.gb != 1.0 else "")
    text = section(measure(args.gb), command)
    publish(text, DOC, START, END, write=not args.no_doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
