"""run_notebook end to end on the local engine: cache, failures, retries, unpicklable outputs."""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time

import pytest
from conftest import make_notebook

from nbscale.errors import PluginError
from nbscale.kernels.contract import (
    CANCELLED_BY_USER,
    STEP_FINISHED,
    STEP_OUTPUT,
    STEP_QUEUED,
    STEP_STARTED,
    STOPPED_BY_SIGTERM,
    WARNING,
    step_log_path,
)
from nbscale.kernels.errors import CorruptArtifactWarning, HungUp, ParameterError, PipelineNotRunnable, Terminated
from nbscale.kernels.interrupts import sigterm_interrupts
from nbscale.kernels.runner import RunOptions, cache_report, default_run_store, run_notebook
from nbscale.kernels.store import ArtifactStore

LOCAL = RunOptions(engine="local")


def _status(result):
    return {s["name"]: s["status"] for s in result.steps}


def _cache_notebook(tmp_path, log, c_body="c = b * 2", tags_b=("step:b",), b_body="b = a + 1"):
    # every step appends its name to `log` each time it actually runs
    rec = f"open({str(log)!r}, 'a').write('{{}}\\n'.format(%r))"
    return make_notebook(tmp_path, [
        ("alpha = 1\nbeta = 10", ["parameters"]),
        ("a = alpha + 1\n" + rec % "a", ["step:a"]),
        (b_body + "\n" + rec % "b", list(tags_b)),
        (c_body + "\n" + rec % "c", ["step:c"]),
        ("d = beta * 3\n" + rec % "d", ["step:d"]),
    ])


def _ran(log, before):
    return log.read_text().splitlines()[before:] if log.exists() else []


def _lines(log):
    return len(log.read_text().splitlines()) if log.exists() else 0


def test_second_run_is_all_cached_and_executes_nothing(tmp_path):
    log = tmp_path / "ran.log"
    nb = _cache_notebook(tmp_path, log)
    first = run_notebook(nb, options=LOCAL)
    assert first.ok and sorted(_ran(log, 0)) == ["a", "b", "c", "d"]
    assert all(not s["cached"] for s in first.steps)
    content = log.read_text()
    second = run_notebook(nb, options=LOCAL)
    assert second.ok
    assert set(_status(second).values()) == {"cached"}
    assert all(s["cached"] for s in second.steps)
    assert log.read_text() == content  # no step executed
    assert second.load("c")["c"] == 6


def test_a_cached_run_records_a_use_of_every_result_it_reuses_loaded_or_not(tmp_path):
    # a step no running step reads is only checked, never loaded: its result looked unused to `gc --keep-last`
    nb = _cache_notebook(tmp_path, tmp_path / "ran.log")
    assert run_notebook(nb, options=LOCAL).ok
    artifacts = ArtifactStore(str(tmp_path / ".nbscale" / "artifacts"))
    for entry in artifacts.entries():
        os.utime(f"{artifacts.root}/{entry['key']}", (1_000_000, 1_000_000))
    assert set(_status(run_notebook(nb, options=LOCAL)).values()) == {"cached"}
    assert all(e["used"] > time.time() - 60 for e in artifacts.entries())


def test_changed_step_reruns_it_and_downstream_only(tmp_path):
    log = tmp_path / "ran.log"
    nb = _cache_notebook(tmp_path, log)
    assert run_notebook(nb, options=LOCAL).ok
    n = _lines(log)
    nb = _cache_notebook(tmp_path, log, c_body="c = b * 2")  # unchanged rewrite: still all cached
    assert set(_status(run_notebook(nb, options=LOCAL)).values()) == {"cached"}
    # change b: b and its downstream c re-run; a and d are cached
    n = _lines(log)
    nb = _cache_notebook(tmp_path, log, b_body="b = a + 100")
    result = run_notebook(nb, options=LOCAL)
    assert result.ok
    assert sorted(_ran(log, n)) == ["b", "c"]
    assert _status(result) == {"a": "cached", "b": "succeeded", "c": "succeeded", "d": "cached"}
    assert result.load("c")["c"] == 204


def test_no_cache_reruns_everything(tmp_path):
    log = tmp_path / "ran.log"
    nb = _cache_notebook(tmp_path, log)
    assert run_notebook(nb, options=LOCAL).ok
    n = _lines(log)
    result = run_notebook(nb, options=RunOptions(engine="local", use_cache=False))
    assert result.ok and sorted(_ran(log, n)) == ["a", "b", "c", "d"]
    assert set(_status(result).values()) == {"succeeded"}


def test_cache_off_tag_reruns_that_step_only(tmp_path):
    log = tmp_path / "ran.log"
    nb = _cache_notebook(tmp_path, log, tags_b=("step:b", "cache:off"))
    assert run_notebook(nb, options=LOCAL).ok
    n = _lines(log)
    result = run_notebook(nb, options=LOCAL)
    assert result.ok
    assert _ran(log, n) == ["b"]
    assert _status(result) == {"a": "cached", "b": "succeeded", "c": "cached", "d": "cached"}


def test_changed_parameter_reruns_readers_and_downstream(tmp_path):
    log = tmp_path / "ran.log"
    nb = _cache_notebook(tmp_path, log)
    assert run_notebook(nb, options=LOCAL).ok
    n = _lines(log)
    result = run_notebook(nb, {"beta": "20"}, options=LOCAL)
    assert result.ok and _ran(log, n) == ["d"]
    assert result.load("d")["d"] == 60
    n = _lines(log)
    result = run_notebook(nb, {"alpha": 5}, options=LOCAL)
    assert sorted(_ran(log, n)) == ["a", "b", "c"]
    assert result.load("c")["c"] == 14
    n = _lines(log)
    assert set(_status(run_notebook(nb, {"alpha": 5}, options=LOCAL)).values()) == {"cached"}
    assert _ran(log, n) == []


def test_a_shell_command_expands_parameters_and_earlier_steps_values_and_reruns_with_them(tmp_path):
    nb = make_notebook(tmp_path, [
        ("greeting = 'hi'", ["parameters"]),
        ("n = 7", ["step:a"]),
        ("said = !echo {greeting} {n + 1}", ["step:b"]),
    ])
    assert run_notebook(nb, options=LOCAL).load("b")["said"] == ["hi 8"]
    again = run_notebook(nb, {"greeting": "yo"}, options=LOCAL)
    assert _status(again) == {"a": "cached", "b": "succeeded"} and again.load("b")["said"] == ["yo 8"]


