"""Data drift: a run's data profiles (`kernels/profiles.py`) against a reference run's, column by column.

The test is chosen by column type and size (as Evidently does): numeric columns with at most
`small_n` values on either side get the two-sample Kolmogorov–Smirnov test (statistic from the
two quantile sketches' CDFs, p-value from scipy's `kstwo`), larger ones the Wasserstein distance
normalised by the reference's std (scipy's `wasserstein_distance` on sketch quantiles);
categorical and bool columns get chi-squared (scipy's `chi2_contingency` on the category counts)
or, when larger, the Jensen–Shannon distance (scipy, base 2). The population stability index is
computed for every column as well (reference deciles or categories). A column is drifted when its
test is over its threshold; a value (a frame or an array) drifted when the share of its drifted
columns reaches `share`. Columns missing on either side and type changes are reported, not scored.

Thresholds (defaults below) come from pyproject.toml `[tool.nbscale.drift]`, then flags
(`nbscale drift --threshold NAME=VALUE`). The reference of a run is a run given, a pinned baseline
(`RunStore.pin`), or else the previous succeeded run of the same notebook (`reference_for`).
"""

from __future__ import annotations

import numpy as np

from .profile_merge import keyed
from .profiles import BOOL, CATEGORICAL, NUMERIC, category_counts, finite_numbers, frequent_sketch, kll_sketch
from .project_settings import SettingsError, non_negative, project_table

TABLE = "drift"
DEFAULTS = {
    "small_n": 1000,  # values per side up to which KS / chi-squared are used (p-values), above it distances
    "ks_p_value": 0.05,  # KS: drifted when p < this
    "wasserstein": 0.1,  # normalised Wasserstein distance: drifted when > this (in reference stds)
    "chi2_p_value": 0.05,  # chi-squared: drifted when p < this
    "jensenshannon": 0.1,  # Jensen–Shannon distance (base 2, 0..1): drifted when > this
    "psi": 0.2,  # population stability index: `psi_drifted` when > this (0.1–0.2: moderate shift)
    "share": 0.5,  # a value is drifted when at least this share of its columns drifted
}
TESTS = {"numeric_test": ("auto", "ks", "wasserstein", "psi"), "categorical_test": ("auto", "chisquare",
                                                                                   "jensenshannon", "psi")}
BASELINE = "baseline"  # the pin name used by default
PROFILES = ("profiles",)  # the heavy step fields a drift check reads (not the lineage: 2 KB a step)
GRID = 200  # quantile ranks compared
FLOOR = 1e-4  # smallest proportion in PSI (an empty bin would make it infinite)


def load_thresholds(notebook=None, given: dict | None = None) -> dict:
    """Thresholds: DEFAULTS < pyproject.toml [tool.nbscale.drift] < `given` (flags). SettingsError names
    an unknown or bad one."""
    table, origin = project_table(notebook, TABLE) if notebook is not None else ({}, "")
    settings = {**DEFAULTS, "numeric_test": "auto", "categorical_test": "auto"}
    for source, where in ((table, origin), (given or {}, "--threshold")):
        for name, value in source.items():
            settings[name] = _setting(name, value, where)
    return settings


def _setting(name: str, value, where: str):
    if name in TESTS:
        if value not in TESTS[name]:
            raise SettingsError(f"{where}: {name} must be one of {', '.join(TESTS[name])}, got {value!r}")
        return value
    if name not in DEFAULTS:
        raise SettingsError(f"{where}: unknown drift setting {name!r}; known: {', '.join([*DEFAULTS, *TESTS])}")
    return non_negative(value, f"{where} {name}")


# -- runs ------------------------------------------------------------------------------------------------


def reference_for(store, run: dict, reference: str | None = None, baseline: str | None = None) -> tuple:
    """(reference run id or None, why it is the reference). `reference`: a run id given; `baseline`:
    a pin name; else the pinned BASELINE of the run's notebook, else its previous succeeded run."""
    if reference:
        return store.resolve(reference), "given"
    pinned = store.pinned(run["notebook"], baseline or BASELINE)
    if baseline and pinned is None:
        return None, f"no run of this notebook is pinned as {baseline!r}"
    if baseline and pinned == run["id"]:
        return None, f"the run is itself the one pinned as {baseline!r}"
    if pinned and pinned != run["id"]:
        return pinned, f"pinned baseline {baseline or BASELINE!r}"
    for other in store.list_runs(run["notebook"], limit=200):
        if other["id"] != run["id"] and other["status"] == "succeeded" and other["created"] < run["created"]:
            return other["id"], "previous succeeded run"
    return None, "no earlier succeeded run of this notebook, and no pinned baseline"


