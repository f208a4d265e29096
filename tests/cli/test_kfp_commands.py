"""`nbscale compile --target kfp` and `nbscale submit`, from the command line.

`submit` talks to `KfpStandIn`: a STAND-IN for the Kubeflow Pipelines API server, not KFP
itself — no KFP server can run on our machines (it needs Kubernetes). It is a small HTTP server
on 127.0.0.1 that answers the v2beta1 calls kfp.Client makes for a submit (healthz, pipelines
list / upload / upload_version / versions, experiments list / create, runs create) the way
the KFP API documents them, and records every request so the tests can check what was sent:
the YAML, the typed run parameters, and that credentials went only into request headers.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import yaml
from click.testing import CliRunner
from conftest import ROOT, make_notebook
from kfp_stand_in import API, COOKIE, TOKEN, KfpStandIn

from nbscale.cli import main

IRIS = ROOT / "examples" / "iris.ipynb"


@pytest.fixture
def kfp_api():
    with KfpStandIn() as api:
        yield api


def cli(*args, env=None):
    return CliRunner().invoke(main, [str(a) for a in args], env=env, catch_exceptions=False)


# -- compile --------------------------------------------------------------------------------


def test_compile_writes_yaml_and_an_importable_dsl_module(tmp_path):
    out = subprocess.run([sys.executable, "-m", "nbscale", "compile", str(IRIS), "--target", "kfp",
                          "-o", str(tmp_path / "iris.yaml"), "--emit-python", str(tmp_path / "iris_dsl.py")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "" and "wrote" in out.stderr
    assert "note: the steps import sklearn" in out.stderr  # the default image would lack it
    from kfp.components import load_component_from_file

    assert load_component_from_file(str(tmp_path / "iris.yaml")).name == "iris"
    check = subprocess.run([sys.executable, "-c", "import iris_dsl; print(iris_dsl.iris_pipeline.name)"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert check.returncode == 0 and check.stdout.strip() == "iris", check.stderr
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["iris.yaml", "iris_dsl.py"]


def test_compile_to_stdout_is_the_yaml():
    result = cli("compile", IRIS, "--target", "kfp")
    assert result.exit_code == 0
    spec = yaml.safe_load(result.stdout)
    assert spec["pipelineInfo"]["name"] == "iris"


def test_compile_of_a_notebook_with_errors_writes_nothing(tmp_path):
    nb = make_notebook(tmp_path, [("y = missing + 1", ["step:a"])], name="broken")
    result = CliRunner().invoke(main, ["compile", str(nb), "--target", "kfp", "-o", str(tmp_path / "p.yaml")])
    assert result.exit_code == 1
    assert "undefined-name" in result.output and "nothing written" in result.output
    assert not (tmp_path / "p.yaml").exists()


def test_kfp_options_with_the_ir_target_are_refused():
    result = CliRunner().invoke(main, ["compile", str(IRIS), "--emit-python", "x.py", "--package", "a"])
    assert result.exit_code == 2
    assert result.output == "error: --emit-python, --package only applies to --target kfp\n"


def test_flags_override_project_defaults_only_when_given(tmp_path):
    (tmp_path / "pyproject.toml").write_text(textwrap.dedent("""
        [tool.nbscale.kfp]
        base_image = "team/base:1"
        packages_to_install = ["nbscale[run]==0.1.0", "scikit-learn==1.9.1"]
        pipeline_name = "from-project"
    """))
    nb = make_notebook(tmp_path, ["x = 1"], name="proj")

    def compiled(*flags):
        result = cli("compile", nb, "--target", "kfp", *flags)
        assert result.exit_code == 0, result.output
        return yaml.safe_load(result.stdout)

    spec = compiled()
    (executor,) = spec["deploymentSpec"]["executors"].values()
    assert executor["container"]["image"] == "team/base:1"
    assert "scikit-learn==1.9.1" in " ".join(executor["container"]["command"])
    assert spec["pipelineInfo"]["name"] == "from-project"
    spec = compiled("--base-image", "cli/img:2", "--package", "nbscale[run]==0.1.0", "--pipeline-name", "cli-name")
    (executor,) = spec["deploymentSpec"]["executors"].values()
    assert executor["container"]["image"] == "cli/img:2"
    assert "scikit-learn" not in " ".join(executor["container"]["command"])
    assert spec["pipelineInfo"]["name"] == "cli-name"


@pytest.mark.parametrize(("flags", "said"), [
    (["--pipeline-name", ""], "pipeline_name must be a non-empty str"),
    (["--base-image", " "], "base_image must be a non-empty str"),
    (["--emit-python", ""], "--emit-python needs a file name"),
    (["-o", ""], "-o needs a file name"),
])
def test_an_empty_flag_is_refused_not_ignored(tmp_path, flags, said):
    # `--pipeline-name ""` compiled under the project's name, as if the flag had not been given
    nb = make_notebook(tmp_path, ["x = 1"], name="proj")
    result = CliRunner().invoke(main, ["compile", str(nb), "--target", "kfp", *flags])
    assert result.exit_code == 2 and said in result.output and not result.stdout.startswith("#")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["proj.ipynb"]


def test_a_bad_project_default_is_one_clear_line(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.nbscale.kfp]\nbase_imag = "x"\n')
    nb = make_notebook(tmp_path, ["x = 1"], name="proj")
    result = CliRunner().invoke(main, ["compile", str(nb), "--target", "kfp"])
    assert result.exit_code == 2
    assert result.output.strip().startswith("error:") and "unknown key 'base_imag'" in result.output
    assert len(result.output.strip().splitlines()) == 1


# -- submit ---------------------------------------------------------------------------------


def test_submit_uploads_creates_the_run_and_keeps_credentials_out_of_the_yaml(kfp_api, tmp_path):
    env = {"NBSCALE_KFP_TOKEN": TOKEN}
    result = cli("submit", IRIS, "--host", kfp_api.url, "--experiment", "nightly", "--run-name", "first run",
                 "-p", "n_estimators=7", "-p", "C=2", "--cookies", COOKIE, env=env)
    assert result.exit_code == 0, result.output
    (run,) = kfp_api.runs
    assert run["display_name"] == "first run"
    assert run["runtime_config"]["parameters"] == {"n_estimators": 7, "C": 2.0}  # typed by the notebook
    assert isinstance(run["runtime_config"]["parameters"]["C"], float)
    (pipeline,) = kfp_api.pipelines.values()
    assert pipeline["display_name"] == "iris"
    assert run["pipeline_version_reference"] == {"pipeline_id": pipeline["pipeline_id"],
                                                 "pipeline_version_id": kfp_api.versions[pipeline["pipeline_id"]][0]
                                                 ["pipeline_version_id"]}
    (experiment,) = kfp_api.experiments.values()
    assert experiment["display_name"] == "nightly" and run["experiment_id"] == experiment["experiment_id"]
    assert f"{kfp_api.url}/#/runs/details/{run['run_id']}" in result.output
    # the uploaded YAML is the compiled pipeline, and holds no credential
    (uploaded,) = kfp_api.uploads
    assert yaml.safe_load(uploaded)["pipelineInfo"]["name"] == "iris"
    assert TOKEN.encode() not in uploaded and b"COOKIE-SECRET" not in uploaded
    # credentials went in the headers of every call, healthz included
    assert all(r["headers"].get("authorization") == f"Bearer {TOKEN}" for r in kfp_api.requests)
    assert all(COOKIE in r["headers"].get("cookie", "") for r in kfp_api.requests)
    assert not any(TOKEN.encode() in r["body"] for r in kfp_api.requests)


def test_a_new_version_per_changed_yaml_and_an_unchanged_one_is_reused(kfp_api, tmp_path):
    nb = make_notebook(tmp_path, [("layers = [64, 32]\nname = 'a\"b{c}'", ["parameters"]),
                                  ("n = len(layers)", ["step:a"])], name="again")
    assert cli("submit", nb, "--host", kfp_api.url).exit_code == 0  # creates the pipeline
    (pid,) = kfp_api.pipelines
    outputs = []
    for _ in range(2):  # a version named after the YAML's digest; then that version again
        again = cli("submit", nb, "--host", kfp_api.url, "-p", "layers=[1, 2, 3]", "-p", "name=x'y\"z")
        assert again.exit_code == 0, again.output
        outputs.append(again.output)
    assert "(uploaded)" in outputs[0] and "(unchanged)" in outputs[1]
    assert [v["display_name"][:6] for v in kfp_api.versions[pid]] == ["again", "again "]
    assert len(kfp_api.uploads) == 2
    assert kfp_api.runs[1]["pipeline_version_reference"] == kfp_api.runs[2]["pipeline_version_reference"]
    # lists travel as JSON text (the ints stay ints); strings as they are
    assert kfp_api.runs[2]["runtime_config"]["parameters"] == {"layers": "[1, 2, 3]", "name": "x'y\"z"}
    changed = cli("submit", nb, "--host", kfp_api.url, "--base-image", "python:3.12-slim")
    assert changed.exit_code == 0, changed.output
    assert len(kfp_api.versions[pid]) == 3 and len(kfp_api.uploads) == 3
    assert kfp_api.runs[3]["pipeline_version_reference"]["pipeline_version_id"] == \
        kfp_api.versions[pid][2]["pipeline_version_id"]
    assert len(kfp_api.experiments) == 1  # "Default", created once


@pytest.mark.parametrize("failing, status, expected", [
    (("GET", f"{API}/healthz"), 503, "health check answered 503 Service Unavailable: warming up"),
    (("POST", f"{API}/runs"), 403, "403 Forbidden: user is not allowed to create runs"),
    (("POST", f"{API}/pipelines/upload"), 400, "400 Bad Request: invalid pipeline spec"),
])
def test_endpoint_errors_are_one_clear_line(kfp_api, failing, status, expected):
    message = expected.split(": ")[-1]
    kfp_api.fail[failing] = (status, {"error": message, "code": 7, "message": message})
    result = CliRunner().invoke(main, ["submit", str(IRIS), "--host", kfp_api.url])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert lines == [f"error: {kfp_api.url}: {expected}"], result.output


def test_an_unreachable_endpoint_and_bad_input(tmp_path):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = subprocess.run([sys.executable, "-m", "nbscale", "submit", str(IRIS), "--host", f"http://127.0.0.1:{port}"],
                            capture_output=True, text=True, timeout=120, env={**os.environ, "NBSCALE_KFP_TOKEN": TOKEN})
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: http://127.0.0.1:{port}: cannot reach the KFP API ([Errno 111] Connection refused)"]
    assert TOKEN not in result.stderr + result.stdout
    with_password = subprocess.run(  # user info in --host: refused (urllib took it for the host's name), unsaid
        [sys.executable, "-m", "nbscale", "submit", str(IRIS), "--host", f"http://kf:HOSTPW42@127.0.0.1:{port}"],
        capture_output=True, text=True, timeout=120)
    assert with_password.returncode == 1 and with_password.stderr.startswith(
        f"error: http://127.0.0.1:{port}: a user name or password in the host URL is not sent anywhere")
    assert "HOSTPW42" not in with_password.stderr + with_password.stdout
    for host, said in (("not a url", "error: not a url: the host is not an http(s) URL"),
                       ("http://[::1", "error: (a malformed URL): the host is not a URL (Invalid IPv6 URL)")):
        bad = CliRunner().invoke(main, ["submit", str(IRIS), "--host", host])
        assert bad.exit_code == 1 and bad.output.startswith(said) and "Traceback" not in bad.output, bad.output
    unknown = CliRunner().invoke(main, ["submit", str(IRIS), "--host", "http://127.0.0.1:9", "-p", "nope=1"])
    assert unknown.exit_code == 2 and "unknown parameter(s) nope" in unknown.output
    nohost = CliRunner().invoke(main, ["submit", str(IRIS)], env={"NBSCALE_KFP_HOST": ""})
    assert nohost.exit_code == 2 and "no KFP endpoint" in nohost.output
    empty = make_notebook(tmp_path, [], name="empty")  # what the generator refuses: a traceback before
    refused = CliRunner().invoke(main, ["submit", str(empty), "--host", "http://127.0.0.1:9"])
    assert refused.exit_code == 2 and refused.output == "error: empty.ipynb: nothing to run: it has no code cells\n"


def test_credentials_never_go_to_a_host_only_the_notebook_metadata_names(kfp_api, tmp_path):
    nb = make_notebook(tmp_path, [("x = 1", ["step:a"])], metadata={"nbscale": {"kfp": {"host": kfp_api.url}}})
    refused = cli("submit", nb, env={"NBSCALE_KFP_TOKEN": TOKEN})
    assert refused.exit_code != 0 and f"give --host {kfp_api.url}" in refused.output
    assert kfp_api.requests == []  # nothing was sent, token or not
    confirmed = cli("submit", nb, "--host", kfp_api.url, env={"NBSCALE_KFP_TOKEN": TOKEN})
    assert confirmed.exit_code == 0, confirmed.output
    assert all(r["headers"].get("authorization") == f"Bearer {TOKEN}" for r in kfp_api.requests)
    without_credentials = cli("submit", nb)  # nothing secret to leak: the metadata's host is used
    assert without_credentials.exit_code == 0, without_credentials.output