def test_a_working_directory_a_step_changes_is_the_later_steps_as_top_to_bottom(tmp_path):
    (tmp_path / "v.txt").write_text("outer")
    nb = make_notebook(tmp_path, [
        ("import os", ["imports"]),
        ("os.makedirs('sub', exist_ok=True)\nopen('sub/v.txt', 'w').write('inner')\nos.chdir('sub')", ["step:a"]),
        ("seen = open('v.txt').read()", ["step:b"]),
    ])
    warned = []
    result = run_notebook(nb, options=LOCAL, on_event=lambda kind, step, payload: kind == WARNING and warned.append(
        payload["message"]))
    assert result.load("b")["seen"] == "inner"
    assert not [w for w in warned if "working directory" in w], warned  # it travels: nothing to warn of


def _failing(tmp_path, fixed=False):
    second = "y = x + 1\nz = y * 2" if fixed else "y = x + 1\nz = y / 0"
    return make_notebook(tmp_path, [
        ("x = 1", ["step:first"]),
        ("w = x + 5", ["step:second"]),
        (second, []),  # cell 2, the second cell of step `second`; line 2 raises
        ("v = z + w", ["step:third"]),
        ("other = 42", ["step:branch"]),
    ])


def test_failure_reports_cell_and_line_and_spares_independent_branch(tmp_path):
    result = run_notebook(_failing(tmp_path), options=LOCAL)
    assert result.status == "failed" and not result.ok
    assert _status(result) == {"first": "succeeded", "second": "failed", "third": "upstream_failed",
                               "branch": "succeeded"}
    error = result.step("second")["error"]
    assert error["cell"] == 2 and error["line"] == 2
    assert error["ename"] == "ZeroDivisionError"
    assert "second" in result.step("third")["error"]
    run = default_run_store(tmp_path / "nb.ipynb").get_run(result.run_id)
    assert run["status"] == "failed"
    # after the fix, what succeeded is reused
    fixed = run_notebook(_failing(tmp_path, fixed=True), options=LOCAL)
    assert fixed.ok
    assert _status(fixed) == {"first": "cached", "second": "succeeded", "third": "succeeded", "branch": "cached"}
    assert fixed.load("third")["v"] == 10


def test_retries_tag_reruns_until_success_and_records_attempts(tmp_path):
    counter = tmp_path / "attempts.txt"
    nb = make_notebook(tmp_path, [
        (f"import pathlib\np = pathlib.Path({str(counter)!r})\nn = len(p.read_text()) if p.exists() else 0\n"
         "p.write_text('x' * (n + 1))\nif n < 2:\n    raise RuntimeError(f'attempt {n + 1}')\nvalue = n",
         ["step:flaky", "retries:2"]),
    ])
    events = []
    result = run_notebook(nb, options=LOCAL, on_event=lambda kind, step, payload: events.append(kind))
    assert result.ok
    assert result.step("flaky")["attempts"] == 3 and counter.read_text() == "xxx"
    assert events.count("step_retry") == 2


def test_retries_exhausted_fails(tmp_path):
    nb = make_notebook(tmp_path, [("raise RuntimeError('always')", ["step:bad", "retries:1"])])
    result = run_notebook(nb, options=LOCAL)
    assert result.status == "failed" and result.step("bad")["attempts"] == 2


def test_unpicklable_output_fails_naming_variable_type_and_step(tmp_path):
    nb = make_notebook(tmp_path, [
        ("import threading\nlock = threading.Lock()", ["step:make"]),
        ("held = lock.locked()", ["step:use"]),
    ])
    result = run_notebook(nb, options=LOCAL)
    assert result.status == "failed"
    assert _status(result) == {"make": "failed", "use": "upstream_failed"}
    evalue = result.step("make")["error"]["evalue"]
    assert "'lock'" in evalue and "_thread.lock" in evalue and "'make'" in evalue


def test_every_unpicklable_output_is_named_at_once(tmp_path):
    nb = make_notebook(tmp_path, [
        ("import threading\nlock = threading.Lock()\ngen = (i for i in range(3))\nok = 1", ["step:make"]),
        ("held = lock.locked()\nfirst = next(gen)\nn = ok", ["step:use"]),
    ])
    evalue = run_notebook(nb, options=LOCAL).step("make")["error"]["evalue"]
    assert "'lock'" in evalue and "_thread.lock" in evalue and "'gen'" in evalue and "generator" in evalue


def test_unknown_parameter_and_compile_errors_raise(tmp_path):
    nb = _cache_notebook(tmp_path, tmp_path / "log")
    with pytest.raises(ParameterError, match="alpha, beta"):
        run_notebook(nb, {"gamma": 1}, options=LOCAL)
    bad = make_notebook(tmp_path, [("x = (", ["step:a"])], name="bad")
    with pytest.raises(PipelineNotRunnable, match="cell"):
        run_notebook(bad, options=LOCAL)


def test_a_cell_python_refuses_stops_the_run_before_any_step_runs(tmp_path):
    # the parser takes it, so only Python's compiler sees it: the earlier step must not run
    nb = make_notebook(tmp_path, [("open('ran', 'w').close()\nx = 1", ["step:a"]),
                                  ("def f():\n    nonlocal y\n    y = 2\nz = x", ["step:b"])], name="late")
    with pytest.raises(PipelineNotRunnable, match=r"late\.ipynb:cell 2:2:5: error\[syntax-error\]: .*nonlocal 'y'"):
        run_notebook(nb, options=LOCAL)
    assert not (tmp_path / "ran").exists()
    assert not default_run_store(nb).list_runs(str(nb.resolve()))


def test_metrics_and_run_store_records(tmp_path):
    nb = make_notebook(tmp_path, [
        ("k = 3", ["parameters"]),
        ("score = k / 4\nprint('hello', k)", ["step:fit"]),
        ("score", ["metrics"]),
    ])
    result = run_notebook(nb, options=LOCAL)
    assert result.ok and result.metrics == {"score": 0.75}
    assert set(result.to_json()) == {"run_id", "status", "steps", "metrics"}
    run = default_run_store(nb).get_run(result.run_id[:10])
    fit = next(s for s in run["steps"] if s["step"] == "fit")
    assert fit["status"] == "succeeded" and "hello 3" in fit["stdout"] and fit["duration_s"] >= 0
    assert run["parameters"] == {"k": 3}
    cached = run_notebook(nb, options=LOCAL)
    assert cached.metrics == {"score": 0.75}  # a cached metrics step reports its metrics again


