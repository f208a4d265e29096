"""The public Python API in nbscale/__init__.py: the same code path as the CLI."""

import re

import pytest
from conftest import make_notebook

import nbscale
from nbscale.kernels.errors import ParameterError


def test_run_returns_status_steps_metrics_and_values(tmp_path):
    notebook = make_notebook(tmp_path, [("k = 2", ["parameters"]), ("x = [k] * 3", ["step:make"]),
                                        ("total = sum(x)", ["step:sum"]), ("total", ["metrics"])])
    result = nbscale.run(notebook, {"k": "5"}, engine="local")
    assert result.ok and [s["name"] for s in result.steps] == ["make", "sum", "metrics"]
    assert result.metrics == {"total": 15.0}
    assert result.load("sum")["total"] == 15
    again = nbscale.run(notebook, {"k": 5}, engine="local")
    assert {s["status"] for s in again.steps} == {"cached"} and again.metrics == {"total": 15.0}


def test_compile_notebook_gives_the_ir(tmp_path):
    notebook = make_notebook(tmp_path, [("x = 1", ["step:a"]), ("y = x", ["step:b"])])
    pipeline = nbscale.compile_notebook(notebook)
    assert pipeline.step("b").sources == {"x": "a"}


@pytest.mark.parametrize("parameters, said", [("k=1", "got str"), ([("k", 1)], "got list"),
                                              ({1: 2}, "got the name 1 (int)")])
def test_parameters_that_are_not_a_dict_of_names_are_refused(tmp_path, parameters, said):
    notebook = make_notebook(tmp_path, [("k = 2", ["parameters"]), ("x = k", ["step:a"])])
    expected = f"parameters must be a dict of parameter names to values, {said}"
    with pytest.raises(ParameterError, match=re.escape(expected)):
        nbscale.run(notebook, parameters, engine="local")
    assert not (tmp_path / ".nbscale").exists()  # refused before anything is recorded


def test_use_cache_must_be_a_bool(tmp_path):
    notebook = make_notebook(tmp_path, [("x = 1", ["step:a"])])
    with pytest.raises(ParameterError, match="use_cache must be True or False, not 'no'"):
        nbscale.run(notebook, engine="local", use_cache="no")
