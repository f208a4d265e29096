"""kernels/file_locks.py: runs that write one file take turns; runs writing other files do not wait;
a killed run leaves no lock behind; Ctrl-C stops a run that waits.

The last tests run two real `nbscale run` processes at once on one notebook with other parameters:
before, they interleaved their writes of one file, and the store kept a result that lied from then
on (run again with `k=1`, all cached, it gave what `k=2` makes)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from conftest import make_notebook, wait_for

from nbscale.kernels.file_locks import FileLocks, locks_folder
from nbscale.kernels.runner import default_run_store

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="flock locks: POSIX only")
DEADLINE_S = 120


@pytest.fixture(autouse=True)
def own_state_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


def _holder(run="1a2b3c4d5e6f", notebook="/x/nb.ipynb"):
    return {"run": run, "notebook": notebook, "pid": os.getpid()}


def test_a_run_writing_a_file_another_run_holds_waits_for_it_and_says_which_run(tmp_path):
    first, second, said, order = FileLocks(), FileLocks(), [], []
    first.acquire(["out/a.txt"], str(tmp_path), _holder(), said.append)

    def later():
        second.acquire([str(tmp_path / "out" / "a.txt")], "/", _holder("ffff0000"), said.append)
        order.append("second")

    thread = threading.Thread(target=later)
    thread.start()
    wait_for(lambda: said, "the second run to say it waits")
    time.sleep(0.3)
    assert order == []  # still waiting
    order.append("first ends")
    first.release()
    thread.join(10)
    assert order == ["first ends", "second"]
    assert said == [f"waiting for run 1a2b3c4d of nb.ipynb (process {os.getpid()}), which writes "
                    f"{os.path.realpath(tmp_path / 'out' / 'a.txt')} too, to end: runs that write one file take turns"]
    second.release()


def test_runs_writing_other_files_or_none_do_not_wait(tmp_path):
    first, said = FileLocks(), []
    first.acquire(["a.txt", "b.csv"], str(tmp_path), _holder(), said.append)
    for paths in (["c.txt"], [], ["sub/../d.txt"]):
        other = FileLocks()
        other.acquire(paths, str(tmp_path), _holder("22222222"), said.append)
        other.release()
    assert said == []
    first.release()
    again = FileLocks()
    again.acquire(["a.txt"], str(tmp_path), _holder(), said.append)  # released: had at once
    assert said == []
    again.release()


def test_a_killed_run_leaves_no_lock_behind(tmp_path):
    script = textwrap.dedent(f"""
        import time
        from nbscale.kernels.file_locks import FileLocks
        FileLocks().acquire(["a.txt"], {str(tmp_path)!r}, {{"run": "deadbeef"}}, print)
        open({str(tmp_path / "held")!r}, "w").close()
        time.sleep(600)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], env=os.environ.copy())
    try:
        wait_for(lambda: (tmp_path / "held").exists(), "the other process to hold the lock")
        said, waiter = [], FileLocks()
        thread = threading.Thread(target=waiter.acquire, args=(["a.txt"], str(tmp_path), _holder(), said.append))
        thread.start()
        wait_for(lambda: said, "the wait to be said")
        assert "run deadbeef" in said[0]
        proc.kill()
        thread.join(10)
        assert not thread.is_alive()
        waiter.release()
    finally:
        proc.kill()
        proc.wait()


def test_no_lock_folder_to_be_had_runs_unlocked(tmp_path, monkeypatch):
    (tmp_path / "state").write_text("a file where the folder would be")
    locks, said = FileLocks(), []
    locks.acquire(["a.txt"], str(tmp_path), _holder(), said.append)
    assert locks.fds == [] and said == []
    assert not locks_folder().is_dir()


# --- two real runs at once ------------------------------------------------------------------------------------


def _racing_notebook(tmp_path):
    return make_notebook(tmp_path, [
        ("import json, time\nimport numpy as np", ["imports"]),
        ("k = 1", ["parameters"]),
        ("time.sleep(1)\nx = np.arange(1000) * k\nwith open('a.txt', 'w') as f:\n    f.write(str(int(x.sum())))",
         ["step:a"]),
        ("time.sleep(1)\nwith open('a.txt') as f:\n    s = int(f.read())\ny = s + 1", ["step:b"]),
        ("json.dump({'y': y}, open(f'out-{k}.json', 'w'))", ["step:c"]),
    ])


