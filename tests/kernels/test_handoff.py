"""Handing large values on: read-only views instead of copies (and the run again on copies when a
step writes into one anyway), digests taken in memory, and store writes off the critical path —
on real Dask runs, with the cache chaining on the same keys afterwards."""

from __future__ import annotations

import functools
import json

import numpy as np
import pandas as pd
import pytest
from conftest import collect_events, in_forked_child, make_notebook

from nbscale.kernels import handoff
from nbscale.kernels.contract import WARNING
from nbscale.kernels.handoff import ASYNC_MIN_BYTES, memory_digests, step_inputs, wrote_into_read_only
from nbscale.kernels.runner import RunOptions, run_notebook
from nbscale.kernels.store import ArtifactStore, key_path
from nbscale.kernels.tracebacks import StepError

DASK = RunOptions(engine="dask", workers=1)
BIG = ASYNC_MIN_BYTES // 8 + 1_000  # float64 items: just over the size that writes in the background


# --- what a reader gets ---------------------------------------------------------------------------


def test_an_array_the_step_only_reads_is_a_read_only_view_and_others_are_copies():
    array, changed_array, frame = np.arange(10.0), np.arange(5.0), pd.DataFrame({"x": [1.0, 2.0]})
    items = [array]
    values, viewed = step_inputs({"make": {"array": array, "changed": changed_array, "frame": frame,
                                           "items": items}}, changed={"changed"})
    assert viewed == ["array"]
    assert np.shares_memory(values["array"], array) and not values["array"].flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        values["array"][0] = 99.0
    assert array.flags.writeable and array[0] == 0.0  # the producer's value is untouched
    assert not np.shares_memory(values["changed"], changed_array) and values["changed"].flags.writeable
    values["frame"].loc[0, "x"] = 7.0  # copy-on-write: private to the reader
    assert frame.loc[0, "x"] == 1.0
    values["items"].append(1)  # containers are deep copies, holding what the step gets for the arrays in them
    assert items == [array] and values["items"][0] is values["array"]
    with pytest.raises(ValueError, match="read-only"):
        values["items"][0][0] = 5.0  # (the step runs again on copies: `wrote_into_read_only`)
    assert array[0] == 0.0


def test_names_of_one_object_get_one_object_as_top_to_bottom():
    # each name got a view or a copy of its own: `b is a`, `frames[0] is df` and `d["k"] is a` were
    # False in a step that only read them, and True top to bottom
    a, df = np.arange(4.0), pd.DataFrame({"x": [1.0]})
    values, viewed = step_inputs({"make": {"a": a, "b": a, "df": df, "frames": [df], "d": {"k": a}}}, changed=set())
    assert values["b"] is values["a"] and values["frames"][0] is values["df"] and values["d"]["k"] is values["a"]
    assert sorted(viewed) == ["a", "b"] and not values["a"].flags.writeable
    # a name the step changes: both names get one writeable copy, the producer's object untouched
    values, viewed = step_inputs({"make": {"a": a, "b": a, "log": [a]}}, changed={"b"})
    assert values["a"] is values["b"] is values["log"][0] and values["a"].flags.writeable and viewed == []
    values["b"][0] = 9.0
    assert a[0] == 0.0
    # through a pickle too (a closure in the group: deepcopy would share what it holds)
    log = []
    values, _ = step_inputs({"make": {"a": a, "d": {"k": a}, "add": lambda v: log.append(v)}}, changed=set())
    assert values["d"]["k"] is values["a"]


def test_object_arrays_and_subclasses_are_copied_not_viewed():
    objects = np.empty(2, dtype=object)
    objects[0], objects[1] = [1], [2]
    masked = np.ma.masked_array([1.0, 2.0], mask=[False, True])
    values, viewed = step_inputs({"make": {"objects": objects, "masked": masked}}, changed=set())
    assert viewed == []
    values["objects"][0].append(3)
    assert objects[0] == [1]


