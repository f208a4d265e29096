"""The public Python API in nbscale/__init__.py: the same code path as the CLI."""

from conftest import make_notebook

import nbscale


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
