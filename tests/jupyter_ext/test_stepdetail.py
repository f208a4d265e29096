"""Tests for nbscale.jupyter_ext.stepdetail in a real jupyter_server: a real run's step detail
(status, cells with their streams, warnings and figures, input and output sizes) and the image
files endpoint, which serves only the images a step's cells JSON names (no traversal, no symlink,
no other file) with headers under which an SVG runs no script.
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.parse

import pytest
import tornado.httpclient
from conftest import make_notebook
from server_fixtures import *  # noqa: F403 - the jp_* fixtures and the extension's, for this module only

from nbscale.jupyter_ext.errors import NotFound
from nbscale.jupyter_ext.stepdetail import step_detail, step_image
from nbscale.kernels.contract import logs_dir
from nbscale.kernels.runner import RunOptions, run_notebook

NOTEBOOK = [
    ("import warnings\nimport matplotlib.pyplot as plt", ["imports"]),
    ("n = 3", ["parameters"]),
    ("data = list(range(n))\nprint('made', len(data))", ["step:make"]),
    ("warnings.warn('old API', FutureWarning)\nplt.plot(data)\nplt.show()\ntotal = sum(data)\ntotal", ["step:plot"]),
]


@pytest.fixture
def get(jp_fetch, aio, manager):
    def fetch(endpoint, **params):
        response = aio(jp_fetch("nbscale", "api", *endpoint.split("/"), params=params, raise_error=False))
        return response

    return fetch


@pytest.fixture
def ran(jp_root_dir):
    """A real run (local engine) of a notebook whose `plot` step warns and draws a figure."""
    nb = make_notebook(jp_root_dir, NOTEBOOK, name="nb")
    result = run_notebook(nb, {}, RunOptions(engine="local"))
    assert result.status == "succeeded", result.steps
    return nb, result.run_id


def _json(response):
    return json.loads(response.body.decode())


def test_a_steps_detail_has_its_cells_warnings_figure_and_sizes(get, ran):
    nb, run_id = ran
    response = get(f"runs/{run_id[:10]}/steps/plot", path="nb.ipynb")
    assert response.code == 200, response.body
    detail = _json(response)
    assert detail["run_id"] == run_id and detail["name"] == "plot" and detail["status"] == "succeeded"
    assert detail["attempts"] >= 1 and detail["duration_s"] is not None and detail["cached"] is False
    [cell] = detail["cells"]
    assert cell["cell"] == 3
    assert [(w["category"], w["message"]) for w in cell["warnings"]] == [("FutureWarning", "old API")]
    kinds = [o["type"] for o in cell["outputs"]]
    assert "image" in kinds and {"type": "text", "text": "3"} in cell["outputs"]
    assert not any("old API" in o.get("text", "") for o in cell["outputs"])  # the warning is not repeated
    assert detail["inputs"] == [{"name": "data", "from": "make", "bytes": detail["inputs"][0]["bytes"]}]
    assert isinstance(detail["inputs"][0]["bytes"], int) and detail["inputs"][0]["bytes"] > 0
    assert [o["name"] for o in detail["outputs"]] == ["total"] and detail["outputs"][0]["bytes"] > 0
    make = _json(get(f"runs/{run_id}/steps/make", path="nb.ipynb"))
    assert make["cells"][0]["outputs"] == [{"type": "stream", "name": "stdout", "text": "made 3\n"}]


def test_the_figure_a_step_showed_is_served_as_an_image(get, ran):
    nb, run_id = ran
    detail = _json(get(f"runs/{run_id}/steps/plot", path="nb.ipynb"))
    image = next(o for o in detail["cells"][0]["outputs"] if o["type"] == "image")
    response = get(f"runs/{run_id}/steps/plot/files/{image['file']}", path="nb.ipynb")
    assert response.code == 200
    assert response.headers["Content-Type"] == image["mime"] == "image/png"
    assert response.body[:8] == b"\x89PNG\r\n\x1a\n"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in response.headers["Content-Security-Policy"]


def test_an_svg_is_served_sandboxed_and_never_sniffed(get, ran):
    nb, run_id = ran
    folder = logs_dir(nb, run_id)
    svg = "plot-cell3-9.svg"
    (folder / svg).write_text('<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>')
    cells_json = folder / "plot.cells.json"
    data = json.loads(cells_json.read_text())
    data["cells"][0]["outputs"].append({"type": "image", "mime": "image/svg+xml", "file": svg})
    cells_json.write_text(json.dumps(data))
    response = get(f"runs/{run_id}/steps/plot/files/{svg}", path="nb.ipynb")
    assert response.code == 200
    assert response.headers["Content-Type"] == "image/svg+xml"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    policy = response.headers["Content-Security-Policy"]
    assert policy.startswith("sandbox") and "script-src" not in policy and "default-src 'none'" in policy


def test_only_images_the_step_named_are_served(get, ran, jp_root_dir):
    nb, run_id = ran
    folder = logs_dir(nb, run_id)
    (jp_root_dir / "secret.png").write_bytes(b"\x89PNG SECRET-BYTES")
    # a file in the log folder that the step's JSON does not name, another step's log, traversal
    (folder / "stray.png").write_bytes(b"\x89PNG STRAY-BYTES")
    for name in ("stray.png", "plot.log", "plot.cells.json", "..%2F..%2F..%2Fsecret.png", "%2E%2E", "make-cell2-1.png"):
        response = get(f"runs/{run_id}/steps/plot/files/{name}", path="nb.ipynb")
        assert response.code in (400, 404), (name, response.code)
        assert b"SECRET-BYTES" not in response.body and b"STRAY-BYTES" not in response.body
    # a named image that is a symlink out of the folder is not followed
    data = json.loads((folder / "plot.cells.json").read_text())
    data["cells"][0]["outputs"].append({"type": "image", "mime": "image/png", "file": "link.png"})
    (folder / "plot.cells.json").write_text(json.dumps(data))
    os.symlink(jp_root_dir / "secret.png", folder / "link.png")
    response = get(f"runs/{run_id}/steps/plot/files/link.png", path="nb.ipynb")
    assert response.code == 404 and b"SECRET-BYTES" not in response.body
    # a named image that is a FIFO is refused at once: opening it used to wait for a writer forever
    data["cells"][0]["outputs"].append({"type": "image", "mime": "image/png", "file": "pipe.png"})
    (folder / "plot.cells.json").write_text(json.dumps(data))
    os.mkfifo(folder / "pipe.png")
    assert get(f"runs/{run_id}/steps/plot/files/pipe.png", path="nb.ipynb").code == 404
    # unknown step, unknown run
    assert get(f"runs/{run_id}/steps/nope", path="nb.ipynb").code == 404
    assert get(f"runs/{run_id}/steps/nope/files/x.png", path="nb.ipynb").code == 404
    assert get("runs/0000ffff/steps/plot", path="nb.ipynb").code == 404


def test_the_step_endpoints_need_credentials(ran, aio, http_server_client, jp_base_url):
    nb, run_id = ran
    query = urllib.parse.urlencode({"path": "nb.ipynb"})
    port = http_server_client.get_http_port()
    for endpoint in (f"runs/{run_id}/steps/plot", f"runs/{run_id}/steps/plot/files/plot-cell3-1.png"):
        url = f"http://127.0.0.1:{port}{jp_base_url}nbscale/api/{endpoint}?{query}"

        async def fetch(url=url):
            return await tornado.httpclient.AsyncHTTPClient().fetch(url, raise_error=False)

        response = aio(fetch())
        assert response.code == 403, endpoint
        assert b"PNG" not in response.body


def test_a_log_folder_swapped_for_a_link_out_of_the_root_is_not_read(get, ran, manager, aio, tmp_path):
    nb, run_id = ran
    folder = logs_dir(nb, run_id)
    image = next(o["file"] for o in _json(get(f"runs/{run_id}/steps/plot", path="nb.ipynb"))["cells"][0]["outputs"]
                 if o["type"] == "image")
    outside = tmp_path / "elsewhere"
    shutil.copytree(folder, outside)
    (outside / image).write_bytes(b"\x89PNG OUTSIDE-ROOT")
    shutil.rmtree(folder)
    folder.symlink_to(outside)
    response = get(f"runs/{run_id}/steps/plot/files/{image}", path="nb.ipynb")
    assert response.code in (403, 404) and b"OUTSIDE-ROOT" not in response.body
    assert str(tmp_path) not in response.body.decode()
    # past the request's check (the link made just after it): still nothing is read through it
    with pytest.raises(NotFound):
        aio(step_image(manager.runs, nb, run_id, "plot", image))
    detail = aio(step_detail(manager.runs, manager.notebooks, nb, run_id, "plot"))
    assert detail["status"] == "succeeded" and detail["cells"] == []
