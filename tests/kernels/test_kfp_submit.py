"""KfpEndpoint's health check against the KFP API stand-in (tests/kfp_stand_in.py; no KFP API server
can run here): the status of a refusal, an endpoint that does not answer, and credentials that do
not follow a redirect."""

from __future__ import annotations

import pytest
from kfp_stand_in import API, COOKIE, TOKEN, KfpStandIn

from nbscale.kernels.kfp_submit import EndpointError, KfpEndpoint


def test_a_healthy_endpoint_gets_the_credentials():
    with KfpStandIn() as stand_in:
        KfpEndpoint(stand_in.url, token=TOKEN, cookies=COOKIE).check()
        (request,) = stand_in.requests
        assert request["headers"]["authorization"] == f"Bearer {TOKEN}" and request["headers"]["cookie"] == COOKIE


def test_a_refusal_carries_its_status_and_an_unreachable_endpoint_says_so():
    with KfpStandIn() as stand_in:
        stand_in.fail[("GET", API + "/healthz")] = (503, {"message": "maintenance"})
        with pytest.raises(EndpointError, match="answered 503") as err:
            KfpEndpoint(stand_in.url).check()
        assert (err.value.status, err.value.unreachable) == (503, False)
    with pytest.raises(EndpointError, match="cannot reach") as err:
        KfpEndpoint("http://127.0.0.1:9").check()
    assert (err.value.status, err.value.unreachable) == (None, True)


def test_credentials_do_not_follow_a_redirect_to_another_host():
    with KfpStandIn() as configured, KfpStandIn() as elsewhere:
        configured.fail[("GET", API + "/healthz")] = (307, {}, {"Location": elsewhere.url + API + "/healthz"})
        with pytest.raises(EndpointError, match="answered 307.*redirect") as err:
            KfpEndpoint(configured.url, token=TOKEN, cookies=COOKIE).check()
        assert err.value.status == 307 and elsewhere.requests == []


def test_an_integer_kfp_would_round_is_refused_before_anything_is_sent(tmp_path):
    from conftest import make_notebook

    from nbscale.compiler import compile_notebook
    from nbscale.compiler.targets.kfp import KfpOptions
    from nbscale.kernels.errors import ParameterError
    from nbscale.kernels.kfp_submit import submit_pipeline

    pipeline = compile_notebook(make_notebook(tmp_path, [("n = 1", ["parameters"]), ("m = n + 1", ["step:a"])]))
    with KfpStandIn() as stand_in:
        with pytest.raises(ParameterError, match=r"parameter 'n' is 1180591620717411303424: .* exact only up to"):
            submit_pipeline(pipeline, KfpOptions(host=stand_in.url), {"n": 2 ** 70})
        assert stand_in.requests == []
        submit_pipeline(pipeline, KfpOptions(host=stand_in.url), {"n": 2 ** 53})
        assert len(stand_in.runs) == 1
