"""run_step: the body of one step as any engine runs it, called directly with StepSpecs."""

from __future__ import annotations

import os
import sys

import pytest
from conftest import install_library, make_notebook

from nbscale.compiler import compile_notebook
from nbscale.kernels.contract import CACHED, FAILED, SUCCEEDED, UPSTREAM_FAILED, StepOutcome, StepSpec
from nbscale.kernels.runner import final_names
from nbscale.kernels.store import ArtifactStore
from nbscale.kernels.task import run_step


def _specs(tmp_path, cells, use_cache=True):
    nb = make_notebook(tmp_path, cells)
    pipeline = compile_notebook(nb)
    ir = pipeline.to_json()
    finals = final_names(pipeline)
    values = {p.name: p.default for p in pipeline.parameters}
    return {s["name"]: StepSpec(step=s, prelude=ir["prelude"], metrics=ir["metrics"],
                                parameters={p: values[p] for p in s["parameters"]}, hash=f"sha256:{i:064d}",
                                store_url=str(tmp_path / "store"), cwd=str(tmp_path), notebook=str(nb),
                                use_cache=use_cache, keep=sorted(finals[s["name"]]))
            for i, s in enumerate(ir["steps"])}


CELLS = [
    ("k = 2", ["parameters"]),
    ("items = [1, 2]\nlabel = 'x'", ["step:make"]),
    ("items.append(k)\ncount = len(items)", ["step:grow"]),
]


def test_run_step_passes_values_and_persists(tmp_path):
    specs = _specs(tmp_path, CELLS)
    events = []
    make = run_step(specs["make"], {}, lambda *e: events.append(e[:2]))
    assert make.status == SUCCEEDED and make.ok and make.attempts == 1
    assert make.values["items"] == [1, 2]
    assert make.finished >= make.started > 0
    grow = run_step(specs["grow"], {"make": make}, lambda *e: events.append(e[:2]))
    assert grow.status == SUCCEEDED and grow.values == {}  # nothing downstream reads grow's values
    assert make.values["items"] == [1, 2], "a step must work on copies of its inputs"
    assert ("step_started", "make") in events and ("step_started", "grow") in events
    assert grow.key != specs["grow"].hash and make.key == specs["make"].hash  # keys chain on inputs
    stored = ArtifactStore(specs["grow"].store_url).get(grow.key)
    assert stored["count"] == 3 and stored["items"] == [1, 2, 2]


def test_step_started_is_emitted_once_as_the_code_starts_after_the_isolation_set_up(tmp_path):
    from nbscale.kernels import process_state

    specs = _specs(tmp_path, [("raise ValueError('flaky')", ["step:flaky", "retries:1"])])
    seen = []

    def emit(kind, step, payload=None):
        if kind == "step_started":  # the step's process state is saved by now: its code is next
            seen.append((kind, bool(process_state._active)))
        elif kind == "step_retry":
            seen.append((kind, None))

    outcome = run_step(specs["flaky"], {}, emit)
    assert outcome.attempts == 2
    assert seen == [("step_started", True), ("step_retry", None)]


def test_keys_chain_on_the_values_upstream_produced(tmp_path):
    specs = _specs(tmp_path, CELLS)
    make = run_step(specs["make"], {})
    assert run_step(specs["grow"], {"make": make}).status == SUCCEEDED
    # the same values from upstream (an upstream re-run that changed nothing): the reader is cached
    same = StepOutcome("make", SUCCEEDED, values=make.values, digests=dict(make.digests))
    assert run_step(specs["grow"], {"make": same}).status == CACHED
    # other values under the same upstream code: the reader runs again
    other = run_step(specs["make"], {})  # cached, same digests
    other.values["items"] = [7]
    other.digests["items"] = "xxh3_128:other"
    again = run_step(specs["grow"], {"make": other})
    assert again.status == SUCCEEDED and again.summary["outputs"] == ["count", "items"] or again.ok


def test_run_step_cached_and_upstream_failed(tmp_path):
    specs = _specs(tmp_path, CELLS)
    first = run_step(specs["make"], {})
    events = []
    again = run_step(specs["make"], {}, lambda *e: events.append(e[0]))
    assert again.status == CACHED and again.values["items"] == [1, 2] and events == ["step_cached"]
    nocache = _specs(tmp_path, CELLS, use_cache=False)
    assert run_step(nocache["make"], {}).status == SUCCEEDED  # same hash, already stored: runs anyway
    broken = StepOutcome("make", FAILED)
    out = run_step(specs["grow"], {"make": broken})
    assert out.status == UPSTREAM_FAILED and "make" in out.summary["reason"] and not out.ok
    assert first.ok


