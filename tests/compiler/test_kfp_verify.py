"""compiler/targets/kfp/verify.py: the shape check that runs before the generated module is imported.

Every module nbscale generates passes (the examples, the golden IRs, every step option, cached
steps as importers, kept names); a module with anything else in it — a statement, a call, an
attribute of an unexpected name, an f-string — is refused, and `write_yaml` then runs nothing.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from conftest import EXAMPLES, ROOT, make_notebook
from kfp_compiled import TRICKY

from nbscale.compiler import Pipeline, compile_notebook
from nbscale.compiler.errors import TargetError, UnsafeGeneratedCode
from nbscale.compiler.targets.kfp import KfpOptions, generate, write_yaml
from nbscale.compiler.targets.kfp.verify import is_data, verify_module

GOLDEN = Path(__file__).resolve().parent / "golden"


@pytest.fixture(scope="module")
def rich_module(tmp_path_factory):
    """A module with every construct the generator writes: options, parameters of every type,
    a timeout, a cached step (dsl.importer), kept names, metrics."""
    nb = make_notebook(tmp_path_factory.mktemp("rich"), [
        ("greeting = " + repr(TRICKY) + "\nlayers = [64, -1.5, {'k': -2}]\nconfig = {'a': None}\n"
         "flag = True\nrate = -0.5\nn = 3\nhuge = -7", ["parameters"]),
        ("x = n + 1\nlabels = [greeting, layers, config]", ["step:first", "resources:cpu=2;memory=4Gi;gpu=1",
                                                            "retries:2", "cache:off", "timeout:30m",
                                                            "image:registry.example/img:1"]),
        ("y = x + rate + huge\nz = labels", ["step:second", "after:first"]),
        ("w = y if flag else 0", ["step:third"]),
        ("score = w", ["metrics"]),
    ], name="rich")
    pipeline = compile_notebook(nb)
    assert not pipeline.has_errors, pipeline.diagnostics
    return generate(pipeline, KfpOptions(install_kfp_package=False), keep={"second": ["y", "z"]},
                    imported={"first": "file:///tmp/cache/first"})


def test_every_generated_module_passes(rich_module):
    for notebook in EXAMPLES:
        module = generate(compile_notebook(notebook))
        verify_module(module.text, module.pipeline_function)
    for golden in sorted(GOLDEN.glob("*.json")):
        pipeline = Pipeline.from_json(json.loads(golden.read_text(encoding="utf-8")))
        if not pipeline.has_errors:
            module = generate(pipeline)
            verify_module(module.text, module.pipeline_function)
    verify_module(rich_module.text, rich_module.pipeline_function)
    assert "dsl.importer(" in rich_module.text and "set_timeout(" not in rich_module.text  # first is cached


def test_a_timeout_and_every_task_setting_pass(tmp_path):
    nb = make_notebook(tmp_path, [("x = 1", ["step:a", "resources:cpu=500m;memory=1.5Gi;gpu=2", "retries:1",
                                             "cache:off", "timeout:1h"]),
                                  ("y = x", ["step:b"])], name="settings")
    module = generate(compile_notebook(nb))
    assert "set_timeout(a_task, 4200)" in module.text and "set_retry(1)" in module.text  # (3600 s and a margin)
    verify_module(module.text, module.pipeline_function)


# Each case: (text in the rich module, what replaces it). The replacement must be refused.
TAMPERED = {
    "statement after the import": ("from kfp import dsl\n", "from kfp import dsl\nimport os\n"),
    "expression at module level": ("from kfp import dsl\n", "from kfp import dsl\nprint('x')\n"),
    "second import form": ("from kfp import dsl\n", "from kfp import dsl as dsl\n"),
    "f-string constant": ('BASE_IMAGE = "python:3.11-slim"', 'BASE_IMAGE = f"{__import__(\'os\')}"'),
    "call in a constant": ('BASE_IMAGE = "python:3.11-slim"', 'BASE_IMAGE = str(1)'),
    "call in a decorator": ("packages_to_install=PACKAGES_TO_INSTALL",
                            "packages_to_install=__import__('os').listdir()"),
    "second decorator": ("@dsl.component(", "@print\n@dsl.component("),
    "statement in a component": ("    from nbscale.kernels.kfp_component import run_kfp_step\n",
                                 "    from nbscale.kernels.kfp_component import run_kfp_step\n    import os\n"),
    "other runtime import": ("from nbscale.kernels.kfp_component import run_kfp_step",
                             "from os import system as run_kfp_step"),
    "call in a step argument": ("notebook=\"rich.ipynb\"", "notebook=open(\"x\").read()"),
    "foreign name in a step argument": ("notebook=\"rich.ipynb\"", "notebook=__builtins__"),
    "call in an annotation": ("step_record: dsl.Output[dsl.Artifact]", "step_record: print()"),
    "call in a parameter default": ("n: int = 3", "n: int = len('abc')"),
    "f-string default": ("n: int = 3", "n: int = f'{3}'"),
    "lambda default": ("n: int = 3", "n: int = (lambda: 3)()"),
    "statement in the pipeline": ("    second_task = second(", "    __import__('os')\n    second_task = second("),
    "attribute of an unexpected name": ("second_task.set_display_name(", "second_task.__class__.mro("),
    "unknown task method": ("second_task.set_display_name(", "second_task.add_node_selector_constraint("),
    "method of a non-task": ("second_task.set_display_name(", "dsl.set_display_name("),
    "builtin call in the pipeline": ("    second_task = second(", "    t = print(sep='')\n    second_task = second("),
    "positional task argument": ("    second_task = second(", "    t = second(1)\n    second_task = second("),
    "component argument from a call": ("in_x=first_task.output", "in_x=open('x')"),
    "subscript of a foreign name": ("in_x=first_task.output", "in_x=globals()['x']"),
    "importer of a non-literal": ('artifact_uri="file:///tmp/cache/first"', "artifact_uri=__file__"),
    "redefined set_display_name argument": ('set_display_name("second")', "set_display_name(__name__)"),
    "walrus": ('set_display_name("second")', 'set_display_name((n := "x"))'),
    "null byte": ("from kfp import dsl\n", "from kfp import dsl\n#\x00\n"),
    "syntax error": ("from kfp import dsl\n", 'from kfp import dsl\n"""\n'),
}


