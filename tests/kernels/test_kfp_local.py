"""Pipelines compiled to KFP YAML, run end to end by kfp.local (SubprocessRunner, use_venv=False).

`nbscale run --engine kfp-local` compiles each notebook to YAML, loads it back with
`kfp.components.load_component_from_file` in a kfp.local process and runs it; the metrics must
equal the local engine's, and the run store must hold the same kind of records. One test runs a
compiled YAML with kfp.local directly in this process, to check the `dsl.Metrics` artifact.
Nothing is pip-installed: the YAML for these runs has no packages_to_install and no kfp install.
"""

from __future__ import annotations

import json
import re
import shutil
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import EXAMPLES, make_notebook

from nbscale.compiler import compile_notebook
from nbscale.compiler.targets.kfp import KfpOptions, generate, kfp_argument, write_yaml
from nbscale.kernels.kfp_component import ArtifactFolder
from nbscale.kernels.runner import RunOptions, default_run_store, run_notebook

LOCAL_YAML = KfpOptions(packages_to_install=[], install_kfp_package=False)
NATIVE_TRICKY = "it's a \"test\" {not a format} {{ jinja }} }}{{\nsecond line\ttab \\ back ✓"
TRICKY = "it's a \"test\" {not a format} {{$.inputs.parameters['x']}}\nsecond line\ttab \\ back"


def run(notebook, engine, parameters=None, **options):
    events = []
    result = run_notebook(notebook, parameters, RunOptions(engine=engine, **options),
                          on_event=lambda kind, step, payload: events.append((kind, step, payload)))
    return result, events


@pytest.fixture(scope="module")
def example_runs(tmp_path_factory):
    """Each example run by the local engine and by kfp-local; two examples at a time (kfp.local
    runs one task at a time, each task its own process: two runs keep both cores busy)."""

    def both(example):
        notebook = tmp_path_factory.mktemp(example.stem) / example.name
        shutil.copy(example, notebook)
        store = tmp_path_factory.mktemp(f"{example.stem}-store")  # outside: `!ls` in a step sees the folder
        local, _ = run(notebook, "local", store_url=str(store))
        kfp, events = run(notebook, "kfp-local")
        return example.stem, (notebook, local, kfp, events)

    longest_first = sorted(KFP_EXAMPLES, key=lambda p: len(compile_notebook(p).steps), reverse=True)
    with ThreadPoolExecutor(2) as pool:
        return dict(pool.map(both, longest_first))


# The examples of the product's tour (model comparison, sweep, Dask ETL, monitoring) would add about
# three minutes of kfp-local runs on a 2-core CI machine; they are run for real, with their metrics,
# drift and regressions checked, by tests/cli/test_examples.py. These cover every step kind the
# KFP component handles (magics, shell commands, mutation, untagged cells, kept values).
KFP_EXAMPLES = [p for p in EXAMPLES if p.stem in {"iris", "kale_style", "magics", "mutation", "untagged"}]


@pytest.mark.parametrize("example", KFP_EXAMPLES, ids=lambda p: p.stem)
def test_every_example_runs_under_kfp_local_with_the_local_engines_metrics(example, example_runs):
    notebook, local, kfp, events = example_runs[example.stem]
    assert local.ok, local.steps
    assert kfp.ok, "\n".join(f"{s['name']} {s['status']}: {s.get('error')}" for s in kfp.steps)
    assert kfp.metrics == local.metrics
    assert [s["status"] for s in kfp.steps] == ["succeeded"] * len(kfp.steps)
    assert all(s["attempts"] == 1 and s["duration_s"] is not None for s in kfp.steps)
    # live events, one start and one finish per step, in an order that respects the DAG
    started = [step for kind, step, _ in events if kind == "step_started"]
    finished = [step for kind, step, _ in events if kind == "step_finished"]
    assert sorted(started) == sorted(finished) == sorted(s["name"] for s in kfp.steps)
    pipeline = compile_notebook(notebook)
    for step in pipeline.steps:
        assert all(started.index(u) < started.index(step.name) for u in step.after)
    # outputs went into nbscale's artifact store, the same values as the local engine's
    for step in pipeline.steps:
        ours, theirs = kfp.load(step.name, step.outputs), local.load(step.name, step.outputs)
        assert _same(ours, theirs), step.name
    run_row = default_run_store(notebook).get_run(kfp.run_id)
    assert run_row["engine"] == "kfp-local" and run_row["status"] == "succeeded"
    local_steps = default_run_store(notebook).get_run(local.run_id)["steps"]
    assert [_stable(s["stdout"]) for s in run_row["steps"]] == [_stable(s["stdout"]) for s in local_steps]