def test_views_can_be_turned_off():
    array = np.arange(3.0)
    values, viewed = step_inputs({"make": {"array": array}}, changed=set(), views=False)
    assert viewed == [] and values["array"].flags.writeable and not np.shares_memory(values["array"], array)


def test_which_errors_are_a_write_into_a_read_only_array():
    assert wrote_into_read_only(_error("ValueError", "assignment destination is read-only"))
    assert wrote_into_read_only(_error("ValueError", "output array is read-only"))
    assert not wrote_into_read_only(_error("ValueError", "could not convert string to float"))
    assert not wrote_into_read_only(_error("KeyError", "'read-only'"))
    assert not wrote_into_read_only(None)


# --- digests in memory ------------------------------------------------------------------------------


def test_memory_digests_follow_the_values_and_small_outputs_keep_the_synchronous_write():
    big = np.arange(BIG, dtype=np.float64)
    assert memory_digests({"small": np.arange(10.0), "n": 3}) is None
    first = memory_digests({"big": big, "n": 3})
    assert set(first) == {"big", "n"} and all(d.startswith("value-xxh3_128:") for d in first.values())
    assert memory_digests({"big": big.copy(), "n": 3}) == first  # the same values, another object
    changed = big.copy()
    changed[-1] += 1
    assert memory_digests({"big": changed, "n": 3})["big"] != first["big"]
    assert memory_digests({"big": big.reshape(2, -1), "n": 3})["big"] != first["big"]  # same bytes, other shape
    assert memory_digests({"big": big.view(np.int64), "n": 3})["big"] != first["big"]  # same bytes, other dtype
    assert memory_digests({"big": big, "n": 4})["n"] != first["n"]


def test_memory_digests_of_strided_and_fortran_arrays_follow_their_values():
    square = np.arange(2048 * 2048, dtype=np.float64).reshape(2048, 2048) + 0.5
    fortran = np.asfortranarray(square)
    # the same values in another layout may digest apart (a cache miss), never a transpose together
    assert memory_digests({"a": fortran})["a"] != memory_digests({"a": np.ascontiguousarray(square.T)})["a"]
    strided = np.arange(BIG * 2, dtype=np.float64)[::2]
    assert memory_digests({"a": strided})["a"] == memory_digests({"a": strided.copy()})["a"]
    other = strided.copy()
    other[-1] = -1.0
    assert memory_digests({"a": strided})["a"] != memory_digests({"a": other})["a"]


def test_memory_digests_of_frames_see_columns_index_and_values():
    rows = BIG // 2
    frame = pd.DataFrame({"a": np.arange(rows, dtype=np.float64), "b": np.ones(rows)})
    digest = memory_digests({"frame": frame})["frame"]
    assert memory_digests({"frame": frame.copy()})["frame"] == digest
    assert memory_digests({"frame": frame.rename(columns={"b": "c"})})["frame"] != digest
    assert memory_digests({"frame": frame.set_axis(np.arange(rows) + 1)})["frame"] != digest
    other = frame.copy()
    other.iloc[5, 1] = 2.0
    assert memory_digests({"frame": other})["frame"] != digest
    series = pd.Series(np.arange(BIG, dtype=np.float64), name="a")
    assert memory_digests({"series": series})["series"] != memory_digests({"series": series.rename("z")})["series"]
    strings = frame.assign(s="x")  # an object column: written before the step ends, as any value
    assert memory_digests({"frame": strings}) is None