def test_an_outcome_carries_the_digests_of_what_its_step_stored_kept_values_too(tmp_path):
    import dataclasses

    import numpy as np

    from nbscale.kernels.handoff import ASYNC_MIN_BYTES, wait_for_writes
    from nbscale.kernels.task import stored_digests, written_digests

    specs = _specs(tmp_path, CELLS)
    store = ArtifactStore(specs["make"].store_url)
    make = run_step(specs["make"], {})  # `items` handed on, `label` kept
    assert make.stored == stored_digests(store.manifest(make.key)) and set(make.stored) == {
        "items", "label"}
    cached = run_step(specs["make"], {})
    assert cached.status == CACHED and cached.stored == make.stored
    # a write left in the background: its digests are taken once it ended, for the engine to give the outcome
    big = ASYNC_MIN_BYTES // 8 + 1_000
    specs = _specs(tmp_path, [("import numpy as np", ["imports"]),
                              (f"value = np.arange({big}, dtype=np.float64)\nlabel = 'v'", ["step:big"]),
                              ("total = float(value.sum())", ["step:use"])], use_cache=False)
    spec = dataclasses.replace(specs["big"], background_run="run-1")
    outcome = run_step(spec, {})
    assert outcome.ok and not outcome.stored and np.array_equal(outcome.values["value"], np.arange(big))
    assert wait_for_writes("run-1") == {}
    written = written_digests("run-1")
    assert written == {"big": stored_digests(store.manifest(outcome.key))} and set(written["big"]) == {"value", "label"}
    assert written_digests("run-1") == {}  # taken


def test_run_step_failure_maps_cell_and_line(tmp_path):
    specs = _specs(tmp_path, [("a = 1", ["step:s"]), ("b = a\n\nc = b / 0", [])])
    out = run_step(specs["s"], {})
    assert out.status == FAILED and out.values == {}
    assert out.summary["error"]["cell"] == 1 and out.summary["error"]["line"] == 3
    assert not ArtifactStore(specs["s"].store_url).has(specs["s"].hash, specs["s"].step["outputs"])


@pytest.mark.parametrize("code", [
    "n = 0\nwhile True:\n    n += 1",
    # (in the main thread, as the local engine runs it: no bytecode runs while it sleeps or waits)
    "import time\ntime.sleep(60)",
    "import subprocess\nsubprocess.run(['sleep', '60'])",
], ids=["python", "sleeping", "waiting_for_a_child"])
def test_timeout_tag_stops_the_step_at_its_cell_and_line(tmp_path, code):
    import time

    specs = _specs(tmp_path, [(code, ["step:spin", "timeout:1s"])])
    start = time.monotonic()
    out = run_step(specs["spin"], {})
    assert time.monotonic() - start < 5
    error = out.summary["error"]
    assert out.status == FAILED and error["ename"] == "StepTimeout" and "timeout of 1 s" in error["evalue"]
    assert (error["cell"], error["line"]) == (0, 2)


@pytest.mark.parametrize("handler", ["except Exception:\n        swallowed += 1",
                                     "except BaseException:\n        swallowed += 1\n        if swallowed > 2:\n"
                                     "            raise"])
def test_a_timeout_the_steps_own_except_swallows_still_stops_it(tmp_path, handler):
    import time

    code = f"swallowed = 0\nwhile True:\n    try:\n        n = sum(range(1000))\n    {handler}"
    specs = _specs(tmp_path, [(code, ["step:stubborn", "timeout:1s"])])
    start = time.monotonic()
    out = run_step(specs["stubborn"], {})
    assert time.monotonic() - start < 8  # raised again every second until the step ends
    assert out.status == FAILED and out.summary["error"]["ename"] == "StepTimeout"
    assert "timeout of 1 s" in out.summary["error"]["evalue"]


