"""The KFP target: the generated DSL module, compiled by the real kfp SDK into YAML.

Every example compiles and loads back with `kfp.components.load_component_from_file`; iris has a
golden YAML (NBSCALE_UPDATE_GOLDEN=1 rewrites it); parameters are typed inputs whose values never
reach code; every step option tag shows up in the YAML; project defaults stack in their order.
Running the YAML under kfp.local is in test_kfp_local.py.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from conftest import EXAMPLES, ROOT, make_notebook

from nbscale.compiler import PipelineHasErrors, compile_notebook
from nbscale.compiler.targets import kfp as target
from nbscale.compiler.targets.kfp import KfpOptions, OptionsError, generate, load_options, write_yaml

GOLDEN = Path(__file__).resolve().parent / "golden"
TRICKY = "it's a \"test\" {not a format} {{ $.inputs }}\nsecond line\ttab \\ back"


def compile_yaml(notebook, tmp_path, options=None, name="pipeline"):
    pipeline = compile_notebook(notebook)
    module = generate(pipeline, options or KfpOptions())
    path = write_yaml(module, tmp_path / f"{name}.yaml", python_path=tmp_path / f"{name}_dsl.py")
    docs = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    return module, path, docs


def executors(spec):
    return spec["deploymentSpec"]["executors"]


def task_of(spec, display):
    tasks = spec["root"]["dag"]["tasks"]
    return next(t for t in tasks.values() if t["taskInfo"]["name"] == display)


def executor_of(spec, display):
    component = spec["components"][task_of(spec, display)["componentRef"]["name"]]
    return executors(spec)[component["executorLabel"]]


# -- layering -------------------------------------------------------------------------------


def test_the_compiler_imports_neither_kfp_nor_the_run_time():
    script = textwrap.dedent(f"""
        import sys
        from nbscale.compiler import compile_notebook
        from nbscale.compiler.targets.kfp import KfpOptions, generate
        module = generate(compile_notebook({str(EXAMPLES[0])!r}), KfpOptions())
        assert "@dsl.pipeline" in module.text
        print(sorted(m for m in sys.modules if m.split(".")[0] == "kfp" or m.startswith("nbscale.kernels")))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# -- every example --------------------------------------------------------------------------


@pytest.mark.parametrize("notebook", EXAMPLES, ids=lambda p: p.stem)
def test_every_example_compiles_and_loads_back(notebook, tmp_path):
    from kfp.components import load_component_from_file

    pipeline = compile_notebook(notebook)
    module, path, (spec, *_) = compile_yaml(notebook, tmp_path)
    component = load_component_from_file(str(path))
    assert component.name == target.kfp_name(pipeline.name)
    assert set(component.component_spec.inputs or {}) == {p.name for p in pipeline.parameters}
    tasks = spec["root"]["dag"]["tasks"]
    assert sorted(t["taskInfo"]["name"] for t in tasks.values()) == sorted(s.name for s in pipeline.steps)
    for step in pipeline.steps:  # data edges and after: edges both become task dependencies
        deps = task_of(spec, step.name).get("dependentTasks", [])
        assert sorted(deps) == sorted(module.components[u] for u in step.after)
    # the DSL module is importable, and kfp's own Compiler makes the same pipeline of it
    import importlib.util

    from kfp import compiler

    loader = importlib.util.spec_from_file_location(f"dsl_{notebook.stem}", tmp_path / "pipeline_dsl.py")
    dsl_module = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(dsl_module)
    compiler.Compiler().compile(getattr(dsl_module, module.pipeline_function), str(tmp_path / "kfp.yaml"))
    assert yaml.safe_load((tmp_path / "kfp.yaml").read_text()) == spec


