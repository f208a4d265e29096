"""Data drift (kernels/drift.py): the test by column type and size, thresholds, missing columns and type
changes, the reference run, and drift between real runs (the comparison model's `drift` section)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import make_notebook

from nbscale.kernels.compare import compare_runs
from nbscale.kernels.drift import compare_profiles, load_thresholds, reference_for, run_drift
from nbscale.kernels.profiles import step_profiles
from nbscale.kernels.project_settings import SettingsError
from nbscale.kernels.runner import RunOptions, default_run_store, run_notebook

LOCAL = RunOptions(engine="local")


def run_row(run_id: str, **values) -> dict:
    """A run row as the run store gives it, with one step `make` that handed on `values`."""
    return {"id": run_id, "steps": [{"step": "make", "profiles": step_profiles(values)}]}


def data(rows: int, shift: float = 0.0, share_b: float = 0.3, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"moved": rng.normal(shift, 1, rows), "still": np.random.default_rng(99).normal(0, 1, rows),
                         "cat": rng.choice(["a", "b"], rows, p=[1 - share_b, share_b]),
                         "same_cat": np.random.default_rng(98).choice(["x", "y", "z"], rows)})


def drift_of(reference: pd.DataFrame, current: pd.DataFrame, **settings) -> dict:
    model = compare_profiles(run_row("r", df=reference), run_row("c", df=current), {**load_thresholds(), **settings})
    (value,) = model["values"]
    return value | {"by_name": {c["name"]: c for c in value["columns"]}, "model": model}


@pytest.mark.parametrize("rows,numeric,categorical", [(500, "ks", "chisquare"), (5000, "wasserstein", "jensenshannon")])
def test_a_shifted_column_drifts_and_an_unchanged_one_does_not(rows, numeric, categorical):
    value = drift_of(data(rows), data(rows, shift=1.0, share_b=0.8, seed=1))
    moved, still, cat, same = (value["by_name"][n] for n in ("moved", "still", "cat", "same_cat"))
    assert (moved["test"], cat["test"]) == (numeric, categorical)
    assert moved["drifted"] and cat["drifted"] and not still["drifted"] and not same["drifted"]
    assert moved["psi"] > 0.2 and still["psi"] < 0.1
    assert cat["categories"][0][0] in ("a", "b")
    assert value["drifted"] == 2 and value["share"] == 0.5 and value["dataset_drift"]
    assert value["model"]["columns_drifted"] == 2 and value["model"]["drifted"]


def test_the_same_data_does_not_drift():
    value = drift_of(data(800), data(800))
    assert value["drifted"] == 0 and all(c["score"] < 0.05 for c in value["columns"])


def test_thresholds_and_tests_are_configurable(tmp_path):
    assert not drift_of(data(500), data(500, shift=1.0), ks_p_value=0.0)["by_name"]["moved"]["drifted"]
    forced = drift_of(data(500), data(500, shift=1.0), numeric_test="wasserstein")["by_name"]["moved"]
    assert forced["test"] == "wasserstein" and forced["drifted"]
    (tmp_path / "pyproject.toml").write_text("[tool.nbscale.drift]\nwasserstein = 0.5\nshare = 0.25\n")
    notebook = tmp_path / "nb.ipynb"
    assert load_thresholds(notebook)["wasserstein"] == 0.5
    assert load_thresholds(notebook, {"share": "0.75"})["share"] == 0.75
    with pytest.raises(SettingsError, match="unknown drift setting 'shares'"):
        load_thresholds(notebook, {"shares": "1"})
    with pytest.raises(SettingsError, match="numeric_test must be one of"):
        load_thresholds(None, {"numeric_test": "t-test"})


def test_missing_new_retyped_and_empty_columns_are_reported_not_crashes():
    before = pd.DataFrame({"gone": [1.0, 2.0], "kept": [1, 2], "retyped": [1.0, 2.0], "emptied": [1.0, 2.0]})
    after = pd.DataFrame({"kept": [1.0, 2.0], "retyped": ["a", "b"], "emptied": [np.nan, np.nan], "new": [1, 2]})
    value = drift_of(before, after)
    assert value["missing_columns"] == ["gone"] and value["new_columns"] == ["new"]
    assert value["type_changes"] == [{"name": "retyped", "from": "float64", "to": "str"}]
    emptied = value["by_name"]["emptied"]
    assert emptied["drifted"] and emptied["note"] == "no values in the current run"
    assert value["compared"] == 2 and value["by_name"]["kept"]["note"] == "dtype changed: int64 → float64"
    assert not value["by_name"]["kept"]["drifted"]
    empty = drift_of(before.iloc[:0], after.iloc[:0])
    assert empty["drifted"] == 0 and not empty["dataset_drift"]


def test_values_only_one_run_has_are_listed():
    model = compare_profiles(run_row("r", a=np.ones(3)), run_row("c", b=np.ones(3)))
    assert model["values"] == [] and model["missing_values"] == [{"step": "make", "value": "a"}]
    assert model["new_values"] == [{"step": "make", "value": "b"}] and model["columns_compared"] == 0


def shift_notebook(tmp_path):
    return make_notebook(tmp_path, [
        ("shift = 0.0\nsmall = 0.3", ["parameters"]),
        ("import numpy as np\nimport pandas as pd\nrng = np.random.default_rng(0)\n"
         "df = pd.DataFrame({'x': rng.normal(shift, 1, 600), 'y': np.random.default_rng(1).normal(0, 1, 600),\n"
         "                   'c': np.random.default_rng(2).choice(['a', 'b'], 600, p=[1 - small, small])})",
         ["step:make"]),
        ("mean_x = float(df['x'].mean())", ["step:use"]),
    ])


def test_drift_between_real_runs_and_the_reference_run(tmp_path):
    nb = shift_notebook(tmp_path)
    base = run_notebook(nb, options=LOCAL)
    assert base.ok and base.drift is None  # nothing to compare the first run with
    again = run_notebook(nb, options=RunOptions(engine="local", use_cache=False))
    shifted = run_notebook(nb, {"shift": 2.0, "small": 0.9}, options=LOCAL)
    assert again.drift["columns_drifted"] == 0  # recomputed, same data: no drift
    flagged = {c["name"]: c["drifted"] for c in shifted.drift["values"][0]["columns"]}
    assert flagged == {"x": True, "y": False, "c": True} and shifted.drift["reference"] == again.run_id
    with default_run_store(nb) as store:
        store.pin(str(nb.resolve()), "baseline", base.run_id[:8])
        assert reference_for(store, store.get_run(shifted.run_id)) == (base.run_id, "pinned baseline 'baseline'")
        assert run_drift(store, base.run_id)["reference"] is None  # pinned itself, and nothing before it
        assert reference_for(store, store.get_run(base.run_id), baseline="baseline")[0] is None
        model = compare_runs(store, [base.run_id, shifted.run_id])
        assert store.unpin(str(nb.resolve()), "baseline") and store.pinned(str(nb.resolve()), "baseline") is None
        assert not store.unpin(str(nb.resolve()), "baseline")
    rows = {row["column"]: row for row in model["drift"]}
    assert rows["x"]["status"] == "drifted" and rows["y"]["status"] == "ok" and rows["x"]["run"] == 2


def test_a_cached_rerun_does_not_drift(tmp_path):
    nb = shift_notebook(tmp_path)
    run_notebook(nb, options=LOCAL)
    cached = run_notebook(nb, options=LOCAL)
    assert cached.step("make")["cached"] and cached.drift["columns_compared"] == 3
    assert cached.drift["columns_drifted"] == 0


def test_a_results_drift_is_computed_when_first_read_against_the_run_before_it(tmp_path):
    nb = shift_notebook(tmp_path)
    base = run_notebook(nb, options=LOCAL)
    shifted = run_notebook(nb, {"shift": 2.0, "small": 0.9}, options=LOCAL)
    assert "drift" not in vars(shifted)  # not computed yet: a run whose drift nobody reads pays nothing for it
    run_notebook(nb, options=LOCAL)  # a later run is not the reference of an earlier one
    assert shifted.drift["reference"] == base.run_id and shifted.drift["columns_drifted"] == 2
    assert shifted.drift is shifted.drift  # computed once
    gone = run_notebook(nb, {"shift": 3.0}, options=LOCAL)
    os.remove(gone.run_store)  # the run store went with its folder: no drift, no new empty store
    assert gone.drift is None and not os.path.exists(gone.run_store)


@pytest.mark.parametrize("rows", [500, 5000])  # ks and chi-squared; Wasserstein and Jensen–Shannon
def test_unchanged_values_score_as_scipy_does_without_importing_it(rows):
    """A cached re-run compares each value with itself: scipy (0.5 s to import) is not needed for
    that, and the figures are the ones scipy gives."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent(f"""
        import json, sys
        sys.path[:0] = [{str(Path(__file__).parent)!r}, {str(Path(__file__).parents[1])!r}]
        from test_drift import compare_profiles, data, load_thresholds, run_row
        row = run_row("r", df=data({rows}))  # a cached step's values: the very profiles it stored
        (value,) = compare_profiles(row, row, load_thresholds())["values"]
        print(json.dumps([sorted(c.items()) for c in value["columns"]] + ["scipy" in sys.modules]))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    *columns, scipy_imported = __import__("json").loads(out)
    assert scipy_imported is False
    from scipy.spatial.distance import jensenshannon
    from scipy.stats import chi2_contingency, distributions, wasserstein_distance

    by_name = {dict(c)["name"]: dict(c) for c in columns}
    numeric, categorical = by_name["moved"], by_name["cat"]
    assert numeric["score"] == 0.0 and categorical["score"] == 0.0 and not numeric["drifted"]
    if rows == 500:
        assert numeric["p_value"] == float(distributions.kstwo.sf(0.0, rows // 2)) == 1.0
        table = np.array([[350.0, 150.0], [350.0, 150.0]])
        assert categorical["p_value"] == float(chi2_contingency(table, correction=False).pvalue) == 1.0
    else:
        assert wasserstein_distance([0.1, 0.5, 2.0], [0.1, 0.5, 2.0]) == numeric["score"]
        assert float(jensenshannon([0.7, 0.3], [0.7, 0.3], base=2)) == categorical["score"]