def test_damaged_stored_metrics_run_the_metrics_step_again(tmp_path):
    """Planning looks at sizes: a bit flipped in the stored metrics left a run `cached` with no
    metrics (and no regression check)."""
    nb = make_notebook(tmp_path, [("acc = 0.5", ["step:make"]), ("acc", ["metrics"])])
    assert run_notebook(nb, options=LOCAL).metrics == {"acc": 0.5}
    (stored,) = (tmp_path / ".nbscale" / "artifacts").rglob("*__nbscale_metrics__*")
    damaged = bytearray(stored.read_bytes())
    damaged[-2] ^= 1
    stored.write_bytes(bytes(damaged))
    with pytest.warns(CorruptArtifactWarning):
        again = run_notebook(nb, options=LOCAL)
    assert _status(again) == {"make": "cached", "metrics": "succeeded"} and again.metrics == {"acc": 0.5}


@pytest.mark.parametrize("damage", ["truncate", "remove", "manifest"])
def test_a_step_whose_stored_result_was_damaged_says_so_as_why_it_ran_again(tmp_path, damage):
    # (found damaged and removed as the run was planned, the step found no result: `stale` was empty)
    nb = make_notebook(tmp_path, [("x = list(range(1000))", ["step:a"]), ("y = len(x)", ["step:b"])])
    run_notebook(nb, options=LOCAL)
    (manifest,) = [m for m in (tmp_path / ".nbscale" / "artifacts").rglob("manifest.json")
                   if '"step": "a"' in m.read_text()]
    (data,) = [f for f in manifest.parent.iterdir() if f.name != "manifest.json"]
    if damage == "truncate":
        data.write_bytes(data.read_bytes()[:10])
    elif damage == "remove":
        data.unlink()
    else:
        manifest.write_text("{")
    again = run_notebook(nb, options=LOCAL)
    run = default_run_store(nb).get_run(again.run_id)
    (a,) = [s for s in run["steps"] if s["step"] == "a"]
    assert a["status"] == "succeeded"
    assert any(reason.startswith("the stored result was damaged") for reason in a["stale"])


def test_an_unknown_engine_is_refused_before_anything_is_recorded(tmp_path):
    nb = make_notebook(tmp_path, [("x = 1", ["step:a"])])
    with pytest.raises(PluginError, match="unknown engine 'bogus'"):
        run_notebook(nb, options=RunOptions(engine="bogus"))
    assert not (tmp_path / ".nbscale").exists()



def test_a_notebook_whose_path_is_not_utf8_is_refused_before_anything_is_recorded(tmp_path):
    nb = make_notebook(tmp_path, [("x = 1", ["step:a"])])
    odd = nb.with_name(os.fsdecode(b"bad\xffname.ipynb"))
    nb.rename(odd)
    with pytest.raises(PipelineNotRunnable, match=r"bad\\xffname.ipynb: the notebook's path is not valid UTF-8"):
        run_notebook(odd, options=RunOptions(engine="local"))
    assert not (tmp_path / ".nbscale").exists()


def test_a_parameter_that_may_be_a_credential_is_recorded_as_a_digest(tmp_path):
    # the run gets the value; the run store (panel, `nbscale runs`) and the lineage keep a digest
    nb = make_notebook(tmp_path, [("api_token = ''\nrounds = 2", ["parameters"]),
                                  ("n = float(len(api_token) * rounds)", ["step:use"]), ("n", ["metrics"])])
    runs = []
    for secret in ("PARAMSECRET", "OTHERSECRET", "OTHERSECRET"):
        result = run_notebook(nb, {"api_token": secret, "rounds": 3}, options=LOCAL)
        assert result.ok and result.metrics == {"n": 33.0}
        runs.append(default_run_store(nb).get_run(result.run_id))
    recorded = [run["parameters"] for run in runs]
    assert [p["rounds"] for p in recorded] == [3, 3, 3]
    assert all(p["api_token"].startswith("hidden:") for p in recorded)
    assert recorded[0]["api_token"] != recorded[1]["api_token"] == recorded[2]["api_token"], "still compared"
    kept = b"".join(p.read_bytes() for p in (tmp_path / ".nbscale").rglob("*") if p.is_file())
    assert b"PARAMSECRET" not in kept and b"OTHERSECRET" not in kept

def test_a_nan_or_infinite_metric_is_recorded_as_none_and_the_run_succeeds(tmp_path):
    nb = make_notebook(tmp_path, [("score = float('nan')\nspread = float('inf')\nok = 0.5", ["step:fit"]),
                                  ("score\nspread\nok", ["metrics"])])
    for _ in range(2):  # run, then from the cache
        result = run_notebook(nb, options=LOCAL)
        assert result.ok, result.steps
        assert result.metrics == {"score": None, "spread": None, "ok": 0.5}


def test_a_later_step_runs_in_the_folder_and_environment_a_magic_set(tmp_path):
    """`%cd sub` and `%env V=5` in a step: the next step ran in the notebook's folder, without V."""
    (tmp_path / "sub").mkdir()
    nb = make_notebook(tmp_path, [("%cd sub\n%env V=5\na = 1", ["step:a"]),
                                  ("import os\nwhere = os.path.basename(os.getcwd())\nv = os.environ.get('V')\nb = a",
                                   ["step:b"])])
    result = run_notebook(nb, options=LOCAL)
    assert result.ok, result.steps
    loaded = result.load("b")
    assert (loaded["where"], loaded["v"]) == ("sub", "5")


def test_a_metric_that_is_not_a_number_is_a_warning_of_its_step(tmp_path):
    """It was skipped, and its warning shown nowhere (run output, show, the run store)."""
    nb = make_notebook(tmp_path, [("acc = 'high'\nloss = 0.5", ["step:train"]), ("acc\nloss", ["metrics"])])
    told = []
    result = run_notebook(nb, options=LOCAL, on_event=lambda kind, step, payload: told.append((kind, step, payload)))
    assert result.ok and result.metrics == {"loss": 0.5}
    said = [(step, payload["message"]) for kind, step, payload in told if kind == "warning"]
    assert said == [("metrics", "metric 'acc' is not a number (a str: 'high'); skipped")]
    store = default_run_store(nb)
    assert [e["payload"]["message"] for e in store.events_since(result.run_id) if e["kind"] == "warning"] == [
        said[0][1]]


