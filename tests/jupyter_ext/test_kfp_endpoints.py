"""KfpService without HTTP: the notebook's KFP YAML, submitting to the KFP API stand-in, and
credentials kept out of answers and logs."""

from __future__ import annotations

import json

import pytest
from conftest import make_notebook
from server_parts import TWO_STEPS, run

from nbscale.jupyter_ext.errors import InvalidInput, UpstreamError
from nbscale.jupyter_ext.kfp import KfpService, redact_url


def test_kfp_yaml_of_a_notebook(tmp_path):
    nb = make_notebook(tmp_path, TWO_STEPS, name="nb")
    name, text = run(KfpService().yaml(nb))
    assert name == "nb.yaml" and text.startswith("# PIPELINE DEFINITION") and "pipelineInfo" in text
    broken = make_notebook(tmp_path, [("x = nope + 1", ["step:a"])], name="broken")
    with pytest.raises(InvalidInput, match="fix them before exporting") as err:
        run(KfpService().yaml(broken))
    assert err.value.detail["diagnostics"][0]["code"] == "undefined-name"


def test_kfp_submit_without_a_host_is_invalid_input(tmp_path):
    nb = make_notebook(tmp_path, TWO_STEPS, name="nb")
    with pytest.raises(InvalidInput, match="no KFP host"):
        run(KfpService().submit(nb, {}, "e", "r"))


def test_kfp_submit_to_an_unreachable_host_names_it_without_credentials(tmp_path):
    nb = make_notebook(tmp_path, TWO_STEPS, name="nb")
    with pytest.raises(UpstreamError, match="cannot reach") as err:
        run(KfpService("http://user:s3cret@127.0.0.1:9/?token=abc").submit(nb, {}))
    assert err.value.message.startswith("http://127.0.0.1:9/: ") and "s3cret" not in err.value.message


def test_redact_url_drops_credentials():
    assert redact_url("https://user:s3cret@kfp.example.com:8443/pipeline?token=abc#x") == \
        "https://kfp.example.com:8443/pipeline"
    assert redact_url(None) == ""


def test_kfp_submit_reaches_the_api_stand_in_with_typed_parameters(tmp_path, monkeypatch):
    """Submits to the KFP v2beta1 stand-in of tests/kfp_stand_in.py (no KFP server can run here)."""
    from kfp_stand_in import KfpStandIn

    monkeypatch.setenv("NBSCALE_KFP_TOKEN", "tok-SECRET-server")
    nb = make_notebook(tmp_path, [("k = 2", ["parameters"]), ("x = k", ["step:a"])], name="p")
    with KfpStandIn() as stand_in:
        kfp = KfpService(stand_in.url)
        result = run(kfp.submit(nb, {"k": "5"}, experiment="exp", run_name="r1"))
        assert result["run_url"].endswith(result["run_id"]) and result["experiment"] == "exp"
        (submitted,) = stand_in.runs
        assert "tok-SECRET-server" not in json.dumps(result)
        assert stand_in.requests[-1]["headers"].get("authorization") == "Bearer tok-SECRET-server"
        assert "5" in json.dumps(submitted)  # the typed parameter value reached the run
        with pytest.raises(InvalidInput, match="unknown parameter"):
            run(kfp.submit(nb, {"nope": 1}))