@pytest.mark.parametrize("handler", ["except:", "except BaseException:"])
def test_a_step_that_catches_its_timeout_and_ends_fails_and_keeps_nothing(tmp_path, handler):
    """Its cut-short result was recorded succeeded, and reused from the cache on the next run."""
    code = ("import time\nepochs = 0\ntry:\n    for _ in range(50):\n        time.sleep(0.1)\n        epochs += 1\n"
            f"{handler}\n    print('stopped early')")
    specs = _specs(tmp_path, [(code, ["step:train", "timeout:1s"])])
    out = run_step(specs["train"], {})
    assert out.status == FAILED and out.summary["error"]["ename"] == "StepTimeout"
    assert "its code caught the timeout and ended on its own" in out.summary["error"]["evalue"]
    assert not ArtifactStore(specs["train"].store_url).has(specs["train"].hash, specs["train"].step["outputs"])


def test_a_timeout_striking_nbscales_own_code_after_the_step_is_the_steps_timeout(tmp_path):
    from nbscale.kernels.errors import StepTimeout

    specs = _specs(tmp_path, [("x = 1", ["step:late", "timeout:1s"])])

    def struck_as_the_step_ended(spec, inputs):
        raise StepTimeout()

    out = run_step(specs["late"], {}, execute=struck_as_the_step_ended)
    assert out.status == FAILED and out.summary["error"]["ename"] == "StepTimeout"
    assert "timeout of 1 s" in out.summary["error"]["evalue"]


def test_a_step_finishing_in_time_is_not_interrupted_later(tmp_path):
    import time

    specs = _specs(tmp_path, [("x = 1", ["step:quick", "timeout:1s"])])
    assert run_step(specs["quick"], {}).status == SUCCEEDED
    time.sleep(1.3)  # the timer must have been disarmed: nothing is raised into this thread


def test_missing_notebook_folder_on_the_worker_is_a_clear_failure(tmp_path):
    specs = _specs(tmp_path, [("x = 1", ["step:a"])])
    spec = specs["a"]
    spec.cwd = str(tmp_path / "not-on-this-machine")
    out = run_step(spec, {})
    assert out.status == FAILED and "does not exist" in out.summary["error"]["evalue"]
    assert "shared file system" in out.summary["error"]["evalue"]


def test_missing_relative_file_names_the_folder_it_was_looked_up_in(tmp_path):
    specs = _specs(tmp_path, [("open('data/train.csv')", ["step:a"])])
    error = run_step(specs["a"], {}).summary["error"]
    assert error["ename"] == "FileNotFoundError" and str(tmp_path) in error["evalue"]


def test_an_internal_failure_is_a_failed_outcome_not_an_exception(tmp_path):
    specs = _specs(tmp_path, [("x = 1", ["step:a"])])
    spec = specs["a"]
    spec.store_url = "no-such-protocol-xyz://bucket/artifacts"
    out = run_step(spec, {})
    assert out.status == FAILED and "could not run the step" in out.summary["error"]["evalue"]


def test_unchanged_pandas_inputs_are_copied_lazily_and_still_private(tmp_path):
    import pandas as pd

    cells = [("import pandas as pd", ["imports"]),
             ("df = pd.DataFrame({'x': [1, 2]})", ["step:make"]),
             # a write the analysis cannot see: `df` is not among the step's changed names
             ("type(df).__setitem__(df, 'x', 0)\ntotal = int(df['x'].sum())", ["step:sneaky"])]
    specs = _specs(tmp_path, cells)
    make = run_step(specs["make"], {})
    assert "df" not in specs["sneaky"].step["defines"]
    sneaky = run_step(specs["sneaky"], {"make": make})
    assert sneaky.status == SUCCEEDED
    assert ArtifactStore(specs["sneaky"].store_url).get(sneaky.key)["total"] == 0
    assert make.values["df"]["x"].tolist() == [1, 2], "copy-on-write keeps the write private"
    assert isinstance(make.values["df"], pd.DataFrame)


# --- isolation: what a step changes process-wide, and the processes it starts ------------------

PATCHING_STEP = """
import json, os, random, sys, subprocess
os.environ['NBSCALE_ISOLATION_X'] = '1'
sys.path.insert(0, '/evil')
os.chdir('/')
json.dumps = lambda *a, **k: 'patched'
random.seed(1)
sleeper = subprocess.Popen(['sleep', '600'])
open(PID_FILE, 'w').write(str(sleeper.pid))
"""