def test_iris_matches_the_golden_yaml(tmp_path):
    _, path, _ = compile_yaml(ROOT / "examples" / "iris.ipynb", tmp_path)
    golden = GOLDEN / "iris.kfp.yaml"
    text = path.read_text(encoding="utf-8")
    if os.environ.get("NBSCALE_UPDATE_GOLDEN"):
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8"), "iris.kfp.yaml differs (NBSCALE_UPDATE_GOLDEN=1 rewrites it)"


def test_the_generated_module_is_clean_python(tmp_path):
    for notebook in EXAMPLES:
        compile_yaml(notebook, tmp_path, name=notebook.stem)
    out = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--isolated", "--select", "E,F,W,B",
                          "--ignore", "E501", *map(str, tmp_path.glob("*_dsl.py"))],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def test_a_pipeline_with_errors_is_refused(tmp_path):
    nb = make_notebook(tmp_path, [("y = missing + 1", ["step:a"])])
    with pytest.raises(PipelineHasErrors):
        generate(compile_notebook(nb))


# -- parameters -----------------------------------------------------------------------------


@pytest.fixture
def params_nb(tmp_path):
    return make_notebook(tmp_path, [
        ("greeting = " + repr(TRICKY) + "\nlayers = [64, 32, [1, 2]]\nconfig = {'b': 1, 'a': [2, 3.5]}\n"
         "maybe = None\nflag = True\nrate = 0.5\nn = 3\nplain = 'MARKER-7f3a'", ["parameters"]),
        ("out = [greeting, layers, config, maybe, flag, rate, n, plain]", ["step:use"]),
    ], name="params")


def test_parameters_are_typed_inputs_and_their_values_never_reach_code(params_nb, tmp_path):
    module, path, (spec, *_) = compile_yaml(params_nb, tmp_path)
    inputs = spec["root"]["inputDefinitions"]["parameters"]
    kinds = {name: p["parameterType"] for name, p in inputs.items()}
    assert kinds == {"flag": "BOOLEAN", "rate": "NUMBER_DOUBLE", "n": "NUMBER_INTEGER", "plain": "STRING",
                     "greeting": "STRING", "layers": "STRING", "config": "STRING", "maybe": "STRING"}
    assert inputs["plain"]["defaultValue"] == "MARKER-7f3a"
    # lists, dicts, None and strings holding "{{" travel as JSON text: ints stay ints, key order stays
    assert json.loads(inputs["layers"]["defaultValue"]) == [64, 32, [1, 2]]
    assert isinstance(json.loads(inputs["layers"]["defaultValue"])[2][0], int)
    assert list(json.loads(inputs["config"]["defaultValue"])) == ["b", "a"]
    assert json.loads(inputs["maybe"]["defaultValue"]) is None
    assert json.loads(inputs["greeting"]["defaultValue"]) == TRICKY
    assert "{{" not in inputs["greeting"]["defaultValue"]
    # the step gets each parameter as a typed component input, wired from the pipeline's input
    use = spec["components"][task_of(spec, "use")["componentRef"]["name"]]
    assert use["inputDefinitions"]["parameters"]["p_n"]["parameterType"] == "NUMBER_INTEGER"
    wiring = task_of(spec, "use")["inputs"]["parameters"]
    assert wiring["p_plain"] == {"componentInputParameter": "plain"}
    # no value is pasted into any component's code; the YAML has them only as defaults
    code = json.dumps(executors(spec))
    for value in ("MARKER-7f3a", "second line", "not a format", "64, 32"):
        assert value not in code
    assert path.read_text().count("MARKER-7f3a") == 2  # the default, and the comment header listing it
    assert module.parameter_types["greeting"] == "json" and module.parameter_types["plain"] == "str"


def test_kfp_arguments_round_trip_through_json():
    for value in ([1, 2.5, {"k": [None, True]}], {"z": 1, "a": "{{$.x}}"}, None, TRICKY):
        text = target.kfp_argument("json", value)
        assert "{{" not in text and json.loads(text) == value
    assert target.kfp_argument("int", 3) == 3 and target.kfp_argument("str", "a{b}") == "a{b}"