def _stable(text):
    """Output without the lines `%time` prints (timings differ from run to run)."""
    return [line for line in (text or "").splitlines() if not line.startswith(("CPU times", "Wall time"))]


def _same(a: dict, b: dict) -> bool:
    import pickle

    import numpy as np
    import pandas as pd

    if a.keys() != b.keys():
        return False
    for name in a:
        x, y = a[name], b[name]
        if isinstance(x, pd.DataFrame | pd.Series):
            if not x.equals(y):
                return False
        elif isinstance(x, np.ndarray):
            if not np.array_equal(x, y):
                return False
        elif type(x).__module__.startswith("sklearn"):
            if type(x) is not type(y) or pickle.dumps(x.get_params()) != pickle.dumps(y.get_params()):
                return False
        elif x != y:
            return False
    return True


def test_parameters_with_tricky_values_arrive_unchanged(tmp_path):
    nb = make_notebook(tmp_path, [
        ("greeting = 'hello'\nlayers = [64, 32]\nconfig = {'b': 1, 'a': 2}\nmaybe = None\nrate = 0.5\nn = 3",
         ["parameters"]),
        ("kinds = [type(v).__name__ for v in [greeting, maybe, rate, n, *layers]]\n"
         "got = [greeting, layers, list(config), config, maybe, rate, n, kinds]", ["step:use"]),
        ("ok = float(got == expected)", ["step:check"]),
        ("ok", ["metrics"]),
    ], name="tricky")
    # `expected` is a module-level constant of the prelude so both engines compare the same thing
    given = {"greeting": TRICKY, "layers": "[1, 2, [3]]", "config": '{"z": 1, "a": {"k": "{{x}}"}}',
             "maybe": '{"n": [1, 2]}', "rate": "2", "n": "7"}
    expected = [TRICKY, [1, 2, [3]], ["z", "a"], {"z": 1, "a": {"k": "{{x}}"}}, {"n": [1, 2]}, 2.0, 7,
                ["str", "dict", "float", "int", "int", "int", "list"]]
    source = nb.read_text()
    nb_json = json.loads(source)
    nb_json["cells"].insert(0, {"cell_type": "code", "metadata": {"tags": ["functions"]}, "outputs": [],
                                "execution_count": None, "source": f"expected = {expected!r}"})
    nb.write_text(json.dumps(nb_json))
    result, _ = run(nb, "kfp-local", given)
    assert result.ok, result.steps
    assert result.metrics == {"ok": 1.0}
    assert result.load("use")["got"] == expected



def test_a_runs_parameter_values_are_not_kept_in_the_pipeline_files(tmp_path):
    # a value given at run time may be a secret: it goes to the run as an argument, and the
    # compiled pipeline, its Python module and the argument file kept beside them never hold it
    nb = make_notebook(tmp_path, [("api_token = ''\ndb = {}", ["parameters"]),
                                  ("n = float(len(api_token) + len(db['auth']['password']))", ["step:use"]),
                                  ("n", ["metrics"])], name="secret")
    db = {"user": "analyst", "auth": {"password": "NESTEDPW9"}}  # a credential deep in a dict too
    result, _ = run(nb, "kfp-local", {"api_token": "PARAMSECRET", "db": db})
    assert result.ok, result.steps
    assert result.metrics == {"n": 20.0}
    kept = [p for p in (tmp_path / ".nbscale" / "kfp-local").rglob("*") if p.is_file()]
    assert {p.name for p in kept} >= {"pipeline.yaml", "pipeline_dsl.py"}
    assert not [p.name for p in kept if p.name == "arguments.json"]
    assert [p.name for p in kept if b"PARAMSECRET" in p.read_bytes() or b"NESTEDPW9" in p.read_bytes()] == []
    log = next(p for p in kept if p.name == "kfp-local.log").read_text()
    assert "<parameter api_token, hidden>" in log, "kfp.local logs each task's inputs"
    assert "<parameter db, hidden>" in log and "analyst" in log

