"""GET /nbscale/api/compare in a real jupyter_server: runs from the CLI side by side, unknown runs a
404 that names them, runs of another notebook flagged with API paths; metric directions shipped
with the metrics history.
"""

from __future__ import annotations

import json

import pytest
from conftest import make_notebook
from server_fixtures import *  # noqa: F403 - the jp_* fixtures and the extension's, for this module only

from nbscale.kernels.runner import RunOptions, run_notebook

NOTEBOOK = [
    ("alpha = 2", ["parameters"]),
    ("a = alpha + 1", ["step:first"]),
    ("loss = 10 / a\nuptime = 5", ["step:second"]),
    ("loss\nuptime", ["metrics"]),
]
LOCAL = RunOptions(engine="local")


@pytest.fixture
def get(jp_fetch, aio, manager):
    def fetch(endpoint, **params):
        async def call():  # the request's future made on the loop that runs it (a run may leave none set)
            return await jp_fetch("nbscale", "api", endpoint, params=params, method="GET", raise_error=False)

        response = aio(call())
        return response.code, json.loads(response.body)

    return fetch


@pytest.fixture
def runs(jp_root_dir):
    nb = make_notebook(jp_root_dir, NOTEBOOK, name="nb", metadata={"nbscale": {"metrics": {"uptime": "min"}}})
    return nb, [run_notebook(nb, {"alpha": a}, options=LOCAL).run_id for a in (2, 4)]


def test_compare_two_cli_runs(get, runs):
    _, (first, second) = runs
    code, model = get("compare", path="nb.ipynb", runs=f"{first},{second[:8]}")
    assert code == 200, model
    assert model["notebook"] == "nb.ipynb"
    assert [r["run_id"] for r in model["runs"]] == [first, second]
    assert all(r["notebook"] == "nb.ipynb" and not r["other_notebook"] for r in model["runs"])
    alpha = next(p for p in model["parameters"] if p["name"] == "alpha")
    assert alpha["values"] == [2, 4] and alpha["changed"]
    steps = {s["name"]: s for s in model["steps"]}
    assert steps["first"]["reran"] and steps["first"]["runs"][1]["why"].startswith("its code, the parameters")
    metrics = {m["name"]: m for m in model["metrics"]}
    assert metrics["loss"]["direction"] == "min" and metrics["loss"]["better"] == [None, True]
    assert metrics["uptime"]["direction"] == "min"  # the notebook declares it


def test_unknown_runs_are_a_404_that_names_them(get, runs):
    _, (first, _) = runs
    code, body = get("compare", path="nb.ipynb", runs=f"{first},feedbeef")
    assert code == 404 and "feedbeef" in body["error"] and body["detail"] == {"unknown": ["feedbeef"]}
    code, body = get("compare", path="nb.ipynb", runs="not-hex,zz")
    assert code == 404 and "not-hex" in body["error"]


def test_one_run_is_not_a_comparison(get, runs):
    _, (first, _) = runs
    code, body = get("compare", path="nb.ipynb", runs=first)
    assert code == 400 and "2 to" in body["error"]
    code, body = get("compare", path="nb.ipynb")
    assert code == 400


def test_a_notebook_without_runs_is_a_404(get, jp_root_dir):
    make_notebook(jp_root_dir, NOTEBOOK, name="fresh")
    code, body = get("compare", path="fresh.ipynb", runs="ab,cd")
    assert code == 404 and "no runs of fresh.ipynb" in body["error"]
    assert not (jp_root_dir / ".nbscale").exists()


def test_a_run_of_another_notebook_is_flagged(get, runs, jp_root_dir):
    _, (first, _) = runs
    other = make_notebook(jp_root_dir, NOTEBOOK, name="other")
    other_run = run_notebook(other, options=LOCAL).run_id
    code, model = get("compare", path="nb.ipynb", runs=f"{first},{other_run}")
    assert code == 200, model
    assert [(r["notebook"], r["other_notebook"]) for r in model["runs"]] == [("nb.ipynb", False), ("other.ipynb", True)]
    assert str(jp_root_dir) not in json.dumps(model)  # no absolute server paths


def test_the_metrics_history_ships_each_metrics_direction(get, runs):
    code, model = get("metrics", path="nb.ipynb")
    assert code == 200
    assert model["directions"] == {"loss": "min", "uptime": "min"}


def test_the_comparison_needs_credentials(get, runs, jp_http_port, jp_base_url, jp_asyncio_loop):
    import tornado.httpclient

    _, (first, second) = runs
    url = f"http://127.0.0.1:{jp_http_port}{jp_base_url}nbscale/api/compare?path=nb.ipynb&runs={first},{second}"

    async def fetch():
        return await tornado.httpclient.AsyncHTTPClient().fetch(url, raise_error=False)

    response = jp_asyncio_loop.run_until_complete(fetch())
    assert response.code == 403 and first not in response.body.decode()