@pytest.mark.parametrize("value", [
    TRICKY, "", "a\n", "\n\n", "'''", '"""', "\\", "{{{{", "x" * 300, "é ✓ 🙂", "\r\n\x00",
    [TRICKY, {"k": [1, 2.5, None, True]}], {"a": {"b": {"c": [[], {}]}}}, -0.0, 1e300, 10**30,
])
def test_literals_round_trip_and_never_hold_placeholders(value):
    text = target._literal(value, 8)
    assert ast.literal_eval(text) == value
    assert "{{" not in text


# -- step options ---------------------------------------------------------------------------


def test_every_step_option_reaches_the_yaml(tmp_path):
    nb = make_notebook(tmp_path, [
        ("x = 1", ["step:big", "resources:cpu=2", "resources:memory=4Gi", "resources:gpu=1", "retries:3",
                   "cache:off", "image:registry.example/team/img:1.2", "timeout:30m"]),
        ("y = x + 1", ["step:small", "resources:cpu=500m", "resources:memory=1.5Gi"]),
        ("z = y + 1", ["step:kale", "limit:nvidia.com/gpu:2", "limit:memory:512Mi"]),
    ], name="options")
    options = KfpOptions(base_image="python:3.12-slim", accelerator="nvidia.com/gpu")
    module, _, (spec, platform) = compile_yaml(nb, tmp_path, options)
    big = executor_of(spec, "big")["container"]
    assert big["image"] == "registry.example/team/img:1.2"
    res = big["resources"]
    assert (res["resourceCpuRequest"], res["resourceCpuLimit"]) == ("2", "2")
    assert (res["resourceMemoryRequest"], res["resourceMemoryLimit"]) == ("4Gi", "4Gi")
    assert res["accelerator"]["resourceType"] == "nvidia.com/gpu"
    assert res["accelerator"]["resourceCount"] == "1"
    big_task = task_of(spec, "big")
    assert big_task["retryPolicy"]["maxRetryCount"] == 3
    assert big_task["cachingOptions"] == {}  # enableCache false is protobuf's default, so absent
    assert task_of(spec, "small")["cachingOptions"] == {"enableCache": True}
    exec_label = spec["components"][big_task["componentRef"]["name"]]["executorLabel"]
    assert platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"][exec_label] == {
        "activeDeadlineSeconds": "1800"}
    assert "timeout=1800" in "".join(big["command"])  # and the run time stops the step itself
    small = executor_of(spec, "small")["container"]
    assert small["image"] == "python:3.12-slim"
    assert small["resources"]["resourceCpuLimit"] == "500m"
    assert small["resources"]["resourceMemoryLimit"] == "1536Mi"
    kale = executor_of(spec, "kale")["container"]["resources"]
    assert kale["accelerator"]["resourceCount"] == "2" and kale["resourceMemoryLimit"] == "512Mi"
    assert "retryPolicy" not in task_of(spec, "small")


def test_names_that_collide_with_python_kfp_or_each_other(tmp_path):
    nb = make_notebook(tmp_path, [
        ("dsl = 1\nstr_ = 'x'", ["parameters"]),
        ("a = dsl + 1", ["step:dsl"]),
        ("b = a + 1", ["step:a-b"]),
        ("c = b + 1", ["step:a_b"]),
        ("d = c + 1", ["step:list"]),
        ("e = d + 1", ["step:collide_task"]),
        ("f = e", ["step:collide"]),
    ], name="collide")
    from kfp.components import load_component_from_file

    module, path, (spec, *_) = compile_yaml(nb, tmp_path)
    load_component_from_file(str(path))
    assert len(set(module.components.values())) == 6
    names = sorted(t["taskInfo"]["name"] for t in spec["root"]["dag"]["tasks"].values())
    assert names == sorted(["dsl", "a-b", "a_b", "list", "collide_task", "collide"])


