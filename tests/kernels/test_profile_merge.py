"""Merging data profiles (kernels/profile_merge.py): two parts' profiles merge into the whole's."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_profiles import columns, frame

from nbscale.kernels.profile_merge import merge
from nbscale.kernels.profiles import kll_sketch, profile_value


def test_merging_two_halves_gives_the_whole_frames_profile():
    df = frame(3000, seed=1)
    whole, merged = profile_value(df), merge(profile_value(df.iloc[:1100]), profile_value(df.iloc[1100:]))
    assert merged["rows"] == whole["rows"] == 3000
    for name, column in columns(whole).items():
        other = columns(merged)[name]
        assert (other["count"], other["nulls"]) == (column["count"], column["nulls"]), name
        for stat in ("mean", "std", "min", "max"):
            if column.get(stat) is not None:
                assert other[stat] == pytest.approx(column[stat], rel=1e-9), (name, stat)
        if column.get("top"):
            assert other["top"] == column["top"], name
    # quantiles: each merged quantile's true rank is within the sketch's error
    finite = np.sort(df["x"][np.isfinite(df["x"])].to_numpy())
    sketch = kll_sketch(columns(merged)["x"])
    error = sketch.normalized_rank_error(False)
    for rank in (0.05, 0.25, 0.5, 0.75, 0.95):
        value = sketch.get_quantile(rank)
        true_rank = np.searchsorted(finite, value, side="right") / len(finite)
        assert abs(true_rank - rank) <= error + 1 / len(finite), rank


def test_columns_one_part_lacks_and_type_changes_merge_without_failing():
    a = profile_value(pd.DataFrame({"x": [1.0, 2.0], "both": [1, 2], "odd": [1.0, 2.0]}))
    b = profile_value(pd.DataFrame({"y": ["u"], "both": [3], "odd": ["text"]}))
    merged = {c["name"]: c for c in merge(a, b)["columns"]}
    assert (merged["x"]["count"], merged["x"]["nulls"]) == (2, 1) and merged["y"]["nulls"] == 2
    assert merged["both"]["mean"] == 2.0 and merged["odd"]["type"] == "other" and merged["odd"]["count"] == 3
    with pytest.raises(ValueError, match="not profiled"):
        merge({"kind": "dask"}, a)


def test_dask_partitions_are_profiled_in_parallel_and_merged():
    import dask
    import dask.dataframe as dd

    from nbscale.kernels.profile_merge import profile_partitions

    df = frame(2000, seed=2).drop(columns=["when"])
    # the partitions on Dask's threads: which scheduler the test process's config names is not the subject
    with dask.config.set(scheduler="threads"):
        merged = columns(profile_partitions(dd.from_pandas(df, npartitions=4)))
    whole = columns(profile_value(df))
    for name in ("x", "n", "flag", "city", "kind"):
        assert (merged[name]["count"], merged[name]["nulls"]) == (whole[name]["count"], whole[name]["nulls"]), name
    assert merged["x"]["std"] == pytest.approx(whole["x"]["std"], rel=1e-9)
    assert merged["city"]["top"] == whole["city"]["top"]
