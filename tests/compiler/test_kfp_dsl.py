"""compiler/targets/kfp/dsl.py: the generated DSL module, checked through the YAML kfp makes of it.

Parameters are typed inputs whose values never reach code; every step option tag shows up in
the YAML; names that collide with Python, kfp or each other stay distinct; outputs that share
objects travel as one artifact; every component calls `run_kfp_step` of nbscale's run time.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap

import pytest
import yaml
from conftest import EXAMPLES, ROOT, make_notebook
from kfp_compiled import TRICKY, compile_yaml, executor_of, executors, task_of

from nbscale.compiler import PipelineHasErrors, compile_notebook
from nbscale.compiler.targets.kfp import RUNTIME, RUNTIME_ENTRY, KfpOptions, generate, withheld_warnings
from nbscale.compiler.targets.kfp.dsl import code_credential_warnings

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


def test_a_pipeline_with_errors_is_refused(tmp_path):
    nb = make_notebook(tmp_path, [("y = missing + 1", ["step:a"])])
    with pytest.raises(PipelineHasErrors):
        generate(compile_notebook(nb))


def test_a_pipeline_of_no_step_is_refused_as_nothing_to_run(tmp_path):
    from nbscale.compiler.errors import TargetError

    nb = make_notebook(tmp_path, ["# just a comment", ("import os", ["imports"])], name="empty")
    with pytest.raises(TargetError, match=r"^empty\.ipynb: nothing to run: its code cells are empty"):
        generate(compile_notebook(nb))  # not a pipeline function without a body


def test_every_component_calls_run_kfp_step():
    module = generate(compile_notebook(ROOT / "examples" / "iris.ipynb"))
    assert RUNTIME_ENTRY == "run_kfp_step"
    calls = module.text.count(f"    from {RUNTIME} import {RUNTIME_ENTRY}\n\n    {RUNTIME_ENTRY}(\n")
    assert calls == len(module.components) > 1
    assert "run_step" not in module.text


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


SECRETS = ("ghp_aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3xY5", "hunter2", "Tr0ub4dor&3", "s3cr3t-in-a-dict")


def test_a_default_that_may_be_a_credential_is_not_written_and_is_warned_of(tmp_path):
    # the project's rule: no credential in a compiled pipeline; they were written in clear
    nb = make_notebook(tmp_path, [
        ('n = 3\napi_token = "ghp_aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3xY5"\n'
         'db_url = "postgresql://admin:hunter2@db.example.com/prod"\npassword = "Tr0ub4dor&3"\n'
         'settings = {"db": {"password": "s3cr3t-in-a-dict"}}\nmax_tokens = 256', ["parameters"]),
        ("out = [n, api_token, db_url, password, settings, max_tokens]", ["step:use"]),
    ], name="secrets")
    module, path, (spec, *_) = compile_yaml(nb, tmp_path)
    withheld = ["api_token", "db_url", "password", "settings"]
    assert module.withheld == withheld
    inputs = spec["root"]["inputDefinitions"]["parameters"]
    assert [n for n in inputs if "defaultValue" not in inputs[n]] == sorted(withheld)  # required inputs
    assert inputs["n"]["defaultValue"] == 3 and inputs["max_tokens"]["defaultValue"] == 256
    assert module.parameter_types["settings"] == "json"  # typed by the default, which is not written
    for text in (path.read_text(), module.text, (tmp_path / "pipeline_dsl.py").read_text()):
        assert not [secret for secret in SECRETS if secret in text]
    pipeline = compile_notebook(nb)
    warnings = withheld_warnings(pipeline, module)
    assert [(w.code, w.severity, w.cell, w.line) for w in warnings] == [
        ("credential-default", "warning", 0, line) for line in (2, 3, 4, 5)]
    assert "parameter 'api_token' may be a credential" in warnings[0].message
    assert "nbscale submit secrets.ipynb -p api_token=..." in warnings[0].message
    assert all("\n" not in w.format("secrets.ipynb") for w in warnings)  # one line each, as the CLI prints notes


def test_a_default_of_a_credential_s_shape_under_a_neutral_name_is_not_written(tmp_path):
    # an AWS secret key (its `/` split the token-like run), a password on a command line, a webhook
    # and a private key were written in clear: the name said nothing
    pem = "-----BEGIN RSA PRIVATE KEY-----\\nMIIBOgIBAAJB\\n-----END RSA PRIVATE KEY-----"
    nb = make_notebook(tmp_path, [
        ('aws = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"\ncmd = "mysql -uroot -phunter2 prod"\n'
         'hook = "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"\n'
         f'pem = "{pem}"\npath = "data/clean.csv"\nurl = "https://example.com/data.csv"', ["parameters"]),
        ("out = [aws, cmd, hook, pem, path, url]", ["step:use"]),
    ], name="shapes")
    module, path, (spec, *_) = compile_yaml(nb, tmp_path)
    assert module.withheld == ["aws", "cmd", "hook", "pem"]
    inputs = spec["root"]["inputDefinitions"]["parameters"]
    assert inputs["path"]["defaultValue"] == "data/clean.csv"  # ordinary values keep their defaults
    assert inputs["url"]["defaultValue"] == "https://example.com/data.csv"
    for text in (path.read_text(), module.text):
        assert not [s for s in ("EXAMPLEKEY", "hunter2", "XXXXXXXX", "MIIBOgIBAAJB") if s in text]


def test_a_withheld_parameter_comes_first_in_the_pipeline_signature(tmp_path):
    # Python wants parameters without defaults before the others; submit and kfp-local pass it by name
    nb = make_notebook(tmp_path, [('rate = 0.5\npassword = "Tr0ub4dor&3"', ["parameters"]),
                                  ("out = [rate, password]", ["step:use"])], name="given")
    module = generate(compile_notebook(nb))
    assert module.withheld == ["password"] and "Tr0ub4dor" not in module.text
    assert re.search(r"\(\s*password: str,\s*rate: float = 0\.5,?\s*\)", module.text)


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
        "activeDeadlineSeconds": "2400"}  # (its timeout, and 10 minutes to pull the image and install)
    assert "timeout=1800" in "".join(big["command"])  # and the run time stops the step itself
    small = executor_of(spec, "small")["container"]
    assert small["image"] == "python:3.12-slim"
    assert small["resources"]["resourceCpuLimit"] == "500m"
    assert small["resources"]["resourceMemoryLimit"] == "1536Mi"
    kale = executor_of(spec, "kale")["container"]["resources"]
    assert kale["accelerator"]["resourceCount"] == "2" and kale["resourceMemoryLimit"] == "512Mi"
    assert "retryPolicy" not in task_of(spec, "small")


def test_a_fractional_cpu_rounds_up_to_whole_millicores(tmp_path):
    # rounded to the nearest, 0.0004 and 0.0005 were 0m: a request of no CPU at all
    cpus = {"0.0004": "1m", "0.0005": "1m", "0.0011": "2m", "0.57": "570m", "1.25": "1250m"}
    nb = make_notebook(tmp_path, [(f"x{i} = {i}", [f"step:s{i}", f"resources:cpu={c}"]) for i, c in enumerate(cpus)])
    text = generate(compile_notebook(nb)).text
    assert re.findall(r'set_cpu_request\("(\w+)"\)', text) == list(cpus.values())


# Kubernetes' quantity grammar: binary Ki..Ei, decimal k M G T P E (lower-case k only), plain numbers
K8S_QUANTITY = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?\d+)?$")


def test_memory_is_written_as_a_quantity_kubernetes_and_kfp_both_take(tmp_path):
    # `2K` / `1500K` were written: Kubernetes refuses an upper-case K, the KFP SDK a lower-case k
    sizes = {"2k": "2000", "1.5M": "1500000", "0.5M": "500000", "1.1M": "1100000", "1.5G": "1500M",
             "0.5k": "500", "4Gi": "4Gi", "1.5Gi": "1536Mi", "0.5Ki": "512", "2M": "2M", "1.5E": "1500P"}
    nb = make_notebook(tmp_path, [(f"x{i} = {i}", [f"step:s{i}", f"resources:memory={m}"])
                                  for i, m in enumerate(sizes)], name="memory")
    _, _, (spec, *_) = compile_yaml(nb, tmp_path)
    written = [executor_of(spec, f"s{i}")["container"]["resources"]["resourceMemoryLimit"] for i in range(len(sizes))]
    assert written == list(sizes.values())
    assert all(K8S_QUANTITY.match(q) for q in written)


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


# Every name the step grammar accepts; kfp turns a function name into its task name, and the
# pairs below would meet there (`_`/`__` are empty to kfp; case, '_'/'-' and leading '_' vanish).
ACCEPTED_STEP_NAMES = ["_", "__", "_2", "Ab", "ab", "_a", "a", "a_b", "a-b", "a__b", "step", "pipeline",
                       "main", "class", "None", "True", "dsl", "set_timeout", "BASE_IMAGE", "base_image",
                       "x" * 100, "X" * 100]


def test_every_accepted_step_name_compiles_to_its_own_kfp_task(tmp_path):
    cells = [(f"v{i} = {i}", [f"step:{name}"]) for i, name in enumerate(ACCEPTED_STEP_NAMES)]
    nb = make_notebook(tmp_path, cells, name="names")
    assert not compile_notebook(nb).diagnostics
    module, _, (spec, *_) = compile_yaml(nb, tmp_path)
    tasks = spec["root"]["dag"]["tasks"]
    # `components` names the task kfp made (kfp-local finds a step's outputs by it), one per step
    assert sorted(module.components.values()) == sorted(tasks)
    assert len(set(module.components.values())) == len(ACCEPTED_STEP_NAMES)
    assert {module.components[n]: n for n in ACCEPTED_STEP_NAMES} == \
        {key: t["taskInfo"]["name"] for key, t in tasks.items()}
    assert module.components["_"] == "step" and module.components["a_b"] == "a-b"


def test_an_untagged_notebook_with_a_non_ascii_name_compiles_in_the_cli(tmp_path):
    for stem, step in [("анализ", "main"), ("é", "e")]:
        nb = make_notebook(tmp_path, ["x = 1"], name=stem)
        out = subprocess.run(["nbscale", "compile", str(nb), "--target", "kfp", "-o", "out.yaml"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
        spec = yaml.safe_load((tmp_path / "out.yaml").read_text(encoding="utf-8"))
        assert [t["taskInfo"]["name"] for t in spec["root"]["dag"]["tasks"].values()] == [step]


def test_untagged_notebook_and_pipeline_names(tmp_path):
    module, path, (spec, *_) = compile_yaml(ROOT / "examples" / "untagged.ipynb", tmp_path)
    assert spec["pipelineInfo"]["name"] == "untagged" and list(module.components) == ["untagged"]
    module, _, (spec, *_) = compile_yaml(ROOT / "examples" / "kale_style.ipynb", tmp_path,
                                         KfpOptions(pipeline_name="Wine Quality, v2!"))
    assert spec["pipelineInfo"]["name"] == "wine-quality-v2"
    assert spec["pipelineInfo"]["displayName"] == "Wine Quality, v2!"


def test_outputs_that_share_objects_travel_as_one_artifact(tmp_path):
    # `data` holds `train` and `test`: the three share objects, so they travel as one artifact
    notebook = make_notebook(tmp_path, [
        ("train = [1.0, 2.0]\ntest = [3.0]", ["step:load"]),
        ("data = [train, test]\nfor part in data:\n    part.append(0.0)", ["step:clean"]),
        ("total = sum(train) + sum(test) + len(data)", ["step:use"]),
    ], name="shared")
    pipeline = compile_notebook(notebook)
    grouped = next(s for s in pipeline.steps if any(len(g) > 1 for g in s.groups))
    module, _, (spec, *_) = compile_yaml(notebook, tmp_path)
    outputs = module.outputs[grouped.name]
    group = next(g for g in grouped.groups if len(g) > 1)
    assert len({outputs[n] for n in group}) == 1  # one artifact for the whole group
    produced = spec["components"][task_of(spec, grouped.name)["componentRef"]["name"]]
    assert outputs[group[0]] in produced["outputDefinitions"]["artifacts"]


def test_a_step_tagged_after_a_later_step_has_its_task_made_after_that_ones(tmp_path):
    # `after:b` above b named b's task before it was made: the safety check refused the module as
    # an nbscale bug, though `nbscale check` found nothing wrong
    nb = make_notebook(tmp_path, [("x = 1", ["step:a", "after:b"]), ("y = 2", ["step:b"]), ("z = x", ["step:c"])])
    module, _, (spec,) = compile_yaml(nb, tmp_path)
    assert task_of(spec, "a")["dependentTasks"] == ["b"] and "dependentTasks" not in task_of(spec, "b")
    body = module.text.split("@dsl.pipeline(")[-1]
    assert body.index("b_task = b(") < body.index("a_task = a(") < body.index("c_task = c(")


# -- process-wide settings and metrics ------------------------------------------------------


def _run_kfp_step_calls(module_text):
    """step name → the keyword literals of its run_kfp_step call, read back from the module."""
    import ast

    calls = {}
    for node in ast.walk(ast.parse(module_text)):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == RUNTIME_ENTRY:
            kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords if k.arg in ("step", "metrics")}
            calls[kwargs["step"]["name"]] = kwargs
    return calls


def test_settings_of_earlier_steps_and_spread_metrics_reach_run_kfp_step(tmp_path):
    notebook = make_notebook(tmp_path, [
        ("import pandas as pd", ["imports"]),
        ("pd.set_option('display.max_columns', 50)\nimport warnings\nwarnings.simplefilter('ignore')\n"
         "accs = {'gb': 0.5}", ["step:a"]),
        ("b = 1", ["step:b"]),
        ('{f"acc_{k}": v for k, v in accs.items()}', ["metrics"]),
    ], name="settings")
    module, _, _ = compile_yaml(notebook, tmp_path)  # the kfp SDK compiles it; verify_module passes
    calls = _run_kfp_step_calls(module.text)
    assert "settings" not in calls["a"]["step"]  # no setting before it: the literal stays as it was
    assert calls["b"]["step"]["settings"] == [
        {"cell": 1, "line": 1, "source": "pd.set_option('display.max_columns', 50)",
         "imports": ["import pandas as pd"]},
        {"cell": 1, "line": 3, "source": "warnings.simplefilter('ignore')", "imports": ["import warnings"]}]
    assert calls["metrics"]["metrics"]["spread"] == ["{f'acc_{k}': v for k, v in accs.items()}"]
    assert calls["metrics"]["step"]["settings"] == calls["b"]["step"]["settings"]


def test_a_step_named_like_the_pipeline_leaves_kfp_the_whole_pipeline(tmp_path):
    # kfp reads a YAML that has a component named as its pipeline as that component alone
    from kfp.components import load_component_from_file

    nb = make_notebook(tmp_path, [("n = 2", ["parameters"]), ("x = n + 1", ["step:train"]),
                                  ("y = x * 2", ["step:report"])], name="train")
    module, path, (spec, *_) = compile_yaml(nb, tmp_path)
    loaded = load_component_from_file(str(path))
    assert loaded.name == "train" and list(loaded.component_spec.inputs) == ["n"]
    assert sorted(t["taskInfo"]["name"] for t in spec["root"]["dag"]["tasks"].values()) == ["report", "train"]
    assert module.components["train"] != "train"


@pytest.mark.parametrize("parameter", ["dsl", "set_timeout"])
def test_parameters_named_like_what_the_pipeline_calls_compile(tmp_path, parameter):
    # the pipeline function's arguments are the parameters: one named `dsl` hid the module its
    # importers were written with, one named `set_timeout` the timeout helper
    nb = make_notebook(tmp_path, [(f"{parameter} = 1", ["parameters"]),
                                  (f"x = {parameter} + 1", ["step:a", "timeout:10m"]),
                                  ("y = x + 1", ["step:b", "timeout:10m"])], name="p")
    pipeline = compile_notebook(nb)
    from nbscale.compiler.targets.kfp import write_yaml

    module = generate(pipeline, imported={"a": "file:///tmp/cache/a"})  # a cached step, as kfp-local writes it
    path = write_yaml(module, tmp_path / "p.yaml")
    spec, *_ = yaml.safe_load_all(path.read_text(encoding="utf-8"))
    assert list(spec["root"]["inputDefinitions"]["parameters"]) == [parameter]
    assert sorted(t["taskInfo"]["name"] for t in spec["root"]["dag"]["tasks"].values()) == ["a (cached)", "b"]


@pytest.mark.parametrize("name", ["_debug", "Output", "größe"])
def test_a_parameter_kfp_cannot_name_is_refused_at_its_cell_and_line(tmp_path, name):
    from nbscale.compiler.errors import TargetError

    nb = make_notebook(tmp_path, [("import os", ["imports"]), (f"x = 1\n{name} = 2", ["parameters"]),
                                  (f"y = {name}", ["step:a"])], name="p")
    pipeline = compile_notebook(nb)
    assert not pipeline.has_errors
    with pytest.raises(TargetError, match=rf"p\.ipynb:cell 2:2: parameter '{name}': cannot be a Kubeflow.*rename it$"):
        generate(pipeline)


def test_every_parameter_kfp_cannot_name_is_named_in_one_error(tmp_path):
    from nbscale.compiler.errors import TargetError

    nb = make_notebook(tmp_path, [("_a = 1\nok = 2\n_b = 3", ["parameters"]), ("y = _a + _b + ok", ["step:a"])],
                       name="p")
    with pytest.raises(TargetError, match=r"^p\.ipynb:cell 1:1: parameter '_a'; p\.ipynb:cell 1:3: parameter '_b': "
                                          r"cannot be .*rename them$"):
        generate(compile_notebook(nb))


# -- credentials in code --------------------------------------------------------------------


def _credentials_in_code(tmp_path, imports: str, step: str) -> list[tuple[int, int, str]]:
    """(cell, line, what is named) of each credential-in-code warning."""
    nb = make_notebook(tmp_path, [(imports, ["imports"]), (step, ["step:a"])], name="code")
    warnings = code_credential_warnings(compile_notebook(nb))
    return [(w.cell, w.line, w.message.split("' is given")[0][1:]) for w in warnings]


def test_a_credential_in_code_is_warned_of_in_every_form_of_assignment(tmp_path):
    # only `NAME = literal` was looked at: the commonest other forms went into the YAML unwarned
    imports = 'import os\nfrom os import environ\nos.environ["AWS_SECRET_ACCESS_KEY"] = "hunter-env"\n' \
              'environ["DB_PASSWORD"] = "hunter-env-2"'
    step = 'db_password: str = "hunter3"\nuser, api_token = "u", "hunter4"\n[login, (pw, n)] = ["me", ("x", 1)]\n' \
           'a = secret = "hunter5"'
    assert _credentials_in_code(tmp_path, imports, step) == [
        (0, 3, "AWS_SECRET_ACCESS_KEY"), (0, 4, "DB_PASSWORD"),
        (1, 1, "db_password"), (1, 2, "api_token"), (1, 3, "login"), (1, 3, "pw"), (1, 4, "secret")]


def test_a_literal_of_a_credential_s_shape_is_warned_of_whatever_it_is_given_to(tmp_path):
    step = 'hook = "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXX"\n' \
           'cmd: str = "mysql -uroot -phunter2 prod"\nconfig = {}\n' \
           'config["aws"] = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"\n' \
           'os.environ["CONN"] = "postgresql://me:pw@db/x"\nh = "Bearer abc.def-123"'
    assert _credentials_in_code(tmp_path, "import os", step) == [
        (1, 1, "hook"), (1, 2, "cmd"), (1, 4, "config['aws']"), (1, 5, "CONN"), (1, 6, "h")]


def test_an_ordinary_literal_in_code_is_not_warned_of(tmp_path):
    imports = 'import os\nos.environ["DATA_DIR"] = "/data"\nos.environ["TOKENIZERS_PARALLELISM"] = "false"'
    step = 'path: str = "data/clean.csv"\nn: int = 3\nx, y = 1, 2\nuser, name = "u", "v"\n' \
           'token, rest = os.environ["TOKEN"].split(":")\nheaders = {}\nheaders["Accept"] = "json"\n' \
           'password: str = os.environ["PW"]\nsort_key: str = "id"\nmodel = "gpt-4o-mini"'
    assert _credentials_in_code(tmp_path, imports, step) == []