def test_failures_retries_and_timeouts_are_recorded(tmp_path):
    nb = make_notebook(tmp_path, [
        ("x = 1", ["step:ok"]),
        ("from pathlib import Path\ncounter = Path('attempts.txt')\n"
         "n = int(counter.read_text()) + 1 if counter.exists() else 1\ncounter.write_text(str(n))\n"
         "if n < 2:\n    raise RuntimeError(f'flaky attempt {n}')\ny = x + n", ["step:flaky", "retries:2"]),
        ("import time\nfor _ in range(200):\n    time.sleep(0.05)\nw = y", ["step:slow", "timeout:1s"]),
        ("z = w * 2", ["step:after_slow"]),
    ], name="fails")
    result, events = run(nb, "kfp-local")
    steps = {s["name"]: s for s in result.steps}
    assert result.status == "failed"
    assert steps["ok"]["status"] == "succeeded"
    assert steps["flaky"]["status"] == "succeeded" and steps["flaky"]["attempts"] == 2  # KFP's set_retry
    assert ("step_retry", "flaky") in [(kind, step) for kind, step, _ in events]
    error = steps["slow"]["error"]
    assert steps["slow"]["status"] == "failed" and error["ename"] == "StepTimeout"
    assert (error["cell"], error["line"]) == (2, 3)  # the running cell and line, as in the notebook
    assert steps["after_slow"]["status"] == "upstream_failed"
    assert (tmp_path / "attempts.txt").read_text() == "2"  # the notebook's folder is the working directory


def test_a_failure_stops_kfp_local_and_unrun_steps_say_why(tmp_path):
    nb = make_notebook(tmp_path, [
        ("a = 1\nraise ValueError('boom')", ["step:first"]),
        ("b = 2", ["step:independent"]),
        ("c = a + 1", ["step:downstream"]),
    ], name="boom")
    result, _ = run(nb, "kfp-local")
    steps = {s["name"]: s for s in result.steps}
    assert steps["first"]["status"] == "failed"
    assert (steps["first"]["error"]["cell"], steps["first"]["error"]["line"]) == (0, 2)
    assert steps["first"]["error"]["evalue"] == "boom"
    assert steps["downstream"]["status"] == "upstream_failed"
    if steps["independent"]["status"] != "succeeded":  # kfp.local runs tasks one at a time, in its order
        assert steps["independent"]["status"] == "cancelled"
        assert "kfp.local stops a pipeline at its first failed task" in steps["independent"]["error"]


def test_a_task_killed_as_for_running_out_of_memory_says_so(tmp_path):
    # the kernel's out-of-memory killer sends SIGKILL: the run said only "ended without a result"
    nb = make_notebook(tmp_path, [("import os, signal", ["imports"]),
                                  ("a = 1\nos.kill(os.getpid(), signal.SIGKILL)", ["step:first"])], name="oom")
    result, _ = run(nb, "kfp-local")
    error = result.step("first")["error"]
    assert result.step("first")["status"] == "failed"
    assert "killed (SIGKILL), most often for running out of memory" in error["evalue"]


def test_a_task_that_crashes_in_compiled_code_names_the_cell_and_line(tmp_path):
    # it said "the KFP task of step 'first' ended without a result", and no more
    nb = make_notebook(tmp_path, [("import ctypes", ["imports"]),
                                  ("a = 1\nctypes.string_at(0)", ["step:first"])], name="crash")
    result, _ = run(nb, "kfp-local")
    error = result.step("first")["error"]
    assert re.fullmatch(r"the KFP task of step 'first' ended without a result: Segmentation fault at cell 2, "
                        r"line 2 \(in string_at, \S+\.py:\d+\)", error["evalue"]), error


def test_long_names_carry_their_values_under_kfp_local(tmp_path):
    # names of 41 characters and more travelled as their own text: a step got "p_number_of_trees…"
    # for the parameter, and a str path for the artifact of a long output name
    trees, frame = "number_of_trees_in_the_random_forest_model", "training_frame_after_every_cleaning_step_x"
    nb = make_notebook(tmp_path, [(f"{trees} = 100\nlabel_of_this_particular_experiment_run_here = 'B'",
                                   ["parameters"]),
                                  (f"{frame} = [{trees}, label_of_this_particular_experiment_run_here]",
                                   ["step:make"]),
                                  (f"total = {frame}[0] + 1\ntext = {frame}[1]", ["step:use"])], name="long")
    result, _ = run(nb, "kfp-local")
    assert result.ok, result.steps
    assert result.load("use") == {"total": 101, "text": "B"}


