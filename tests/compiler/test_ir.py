"""The pipeline IR: JSON round trips, schema checks and the shape DESIGN.md promises."""

import json

import pytest
from conftest import EXAMPLES

from nbscale.compiler import SCHEMA, Pipeline, compile_notebook, compile_source
from nbscale.compiler.diagnostics import CODES, Diagnostic


@pytest.mark.parametrize("notebook", EXAMPLES, ids=lambda p: p.name)
def test_every_example_round_trips_through_json(notebook):
    p = compile_notebook(notebook)
    text = p.dumps()
    back = Pipeline.from_json(json.loads(text))
    assert back == p
    assert back.dumps() == text
    assert Pipeline.from_json(p.to_json()) == p


def test_there_are_examples():
    assert len(EXAMPLES) >= 5


def test_round_trip_keeps_diagnostics_parameters_and_metrics():
    p = compile_source([
        ("import math", ["imports"]),
        ("alpha = 0.5\nname = 'it\\'s \"q\" {x}'\ncfg = {'a': [1, None]}", ["parameters"]),
        ("acc = math.sqrt(alpha) + undefined_thing", ["step:train", "resources:cpu=500m", "timeout:1h"]),
        ("{'acc': acc}", ["metrics"]),
        ("z = 1", ["paramters"]),
    ])
    assert p.diagnostics and p.parameters and p.metrics.names
    back = Pipeline.from_json(json.loads(p.dumps()))
    assert back == p
    assert back.has_errors
    assert back.parameters[1].default == 'it\'s "q" {x}'
    assert back.step("train").resources == {"cpu": 0.5}


def test_ir_shape():
    p = compile_source([("a = 1", ["step:s"]), ("b = a", ["step:t"])], name="shape")
    ir = p.to_json()
    assert ir["schema"] == SCHEMA == "nbscale.pipeline/1"
    assert (ir["name"], ir["notebook"]) == ("shape", "shape.ipynb")
    assert set(ir) == {"schema", "name", "notebook", "parameters", "prelude", "steps", "metrics", "diagnostics"}
    t = ir["steps"][1]
    for key in ["name", "cells", "source", "inputs", "outputs", "after", "resources", "image", "retries",
                "cache", "timeout", "hash"]:
        assert key in t
    assert (t["inputs"], t["after"], t["cells"], t["source"]) == (["a"], ["s"], [1], ["b = a"])
    assert t["hash"].startswith("sha256:")
    json.dumps(ir, allow_nan=False)  # plain JSON, no NaN


def test_diagnostics_carry_their_severity_in_json():
    p = compile_source(["x = undefined_name"])
    [diag] = p.to_json()["diagnostics"]
    assert diag["severity"] == "error" and diag["code"] == "undefined-name"
    assert (diag["cell"], diag["line"], diag["col"]) == (0, 1, 5)


def test_every_diagnostic_code_has_a_known_severity():
    assert set(CODES.values()) == {"error", "warning", "info"}
    for code in CODES:
        assert Diagnostic(code, "m").severity == CODES[code]


def test_diagnostic_location():
    assert Diagnostic("undefined-name", "m", cell=3, line=2, col=5).location("nb.ipynb") == "nb.ipynb:cell 4:2:5"
    assert Diagnostic("unknown-tag", "m", cell=3).location("nb.ipynb") == "nb.ipynb:cell 4"
    assert Diagnostic("cycle", "m").location("nb.ipynb") == "nb.ipynb"


def test_step_lookup():
    p = compile_source([("a = 1", ["step:s"])])
    assert p.step("s").name == "s"
    with pytest.raises(KeyError):
        p.step("nope")


@pytest.mark.parametrize("schema", [None, "nbscale.pipeline/2", "kfp", 1])
def test_wrong_schema_is_a_value_error(schema):
    data = compile_source(["a = 1"]).to_json()
    data["schema"] = schema
    with pytest.raises(ValueError, match="schema"):
        Pipeline.from_json(data)


def test_missing_schema_is_a_value_error():
    data = compile_source(["a = 1"]).to_json()
    del data["schema"]
    with pytest.raises(ValueError):
        Pipeline.from_json(data)


@pytest.mark.parametrize("data", [[], "nbscale.pipeline/1", None])
def test_not_a_dict_is_a_value_error(data):
    with pytest.raises(ValueError):
        Pipeline.from_json(data)


def test_malformed_ir_with_the_right_schema_is_a_value_error():
    data = compile_source(["a = 1"]).to_json()
    del data["steps"]
    with pytest.raises(ValueError, match="steps"):
        Pipeline.from_json(data)
    data = compile_source(["a = 1"]).to_json()
    data["steps"][0]["unknown_field"] = 1
    with pytest.raises(ValueError):
        Pipeline.from_json(data)


def test_settings_and_spread_metrics_round_trip_and_older_ir_still_loads():
    p = compile_source([
        ("import warnings\nwarnings.simplefilter('ignore')\nacc = {'a': 1.0}", ["step:a"]),
        ("b = 1", ["step:b"]),
        ("{**acc}", ["metrics"]),
    ])
    data = json.loads(p.dumps())
    assert data["steps"][1]["settings"] == [{"cell": 0, "line": 2, "source": "warnings.simplefilter('ignore')",
                                             "imports": ["import warnings"]}]
    assert data["metrics"]["spread"] == ["acc"]
    assert Pipeline.from_json(data) == p
    for step in data["steps"]:
        del step["settings"]
    del data["metrics"]["spread"]
    older = Pipeline.from_json(data)
    assert older.step("b").settings == [] and older.metrics.spread == []
