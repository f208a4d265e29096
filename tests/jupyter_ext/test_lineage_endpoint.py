"""GET /nbscale/api/runs/<id>/lineage?name=NAME in a real jupyter_server: the lineage model of a
metric of a CLI run (local engine) with no server path in it; 404 for an unknown run or name (the
names listed), 400 without a name, 403 without a token."""

from __future__ import annotations

import json

import pandas
import pytest
from lineage_notebook import helpers_module, lineage_notebook
from server_fixtures import *  # noqa: F403 - the jp_* fixtures and the extension's, for this module only

from nbscale.kernels.fingerprints import file_state
from nbscale.kernels.runner import RunOptions, run_notebook


@pytest.fixture
def get(jp_fetch, aio, manager):
    def fetch(run_id, **params):
        async def call():
            return await jp_fetch("nbscale", "api", "runs", run_id, "lineage", params=params, method="GET",
                                  raise_error=False)

        response = aio(call())
        return response.code, json.loads(response.body)

    return fetch


@pytest.fixture
def ran(jp_root_dir):
    nb = lineage_notebook(jp_root_dir)
    result = run_notebook(nb, {}, options=RunOptions(engine="local"))
    assert result.ok, result.steps
    return nb, result.run_id


def test_the_lineage_of_a_metric(get, ran, jp_root_dir):
    nb, run_id = ran
    code, model = get(run_id[:10], path="nb.ipynb", name="score")
    assert code == 200, model
    assert (model["name"], model["kind"], model["step"], model["run"]["id"]) == ("score", "metric", "metrics", run_id)
    assert model["run"]["notebook"] == "nb.ipynb"
    nodes = {n["step"]: n for n in model["nodes"]}
    assert list(nodes) == ["metrics", "evaluate", "count", "feat", "load"]
    assert nodes["load"]["files_read"]["data.csv"] == file_state(str(nb.parent / "data.csv"))["digest"]
    assert nodes["load"]["packages"]["pandas"] == pandas.__version__
    # (every local module loaded counts: in this process, the test's own modules outside the root too)
    module = f"{helpers_module(nb.parent)}.py"
    assert nodes["feat"]["modules"][module] == file_state(str(nb.parent / module))["digest"]
    assert str(jp_root_dir) not in json.dumps(model)  # no server path: files inside the root are relative to it


def test_unknown_runs_and_names_are_404_and_a_missing_name_400(get, ran):
    _, run_id = ran
    code, body = get("f" * 32, path="nb.ipynb", name="score")
    assert code == 404 and "no run" in body["error"]
    code, body = get(run_id, path="nb.ipynb", name="nope")
    assert code == 404 and body["detail"]["names"] == ["df", "double", "n", "score", "total"]
    code, body = get(run_id, path="nb.ipynb")
    assert code == 400 and "'name'" in body["error"]


def test_the_lineage_needs_credentials(get, ran, jp_http_port, jp_base_url, jp_asyncio_loop):
    import tornado.httpclient

    _, run_id = ran
    url = f"http://127.0.0.1:{jp_http_port}{jp_base_url}nbscale/api/runs/{run_id}/lineage?path=nb.ipynb&name=score"

    async def fetch():
        return await tornado.httpclient.AsyncHTTPClient().fetch(url, raise_error=False)

    response = jp_asyncio_loop.run_until_complete(fetch())
    assert response.code == 403 and "data.csv" not in response.body.decode()
