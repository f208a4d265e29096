"""Merging data profiles: the profile of two parts' rows from the parts' profiles, as whylogs merges.

Counts, nulls, infinite values, min and max add up exactly; mean and std combine exactly (Chan et
al.'s pairwise update of count, mean and sum of squared deviations); the KLL and frequent-items
sketches merge within their error. So the partitions of a large dataset can be profiled in parallel
(`profiles.profile_value` on each) and merged. Parts profiled from samples (frames larger than
`profiles.SAMPLE_ROWS` rows) merge their sketches as equals: right when the parts have about the same
number of rows, weighted by sample size otherwise.
"""

from __future__ import annotations

from .profiles import (
    BOOL,
    NUMERIC,
    OTHER,
    category_counts,
    combine,
    encode,
    finite_numbers,
    frequent_sketch,
    kll_sketch,
    top_counts,
    with_derived,
)


def merge(a: dict, b: dict) -> dict:
    """The profile of two parts' data (the rows of `a` then those of `b`), from their profiles.

    Columns are matched by name and position among equal names; a column only one part has is kept
    as that part's (counted as missing in the other: its nulls grow by the other part's rows)."""
    if a.get("kind") == "dask" or b.get("kind") == "dask":
        raise ValueError("Dask collections are not profiled: nothing to merge")
    by_key_b = dict(keyed(b.get("columns", [])))
    columns = []
    for key, column in keyed(a.get("columns", [])):
        other = by_key_b.pop(key, None)
        columns.append(finite_numbers(merge_column(column, other)) if other else _missing_in(column, b["rows"]))
    columns += [_missing_in(column, a["rows"]) for column in by_key_b.values()]
    merged = {**a, "rows": a["rows"] + b["rows"], "sample": a.get("sample", 0) + b.get("sample", 0),
              "columns_total": max(a.get("columns_total", 0), b.get("columns_total", 0)),
              "columns_profiled": len(columns), "columns": columns}
    merged["truncated"] = merged["columns_total"] > len(columns)
    merged.pop("shape", None)
    return merged


def keyed(columns: list[dict]) -> list[tuple]:
    """(name, occurrence) → column: duplicated names are told apart by their order."""
    seen: dict[str, int] = {}
    pairs = []
    for column in columns:
        name = column.get("name", "")
        seen[name] = seen.get(name, 0) + 1
        pairs.append(((name, seen[name]), column))
    return pairs


def _missing_in(column: dict, rows: int) -> dict:
    return {**column, "nulls": column.get("nulls", 0) + rows}


def merge_column(a: dict, b: dict) -> dict:
    """One column's profile of both parts' rows (of the same type; else counts only, type `other`)."""
    if a.get("type") != b.get("type"):
        return {"name": a["name"], "dtype": f"{a.get('dtype')} | {b.get('dtype')}", "type": OTHER,
                "count": a.get("count", 0) + b.get("count", 0), "nulls": a.get("nulls", 0) + b.get("nulls", 0)}
    merged = {**a, "count": a.get("count", 0) + b.get("count", 0), "nulls": a.get("nulls", 0) + b.get("nulls", 0),
              "sample": a.get("sample", 0) + b.get("sample", 0)}
    estimated = sorted(set(a.get("estimated", [])) | set(b.get("estimated", [])))
    if estimated:
        merged["estimated"] = estimated
    if a["type"] == NUMERIC:
        n, mean, m2 = combine(a["count"], a.get("mean") or 0.0, a["m2"], b["count"], b.get("mean") or 0.0, b["m2"])
        merged.update(infinite=a.get("infinite", 0) + b.get("infinite", 0), mean=mean if n else None, m2=m2,
                      min=_extreme(min, a.get("min"), b.get("min")), max=_extreme(max, a.get("max"), b.get("max")),
                      kll=_merged(kll_sketch(a), kll_sketch(b)))
        return with_derived(merged)
    if a.get("frequent") or b.get("frequent"):
        merged["frequent"] = _merged(frequent_sketch(a), frequent_sketch(b))
        scale = (merged["count"] / merged["sample"]) if merged["sample"] else 1.0
        merged["top"] = top_counts({k: int(v) for k, v in category_counts(merged).items()}, scale)
    if a["type"] == BOOL:
        true = (a.get("mean") or 0.0) * a["count"] + (b.get("mean") or 0.0) * b["count"]
        merged["mean"] = true / merged["count"] if merged["count"] else None
    merged.pop("distinct_in_sample", None)
    return merged


def _extreme(pick, a, b):
    present = [v for v in (a, b) if v is not None]
    return pick(present) if present else None


def _merged(a, b) -> str | None:
    if a is None or b is None:
        sketch = a or b
        return encode(sketch) if sketch is not None else None
    a.merge(b)
    return encode(a)


def profile_partitions(collection) -> dict:
    """The profile of a Dask DataFrame, Series or Array, its partitions profiled in parallel where
    the collection lives and merged here. This computes the collection (which is why a step's Dask
    outputs are not profiled on their own): call it on purpose, e.g. in a step, on data worth it."""
    import dask

    from .profiles import profile_value

    parts = collection.to_delayed()
    parts = list(parts.ravel()) if hasattr(parts, "ravel") else list(parts)
    profiles = dask.compute(*[dask.delayed(profile_value)(part) for part in parts])
    merged = profiles[0]
    for profile in profiles[1:]:
        merged = merge(merged, profile)
    return merged