def _gone(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_what_a_step_changes_process_wide_is_put_back_and_its_processes_end(tmp_path):
    import json
    import os
    import random
    import sys

    pid_file = tmp_path / "sleeper.pid"
    cells = [(f"PID_FILE = {str(pid_file)!r}\n" + PATCHING_STEP, ["step:patch"])]
    specs = _specs(tmp_path, cells)
    cwd, path, dumps = os.getcwd(), list(sys.path), json.dumps
    events = []
    out = run_step(specs["patch"], {}, lambda *e: events.append(e))
    state = random.getstate()
    assert out.status == SUCCEEDED, out.summary.get("error")
    assert "NBSCALE_ISOLATION_X" not in os.environ and os.getenv("NBSCALE_ISOLATION_X") is None
    assert sys.path == path and "/evil" not in sys.path
    assert os.getcwd() == cwd
    assert json.dumps is dumps and json.dumps([1]) == "[1]"
    random.seed(1)
    assert random.getstate() != state, "the step's seed must not reach later code"
    assert _gone(int(pid_file.read_text())), "the step's sleep 600 must end with the step"
    warning = next(payload["message"] for kind, step, payload in events if kind == "warning")
    assert "json.dumps" in warning and "sys.path" in warning
    assert "NBSCALE_ISOLATION_X" not in warning, "a variable set by a statement travels to later steps"
    assert "random" not in warning, "reseeding is routine"


def test_a_step_that_changes_nothing_process_wide_warns_about_nothing(tmp_path):
    events = []
    cells = [("import random\nvalue = random.random()\nprint(value)", ["step:draw"])]
    assert run_step(_specs(tmp_path, cells)["draw"], {}, lambda *e: events.append(e)).status == SUCCEEDED
    assert [e for e in events if e[0] == "warning"] == []


def test_what_a_library_sets_for_itself_when_the_imports_cell_first_imports_it_stays(tmp_path):
    # scikit-learn sets KMP_* variables when first imported: every step runs with them, no warning;
    # a variable the imports cell sets without importing anything new is put back after each step,
    # and set again by the imports cell before the next one: no warning either
    import os
    import sys

    (tmp_path / "nbscale_envlib.py").write_text("import os\nos.environ['NBSCALE_ENVLIB'] = 'set by the library'\n")
    cells = [("import os\nimport nbscale_envlib", ["imports"]), ("seen = os.environ.get('NBSCALE_ENVLIB')", ["step:a"]),
             ("both = (seen, os.environ.get('NBSCALE_ENVLIB'))", ["step:b"])]
    try:
        specs, events = _specs(tmp_path, cells), []
        a = run_step(specs["a"], {}, lambda *e: events.append(e))
        b = run_step(specs["b"], {"a": a}, lambda *e: events.append(e))
        assert ArtifactStore(specs["b"].store_url).get(b.key)["both"] == ("set by the library", "set by the library")
        assert [e for e in events if e[0] == "warning"] == []
        assert os.environ.get("NBSCALE_ENVLIB") == "set by the library"
        (tmp_path / "own").mkdir()
        own = _specs(tmp_path / "own", [("import os\nos.environ['NBSCALE_ENV_OWN'] = '1'", ["imports"]),
                                        ("x = 1", ["step:c"])])
        run_step(own["c"], {}, lambda *e: events.append(e))
        assert "NBSCALE_ENV_OWN" not in os.environ
        assert [e for e in events if e[0] == "warning"] == []
    finally:
        os.environ.pop("NBSCALE_ENVLIB", None)
        sys.modules.pop("nbscale_envlib", None)


def test_a_shell_command_left_in_the_background_ends_with_the_step(tmp_path):
    pid_file = tmp_path / "bg.pid"
    cells = [(f"!nohup sleep 600 > /dev/null 2>&1 & echo $! > {pid_file}", ["step:bg"])]
    out = run_step(_specs(tmp_path, cells)["bg"], {})
    assert out.status == SUCCEEDED, out.summary.get("error")
    assert _gone(int(pid_file.read_text()))


def test_a_failing_or_timed_out_step_is_cleaned_up_too(tmp_path):
    import os

    pid_file = tmp_path / "sleeper.pid"
    cells = [("import os, subprocess\nos.environ['NBSCALE_ISOLATION_Y'] = '1'\n"
              f"open({str(pid_file)!r}, 'w').write(str(subprocess.Popen(['sleep', '600']).pid))\n"
              "while True:\n    pass", ["step:spin", "timeout:1s"])]
    out = run_step(_specs(tmp_path, cells)["spin"], {})
    assert out.status == FAILED and out.summary["error"]["ename"] == "StepTimeout"
    assert "NBSCALE_ISOLATION_Y" not in os.environ
    assert _gone(int(pid_file.read_text()))


def test_runs_on_one_dask_worker_do_not_see_each_others_changes(tmp_path):
    """Notebook A patches process-wide state on the only worker; notebook B, run after it on the
    same cluster, sees the worker as it was."""
    from distributed import LocalCluster

    from nbscale.kernels.runner import RunOptions, run_notebook

    pid_file, seen_file = tmp_path / "a" / "sleeper.pid", tmp_path / "b" / "seen.txt"
    a_cells = [(f"PID_FILE = {str(pid_file)!r}\n" + PATCHING_STEP, ["step:patch"])]
    b_cells = [("import json, os, random, sys\n"
                "value = random.random()\nrandom.seed(1)\n"
                "seen = {'x': os.environ.get('NBSCALE_ISOLATION_X'), 'evil': '/evil' in sys.path,\n"
                "        'seeded': value == random.random(),\n"
                "        'dumps': json.dumps([1]), 'cwd': os.getcwd()}\n"
                f"open({str(seen_file)!r}, 'w').write(repr(seen))", ["step:look"])]
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = make_notebook(tmp_path / "a", a_cells, name="a")
    b = make_notebook(tmp_path / "b", b_cells, name="b")
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
                      host="127.0.0.1") as cluster:
        options = RunOptions(engine="dask", scheduler=cluster.scheduler_address, use_cache=False)
        events = []
        assert run_notebook(a, options=options, on_event=lambda *e: events.append(e)).ok
        assert any(kind == "warning" and step == "patch" and "json.dumps" in payload["message"]
                   for kind, step, payload in events), "the worker's warning reaches the client"
        assert _gone(int(pid_file.read_text())), "the step's sleep 600 must end with the step"
        assert run_notebook(b, options=options).ok
    seen = eval(seen_file.read_text())  # noqa: S307 - written by the test's own notebook
    assert seen == {"x": None, "evil": False, "seeded": False, "dumps": "[1]", "cwd": str(b.parent)}


