"""Tests for nbscale.kernels.executor: real IPython, real namespaces, no mocks."""

from __future__ import annotations

import builtins
import json
import os
import subprocess
import sys
import textwrap

import cloudpickle
import numpy as np
import psutil
import pytest

from nbscale.compiler.ir import Metrics, Prelude, Step
from nbscale.kernels.executor import FAILED, SUCCEEDED, Frame, StepResult, execute_step

NO_PRELUDE = Prelude()


def make_step(*sources, cells=None, name="s", outputs=(), defines=()) -> Step:
    cells = list(cells) if cells is not None else list(range(1, len(sources) + 1))
    return Step(name=name, cells=cells, source=list(sources), outputs=list(outputs),
                defines=list(defines))


def run(*sources, prelude=NO_PRELUDE, parameters=None, inputs=None, **kw) -> StepResult:
    step_kw = {k: kw.pop(k) for k in ("cells", "name", "outputs", "defines") if k in kw}
    return execute_step(make_step(*sources, **step_kw), prelude, parameters or {}, inputs or {},
                        **kw)


def ok(result: StepResult) -> StepResult:
    assert result.status == SUCCEEDED, result.error and result.error.traceback
    return result


# --- namespaces ------------------------------------------------------------------------------


def test_each_step_gets_a_fresh_namespace():
    first = ok(run("secret = 41\nsecret + 1", outputs=["secret"]))
    assert first.outputs == {"secret": 41}
    second = run("secret")
    assert second.status == FAILED
    assert second.error.ename == "NameError" and "secret" in second.error.evalue
    # nothing of the first step's results is reachable through IPython's caches either
    third = ok(run("seen = (_, Out, In[:-1])", outputs=["seen"]))
    assert third.outputs["seen"] == ("", {}, [""])


def test_value_passed_as_input_is_visible():
    result = ok(run("doubled = secret * 2", inputs={"secret": 21}, outputs=["doubled"]))
    assert result.outputs == {"doubled": 42}


def test_order_prelude_then_parameters_then_inputs_then_cells():
    prelude = Prelude(cells=[0, 1], source=[
        "import math\nalpha = 'prelude'\nbeta = 'prelude'",
        "alpha_seen_in_prelude = alpha\nparam_visible_in_prelude = 'gamma' in globals()",
    ])
    result = ok(run(
        "order = (alpha, beta, gamma, alpha_seen_in_prelude, param_visible_in_prelude, math.pi)",
        prelude=prelude,
        parameters={"alpha": 0.5, "gamma": "param"},
        inputs={"gamma": "input"},
        outputs=["order"],
    ))
    # parameters override the prelude's defaults, inputs come last; the prelude saw neither
    assert result.outputs["order"] == (0.5, "prelude", "input", "prelude", False, np.pi)


def test_parameters_are_bound_as_objects_not_code():
    tricky = "it's \"quoted\"\n{braces} \\ backslash"
    result = ok(run("same = text", parameters={"text": tricky}, outputs=["same"]))
    assert result.outputs["same"] == tricky


def test_step_and_ir_dicts_are_accepted():
    step = make_step("z = base + 1", name="dicty", outputs=["z"])
    from dataclasses import asdict

    result = ok(execute_step(asdict(step), {"cells": [], "source": [], "names": []}, {},
                             {"base": 1}, metrics={"step": "dicty", "names": ["z"]}))
    assert result.step == "dicty" and result.outputs == {"z": 2} and result.metrics == {"z": 2.0}


def test_namespace_values_holds_defined_names_that_exist():
    result = ok(run("a = [1]\nb = 2", defines=["a", "b", "never_bound"]))
    assert result.namespace_values == {"a": [1], "b": 2}


def test_get_ipython_works_inside_the_step_and_process_state_is_restored():
    before_main = sys.modules["__main__"]
    had_display = "display" in builtins.__dict__
    result = ok(run(
        "from IPython import get_ipython as imported\n"
        "same = imported() is get_ipython()\n"
        "import __main__\n"
        "main_is_ns = __main__.__dict__ is globals()",
        outputs=["same", "main_is_ns"],
    ))
    assert result.outputs == {"same": True, "main_is_ns": True}
    assert sys.modules["__main__"] is before_main
    assert ("display" in builtins.__dict__) == had_display