# --- every run ends in a final state ---------------------------------------------------------------


def _three_steps(tmp_path):
    return make_notebook(tmp_path, [("a = 1", ["step:a"]), ("b = a", ["step:b"]), ("c = b", ["step:c"])])


@pytest.mark.parametrize("raised, status, reason", [
    (KeyboardInterrupt(), "cancelled", CANCELLED_BY_USER),
    (Terminated(), "cancelled", STOPPED_BY_SIGTERM),
    (HungUp(), "cancelled", "stopped by SIGHUP"),
])
def test_a_run_interrupted_in_a_step_is_cancelled_and_says_why(tmp_path, raised, status, reason):
    nb = _three_steps(tmp_path)
    seen = []

    def on_event(kind, step, payload):
        seen.append((kind, payload))
        if kind == STEP_STARTED and step == "b":
            raise raised

    with pytest.raises(type(raised)):
        run_notebook(nb, options=LOCAL, on_event=on_event)
    store = default_run_store(nb)
    run = store.get_run(store.list_runs()[0]["id"])
    assert run["status"] == status and run["error"] == reason
    assert {s["step"]: s["status"] for s in run["steps"]} == {"a": "succeeded", "b": "cancelled", "c": "cancelled"}
    assert seen[-1] == ("run_finished", {"status": status, "error": reason})
    assert [e["kind"] for e in store.events_since(run["id"])][-1] == "run_finished"


def test_a_step_that_starts_or_ends_after_the_run_stopped_stays_as_the_stop_left_it(tmp_path):
    """A step's thread that went on after a cancel (its kernel was starting) set the step `running`
    again in a run recorded cancelled."""
    from nbscale.kernels.runner import _Recorder
    from nbscale.kernels.runstore import RunStore

    store = RunStore(tmp_path / "runs.sqlite")
    run_id = store.create_run("nb.ipynb", "nb", "papermill", {}, ["a", "b"])
    store.start_run(run_id)
    told = []
    recorder = _Recorder(store, run_id, {"a": "h1", "b": "h2"}, lambda *event: told.append(event),
                         tmp_path / "nb.ipynb")
    recorder.emit(STEP_STARTED, "a", {})
    recorder.stopped(KeyboardInterrupt())
    recorder.emit(STEP_STARTED, "b", {})
    recorder.emit(STEP_FINISHED, "a", {"status": "succeeded", "summary": {}})
    run = store.get_run(run_id)
    assert (run["status"], {s["step"]: s["status"] for s in run["steps"]}) == (
        "cancelled", {"a": "cancelled", "b": "cancelled"})
    assert [(kind, step) for kind, step, _ in told] == [(STEP_STARTED, "a"), (STEP_FINISHED, "a"),
                                                       ("run_finished", None)]


def test_a_step_that_catches_ctrl_c_and_ends_is_cancelled_and_its_values_not_reused(tmp_path):
    """`except KeyboardInterrupt: keep what we have`: the cut-short values were stored, and the next
    run reused them."""
    code = ("import os, signal\nepochs = 1\ntry:\n    if not os.path.exists('once'):\n"
            "        open('once', 'w').close()\n        os.kill(os.getpid(), signal.SIGINT)\n    epochs = 50\n"
            "except KeyboardInterrupt:\n    pass")
    nb = make_notebook(tmp_path, [(code, ["step:train"]), ("done = epochs", ["step:after"])])
    with sigterm_interrupts(), pytest.raises(KeyboardInterrupt):
        run_notebook(nb, options=LOCAL)
    store = default_run_store(nb)
    first = store.get_run(store.list_runs()[0]["id"])
    assert {s["step"]: s["status"] for s in first["steps"]} == {"train": "cancelled", "after": "cancelled"}
    again = run_notebook(nb, options=LOCAL)
    assert [s["status"] for s in again.steps] == ["succeeded", "succeeded"]  # (not cached)
    assert again.load("after")["done"] == 50


@pytest.mark.parametrize("where", ["the engine closes", "the run's end is recorded"])
@pytest.mark.parametrize("signum, raised, reason", [
    (signal.SIGINT, KeyboardInterrupt, CANCELLED_BY_USER),
    (signal.SIGTERM, Terminated, STOPPED_BY_SIGTERM),
    (signal.SIGHUP, HungUp, "stopped by SIGHUP"),
])
def test_a_signal_after_the_last_step_cancels_the_run(tmp_path, monkeypatch, where, signum, raised, reason):
    """It left the run `running` (then read `failed`: "the process running it stopped") while the
    command said cancelled."""
    from nbscale.kernels import runner
    from nbscale.kernels.engines.local import LocalEngine

    nb = _three_steps(tmp_path)
    target, name = (LocalEngine, "close") if where == "the engine closes" else (runner, "_finish")
    real = getattr(target, name)

    def signalled(*args, **kwargs):
        os.kill(os.getpid(), signum)  # a real signal, handled by the run's own handlers
        return real(*args, **kwargs)

    monkeypatch.setattr(target, name, signalled)
    with sigterm_interrupts(), pytest.raises(raised):
        run_notebook(nb, options=LOCAL)
    store = default_run_store(nb)
    run = store.get_run(store.list_runs()[0]["id"])
    assert (run["status"], run["error"]) == ("cancelled", reason)
    assert {s["step"]: s["status"] for s in run["steps"]} == dict.fromkeys("abc", "succeeded")


def test_a_run_stopped_by_an_error_outside_its_steps_fails_and_says_why(tmp_path, monkeypatch):
    from nbscale.kernels.engines.local import LocalEngine

    nb = _three_steps(tmp_path)

    def broken(self, specs, emit):
        raise RuntimeError("the engine broke")

    monkeypatch.setattr(LocalEngine, "run", broken)
    with pytest.raises(RuntimeError):
        run_notebook(nb, options=LOCAL)
    store = default_run_store(nb)
    run = store.get_run(store.list_runs()[0]["id"])
    assert run["status"] == "failed" and run["error"] == "RuntimeError: the engine broke"
    assert {s["status"] for s in run["steps"]} == {"cancelled"}  # none had begun