def run_drift(store, run_id: str, reference: str | None = None, baseline: str | None = None,
              thresholds: dict | None = None) -> dict:
    """The drift model of run `run_id` against its reference (see `reference_for`)."""
    run = store.get_run(run_id, heavy=PROFILES)
    ref_id, why = reference_for(store, run, reference, baseline)
    if thresholds is None:
        thresholds = load_thresholds(run["notebook"])
    if ref_id is None:
        return {"run_id": run["id"], "reference": None, "why": why, "thresholds": thresholds, "values": [],
                **_totals([])}
    return {**compare_profiles(store.get_run(ref_id, heavy=PROFILES), run, thresholds), "why": why}


def compare_profiles(reference: dict, current: dict, thresholds: dict | None = None) -> dict:
    """The drift model of two run rows (`RunStore.get_run`): one entry per value profiled in both."""
    thresholds = thresholds or {**DEFAULTS, "numeric_test": "auto", "categorical_test": "auto"}
    ref, cur = run_profiles(reference), run_profiles(current)
    values = [compare_value(step, name, ref[(step, name)], cur[(step, name)], thresholds)
              for step, name in cur if (step, name) in ref]
    return {"run_id": current["id"], "reference": reference["id"], "thresholds": thresholds, "values": values,
            "missing_values": [{"step": s, "value": n} for s, n in ref if (s, n) not in cur],
            "new_values": [{"step": s, "value": n} for s, n in cur if (s, n) not in ref], **_totals(values)}


def run_profiles(run: dict) -> dict:
    """(step, value name) → profile, for the profiled values of a run row."""
    found = {}
    for step in run.get("steps") or []:
        profiles = step.get("profiles")
        if isinstance(profiles, dict) and isinstance(profiles.get("values"), dict):
            for name, profile in profiles["values"].items():
                if isinstance(profile, dict) and isinstance(profile.get("columns"), list):
                    # a record edited by hand or by an older nbscale: only well-formed columns count
                    columns = [c for c in profile["columns"] if isinstance(c, dict) and isinstance(c.get("name"), str)]
                    found[(step["step"], name)] = {**profile, "columns": columns}
    return found


def _totals(values: list[dict]) -> dict:
    compared = sum(v["compared"] for v in values)
    drifted = sum(v["drifted"] for v in values)
    return {"columns_compared": compared, "columns_drifted": drifted,
            "share": drifted / compared if compared else 0.0, "drifted": any(v["dataset_drift"] for v in values)}


# -- one value -------------------------------------------------------------------------------------------


def compare_value(step: str, name: str, reference: dict, current: dict, thresholds: dict) -> dict:
    ref_columns, cur_columns = dict(keyed(reference["columns"])), dict(keyed(current["columns"]))
    columns, missing, new, changed = [], [], [], []
    for key, column in cur_columns.items():
        before = ref_columns.get(key)
        if before is None:
            new.append(column["name"])
        elif _family(before) != _family(column):
            changed.append({"name": column["name"], "from": before.get("dtype"), "to": column.get("dtype")})
        else:
            columns.append(compare_column(before, column, thresholds))
    missing = [column["name"] for key, column in ref_columns.items() if key not in cur_columns]
    drifted = sum(1 for c in columns if c["drifted"])
    share = drifted / len(columns) if columns else 0.0
    return {"step": step, "value": name, "kind": current.get("kind"),
            "rows": [reference.get("rows"), current.get("rows")], "columns": columns, "compared": len(columns),
            "drifted": drifted, "share": share, "dataset_drift": bool(columns) and share >= thresholds["share"],
            "missing_columns": missing, "new_columns": new, "type_changes": changed,
            "truncated": bool(reference.get("truncated") or current.get("truncated"))}


def _family(column: dict) -> str:
    kind = column.get("type")
    return CATEGORICAL if kind in (CATEGORICAL, BOOL) else kind


def compare_column(reference: dict, current: dict, thresholds: dict) -> dict:
    """The drift of one column: its test, score, threshold, p-value, PSI and whether it drifted."""
    row = {"name": current["name"], "type": current.get("type"), "null_share": [None, None]}
    try:
        row["null_share"] = [_null_share(reference), _null_share(current)]
        if _family(current) == NUMERIC:
            row.update(_numeric(reference, current, thresholds))
        elif _family(current) == CATEGORICAL:
            row.update(_categorical(reference, current, thresholds))
        else:
            row.update(test=None, score=None, drifted=False, note="not compared (no sketch for this type)")
    except Exception as exc:  # noqa: BLE001 - a damaged sketch is a column not compared, not a crash
        row.update(test=None, score=None, drifted=False, note=f"not compared: {type(exc).__name__}: {exc}"[:300])
    row.setdefault("psi_drifted", row.get("psi") is not None and row["psi"] > thresholds["psi"])
    if reference.get("dtype") != current.get("dtype") and not row.get("note"):
        row["note"] = f"dtype changed: {reference.get('dtype')} → {current.get('dtype')}"
    return finite_numbers(row)


