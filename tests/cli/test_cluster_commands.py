"""`nbscale cluster start|status|stop` (nbscale/cluster_commands.py) as real subprocesses, with the
real background cluster: two starts at once, a cluster killed with kill -9, hostile files."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess

import pytest
from conftest import make_notebook
from warm_harness import DEADLINE_S, NBSCALE, end_clusters, gone, serving_pids, wait_for

from nbscale.kernels import warm_cluster


def nbscale(*args, cwd=None):
    return subprocess.run([*NBSCALE, *map(str, args)], capture_output=True, text=True, timeout=DEADLINE_S, cwd=cwd)


@pytest.fixture
def project(tmp_path):
    folder = tmp_path / "project"
    folder.mkdir()
    yield folder
    end_clusters(folder)
    assert not serving_pids(folder)


def test_start_status_stop(project):
    started = nbscale("cluster", "start", "--dir", project, "--workers", "2", "--idle-timeout", "10m")
    assert started.returncode == 0, started.stderr
    info = json.loads(warm_cluster.info_path(project).read_text())
    assert started.stdout == (f"started the warm cluster of {project} at {info['address']} (2 workers, "
                              "stops after 10m idle)\n")
    assert json.loads(warm_cluster.scheduler_file_path(project).read_text())["address"] == info["address"]
    assert serving_pids(project) == [info["pid"]]

    shown = nbscale("cluster", "status", cwd=project)  # --dir defaults to the current folder
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith(f"warm cluster of {project}: live\n  address  {info['address']} "
                                   f"(process {info['pid']}; ")
    assert "  workers  2 (2 threads), memory " in shown.stdout and "stops after 10m idle" in shown.stdout
    facts = json.loads(nbscale("cluster", "status", "--dir", project, "--output", "json").stdout)
    assert (facts["state"], facts["workers"], facts["runs"], facts["idle_timeout_s"]) == ("live", 2, [], 600.0)

    notebook = make_notebook(project, [("x = 1", ["step:a"])])
    ran = nbscale("run", notebook)
    assert ran.returncode == 0, ran.stderr
    assert serving_pids(project) == [info["pid"]], "a run stopped or replaced the warm cluster"

    stopped = nbscale("cluster", "stop", "--dir", project)
    assert stopped.returncode == 0 and stopped.stdout == f"stopped the warm cluster at {info['address']}\n"
    assert gone(info["pid"]) and not serving_pids(project)
    assert not warm_cluster.info_path(project).exists() and not warm_cluster.scheduler_file_path(project).exists()
    none = nbscale("cluster", "status", "--dir", project)
    assert none.returncode == 1
    assert none.stdout == f"no warm cluster in {project} (`nbscale cluster start --dir {project}` starts one)\n"
    assert nbscale("cluster", "stop", "--dir", project).stdout == f"no warm cluster in {project}: nothing to stop\n"


def test_two_starts_at_once_in_one_folder_give_one_cluster(project):
    procs = [subprocess.Popen([*NBSCALE, "cluster", "start", "--dir", str(project), "--workers", "1"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=DEADLINE_S) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    said = sorted(out.split(" at ")[0] for out, _ in outs)
    assert said == [f"started the warm cluster of {project}", f"the warm cluster of {project} runs already"]
    assert len(serving_pids(project)) == 1


def test_sigterm_while_a_cluster_starts_cancels_the_start_as_ctrl_c_does(project):
    start = subprocess.Popen([*NBSCALE, "cluster", "start", "--dir", str(project), "--workers", "1"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: serving_pids(project), "the cluster's process")  # (started, not yet serving)
    start.send_signal(signal.SIGTERM)
    _, err = start.communicate(timeout=DEADLINE_S)
    assert (start.returncode, err) == (143, "cancelled: stopped by SIGTERM\n")
    wait_for(lambda: not serving_pids(project), "no cluster left behind")
    assert not warm_cluster.info_path(project).exists()


def test_a_killed_cluster_is_stale_in_status_and_start_replaces_it(project):
    assert nbscale("cluster", "start", "--dir", project, "--workers", "1").returncode == 0
    pid = json.loads(warm_cluster.info_path(project).read_text())["pid"]
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: gone(pid), "the cluster process to die")
    shown = nbscale("cluster", "status", "--dir", project)
    assert shown.returncode == 1
    assert shown.stdout == (f"the warm cluster of {project} is stale: its process {pid} is gone\n"
                            "`nbscale cluster start` replaces it, `nbscale cluster stop` removes its files\n")
    notebook = make_notebook(project, [("x = 1", ["step:a"])])
    ran = nbscale("run", notebook)  # falls back to a cluster of its own, and says why
    assert ran.returncode == 0, ran.stderr
    assert f"! not using the warm cluster of {project}: its process {pid} is gone" in ran.stderr
    again = nbscale("cluster", "start", "--dir", project, "--workers", "1")
    assert again.returncode == 0 and again.stdout.startswith("started the warm cluster"), again.stderr
    assert json.loads(warm_cluster.info_path(project).read_text())["pid"] != pid


def test_a_cluster_killed_under_a_run_fails_its_step_with_one_clear_reason_and_no_traceback(project):
    assert nbscale("cluster", "start", "--dir", project, "--workers", "1").returncode == 0
    pid = json.loads(warm_cluster.info_path(project).read_text())["pid"]
    started = project / "started"
    notebook = make_notebook(project, [
        ("x = 1", ["step:a"]),
        (f"import time\nopen({str(started)!r}, 'w').close()\ntime.sleep(30)\ny = x", ["step:b"])])
    run = subprocess.Popen([*NBSCALE, "run", str(notebook)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, cwd=project)
    wait_for(started.exists, "step b to start on the warm cluster")
    os.kill(pid, signal.SIGKILL)
    out, err = run.communicate(timeout=DEADLINE_S)
    assert run.returncode == 1, err
    assert "b failed SchedulerLost: the step did not finish: the connection to the Dask scheduler at" in out
    # the table gives it the time it ran until then, as the progress line does (it said "-")
    assert re.search(r"^b\s+failed\s+\d", out, re.MULTILINE), out
    assert "Traceback" not in err and "ERROR" not in err, err


def test_a_hostile_file_is_refused_and_stop_removes_it_without_signalling_anyone(project):
    path = warm_cluster.info_path(project)
    path.parent.mkdir()
    path.write_text(json.dumps({"address": "tcp://198.51.100.7:8786", "pid": os.getpid(), "workers": 1,
                                "started": 0, "scheduler_file": "/etc/passwd"}))
    shown = nbscale("cluster", "status", "--dir", project, "--output", "json")
    assert shown.returncode == 1
    facts = json.loads(shown.stdout)
    assert facts["state"] == "invalid"
    assert facts["reason"] == (f"{path} names the address 'tcp://198.51.100.7:8786', which is not on this "
                               "machine: a warm cluster is only used on the machine that runs it")
    stopped = nbscale("cluster", "stop", "--dir", project)
    assert stopped.returncode == 0
    assert stopped.stdout == f"removed the files of the warm cluster, which was invalid: {facts['reason']}\n"
    assert not path.exists()  # and this test's process, which the file named, is still here


@pytest.mark.parametrize(("value", "message"), [
    ("soon", "error: --idle-timeout 'soon' is not a time (e.g. 90s, 30m, 2h)\n"),
    # a value under a second was taken, and the cluster ended idle before its start was confirmed
    ("0.1s", "error: --idle-timeout '0.1s' is too short: at least 1s (0: never stop)\n"),
])
def test_a_bad_idle_timeout_is_refused_and_nothing_starts(project, value, message):
    refused = nbscale("cluster", "start", "--dir", project, "--idle-timeout", value)
    assert refused.returncode == 2
    assert refused.stderr == message
    assert not serving_pids(project) and not warm_cluster.state_folder(project).exists()


def test_scale_grows_and_shrinks_the_warm_cluster_and_refuses_bad_counts(project):
    assert nbscale("cluster", "start", "--dir", project, "--workers", "1").returncode == 0
    grown = nbscale("cluster", "scale", "2", "--dir", project)
    assert grown.returncode == 0 and grown.stdout == f"the warm cluster of {project} has 2 workers\n", grown.stderr
    assert warm_cluster.status(project)["workers"] == 2
    notebook = make_notebook(project, [("x = 1", ["step:a"]), ("y = x + 1", ["step:b"])])
    assert nbscale("run", notebook).returncode == 0  # runs use the new workers too
    assert nbscale("cluster", "scale", "1", "--dir", project).returncode == 0
    assert warm_cluster.status(project)["workers"] == 1
    for bad in ("0", "-3", "100000"):
        refused = nbscale("cluster", "scale", "--dir", project, "--", bad)
        assert refused.returncode == 2 and "1 to 256" in refused.stderr, (bad, refused.stderr)
    assert warm_cluster.status(project)["workers"] == 1
    nbscale("cluster", "stop", "--dir", project)
    nothing = nbscale("cluster", "scale", "2", "--dir", project)
    assert nothing.returncode != 0 and "no live warm cluster" in nothing.stderr


def test_status_and_stop_in_a_subfolder_name_the_cluster_above_it_that_runs_there_use(project):
    assert nbscale("cluster", "start", "--dir", project, "--workers", "1").returncode == 0
    info = json.loads(warm_cluster.info_path(project).read_text())
    sub = project / "sub"
    sub.mkdir()
    shown = nbscale("cluster", "status", cwd=sub)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith(f"warm cluster of {project}: live (runs in {sub} use it)\n")
    stopped = nbscale("cluster", "stop", cwd=sub)
    assert stopped.stdout == f"stopped the warm cluster of {project} at {info['address']}\n", stopped.stderr
    assert gone(info["pid"]) and not warm_cluster.info_path(project).exists()


def test_stop_where_there_is_no_cluster_writes_nothing(project):
    stopped = nbscale("cluster", "stop", "--dir", project)
    assert stopped.returncode == 0 and stopped.stdout == f"no warm cluster in {project}: nothing to stop\n"
    assert not warm_cluster.state_folder(project).exists()  # not even the lock file


def test_a_state_folder_that_is_a_file_is_named_so_by_status_and_start(project):
    (project / ".nbscale").write_text("not a folder")
    shown = nbscale("cluster", "status", "--dir", project)
    assert shown.returncode == 1
    reason = f"{project / '.nbscale'} is a file, not a folder: move it away to keep a warm cluster here"
    assert shown.stdout == f"the warm cluster of {project} is invalid: {reason}\n"  # no "start replaces it"
    started = nbscale("cluster", "start", "--dir", project, "--workers", "1")
    assert started.returncode != 0 and reason in started.stderr
    assert not serving_pids(project)


def test_stop_says_which_runs_it_ended(project):
    assert nbscale("cluster", "start", "--dir", project, "--workers", "1").returncode == 0
    started = project / "started"
    notebook = make_notebook(project, [(f"import time\nopen({str(started)!r}, 'w').close()\ntime.sleep(60)\nx = 1",
                                        ["step:slow"])])
    run = subprocess.Popen([*NBSCALE, "run", str(notebook)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, cwd=project)
    try:
        wait_for(started.exists, "the step to start on the warm cluster")
        runs = warm_cluster.status(project)["runs"]
        stopped = nbscale("cluster", "stop", "--dir", project)
        out, err = run.communicate(timeout=DEADLINE_S)
    finally:
        if run.poll() is None:
            run.kill()
    assert stopped.returncode == 0 and len(runs) == 1
    assert stopped.stderr == f"warning: run(s) {runs[0]} were running on it: they fail (the cluster was stopped)\n"
    assert run.returncode == 1, err


def test_a_file_copied_from_another_folders_cluster_is_named_so(project, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    assert nbscale("cluster", "start", "--dir", other, "--workers", "1").returncode == 0
    try:
        pid = json.loads(warm_cluster.info_path(other).read_text())["pid"]
        warm_cluster.state_folder(project).mkdir()
        warm_cluster.info_path(project).write_bytes(warm_cluster.info_path(other).read_bytes())
        facts = json.loads(nbscale("cluster", "status", "--dir", project, "--output", "json").stdout)
        assert facts["reason"] == (f"its process {pid} is the warm cluster of another folder "
                                   "(a file copied from there?)")
    finally:
        end_clusters(other)


def test_start_says_why_it_waits_for_a_cluster_that_does_not_answer(project):
    assert nbscale("cluster", "start", "--dir", project, "--workers", "1").returncode == 0
    pid = json.loads(warm_cluster.info_path(project).read_text())["pid"]
    os.kill(pid, signal.SIGSTOP)  # frozen: its process runs, its scheduler does not answer
    start = subprocess.Popen([*NBSCALE, "cluster", "start", "--dir", str(project), "--workers", "1"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        said = start.stderr.readline()  # before the long wait, not after it
        os.kill(pid, signal.SIGCONT)  # it answers the patient probe: kept
        out, err = start.communicate(timeout=DEADLINE_S)
    finally:
        os.kill(pid, signal.SIGCONT)
        if start.poll() is None:
            start.kill()
    assert said == (f"the warm cluster of {project} (process {pid}) does not answer: waiting up to 15 s for "
                    f"it, then replacing it (up to {warm_cluster.STOP_TIMEOUT_S:.0f} s more)\n")
    assert start.returncode == 0 and "runs already" in out, err


def test_status_and_start_name_a_cluster_of_other_nbscale_code_and_start_replaces_it(project):
    assert nbscale("cluster", "start", "--dir", project, "--workers", "1").returncode == 0
    info = warm_cluster.info_path(project)
    old = json.loads(info.read_text())
    info.write_text(json.dumps({k: v for k, v in old.items() if k != "code"}))  # as a release before wrote it
    shown = nbscale("cluster", "status", "--dir", project)
    assert shown.returncode == 0, shown.stderr
    assert ("  not used by runs started here: it runs other nbscale code than this run (nbscale was installed "
            "again or edited since it started; `nbscale cluster start` replaces it once no run uses it)\n"
            ) in shown.stdout
    started = nbscale("cluster", "start", "--dir", project, "--workers", "1")
    assert started.returncode == 0, started.stderr
    assert started.stderr == (f"replacing the warm cluster of {project}: it runs other nbscale code than this one "
                              "(installed again or edited since it started)\n")
    new = json.loads(info.read_text())
    assert new["pid"] != old["pid"] and started.stdout.startswith(f"started the warm cluster of {project} at ")
    wait_for(lambda: gone(old["pid"]), "the replaced cluster's process to end")
    assert "not used" not in nbscale("cluster", "status", "--dir", project).stdout
