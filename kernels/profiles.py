"""Data profiles: per-column summaries of the DataFrame and array values a step hands on, taken on
the worker right after the step succeeded (`task.py` calls `step_profiles`; the run store keeps the
result in `step_runs.profiles`, the artifact's manifest keeps it beside the values for cache hits).

Per column: count (finite / non-null values), nulls, infinite values, mean, std, min, max, a
quantile sketch (Apache DataSketches KLL, numeric columns) and top categories (a frequent-items
sketch, for categorical, string, object and bool columns). Every part is mergeable, as whylogs'
profiles are: `profile_merge.merge(a, b)` of two partitions' profiles is the profile of both (counts, nulls and
moments exactly; quantiles and frequencies within the sketches' error), so partitions can be
profiled in parallel. Sketches are kept serialised (base64) in the JSON; `profile_records.light`
drops them.

Cost stays a small part of a step's time, with no second pass over large data: counts, nulls and
moments are vectorised numpy over cache-sized chunks (one read of the column), and the sketches are
fed a seeded sample of at most SAMPLE_ROWS rows (then `sample` < `rows`, and top counts are scaled
estimates; nulls of a large object column are estimated from the sample too: `estimated` names the
fields). At most MAX_COLUMNS columns of a value and MAX_VALUES values of a step are profiled (the
profile says so: `columns_total`, `truncated`). Dask collections are handed on as task graphs and
are not profiled (that would compute them). Profiling never fails a step: a value it cannot profile
is left out, with the reason under `skipped`.
"""

from __future__ import annotations

import base64
import math
import os
import sys
import time
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from .interrupts import uninterrupted
from .marshal import loaded_module

FORMAT = "nbscale.profile/1"
MAX_COLUMNS = 200
MAX_VALUES = 50
SAMPLE_ROWS = 50_000  # rows fed to the sketches: their own error (KLL ≈ 1.3 %) dominates beyond
SEED = 20_260_101  # the sample is the same for the same data: a re-run profiles alike
KLL_K = 200  # KLL accuracy: about 1.3 % normalised rank error
FREQUENT_LG_K = 10  # frequent items: up to 768 items tracked
FED_ITEMS = 4096  # distinct values of the sample fed to the frequent-items sketch, most frequent first
TOP = 10  # top categories shown in the profile
LONGEST_NAME = 200  # characters of a column name kept
QUANTILES = (0.0, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 1.0)
CHUNK = 131_072  # values per chunk of the moments pass (1 MiB): its later passes read the CPU cache
SMALL_COUNT = 5_000  # values counted in Python rather than by pandas
NUMERIC, BOOL, CATEGORICAL, OTHER = "numeric", "bool", "categorical", "other"
LATER_MIN_BYTES = 8 * 2**20  # below this a profile costs less than handing it to another thread
# what profiling imports: a thread must not import them while a step runs (the step would see them
# half-initialised), so profiles are taken in another thread only once they are imported
IMPORTS = ("pandas", "datasketches")
PARALLEL_MIN_ROWS = 1_000_000  # columns of fewer rows are profiled one after the other
_cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _new_column_pool() -> ThreadPoolExecutor | None:
    return ThreadPoolExecutor(max_workers=min(_cores, 8), thread_name_prefix="nbscale-profile-column") \
        if _cores > 1 else None


def _fresh_pool_after_fork() -> None:
    # the copied pool counts the parent's threads, which did not come along, and would never run a column
    global _column_pool
    _column_pool = _new_column_pool()


_column_pool = _new_column_pool()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_fresh_pool_after_fork)


# -- a step's values ----------------------------------------------------------------------------------


def step_profiles(values: dict) -> dict | None:
    """Profiles of the frames and arrays among a step's `values` (name → value); None when none is
    one, or when profiling failed (a warning says why: the step's result stands)."""
    if not values:
        return None
    try:
        return _step_profiles(values)
    except Exception as exc:  # noqa: BLE001 - a profile is best effort, never a failed step
        warnings.warn(f"nbscale could not profile the step's values: {type(exc).__name__}: {exc}", stacklevel=2)
        return None


