"""Data profiles (kernels/profiles.py): per-column summaries of frames and arrays, their sketches,
hostile input that never fails a step, and the profiles of real runs (cached steps keep theirs)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import in_forked_child, make_notebook

from nbscale.kernels import profiles
from nbscale.kernels.profiles import profile_value, step_profiles
from nbscale.kernels.runner import RunOptions, default_run_store, run_notebook

LOCAL = RunOptions(engine="local")


def frame(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(10, 3, rows)
    x[::17] = np.nan
    x[5] = np.inf
    return pd.DataFrame({
        "x": x, "n": rng.integers(-50, 50, rows), "flag": rng.random(rows) < 0.3,
        "city": rng.choice(["Oslo", "Lima", "Pune", None], rows, p=[0.5, 0.3, 0.15, 0.05]),
        "kind": pd.Categorical(rng.choice(["a", "b", "c"], rows)),
        "when": pd.Timestamp("2026-01-01") + pd.to_timedelta(rng.integers(0, 10**6, rows), unit="s"),
    })


def columns(profile: dict) -> dict:
    return {c["name"]: c for c in profile["columns"]}


def strict_json(value) -> str:
    return json.dumps(value, allow_nan=False)  # what the API sends: no NaN, no infinity


def test_a_frame_profile_has_counts_nulls_moments_quantiles_and_top_categories():
    df = frame(2000)
    cols = columns(profile_value(df))
    finite = df["x"][np.isfinite(df["x"])]
    x = cols["x"]
    assert (x["type"], x["count"], x["nulls"], x["infinite"]) == ("numeric", len(finite), df["x"].isna().sum(), 1)
    assert x["mean"] == pytest.approx(finite.mean(), rel=1e-12) and x["std"] == pytest.approx(finite.std(), rel=1e-9)
    assert (x["min"], x["max"]) == (finite.min(), finite.max())
    assert x["quantiles"]["0.5"] == pytest.approx(finite.median(), abs=0.5)
    assert cols["n"]["mean"] == pytest.approx(df["n"].mean()) and cols["n"]["type"] == "numeric"
    assert cols["flag"]["type"] == "bool" and cols["flag"]["mean"] == pytest.approx(df["flag"].mean())
    city = cols["city"]
    assert city["type"] == "categorical" and city["nulls"] == df["city"].isna().sum()
    assert city["top"][0] == ["Oslo", int((df["city"] == "Oslo").sum())]
    assert dict(map(tuple, cols["kind"]["top"])) == df["kind"].value_counts().to_dict()
    assert cols["when"]["type"] == "numeric" and cols["when"]["min"] == df["when"].min().timestamp()
    strict_json(step_profiles({"df": df}))


def test_hostile_column_names_are_kept_as_text():
    names = ["\x1b[31mred\x1b[0m", "<img src=x onerror=alert(1)>", "n" * 5000, 7, ("a", 1), None, "dup", "dup",
             "\u202eevil"]
    df = pd.DataFrame([list(range(len(names)))] * 3, columns=names)
    profile = profile_value(df)
    shown = [c["name"] for c in profile["columns"]]
    assert shown[:2] == names[:2] and shown[3:6] == ["7", "('a', 1)", "None"] and shown[6:8] == ["dup", "dup"]
    assert len(shown[2]) == profiles.LONGEST_NAME and shown[2].endswith("…")
    assert shown[8] == "\u202eevil"
    strict_json(profile)


def test_empty_frames_nan_and_inf_columns_and_mixed_objects_never_fail():
    empty = profile_value(pd.DataFrame({"x": pd.Series([], dtype=float), "s": pd.Series([], dtype=object)}))
    assert empty["rows"] == 0 and [c["count"] for c in empty["columns"]] == [0, 0]
    odd = pd.DataFrame({"nan": [np.nan] * 4, "inf": [np.inf, -np.inf, np.inf, 1e308],
                        "mixed": [1, "1", [1, 2], {"a": 1}], "huge": [1e300, -1e300, 1e300, 1e300],
                        "z": [1 + 2j] * 4})
    cols = columns(profile_value(odd))
    assert (cols["nan"]["count"], cols["nan"]["nulls"], cols["nan"]["mean"]) == (0, 4, None)
    assert (cols["inf"]["count"], cols["inf"]["infinite"], cols["inf"]["max"]) == (1, 3, 1e308)
    assert cols["mixed"]["top"][0] == ["1", 2] and cols["z"]["type"] == "other"
    strict_json(step_profiles({"odd": odd, "empty": pd.DataFrame()}))


def test_values_that_are_not_frames_or_arrays_are_not_profiled_and_odd_ones_are_skipped():
    class Hostile(pd.DataFrame):
        @property
        def iloc(self):
            raise RuntimeError("no rows for you")

    assert step_profiles({"n": 3, "s": "text", "d": {"a": 1}, "scalar": np.float64(2.0)}) is None
    found = step_profiles({"bad": Hostile({"a": [1]}), "good": pd.Series([1.0, 2.0], name="v")})
    assert list(found["values"]) == ["good"] and "no rows for you" in found["skipped"]["bad"]


def test_arrays_wide_frames_and_dask_collections():
    import dask.dataframe as dd

    grid = np.arange(12.0).reshape(4, 3)
    profile = profile_value(grid)
    assert profile["shape"] == [4, 3] and [c["mean"] for c in profile["columns"]] == [4.5, 5.5, 6.5]
    image = profile_value(np.ones((2, 3, 4)))
    assert [(c["name"], c["count"]) for c in image["columns"]] == [("values", 24)]
    wide = profile_value(pd.DataFrame(np.zeros((2, 250))))
    assert (wide["columns_total"], wide["columns_profiled"], wide["truncated"]) == (250, 200, True)
    lazy = dd.from_pandas(pd.DataFrame({"a": [1, 2]}), npartitions=1)
    assert profile_value(lazy)["kind"] == "dask" and "not profiled" in profile_value(lazy)["note"]


def test_large_frames_feed_the_sketches_a_bounded_sample():
    rows = profiles.SAMPLE_ROWS + 50_000
    text = pd.Series(np.where(np.arange(rows) % 10 == 0, None, "v"), dtype=object)
    df = pd.DataFrame({"x": np.arange(rows, dtype=float), "s": text})
    cols = columns(profile_value(df))
    assert cols["x"]["count"] == rows and cols["x"]["sample"] == profiles.SAMPLE_ROWS
    assert cols["x"]["mean"] == pytest.approx((rows - 1) / 2)
    assert cols["s"]["nulls"] == pytest.approx(rows / 10, rel=0.05) and "nulls" in cols["s"]["estimated"]
    again = columns(profile_value(df))["s"]  # the sample is seeded: the same data profiles alike
    assert (again["nulls"], again["top"]) == (cols["s"]["nulls"], cols["s"]["top"])


def test_a_run_records_profiles_and_a_cached_step_keeps_them(tmp_path):
    nb = make_notebook(tmp_path, [
        ("import numpy as np\nimport pandas as pd\n"
         "df = pd.DataFrame({'x': np.arange(100.0), '\\x1b[2J<b>': ['a', 'b'] * 50})\n"
         "empty = df.iloc[:0]\narr = np.ones((10, 2))\nlabel = 'not a frame'", ["step:make"]),
        ("total = float(df['x'].sum()) + len(empty) + arr.sum() + len(label)", ["step:use"]),
    ])
    first = run_notebook(nb, options=LOCAL)
    second = run_notebook(nb, options=LOCAL)
    assert first.ok and second.ok and second.step("make")["cached"]
    with default_run_store(nb) as store:
        ran, cached = ([s for s in store.get_run(r.run_id)["steps"] if s["step"] == "make"][0]
                       for r in (first, second))
    assert cached["status"] == "cached" and cached["profiles"] == ran["profiles"]
    values = ran["profiles"]["values"]
    assert set(values) == {"df", "empty", "arr"} and values["empty"]["rows"] == 0
    assert [c["name"] for c in values["df"]["columns"]] == ["x", "\x1b[2J<b>"]
    assert second.step("make")["profiles"]["values"]["df"]["columns"][0]["mean"] == 49.5  # the run's JSON


def _exact_parts(found: dict) -> list:
    # not the sketches nor the quantiles read from them: KLL's compactions are randomised
    exact = ("name", "count", "nulls", "mean", "std", "min", "max")
    return [{k: c.get(k) for k in exact} for value in found["values"].values() for c in value["columns"]]


def test_only_large_values_wait_for_another_thread_and_their_columns_are_profiled_in_parallel(monkeypatch):
    rows = profiles.PARALLEL_MIN_ROWS + 10
    big = pd.DataFrame({"x": np.arange(rows, dtype=np.float64), "y": np.ones(rows), "n": np.arange(rows) % 7})
    assert profiles.can_wait({"big": big}) and not profiles.can_wait({"small": frame(100)})
    parallel = step_profiles({"big": big})
    monkeypatch.setattr(profiles, "PARALLEL_MIN_ROWS", rows + 1)  # the same columns one after the other
    assert _exact_parts(parallel) == _exact_parts(step_profiles({"big": big}))
    assert [c["name"] for c in parallel["values"]["big"]["columns"]] == ["x", "y", "n"]  # in the frame's order


def test_a_process_forked_after_a_parallel_profile_profiles_columns_in_parallel():
    # a Dask worker forked from a process whose column pool had threads: the copied pool counted
    # them (they did not come along) and never profiled a column; the step waited for ever
    rows = profiles.PARALLEL_MIN_ROWS + 10
    big = pd.DataFrame({"x": np.arange(rows, dtype=np.float64), "y": np.ones(rows)})
    expected = _exact_parts(step_profiles({"big": big}))

    def profile_in_child():
        assert _exact_parts(step_profiles({"big": big})) == expected

    assert in_forked_child(profile_in_child) == "ok"


CTRL_C_IN_SKETCHES_IMPORT = """
import os, signal, sys
import numpy as np
from nbscale.kernels import profiles
sent = []

