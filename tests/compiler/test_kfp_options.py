"""compiler/targets/kfp/options.py: project defaults stack in their order; bad ones are clear errors."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from conftest import make_notebook

from nbscale import __version__
from nbscale.compiler import NbscaleCompileError
from nbscale.compiler.targets.kfp import OptionsError, load_options


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
    assert options.origin["base_image"] == "proj.ipynb metadata nbscale.kfp"
    flagged = load_options(nb, {"base_image": "cli/img:3", "experiment": None, "packages_to_install": None})
    assert flagged.base_image == "cli/img:3" and flagged.experiment == "from-pyproject"
    assert flagged.packages_to_install == options.packages_to_install
    plain = load_options(make_notebook(tmp_path / "notebooks", ["x = 1"], name="other"))
    assert plain.base_image == "team/base:1"
    assert load_options(Path("/nonexistent/dir/nb.ipynb")).packages_to_install == [f"nbscale[run]=={__version__}"]


@pytest.mark.parametrize("table, message", [
    ('bse_image = "x"', "unknown key 'bse_image'"),
    ("packages_to_install = 3", "packages_to_install must be a list of strings"),
    ('install_kfp_package = "no"', "install_kfp_package must be a non-empty bool"),
])
def test_bad_project_defaults_are_clear_errors(tmp_path, table, message):
    (tmp_path / "pyproject.toml").write_text(f"[tool.nbscale.kfp]\n{table}\n")
    nb = make_notebook(tmp_path, ["x = 1"])
    with pytest.raises(OptionsError, match=message) as caught:
        load_options(nb)
    assert isinstance(caught.value, NbscaleCompileError) and not isinstance(caught.value, ValueError)


def test_bad_metadata_and_flags_name_where_they_were_set(tmp_path):
    nb = make_notebook(tmp_path, ["x = 1"], name="meta", metadata={"nbscale": {"kfp": ["not", "a", "table"]}})
    with pytest.raises(OptionsError, match="meta.ipynb: metadata nbscale.kfp must be a mapping"):
        load_options(nb)
    with pytest.raises(OptionsError, match="command line: experiment must be a non-empty str"):
        load_options(make_notebook(tmp_path, ["x = 1"]), {"experiment": 3})


@pytest.mark.parametrize("accelerator", ["nvidia.com/gpu\n  evil: 1", "nvidia.com/gpu\n", "a/b/c", "/gpu",
                                         "Nvidia.com/gpu", "nvidia.com/", "gpu name", "x" * 64, "nvidia.com/gpü"])
def test_an_accelerator_that_is_no_extended_resource_name_is_refused(tmp_path, accelerator):
    # written as the pod's resource type: a line break became YAML of its own
    nb = make_notebook(tmp_path, ["x = 1"], name="acc", metadata={"nbscale": {"kfp": {"accelerator": accelerator}}})
    with pytest.raises(OptionsError, match="^acc.ipynb metadata nbscale.kfp: accelerator .* is not a Kubernetes "
                                           "extended-resource name"):
        load_options(nb)
    plain = make_notebook(tmp_path, ["x = 1"])
    with pytest.raises(OptionsError, match="^command line: accelerator"):
        load_options(plain, {"accelerator": accelerator})
    for fine in ("nvidia.com/gpu", "amd.com/gpu", "google.com/tpu", "example.com/foo_bar.X", "gpu"):
        assert load_options(plain, {"accelerator": fine}).accelerator == fine


@pytest.mark.parametrize("requirement", ["x'$(touch /tmp/nbscale-shell)", 'a"b', "pkg`id`", "a\\b", "a\nb", " "])
def test_a_requirement_a_shell_would_read_more_into_is_refused(tmp_path, requirement):
    # the kfp SDK writes each into a `pip install` shell command, quoted with repr()
    nb = make_notebook(tmp_path, ["x = 1"], name="pkgs",
                       metadata={"nbscale": {"kfp": {"packages_to_install": ["numpy>=1.2", requirement]}}})
    with pytest.raises(OptionsError, match="pkgs.ipynb metadata nbscale.kfp: packages_to_install holds"):
        load_options(nb)
    fine = ["numpy>=1.2,<3", "pkg @ git+https://example.com/pkg.git@v1", "scikit-learn[all]~=1.5"]
    plain = make_notebook(tmp_path, ["x = 1"], name="plain")
    assert load_options(plain, {"packages_to_install": fine}).packages_to_install == fine


def test_a_boundary_keeps_project_files_above_it_unread_and_out_of_messages(tmp_path):
    # the Jupyter server's root: a pyproject.toml above it is not the server's to read or to name
    (tmp_path / "pyproject.toml").write_text('[tool.nbscale.kfp]\nbase_image = "above/root:1"\n')
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    nb = make_notebook(root / "sub", ["x = 1"])
    assert load_options(nb).base_image == "above/root:1"  # the CLI reads the nearest one above
    assert load_options(nb, boundary=root).base_image == "python:3.11-slim"
    (root / "pyproject.toml").write_text("[tool.nbscale.kfp]\nbogus = 1\n")
    with pytest.raises(OptionsError, match=r"^pyproject.toml \[tool.nbscale.kfp\]: unknown key 'bogus'") as bad:
        load_options(nb, boundary=root)
    assert str(tmp_path) not in str(bad.value)
    (root / "sub" / "pyproject.toml").write_bytes(b"\xff")
    with pytest.raises(OptionsError, match="^sub/pyproject.toml: cannot read it") as unreadable:
        load_options(nb, boundary=root)
    assert str(tmp_path) not in str(unreadable.value)


def test_a_project_file_linking_above_the_boundary_is_refused(tmp_path):
    (tmp_path / "outside.toml").write_text('[tool.nbscale.kfp]\nbase_image = "above/root:1"\n')
    root = tmp_path / "root"
    root.mkdir()
    nb = make_notebook(root, ["x = 1"])
    (root / "pyproject.toml").symlink_to(tmp_path / "outside.toml")
    with pytest.raises(OptionsError, match="^pyproject.toml: it links outside the folder") as refused:
        load_options(nb, boundary=root)
    assert str(tmp_path) not in str(refused.value)
    assert load_options(nb).base_image == "above/root:1"  # the CLI follows it