def can_wait(values: dict) -> bool:
    """Whether `values` are worth profiling later in another thread (the background store write's):
    large values, and what profiling imports already imported (a thread that imported pandas while
    the next step runs would show that step a half-imported pandas). The sketches' library is
    imported here, on the caller's thread (4 ms, once); pandas is not."""
    if _bytes(values) < LATER_MIN_BYTES:
        return False
    try:
        _sketches()
    except ImportError:  # profiled at once, which says what is missing
        return False
    return all(loaded_module(m) for m in IMPORTS)


def _sketches():
    """The sketches' library, a C++ extension: a Ctrl-C during its import would abort the process
    (nanobind makes the KeyboardInterrupt a C++ exception), so the interrupt waits until it is
    imported."""
    if "datasketches" in sys.modules:  # imported, or being imported by another thread (waited for)
        import datasketches
    else:
        with uninterrupted():
            import datasketches
    return datasketches


def _bytes(values: dict) -> int:
    """The memory of the profilable values, without reading them (object columns count as pointers);
    0 when a value will not say (a hostile subclass): it is then profiled at once, which never fails."""
    total = 0
    try:
        for value in values.values():
            kind = value_kind(value)
            if kind == "dataframe":
                total += int(value.memory_usage(index=False, deep=False).sum())
            elif kind in ("series", "ndarray"):
                total += int(value.nbytes)
    except Exception:  # noqa: BLE001 - a profile is best effort, never a failed step
        return 0
    return total


def _step_profiles(values: dict) -> dict | None:
    started = time.perf_counter()
    kinds = {name: value_kind(value) for name, value in values.items()}
    if not any(kinds.values()):  # no frame or array: nothing imports the sketches (16 ms a process)
        return None
    _sketches()  # missing where the step ran (a bare worker): a warning, no profiles
    profiled, skipped = {}, {}
    for name, value in values.items():
        kind = kinds[name]
        if kind is None:
            continue
        if len(profiled) >= MAX_VALUES:
            skipped[str(name)] = f"more than {MAX_VALUES} frames and arrays in one step"
            continue
        try:
            profiled[str(name)] = profile_value(value)
        except Exception as exc:  # noqa: BLE001 - a profile is best effort, never a failed step
            skipped[str(name)] = f"could not be profiled: {type(exc).__name__}: {exc}"[:500]
    if not profiled and not skipped:
        return None
    return {"format": FORMAT, "values": profiled, "skipped": skipped,
            "seconds": round(time.perf_counter() - started, 6)}


def value_kind(value: Any) -> str | None:
    """"dataframe", "series", "ndarray", "dask" (a collection, not profiled) or None."""
    if callable(getattr(type(value), "__dask_graph__", None)):
        return "dask"
    pd = loaded_module("pandas")  # a pandas value exists only once pandas is imported
    if pd is not None and isinstance(value, pd.DataFrame):
        return "dataframe"
    if pd is not None and isinstance(value, pd.Series):
        return "series"
    if isinstance(value, np.ndarray) and value.ndim > 0:
        return "ndarray"
    return None


def profile_value(value: Any) -> dict:
    """The profile of one frame, series or array (see `value_kind`)."""
    with np.errstate(all="ignore"):  # inf - inf, overflowing squares: handled, not worth a warning
        return _profile(value, value_kind(value))


def _profile(value: Any, kind: str | None) -> dict:
    if kind == "dask":
        return {"kind": "dask", "note": "a Dask collection is handed on as a task graph: not profiled"}
    if kind == "dataframe":
        columns = [(column_name(c), value.iloc[:, i]) for i, c in enumerate(value.columns[:MAX_COLUMNS])]
        return _table(kind, len(value), value.shape[1], columns)
    if kind == "series":
        return _table(kind, len(value), 1, [(column_name(value.name if value.name is not None else "value"), value)])
    if kind == "ndarray":
        return _array(value)
    raise TypeError(f"not a frame or an array: {type(value).__name__}")


def column_name(name: Any) -> str:
    """A column's name as text (non-string names through str), cut to LONGEST_NAME characters."""
    text = name if isinstance(name, str) else str(name)
    return text if len(text) <= LONGEST_NAME else text[:LONGEST_NAME - 1] + "…"


