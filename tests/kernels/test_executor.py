"""Tests for nbscale.kernels.executor: real IPython, real namespaces, no mocks.

`make_step`, `run` and `ok` are the way to run a step in these tests; the tests of the modules the
executor is made of (namespace, tracebacks, capture, shell) import them from here.
"""

from __future__ import annotations

import json
import math
import py_compile
import sys
import uuid
from dataclasses import asdict

import pytest
from conftest import rewrite_keeping_mtime

from nbscale.compiler.ir import Metrics, Prelude, Step
from nbscale.kernels import contract, tracebacks
from nbscale.kernels.dependencies import record
from nbscale.kernels.executor import (
    FAILED,
    SUCCEEDED,
    Frame,
    StepError,
    StepResult,
    evict_outdated_modules,
    execute_step,
)

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


def test_public_names_are_the_contracts_and_the_tracebacks():
    assert (SUCCEEDED, FAILED) == (contract.SUCCEEDED, contract.FAILED)
    assert (Frame, StepError) == (tracebacks.Frame, tracebacks.StepError)


# --- what the step is given ------------------------------------------------------------------


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
    assert result.outputs["order"] == (0.5, "prelude", "input", "prelude", False, math.pi)


def test_parameters_are_bound_as_objects_not_code():
    tricky = "it's \"quoted\"\n{braces} \\ backslash"
    result = ok(run("same = text", parameters={"text": tricky}, outputs=["same"]))
    assert result.outputs["same"] == tricky


def test_step_and_ir_dicts_are_accepted():
    step = make_step("z = base + 1", name="dicty", outputs=["z"])
    result = ok(execute_step(asdict(step), {"cells": [], "source": [], "names": []}, {},
                             {"base": 1}, metrics={"step": "dicty", "names": ["z"]}))
    assert result.step == "dicty" and result.outputs == {"z": 2} and result.metrics == {"z": 2.0}


# --- what the step gives back ----------------------------------------------------------------


def test_namespace_values_holds_defined_names_that_exist():
    result = ok(run("a = [1]\nb = 2", defines=["a", "b", "never_bound"]))
    assert result.namespace_values == {"a": [1], "b": 2}


def test_metrics_only_for_their_step():
    metrics = Metrics(step="other", names=["x"], exprs={"x": "x"})
    assert ok(run("x = 1", name="this", metrics=metrics)).metrics == {}


def test_step_stops_at_first_failing_cell():
    result = run("print('one')", "raise ValueError('boom')", "print('three')", cells=[1, 2, 3])
    assert result.status == FAILED and result.outputs == {}
    assert result.error.cell == 2 and result.stdout == "one\n"


def test_missing_output_fails_naming_variable_and_step():
    result = run("a = 1", name="prepare", outputs=["a", "model"], notebook="nb.ipynb")
    assert result.status == FAILED and result.outputs == {}
    assert result.error.evalue == contract.missing_outputs_message("prepare", ["model"], "nb.ipynb")
    assert "'a'" not in result.error.evalue
    # a failure outside the step's cells: the contract's plain error shape
    assert asdict(result.error) == {**contract.error_dict("MissingOutputError", result.error.evalue),
                                    "running_cell": None}


def test_wall_and_cpu_time():
    result = ok(run("import time\ntime.sleep(0.1)\nsum(i * i for i in range(300_000))"))
    assert 0.1 <= result.wall_s < 5
    assert 0.005 < result.cpu_s < result.wall_s
    summary = result.to_json()
    assert summary["status"] == SUCCEEDED and "namespace_values" not in summary


def test_summary_of_a_failed_step_is_json():
    result = run("x = float('nan')\n1 / 0", cells=[4], outputs=["x"])
    summary = json.loads(json.dumps(result.to_json()))
    assert summary["status"] == FAILED and summary["outputs"] == []
    error = summary["error"]
    assert (error["cell"], error["line"], error["ename"]) == (4, 2, "ZeroDivisionError")
    assert error["frames"] == [{"cell": 4, "line": 2, "name": "<module>"}]


# --- sys.exit: the step ends there ------------------------------------------------------------


@pytest.mark.parametrize("exit_call", ["sys.exit(0)", "sys.exit()", "raise SystemExit", "sys.exit(None)", "exit()",
                                       "quit()"])
def test_a_clean_exit_ends_the_step_there_successfully(exit_call):
    result = ok(run("a = 1\nprint('before')", f"import sys\n{exit_call}\na = 'rest of the cell'",
                    "a = 'a later cell'\nprint('not reached')", outputs=["a"]))
    assert result.outputs == {"a": 1} and result.stdout == "before\n" and result.stderr == ""
    assert [c["cell"] for c in result.cells] == [1, 2]  # the later cell did not run
    assert result.cells[1]["outputs"] == []  # no traceback for a clean exit


def test_a_clean_exit_before_an_output_is_defined_misses_it():
    result = run("import sys\nsys.exit(0)", "model = 1", name="train", outputs=["model"])
    assert result.status == FAILED and result.error.ename == "MissingOutputError"


def test_a_clean_exit_in_the_prelude_skips_the_step_s_cells():
    prelude = Prelude(cells=[0], source=["import sys\nseen = 'prelude'\nsys.exit(0)"])
    result = ok(run("seen = 'step'", prelude=prelude, defines=["seen"], cells=[1]))
    assert result.namespace_values == {"seen": "prelude"} and [c["cell"] for c in result.cells] == [0]


