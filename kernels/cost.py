"""What a run cost: per step and per run, CPU-seconds, peak memory, wall time and an estimated cost;
what cache hits saved; and a step's measurements across runs, to spot a step that got slower.

Measurements come from the run store's step runs (`duration_s`, `cpu_s`, `peak_rss_bytes`, measured
where the step ran: `executor.py` in-process and on Dask workers, the kernel's own usage for the
papermill engine). A cached step costs nothing; its `saved_s` is the wall time of the run that
stored its result (kept in the artifact's manifest, `stored_cost`), and what it saved in cost is
priced from the step run that stored it when the run store still has it (else as one busy core).

Prices are currency-neutral units: cost = CPU-hours × `core_hour` + peak GB × wall hours ×
`gb_hour`. Defaults `DEFAULT_CORE_HOUR`, `DEFAULT_GB_HOUR` < pyproject.toml `[tool.nbscale.cost]`
(`core_hour`, `gb_hour`) < NBSCALE_CORE_HOUR, NBSCALE_GB_HOUR < flags.
"""

from __future__ import annotations

import os
import statistics
from dataclasses import dataclass

from .compare import run_duration
from .contract import CACHED, SUCCEEDED
from .errors import ArtifactNotFound
from .project_settings import SettingsError, non_negative, project_table
from .runschema import json_number

DEFAULT_CORE_HOUR = 0.05  # units per CPU-hour
DEFAULT_GB_HOUR = 0.005  # units per GB of peak memory held for an hour
ENV = {"core_hour": "NBSCALE_CORE_HOUR", "gb_hour": "NBSCALE_GB_HOUR"}
TABLE = "cost"
GB = 1e9
SLOWER_FACTOR = 1.5  # a step run is "slower" beyond this many times its median of earlier runs
MIN_EARLIER = 2  # earlier runs needed before a step run can be called slower
HISTORY_RUNS = 200  # runs read to find a step's history, or the step run that stored a cached result


@dataclass(frozen=True)
class Prices:
    core_hour: float = DEFAULT_CORE_HOUR
    gb_hour: float = DEFAULT_GB_HOUR

    def of(self, cpu_s, peak_rss_bytes, wall_s) -> float:
        """The cost of a step run: its CPU time, and its peak memory held for its wall time."""
        cpu = (cpu_s or 0.0) / 3600 * self.core_hour
        memory = (peak_rss_bytes or 0) / GB * (wall_s or 0.0) / 3600 * self.gb_hour
        return cpu + memory

    def to_json(self) -> dict:
        return {"core_hour": self.core_hour, "gb_hour": self.gb_hour, "unit": "units"}


def load_prices(notebook=None, core_hour=None, gb_hour=None, boundary=None) -> Prices:
    """Prices for `notebook`'s runs: defaults < its pyproject.toml < NBSCALE_* variables < the
    arguments (flags). A bad value is a SettingsError saying where it was set."""
    table, origin = project_table(notebook, TABLE, boundary) if notebook is not None else ({}, "")
    unknown = set(table) - set(ENV)
    if unknown:
        raise SettingsError(f"{origin}: unknown key(s) {', '.join(sorted(map(repr, unknown)))}; "
                            f"known: {', '.join(ENV)}")
    values = {"core_hour": DEFAULT_CORE_HOUR, "gb_hour": DEFAULT_GB_HOUR}
    for key in values:
        if key in table:
            values[key] = non_negative(table[key], f"{origin} {key}")
        if os.environ.get(ENV[key], "").strip():
            values[key] = non_negative(os.environ[ENV[key]], ENV[key])
    for key, given in (("core_hour", core_hour), ("gb_hour", gb_hour)):
        if given is not None:
            values[key] = non_negative(given, f"--{key.replace('_', '-')}")
    return Prices(**values)


# -- what a cached step saved ------------------------------------------------------------------------


def measured(summary: dict) -> dict:
    """What a step run measured (its StepResult summary), as the artifact manifest keeps it."""
    return {"wall_s": json_number(summary.get("wall_s")), "cpu_s": json_number(summary.get("cpu_s")),
            "peak_rss_bytes": json_number(summary.get("peak_rss_bytes"))}


def stored_cost(artifacts, key: str) -> dict:
    """What the run that stored the result under `key` measured ({} when the manifest has none)."""
    try:
        cost = artifacts.manifest(key).get("cost")
    except (ArtifactNotFound, OSError, ValueError):
        return {}
    return cost if isinstance(cost, dict) else {}


def saved_seconds(artifacts, key: str) -> float | None:
    """The wall time a cache hit on `key` saved: that of the step run that stored it (None: unknown)."""
    wall = json_number(stored_cost(artifacts, key).get("wall_s"))
    return None if wall is None or wall < 0 else float(wall)


# -- a run ---------------------------------------------------------------------------------------------