def _array(array: np.ndarray) -> dict:
    if array.dtype.names:  # a structured array: its fields are the columns
        fields = array.dtype.names[:MAX_COLUMNS]
        columns = [(column_name(f), array[f].reshape(-1)) for f in fields]
        return _table("ndarray", len(array), len(array.dtype.names), columns, shape=array.shape)
    if array.ndim == 2:
        columns = [(str(j), array[:, j]) for j in range(min(array.shape[1], MAX_COLUMNS))]
        return _table("ndarray", array.shape[0], array.shape[1], columns, shape=array.shape)
    # 1-D, or images and other tensors: one column of every element
    return _table("ndarray", array.size, 1, [("values", array.reshape(-1))], shape=array.shape)


def _table(kind: str, rows: int, total: int, columns: list, shape=None) -> dict:
    sample = _sample_index(rows)
    profile = {"kind": kind, "rows": int(rows), "columns_total": int(total), "columns_profiled": len(columns),
               "truncated": total > len(columns), "sample": int(rows if sample is None else len(sample)),
               "columns": _columns(columns, rows, sample)}
    if shape is not None:
        profile["shape"] = [int(n) for n in shape]
    return profile


def _columns(columns: list, rows: int, sample: np.ndarray | None) -> list[dict]:
    # the columns of a large value in parallel: numpy's reductions let go of the GIL, and each
    # column's passes run in its core's cache (1 GB frame, 2 idle cores: 262 -> 166 ms)
    if rows < PARALLEL_MIN_ROWS or len(columns) < 2 or _column_pool is None:
        return [profile_column(name, column, rows, sample) for name, column in columns]
    return list(_column_pool.map(lambda item: profile_column(item[0], item[1], rows, sample), columns))


def _sample_index(rows: int) -> np.ndarray | None:
    """Sorted row positions of the sketches' sample; None: every row."""
    if rows <= SAMPLE_ROWS:
        return None
    return np.sort(np.random.default_rng(SEED).choice(rows, SAMPLE_ROWS, replace=False))


# -- one column ------------------------------------------------------------------------------------------


def column_type(dtype) -> str:
    import pandas as pd
    from pandas.api import types

    if types.is_bool_dtype(dtype):
        return BOOL
    if isinstance(dtype, pd.CategoricalDtype) or types.is_string_dtype(dtype) or types.is_object_dtype(dtype):
        return CATEGORICAL
    if types.is_complex_dtype(dtype):
        return OTHER
    if types.is_numeric_dtype(dtype) or types.is_datetime64_any_dtype(dtype) or types.is_timedelta64_dtype(dtype):
        return NUMERIC
    return OTHER


def profile_column(name: str, column, rows: int, sample: np.ndarray | None) -> dict:
    """The profile of one column (a pandas Series or a 1-D numpy array) of `rows` values."""
    dtype = column.dtype
    kind = column_type(dtype)
    profile = {"name": name, "dtype": str(dtype), "type": kind}
    try:
        if kind == NUMERIC:
            profile.update(_numeric(_floats(column), sample))
        elif kind == BOOL:
            profile.update(_bool(column))
        elif kind == CATEGORICAL:
            profile.update(_categorical(column, rows, sample))
        else:
            nulls = int(_isna(column).sum())
            profile.update({"count": rows - nulls, "nulls": nulls})
    except Exception as exc:  # noqa: BLE001 - one odd column must not lose the others
        profile.update({"type": OTHER, "error": f"{type(exc).__name__}: {exc}"[:300]})
    return finite_numbers(profile)