# --- IPython syntax --------------------------------------------------------------------------


def test_line_magic_binds_names():
    result = ok(run("x = 1", "%time y = x + 1", outputs=["y"]))
    assert result.outputs == {"y": 2}
    assert "Wall time" in result.stdout


def test_cell_magic_capture():
    result = ok(run("%%capture out\nprint('hidden')", "captured = out.stdout",
                    outputs=["captured"]))
    assert result.outputs["captured"] == "hidden\n"
    assert "hidden" not in result.stdout


def test_shell_escapes(tmp_path):
    (tmp_path / "data.csv").write_text("a\n")
    result = ok(run("!echo hi", "files = !ls", outputs=["files"], cwd=str(tmp_path)))
    assert "hi\n" in result.stdout and "\r" not in result.stdout
    assert list(result.outputs["files"]) == ["data.csv"]


def test_stdout_and_stderr_are_captured():
    result = ok(run("import sys\nprint('out')\nprint('err', file=sys.stderr)"))
    assert result.stdout == "out\n"
    assert result.stderr == "err\n"


# --- displays --------------------------------------------------------------------------------


def test_last_expression_is_an_execute_result_and_display_is_captured():
    result = ok(run("x = 40", "display({'a': 1})\nx + 2", "x;", cells=[3, 4, 5]))
    kinds = [(d["output_type"], d["cell"], d["data"]["text/plain"]) for d in result.displays]
    # the trailing semicolon silences cell 5, as in Jupyter
    assert kinds == [("display_data", 4, "{'a': 1}"), ("execute_result", 4, "42")]
    assert "42" not in result.stdout  # no "Out[n]:" printing
    json.dumps(result.to_json())


def test_rich_display_data_is_kept_and_json_safe():
    result = ok(run(
        "from IPython.display import HTML, Image\n"
        "display(HTML('<b>hi</b>'))\n"
        "display(Image(data=b'\\x89PNG\\r\\n\\x1a\\n' + bytes(8), format='png'))"
    ))
    html, png = result.displays
    assert html["data"]["text/html"] == "<b>hi</b>"
    assert isinstance(png["data"]["image/png"], str)  # base64, as nbformat stores it
    json.dumps(result.to_json())


# --- errors ----------------------------------------------------------------------------------


def test_exception_reports_notebook_cell_and_line():
    result = run("a = 1", "b = 2\nc = 3\nd = 1 / 0\ne = 4", cells=[5, 7])
    assert result.status == FAILED
    err = result.error
    assert (err.cell, err.line, err.running_cell) == (7, 3, 7)
    assert (err.ename, err.evalue) == ("ZeroDivisionError", "division by zero")
    assert "cell 7, line 3" in err.traceback and "d = 1 / 0" in err.traceback
    if sys.version_info >= (3, 11):  # carets under the failing expression, as Python puts them
        assert "    d = 1 / 0\n        ~~^~~\n" in err.traceback
    assert "ipython-input" not in err.traceback and "\x1b[" not in err.traceback
    assert "interactiveshell" not in err.traceback  # IPython's own frames hidden


def test_step_stops_at_first_failing_cell():
    result = run("print('one')", "raise ValueError('boom')", "print('three')", cells=[1, 2, 3])
    assert result.error.cell == 2 and result.stdout == "one\n"


def test_exception_in_prelude_function_names_both_cells():
    prelude = Prelude(cells=[1], source=["def helper(v):\n    scale = 0\n    return v / scale"])
    result = run("x = 1", "y = 2\nhelper(y)", cells=[4, 6], prelude=prelude)
    err = result.error
    assert err.running_cell == 6  # the step cell that called it
    assert err.frames == [Frame(cell=6, line=2, name="<module>"), Frame(cell=1, line=3, name="helper")]
    assert (err.cell, err.line) == (1, 3)  # the deepest frame in a notebook cell
    assert err.traceback.index("cell 6, line 2") < err.traceback.index("cell 1, line 3, in helper")