def tracer(frame, event, arg):  # Ctrl-C as the C++ extension makes its enums (Python code it calls)
    if not sent and "datasketches" in sys.modules and frame.f_code.co_filename.endswith("enum.py"):
        sent.append(frame.f_code.co_name)
        os.kill(os.getpid(), signal.SIGINT)

sys.settrace(tracer)
try:
    profiles.step_profiles({"a": np.arange(10.0)})
except KeyboardInterrupt:
    sys.settrace(None)
    print("interrupted once imported:", bool(sent), "datasketches" in sys.modules, flush=True)
"""


def test_a_ctrl_c_while_the_sketches_library_is_imported_interrupts_after_the_import_without_aborting():
    # nanobind turned the KeyboardInterrupt into a C++ exception and the process aborted (SIGABRT):
    # `nbscale run` died with its run left running (seen in CI)
    done = subprocess.run([sys.executable, "-c", CTRL_C_IN_SKETCHES_IMPORT], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "interrupted once imported: True True"


def test_a_store_write_asks_for_the_profiles_once_and_keeps_them_with_the_values(tmp_path):
    # asked in a thread of its own while the values are written (test_store.py shows the overlap)
    from nbscale.kernels.store import ArtifactStore

    store, key, asked = ArtifactStore(str(tmp_path / "store")), "sha256:" + "b" * 64, []

    def later():
        asked.append(1)
        return step_profiles({"value": np.arange(10.0)})

    manifest = store.put(key, {"value": np.arange(10.0)}, profiles=later)
    assert asked == [1]
    assert manifest["profiles"]["values"]["value"]["rows"] == 10
    assert store.manifest(key)["profiles"] == manifest["profiles"]


@pytest.mark.parametrize("engine", ["local", "dask"])
def test_a_large_frame_has_its_profile_in_the_run_and_in_the_cache(tmp_path, engine):
    # 40 MB: the Dask engine hands it on from memory and profiles it during the background write
    rows = 5_000_000
    nb = make_notebook(tmp_path, [
        ("import numpy as np\nimport pandas as pd", ["imports"]),
        (f"df = pd.DataFrame({{'x': np.arange({rows}, dtype=np.float64)}})", ["step:make"]),
        ("total = float(df['x'].sum())", ["step:use"]),
    ])
    options = RunOptions(engine=engine, workers=1)
    first, second = run_notebook(nb, options=options), run_notebook(nb, options=options)
    assert first.ok and second.ok and second.step("make")["cached"]
    with default_run_store(nb) as store:
        ran, cached = ([s for s in store.get_run(r.run_id)["steps"] if s["step"] == "make"][0]
                       for r in (first, second))
    column = ran["profiles"]["values"]["df"]["columns"][0]
    assert ran["profiles"]["values"]["df"]["rows"] == rows and column["mean"] == (rows - 1) / 2
    assert cached["profiles"] == ran["profiles"]
    assert first.step("make")["profiles"]["values"]["df"]["rows"] == rows  # the run's JSON


def test_profiles_turned_off_leave_no_values_in_the_run_store_or_the_cache(tmp_path, monkeypatch):
    monkeypatch.delenv("NBSCALE_PROFILES", raising=False)
    (tmp_path / "pyproject.toml").write_text("[tool.nbscale.profiles]\nenabled = false\n")
    nb = make_notebook(tmp_path, [("import pandas as pd\ndf = pd.DataFrame({'secret': ['s3cr3t'] * 5})", ["step:make"]),
                                  ("n = len(df)", ["step:use"])])
    result = run_notebook(nb, options=LOCAL)
    assert result.ok and result.load("use")["n"] == 5
    with default_run_store(nb) as store:
        rows = store.get_run(result.run_id)["steps"]
    assert all(not row["profiles"] for row in rows)
    from nbscale.kernels.store import ArtifactStore

    assert "profiles" not in ArtifactStore(result.store_url).manifest(result.hashes["make"])
    stored = b"".join(path.read_bytes() for path in (tmp_path / ".nbscale").glob("runs.sqlite*"))  # and its WAL
    assert b"s3cr3t" not in stored  # a top category would be there


def test_a_bad_profiles_setting_is_refused_before_a_run_is_recorded(tmp_path, monkeypatch):
    from nbscale.kernels.project_settings import SettingsError

    monkeypatch.setenv("NBSCALE_PROFILES", "sometimes")
    nb = make_notebook(tmp_path, [("x = 1", ["step:make"])])
    with pytest.raises(SettingsError, match="NBSCALE_PROFILES"):
        run_notebook(nb, options=LOCAL)
    with default_run_store(nb) as store:
        assert store.list_runs() == []


def test_values_whose_profile_would_import_pandas_first_do_not_wait_for_another_thread():
    # a thread importing pandas while the next step runs would show the step a half-imported pandas
    import subprocess
    import sys

    script = """
