"""KfpService without HTTP: the notebook's KFP YAML, submitting to the KFP API stand-in
(tests/kfp_stand_in.py: no real KFP API server can run here), endpoints from the server's
configuration only, and credentials and upstream answers kept out of what the browser sees."""

from __future__ import annotations

import json
import logging

import pytest
from conftest import make_notebook
from server_parts import TWO_STEPS, run

from nbscale.jupyter_ext.errors import Conflict, InvalidInput, NotAllowed, UpstreamError
from nbscale.jupyter_ext.kfp import KfpService, redact_url


def test_kfp_yaml_of_a_notebook(tmp_path):
    nb = make_notebook(tmp_path, TWO_STEPS, name="nb")
    name, text = run(KfpService().yaml(nb))
    assert name == "nb.yaml" and text.startswith("# PIPELINE DEFINITION") and "pipelineInfo" in text
    broken = make_notebook(tmp_path, [("x = nope + 1", ["step:a"])], name="broken")
    with pytest.raises(InvalidInput, match="fix them before exporting") as err:
        run(KfpService().yaml(broken))
    assert err.value.detail["diagnostics"][0]["code"] == "undefined-name"
    refused = make_notebook(tmp_path, [("x = 1", ["step:a"]), ("class C:\n    return x", ["step:b"])], name="late")
    with pytest.raises(InvalidInput, match="fix them before exporting") as err:  # (Python refuses it)
        run(KfpService().yaml(refused))
    assert [(d["code"], d["cell"], d["line"]) for d in err.value.detail["diagnostics"]] == [("syntax-error", 1, 2)]


def test_kfp_submit_without_a_configured_endpoint_is_a_conflict_whatever_the_notebook_names(tmp_path):
    """The stand-in KFP API (tests/kfp_stand_in.py) plays the host a notebook names: it hears nothing."""
    from kfp_stand_in import KfpStandIn

    with KfpStandIn() as named_by_notebook:
        (tmp_path / "pyproject.toml").write_text(f'[tool.nbscale.kfp]\nhost = "{named_by_notebook.url}"\n')
        (tmp_path / "root").mkdir()
        nb = make_notebook(tmp_path / "root", TWO_STEPS, name="nb",
                           metadata={"nbscale": {"kfp": {"host": named_by_notebook.url}}})
        above = make_notebook(tmp_path, TWO_STEPS, name="above")  # only the pyproject.toml names a host
        for notebook in (nb, above):
            with pytest.raises(Conflict, match=r"no KFP endpoint configured for this server \(c.Nbscale.kfp_host\)"):
                run(KfpService().submit(notebook, {}, "e", "r"))
        with pytest.raises(Conflict, match="name one of c.Nbscale.kfp_hosts"):
            run(KfpService(None, [named_by_notebook.url]).submit(nb, {}))  # allowed hosts, but no default
        assert named_by_notebook.requests == []


def test_kfp_submit_to_an_unreachable_host_names_it_without_credentials(tmp_path):
    nb = make_notebook(tmp_path, TWO_STEPS, name="nb")
    with pytest.raises(UpstreamError) as err:
        run(KfpService("http://127.0.0.1:9/?token=abc").submit(nb, {}))
    assert err.value.message == "cannot reach the KFP API at http://127.0.0.1:9/"
    with pytest.raises(UpstreamError) as err:  # a password in the URL: refused, and not said
        run(KfpService("http://user:s3cret@127.0.0.1:9/").submit(nb, {}))
    assert err.value.message == "submitting to KFP at http://127.0.0.1:9/ failed; the server log has the reason"


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


def test_a_host_the_notebook_names_is_ignored_with_a_warning(tmp_path, monkeypatch):
    """Two KFP API stand-ins: the configured endpoint, and one the notebook's metadata names."""
    from kfp_stand_in import KfpStandIn

    monkeypatch.setenv("NBSCALE_KFP_TOKEN", "tok-SECRET-server")
    monkeypatch.setenv("NBSCALE_KFP_COOKIES", "session=COOKIE-SECRET")
    with KfpStandIn() as configured, KfpStandIn() as named_by_notebook:
        nb = make_notebook(tmp_path, TWO_STEPS, name="nb", metadata={
            "nbscale": {"kfp": {"host": named_by_notebook.url, "experiment": "from-metadata"}}})
        result = run(KfpService(configured.url).submit(nb, {}))
        assert result["experiment"] == "from-metadata"  # a notebook may name an experiment ...
        (warning,) = result["warnings"]  # ... never a host
        assert "ignored the KFP host set in the notebook's metadata" in warning
        assert named_by_notebook.url not in json.dumps(result)
        assert named_by_notebook.requests == [] and len(configured.runs) == 1
        assert {r["headers"].get("authorization") for r in configured.requests} == {"Bearer tok-SECRET-server"}
        assert run(KfpService(configured.url).submit(make_notebook(tmp_path, TWO_STEPS, name="plain"), {}))[
            "warnings"] == []