def test_a_run_whose_state_folder_is_deleted_fails_with_a_warning(tmp_path):
    nb = make_notebook(tmp_path, [("import time", ["imports"]), ("time.sleep(3)\nx = 1", ["step:slow"]),
                                  ("y = x", ["step:after"])])
    warnings = []

    def delete_when_running():
        deadline = time.monotonic() + 60
        while not (tmp_path / ".nbscale" / "runs.sqlite").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        shutil.rmtree(tmp_path / ".nbscale")

    thread = threading.Thread(target=delete_when_running)
    thread.start()
    result = run_notebook(nb, options=LOCAL,
                          on_event=lambda kind, step, payload: kind == WARNING and warnings.append(payload["message"]))
    thread.join()
    assert result.status == "failed" and not result.ok
    assert "was deleted or replaced during the run" in result.error and str(tmp_path / ".nbscale") in result.error
    assert result.to_json()["error"] == result.error
    assert {s["status"] for s in result.steps} == {"succeeded"}  # the steps ran; their record is what was lost
    assert warnings == [result.error]
    assert "error" not in run_notebook(nb, options=LOCAL).to_json()  # a new store; all is well again


# --- what a step prints and shows ------------------------------------------------------------------


def _warning_notebook(tmp_path):
    return make_notebook(tmp_path, [
        ("import warnings", ["imports"]),
        ("for i in range(3):\n    warnings.warn('old API', FutureWarning)\nx = 1\nprint('done')", ["step:a"]),
    ])


def _events(events, step, kind):
    return [payload for k, s, payload in events if s == step and k == kind]


@pytest.mark.parametrize("engine", ["local", "dask"])
def test_warnings_are_kept_per_cell_and_sent_once_each_as_they_come(tmp_path, engine):
    nb = _warning_notebook(tmp_path)
    events = []
    result = run_notebook(nb, options=RunOptions(engine=engine, workers=1),
                          on_event=lambda kind, step, payload: events.append((kind, step, payload)))
    assert result.ok
    warned = _events(events, "a", WARNING)
    assert [(w["cell"], w["line"], w["category"], w["message"]) for w in warned] == [
        (1, 2, "FutureWarning", "cell 2, line 2: FutureWarning: old API")]
    kinds = [kind for kind, step, _ in events if step == "a"]
    assert kinds.index(WARNING) < kinds.index(STEP_FINISHED)
    assert result.step("a")["warnings"] == warned  # --output json
    stored = default_run_store(nb).get_run(result.run_id)["steps"][0]
    assert "FutureWarning: old API" in stored["stderr"]  # the panel shows it
    log = step_log_path(nb, result.run_id, "a")
    assert result.step("a")["log"] == str(log) and "FutureWarning: old API" in log.read_text()


def test_long_output_is_cut_in_the_store_and_whole_in_the_log(tmp_path):
    nb = make_notebook(tmp_path, [("for i in range(150_000):\n    print(f'{i:09d}')", ["step:talk"])])
    result = run_notebook(nb, options=LOCAL)
    stored = default_run_store(nb).get_run(result.run_id)["steps"][0]["stdout"]
    log = step_log_path(nb, result.run_id, "talk")
    assert f"… output truncated (1.5 MB); full log at {log}" in stored
    assert stored.startswith("000000000\n") and stored.endswith("000149999\n") and len(stored) < 1_100_000
    assert log.read_text() == "── cell 1 ──\n" + "".join(f"{i:09d}\n" for i in range(150_000))


def test_a_step_in_this_process_sends_its_output_live(tmp_path):
    nb = make_notebook(tmp_path, [("print('first')", ["step:a"]), ("print('second')", ["step:b"])])
    events = []
    run_notebook(nb, options=LOCAL, on_event=lambda kind, step, payload: events.append((kind, step, payload)))
    # Python writes a print's text and its newline apart: under load they may come as two events
    for step, text in (("a", "first\n"), ("b", "second\n")):
        outputs = _events(events, step, STEP_OUTPUT)
        assert {o["stream"] for o in outputs} == {"stdout"}
        assert "".join(o["text"] for o in outputs) == text
    kinds = [kind for kind, step, _ in events if step == "b"]
    collapsed = [kind for i, kind in enumerate(kinds) if not (i and kind == STEP_OUTPUT == kinds[i - 1])]
    assert collapsed == [STEP_QUEUED, STEP_STARTED, STEP_OUTPUT, STEP_FINISHED]


def test_a_step_is_queued_once_the_steps_it_comes_after_finished_and_before_it_starts(tmp_path):
    nb = make_notebook(tmp_path, [("a = 1", ["step:a"]), ("b = a + 1", ["step:b"]), ("c = a + 2", ["step:c"]),
                                  ("d = b + c", ["step:d"])])
    events = []
    result = run_notebook(nb, options=LOCAL, on_event=lambda kind, step, payload: events.append((kind, step)))
    order = [e for e in events if e[0] in (STEP_QUEUED, STEP_STARTED, STEP_FINISHED)]
    for step, after in (("b", "a"), ("c", "a"), ("d", "b"), ("d", "c")):
        assert order.index((STEP_FINISHED, after)) < order.index((STEP_QUEUED, step)), order
    for step in "abcd":
        assert order.index((STEP_QUEUED, step)) < order.index((STEP_STARTED, step)), order
    # the local engine runs one step at a time: c waits, queued, while b runs
    assert order.index((STEP_QUEUED, "c")) < order.index((STEP_FINISHED, "b")), order
    # stored as events (a later reader sees when a step was queued), not as a step status
    stored = default_run_store(nb).events_since(result.run_id)
    assert [e["step"] for e in stored if e["kind"] == STEP_QUEUED] == ["a", "b", "c", "d"]
    assert STEP_OUTPUT not in {e["kind"] for e in stored}
    # a run that finds every step cached queues none
    again = []
    run_notebook(nb, options=LOCAL, on_event=lambda kind, step, payload: again.append(kind))
    assert STEP_QUEUED not in again


@pytest.mark.parametrize("workers", [0, -1, 1.5, "2", True])
def test_a_number_of_workers_that_is_not_a_whole_number_of_at_least_one_is_refused_before_a_run(tmp_path, workers):
    from nbscale.kernels.errors import ParameterError

    nb = make_notebook(tmp_path, [("x = 1", ["step:a"])], name="workers")
    with pytest.raises(ParameterError, match="workers: a whole number of at least 1"):
        run_notebook(nb, options=RunOptions(workers=workers))
    assert not (tmp_path / ".nbscale").exists() or default_run_store(nb).list_runs() == []