@pytest.mark.parametrize("case", TAMPERED, ids=list(TAMPERED))
def test_anything_else_is_refused(rich_module, case):
    old, new = TAMPERED[case]
    assert old in rich_module.text, f"the test's anchor {old!r} is not in the module"
    with pytest.raises(UnsafeGeneratedCode):
        verify_module(rich_module.text.replace(old, new, 1), rich_module.pipeline_function)


def test_literals_are_data_and_names_only_those_allowed():
    def data(source, names=()):
        return is_data(ast.parse(source, mode="eval").body, frozenset(names))

    assert data("[1, -2.5, 'a', None, True, {'k': (1,)}, float('-inf')]") and data("{'x': in_x}", ["in_x"])
    assert not data("{'x': in_x}") and not data("float('1e3')") and not data("f'{x}'") and not data("-x", ["x"])
    assert not data("{**x}", ["x"]) and not data("x.y", ["x"]) and not data("x[0]", ["x"]) and not data("1 + 2")


def test_set_timeout_must_be_nbscales(tmp_path):
    nb = make_notebook(tmp_path, [("x = 1", ["step:a", "timeout:10s"])], name="timeout")
    module = generate(compile_notebook(nb))
    verify_module(module.text)
    changed = module.text.replace('["activeDeadlineSeconds"] = str(seconds)', '["x"] = __import__("os").getcwd()')
    assert changed != module.text
    with pytest.raises(UnsafeGeneratedCode, match="set_timeout"):
        verify_module(changed)


def test_the_pipeline_function_must_be_the_expected_one(rich_module):
    with pytest.raises(UnsafeGeneratedCode):
        verify_module(rich_module.text, "another_pipeline")


def test_write_yaml_runs_nothing_that_fails_the_check(rich_module, tmp_path):
    sentinel = tmp_path / "SENTINEL"
    payload = f"import pathlib; pathlib.Path({str(sentinel)!r}).write_text('x')\n"
    tampered = rich_module.text.replace("from kfp import dsl\n", f"from kfp import dsl\n{payload}", 1)
    module = type(rich_module)(**{**vars(rich_module), "text": tampered})
    with pytest.raises(UnsafeGeneratedCode) as caught:
        write_yaml(module, tmp_path / "out.yaml", python_path=tmp_path / "out.py")
    injected_line = tampered[:tampered.index(payload)].count("\n") + 1
    assert isinstance(caught.value, TargetError) and caught.value.line == injected_line
    assert not sentinel.exists() and not (tmp_path / "out.yaml").exists() and not (tmp_path / "out.py").exists()


def test_the_old_header_injection_is_refused():
    """The docstring nbscale 0.1 wrote for a name holding triple quotes: the check alone stops it."""
    text = ('"""Kubeflow Pipelines (v2) pipeline \'x"""; import os; os.getcwd(); """\': nb.ipynb."""\n\n'
            "from kfp import dsl\n\nBASE_IMAGE = 'python:3.11-slim'\nPACKAGES_TO_INSTALL = []\n\n\n"
            "@dsl.pipeline(name='x')\ndef x_pipeline():\n    pass\n")
    with pytest.raises(UnsafeGeneratedCode):
        verify_module(text)


def test_the_module_of_a_real_example_still_compiles(tmp_path):
    """write_yaml runs the checked text itself; kfp still finds each component's source."""
    module = generate(compile_notebook(ROOT / "examples" / "iris.ipynb"))
    path = write_yaml(module, tmp_path / "iris.yaml", python_path=tmp_path / "iris_dsl.py")
    assert path.read_text(encoding="utf-8").startswith("# PIPELINE DEFINITION")
    assert not (tmp_path / "__pycache__").exists()
