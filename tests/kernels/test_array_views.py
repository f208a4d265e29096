"""numpy views among values handed on together stay views of the same array: copied, pickled, sent."""

from __future__ import annotations

import copy
import io
import pickle

import numpy as np
import pytest

from nbscale.kernels.array_views import views_as_references, views_restored
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


def _through_pickle(values):
    return pickle.loads(pickle.dumps(values))


def _through_store(values):
    f = io.BytesIO()
    dump_group(values, f, step="s")
    f.seek(0)
    return load_group(f)


def _through_outcome(values):
    return _through_pickle(StepOutcome("s", "succeeded", values=values)).values


def _through_step_copy(values):
    return step_inputs({"producer": values}, changed=set(values))[0]


@pytest.mark.parametrize("copied", [
    lambda v: views_restored(copy.deepcopy(views_as_references(v))),
    lambda v: views_restored(_through_pickle(views_as_references(v))),
    _through_store, _through_outcome, _through_step_copy,
], ids=["deepcopy", "pickle", "store", "outcome", "step copy"])
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


def test_what_is_not_a_plain_view_of_a_value_of_the_group_is_left_as_it_is():
    hidden = np.arange(6.0)
    fortran = np.asfortranarray(np.ones((2, 3)))
    objects = np.array([1, "a"], dtype=object)
    values = {"a": hidden[1:], "b": hidden[2:], "f": fortran, "fv": fortran[:, 1], "o": objects, "ov": objects[1:],
              "empty": np.empty(0), "e": np.empty(0)[:]}
    assert views_as_references(values) == values  # (each still a view of what the group does not hold)
    assert views_as_references({"only": hidden}) == {"only": hidden}