@pytest.mark.parametrize("exit_call, evalue", [("sys.exit(3)", "3"),
                                               ("sys.exit('stopped: bad data')", "stopped: bad data")])
def test_any_other_exit_fails_the_step_at_its_cell(exit_call, evalue):
    result = run("a = 1", f"import sys\n{exit_call}", "b = 2", outputs=["a"])
    assert result.status == FAILED and result.outputs == {}
    assert (result.error.ename, result.error.evalue, result.error.cell) == ("SystemExit", evalue, 2)
    assert [c["cell"] for c in result.cells] == [1, 2]


def test_an_edited_local_module_is_imported_again_with_every_local_module_that_holds_it(tmp_path):
    # in one process (a worker, the server, a kernel): `from pkg.sub import mod` reads the package's
    # attribute, and `helpers` keeps the objects it took from `util` with `from util import K`
    import sys
    import uuid

    from conftest import make_notebook

    from nbscale.kernels.runner import RunOptions, run_notebook

    tag = uuid.uuid4().hex[:8]
    pkg, helpers, util = f"pkg_{tag}", f"helpers_{tag}", f"util_{tag}"
    (tmp_path / pkg / "sub").mkdir(parents=True)
    (tmp_path / pkg / "__init__.py").write_text("")
    (tmp_path / pkg / "sub" / "__init__.py").write_text("")
    (tmp_path / pkg / "sub" / "mod.py").write_text("V = 1\n")
    (tmp_path / f"{util}.py").write_text("K = 1\n")
    (tmp_path / f"{helpers}.py").write_text(f"from {util} import K\n")
    nb = make_notebook(tmp_path, [(f"from {pkg}.sub import mod\nimport {helpers}", ["imports"]),
                                  ("v = mod.V\nk = " + helpers + ".K", ["step:s1"])])
    local = RunOptions(engine="local")
    try:
        first = run_notebook(nb, options=local)
        assert (first.load("s1")["v"], first.load("s1")["k"]) == (1, 1)
        (tmp_path / pkg / "sub" / "mod.py").write_text("V = 22\n")
        (tmp_path / f"{util}.py").write_text("K = 33\n")
        edited = run_notebook(nb, options=local)
        assert not edited.step("s1")["cached"]
        assert (edited.load("s1")["v"], edited.load("s1")["k"]) == (22, 33)
        again = run_notebook(nb, options=local)  # and what is stored is what a fresh process gives
        assert again.step("s1")["cached"] and again.load("s1")["v"] == 22
    finally:
        for name in [n for n in sys.modules if n.split(".")[0] in (pkg, helpers, util)]:
            del sys.modules[name]


def test_a_keyboard_interrupt_the_step_raises_off_the_main_thread_is_its_failure():
    # a Dask worker runs steps in its threads, where no signal arrives: re-raised there, it killed
    # the worker, and the step ran again on the next one without end
    import threading

    step = Step(name="s", cells=[0], outputs=[], source=["raise KeyboardInterrupt('from the code')"])
    found = {}
    thread = threading.Thread(target=lambda: found.update(result=execute_step(step, Prelude(), {}, {})))
    thread.start()
    thread.join(60)
    result = found["result"]
    assert result.status == FAILED and result.error.ename == "KeyboardInterrupt"
    assert "from the code" in result.error.evalue
    with pytest.raises(KeyboardInterrupt):  # in the main thread it is Ctrl-C: the run is cancelled
        execute_step(step, Prelude(), {}, {})


def test_a_module_rewritten_under_its_old_size_and_mtime_is_imported_again_from_its_source(tmp_path, monkeypatch):
    # a warm worker imported helpers.py, whose bytecode Python cached; `cp -p` then brings in new code
    # of the same size: Python checks a cache against size and mtime only, and would run the old code
    name = f"helpers_{uuid.uuid4().hex[:8]}"
    path = tmp_path / f"{name}.py"
    path.write_text("ANSWER = 1\n")
    py_compile.compile(str(path))  # as an import writes it
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        with record(str(tmp_path)):  # a step imports it
            assert __import__(name).ANSWER == 1
        rewrite_keeping_mtime(path, "ANSWER = 2\n")
        evict_outdated_modules(str(tmp_path))  # before the next step
        assert __import__(name).ANSWER == 2
    finally:
        sys.modules.pop(name, None)


def test_no_credential_a_step_is_given_is_recorded_as_a_file_it_may_read(tmp_path):
    # a secret with a `/` in it was taken for a file's name, and written in clear into the run store,
    # the artifact manifests and a KFP step's record (its value itself was hidden)
    secrets = {"password": "pa/ss/Word9", "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
               "db": {"user": "me", "password": "x/y/secret.z"}}
    given = {"settings_file": "conf/settings.json", **secrets}
    result = ok(run("n = len(password) + len(AWS_SECRET_ACCESS_KEY)", parameters=given,
                    inputs={"api_token": "tok/en/abc.def"}, cwd=str(tmp_path)))
    text = json.dumps(result.dependencies)
    assert "conf/settings.json" in text  # (a plain text parameter still names a file the step may read)
    assert not any(secret in text for secret in ("Word9", "K7MDENG", "secret.z", "abc.def"))