import sys
import numpy as np
from nbscale.kernels import profiles
assert "pandas" not in sys.modules
big = {"a": np.arange(profiles.LATER_MIN_BYTES // 8 + 10, dtype=np.float64)}
first = profiles.can_wait(big)
profiles.step_profiles(big)  # at once: pandas is imported now, on this thread
print([first, profiles.can_wait(big)])
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[False, True]"


def test_a_frame_that_will_not_say_its_size_is_profiled_at_once_and_never_fails_the_step():
    class Hostile(pd.DataFrame):
        def memory_usage(self, *args, **kwargs):
            raise RuntimeError("no size for you")

    hostile = {"df": Hostile({"x": [1.0, 2.0]})}
    assert not profiles.can_wait(hostile)
    found = step_profiles(hostile)
    assert found["values"]["df"]["rows"] == 2 or "df" in found["skipped"]


def test_a_step_with_no_frame_or_array_imports_no_sketches_library():
    # the sketches library costs 16 ms to import: a step handing on a list and a number has no use for it
    script = ("import sys\nfrom nbscale.kernels.profiles import step_profiles\n"
              "print(step_profiles({'data': [(1.0, 0)] * 5, 'n': 5}), 'datasketches' in sys.modules)\n"
              "import numpy as np\n"
              "print(step_profiles({'a': np.arange(3.0)})['values']['a']['rows'], 'datasketches' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split("\n")[:2] == ["None False", "3 True"]