def test_an_on_event_that_fails_stops_being_told_and_the_run_is_recorded_as_it_went(tmp_path):
    # a live view whose reader went away (`nbscale run … 2>&1 | head`) recorded a good run as failed
    nb = make_notebook(tmp_path, [("a = 1", ["step:first"]), ("b = a + 1", ["step:second"])])
    told = []

    def broken_view(kind, step, payload):
        told.append(kind)
        raise BrokenPipeError(32, "Broken pipe")

    with pytest.warns(RuntimeWarning, match="live view stopped"):
        result = run_notebook(nb, options=LOCAL, on_event=broken_view)
    assert result.ok and result.load("second") == {"b": 2} and len(told) == 1
    with default_run_store(nb) as store:
        assert store.get_run(result.run_id)["status"] == "succeeded"


def test_steps_found_cached_stay_cached_in_a_run_cancelled_later(tmp_path):
    # they were recorded as the run ended, so a run cancelled (or killed) before that listed them as cancelled
    nb = make_notebook(tmp_path, [("a = 1", ["step:first"]), ("accuracy = 0.5", ["metrics"]),
                                  ("b = a + 1", ["step:slow", "cache:off"]), ("c = b", ["step:last"])])
    assert run_notebook(nb, options=LOCAL).ok

    def ctrl_c_when_slow_starts(kind, step, payload):
        if kind == STEP_STARTED and step == "slow":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_notebook(nb, options=LOCAL, on_event=ctrl_c_when_slow_starts)
    with default_run_store(nb) as store:
        run = store.get_run(store.list_runs()[0]["id"])
    assert run["status"] == "cancelled"
    assert {s["step"]: s["status"] for s in run["steps"]} == {
        "first": "cached", "metrics": "cached", "slow": "cancelled", "last": "cancelled"}
    assert {m["name"]: m["value"] for m in run["metrics"]} == {"accuracy": 0.5}


@pytest.mark.parametrize("engine", ["local", "dask"])
def test_what_a_step_sets_on_a_local_module_reaches_later_steps_once_as_top_to_bottom(tmp_path, engine):
    # one process runs every step (one worker): a's change must neither be lost nor applied twice
    (tmp_path / "knobs_replayed.py").write_text("LEVEL = 1\nCOUNT = 0\n\ndef level():\n    return LEVEL\n")
    nb = make_notebook(tmp_path, [
        ("import knobs_replayed as knobs", ["imports"]),
        ("first = knobs.level()", ["step:before"]),
        ("knobs.LEVEL = 5\nknobs.COUNT += 1\nknobs.ADDED = 'a'\nx = 1", ["step:sets"]),
        ("seen = (knobs.level(), knobs.COUNT, knobs.ADDED)", ["step:later"]),
        ("again = (knobs.level(), knobs.COUNT)", ["step:last"]),
    ])
    for _ in range(2):  # and again in the same process, whose module the first run changed
        result = run_notebook(nb, options=RunOptions(engine=engine, workers=1, use_cache=False))
        assert result.ok, result.steps
        assert result.load("before")["first"] == 1
        assert result.load("later")["seen"] == (5, 1, "a")
        assert result.load("last")["again"] == (5, 1)


def _report_notebook(tmp_path, line):
    return make_notebook(tmp_path, [
        ("with open('report.txt', 'w') as f:\n    f.write('header\\n')\nn = 1", ["step:make"]),
        (f"with open('report.txt', 'a') as f:\n    f.write('{line}\\n')\nm = n + 1", ["step:append"]),
        ("k = 3", ["step:other"]),
    ], name="report")


@pytest.mark.parametrize("engine", ["local", "dask"])
def test_a_file_built_by_several_steps_is_what_a_run_top_to_bottom_leaves(tmp_path, engine):
    options = RunOptions(engine=engine, workers=1)
    report = tmp_path / "report.txt"
    nb = _report_notebook(tmp_path, "line A")
    run_notebook(nb, options=options)
    assert report.read_text() == "header\nline A\n"
    nb = _report_notebook(tmp_path, "line B")  # only the appending step changed
    result = run_notebook(nb, options=options)
    assert report.read_text() == "header\nline B\n"  # not line A, then line B
    statuses = {s["name"]: s["status"] for s in result.steps}
    assert statuses == {"make": "succeeded", "append": "succeeded", "other": "cached"}
    report.unlink()  # the writer runs again: so does the step that appends to what it writes
    run_notebook(nb, options=options)
    assert report.read_text() == "header\nline B\n"
    result = run_notebook(nb, options=options)
    assert {s["status"] for s in result.steps} == {"cached"}
    assert report.read_text() == "header\nline B\n"


def test_the_cache_report_says_why_the_steps_building_a_file_run_together(tmp_path):
    run_notebook(_report_notebook(tmp_path, "line A"), options=RunOptions(engine="local"))
    report = cache_report(_report_notebook(tmp_path, "line B"), options=RunOptions(engine="local"))
    assert not report["make"]["reused"] and not report["append"]["reused"] and report["other"]["reused"]
    assert any("it uses report.txt with append (make writes it)" in w for w in report["make"]["why"])


def _overwrite_notebook(tmp_path, read="a = open('out.txt').read()"):
    return make_notebook(tmp_path, [
        ("open('out.txt', 'w').write('first')\nx = 1", ["step:w1"]),
        (read, ["step:r1"]),
        ("open('out.txt', 'w').write('second')\ny = 2", ["step:w2"]),
    ], name="overwrite")


def test_steps_that_write_one_file_in_turn_are_reused_and_a_reader_between_them_reads_its_version(tmp_path):
    options = RunOptions(engine="dask", workers=2)
    out = tmp_path / "out.txt"
    run_notebook(_overwrite_notebook(tmp_path), options=options)
    result = run_notebook(_overwrite_notebook(tmp_path), options=options)
    assert {s["name"]: s["status"] for s in result.steps} == {"w1": "cached", "r1": "cached", "w2": "cached"}
    result = run_notebook(_overwrite_notebook(tmp_path, "a = open('out.txt').read() + '?'"), options=options)
    assert {s["name"]: s["status"] for s in result.steps} == {"w1": "succeeded", "r1": "succeeded",
                                                               "w2": "succeeded"}
    stored = ArtifactStore(result.store_url).get(result.hashes["r1"], ["a"])
    assert stored["a"] == "first?"  # the version before w2's, as top to bottom
    assert out.read_text() == "second"
    out.unlink()  # the last writer's file is gone: it runs again; the steps of the first version stand
    result = run_notebook(_overwrite_notebook(tmp_path, "a = open('out.txt').read() + '?'"), options=options)
    assert {s["name"]: s["status"] for s in result.steps} == {"w1": "cached", "r1": "cached", "w2": "succeeded"}
    assert out.read_text() == "second"