def test_a_request_may_pick_only_a_configured_endpoint(tmp_path, monkeypatch):
    """Three KFP API stand-ins: the default endpoint, another allowed one, and one not configured."""
    from kfp_stand_in import KfpStandIn

    monkeypatch.setenv("NBSCALE_KFP_TOKEN", "tok-SECRET-server")
    nb = make_notebook(tmp_path, TWO_STEPS, name="nb")
    with KfpStandIn() as default, KfpStandIn() as other, KfpStandIn() as stranger:
        kfp = KfpService(default.url, [other.url + "/"])
        host_port = other.url.removeprefix("http://")
        for named in (other.url, other.url + "/", host_port):
            run(kfp.submit(nb, {}, host=named))
        assert len(other.runs) == 3 and default.requests == []
        run(kfp.submit(nb, {}, host=default.url))
        assert len(default.runs) == 1
        for named in (stranger.url, "127.0.0.1", "http://127.0.0.1", "file:///etc/passwd"):
            with pytest.raises(NotAllowed, match="not one this server submits to"):
                run(kfp.submit(nb, {}, host=named))
        assert stranger.requests == []
    assert KfpService(default.url).endpoint(None) == default.url
    with_credentials = "https://user:pw@kfp.example.com:8443/?token=t"  # named without its credentials
    assert KfpService(None, [with_credentials]).endpoint("https://kfp.example.com:8443") == with_credentials
    assert KfpService(None, [with_credentials]).endpoint("kfp.example.com:8443") == with_credentials


def test_an_upstream_failure_is_its_status_the_detail_goes_to_the_log(tmp_path, caplog):
    """The KFP API stand-in answers 500 with a body that must not reach the browser."""
    from kfp_stand_in import API, KfpStandIn

    nb = make_notebook(tmp_path, TWO_STEPS, name="nb")
    log = logging.getLogger("test-nbscale-kfp")
    with KfpStandIn() as stand_in, caplog.at_level(logging.WARNING, logger=log.name):
        stand_in.fail[("GET", API + "/healthz")] = (500, {"message": "INTERNAL http://10.0.0.7/admin detail"})
        with pytest.raises(UpstreamError) as err:
            run(KfpService(stand_in.url, log=log).submit(nb, {}))
        assert err.value.message == f"KFP at {stand_in.url} answered 500"
        del stand_in.fail[("GET", API + "/healthz")]
        stand_in.fail[("POST", API + "/runs")] = (403, {"message": "INTERNAL user x may not create runs"})
        with pytest.raises(UpstreamError) as err:
            run(KfpService(stand_in.url, log=log).submit(nb, {}))
        assert err.value.message == f"KFP at {stand_in.url} answered 403"
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "INTERNAL http://10.0.0.7/admin detail" in logged and "may not create runs" in logged


def test_credentials_do_not_follow_a_redirect(tmp_path, monkeypatch):
    """The configured KFP API stand-in redirects to a second stand-in, which must hear nothing."""
    from kfp_stand_in import API, TOKEN, KfpStandIn

    monkeypatch.setenv("NBSCALE_KFP_TOKEN", TOKEN)
    nb = make_notebook(tmp_path, TWO_STEPS, name="nb")
    with KfpStandIn() as configured, KfpStandIn() as elsewhere:
        configured.fail[("GET", API + "/healthz")] = (302, {}, {"Location": elsewhere.url + API + "/healthz"})
        with pytest.raises(UpstreamError, match="answered 302"):
            run(KfpService(configured.url).submit(nb, {}))
        assert elsewhere.requests == []


def test_an_upstream_answer_quoting_the_servers_credentials_is_logged_without_them(tmp_path, monkeypatch, caplog):
    """The KFP API stand-in plays an auth proxy that quotes the token and cookie it refused, at the
    health check and then at the run kfp's client starts."""
    from kfp_stand_in import API, COOKIE, TOKEN, KfpStandIn

    monkeypatch.setenv("NBSCALE_KFP_TOKEN", TOKEN)
    monkeypatch.setenv("NBSCALE_KFP_COOKIES", COOKIE)
    nb = make_notebook(tmp_path, TWO_STEPS, name="nb")
    log = logging.getLogger("test-nbscale-kfp-credentials")
    echo = {"message": f"invalid credentials: Bearer {TOKEN}; Cookie: {COOKIE}"}
    with KfpStandIn() as stand_in, caplog.at_level(logging.WARNING, logger=log.name):
        for refused in (("GET", API + "/healthz"), ("POST", API + "/runs")):
            stand_in.fail = {refused: (401, echo)}
            with pytest.raises(UpstreamError, match="answered 401$"):
                run(KfpService(stand_in.url, log=log).submit(nb, {}))
    logged = [r.getMessage() for r in caplog.records]
    assert len(logged) == 2 and all("invalid credentials: Bearer <hidden>; Cookie: <hidden>" in m for m in logged)
    assert "SECRET" not in "\n".join(logged)
