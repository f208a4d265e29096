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


def test_a_parameter_whose_default_may_be_a_credential_must_be_given_before_anything_is_sent(tmp_path):
    # its default is not in the compiled pipeline: KFP would refuse the run after the upload
    from conftest import make_notebook

    from nbscale.compiler import compile_notebook
    from nbscale.compiler.targets.kfp import KfpOptions
    from nbscale.kernels.errors import ParameterError
    from nbscale.kernels.kfp_submit import submit_pipeline

    secret = "ghp_" + "a1B2" * 9
    pipeline = compile_notebook(make_notebook(tmp_path, [(f"api_token = '{secret}'\nn = 1", ["parameters"]),
                                                         ("m = len(api_token) + n", ["step:a"])]))
    with KfpStandIn() as stand_in:
        with pytest.raises(ParameterError, match=r"api_token may be credentials: .* -p api_token=\.\.\."):
            submit_pipeline(pipeline, KfpOptions(host=stand_in.url), {"n": 2})
        assert stand_in.requests == []
        submit_pipeline(pipeline, KfpOptions(host=stand_in.url), {"api_token": "other"})
        (run,) = stand_in.runs
        assert secret not in str(stand_in.requests)


def test_an_answer_quoting_the_credentials_sent_does_not_carry_them_into_the_error():
    """The KFP API stand-in plays an auth proxy that echoes what it refused, bare and as a header,
    then the token again across the point where a long message is cut: masked before the cut, no
    start of it is kept."""
    from nbscale.kernels.kfp_submit import MESSAGE_MAX

    head = "health check answered 401 Unauthorized: "
    quoted = f"token {TOKEN} is not valid; Cookie: {COOKIE}; session COOKIE-SECRET-77 expired; "
    across_the_cut = "." * (MESSAGE_MAX - len(head) - len(quoted) - 5) + TOKEN
    with KfpStandIn() as stand_in:
        stand_in.fail[("GET", API + "/healthz")] = (401, {"message": quoted + across_the_cut})
        with pytest.raises(EndpointError) as err:
            KfpEndpoint(stand_in.url, token=TOKEN, cookies=COOKIE).check()
    message = str(err.value)
    assert message.startswith(head + "token <hidden> is not valid; Cookie: <hidden>; session <hidden> expired")
    assert message.endswith(".<hidden>") and TOKEN[:5] not in message, message
    assert err.value.status == 401


def test_an_answer_quoting_what_looks_like_a_credential_is_masked_though_not_sent():
    """The KFP API stand-in answers with credentials of others' (or ones kfp sent by itself)."""
    body = ("denied: Authorization: Bearer eyJhbGciOi.eyJzdWIi.c2lnbmF0dXJl, password=hunter2pw, "
            "source http://admin:adminpw@10.0.0.7/login, key ghp16C7e42F292c6912E7710c838347Ae178B4a")
    with KfpStandIn() as stand_in:
        stand_in.fail[("GET", API + "/healthz")] = (403, {"message": body})
        with pytest.raises(EndpointError) as err:
            KfpEndpoint(stand_in.url).check()
    message = str(err.value)
    assert message.startswith("health check answered 403 Forbidden: denied: Authorization: Bearer <hidden>")
    for secret in ("eyJhbGciOi", "hunter2pw", "adminpw", "ghp16C7e42F292c6912E7710c838347Ae178B4a"):
        assert secret not in message, message
    assert "password=<hidden>" in message


def test_a_refused_submit_does_not_carry_the_credentials_into_the_error(tmp_path):
    """After the health check, kfp's client calls the KFP API stand-in, which refuses the run and
    quotes the session cookie it was sent."""
    from conftest import make_notebook

    from nbscale.compiler import compile_notebook
    from nbscale.compiler.targets.kfp import KfpOptions
    from nbscale.kernels.kfp_submit import submit_pipeline

    pipeline = compile_notebook(make_notebook(tmp_path, [("x = 1", ["step:a"])]))
    with KfpStandIn() as stand_in:
        stand_in.fail[("POST", API + "/runs")] = (401, {"message": f"session {COOKIE} may not run; token {TOKEN}"})
        with pytest.raises(EndpointError, match="401") as err:
            submit_pipeline(pipeline, KfpOptions(host=stand_in.url), token=TOKEN, cookies=COOKIE)
    assert "SECRET" not in str(err.value) and "may not run" in str(err.value), str(err.value)


def test_a_long_answer_is_masked_in_time():
    """The KFP API stand-in answers with 60 KB of one hyphenated word: masking must stay linear
    (a name pattern that backtracks takes minutes on it, holding a server thread)."""
    import time

    with KfpStandIn() as stand_in:
        stand_in.fail[("GET", API + "/healthz")] = (500, {"message": "a-" * 30_000})
        started = time.monotonic()
        with pytest.raises(EndpointError, match=r"answered 500 Internal Server Error: <hidden>$"):
            KfpEndpoint(stand_in.url).check()
    assert time.monotonic() - started < 10
