"""compiler/targets/kfp/parameters.py: how parameter values travel through KFP."""

from __future__ import annotations

import json

from kfp_compiled import TRICKY

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
