"""The `/nbscale/api/…` server extension in a real jupyter_server (pytest-jupyter): authentication,
XSRF, path confinement, every endpoint's JSON shape, runs shared with the CLI's run store, cancel,
a real LocalCluster, and the event websocket.

pytest-jupyter's fixtures are imported into this module only (its autouse fixtures stay here);
tests are plain functions that drive the server's event loop with `aio`.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import re
import time
import urllib.parse
from pathlib import Path

import pytest
import tornado.httpclient
import tornado.websocket
from conftest import make_notebook
from jupyter_server.auth import Authorizer
from model_keys import CLUSTER_KEYS, STEP_RUN_KEYS, SUMMARY_KEYS
from pytest_jupyter.jupyter_server import *  # noqa: F403 - the jp_* fixtures, for this module only
from traitlets.config import Config, Configurable

from nbscale.errors import NbscaleError
from nbscale.jupyter_ext import errors, load_server_extension
from nbscale.jupyter_ext.handlers import NbscaleHandler, error_body, handlers, status_for
from nbscale.kernels.runner import RunOptions, default_run_store, run_notebook

FINISHED = {"succeeded", "failed", "cancelled"}

NOTEBOOK = [
    ("alpha = 2", ["parameters"]),
    ("a = alpha + 1\nprint('a is', a)", ["step:first"]),
    ("b = a * 10\nb", ["step:second", "metrics"]),
]


@pytest.fixture
def jp_server_config():
    return {"ServerApp": {"jpserver_extensions": {"nbscale.jupyter_ext": True}},
            "Nbscale": {"default_engine": "local", "cancel_grace": 5.0}}


@pytest.fixture
def aio(jp_asyncio_loop):
    return jp_asyncio_loop.run_until_complete


@pytest.fixture
def token(jp_serverapp):
    return jp_serverapp.identity_provider.token


@pytest.fixture
def manager(jp_serverapp, aio):
    manager = jp_serverapp.web_app.settings["nbscale_manager"]
    manager.events.sample_interval_s = 0.25
    yield manager
    aio(manager.close())


class Api:
    """jp_fetch with JSON in and out; keeps every body it saw, to check no token leaks."""

    def __init__(self, jp_fetch, aio):
        self.jp_fetch, self.aio, self.seen = jp_fetch, aio, []

    def call(self, method, endpoint, params=None, body=None, headers=None):
        # a cluster start can take 20-30 s on a loaded machine: past jp_fetch's default 20 s
        kwargs = {"method": method, "raise_error": False, "headers": headers, "request_timeout": 120}
        if body is not None:
            kwargs["body"] = body if isinstance(body, (str, bytes)) else json.dumps(body)
        elif method == "POST":
            kwargs["body"] = ""
        response = self.aio(self.jp_fetch("nbscale", "api", *endpoint.split("/"), params=params, **kwargs))
        text = response.body.decode() if response.body else ""
        self.seen.append(text)
        self.seen.extend(f"{k}: {v}" for k, v in response.headers.get_all() if k.lower() != "set-cookie")
        is_json = "json" in response.headers.get("Content-Type", "")
        return response.code, (json.loads(text) if text and is_json else text)

    def get(self, endpoint, **params):
        return self.call("GET", endpoint, params=params)

    def post(self, endpoint, body, **params):
        return self.call("POST", endpoint, params=params, body=body)

    def delete(self, endpoint, **params):
        return self.call("DELETE", endpoint, params=params)

    def wait_run(self, path, run_id, until=FINISHED, timeout=60.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code, detail = self.get(f"runs/{run_id}", path=path)
            assert code == 200, detail
            if until(detail) if callable(until) else detail["status"] in until:
                return detail
            self.aio(_sleep(0.05))
        raise AssertionError(f"run {run_id} stuck at {detail['status']}")


async def _sleep(seconds):
    import asyncio

    await asyncio.sleep(seconds)


@pytest.fixture
def api(jp_fetch, aio, manager, token):
    api = Api(jp_fetch, aio)
    yield api
    assert token and not any(token in text for text in api.seen), "the server token leaked into a response"


@pytest.fixture
def nb(jp_root_dir):
    return make_notebook(jp_root_dir, NOTEBOOK, name="nb")


@pytest.fixture
def raw(aio, http_server_client, jp_base_url):
    """Requests with no credentials but those given (tornado's AsyncHTTPClient against the server)."""

    def fetch(endpoint, method="GET", body=None, headers=None, params=None):
        return _raw(aio, http_server_client.get_http_port(), jp_base_url, endpoint, method, body, headers, params)

    return fetch


def _raw(aio, jp_http_port, jp_base_url, endpoint, method="GET", body=None, headers=None, params=None):
    url = f"http://127.0.0.1:{jp_http_port}{jp_base_url}nbscale/api/{endpoint}"
    if params:
        url += "?" + urllib.parse.urlencode(params)

    async def fetch():  # the client and its futures belong to the loop `aio` runs, not to an older one
        client = tornado.httpclient.AsyncHTTPClient()
        return await client.fetch(url, method=method, body=body, headers=headers, raise_error=False,
                                  allow_nonstandard_methods=True)

    return aio(fetch())


async def _websocket(url):
    """Open a websocket and close it again, inside the test's loop (an earlier test's asyncio.run
    may have left this thread without a current loop)."""
    connection = await tornado.websocket.websocket_connect(url)
    connection.close()
    return True


def http_endpoints() -> list[tuple[str, str]]:
    """(method, endpoint) for every HTTP method of every route the extension registers (the
    websocket's own check is tested below), each path parameter filled with "abc": a new endpoint
    is in the credentials test the moment it is registered."""
    found = []
    for pattern, handler in handlers("/"):
        if not issubclass(handler, NbscaleHandler):
            continue
        endpoint = re.sub(r"\([^)]*\)", "abc", pattern.split("/nbscale/api/", 1)[1]).rstrip("$")
        found += [(method.upper(), endpoint) for method in ("get", "post", "put", "patch", "delete")
                  if method in vars(handler) or any(method in vars(base) for base in handler.__mro__[1:]
                                                    if issubclass(base, NbscaleHandler))]
    return found


ENDPOINTS = http_endpoints()


def test_the_credentials_test_covers_every_endpoint():
    assert {("GET", "compare"), ("GET", "runs/abc/steps/abc"), ("POST", "kfp/submit")} <= set(ENDPOINTS)
    assert len(ENDPOINTS) >= 12


def test_every_endpoint_refuses_requests_without_credentials(raw, aio, jp_http_port, jp_base_url, nb, manager, token):
    for method, endpoint in ENDPOINTS:
        body = json.dumps({"path": "nb.ipynb", "action": "start"}) if method == "POST" else None
        response = raw(endpoint, method, body, params={"path": "nb.ipynb"})
        assert response.code == 403, (method, endpoint, response.code)
        assert "error" in json.loads(response.body), (method, endpoint)
        assert token not in response.body.decode()
    # a wrong token is no better
    response = raw("cluster", headers={"Authorization": "token nope"})
    assert response.code == 403
    with pytest.raises(tornado.httpclient.HTTPClientError) as err:
        aio(_websocket(f"ws://127.0.0.1:{jp_http_port}{jp_base_url}nbscale/api/events?path=nb.ipynb"))
    assert err.value.code == 403
    # the panel's way: the token in the websocket URL
    url = f"ws://127.0.0.1:{jp_http_port}{jp_base_url}nbscale/api/events?path=nb.ipynb&token={token}"
    assert aio(_websocket(url))
    assert manager.runs.active() == [] and not (nb.parent / ".nbscale").exists()


def test_xsrf_is_enforced_for_cookie_authentication(raw, api, nb, token):
    first = raw("cluster", headers={"Authorization": f"token {token}"})
    assert first.code == 200
    login = [c.split(";")[0] for c in first.headers.get_list("Set-Cookie") if c.startswith("username-")]
    assert login, first.headers
    cookie = {"Cookie": login[0]}
    # the cookie authenticates a GET ...
    assert raw("cluster", headers=cookie).code == 200
    # ... but a POST or DELETE without the XSRF token is refused
    bad = json.dumps({"action": "scale", "n": -1})
    for method, endpoint, body in (("POST", "cluster", bad), ("POST", "runs", json.dumps({"path": "nb.ipynb"})),
                                   ("DELETE", "runs/abc", None)):
        response = raw(endpoint, method, body, headers=cookie, params={"path": "nb.ipynb"})
        assert response.code == 403, (method, endpoint)
        assert "xsrf" in json.loads(response.body)["error"].lower()
    # with the XSRF cookie and header it gets through to the handler (which rejects n = -1)
    xsrf = "0123456789abcdef0123456789abcdef"
    headers = {"Cookie": f"{login[0]}; _xsrf={xsrf}", "X-XSRFToken": xsrf}
    response = raw("cluster", "POST", bad, headers=headers)
    assert response.code == 400 and "'n'" in json.loads(response.body)["error"]
    assert not (nb.parent / ".nbscale").exists()


def test_a_notebook_whose_state_folder_links_out_of_the_root_is_refused(api, jp_root_dir, tmp_path):
    make_notebook(jp_root_dir, NOTEBOOK, name="nb")
    elsewhere = tmp_path / "victim"
    elsewhere.mkdir()
    (jp_root_dir / ".nbscale").symlink_to(elsewhere)
    code, body = api.post("runs", {"path": "nb.ipynb", "engine": "local"})
    assert code == 403 and "links outside the server's root" in body["error"]
    code, body = api.call("GET", "runs", params={"path": "nb.ipynb"})
    assert code == 403
    assert list(elsewhere.iterdir()) == [], "nothing was written there"

def test_cluster_actions_refuse_a_root_state_folder_linking_out_of_the_root(api, jp_root_dir, tmp_path):
    # starting the warm cluster appends to the root's .nbscale/warm-cluster.log (and writes its info)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (jp_root_dir / ".nbscale").mkdir()
    (jp_root_dir / ".nbscale" / "warm-cluster.log").symlink_to(victim)
    code, body = api.post("cluster", {"action": "start", "n": 1})
    assert code == 403, body
    assert body["error"] == ".nbscale/warm-cluster.log in the server's root links outside the server's root directory"
    assert api.get("cluster")[0] == 403
    assert victim.read_text() == "precious\n"


def test_kfp_yaml_reads_no_project_file_above_the_root_nor_names_its_path(api, nb, jp_root_dir):
    above = jp_root_dir.parent / "pyproject.toml"
    above.write_text('[tool.nbscale.kfp]\nbase_image = "above-the-root:1"\n')
    code, text = api.get("kfp/yaml", path="nb.ipynb")
    assert code == 200 and "above-the-root:1" not in text
    (jp_root_dir / "pyproject.toml").write_text("[tool.nbscale.kfp]\nbogus = 1\n")
    code, body = api.get("kfp/yaml", path="nb.ipynb")
    assert code == 400 and body["error"].startswith("pyproject.toml [tool.nbscale.kfp]: unknown key 'bogus'")
    assert str(jp_root_dir) not in body["error"]


def test_paths_outside_the_root_are_refused(api, jp_root_dir, tmp_path, aio, jp_ws_fetch):
    outside = make_notebook(tmp_path, NOTEBOOK, name="outside")
    make_notebook(jp_root_dir, NOTEBOOK, name="nb")
    for path in ("../outside.ipynb", str(outside), "sub/../../outside.ipynb", "/etc/passwd.ipynb"):
        for method, endpoint in (("GET", "pipeline"), ("GET", "runs"), ("GET", "metrics"), ("GET", "runs/abc"),
                                 ("DELETE", "runs/abc"), ("GET", "kfp/yaml")):
            code, body = api.call(method, endpoint, params={"path": path})
            assert code == 403 and body == {"error": "path is outside the server's root directory"}, (endpoint, path)
        for endpoint in ("runs", "kfp/submit"):
            code, body = api.post(endpoint, {"path": path, "engine": "local"})
            assert code == 403 and "outside" in body["error"]
        with pytest.raises(tornado.httpclient.HTTPClientError) as err:
            aio(jp_ws_fetch("nbscale", "api", "events", params={"path": path}))
        assert err.value.code == 403
    assert not (tmp_path / ".nbscale").exists()


def test_pipeline_endpoint(api, nb, jp_root_dir):
    code, model = api.get("pipeline", path="nb.ipynb")
    assert code == 200
    assert set(model) == {"notebook", "name", "steps", "edges", "parameters", "diagnostics", "metrics"}
    assert model["notebook"] == "nb.ipynb" and model["name"] == "nb"
    assert [s["name"] for s in model["steps"]] == ["first", "second"]
    assert set(model["steps"][0]) == {"name", "cells", "inputs", "outputs", "resources", "hash"}
    assert model["edges"] == [{"from": "first", "to": "second", "names": ["a"]}]
    assert model["parameters"] == [{"name": "alpha", "type": "int", "default": 2}]
    assert model["metrics"] == {"step": "second", "names": ["b"]}
    make_notebook(jp_root_dir, [("x = nope + 1", ["step:a"])], name="broken")
    code, model = api.get("pipeline", path="broken.ipynb")
    assert code == 200 and model["diagnostics"][0]["code"] == "undefined-name"
    assert api.get("pipeline", path="missing.ipynb") == (404, {"error": "no notebook missing.ipynb"})
    code, body = api.get("pipeline")
    assert code == 400 and "path" in body["error"]


def test_a_run_started_over_http_is_in_the_cli_run_store_and_back(api, nb):
    code, summary = api.post("runs", {"path": "nb.ipynb", "parameters": {"alpha": 4}, "use_cache": False})
    assert code == 202, summary
    assert set(summary) == SUMMARY_KEYS and summary["status"] in ("pending", "running")
    assert summary["engine"] == "local" and summary["notebook"] == "nb.ipynb"  # the configured default engine
    detail = api.wait_run("nb.ipynb", summary["run_id"])
    assert detail["status"] == "succeeded", detail
    assert set(detail) == SUMMARY_KEYS | {"steps", "metrics", "error", "regressions", "cost"}
    assert all(set(s) == STEP_RUN_KEYS for s in detail["steps"])
    assert [s["status"] for s in detail["steps"]] == ["succeeded", "succeeded"]
    assert detail["steps"][0]["stdout"] == "a is 5\n" and detail["metrics"] == {"b": 50.0}
    stored = default_run_store(nb).get_run(summary["run_id"])  # what `nbscale runs/show` read
    assert stored["status"] == "succeeded" and stored["parameters"] == {"alpha": 4}
    # and a run made with the CLI's code path shows up over HTTP
    cli = run_notebook(nb, {"alpha": 1}, RunOptions(engine="local"))
    code, listed = api.get("runs", path="nb.ipynb", limit="10")
    assert code == 200 and [r["run_id"] for r in listed["runs"]] == [cli.run_id, summary["run_id"]]
    assert all(set(r) == SUMMARY_KEYS for r in listed["runs"])
    code, detail = api.get(f"runs/{cli.run_id[:8]}", path="nb.ipynb")
    assert code == 200 and detail["run_id"] == cli.run_id and detail["metrics"] == {"b": 20.0}
    code, metrics = api.get("metrics", path="nb.ipynb")
    assert code == 200 and metrics["names"] == ["b"]
    assert [r["metrics"] for r in metrics["runs"]] == [{"b": 50.0}, {"b": 20.0}]
    assert all(set(r) == {"run_id", "created", "status", "metrics"} for r in metrics["runs"])
    assert api.delete(f"runs/{cli.run_id}", path="nb.ipynb")[0] == 409  # already finished


def test_bad_requests_are_json_errors(api, nb, jp_root_dir):
    make_notebook(jp_root_dir, [("x = nope + 1", ["step:a"])], name="broken")
    code, body = api.post("runs", "{not json")
    assert code == 400 and body == {"error": "the request body is not JSON"}
    assert api.post("runs", [1, 2])[0] == 400
    code, body = api.post("runs", {"path": "nb.ipynb", "engine": "warp"})
    assert code == 400 and "unknown engine" in body["error"]
    code, body = api.post("runs", {"path": "nb.ipynb", "parameters": {"beta": 1}})
    assert code == 400 and "unknown parameter" in body["error"]
    code, body = api.post("runs", {"path": "broken.ipynb"})
    assert code == 400 and body["detail"]["diagnostics"][0]["code"] == "undefined-name"
    assert api.get("runs", path="nb.ipynb", limit="lots")[0] == 400
    assert api.get("runs", path="nb.ipynb", limit="0")[0] == 400
    assert api.get("runs", path="nb.ipynb", limit="²")[0] == 400  # a digit to str.isdigit, not to int()
    assert api.get("runs/0123abcd", path="nb.ipynb") == (404, {"error": "no run 0123abcd"})
    code, body = api.get("runs/" + "f" * 10_000, path="nb.ipynb")  # (echoed whole)
    assert code == 404 and body["error"].startswith("no run fff") and len(body["error"]) < 1100
    for body in ({"action": "explode"}, {"action": "scale", "n": -1}, {"action": "scale"},
                 {"action": "scale", "n": True}, {"action": "start", "n": "2"}, {"action": "connect", "address": ""},
                 {"action": "adapt", "minimum": 3, "maximum": 2}, {"action": "adapt", "minimum": 0, "maximum": 0}):
        code, answer = api.post("cluster", body)
        assert code == 400 and answer["error"], body
    for body in ({"action": "scale", "n": 2**64}, {"action": "start", "n": 257}, {"action": "adapt", "minimum": 1,
                                                                                   "maximum": 10**30}):
        # (checked before anything is sent: Dask's messages cannot carry 2**64, and it came back as a 500)
        assert api.post("cluster", body)[0] == 400, body
    assert api.post("runs", {"path": "\ud800.ipynb"})[0] == 400  # (a lone surrogate: a 500)
    assert api.post("runs", {"path": "nb.ipynb", "engine": 3})[1] == {"error": "'engine' must be a string"}
    assert api.post("runs", {"path": "nb.ipynb", "use_cache": "yes"})[0] == 400
    code, body = api.post("runs", {"path": 3})
    assert code == 400 and body == {"error": "missing 'path': a notebook path relative to the server's root"}
    code, body = api.post("kfp/submit", {"path": "nb.ipynb", "parameters": [1]})
    assert code == 400 and "parameters" in body["error"]
    deep = '{"path": "nb.ipynb", "parameters": {"alpha": ' + "[" * 100_000 + "]" * 100_000 + "}}"
    assert api.post("runs", deep) == (400, {"error": "the request body is nested too deeply"})


def test_parameter_values_no_file_can_hold_are_refused_and_change_nothing(api, manager, jp_root_dir):
    from kfp_stand_in import KfpStandIn  # a KFP API server cannot run here: tests/kfp_stand_in.py stands in

    from nbscale.jupyter_ext.kfp import KfpService

    make_notebook(jp_root_dir, [("label = 'a'\nrate = 0.5", ["parameters"]), ("x = label * 2", ["step:a"])],
                  name="typed")
    with KfpStandIn() as stand_in:
        manager.kfp = KfpService(stand_in.url)
        for raw_value, said in (('"\\ud800"', "not valid Unicode"), ("1e999", "finite number"),
                                ("NaN", "finite number")):
            name = "label" if "ud800" in raw_value else "rate"
            body = '{"path": "typed.ipynb", "parameters": {"' + name + '": ' + raw_value + "}}"
            for endpoint in ("runs", "kfp/submit"):
                code, answer = api.post(endpoint, body)
                assert code == 400 and said in answer["error"], (endpoint, raw_value, code, answer)
        assert stand_in.runs == []
    assert not (jp_root_dir / ".nbscale").exists()
    code, run = api.post("runs", {"path": "typed.ipynb"})  # the store is fine: the next run starts
    assert code == 202, run


def test_each_error_class_has_one_status_and_all_are_nbscale_errors():
    assert [status_for(cls("x")) for cls in (errors.InvalidInput, errors.NotAllowed, errors.NotFound,
                                             errors.Conflict, errors.Unavailable, errors.UpstreamError,
                                             errors.ExtensionError)] == [400, 403, 404, 409, 501, 502, 500]
    assert issubclass(errors.ExtensionError, NbscaleError)


def test_cancel_over_http(api, jp_root_dir):
    make_notebook(jp_root_dir, [("import time", ["imports"]), ("a = 1", ["step:quick"]),
                                ("time.sleep(60)\nb = a", ["step:slow"])], name="slow")
    code, summary = api.post("runs", {"path": "slow.ipynb", "engine": "local"})
    assert code == 202
    run_id = summary["run_id"]
    api.wait_run("slow.ipynb", run_id, until=lambda d: d["steps"][1]["status"] == "running")
    code, answer = api.delete(f"runs/{run_id}", path="slow.ipynb")
    assert code == 202 and set(answer) == SUMMARY_KEYS and answer["run_id"] == run_id
    detail = api.wait_run("slow.ipynb", run_id, timeout=15)
    assert detail["status"] == "cancelled"
    assert [s["status"] for s in detail["steps"]] == ["succeeded", "cancelled"]
    code, body = api.delete(f"runs/{run_id}", path="slow.ipynb")
    assert code == 409 and "already cancelled" in body["error"]


def test_cluster_start_run_on_it_scale_adapt_close(api, jp_root_dir, aio):
    assert api.get("cluster") == (200, {"status": "none"})
    code, model = api.post("cluster", {"action": "start", "n": 1})
    assert code == 200, model
    assert set(model) == CLUSTER_KEYS and model["status"] == "running" and model["kind"] == "LocalCluster"
    assert len(model["workers"]) == 1 and model["threads"] == 1 and model["memory_limit"] > 0
    assert set(model["workers"][0]) == {"address", "name", "nthreads", "memory_used", "memory_limit", "cpu"}
    assert model["adaptive"] is None
    if importlib.util.find_spec("bokeh") is None:
        assert model["dashboard_link"] is None
    address = model["scheduler_address"]
    assert api.post("cluster", {"action": "start"})[0] == 409  # one cluster per server
    # a Dask run started from the panel runs on the server's cluster
    make_notebook(jp_root_dir, [("from distributed import get_worker\nprint(get_worker().scheduler.address)",
                                 ["step:where"])], name="where")
    code, summary = api.post("runs", {"path": "where.ipynb", "engine": "dask"})
    assert code == 202, summary
    detail = api.wait_run("where.ipynb", summary["run_id"])
    assert detail["status"] == "succeeded", detail
    assert detail["steps"][0]["stdout"].strip() == address
    code, model = api.post("cluster", {"action": "scale", "n": 2})
    assert code == 200 and len(model["workers"]) == 2 and model["threads"] == 2
    code, model = api.post("cluster", {"action": "adapt", "minimum": 1, "maximum": 3})
    assert code == 200 and model["adaptive"] == {"minimum": 1, "maximum": 3}
    code, model = api.post("cluster", {"action": "scale", "n": 2})
    assert code == 200 and model["adaptive"] is None  # scaling by hand ends adaptive mode
    code, model = api.get("cluster")
    assert code == 200 and model["scheduler_address"] == address
    assert api.post("cluster", {"action": "close"}) == (200, {"status": "none"})
    assert api.get("cluster") == (200, {"status": "none"})
    assert api.post("cluster", {"action": "scale", "n": 1})[0] == 409


def test_websocket_pushes_step_events_and_cluster_samples(api, nb, jp_root_dir, aio, jp_ws_fetch, token):
    make_notebook(jp_root_dir, [("import time", ["imports"]), ("a = 1", ["step:one"]),
                                ("time.sleep(1.5)\nb = a + 1", ["step:two"])], name="ws")
    ws = aio(jp_ws_fetch("nbscale", "api", "events", params={"path": "ws.ipynb"}))
    other = aio(jp_ws_fetch("nbscale", "api", "events", params={"path": "nb.ipynb"}))
    code, summary = api.post("runs", {"path": "ws.ipynb"})
    assert code == 202
    messages, arrivals = [], []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        text = aio(ws.read_message())
        assert text is not None and token not in text
        event = json.loads(text)
        messages.append(event)
        arrivals.append((time.monotonic(), event["type"]))
        if event["type"] == "run" and event.get("status") in FINISHED:
            break
    aio(_close(ws))
    assert messages[-1]["status"] == "succeeded" and messages[-1]["run_id"] == summary["run_id"]
    steps = [(e["step"], e["status"]) for e in messages if e["type"] == "step"]
    assert steps.index(("one", "running")) < steps.index(("one", "succeeded")) < steps.index(("two", "running"))
    assert ("two", "succeeded") in steps
    for event in messages:
        assert set(event) <= {"type", "run_id", "step", "status", "payload"}
    finished = next(e for e in messages if e["type"] == "step" and e["status"] == "succeeded")
    assert finished["payload"]["duration_s"] is not None and finished["payload"]["error"] is None
    samples = [t for t, kind in arrivals if kind == "cluster"]
    assert len(samples) >= 2 and max(b - a for a, b in zip(samples, samples[1:])) < 1.0
    assert all(e["payload"] == {"status": "none"} for e in messages if e["type"] == "cluster")
    # a subscriber of another notebook got cluster samples but none of this run's events
    seen_other = []
    while True:
        try:
            text = aio(_read_within(other, 0.3))
        except TimeoutError:
            break
        if text is None:
            break
        seen_other.append(json.loads(text))
    aio(_close(other))
    assert seen_other and all(e["type"] == "cluster" for e in seen_other)


async def _close(connection):
    connection.close()  # in the test's loop: this thread may have no current loop of its own


async def _read_within(ws, seconds):
    import asyncio

    return await asyncio.wait_for(ws.read_message(), seconds)


def test_kfp_yaml_download_and_submit(api, nb, jp_root_dir):
    code, text = api.get("kfp/yaml", path="nb.ipynb")
    assert code == 200, text
    assert text.startswith("# PIPELINE DEFINITION") and "pipelineInfo" in text
    make_notebook(jp_root_dir, [("x = nope + 1", ["step:a"])], name="broken")
    code, body = api.get("kfp/yaml", path="broken.ipynb")
    assert code == 400 and "error" in body
    code, body = api.post("kfp/submit", {"path": "nb.ipynb", "experiment": 3})
    assert code == 400 and "experiment" in body["error"]


def test_kfp_yaml_is_an_attachment(api, nb, jp_fetch, aio):
    response = aio(jp_fetch("nbscale", "api", "kfp", "yaml", params={"path": "nb.ipynb"}))
    assert response.headers["Content-Disposition"] == "attachment; filename=\"nb.yaml\"; filename*=UTF-8''nb.yaml"
    assert response.headers["Content-Type"].startswith("application/yaml")


def test_a_kfp_yaml_download_of_a_notebook_named_in_any_script_names_it(api, nb, jp_fetch, aio, jp_root_dir):
    (jp_root_dir / "日本 é.ipynb").write_text((jp_root_dir / "nb.ipynb").read_text())
    response = aio(jp_fetch("nbscale", "api", "kfp", "yaml", params={"path": "日本 é.ipynb"}))
    assert response.code == 200
    assert response.headers["Content-Disposition"] == (
        "attachment; filename=\"____.yaml\"; filename*=UTF-8''%E6%97%A5%E6%9C%AC%20%C3%A9.yaml")


@pytest.mark.parametrize("jp_server_config", [{
    "ServerApp": {"jpserver_extensions": {"nbscale.jupyter_ext": True}},
    "Nbscale": {"kfp_host": "http://user:s3cret-pass@127.0.0.1:9/"}}])
def test_kfp_submit_to_a_host_with_a_password_is_a_502_without_credentials(api, nb, caplog):
    # (a user name or password in the host URL is never sent: urllib took `user:pw@host` for a host name)
    code, body = api.post("kfp/submit", {"path": "nb.ipynb", "parameters": {}, "experiment": "e", "run_name": "r"})
    assert (code, body) == (502, {"error": "submitting to KFP at http://127.0.0.1:9/ failed; the server log has the "
                                           "reason"})
    assert not any("s3cret" in text for text in api.seen)
    assert "a user name or password in the host URL is not sent anywhere" in caplog.text and "s3cret" not in caplog.text


def test_loading_logs_the_kfp_host_without_credentials(tmp_path):
    messages = []

    class Capture(logging.Handler):
        def emit(self, record):
            messages.append(record.getMessage())

    class WebApp:
        settings = {"base_url": "/"}

        def add_handlers(self, host, handlers):
            self.handlers = handlers

    log = logging.getLogger("test-nbscale-load")
    log.addHandler(Capture())
    log.setLevel(logging.DEBUG)
    server = Configurable(config=Config({"Nbscale": {"kfp_host": "https://user:s3cret-pass@kfp.example.com/",
                                                     "kfp_hosts": ["https://u:s3cret-2@kfp2.example.com"],
                                                     "scheduler_address": "tcp://10.1.1.1:8786"}}))
    server.root_dir, server.log, server.web_app = str(tmp_path), log, WebApp()
    load_server_extension(server)
    manager = server.web_app.settings["nbscale_manager"]
    assert manager.kfp.hosts == ["https://u:s3cret-2@kfp2.example.com"]
    assert manager.kfp.host.startswith("https://user:") and manager.cluster.scheduler_address == "tcp://10.1.1.1:8786"
    assert manager.runs.default_engine == "dask" and manager.notebooks.root == tmp_path.resolve()
    assert [h for _, h in server.web_app.handlers] == [h for _, h in handlers("/")]  # every route, once
    assert any("KFP https://kfp.example.com/, https://kfp2.example.com" in m for m in messages), messages
    assert not any("s3cret" in m for m in messages)


def test_extension_is_listed_in_the_server_config(jp_serverapp):
    assert jp_serverapp.jpserver_extensions.get("nbscale.jupyter_ext") is True
    assert "nbscale_manager" in jp_serverapp.web_app.settings


# --- path errors, a broken run store, KFP endpoints and hostile names ---------------------------------

PATH_ENDPOINTS = [("GET", "pipeline"), ("GET", "runs"), ("POST", "runs"), ("GET", "runs/abc"), ("DELETE", "runs/abc"),
                  ("GET", "metrics"), ("GET", "kfp/yaml"), ("POST", "kfp/submit"), ("GET", "events")]


def _bad_path(kind, root, outside):
    if kind == "symlink loop":
        (root / "loop-a.ipynb").symlink_to("loop-b.ipynb")
        (root / "loop-b.ipynb").symlink_to("loop-a.ipynb")
        return "loop-a.ipynb", "symbolic links loop"
    if kind == "directory loop":
        (root / "d1").symlink_to("d2")
        (root / "d2").symlink_to("d1")
        return "d1/nb.ipynb", "symbolic links loop"
    if kind == "5000 characters":
        return "a/" * 2500 + "nb.ipynb", "too long"
    if kind == "300-character name":
        return "x" * 300 + ".ipynb", "too long"
    if kind == "NUL byte":
        return "nb\0.ipynb", ""  # a query argument loses it (tornado drops control characters): 404 there
    (root / "escape").symlink_to(outside, target_is_directory=True)
    return "escape/outside.ipynb", "outside the server's root"


@pytest.mark.parametrize("kind", ["symlink loop", "directory loop", "5000 characters", "300-character name",
                                  "NUL byte", "symlink out of the root"])
def test_every_path_error_is_a_4xx_with_a_message(kind, api, nb, jp_root_dir, tmp_path, aio, jp_ws_fetch):
    make_notebook(tmp_path, NOTEBOOK, name="outside")
    path, says = _bad_path(kind, jp_root_dir, tmp_path)
    for method, endpoint in PATH_ENDPOINTS:
        if endpoint == "events":
            with pytest.raises(tornado.httpclient.HTTPClientError) as err:
                aio(jp_ws_fetch("nbscale", "api", "events", params={"path": path}))
            assert 400 <= err.value.code < 500, (kind, endpoint, err.value.code)
            continue
        if method == "POST":
            code, body = api.post(endpoint, {"path": path, "engine": "local"})
        else:
            code, body = api.call(method, endpoint, params={"path": path})
        assert 400 <= code < 500 and body["error"], (kind, method, endpoint, code, body)
        assert says in body["error"] or (kind == "NUL byte" and method != "POST"), (kind, endpoint, body)
        assert len(body["error"]) < 400 and str(jp_root_dir) not in body["error"]
    assert not (tmp_path / ".nbscale").exists()


def test_a_corrupt_run_store_is_an_answer_not_a_500(api, nb):
    """Garbage in .nbscale/runs.sqlite: the run store says what is wrong (needs kernels/runstore.py's
    RunStoreError for a corrupt file; a raw sqlite3 error would be a 500 here)."""
    store = nb.parent / ".nbscale" / "runs.sqlite"
    store.parent.mkdir()
    store.write_bytes(b"this is not a database" * 200)
    for endpoint in ("runs", "metrics"):
        code, body = api.get(endpoint, path="nb.ipynb")
        assert code != 500 and 400 <= code < 600, (endpoint, code, body)
        assert "runs.sqlite" in body["error"], (endpoint, body)
        assert str(nb.parent) not in body["error"] and os.path.realpath(nb.parent) not in body["error"]
        assert ".nbscale/runs.sqlite" in body["error"], "named relative to the server's root"


def test_kfp_submit_needs_a_configured_endpoint_not_the_notebooks(api, manager, jp_root_dir, monkeypatch):
    """Two KFP API stand-ins (tests/kfp_stand_in.py): the one a notebook names, which must hear nothing,
    and the configured one, whose error answer must not reach the browser."""
    from kfp_stand_in import API, KfpStandIn

    from nbscale.jupyter_ext.kfp import KfpService

    monkeypatch.setenv("NBSCALE_KFP_TOKEN", "tok-SECRET-kfp")
    with KfpStandIn() as named, KfpStandIn() as configured:
        make_notebook(jp_root_dir, NOTEBOOK, name="named", metadata={"nbscale": {"kfp": {"host": named.url}}})
        code, body = api.post("kfp/submit", {"path": "named.ipynb"})
        assert code == 409 and body["error"] == "no KFP endpoint configured for this server (c.Nbscale.kfp_host)"
        manager.kfp = KfpService(configured.url)
        code, body = api.post("kfp/submit", {"path": "named.ipynb", "host": named.url})
        assert code == 403 and "not one this server submits to" in body["error"]
        code, result = api.post("kfp/submit", {"path": "named.ipynb"})
        assert code == 200 and len(configured.runs) == 1, result
        assert "ignored the KFP host" in result["warnings"][0]
        configured.fail[("GET", API + "/healthz")] = (500, {"message": "INTERNAL-DETAIL of http://10.1.2.3/"})
        code, body = api.post("kfp/submit", {"path": "named.ipynb"})
        assert (code, body) == (502, {"error": f"KFP at {configured.url} answered 500"})
        assert named.requests == []
    assert not any("INTERNAL-DETAIL" in text or "tok-SECRET-kfp" in text for text in api.seen)


@pytest.mark.parametrize("where", ["name", "pipeline_name"])
@pytest.mark.parametrize("payload", [
    'x""";import pathlib;pathlib.Path(r"{s}").write_text("ran");"""',
    'x"""\nimport pathlib\npathlib.Path(r"{s}").write_text("ran")\n"""',
    "x''';import pathlib;pathlib.Path(r'{s}').write_text('ran');'''",
])
def test_kfp_yaml_of_a_hostile_name_runs_no_code_in_the_server(where, payload, api, jp_root_dir, tmp_path):
    """GET kfp/yaml needs read permission only: a name that breaks out of a string in the generated
    module must not run in the server (relies on compiler/targets/kfp writing names as literals)."""
    sentinel = tmp_path / "sentinel"
    name = payload.format(s=sentinel)
    metadata = {"nbscale": {"name": name} if where == "name" else {"kfp": {"pipeline_name": name}}}
    make_notebook(jp_root_dir, NOTEBOOK, name="hostile", metadata=metadata)
    code, body = api.get("kfp/yaml", path="hostile.ipynb")
    assert code in (200, 400), body
    assert not sentinel.exists(), "the notebook's name ran as code in the server"


class NoExecute(Authorizer):
    """A deployment's authorizer that lets a user read but not run code."""

    def is_authorized(self, handler, user, action, resource):
        return action != "execute"


class TestAUserWhoMayNotExecute:
    @pytest.fixture
    def jp_server_config(self):
        return {"ServerApp": {"jpserver_extensions": {"nbscale.jupyter_ext": True}, "authorizer_class": NoExecute},
                "Nbscale": {"default_engine": "local"}}

    def test_may_neither_run_nor_submit_to_kfp_but_may_read(self, api, manager, nb):
        from kfp_stand_in import KfpStandIn  # a KFP API server cannot run here: tests/kfp_stand_in.py stands in

        from nbscale.jupyter_ext.kfp import KfpService

        with KfpStandIn() as stand_in:
            manager.kfp = KfpService(stand_in.url)
            for endpoint in ("runs", "kfp/submit"):
                code, body = api.post(endpoint, {"path": "nb.ipynb"})
                assert code == 403 and "execute" in body["error"], (endpoint, body)
            assert stand_in.runs == []
        assert api.get("runs", path="nb.ipynb")[0] == 200


def test_a_run_started_by_the_server_cannot_read_the_servers_credentials(api, jp_root_dir, monkeypatch):
    for name in ("JUPYTER_TOKEN", "NBSCALE_KFP_TOKEN", "NBSCALE_KFP_COOKIES"):
        monkeypatch.setenv(name, f"SECRET-{name}")
    monkeypatch.setenv("NBSCALE_TEST_PLAIN", "plain")
    make_notebook(jp_root_dir, [(
        "import os\nnames = ['JUPYTER_TOKEN', 'NBSCALE_KFP_TOKEN', 'NBSCALE_KFP_COOKIES', 'NBSCALE_TEST_PLAIN']\n"
        "seen = sum(os.environ.get(n) is not None for n in names)\nseen", ["step:a", "metrics"])], name="env")
    code, summary = api.post("runs", {"path": "env.ipynb", "use_cache": False})
    assert code == 202, summary
    detail = api.wait_run("env.ipynb", summary["run_id"])
    assert detail["status"] == "succeeded" and detail["metrics"] == {"seen": 1}, detail  # the plain one only


def test_an_error_names_paths_under_the_root_relative_to_it_and_no_other_path_is_mangled():
    error = errors.InvalidInput("the run store /srv/nb/d/.nbscale/runs.sqlite is damaged; /srv/nb2/x is not; "
                                "root /srv/nb here")
    assert error_body(error, Path("/srv/nb"))["error"] == (
        "the run store d/.nbscale/runs.sqlite is damaged; /srv/nb2/x is not; root . here")
    assert error_body(error, Path("/"))["error"] == str(error)  # a server serving `/`: nothing to take off


def test_a_body_key_the_endpoint_does_not_take_is_a_400_and_nothing_starts(api, nb, manager):
    """A misspelt option or one only the CLI has was left out without a word, and the run started as
    if it had not been asked for (`"use_cach": false` ran with the cache)."""
    for endpoint, body, said in (
            ("runs", {"path": "nb.ipynb", "engine": "local", "use_cach": False}, "'use_cach'"),
            ("runs", {"path": "nb.ipynb", "options": {"scheduler": "tcp://elsewhere:8786"}}, "'options'"),
            ("runs", {"path": "nb.ipynb", "junk": "x" * 1_000_000}, "'junk'"),
            ("kfp/submit", {"path": "nb.ipynb", "parameter": {"alpha": 3}}, "'parameter'"),
            ("cluster", {"action": "scale", "n": 1, "workers": 4}, "'workers'"),
            ("cluster", {"action": "close", "force": True}, "'force'")):
        code, answer = api.post(endpoint, body)
        assert code == 400 and said in answer["error"], (endpoint, body, code, answer)
        assert len(answer["error"]) < 300 and "Traceback" not in answer["error"]
    assert manager.runs.active() == [] and not (nb.parent / ".nbscale").exists()
    assert api.get("cluster") == (200, {"status": "none"})
    code, summary = api.post("runs", {"path": "nb.ipynb", "engine": "local", "parameters": {}, "use_cache": True})
    assert code == 202, summary  # every key the panel sends is taken
    api.wait_run("nb.ipynb", summary["run_id"])


def test_a_query_path_is_taken_as_given_not_stripped_to_another_notebooks(api, jp_root_dir):
    make_notebook(jp_root_dir, [("x = 1", ["step:plain"])], name="sp")
    make_notebook(jp_root_dir, [("y = 1", ["step:spaced"])], name=" sp")
    code, model = api.get("pipeline", path=" sp.ipynb")
    assert code == 200 and model["notebook"] == " sp.ipynb" and [s["name"] for s in model["steps"]] == ["spaced"]
    code, body = api.get("pipeline", path="sp.ipynb\n")
    assert code == 400 and "not a notebook" in body["error"]
