"""The server's cluster IS the root's warm cluster, in a real jupyter_server (pytest-jupyter): the
panel's Start leaves its files in the root's state folder; `nbscale cluster status` and a real
`nbscale run` subprocess of a notebook in a folder under the root find it, and the run's steps
execute on its workers (not on a cluster of the run's own); Close is refused while that CLI run's
step executes there (the run is not affected), then stops the cluster; nothing written holds the
server's token."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import psutil
import pytest
from conftest import make_notebook, wait_for
from server_fixtures import *  # noqa: F403 - the jp_* fixtures and the extension's, for this module only
from warm_harness import DEADLINE_S, end_clusters, gone, serving_pids

from nbscale.kernels import warm_cluster

NBSCALE = [sys.executable, "-m", "nbscale"]


@pytest.fixture
def root(jp_root_dir):
    """The server's root; its warm clusters are stopped (and their processes gone) at the end."""
    yield jp_root_dir
    end_clusters(jp_root_dir)
    assert not serving_pids(jp_root_dir)


@pytest.fixture
def cluster_api(jp_fetch, aio, manager):
    """POST/GET /nbscale/api/cluster: (status code, JSON body)."""

    def call(body=None):
        kwargs = {"method": "GET"} if body is None else {"method": "POST", "body": json.dumps(body)}

        async def fetch():  # the request made on the server's loop: this thread may have no loop of its own
            # a cluster start can take 20-30 s on a loaded machine: past jp_fetch's default 20 s
            return await jp_fetch("nbscale", "api", "cluster", raise_error=False, request_timeout=120, **kwargs)

        response = aio(fetch())
        return response.code, json.loads(response.body)

    return call


def nbscale(*args, cwd=None):
    return subprocess.run([*NBSCALE, *map(str, args)], capture_output=True, text=True, timeout=DEADLINE_S, cwd=cwd)


def test_a_cli_run_under_the_root_runs_on_the_servers_cluster(root, cluster_api, jp_serverapp, tmp_path):
    code, model = cluster_api({"action": "start", "n": 2})
    assert code == 200, model
    address, workers = model["scheduler_address"], {w["address"] for w in model["workers"]}
    found = warm_cluster.lookup(root)
    assert found.live and found.cluster.address == address and found.cluster.pid != os.getpid()

    project = root / "project"
    project.mkdir()
    shown = nbscale("cluster", "status", "--output", "json", cwd=project)
    assert shown.returncode == 0, shown.stdout
    facts = json.loads(shown.stdout)
    assert (facts["state"], facts["folder"], facts["workers"]) == ("live", str(root), 2)
    assert facts["pid"] == found.cluster.pid

    where = tmp_path / "where.txt"
    notebook = make_notebook(project, [(f"import os\nfrom distributed import get_worker\nopen({str(where)!r}, 'w')"
                                        ".write(f'{os.getppid()} {get_worker().address}')\nx = 1", ["step:where"])],
                             name="where")
    ran = nbscale("run", notebook, "--no-cache")
    assert ran.returncode == 0, ran.stderr
    parent, worker = where.read_text().split()
    assert int(parent) == found.cluster.pid and worker in workers, "the step did not run on the server's cluster"
    assert f"on the warm cluster of {root} at {address}" in ran.stderr  # not a cluster of its own
    code, again = cluster_api()
    assert code == 200 and again["scheduler_address"] == address  # the run left it running

    token = jp_serverapp.identity_provider.token
    state = warm_cluster.state_folder(root)
    assert token and not any(token in p.read_text(errors="replace") for p in state.iterdir() if p.is_file())
    assert token not in " ".join(psutil.Process(found.cluster.pid).cmdline())


def test_close_waits_for_a_cli_runs_step_then_stops_the_cluster(root, cluster_api, tmp_path):
    code, model = cluster_api({"action": "start", "n": 1})
    assert code == 200, model
    pid = warm_cluster.lookup(root).cluster.pid
    project = root / "project"
    project.mkdir()
    flag, started = tmp_path / "go", tmp_path / "started"
    notebook = make_notebook(project, [(f"import os, time\nopen({str(started)!r}, 'w').write(str(os.getppid()))\n"
                                        f"while not os.path.exists({str(flag)!r}): time.sleep(0.1)\nx = 1",
                                        ["step:waits"])], name="waits")
    proc = subprocess.Popen([*NBSCALE, "run", str(notebook), "--no-cache"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: started.exists() and started.read_text() or proc.poll() is not None, "the step to start")
        assert proc.poll() is None and int(started.read_text()) == pid, proc.stdout.read()
        code, refused = cluster_api({"action": "close"})
        assert code == 409 and "closing it would fail them" in refused["error"], refused
        assert "`nbscale cluster stop` in the server's root" in refused["error"]
        assert str(root) not in refused["error"]
        assert cluster_api()[1]["scheduler_address"] == model["scheduler_address"]
        flag.write_text("")
        out, _ = proc.communicate(timeout=DEADLINE_S)
        assert proc.returncode == 0, out
    finally:
        if proc.poll() is None:
            proc.kill()
    assert cluster_api({"action": "close"}) == (200, {"status": "none"})
    assert gone(pid) and warm_cluster.lookup(root).state == warm_cluster.NONE
    assert cluster_api() == (200, {"status": "none"})