def test_cached_steps_enter_the_kfp_pipeline_from_the_artifact_store(tmp_path):
    cells = [
        ("x = [1, 2]\ndf = {'a': [1, 2]}\nholder = [x, df]", ["step:a"]),  # a group: objects shared
        ("total = sum(x) + sum(df['a']) + len(holder)", ["step:b"]),
        ("total", ["metrics"]),
    ]
    nb = make_notebook(tmp_path, cells, name="cache")
    first, _ = run(nb, "kfp-local")
    assert first.ok and first.metrics == {"total": 8.0}
    cells[1] = ("holder[0].append(10)\ntotal = sum(x) + sum(df['a']) * 10 + len(holder)", ["step:b"])
    nb = make_notebook(tmp_path, cells, name="cache")
    second, events = run(nb, "kfp-local")
    assert second.ok and second.metrics == {"total": 45.0}  # x and holder[0] are still one list
    assert second.step("a")["status"] == "cached"
    assert [s for k, s, _ in events if k == "step_started"] == ["b", "metrics"]
    # the other engines read what kfp-local stored: nothing left to run
    local, events = run(nb, "local")
    assert local.metrics == {"total": 45.0} and not [e for e in events if e[0] == "step_started"]


def test_a_compiled_yaml_runs_in_kfp_local_and_logs_dsl_metrics(tmp_path, monkeypatch):
    from kfp import local
    from kfp.components import load_component_from_file

    nb = make_notebook(tmp_path, [
        ("word = 'x'", ["parameters"]),  # a native str input: quotes, newlines, braces pass unchanged
        ("import json\ndata = {'w': word * 3}", ["step:make"]),
        ("size = float(len(data['w']))\nsame = float(data['w'] == word * 3)", ["step:measure"]),
        ("{'size': size, 'same': same}", ["metrics"]),
    ], name="direct")
    pipeline = compile_notebook(nb)
    module = generate(pipeline, LOCAL_YAML)
    path = write_yaml(module, tmp_path / "direct.yaml")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(local.config.LocalExecutionConfig, "instance", None)  # restored afterwards
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "outputs"))
    component = load_component_from_file(str(path))
    assert module.parameter_types["word"] == "str"
    component(word=kfp_argument("str", NATIVE_TRICKY))
    (run_dir,) = (tmp_path / "outputs").iterdir()
    executor_output = json.loads((run_dir / module.components["metrics"] / "executor_output.json").read_text())
    metrics = executor_output["artifacts"]["metrics"]["artifacts"][0]["metadata"]
    assert metrics == {"size": float(len(NATIVE_TRICKY) * 3), "same": 1.0}
    record = json.loads((run_dir / module.components["make"] / "step_record" / "result.json").read_text())
    assert record["status"] == "succeeded" and record["attempt"] == 1
    data = ArtifactFolder(str(run_dir / module.components["make"] / "out_data")).get("make", ["data"])
    assert data == {"data": {"w": NATIVE_TRICKY * 3}}


def test_a_changed_data_file_reruns_the_step_under_kfp_local(tmp_path):
    """Steps run in KFP components record what they read, so the kfp-local engine's cache holds it too."""
    (tmp_path / "data.csv").write_text("5")
    nb = make_notebook(tmp_path, [("n = int(open('data.csv').read())", ["step:read"]), ("m = n * 2", ["step:use"])])
    options = RunOptions(engine="kfp-local")
    assert run_notebook(nb, options=options).load("use")["m"] == 10
    assert {s["status"] for s in run_notebook(nb, options=options).steps} == {"cached"}
    (tmp_path / "data.csv").write_text("50")
    changed = run_notebook(nb, options=options)
    assert changed.load("use")["m"] == 100 and changed.step("read")["status"] == "succeeded"


def test_a_kfp_local_run_records_lineage_and_profiles_as_the_other_engines_do(tmp_path):
    import pandas as pd

    from nbscale.kernels.lineage import lineage

    (tmp_path / "data.csv").write_text("a\n1\n2\n3\n")
    nb = make_notebook(tmp_path, [("import pandas as pd", ["imports"]), ("df = pd.read_csv('data.csv')", ["step:load"]),
                                  ("score = float(df['a'].mean())", ["step:evaluate"]), ("score", ["metrics"])])
    result, _ = run(nb, "kfp-local")
    assert result.ok, result.steps
    store = default_run_store(nb)
    model = lineage(store, result.run_id, "score")
    load = next(node for node in model["nodes"] if node["step"] == "load")
    assert any(path.endswith("data.csv") for path in load["files_read"]), load
    assert load["packages"].get("pandas") == pd.__version__
    profiles = next(s for s in store.get_run(result.run_id)["steps"] if s["step"] == "load")["profiles"]
    assert profiles and "df" in json.dumps(profiles)