def _patched_notebook(tmp_path, add):
    return make_notebook(tmp_path, [
        ("open('model.bin', 'wb').write(b'0000')", ["step:make"]),
        (f"with open('model.bin', 'rb+') as f:\n    v = f.read(1)\n    f.seek(0)\n    f.write(bytes([v[0] + {add}]))",
         ["step:patch"]),  # builds on what the file holds
    ], name="patched")


def test_a_file_edited_in_place_by_a_later_step_is_rebuilt_with_its_writer_and_reused_when_nothing_changed(tmp_path):
    options = RunOptions(engine="local")
    model = tmp_path / "model.bin"
    run_notebook(_patched_notebook(tmp_path, 1), options=options)
    assert model.read_bytes() == b"1000"
    again = run_notebook(_patched_notebook(tmp_path, 1), options=options)
    assert {s["status"] for s in again.steps} == {"cached"}
    changed = run_notebook(_patched_notebook(tmp_path, 2), options=options)
    assert {s["name"]: s["status"] for s in changed.steps} == {"make": "succeeded", "patch": "succeeded"}
    assert model.read_bytes() == b"2000"  # as top to bottom; the new patch alone on the old file gave b"3000"
    model.unlink()
    run_notebook(_patched_notebook(tmp_path, 2), options=options)
    assert model.read_bytes() == b"2000"


# a step that catches its timeout in a loop, and a child process it started: it never ends on its own
_STUBBORN = ("import subprocess, time\nchild = subprocess.Popen(['sleep', '300'])\nopen('child.pid', 'w').write("
             "str(child.pid))\nstarted = time.time()\nwhile time.time() - started < {seconds}:\n    try:\n"
             "        time.sleep(0.05)\n    except BaseException:\n        pass\nchild.kill()")
# the real CLI, its grace past the timeout cut from 10 s to 1 s so that the test takes seconds
_CLI_WITH_SHORT_GRACE = ("import sys\nimport nbscale.kernels.contract as contract\ncontract.TIMEOUT_GRACE_S = 1.0\n"
                         "sys.argv = ['nbscale', *sys.argv[1:]]\nfrom nbscale.cli import console_main\nconsole_main()")