def _null_share(column: dict) -> float | None:
    total = (column.get("count") or 0) + (column.get("nulls") or 0)
    return (column.get("nulls") or 0) / total if total else None


def _empty(reference_n: int, current_n: int) -> dict | None:
    if reference_n and current_n:
        return None
    if not reference_n and not current_n:
        return {"test": None, "score": None, "drifted": False, "note": "no values on either side"}
    side = "the current run" if not current_n else "the reference run"
    return {"test": "values", "score": None, "drifted": True, "note": f"no values in {side}"}


def _numeric(reference: dict, current: dict, thresholds: dict) -> dict:
    ref, cur = kll_sketch(reference), kll_sketch(current)
    empty = _empty(ref.n if ref else 0, cur.n if cur else 0)
    if empty:
        return empty
    test = thresholds["numeric_test"]
    if test == "auto":
        test = "ks" if min(ref.n, cur.n) <= thresholds["small_n"] else "wasserstein"
    psi = numeric_psi(ref, cur)
    if test == "ks":
        statistic, p_value = ks(ref, cur)
        return {"test": "ks", "score": statistic, "p_value": p_value, "threshold": thresholds["ks_p_value"],
                "drifted": p_value < thresholds["ks_p_value"], "psi": psi}
    if test == "wasserstein":
        score = wasserstein(ref, cur, reference.get("std"), reference.get("mean"))
        return {"test": "wasserstein", "score": score, "threshold": thresholds["wasserstein"],
                "drifted": score > thresholds["wasserstein"], "psi": psi}
    return {"test": "psi", "score": psi, "threshold": thresholds["psi"], "drifted": psi > thresholds["psi"], "psi": psi}


def ks(reference, current) -> tuple[float, float]:
    """Two-sample KS statistic (largest CDF gap at the sketches' quantiles) and its p-value (scipy's
    `kstwo` at the effective size n·m/(n+m), as `scipy.stats.ks_2samp(method="asymp")` computes it)."""
    ranks = np.linspace(0.0, 1.0, GRID + 1).tolist()
    points = np.unique(np.concatenate([reference.get_quantiles(ranks), current.get_quantiles(ranks)]))
    gap = np.abs(np.array(reference.get_cdf(points.tolist(), True)[:-1])
                 - np.array(current.get_cdf(points.tolist(), True)[:-1]))
    statistic = float(gap.max()) if gap.size else 0.0
    if statistic == 0.0:  # P(D >= 0) = 1: no scipy (0.5 s to import) for the unchanged values of a cached run
        return 0.0, 1.0
    from scipy.stats import distributions

    size = max(1, round(reference.n * current.n / (reference.n + current.n)))
    return statistic, float(min(1.0, max(0.0, distributions.kstwo.sf(statistic, size))))


def wasserstein(reference, current, std, mean) -> float:
    """Wasserstein-1 distance of the two distributions (their quantile functions on a grid) in
    reference standard deviations (or, for a constant reference, in units of |mean|, else 1)."""
    ranks = ((np.arange(GRID) + 0.5) / GRID).tolist()
    before, after = reference.get_quantiles(ranks), current.get_quantiles(ranks)
    distance = 0.0 if np.array_equal(before, after) else _wasserstein_distance(before, after)
    scale = std if std else (abs(mean) if mean else 1.0)
    return float(distance / scale)


def _wasserstein_distance(before, after) -> float:
    from scipy.stats import wasserstein_distance

    return wasserstein_distance(before, after)


def numeric_psi(reference, current) -> float:
    """PSI over the reference's deciles (bins with at least FLOOR of the values)."""
    edges = np.unique(reference.get_quantiles(np.linspace(0.1, 0.9, 9).tolist())).tolist()
    return psi(np.array(reference.get_pmf(edges)), np.array(current.get_pmf(edges)))


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    expected = np.clip(expected / max(expected.sum(), 1e-300), FLOOR, None)
    actual = np.clip(actual / max(actual.sum(), 1e-300), FLOOR, None)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def _categorical(reference: dict, current: dict, thresholds: dict) -> dict:
    ref_sketch, cur_sketch = frequent_sketch(reference), frequent_sketch(current)
    ref_n = int(ref_sketch.total_weight) if ref_sketch else 0
    cur_n = int(cur_sketch.total_weight) if cur_sketch else 0
    empty = _empty(ref_n, cur_n)
    if empty:
        return empty
    expected, actual, categories = category_table(category_counts(reference), ref_n, category_counts(current), cur_n)
    test = thresholds["categorical_test"]
    if test == "auto":
        test = "chisquare" if min(ref_n, cur_n) <= thresholds["small_n"] else "jensenshannon"
    score_psi = psi(expected, actual)
    shifted = _shifted_categories(categories, expected, actual)
    if test == "chisquare":
        statistic, p_value = chi_squared(expected, actual)
        return {"test": "chisquare", "score": statistic, "p_value": p_value, "threshold": thresholds["chi2_p_value"],
                "drifted": p_value < thresholds["chi2_p_value"], "psi": score_psi, "categories": shifted}
    if test == "jensenshannon":
        score = jensen_shannon(expected / expected.sum(), actual / actual.sum())
        return {"test": "jensenshannon", "score": score, "threshold": thresholds["jensenshannon"],
                "drifted": score > thresholds["jensenshannon"], "psi": score_psi, "categories": shifted}
    return {"test": "psi", "score": score_psi, "threshold": thresholds["psi"], "drifted": score_psi > thresholds["psi"],
            "psi": score_psi, "categories": shifted}