def test_memory_digests_see_what_the_bytes_do_not_say():
    # record fields' names and types, column level names, the columns' index type, frame flags
    records = np.zeros(BIG // 2, dtype=[("a", "<i8"), ("b", "<f8")])  # 16 bytes each
    renamed = records.view([("x", "<i8"), ("y", "<f8")])
    retyped = records.view([("a", "<f8"), ("b", "<i8")])
    found = {memory_digests({"v": v})["v"] for v in (records, renamed, retyped)}
    assert len(found) == 3
    rows = BIG // 2
    frame = pd.DataFrame({"a": np.zeros(rows), "b": np.ones(rows)})
    digest = memory_digests({"frame": frame})["frame"]
    named = frame.copy()
    named.columns.name = "v2"
    multi = frame.set_axis(pd.MultiIndex.from_tuples([("k", "a"), ("k", "b")], names=["x", "y"]), axis=1)
    multi_renamed = multi.copy()
    multi_renamed.columns = multi_renamed.columns.set_names(["p", "q"])
    numbered, ranged = frame.set_axis([0, 1], axis=1), frame.set_axis(pd.RangeIndex(2), axis=1)
    strict = frame.set_flags(allows_duplicate_labels=False)
    others = {memory_digests({"frame": f})["frame"] for f in (named, multi, multi_renamed, numbered, ranged, strict)}
    assert len(others) == 6 and digest not in others


def test_memory_digests_of_categorical_columns_see_codes_labels_and_order():
    rows = BIG  # 8-byte numbers and 1-byte codes: over the size written in the background
    codes = np.arange(rows) % 3
    frame = pd.DataFrame({"x": np.ones(rows), "c": pd.Categorical.from_codes(codes, ["a", "b", "c"])})
    digest = memory_digests({"frame": frame})["frame"]  # handed on from memory, as numbers are
    assert memory_digests({"frame": frame.copy()})["frame"] == digest
    # the same codes standing for other labels, or ordered, are another value
    relabelled = frame.assign(c=pd.Categorical.from_codes(codes, ["a", "b", "z"]))
    ordered = frame.assign(c=pd.Categorical.from_codes(codes, ["a", "b", "c"], ordered=True))
    recoded = frame.assign(c=pd.Categorical.from_codes((codes + 1) % 3, ["a", "b", "c"]))
    numbers = frame.assign(c=pd.Categorical.from_codes(codes, [1, 2, 3]))
    found = {memory_digests({"frame": other})["frame"] for other in (relabelled, ordered, recoded, numbers)}
    assert len(found) == 4 and digest not in found


def test_an_output_that_does_not_pickle_keeps_the_synchronous_write_and_its_error():
    import threading

    assert memory_digests({"big": np.zeros(BIG), "lock": threading.Lock()}) is None


# --- real runs on Dask -------------------------------------------------------------------------------

MAKE = f"value = np.arange({BIG}, dtype=np.float64)\nlabel = 'v'"


def _error(ename, evalue):
    return StepError(cell=None, line=None, ename=ename, evalue=evalue, traceback="")


def test_a_big_value_is_handed_on_and_stored_for_a_cached_rerun(tmp_path):
    nb = make_notebook(tmp_path, [("import numpy as np", ["imports"]), (MAKE, ["step:make"]),
                                  ("total = float(value.sum())", ["step:use"])])
    first = run_notebook(nb, options=DASK)
    assert first.ok and first.load("use")["total"] == float(np.arange(BIG, dtype=np.float64).sum())
    manifest = ArtifactStore(first.store_url).manifest(first.hashes["make"])
    assert manifest["outputs"]["value"]["content"].startswith("value-xxh3_128:")  # written before the run ended
    assert np.array_equal(first.load("make")["value"], np.arange(BIG, dtype=np.float64))
    again = run_notebook(nb, options=DASK)
    assert {s["name"]: s["status"] for s in again.steps} == {"make": "cached", "use": "cached"}
    assert again.hashes == first.hashes  # readers' keys chain on the digests kept in the manifest


def test_a_rerun_that_makes_the_same_big_value_leaves_its_reader_cached(tmp_path):
    nb = make_notebook(tmp_path, [("import numpy as np", ["imports"]), (MAKE, ["step:make", "cache:off"]),
                                  ("total = float(value.sum())", ["step:use"])])
    assert run_notebook(nb, options=DASK).ok
    again = run_notebook(nb, options=DASK)
    assert {s["name"]: s["status"] for s in again.steps} == {"make": "succeeded", "use": "cached"}


def test_a_step_that_writes_into_an_array_it_only_reads_runs_again_on_copies(tmp_path):
    # the analysis cannot see into a module outside the notebook's folder (a library's, to it): it
    # takes `zero(value)` for a read
    elsewhere = tmp_path.parent / f"{tmp_path.name}-lib"
    elsewhere.mkdir()
    (elsewhere / "helpers.py").write_text("def zero(a):\n    a[:] = 0\n")
    nb = make_notebook(tmp_path, [
        (f"import sys\nsys.path.insert(0, {str(elsewhere)!r})\nimport numpy as np\nimport helpers", ["imports"]),
        ("value = np.arange(1000.0)", ["step:make"]),
        ("helpers.zero(value)\nzeroed = float(value.sum())", ["step:writer"]),
        ("np.add(value, 1, out=value)\nplus = float(value.sum())", ["step:adder"]),
        ("total = float(value.sum())", ["step:reader"]),
    ])
    warnings, on_event = collect_events(WARNING)
    result = run_notebook(nb, options=DASK, on_event=on_event)
    assert result.ok
    assert result.load("writer")["zeroed"] == 0.0
    assert result.load("adder")["plus"] == float(np.arange(1000.0).sum() + 1000)
    # the adder's write is seen (`out=`): it hands its value on, and the reader gets it
    assert result.load("reader")["total"] == float(np.arange(1000.0).sum() + 1000)
    texts = {e["step"]: e["payload"]["message"] for e in warnings}
    assert "ran again on copies" in texts["writer"] and "value" in texts["writer"]
    assert "adder" not in texts and "reader" not in texts


def test_a_background_write_that_fails_is_a_warning_and_the_step_runs_again_next_time(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the store's folder would go")
    # the reader is small: its values are written before it ends, and `make`'s in the background...
    nb = make_notebook(tmp_path, [("import numpy as np", ["imports"]), (MAKE, ["step:make"]),
                                  ("last = float(value[-1])", ["step:use"])])
    options = RunOptions(engine="dask", workers=1, store_url=str(blocker / "artifacts"))
    warnings, on_event = collect_events(WARNING)
    result = run_notebook(nb, options=options, on_event=on_event)
    # ...and either failing costs only the cache entry, said as a warning
    assert result.ok
    said = {e["step"]: e["payload"]["message"] for e in warnings}
    assert "could not be stored" in said["make"] and "could not store the step's result" in said["use"]
    blocker.unlink()
    again = run_notebook(nb, options=options)
    assert again.ok and again.step("make")["status"] == "succeeded"  # nothing was stored: it ran again


def test_a_manifest_whose_kept_digest_is_not_a_string_is_refused(tmp_path):
    store, key = ArtifactStore(str(tmp_path / "store")), "sha256:" + "a" * 64
    manifest = store.put(key, {"v": [1]}, content_digests={"v": "value-xxh3_128:x"})
    assert manifest["outputs"]["v"]["content"] == "value-xxh3_128:x" and store.has(key)
    path = tmp_path / "store" / key_path(key) / "manifest.json"
    data = json.loads(path.read_text())
    data["outputs"]["v"]["content"] = {"not": "a digest"}  # a hostile manifest
    path.write_text(json.dumps(data))
    assert not store.has(key)


def test_a_big_frame_with_a_categorical_column_is_handed_on_and_cached_like_numbers(tmp_path):
    make = (f"df = pd.DataFrame({{'x': np.arange({BIG}, dtype=np.float64),"
            f" 'c': pd.Categorical.from_codes(np.arange({BIG}) % 3, ['lo', 'mid', 'hi'], ordered=True)}})")
    use = "top = str(df['c'].max())\ncounts = df['c'].value_counts().to_dict()"
    nb = make_notebook(tmp_path, [("import numpy as np\nimport pandas as pd", ["imports"]), (make, ["step:make"]),
                                  (use, ["step:use"])])
    first = run_notebook(nb, options=DASK)
    assert first.ok and first.load("use")["top"] == "hi"
    manifest = ArtifactStore(first.store_url).manifest(first.hashes["make"])
    assert manifest["outputs"]["df"]["content"].startswith("value-xxh3_128:")  # from memory, in the background
    stored = first.load("make")["df"]
    assert stored["c"].cat.ordered and list(stored["c"].cat.categories) == ["lo", "mid", "hi"]
    again = run_notebook(nb, options=DASK)
    assert {s["name"]: s["status"] for s in again.steps} == {"make": "cached", "use": "cached"}
    assert again.hashes == first.hashes


@pytest.mark.parametrize("engine", ["local", "dask"])
def test_a_value_that_pickles_but_cannot_be_made_again_is_blamed_on_its_name_and_producer(tmp_path, engine):
    nb = make_notebook(tmp_path, [
        ("class FetchError(Exception):\n    def __init__(self, url, code):\n"
         "        super().__init__(f'{url}: {code}')\n        self.url, self.code = url, code\n"
         "errors = [FetchError('http://x', 404)]\nk = 5", ["step:a"]),
        ("m = len(errors) + k", ["step:b"]),
    ])
    for attempt in range(2):  # the second run finds a's stored result, which cannot be loaded either
        warnings, on_event = collect_events(WARNING)
        result = run_notebook(nb, options=RunOptions(engine=engine, workers=1), on_event=on_event)
        steps = {s["name"]: s for s in result.steps}
        assert steps["a"]["status"] == "succeeded", (attempt, steps["a"])
        error = steps["b"]["error"]
        assert steps["b"]["status"] == "failed" and error["ename"] == "MarshalError", (attempt, error)
        assert error["evalue"].startswith("step 'a': output 'errors' of type list cannot be handed on: TypeError")
        assert "Traceback" not in error["traceback"]
        if attempt:
            assert any("cannot be loaded" in w["payload"]["message"] for w in warnings if w["step"] == "a")


def test_a_process_forked_after_a_background_write_can_write_in_the_background(tmp_path):
    # a Dask worker forked from a process whose write pool had threads: the copied pool counted
    # them (they did not come along) and never ran a write; the run waited for it for ever
    handoff.start_write("parent-run", "s", lambda: None)
    assert handoff.wait_for_writes("parent-run") == {}
    target = tmp_path / "written"

    def write_in_child():
        assert handoff.wait_for_writes("parent-run") == {}  # the parent's writes are not the child's
        handoff.start_write("child-run", "s", lambda: target.write_text("yes"))
        assert handoff.wait_for_writes("child-run") == {}

    assert in_forked_child(write_in_child) == "ok"
    assert target.read_text() == "yes"


def test_a_frames_copy_shares_nothing_with_the_producers_and_keeps_names_bound_to_its_parts():
    """pandas' deepcopy shares a list in an object column with the original (a step's change to it
    reached its producer's value) and makes a new index (`idx = df.index` no longer was)."""
    df = pd.DataFrame({"tags": [["a"], ["b"]], "x": [1, 2]})
    got, _ = step_inputs({"make": {"df": df, "idx": df.index, "cols": df.columns}}, changed={"df", "idx", "cols"})
    got["df"]["tags"][0].append("q")
    assert df["tags"][0] == ["a"]
    assert got["idx"] is got["df"].index and got["cols"] is got["df"].columns
    plain = pd.DataFrame({"x": [1.0, 2.0]})
    assert step_inputs({"make": {"plain": plain}}, changed={"plain"})[0]["plain"].equals(plain)


@pytest.mark.parametrize("module", ["pandas", "numpy"])
def test_a_step_is_handed_its_values_while_another_thread_still_imports_pandas_or_numpy(monkeypatch, module):
    """A worker imports `dask.dataframe` (pandas, numpy) in the background as a run starts: a step's
    values were copied meanwhile, and the copy read the half-imported module ("partially initialized
    module 'pandas' has no attribute 'DataFrame'": the step failed, one run in three)."""
    import importlib.machinery
    import types

    half = types.ModuleType(module)
    half.__spec__ = importlib.machinery.ModuleSpec(module, None)
    half.__spec__._initializing = True
    monkeypatch.setitem(__import__("sys").modules, module, half)
    values, _ = step_inputs({"producer": {"rows": [1, 2], "meta": {"n": 1}}}, changed={"rows", "meta"})
    assert values == {"rows": [1, 2], "meta": {"n": 1}}


def _closure_over(lst):
    return lambda x: lst.append(x)


CALLABLES_OVER_LOG = {
    "a closure": lambda log: _closure_over(log),
    "a bound builtin method": lambda log: log.append,
    "a partial over a closure": lambda log: functools.partial(_closure_over(log)),
    "a closure in a dict": lambda log: {"add": _closure_over(log)},
}


@pytest.mark.parametrize("case", CALLABLES_OVER_LOG)
def test_a_callable_handed_on_with_what_it_changes_changes_the_steps_copy(case):
    """deepcopy keeps functions and builtin methods as they are: called, the copy's closure changed
    the producer's list, not the step's copy handed on with it."""
    log = []
    made = CALLABLES_OVER_LOG[case](log)
    got, _ = step_inputs({"make": {"log": log, "add": made}}, changed={"log", "add"})
    add = got["add"]["add"] if isinstance(got["add"], dict) else got["add"]
    add(3)
    assert log == [] and got["log"] == [3]


@pytest.mark.parametrize("engine", ["local", "dask"])
def test_a_closure_and_the_list_it_appends_to_stay_one_across_steps(tmp_path, engine):
    nb = make_notebook(tmp_path, [
        ("def make(lst):\n    return lambda x: lst.append(x)", ["functions"]),
        ("log = []", ["step:a"]), ("add = make(log)\napp = log.append", ["step:b"]),
        ("add(1)\napp(2)", ["step:c"]), ("n = len(log)", ["step:d"]),
    ])
    result = run_notebook(nb, options=RunOptions(engine=engine, workers=1, use_cache=False))
    assert result.ok and result.load("d", ["n"]) == {"n": 2}


@pytest.mark.parametrize("middle, last", [("v = x[:3].copy()", "x[0] = -2.0\nout = float(x[0])"),
                                          ("y = x[2:5]", "y[0] = -1.0\nout = float(x[2])")])
def test_an_array_a_step_only_read_is_writeable_again_in_the_step_it_hands_it_on_to(tmp_path, middle, last):
    """The middle step gets x as a read-only view and hands it on (with y, a view of it): its
    reader, which writes into it, got it read-only and failed where top to bottom it ran."""
    nb = make_notebook(tmp_path, [("import numpy as np", ["imports"]), ("x = np.arange(10.0)", ["step:p1"]),
                                  (middle, ["step:p2"]), (last, ["step:cons"])])
    result = run_notebook(nb, options=RunOptions(engine="local", use_cache=False))
    assert result.ok, result.steps
    assert result.load("cons", ["out"])["out"] < 0


def test_a_copied_function_keeps_its_default_the_very_object_handed_on_with_it():
    # deepcopy keeps a function as it is, and its default would stay the producer's list
    log = []

    def add(x, into=log):
        into.append(x)

    copy = handoff._copied({"add": add, "log": log, "scale": lambda x, k=2: x * k}, "define")
    copy["add"](1)
    assert copy["log"] == [1] and log == []
    assert copy["add"].__defaults__[0] is copy["log"]


def test_a_failed_background_write_is_told_once_on_a_workers_event_loop(caplog):
    # awaited on the worker's loop (`await_writes`), a failed write's error was left in its asyncio
    # wrapper, and asyncio logged "Future exception was never retrieved" with its traceback
    import asyncio
    import gc

    def full():
        raise OSError(28, "No space left on device")

    handoff.start_write("loop-run", "s", full)
    handoff.start_write("loop-run", "t", lambda: None)
    with caplog.at_level("ERROR", logger="asyncio"):
        failed = asyncio.run(handoff.await_writes("loop-run"))
        gc.collect()
    assert failed == {"s": "OSError: [Errno 28] No space left on device"}
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]
