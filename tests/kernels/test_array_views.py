"""numpy views among values handed on together stay views of the same array: copied, pickled, sent —
top-level values or inside dicts, lists and tuples."""

from __future__ import annotations

import io
import pickle

import numpy as np
import pytest
from distributed.protocol import deserialize, serialize

from nbscale.kernels import array_views
from nbscale.kernels.contract import StepOutcome
from nbscale.kernels.handoff import step_inputs
from nbscale.kernels.marshal import dump_group, load_group


def _group():
    base = np.arange(12.0)
    return {"base": base, "tail": base[1:], "grid": base.reshape(3, 4), "back": base[::-1],
            "cols": base.reshape(3, 4)[:, 1], "read_only": _read_only(base[2:4]), "other": np.ones(3), "n": 5}


def _read_only(view):
    view.flags.writeable = False
    return view


class _NoDeepcopy:
    """Refuses deepcopy (pickles fine): the step's copy of its group goes through a pickle."""

    def __deepcopy__(self, memo):
        raise TypeError("no deepcopy")


def _through_store(values):
    f = io.BytesIO()
    dump_group(values, f, step="s")
    f.seek(0)
    return load_group(f)


def _through_outcome(values):
    return pickle.loads(pickle.dumps(StepOutcome("s", "succeeded", values=values))).values


def _through_dask(values):
    """As Dask sends a task's result to another worker: its pickle, protocol 5, buffers out of band."""
    header, frames = serialize(StepOutcome("s", "succeeded", values=values), serializers=["pickle"])
    return deserialize(header, [bytes(f) for f in frames]).values


def _through_step_copy(values):
    return step_inputs({"producer": values}, changed=set(values))[0]


def _through_step_pickle(values):
    return {k: v for k, v in _through_step_copy({**values, "_refuses": _NoDeepcopy()}).items() if k != "_refuses"}


PATHS = pytest.mark.parametrize("copied", [_through_store, _through_outcome, _through_dask, _through_step_copy,
                                           _through_step_pickle],
                                ids=["store", "outcome", "outcome to dask", "step copy", "step copy by pickle"])


@PATHS
def test_views_stay_views_of_the_copied_array(copied):
    original = _group()
    got = copied(original)
    assert got["base"] is not original["base"]
    for name, value in original.items():
        assert np.array_equal(got[name], value), name
    for name in ("tail", "grid", "back", "cols", "read_only"):
        assert np.shares_memory(got[name], got["base"]), name
    assert not got["read_only"].flags.writeable and got["tail"].flags.writeable
    got["tail"][:] = 0
    got["back"][0] = 99
    assert got["base"].tolist() == [0.0] * 11 + [99.0]
    assert not np.shares_memory(got["other"], got["base"])
    assert original["base"].tolist() == list(np.arange(12.0))  # the producer's values are untouched


def _nested():
    a, rows = np.zeros(6), np.zeros((2, 3))
    shared = a[4:]
    return {"a": a, "d": {"head": a[:2]}, "parts": np.split(a, 3), "pair": (a[1:3], a[::2]),
            "deep": {"x": [{"y": (a[5:],)}]}, "left": [shared], "right": {"s": shared},
            "rows": rows, "row_list": list(rows), "inner": {"owner": np.ones(4)}}


@PATHS
def test_views_inside_containers_stay_views_of_the_copied_array(copied):
    original = _nested()
    inner_view = original["inner"]["owner"][1:3]  # a view of an array that is itself inside a container
    got = copied({**original, "inner_view": inner_view})
    a = got["a"]
    assert a is not original["a"]
    got["d"]["head"][:] = 3  # `d['head'][:] = 3` top to bottom changes `a`
    assert a.tolist() == [3, 3, 0, 0, 0, 0]
    got["parts"][1][:] = 5  # np.split gives views
    got["pair"][0][0] = 7  # a[1]
    got["deep"]["x"][0]["y"][0][0] = 9  # a[5], two containers deep and more
    assert a.tolist() == [3, 7, 5, 5, 0, 9]
    assert got["left"][0] is got["right"]["s"]  # one view in two containers stays one object
    got["left"][0][0] = 4
    assert a[4] == 4 and got["pair"][1].tolist() == [3, 5, 4]  # a[::2] sees the changes too
    got["row_list"][1][2] = 8  # `rows[1][2] = 8` of `list(X)` changes X
    assert got["rows"][1, 2] == 8
    got["inner_view"][:] = 2
    assert got["inner"]["owner"].tolist() == [1, 2, 2, 1]
    assert original["a"].tolist() == [0.0] * 6 and original["rows"].sum() == 0  # the producer's are untouched