def finite_numbers(value):
    """`value` with NaN and infinities (an overflowing sum of squares, say) as None: JSON has neither."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite_numbers(v) for v in value]
    return value


def _isna(column):
    import pandas as pd

    return np.asarray(pd.isna(column))


def _floats(column) -> np.ndarray:
    """The column as float64 values, NaN for missing ones (a view where it is float64 already);
    datetimes as epoch seconds, timedeltas as seconds."""
    import pandas as pd
    from pandas.api import types

    dtype = column.dtype
    if types.is_datetime64_any_dtype(dtype) or types.is_timedelta64_dtype(dtype):
        values = pd.Series(column, copy=False)
        if isinstance(values.dtype, pd.DatetimeTZDtype):
            values = values.dt.tz_convert(None)
        times = values.to_numpy()
        floats = times.view("int64").astype(np.float64) / _per_second(np.datetime_data(times.dtype)[0])
        floats[np.isnat(times)] = np.nan
        return floats
    if isinstance(column, np.ndarray) or isinstance(dtype, np.dtype):
        return np.asarray(column)  # a view; other widths are converted chunk by chunk
    return column.to_numpy(dtype=np.float64, na_value=np.nan)  # nullable and Arrow-backed dtypes


def _per_second(unit: str) -> float:
    return {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}.get(unit, 1e9)


def _numeric(values: np.ndarray, sample: np.ndarray | None) -> dict:
    stats = moments(values)
    picked = values if sample is None else values[sample]
    picked = np.asarray(picked, dtype=np.float64)
    picked = picked[np.isfinite(picked)]
    sketch = _kll(picked) if picked.size else None
    stats["kll"] = encode(sketch) if sketch is not None else None
    stats["sample"] = int(picked.size)  # finite values the sketch was fed
    return with_derived(stats, sketch)


def moments(values: np.ndarray) -> dict:
    """count, nulls, infinite, mean, m2 (sum of squared deviations), min, max of one read of
    `values` in cache-sized chunks; per chunk s and Σx² give the moments, combined as Chan et al."""
    n = nulls = infinite = 0
    mean = m2 = 0.0
    low, high = math.inf, -math.inf
    buffer = np.empty(min(CHUNK, max(values.size, 1)), dtype=np.float64)
    for start in range(0, values.size, CHUNK):
        chunk = values[start:start + CHUNK]
        if chunk.dtype != np.float64:
            chunk = buffer[:len(chunk)]
            chunk[...] = values[start:start + CHUNK]
        total = float(chunk.sum())
        if not math.isfinite(total):
            finite = np.isfinite(chunk)
            missing = int(np.isnan(chunk).sum())
            nulls, infinite = nulls + missing, infinite + chunk.size - int(finite.sum()) - missing
            chunk = chunk[finite]
            total = float(chunk.sum())
        size = chunk.size
        if not size:
            continue
        chunk_mean = total / size
        squares = float(np.einsum("i,i->", chunk, chunk))  # not np.dot: BLAS threads thrash under load
        chunk_m2 = squares - total * chunk_mean
        if chunk_m2 <= 1e-6 * squares:  # the difference lost digits (|mean| ≫ std): centre first
            centred = chunk - chunk_mean
            chunk_m2 = float(np.einsum("i,i->", centred, centred))
        low, high = min(low, float(chunk.min())), max(high, float(chunk.max()))
        n, mean, m2 = combine(n, mean, m2, size, chunk_mean, chunk_m2)
    return {"count": n, "nulls": nulls, "infinite": infinite, "mean": mean if n else None, "m2": m2,
            "min": low if n else None, "max": high if n else None}


def combine(n_a: int, mean_a: float, m2_a: float, n_b: int, mean_b: float, m2_b: float) -> tuple:
    """(n, mean, m2) of two parts (Chan, Golub and LeVeque's pairwise update)."""
    n = n_a + n_b
    if n == 0:
        return 0, 0.0, 0.0
    delta = mean_b - mean_a
    return n, mean_a + delta * n_b / n, m2_a + m2_b + delta * delta * n_a * n_b / n


def _bool(column) -> dict:
    values = np.asarray(column.to_numpy(dtype=object, na_value=None) if not isinstance(column, np.ndarray)
                        and not isinstance(column.dtype, np.dtype) else column)
    if values.dtype == object:
        nulls = int(_isna(values).sum())
        true = int(sum(1 for v in values if v is True or v is np.True_))
    else:
        nulls, true = 0, int(np.count_nonzero(values))
    count = int(values.size) - nulls
    counts = {"True": true, "False": count - true}
    return {"count": count, "nulls": nulls, "mean": true / count if count else None,
            "frequent": encode(_frequent(counts)), "sample": count, "top": top_counts(counts, 1.0)}


def _categorical(column, rows: int, sample: np.ndarray | None) -> dict:
    import pandas as pd

    series = column if isinstance(column, pd.Series) else pd.Series(column, copy=False)
    estimated = []
    if isinstance(series.dtype, pd.CategoricalDtype):
        codes = series.cat.codes.to_numpy()
        nulls = int(np.count_nonzero(codes < 0))
        picked = codes if sample is None else codes[sample]
        picked = picked[picked >= 0]
        found = np.bincount(picked, minlength=len(series.cat.categories))
        counts = {str(series.cat.categories[i]): int(c) for i, c in enumerate(found) if c}
        fed = int(picked.size)
    else:
        picked = series if sample is None else series.iloc[sample]
        missing = _isna(picked)
        if sample is None or series.dtype != object:
            nulls = int(missing.sum()) if sample is None else int(series.isna().sum())
        else:  # pd.isna of millions of Python objects costs more than the step should pay
            nulls = round(int(missing.sum()) * rows / len(picked))
            estimated = ["count", "nulls"]
        present = picked.to_numpy(dtype=object)[~missing] if missing.any() else picked.to_numpy(dtype=object)
        counts = _value_counts(present)
        fed = sum(counts.values())
    scale = 1.0 if sample is None else rows / len(sample)
    profile = {"count": rows - nulls, "nulls": nulls, "frequent": encode(_frequent(counts)), "sample": fed,
               "distinct_in_sample": len(counts), "top": top_counts(counts, scale)}
    if estimated or scale != 1.0:
        profile["estimated"] = [*estimated, "top"]
    return profile


def _value_counts(values: np.ndarray) -> dict[str, int]:
    """Counts of the (non-null) values as text: mixed and unhashable values as their str, so 1 and
    "1" are one category. Few values are counted in Python (cheaper than pandas' set-up per column)."""
    import pandas as pd

    if len(values) <= SMALL_COUNT:
        found = Counter(v if isinstance(v, str) else str(v) for v in values)
        return dict(found.most_common())
    try:
        found = pd.Series(values, dtype=object, copy=False).value_counts(sort=True)
    except TypeError:  # unhashable values: lists, dicts
        found = pd.Series([str(v) for v in values], dtype=object).value_counts(sort=True)
    counts: dict[str, int] = {}
    for value, count in found.items():
        key = value if isinstance(value, str) else str(value)
        counts[key] = counts.get(key, 0) + int(count)
    return counts


def top_counts(counts: dict[str, int], scale: float) -> list:
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:TOP]
    return [[value, int(round(count * scale))] for value, count in ordered]


