"""compiler/targets/kfp/target.py: the `kfp` target as `nbscale compile --target kfp` uses it."""

from __future__ import annotations

import pytest
import yaml
from conftest import ROOT, make_notebook

from nbscale.compiler import compile_notebook
from nbscale.compiler.targets import get_target
from nbscale.compiler.targets.kfp import OPTION_NAMES, KfpTarget, OptionsError

IRIS = ROOT / "examples" / "iris.ipynb"


def test_it_writes_the_yaml_and_the_dsl_module_and_notes_what_the_image_lacks(tmp_path):
    target = get_target("kfp")
    assert isinstance(target, KfpTarget) and set(target.options) == {"emit_python", *OPTION_NAMES}
    notes = target.write(compile_notebook(IRIS), tmp_path / "iris.yaml", notebook=IRIS,
                         emit_python=str(tmp_path / "iris_dsl.py"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["iris.yaml", "iris_dsl.py"]  # no temporary files
    assert yaml.safe_load((tmp_path / "iris.yaml").read_text())["pipelineInfo"]["name"] == "iris"
    assert "def iris_pipeline(" in (tmp_path / "iris_dsl.py").read_text()
    assert len(notes) == 1 and notes[0].startswith("the steps import sklearn")


def test_overrides_win_and_bad_ones_are_option_errors(tmp_path):
    nb = make_notebook(tmp_path, ["import sklearn\nx = 1"], name="proj")
    notes = get_target("kfp").write(compile_notebook(nb), tmp_path / "p.yaml", notebook=nb,
                                    base_image="team/ml:1", pipeline_name="Team Job")
    spec = yaml.safe_load((tmp_path / "p.yaml").read_text())
    (executor,) = spec["deploymentSpec"]["executors"].values()
    assert executor["container"]["image"] == "team/ml:1" and spec["pipelineInfo"]["name"] == "team-job"
    assert notes == []  # the project chose its image
    with pytest.raises(OptionsError, match="command line: base_image must be a non-empty str"):
        get_target("kfp").write(compile_notebook(nb), tmp_path / "q.yaml", notebook=nb, base_image=3)
    assert not (tmp_path / "q.yaml").exists()


def test_a_default_that_may_be_a_credential_is_noted_at_its_cell_and_line(tmp_path):
    nb = make_notebook(tmp_path, [('n = 1\npassword = "Tr0ub4dor&3"', ["parameters"]), ("x = [n, password]", [])],
                       name="sec")
    notes = get_target("kfp").write(compile_notebook(nb), tmp_path / "s.yaml", notebook=nb, base_image="team/ml:1")
    assert notes == ["sec.ipynb:cell 1:2: warning[credential-default]: parameter 'password' may be a credential, so "
                     "its default is not written into the pipeline: it is a required input; give it at submit "
                     "time: nbscale submit sec.ipynb -p password=..."]
    assert "Tr0ub4dor" not in (tmp_path / "s.yaml").read_text()


def test_a_credential_written_as_a_literal_in_code_is_noted_at_its_cell_and_line(tmp_path):
    # it went into the YAML with no word, where the same value as a parameter is withheld
    nb = make_notebook(tmp_path, [("import os\nAWS_SECRET_ACCESS_KEY = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY'",
                                   ["imports"]),
                                  ("n_passes = 3\nsort_key = 'name'\npassword = 'hunter2'\n"
                                   "db = {'user': 'me', 'password': 'pw'}\ntoken = os.environ['TOKEN']", ["step:a"])],
                       name="code")
    notes = get_target("kfp").write(compile_notebook(nb), tmp_path / "c.yaml", notebook=nb, base_image="team/ml:1")
    assert [n.split(": warning")[0] for n in notes] == ["code.ipynb:cell 1:2", "code.ipynb:cell 2:3",
                                                         "code.ipynb:cell 2:4"]
    assert all("[credential-in-code]" in n and "read it from the environment" in n for n in notes)


def test_a_cell_python_refuses_writes_no_yaml(tmp_path):
    from nbscale.compiler.errors import PipelineHasErrors

    nb = make_notebook(tmp_path, [("x = 1", ["step:a"]), ("def f():\n    nonlocal y\n    y = x", ["step:b"])],
                       name="late")
    with pytest.raises(PipelineHasErrors, match=r"late\.ipynb:cell 2:2:5: error\[syntax-error\]"):
        get_target("kfp").write(compile_notebook(nb), tmp_path / "late.yaml", notebook=nb)
    assert not (tmp_path / "late.yaml").exists()


def test_a_notebook_with_nothing_to_run_writes_nothing(tmp_path):
    from nbscale.compiler.errors import TargetError

    nb = make_notebook(tmp_path, [], name="blank")
    with pytest.raises(TargetError, match=f"^{nb}: nothing to run: it has no code cells$"):
        get_target("kfp").write(compile_notebook(nb), tmp_path / "blank.yaml", notebook=nb,
                                emit_python=str(tmp_path / "blank.py"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blank.ipynb"]


def test_a_kale_tag_asking_for_another_kind_of_gpu_is_warned_of_at_its_cell(tmp_path):
    # `limit:amd.com/gpu:1` became one nvidia.com/gpu without a word
    cells = [("x = 1", ["step:prep"]),
             ("y = x + 1", ["step:train", "limit:amd.com/gpu:1"]),
             ("z = y + 1", ["step:score", "limit:nvidia.com/gpu:2"])]
    nb = make_notebook(tmp_path, cells, name="gpus")
    notes = get_target("kfp").write(compile_notebook(nb), tmp_path / "g.yaml", notebook=nb, base_image="team/ml:1")
    assert notes == ["gpus.ipynb:cell 2: warning[kfp-accelerator]: 'limit:amd.com/gpu:1' asks for amd.com/gpu, but "
                     "step 'train' gets 1 nvidia.com/gpu: the kfp accelerator option (its default), the one kind of "
                     "GPU of every step"]
    assert "amd.com/gpu" not in (tmp_path / "g.yaml").read_text()  # (what the warning says: nvidia's)
    (tmp_path / "pyproject.toml").write_text('[tool.nbscale.kfp]\naccelerator = "amd.com/gpu"\n')
    notes = get_target("kfp").write(compile_notebook(nb), tmp_path / "g.yaml", notebook=nb, base_image="team/ml:1")
    (note,) = notes
    assert note.startswith("gpus.ipynb:cell 3: warning[kfp-accelerator]: 'limit:nvidia.com/gpu:2' asks for "
                           "nvidia.com/gpu, but step 'score' gets 2 amd.com/gpu: the kfp accelerator option (set in ")
    assert "pyproject.toml [tool.nbscale.kfp])" in note