def test_an_edited_local_module_is_imported_afresh_and_stays_for_later_steps(tmp_path):
    """Restoring must not bring back a stale module: the eviction of edited local modules happens
    before the snapshot, and a submodule bound on its package by the new import stays."""
    import os
    import sys

    package = tmp_path / "nbscale_iso_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    sub = package / "sub.py"
    sub.write_text("VALUE = 1\n")
    cells = [("import nbscale_iso_pkg.sub\nseen = nbscale_iso_pkg.sub.VALUE", ["step:look"])]
    try:
        first = run_step(_specs(tmp_path, cells, use_cache=False)["look"], {})
        assert first.status == SUCCEEDED and first.summary["error"] is None
        sub.write_text("VALUE = 2  # edited\n")
        stat = sub.stat()
        os.utime(sub, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
        for _ in range(2):  # the second time: what the first one left must still be the new module
            spec = _specs(tmp_path, cells, use_cache=False)["look"]
            out = run_step(spec, {})
            assert out.status == SUCCEEDED
            assert ArtifactStore(spec.store_url).get(out.key)["seen"] == 2
    finally:
        for name in [n for n in sys.modules if n.startswith("nbscale_iso_pkg")]:
            del sys.modules[name]


@pytest.mark.parametrize("engine", ["local", "dask"])
def test_a_store_that_cannot_take_a_result_costs_only_its_cache_entry(tmp_path, engine):
    from conftest import collect_events, make_notebook

    from nbscale.kernels.contract import WARNING
    from nbscale.kernels.runner import RunOptions, run_notebook

    nb = make_notebook(tmp_path, [("x = list(range(10))", ["step:a"]),
                                  ("total = sum(x)\ntotal", ["step:b", "metrics"])])
    (tmp_path / ".nbscale").mkdir()
    (tmp_path / ".nbscale" / "artifacts").write_text("a file where the store's folder must be")
    warned, on_event = collect_events(WARNING)
    result = run_notebook(nb, options=RunOptions(engine=engine, workers=1), on_event=on_event)
    assert result.ok, result.steps
    assert result.metrics == {"total": 45}  # handed on in memory
    messages = [w["payload"]["message"] for w in warned]
    assert any("could not store" in m and "NotADirectoryError" in m for m in messages), messages


def test_a_store_that_refuses_writes_costs_only_the_cache_entries_and_one_it_cannot_open_is_refused(tmp_path):
    """fsspec's HTTP file system reads and refuses writes with NotImplementedError; a stand-in with the
    same behaviour over fsspec's memory file system (no HTTP server here), registered in this process
    (so the local engine)."""
    import fsspec
    from conftest import collect_events, make_notebook
    from fsspec.implementations.memory import MemoryFileSystem

    from nbscale.kernels.contract import WARNING
    from nbscale.kernels.errors import StoreUnusable
    from nbscale.kernels.runner import RunOptions, default_run_store, run_notebook

    class ReadOnly(MemoryFileSystem):
        protocol = "nbscale-test-readonly"

        def _open(self, path, mode="rb", **kwargs):
            if "r" not in mode:
                raise NotImplementedError
            return super()._open(path, mode, **kwargs)

        def rm(self, *args, **kwargs):
            raise NotImplementedError

    fsspec.register_implementation(ReadOnly.protocol, ReadOnly, clobber=True)
    nb = make_notebook(tmp_path, [("x = 1", ["step:a"]), ("y = x + 1", ["step:b"])])
    warned, on_event = collect_events(WARNING)
    result = run_notebook(nb, options=RunOptions(engine="local", store_url=f"{ReadOnly.protocol}://store"),
                          on_event=on_event)
    assert result.ok and [s["status"] for s in result.steps] == ["succeeded", "succeeded"]
    assert sum("could not store" in w["payload"]["message"] for w in warned) == 2
    with pytest.raises(StoreUnusable, match="cannot open the artifact store 'nbscale-no-such://x'"):
        run_notebook(nb, options=RunOptions(engine="local", store_url="nbscale-no-such://x"))
    with default_run_store(nb) as runs:
        assert [r["status"] for r in runs.list_runs()] == ["succeeded"]  # (nothing recorded for the refused one)


def test_a_thread_a_step_leaves_running_is_a_warning_naming_it(tmp_path):
    from conftest import collect_events, make_notebook

    from nbscale.kernels.contract import WARNING
    from nbscale.kernels.runner import RunOptions, run_notebook

    nb = make_notebook(tmp_path, [("import threading\nstop = threading.Event()\n"
                                   "threading.Thread(target=stop.wait, name='poller').start()\nx = 1", ["step:a"])])
    warned, on_event = collect_events(WARNING)
    try:
        result = run_notebook(nb, options=RunOptions(engine="local"), on_event=on_event)
        messages = [w["payload"]["message"] for w in warned]
        assert result.ok and any("left a thread running (poller)" in m for m in messages), messages
    finally:
        import threading

        for thread in threading.enumerate():
            if thread.name == "poller":
                thread._target.__self__.set()  # the step's Event: let it end


@pytest.mark.parametrize("engine", ["local", "dask"])
def test_a_variable_a_step_sets_travels_to_later_steps_without_a_warning(tmp_path, engine):
    # top to bottom, `os.environ["MODE_X"] = ...` in one cell is seen by every later cell
    from conftest import collect_events, make_notebook

    from nbscale.kernels.contract import WARNING
    from nbscale.kernels.runner import RunOptions, run_notebook

    nb = make_notebook(tmp_path, [("import os", ["imports"]),
                                  ("os.environ['MODE_X'] = 'fast1'\na = 1", ["step:a"]),
                                  ("b = os.environ.get('MODE_X')", ["step:b"])])
    warned, on_event = collect_events(WARNING)
    result = run_notebook(nb, options=RunOptions(engine=engine, workers=1, use_cache=False), on_event=on_event)
    assert result.ok and result.load("b")["b"] == "fast1"
    assert [w for w in warned if "MODE_X" in w["payload"]["message"]] == []
    assert os.environ.get("MODE_X") is None, "put back after the run"


def test_what_the_imports_cell_changes_is_no_warning_and_a_steps_own_change_is(tmp_path):
    # the imports cell runs again before every step: its sys.path change is put back, as always,
    # but no later step misses it
    from conftest import collect_events, make_notebook

    from nbscale.kernels.contract import WARNING
    from nbscale.kernels.runner import RunOptions, run_notebook

    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "mymod_in_lib.py").write_text("V = 3\n")
    nb = make_notebook(tmp_path, [("import sys\nsys.path.insert(0, 'lib')\nimport mymod_in_lib", ["imports"]),
                                  ("r = mymod_in_lib.V", ["step:a"]),
                                  ("sys.setrecursionlimit(5000)\nsys.path.append('other')\ns = r", ["step:b"])])
    warned, on_event = collect_events(WARNING)
    try:
        result = run_notebook(nb, options=RunOptions(engine="local", use_cache=False), on_event=on_event)
    finally:
        sys.modules.pop("mymod_in_lib", None)
    assert result.ok and result.load("b")["s"] == 3
    said = {w["step"]: w["payload"]["message"] for w in warned if "process-wide" in w["payload"]["message"]}
    assert "a" not in said
    assert "recursion limit" in said["b"]