# -- sketches --------------------------------------------------------------------------------------------


def _kll(values: np.ndarray):
    kll_doubles_sketch = _sketches().kll_doubles_sketch

    sketch = kll_doubles_sketch(KLL_K)
    sketch.update(np.ascontiguousarray(values, dtype=np.float64))
    return sketch


def _frequent(counts: dict[str, int]):
    frequent_strings_sketch = _sketches().frequent_strings_sketch

    sketch = frequent_strings_sketch(FREQUENT_LG_K)
    for value, count in sorted(counts.items(), key=lambda item: -item[1])[:FED_ITEMS]:
        if count > 0:
            sketch.update(value, int(count))
    return sketch


def encode(sketch) -> str:
    return base64.b64encode(sketch.serialize()).decode("ascii")


def kll_sketch(column: dict):
    """The column's KLL quantile sketch (None when it has none)."""
    kll_doubles_sketch = _sketches().kll_doubles_sketch

    text = column.get("kll")
    return kll_doubles_sketch.deserialize(base64.b64decode(text)) if text else None


def frequent_sketch(column: dict):
    """The column's frequent-items sketch (None when it has none)."""
    frequent_strings_sketch = _sketches().frequent_strings_sketch

    text = column.get("frequent")
    return frequent_strings_sketch.deserialize(base64.b64decode(text)) if text else None


def category_counts(column: dict) -> dict[str, float]:
    """Category → estimated count in the sketch (its sample), the most frequent ones."""
    frequent_items_error_type = _sketches().frequent_items_error_type

    sketch = frequent_sketch(column)
    if sketch is None:
        return {}
    return {item: float(estimate) for item, estimate, *_ in
            sketch.get_frequent_items(frequent_items_error_type.NO_FALSE_NEGATIVES)}


def with_derived(stats: dict, sketch=None) -> dict:
    """std and the quantiles shown, from m2 and the KLL sketch (`sketch`, else the one in `stats`)."""
    n = stats["count"]
    stats["std"] = math.sqrt(stats["m2"] / (n - 1)) if n > 1 else (0.0 if n == 1 else None)
    sketch = sketch if sketch is not None else kll_sketch(stats)
    stats["quantiles"] = ({str(q): v for q, v in zip(QUANTILES, sketch.get_quantiles(list(QUANTILES)))}
                          if sketch is not None and not sketch.is_empty() else {})
    return stats