def test_untagged_notebook_and_pipeline_names(tmp_path):
    module, path, (spec, *_) = compile_yaml(ROOT / "examples" / "untagged.ipynb", tmp_path)
    assert spec["pipelineInfo"]["name"] == "untagged" and list(module.components) == ["untagged"]
    module, _, (spec, *_) = compile_yaml(ROOT / "examples" / "kale_style.ipynb", tmp_path,
                                         KfpOptions(pipeline_name="Wine Quality, v2!"))
    assert spec["pipelineInfo"]["name"] == "wine-quality-v2"
    assert spec["pipelineInfo"]["displayName"] == "Wine Quality, v2!"


def test_outputs_that_share_objects_travel_as_one_artifact(tmp_path):
    pipeline = compile_notebook(ROOT / "examples" / "mutation.ipynb")
    grouped = next(s for s in pipeline.steps if any(len(g) > 1 for g in s.groups))
    module, _, (spec, *_) = compile_yaml(ROOT / "examples" / "mutation.ipynb", tmp_path)
    outputs = module.outputs[grouped.name]
    group = next(g for g in grouped.groups if len(g) > 1)
    assert len({outputs[n] for n in group}) == 1  # one artifact for the whole group
    produced = spec["components"][task_of(spec, grouped.name)["componentRef"]["name"]]
    assert outputs[group[0]] in produced["outputDefinitions"]["artifacts"]


# -- project defaults -----------------------------------------------------------------------


def test_options_stack_defaults_pyproject_metadata_and_flags(tmp_path):
    (tmp_path / "pyproject.toml").write_text(textwrap.dedent("""
        [tool.nbscale.kfp]
        base_image = "team/base:1"
        packages_to_install = ["nbscale[run]==0.1.0", "scikit-learn==1.9.1"]
        experiment = "from-pyproject"
    """))
    sub = tmp_path / "notebooks"
    sub.mkdir()
    nb = make_notebook(sub, ["x = 1"], name="proj", metadata={"nbscale": {"kfp": {"base_image": "team/nb:2"}}})
    options = load_options(nb)
    assert options.base_image == "team/nb:2"  # the notebook's own metadata beats the project file
    assert options.packages_to_install == ["nbscale[run]==0.1.0", "scikit-learn==1.9.1"]
    assert options.experiment == "from-pyproject"
    assert options.install_kfp_package is True and options.pipeline_name is None
    flagged = load_options(nb, {"base_image": "cli/img:3", "experiment": None, "packages_to_install": None})
    assert flagged.base_image == "cli/img:3" and flagged.experiment == "from-pyproject"
    assert flagged.packages_to_install == options.packages_to_install
    plain = load_options(make_notebook(tmp_path / "notebooks", ["x = 1"], name="other"))
    assert plain.base_image == "team/base:1"
    assert load_options(Path("/nonexistent/dir/nb.ipynb")).packages_to_install == [
        f"nbscale[run]=={target.__version__}"]


@pytest.mark.parametrize("table, message", [
    ('bse_image = "x"', "unknown key 'bse_image'"),
    ("packages_to_install = 3", "packages_to_install must be a list of strings"),
    ('install_kfp_package = "no"', "install_kfp_package must be a non-empty bool"),
])
def test_bad_project_defaults_are_clear_errors(tmp_path, table, message):
    (tmp_path / "pyproject.toml").write_text(f"[tool.nbscale.kfp]\n{table}\n")
    nb = make_notebook(tmp_path, ["x = 1"])
    with pytest.raises(OptionsError, match=message):
        load_options(nb)


def test_imports_an_image_from_the_defaults_would_lack():
    assert target.third_party_imports(compile_notebook(ROOT / "examples" / "iris.ipynb")) == ["sklearn"]
    assert target.third_party_imports(compile_notebook(ROOT / "examples" / "magics.ipynb")) == []