def test_a_library_the_imports_cell_sets_up_is_no_warning_and_a_step_patching_it_is():
    """`matplotlib.use("Agg")` in the imports cell changes pyplot's module as it runs again before each
    step: no warning for a step that never names matplotlib; one for a step that patches a library."""
    from nbscale.kernels.task import _made_again

    prelude = {"source": ["import json\nimport matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt"]}
    assert _made_again("matplotlib.pyplot._backend_mod", {"source": ["y = 2"]}, prelude)
    assert not _made_again("json.dumps", {"source": ["json.dumps = repr"]}, prelude)
    assert not _made_again("matplotlib.pyplot._backend_mod", {"source": ["plt.switch_backend('pdf')"]}, {})


def test_a_process_holding_a_library_reinstalled_since_refuses_the_step_saying_which(tmp_path, library):
    # a kernel (or a warm worker) imported lib 1.0; `pip install lib==2.0` followed: the step would run
    # 1.0's code while everything says 2.0 is installed
    site, name = library
    (tmp_path / "nb").mkdir()
    specs = _specs(tmp_path / "nb", [(f"import {name}\nv = {name}.VALUE", ["step:use"]),
                                           ("w = v", ["step:read"])], use_cache=False)
    first = run_step(specs["use"], {})
    assert first.status == SUCCEEDED and first.values["v"] == 1
    install_library(site, name, "2.0", 2)
    refused = run_step(specs["use"], {})
    assert refused.status == FAILED and refused.values == {}
    error = refused.summary["error"]
    assert error["ename"] == "OutdatedLibraries"
    assert f"imported {name} 1.0 (installed now: 2.0)" in error["evalue"] and "Restart" in error["evalue"]
    sys.modules.pop(name)  # what a restarted process is: the step imports 2.0
    again = run_step(specs["use"], {})
    assert again.status == SUCCEEDED and again.values["v"] == 2