def _run(notebook, *args, **popen):
    return subprocess.Popen([sys.executable, "-m", "nbscale", "run", str(notebook), "--engine", "local", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=notebook.parent, **popen)


def _y(notebook, k):
    return json.loads((notebook.parent / f"out-{k}.json").read_text())["y"]


def test_two_runs_of_one_notebook_writing_one_file_take_turns_and_the_cache_stays_true(tmp_path):
    notebook = _racing_notebook(tmp_path)
    one = _run(notebook)
    wait_for(lambda: default_run_store(notebook).list_runs(), "the first run to be recorded")
    two = _run(notebook, "-p", "k=2")
    outputs = [p.communicate(timeout=DEADLINE_S)[0] for p in (one, two)]
    assert [one.returncode, two.returncode] == [0, 0], outputs
    assert (_y(notebook, 1), _y(notebook, 2)) == (499501, 999001)  # as each run top to bottom
    store = default_run_store(notebook)
    runs = {r["parameters"]["k"]: r for r in store.list_runs()}
    waited = [e["payload"]["message"] for e in store.events_since(runs[2]["id"]) if e["kind"] == "warning"]
    assert any(m.startswith(f"waiting for run {runs[1]['id'][:8]} of {notebook.name}") and "a.txt too" in m
               for m in waited), waited
    for k, y in ((1, 499501), (2, 999001), (1, 499501)):  # each again, from the cache where it is true
        (notebook.parent / f"out-{k}.json").unlink()
        again = _run(notebook, "-p", f"k={k}")
        out, _ = again.communicate(timeout=DEADLINE_S)
        assert again.returncode == 0, out
        assert _y(notebook, k) == y


def test_ctrl_c_stops_a_run_waiting_for_another(tmp_path):
    notebook = _racing_notebook(tmp_path)
    holder = FileLocks()
    holder.acquire(["a.txt"], str(tmp_path), _holder("0badc0de"), print)
    try:
        waiting = _run(notebook)
        store = default_run_store(notebook)

        def said_it_waits():
            runs = store.list_runs()
            return runs and any(e["kind"] == "warning" and "run 0badc0de" in e["payload"]["message"]
                                for e in store.events_since(runs[0]["id"]))

        wait_for(said_it_waits, "the run to say it waits")
        waiting.send_signal(signal.SIGINT)
        out, _ = waiting.communicate(timeout=30)
        assert waiting.returncode == 130, out
        assert store.list_runs()[0]["status"] == "cancelled"
        assert not (tmp_path / "a.txt").exists()  # no step ran
    finally:
        holder.release()


def test_a_run_writing_very_many_files_locks_its_folder_alone(tmp_path, monkeypatch):
    """A lock per file takes a file descriptor each (a run writing 1,000 files would leave its steps
    none): past MAX_FILE_LOCKS, the run's folder alone, which runs writing a few files share."""
    from nbscale.kernels import file_locks

    monkeypatch.setattr(file_locks, "MAX_FILE_LOCKS", 3)
    many, few, other_few, said = FileLocks(), FileLocks(), FileLocks(), []
    many.acquire([f"f{i}.txt" for i in range(10)], str(tmp_path), _holder("aaaa1111"), said.append)
    assert len(many.fds) == 1
    done = []
    thread = threading.Thread(target=lambda: few.acquire(["g.txt"], str(tmp_path), _holder(), said.append)
                              or done.append(True))
    thread.start()
    wait_for(lambda: said, "the run writing a few files to wait")
    assert said == [f"waiting for run aaaa1111 of nb.ipynb (process {os.getpid()}) writing files in "
                    f"{os.path.realpath(tmp_path)} to end: runs that write one file take turns"]
    many.release()
    thread.join(10)
    assert done == [True]
    other_few.acquire(["h.txt"], str(tmp_path), _holder(), said.append)  # shared with the other few: no wait
    assert len(said) == 1
    waiting_many = FileLocks()
    thread = threading.Thread(target=waiting_many.acquire,
                              args=([f"f{i}.txt" for i in range(10)], str(tmp_path), _holder("bbbb2222"), said.append))
    thread.start()
    wait_for(lambda: len(said) == 2, "the run writing many files to wait")
    assert said[1].startswith("waiting for other runs writing files in")
    few.release()
    other_few.release()
    thread.join(10)
    assert not thread.is_alive()
    waiting_many.release()


def test_a_run_started_by_a_step_of_the_run_holding_the_file_does_not_wait_for_it(tmp_path):
    """A step that runs another notebook (`!nbscale run inner.ipynb`) writing a file its own run
    writes: the inner run waited for the outer one, which waited for its step: for ever."""
    make_notebook(tmp_path, [("with open('a.txt', 'w') as f:\n    f.write('inner')\nz = 1", ["step:inner"])],
                  name="inner")
    outer = make_notebook(tmp_path, [
        ("import subprocess, sys\nwith open('a.txt', 'w') as f:\n    f.write('outer')\n"
         "done = subprocess.run([sys.executable, '-m', 'nbscale', 'run', 'inner.ipynb', '--engine', 'local'],"
         " capture_output=True, text=True, timeout=60)\nrc = done.returncode\nprint(done.stdout[-2000:])",
         ["step:outer"]),
        ("assert rc == 0, rc", ["step:check"])], name="outer")
    run = _run(outer)
    out, _ = run.communicate(timeout=DEADLINE_S)
    assert run.returncode == 0, out
    assert (tmp_path / "a.txt").read_text() == "inner"
    store = default_run_store(outer)
    inner_run = next(r for r in store.list_runs() if r["notebook"].endswith("inner.ipynb"))
    said = [e["payload"]["message"] for e in store.events_since(inner_run["id"]) if e["kind"] == "warning"]
    assert any(m.startswith("not waiting for run ") and m.endswith("to end: this run runs inside one of its steps")
               for m in said), said


def test_a_file_system_without_locks_runs_unlocked(tmp_path, monkeypatch):
    """ENOLCK (an NFS mount without its lock service; made here by a flock that refuses, as no such
    mount can be had on the test machine): the run goes on, unlocked, rather than failing."""
    import errno

    from nbscale.kernels import file_locks

    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(file_locks.fcntl, "flock", no_locks)
    locks, said = FileLocks(), []
    locks.acquire(["a.txt"], str(tmp_path), _holder(), said.append)
    assert said == [] and len(locks.fds) == 2  # its folder's and the file's, neither locked
    locks.release()


def test_a_run_locks_the_file_its_parameters_name_not_the_defaults(tmp_path):
    # `-p OUT=b.csv`: the run locked a.csv, the default's file, and ran beside another that writes b.csv
    notebook = make_notebook(tmp_path, [
        ("import time", ["imports"]),
        ("OUT = 'a.csv'\nk = 1", ["parameters"]),
        ("with open(OUT, 'w') as f:\n    f.write(str(k))\ntime.sleep(1.5)\nback = open(OUT).read()", ["step:write"]),
    ], name="param")
    other = make_notebook(tmp_path, [
        ("import time", ["imports"]),
        ("with open('b.csv', 'w') as f:\n    f.write('other')\ntime.sleep(1.5)\nback = open('b.csv').read()",
         ["step:write"]),
    ], name="literal")
    one = _run(notebook, "-p", "OUT=b.csv", "-p", "k=7")
    wait_for(lambda: default_run_store(notebook).list_runs(), "the first run to be recorded")
    two = _run(other)
    outputs = [p.communicate(timeout=DEADLINE_S)[0] for p in (one, two)]
    assert [one.returncode, two.returncode] == [0, 0], outputs
    from nbscale.kernels.contract import artifacts_url
    from nbscale.kernels.runner import RunResult

    for nb, expected in ((notebook, "7"), (other, "other")):  # each run read back what it wrote itself
        run = default_run_store(nb).get_run(default_run_store(nb).list_runs(str(nb.resolve()))[0]["id"])
        hashes = {s["step"]: s["hash"] for s in run["steps"]}
        assert RunResult(run["id"], run["status"], [], {}, artifacts_url(nb), hashes).load("write")["back"] == expected
    assert "b.csv too" in outputs[1], outputs[1]  # the second waited for the first, naming the file


def test_a_text_parameter_holding_nul_fails_its_step_not_the_run_with_a_traceback(tmp_path):
    from nbscale.kernels.runner import RunOptions, run_notebook

    notebook = make_notebook(tmp_path, [("OUT = 'a.csv'", ["parameters"]),
                                        ("with open(OUT, 'w') as f:\n    f.write('x')", ["step:write"])], name="nul")
    result = run_notebook(notebook, {"OUT": "a\x00b.csv"}, options=RunOptions(engine="local"))
    assert result.status == "failed" and result.steps[0]["status"] == "failed"
    assert "embedded null byte" in json.dumps(result.steps[0]), result.steps[0]