def run_cost(run: dict, prices: Prices, producers: dict | None = None) -> dict:
    """The cost model of a run (`RunStore.get_run` row): per step and totals. `producers`: hash → the
    step run that stored that result (`producing_steps`), to price what cached steps saved."""
    steps = [step_cost(s, prices, (producers or {}).get(s.get("hash"))) for s in run.get("steps") or []]
    peaks = [s["peak_rss_bytes"] for s in steps if s["peak_rss_bytes"] is not None]
    return {
        "run_id": run["id"], "prices": prices.to_json(), "steps": steps,
        "total": {
            # steps' wall times add up; `elapsed_s` is the run's own, shorter when steps ran in parallel
            "elapsed_s": run_duration(run),
            "wall_s": _sum(s["wall_s"] for s in steps), "cpu_s": _sum(s["cpu_s"] for s in steps),
            "peak_rss_bytes": max(peaks) if peaks else None, "cost": _sum(s["cost"] for s in steps),
            "cached": sum(1 for s in steps if s["cached"]), "saved_s": _sum(s["saved_s"] for s in steps),
            "saved_cost": _sum(s["saved_cost"] for s in steps),
        },
    }


def step_cost(step: dict, prices: Prices, producer: dict | None = None) -> dict:
    """One step run's measurements, its cost, and (cached) the time and cost it saved."""
    cached = step.get("status") == CACHED
    wall, cpu = json_number(step.get("duration_s")), json_number(step.get("cpu_s"))
    peak = json_number(step.get("peak_rss_bytes"))
    out = {"step": step["step"], "status": step["status"], "cached": cached, "wall_s": wall,
           "cpu_s": None if cached else cpu, "peak_rss_bytes": None if cached else peak,
           "cost": 0.0 if cached else (prices.of(cpu, peak, wall) if cpu is not None or wall is not None else None),
           "saved_s": None, "saved_cost": None}
    if cached:
        saved = json_number(step.get("saved_s"))
        if saved is None and producer is not None:
            saved = json_number(producer.get("duration_s"))
        out["saved_s"] = saved
        out["saved_cost"] = _saved_cost(saved, producer, prices)
    return out


def _saved_cost(saved_s, producer: dict | None, prices: Prices) -> float | None:
    if producer is not None and producer.get("cpu_s") is not None:
        return prices.of(producer.get("cpu_s"), producer.get("peak_rss_bytes"), producer.get("duration_s"))
    return None if saved_s is None else prices.of(saved_s, 0, saved_s)  # priced as one busy core


def producing_steps(store, notebook, hashes=None, limit: int = HISTORY_RUNS) -> dict:
    """Hash → the newest succeeded step run of `notebook` that stored its result under that hash;
    with `hashes`, only those, and the search ends once each is found (usually in the last runs)."""
    wanted = None if hashes is None else set(hashes)
    out: dict = {}
    if wanted is not None and not wanted:
        return out
    for run in _runs(store, notebook, limit):
        for row in run["steps"]:
            if row["status"] == SUCCEEDED and row.get("hash") and (wanted is None or row["hash"] in wanted):
                out.setdefault(row["hash"], row)
        if wanted is not None and wanted <= out.keys():
            break
    return out


def cached_hashes(run: dict) -> list[str]:
    """The keys of the run's cached steps (what `producing_steps` needs to look for)."""
    return [s["hash"] for s in run.get("steps") or [] if s.get("status") == CACHED and s.get("hash")]


def notebook_steps(store, notebook, limit: int = HISTORY_RUNS) -> list[dict]:
    """Every step run of the newest `limit` runs of `notebook`, newest run first, each with its
    run's id, creation time and status (`run_id`, `created`, `run_status`)."""
    return [{**step, "created": run["created"], "run_status": run["status"]}
            for run in _runs(store, notebook, limit) for step in run["steps"]]


def _runs(store, notebook, limit: int):
    """The newest `limit` runs of `notebook` with their steps, newest first, read one by one."""
    for summary in store.list_runs(str(notebook), limit=limit):
        yield store.get_run(summary["id"])


# -- a step across runs -----------------------------------------------------------------------------


def step_history(store, notebook, step: str, limit: int = 20, factor: float = SLOWER_FACTOR) -> list[dict]:
    """The runs of one step of `notebook`, newest first (at most `limit`): its wall time, CPU time,
    peak memory and whether it was `slower` than `factor` × its median wall time of earlier runs."""
    rows = [r for r in notebook_steps(store, notebook, HISTORY_RUNS) if r["step"] == step]
    return history_rows(list(reversed(rows)), factor)[::-1][:limit]


def history_rows(oldest_first: list[dict], factor: float = SLOWER_FACTOR) -> list[dict]:
    """History rows of a step's runs (oldest first): only runs where its code ran (succeeded) count
    towards the median a later run is compared with; cached runs cost nothing and say so."""
    out, durations = [], []
    for row in oldest_first:
        wall = json_number(row.get("duration_s"))
        median = statistics.median(durations) if len(durations) >= MIN_EARLIER else None
        ran = row["status"] == SUCCEEDED and wall is not None
        slower = bool(ran and median and wall > factor * median)
        out.append({"run_id": row["run_id"], "created": row.get("created"), "status": row["status"],
                    "cached": row["status"] == CACHED, "wall_s": wall, "cpu_s": json_number(row.get("cpu_s")),
                    "peak_rss_bytes": json_number(row.get("peak_rss_bytes")),
                    "median_before_s": median, "slower": slower,
                    "ratio": json_number(wall / median) if ran and median else None})
        if ran:
            durations.append(wall)
    return out


def _sum(values) -> float | None:
    numbers = [v for v in values if v is not None]
    return sum(numbers) if numbers else None