@pytest.mark.parametrize("tags", [["step:download"], ["step:download", "cache:off"]])
def test_a_step_that_read_over_the_network_warns_that_its_reuse_cannot_be_checked(tmp_path, tags):
    connect = ("import socket\nwith socket.socket() as s:\n    s.setblocking(False)\n"
               "    s.connect_ex(('192.0.2.7', 443))\nrows = 3")
    specs = _specs(tmp_path, [(connect, tags), ("n = rows", ["step:count"])])
    events = []
    outcome = run_step(specs["download"], {}, lambda *e: events.append(e))
    assert outcome.status == SUCCEEDED
    warnings = [payload["message"] for kind, step, payload in events if kind == "warning"]
    if "cache:off" in tags:  # never reused: nothing to warn of
        assert warnings == []
    else:  # its result is kept, and would be reused with nothing to check
        assert len(warnings) == 1 and "read over the network (192.0.2.7:443)" in warnings[0]
        assert "cache:off" in warnings[0]


def test_runs_at_once_share_the_refusal_of_os_exit_and_the_last_puts_it_back():
    # each putting back what it found left the refusal in place for good, or took it from a step
    # still running, as runs from threads ended in turn
    import os
    import threading

    from nbscale.kernels.task import exit_refused

    real, inside, leave = os._exit, threading.Barrier(3), [threading.Event() for _ in range(3)]
    seen = []

    def run(i):
        with exit_refused():
            inside.wait(timeout=10)
            leave[i].wait(timeout=10)
            seen.append(os._exit is not real)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for i in (1, 0, 2):  # not in the order they came in
        leave[i].set()
        threads[i].join(timeout=10)
        assert (os._exit is real) == (i == 2)
    assert seen == [True, True, True]
    with pytest.raises(SystemExit, match="would end the process running the step"), exit_refused():
        os._exit(3)
    assert os._exit is real