OTHER = "(other)"


def category_table(reference: dict, ref_n: int, current: dict, cur_n: int) -> tuple:
    """Counts of each side over the union of their frequent categories, plus one bucket for the rest."""
    categories = list(dict.fromkeys([*reference, *current]))
    expected = np.array([reference.get(c, 0.0) for c in categories] + [max(0.0, ref_n - sum(reference.values()))])
    actual = np.array([current.get(c, 0.0) for c in categories] + [max(0.0, cur_n - sum(current.values()))])
    return expected, actual, [*categories, OTHER]


def jensen_shannon(expected: np.ndarray, actual: np.ndarray) -> float:
    """Jensen–Shannon distance, base 2 (0 for equal shares, without importing scipy)."""
    if np.array_equal(expected, actual):
        return 0.0
    from scipy.spatial.distance import jensenshannon

    return float(jensenshannon(expected, actual, base=2))


def chi_squared(expected: np.ndarray, actual: np.ndarray) -> tuple[float, float]:
    """Chi-squared test of homogeneity of the two sides' counts (categories neither side has dropped)."""
    if np.array_equal(expected, actual):  # statistic 0, P(X >= 0) = 1, without importing scipy
        return 0.0, 1.0
    from scipy.stats import chi2_contingency

    table = np.vstack([expected, actual])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return 0.0, 1.0
    result = chi2_contingency(table, correction=False)
    return float(result.statistic), float(result.pvalue)


def _shifted_categories(categories: list, expected: np.ndarray, actual: np.ndarray, shown: int = 5) -> list:
    """The categories whose share moved most: [category, reference share, current share]."""
    before, after = expected / max(expected.sum(), 1e-300), actual / max(actual.sum(), 1e-300)
    order = np.argsort(-np.abs(after - before))[:shown]
    return [[categories[i], float(before[i]), float(after[i])] for i in order]


# -- for the comparison model (`kernels/compare.py`) -------------------------------------------------------


def comparison_drift(runs: list[dict], thresholds: dict | None = None) -> list[dict]:
    """Flat rows of the drift of each later run against the first: one per compared column, and one per
    column missing, new or of another type (`status` says which). [] when no run has profiles."""
    if len(runs) < 2 or not run_profiles(runs[0]):
        return []
    rows = []
    for index, run in enumerate(runs[1:], start=2):
        try:
            model = compare_profiles(runs[0], run, thresholds)
        except Exception:  # noqa: BLE001 - the comparison stands without its drift section
            continue
        for value in model["values"]:
            where = {"run": index, "run_id": run["id"], "step": value["step"], "value": value["value"]}
            for column in value["columns"]:
                rows.append({**where, "column": column["name"], "status": "drifted" if column["drifted"] else "ok",
                             "test": column.get("test"), "score": column.get("score"),
                             "p_value": column.get("p_value"), "threshold": column.get("threshold"),
                             "psi": column.get("psi"), "note": column.get("note")})
            rows += [{**where, "column": name, "status": "missing"} for name in value["missing_columns"]]
            rows += [{**where, "column": name, "status": "new"} for name in value["new_columns"]]
            rows += [{**where, "column": change["name"], "status": "type changed",
                      "note": f"{change['from']} → {change['to']}"} for change in value["type_changes"]]
    return rows


def safe_run_drift(store, run_id: str) -> dict | None:
    """`run_drift` against the default reference for a run's JSON; None when there is nothing to compare
    (no reference, no profiles) or it cannot be computed (a bad setting is reported as `error`)."""
    try:
        model = run_drift(store, run_id)
    except SettingsError as exc:
        return {"error": str(exc)}
    except Exception:  # noqa: BLE001 - a run's result never fails for its drift
        return None
    return model if model.get("reference") and model["values"] else None