@PATHS
def test_a_view_of_an_array_outside_the_group_is_copied_alone(copied):
    big = np.arange(1_000_000.0)  # 8 MB the group does not hold
    fortran = np.asfortranarray(np.ones((2, 3)))
    objects = np.array([1, "a"], dtype=object)
    foreign = np.frombuffer(bytearray(32), dtype=np.float64)  # memory numpy does not own
    values = {"d": {"head": big[:10], "also": big[2:4]}, "f": fortran, "fv": [fortran[:, 1]],
              "o": objects, "ov": [objects[1:]], "foreign": foreign, "fview": {"v": foreign[1:]}, "n": 1}
    got = copied(values)
    assert got["d"]["head"].tolist() == list(range(10)) and _memory_bytes(got["d"]["head"]) <= 80
    assert not np.shares_memory(got["d"]["head"], got["d"]["also"])  # no owner in the group: copied as before
    assert not np.shares_memory(got["fv"][0], got["f"]) and got["ov"][0].tolist() == ["a"]
    assert not np.shares_memory(got["fview"]["v"], got["foreign"])
    assert not np.shares_memory(got["d"]["head"], big)
    f = io.BytesIO()
    dump_group(values, f, step="s")
    assert len(f.getvalue()) < 10_000  # the 8 MB array was not dragged in


def _memory_bytes(array) -> int:
    """The bytes of the memory `array` lies in (its owner's, or the buffer's it was read from)."""
    while isinstance(array.base, np.ndarray):
        array = array.base
    return array.nbytes if array.base is None else memoryview(array.base).nbytes


def test_the_walk_for_views_in_containers_is_bounded(monkeypatch):
    monkeypatch.setattr(array_views, "WALK_LIMIT", 8)
    a = np.zeros(4)
    near, far = a[:1], a[3:]
    values = {"a": a, "near": [near], "far": [0.0] * 20 + [far], "many": list(range(1_000_000))}
    got = _through_step_copy(values)
    got["near"][0][:] = 1  # found by the walk: a view of the copy
    got["far"][-1][:] = 2  # past what the walk looks at: its own copy, as any value
    assert got["a"].tolist() == [1, 0, 0, 0] and got["far"][-1].tolist() == [2]
    sent = _through_dask(values)  # a pickle sees every value: the far view is kept there
    sent["far"][-1][:] = 2
    assert sent["a"][3] == 2


def test_an_outcome_sent_by_dask_holds_each_array_once_out_of_band():
    big = np.arange(2_000_000.0)  # 16 MB
    buffers = []
    data = pickle.dumps(StepOutcome("s", "succeeded", values={"big": big, "d": {"head": big[:3]}, "n": 1}),
                        protocol=5, buffer_callback=buffers.append)
    assert len(data) < 10_000 and [memoryview(b).nbytes for b in buffers] == [big.nbytes]
    received = bytearray(memoryview(buffers[0]))
    got = pickle.loads(data, buffers=[received]).values
    received[:8] = np.array([42.0]).tobytes()  # the array lies in the received buffer: no copy of it
    assert got["big"][0] == 42.0 and got["d"]["head"][0] == 42.0
    got["d"]["head"][1] = 7
    assert got["big"][1] == 7


def test_lists_dicts_and_sets_of_numbers_and_strings_are_copied_whole_as_deepcopy_copies_them():
    # copied at once, not item by item (a list of five million numbers: 0.9 s in deepcopy)
    ints = list(range(5000))
    words = {f"w{i}": i for i in range(5000)}
    tags = {f"t{i}" for i in range(5000)}
    nested = [[i] for i in range(5000)]  # (not flat: its lists are copied one by one, as before)
    mixed = [*range(4999), 1.5j, None, True, b"x", "s"]
    row = tuple(range(5000))
    values = {"ints": ints, "again": ints, "deep": {"x": ints, "w": words}, "tags": tags, "nested": nested,
              "mixed": mixed, "row": row}
    copy = array_views.copied(values)
    assert copy["row"] is row  # (deepcopy's own: a tuple of atoms is its own copy)
    assert copy["ints"] == ints and copy["ints"] is not ints
    assert copy["again"] is copy["ints"] and copy["deep"]["x"] is copy["ints"]  # one list stays one
    assert copy["deep"]["w"] == words and copy["deep"]["w"] is not words and list(copy["deep"]["w"]) == list(words)
    assert copy["tags"] == tags and copy["tags"] is not tags
    assert copy["nested"] == nested and copy["nested"][0] is not nested[0]
    assert copy["mixed"] == mixed and copy["mixed"] is not mixed
    copy["ints"].append(-1)
    copy["deep"]["w"]["new"] = 1
    assert len(ints) == 5000 and "new" not in words  # the step's own copies


def test_a_list_of_records_is_copied_record_by_record_as_deepcopy_copies_it():
    rows = [{"id": i, "name": f"n{i}", "score": i / 2, "ok": None} for i in range(3000)]
    rows.append(rows[0])  # one record listed twice: one copy, listed twice
    nested = [{"id": i, "tags": ["a"]} for i in range(3000)]  # (a list inside: deep-copied as before)
    copy = array_views.copied({"rows": rows, "first": rows[0], "nested": nested})
    assert copy["rows"] == rows and copy["rows"] is not rows and copy["rows"][0] is not rows[0]
    assert copy["rows"][-1] is copy["rows"][0] is copy["first"]  # shared as in the producer's value
    assert copy["rows"][5]["name"] is rows[5]["name"]  # (its atoms are shared, as deepcopy shares them)
    assert copy["nested"] == nested and copy["nested"][0]["tags"] is not nested[0]["tags"]
    copy["rows"][1]["id"] = -1
    copy["nested"][0]["tags"].append("b")
    assert rows[1]["id"] == 1 and nested[0]["tags"] == ["a"]  # the step's own copies