def test_line_numbers_survive_magics_and_leading_blank_lines():
    result = run("\n\n%time a = 1\n!true\nb = undefined_name", cells=[8])
    assert (result.error.cell, result.error.line) == (8, 5)


def test_failure_in_timed_cell_body_maps_to_its_line():
    result = run("%%time\nx = 1\nraise RuntimeError('late')\n", cells=[3])
    # IPython 8's %%time shows the traceback and lets the cell finish
    assert "cell 3, line 3" in result.stderr and "RuntimeError: late" in result.stderr


def test_failure_inside_capture_body_is_captured_and_mapped():
    result = ok(run("%%capture out\nx = 1\nraise ValueError('inside')", "text = out.stdout",
                    cells=[4, 5], outputs=["text"]))
    # as in Jupyter: %%capture swallows the failure, its traceback lands in the capture
    assert "cell 4, line 3" in result.outputs["text"]
    assert "ValueError: inside" in result.outputs["text"]


def test_failure_in_shipped_function_maps_to_its_defining_cell():
    a = ok(run("def ratio(v):\n    return v / zero", cells=[2], outputs=["ratio"]))
    shipped = cloudpickle.loads(cloudpickle.dumps(a.outputs["ratio"]))
    b = run("zero = 0\nratio(1)", cells=[6], inputs={"ratio": shipped})
    assert b.error.frames == [Frame(6, 2, "<module>"), Frame(2, 2, "ratio")]
    assert (b.error.cell, b.error.line, b.error.running_cell) == (2, 2, 6)


def test_syntax_error_reports_cell_and_line():
    result = run("ok = 1", "x = 1\ny = = 2", cells=[2, 9])
    err = result.error
    assert (err.ename, err.cell, err.line) == ("SyntaxError", 9, 2)
    assert "cell 9, line 2" in err.traceback and "y = = 2" in err.traceback


def test_warnings_go_to_stderr_and_filters_stay_in_their_step():
    ok(run("import warnings\nwarnings.filterwarnings('ignore')\nwarnings.warn('hidden')"))
    result = ok(run("import warnings\nwarnings.warn('careful')"))
    assert "UserWarning: careful" in result.stderr


def test_system_exit_fails_the_step_without_ipython_noise():
    result = run("import sys\nsys.exit(3)")
    assert (result.status, result.error.ename, result.error.evalue) == (FAILED, "SystemExit", "3")
    assert "To exit" not in result.stderr


def test_execute_step_inside_a_running_step_is_refused():
    result = run("from nbscale.kernels.executor import execute_step\n"
                 "execute_step({'name': 'inner', 'cells': [], 'source': []}, None, {}, {})")
    assert result.error.ename == "RuntimeError"


def test_chained_exception_traceback_shows_both():
    result = run("try:\n    {}['k']\nexcept KeyError as e:\n    raise ValueError('bad') from e")
    tb = result.error.traceback
    assert "KeyError: 'k'" in tb and "direct cause" in tb and tb.rstrip().endswith("ValueError: bad")


def test_keyboard_interrupt_propagates_and_state_is_restored(tmp_path):
    cwd, stdout = os.getcwd(), sys.stdout
    with pytest.raises(KeyboardInterrupt):
        run("print('x')\nraise KeyboardInterrupt", cwd=str(tmp_path))
    assert os.getcwd() == cwd and sys.stdout is stdout
    ok(run("fine = 1"))


# --- working directory -----------------------------------------------------------------------


def test_cwd_is_the_notebook_folder_during_the_step(tmp_path):
    (tmp_path / "input.txt").write_text("from a file")
    before = os.getcwd()
    result = ok(run("import os\nhere = os.getcwd()\ntext = open('input.txt').read()",
                    cwd=str(tmp_path), outputs=["here", "text"]))
    assert result.outputs == {"here": str(tmp_path), "text": "from a file"}
    assert os.getcwd() == before


# --- functions from earlier steps ------------------------------------------------------------


