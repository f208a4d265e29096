"""Tests for nbscale.jupyter_ext.suggestions in a real jupyter_server: GET
/nbscale/api/notebooks/suggest proposes step tags with the sources it planned from, never writes
the notebook, refuses paths outside the root, answers a malformed notebook with a clear 400, and
needs credentials like every other endpoint.
"""

from __future__ import annotations

import json
import os
import urllib.parse

import pytest
import tornado.httpclient
from conftest import make_notebook
from server_fixtures import *  # noqa: F403 - the jp_* fixtures and the extension's, for this module only

UNTAGGED = [
    "import time",
    "n = 3",
    "a = [i * 2 for i in range(n)]\nfor _ in a:\n    time.sleep(0)",
    "b = [i * 3 for i in range(n)]\nfor _ in b:\n    time.sleep(0)",
    "total = sum(a) + sum(b)\nprint(total)",
]


@pytest.fixture
def suggest(jp_fetch, aio, manager):
    def fetch(path):
        response = aio(jp_fetch("nbscale", "api", "notebooks", "suggest", params={"path": path}, raise_error=False))
        return response.code, json.loads(response.body.decode())

    return fetch


def test_an_untagged_notebook_gets_parallel_steps_and_its_sources(suggest, jp_root_dir):
    nb = make_notebook(jp_root_dir, UNTAGGED, name="plain")
    written = nb.read_bytes()
    code, body = suggest("plain.ipynb")
    assert code == 200, body
    assert body["path"] == body["notebook"] == "plain.ipynb"
    assert body["cell_count"] == 5
    assert body["sources"] == {str(i): source for i, source in enumerate(UNTAGGED)}
    assert body["roles"] == {"0": "imports", "1": "parameters"}
    steps = {s["name"]: s for s in body["steps"]}
    # the two loops are independent: two parallel steps, joined by the last one
    assert [s["cells"] for s in body["steps"]] == [[2], [3], [4]], body["steps"]
    last = body["steps"][-1]
    assert sorted(last["after"]) == sorted(n for n in steps if n != last["name"])
    assert body["tags"]["2"] == [f"step:{body['steps'][0]['name']}"]
    assert body["critical_path"] < body["total"] and body["speedup"] > 1
    assert str(jp_root_dir) not in json.dumps(body)  # no server paths
    assert nb.read_bytes() == written  # nothing written


def test_a_path_outside_the_root_or_hidden_is_refused(suggest, jp_root_dir):
    outside = jp_root_dir.parent / "outside"
    outside.mkdir(exist_ok=True)
    make_notebook(outside, UNTAGGED, name="secret")
    for path in ("../outside/secret.ipynb", str(outside / "secret.ipynb"), "sub/../../outside/secret.ipynb"):
        code, body = suggest(path)
        assert code == 403, (path, body)
        assert "outside the server's root" in body["error"]
    os.symlink(outside / "secret.ipynb", jp_root_dir / "link.ipynb")
    code, body = suggest("link.ipynb")
    assert code == 403, body
    (jp_root_dir / ".hidden").mkdir()
    make_notebook(jp_root_dir / ".hidden", UNTAGGED, name="h")
    assert suggest(".hidden/h.ipynb")[0] == 403
    assert suggest("missing.ipynb")[0] == 404
    assert suggest("")[0] == 400


@pytest.mark.parametrize("text, says", [
    ("{not json", "not valid JSON"),
    ('{"cells": []}', "not a Jupyter notebook"),
    ('{"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": {"a": 1}}', "plain.ipynb"),
    ('{"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [{"cell_type": "code"}]}', "plain.ipynb"),
    ('[1, 2]', "not a Jupyter notebook"),
])
def test_a_malformed_notebook_is_a_clear_400(suggest, jp_root_dir, text, says):
    (jp_root_dir / "plain.ipynb").write_text(text)
    code, body = suggest("plain.ipynb")
    assert code == 400, body
    assert says in body["error"], body
    assert str(jp_root_dir) not in body["error"]


def test_a_notebook_without_code_or_that_does_not_compile_is_a_400(suggest, jp_root_dir):
    make_notebook(jp_root_dir, [], name="empty")
    code, body = suggest("empty.ipynb")
    assert code == 400 and "no code cells" in body["error"], body
    assert body["error"].startswith("empty.ipynb")
    make_notebook(jp_root_dir, ["x = (", "y = 1"], name="broken")
    code, body = suggest("broken.ipynb")
    assert code == 400, body


def test_the_suggest_endpoint_needs_credentials(suggest, jp_root_dir, aio, http_server_client, jp_base_url):
    make_notebook(jp_root_dir, UNTAGGED, name="plain")
    query = urllib.parse.urlencode({"path": "plain.ipynb"})
    url = f"http://127.0.0.1:{http_server_client.get_http_port()}{jp_base_url}nbscale/api/notebooks/suggest?{query}"

    async def fetch():
        return await tornado.httpclient.AsyncHTTPClient().fetch(url, raise_error=False)

    response = aio(fetch())
    assert response.code == 403
    assert b"sources" not in response.body


def test_a_damaged_run_store_only_means_estimated_times(suggest, jp_root_dir):
    from nbscale.kernels.contract import run_store_path

    nb = make_notebook(jp_root_dir, UNTAGGED, name="plain")
    store = run_store_path(nb)
    store.parent.mkdir(parents=True, exist_ok=True)
    store.write_bytes(b"this is not a SQLite database" * 100)
    code, body = suggest("plain.ipynb")
    assert code == 200, body
    assert body["durations"] == "estimate"


def test_a_notebook_too_big_to_suggest_for_in_the_panel_is_a_400(suggest, jp_root_dir, monkeypatch):
    # an 800-cell notebook took 94 s, in the server's shared thread pool: eight such requests held
    # every other request of the panel for a minute, and the server could not shut down meanwhile
    from nbscale.jupyter_ext import suggestions

    monkeypatch.setattr(suggestions, "MAX_CODE_CELLS", 4)
    make_notebook(jp_root_dir, UNTAGGED, name="big")
    code, body = suggest("big.ipynb")
    assert code == 400 and body["error"] == ("big.ipynb has 5 code cells: the panel suggests steps for up to 4 "
                                             "(run `nbscale suggest` in a terminal)")