def test_a_local_step_that_keeps_catching_its_timeout_ends_the_cli_run_failed(tmp_path):
    # it ran for ever: the timeout was raised again every second, and caught every time
    import sqlite3
    import subprocess
    import sys

    import psutil

    nb = make_notebook(tmp_path, [(_STUBBORN.format(seconds=300), ["step:stubborn", "timeout:1s"]),
                                  ("b = 1", ["step:after"])])
    start = time.monotonic()
    run = subprocess.run([sys.executable, "-c", _CLI_WITH_SHORT_GRACE, "run", str(nb), "--engine", "local"],
                         capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert time.monotonic() - start < 30
    assert run.returncode == 124, run.stderr
    assert "step 'stubborn' ran longer than its timeout of 1 s and did not stop within 1 s" in run.stderr
    with sqlite3.connect(tmp_path / ".nbscale" / "runs.sqlite") as db:
        (status, error), = db.execute("SELECT status, error FROM runs").fetchall()
        steps = dict(db.execute("SELECT step, status FROM step_runs").fetchall())
    assert status == "failed" and "did not stop" in error and "catches the timeout" in error
    assert steps == {"stubborn": "failed", "after": "cancelled"}
    child = int((tmp_path / "child.pid").read_text())
    assert not psutil.pid_exists(child) or psutil.Process(child).status() == psutil.STATUS_ZOMBIE


def test_a_program_that_calls_nbscale_run_is_never_ended_past_a_timeout(tmp_path):
    # not nbscale's own process: the step is waited for, and fails as one that caught its timeout
    import subprocess
    import sys

    nb = make_notebook(tmp_path, [(_STUBBORN.format(seconds=3), ["step:stubborn", "timeout:1s"])])
    script = ("import nbscale, nbscale.kernels.contract as contract\ncontract.TIMEOUT_GRACE_S = 0.5\n"
              f"result = nbscale.run({str(nb)!r}, engine='local')\nprint('still here', result.status)")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert run.returncode == 0 and "still here failed" in run.stdout, run.stderr


class _Records:
    """The latest results' dependencies, as `runner.learned_order` asks for them."""

    def __init__(self, records):
        self.records = records

    def all(self):
        return self.records


def test_an_order_is_learned_from_the_files_the_latest_results_wrote_and_read_unless_it_makes_a_cycle(tmp_path):
    from nbscale.compiler import compile_notebook
    from nbscale.kernels.runner import learned_order

    nb = make_notebook(tmp_path, [("x = 1", ["step:w"]), ("y = 2", ["step:c"]), ("z = 3", ["step:d"])])
    pipeline = compile_notebook(nb)
    order = {"w": 0, "c": 1, "d": 2}
    records = _Records({"w": {"files_written": {"f.txt": {}}}, "c": {"files_read": {"f.txt": {}}},
                        "d": {"files_read": {"f.txt": {}, "g.txt": None}}})
    assert learned_order(pipeline, order, records) == {"c": {"w": "f.txt"}, "d": {"w": "f.txt"}}
    records.records["d"]["files_written"] = {"g.txt": {}}  # (a step does not come after itself)
    assert learned_order(pipeline, order, records) == {"c": {"w": "f.txt"}, "d": {"w": "f.txt"}}
    pipeline.step("w").after = ["c"]  # `after:c` on an earlier step: c after w would be a cycle
    assert learned_order(pipeline, order, records) == {}


def test_a_runs_values_replaced_by_a_later_runs_are_refused_not_given(tmp_path):
    # the file the step reads changed: the next run stores its result under the same key
    from nbscale.kernels.errors import ValuesReplaced

    nb = make_notebook(tmp_path, [("z = open('data.txt').read()", ["step:reader"])], name="replaced")
    data = tmp_path / "data.txt"
    options = RunOptions(engine="local")
    data.write_text("version-1")
    first = run_notebook(nb, options=options)
    cached = run_notebook(nb, options=options)
    assert first.load("reader") == cached.load("reader") == {"z": "version-1"}
    data.write_text("version-2")
    later = run_notebook(nb, options=options)
    assert later.hashes == first.hashes and later.load("reader") == {"z": "version-2"}
    for earlier in (first, cached):  # one that ran the step, one that found it cached
        with pytest.raises(ValuesReplaced, match=f"run {earlier.run_id[:12]} were replaced by a later run"):
            earlier.load("reader")


def test_a_step_a_run_has_not_is_a_key_error_naming_its_steps():
    from nbscale.kernels.runner import RunResult

    result = RunResult("0123456789abcdef", "succeeded", [{"name": "load"}, {"name": "train"}], {}, "file:///x")
    assert result.step("train") == {"name": "train"}
    with pytest.raises(KeyError, match="has no step 'tran' \\(its steps: load, train\\)"):
        result.step("tran")


def test_a_runs_values_stored_again_unchanged_by_a_later_run_are_still_its_own(tmp_path):
    nb = make_notebook(tmp_path, [("z = open('data.txt').read()", ["step:reader"])], name="again")
    (tmp_path / "data.txt").write_text("same")
    first = run_notebook(nb, options=RunOptions(engine="local"))
    later = run_notebook(nb, options=RunOptions(engine="local", use_cache=False))  # stored anew, the same values
    assert later.hashes == first.hashes and first.load("reader") == {"z": "same"}


BIG = 32 * 2**20 // 8 + 1_000  # float64 items: over the size the Dask engine writes in the background (`handoff`)


@pytest.mark.parametrize("engine", ["local", "dask"])
def test_a_runs_values_are_those_its_steps_stored_not_those_under_their_key_as_it_ends(tmp_path, engine):
    # on Dask, `make` hands on a big array: its store write (with the kept `label`) ends in the background
    from nbscale.kernels.contract import RUN_FINISHED, artifacts_url
    from nbscale.kernels.errors import ValuesReplaced
    from nbscale.kernels.task import stored_digests

    nb = make_notebook(tmp_path, [
        ("import numpy as np", ["imports"]),
        (f"value = np.arange({BIG}, dtype=np.float64)\nlabel = open('data.txt').read()", ["step:make"]),
        ("total = float(value.sum())", ["step:use"]),
    ], name="own")
    (tmp_path / "data.txt").write_text("version-1")
    options = RunOptions(engine=engine, workers=1, use_cache=False)
    result = run_notebook(nb, options=options)
    assert result.ok, result.steps
    manifest = ArtifactStore(result.store_url).manifest(result.hashes["make"])
    assert manifest["outputs"]["value"].get("content", "").startswith("value-") == (engine == "dask")
    assert result.stored["make"] == stored_digests(manifest) and set(result.stored["make"]) == {"value", "label"}
    assert result.load("make", ["label"]) == {"label": "version-1"} and result.load("use")["total"] > 0

    def another_run_stores_others(kind, step, payload):
        if kind == RUN_FINISHED:  # the steps' values are stored; the run has not returned yet
            ArtifactStore(artifacts_url(nb)).put(result.hashes["make"], {"value": [0], "label": "another run's"},
                                                 [], "make", replace=True)

    again = run_notebook(nb, options=options, on_event=another_run_stores_others)
    assert again.ok and again.hashes == result.hashes
    with pytest.raises(ValuesReplaced, match=f"run {again.run_id[:12]} were replaced by a later run"):
        again.load("make")  # not the other run's values as this run's


def _load_between_check_and_read(monkeypatch, later_run):
    """`ArtifactStore.get` runs `later_run()` (once) before it reads: another run stores its values after a
    load compared the digests stored under the key, and before it reads them."""
    real_get, pending = ArtifactStore.get, [later_run]

    def get(store, key, names=None):
        if pending:
            pending.pop()()
        return real_get(store, key, names)

    monkeypatch.setattr(ArtifactStore, "get", get)
    return pending


def test_values_a_later_run_stores_between_the_check_and_the_read_are_refused_not_given(tmp_path, monkeypatch):
    from nbscale.kernels.errors import ValuesReplaced

    nb = make_notebook(tmp_path, [("z = open('data.txt').read()", ["step:reader"])], name="raced")
    data = tmp_path / "data.txt"
    data.write_text("version-1")
    first = run_notebook(nb, options=LOCAL)
    later = []
    # the same values stored again meanwhile: still the first run's, and read
    pending = _load_between_check_and_read(monkeypatch, lambda: later.append(
        run_notebook(nb, options=RunOptions(engine="local", use_cache=False))))
    assert first.load("reader") == {"z": "version-1"} and not pending and later[-1].hashes == first.hashes
    data.write_text("version-2")  # others: refused, not given as the first run's
    pending.append(lambda: later.append(run_notebook(nb, options=LOCAL)))
    with pytest.raises(ValuesReplaced, match=f"run {first.run_id[:12]} were replaced by a later run"):
        first.load("reader")
    assert not pending and later[-1].hashes == first.hashes and later[-1].load("reader") == {"z": "version-2"}


def test_loads_beside_runs_storing_other_values_under_the_key_give_the_runs_own_or_refuse(tmp_path):
    from nbscale.kernels.errors import ValuesReplaced

    nb = make_notebook(tmp_path, [("z = open('data.txt').read()", ["step:reader"])], name="beside")
    data = tmp_path / "data.txt"
    data.write_text("version-1")
    first = run_notebook(nb, options=LOCAL)
    seen, errors, stop = [], [], threading.Event()

    def load_again_and_again():
        while not stop.is_set():
            try:
                seen.append(first.load("reader")["z"])
            except ValuesReplaced:
                seen.append("replaced")
            except Exception as exc:  # noqa: BLE001 - what the test is about
                errors.append(exc)
                return

    loader = threading.Thread(target=load_again_and_again)
    loader.start()
    try:
        for version in ["version-2", "version-1"] * 3:  # the step runs again each time, under the same key
            data.write_text(version)
            assert run_notebook(nb, options=LOCAL).hashes == first.hashes
    finally:
        stop.set()
        loader.join()
    assert not errors and seen and set(seen) <= {"version-1", "replaced"}
