"""compiler/targets/kfp/parameters.py: how parameter values travel through KFP."""

from __future__ import annotations

import json

import pytest
from kfp_compiled import TRICKY

from nbscale.compiler.errors import TargetError
from nbscale.compiler.targets.kfp import kfp_argument, wire_type


def test_kfp_arguments_round_trip_through_json():
    for value in ([1, 2.5, {"k": [None, True]}], {"z": 1, "a": "{{$.x}}"}, None, TRICKY):
        text = kfp_argument("json", value)
        assert "{{" not in text and json.loads(text) == value
    assert kfp_argument("int", 3) == 3 and kfp_argument("str", "a{b}") == "a{b}"


def test_wire_types():
    assert [wire_type(t) for t in ("int", "float", "str", "bool")] == ["int", "float", "str", "bool"]
    assert [wire_type(t) for t in ("list", "dict", "none")] == ["json"] * 3
    assert wire_type("str", "a {{ b }}") == "json" and wire_type("str", "a { b }") == "str"


def test_an_int_a_double_cannot_hold_travels_as_text_or_is_refused():
    big = 2**53 + 1
    assert wire_type("int", 2**53) == "int" and wire_type("int", -big) == "json" and wire_type("int", big) == "json"
    assert json.loads(kfp_argument("json", big)) == big  # exact, as JSON text
    assert kfp_argument("int", 2**53) == 2**53
    with pytest.raises(TargetError, match="beyond what a Kubeflow Pipelines int carries"):
        kfp_argument("int", big)  # a value given at run time to an int input