def test_function_from_earlier_step_reads_this_steps_globals():
    a = ok(run("factor = 2\ndef scale(v):\n    return v * factor", outputs=["scale"]))
    shipped = cloudpickle.loads(cloudpickle.dumps(a.outputs["scale"]))
    assert shipped(1) == 2  # unpickled alone, it still has step A's factor
    b = ok(run("factor = 10\nresult = scale(3)", inputs={"scale": shipped}, outputs=["result"]))
    assert b.outputs["result"] == 30


def test_library_functions_are_not_rebound():
    import posixpath

    result = ok(run("joined = join('a', 'b')", inputs={"join": posixpath.join},
                    outputs=["joined"]))
    assert result.outputs["joined"] == "a/b"


# --- metrics ---------------------------------------------------------------------------------


def test_metrics_numbers_dicts_numpy_and_warnings():
    metrics = Metrics(step="evaluate", names=["acc", "scores", "np_acc", "label", "flag"],
                      exprs={"acc": "hits / total", "scores": "{'lr': 0.5, 'rf': np.int64(1)}",
                             "np_acc": "np.float32(0.25)", "label": "'best'", "flag": "hits > 1"})
    result = ok(run("import numpy as np\nhits, total = 3, 4", name="evaluate", metrics=metrics))
    assert result.metrics == {"acc": 0.75, "scores.lr": 0.5, "scores.rf": 1.0, "np_acc": 0.25,
                              "flag": 1.0}
    assert all(type(v) is float for v in result.metrics.values())
    assert len(result.warnings) == 1 and "'label'" in result.warnings[0]
    json.dumps(result.to_json())


def test_metrics_only_for_their_step():
    metrics = Metrics(step="other", names=["x"], exprs={"x": "x"})
    assert ok(run("x = 1", name="this", metrics=metrics)).metrics == {}


# --- outputs ---------------------------------------------------------------------------------


def test_missing_output_fails_naming_variable_and_step():
    result = run("a = 1", name="prepare", outputs=["a", "model"])
    assert result.status == FAILED and result.outputs == {}
    assert "'model'" in result.error.evalue and "'prepare'" in result.error.evalue
    assert "'a'" not in result.error.evalue


# --- measurements ----------------------------------------------------------------------------


def test_peak_rss_sees_a_short_lived_allocation():
    baseline = psutil.Process().memory_info().rss
    result = ok(run("import time\nblob = b'x' * (200 * 1024 * 1024)\ntime.sleep(0.05)\ndel blob"))
    assert result.peak_rss_bytes - baseline > 150 * 1024 * 1024


def test_wall_and_cpu_time():
    result = ok(run("import time\ntime.sleep(0.1)\nsum(i * i for i in range(300_000))"))
    assert 0.1 <= result.wall_s < 5
    assert 0.005 < result.cpu_s < result.wall_s
    summary = result.to_json()
    assert summary["status"] == SUCCEEDED and "namespace_values" not in summary


# --- the process around the step -------------------------------------------------------------

ISOLATION_SCRIPT = textwrap.dedent("""
    import os, sys
    from nbscale.compiler.ir import Step
    from nbscale.kernels.executor import execute_step

    step = Step(name="s", cells=[1], source=["from IPython import get_ipython\\n"
                                             "shell_ns_clean = 'mine' not in get_ipython().user_ns\\n"
                                             "x = 1\\nx"], outputs=["shell_ns_clean"])
    result = execute_step(step, None, {}, {})
    assert result.ok and result.displays[0]["data"]["text/plain"] == "1", result
    assert os.listdir(os.environ["HOME"]) == [], os.listdir(os.environ["HOME"])

    # inside a process that already runs IPython (the local engine inside a kernel)
    from IPython.core.interactiveshell import InteractiveShell
    outer = InteractiveShell.instance()
    outer.user_ns["mine"] = 1
    result = execute_step(step, None, {}, {})
    assert result.ok and result.outputs["shell_ns_clean"] and result.displays, result
    assert InteractiveShell.instance() is outer and outer.user_ns["mine"] == 1
    print("isolated")
""")


def test_no_files_in_home_and_an_existing_ipython_is_left_alone(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home)}
    env.pop("IPYTHONDIR", None)
    proc = subprocess.run([sys.executable, "-c", ISOLATION_SCRIPT], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "isolated"
