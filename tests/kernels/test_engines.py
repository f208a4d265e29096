"""The engine registry (kernels/engines/__init__.py): built-ins, unknown and broken engines."""

from __future__ import annotations

import importlib
import os
import re
import signal
import subprocess
import sys

import pytest

from nbscale.errors import PluginError
from nbscale.kernels.engines import check_engine_name, engine_names, engines, get_engine
from nbscale.kernels.engines.local import LocalEngine


def test_builtin_engines():
    assert {"dask", "local", "papermill", "kfp-local"} <= set(engine_names())
    assert isinstance(get_engine("local"), LocalEngine)


def test_an_engine_imports_no_other_engine():
    # a run on Dask does not pay for the papermill engine's imports (IPython, the executor), ~50 ms
    probe = ("import sys\nfrom nbscale.kernels.engines import check_engine_name, get_engine\n"
             "check_engine_name('papermill')\nget_engine('dask')\n"
             "print(sorted(m.rsplit('.', 1)[1] for m in sys.modules if m.startswith('nbscale.kernels.engines.')))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert "'dask'" in loaded and "'papermill'" not in loaded and "'kfp_local'" not in loaded


def test_an_unknown_engine_lists_the_known_ones():
    with pytest.raises(PluginError, match=r"unknown engine 'warp'; choose one of .*dask.*local"):
        get_engine("warp")
    with pytest.raises(PluginError, match=r"unknown engine 'warp'"):
        check_engine_name("warp")  # before anything is recorded


def test_a_broken_engine_plugin_names_itself(tmp_path, monkeypatch):
    dist = tmp_path / "brokenengine-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: brokenengine\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[nbscale.engines]\nbroken = brokenengine_missing:Engine\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(engines, "_entry_points", None)  # scan the entry points again
    with pytest.raises(PluginError, match=r"engine 'broken' \(brokenengine_missing:Engine.*failed to load"):
        get_engine("broken")
    assert isinstance(get_engine("local"), LocalEngine)


# --- what a step shows and how it ends are the same under every engine ---------------------------

ENGINES = ["local", "dask", "papermill", "kfp-local"]


@pytest.fixture(scope="module")
def one_worker():
    """A cluster of one worker process: consecutive steps share it, as they share a busy worker."""
    from distributed import LocalCluster

    cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0",
                           host="127.0.0.1")
    yield cluster.scheduler_address
    cluster.close()


def run_collecting(path, engine, scheduler=None) -> tuple:
    """Run the notebook; (its RunResult, each finished step's summary)."""
    from nbscale.kernels.runner import RunOptions, run_notebook

    summaries = {}

    def on_event(kind, step, payload):
        if kind == "step_finished" and "summary" in payload:
            summaries[step] = payload["summary"]
        if kind == "warning":
            summaries.setdefault("warnings", []).append(payload.get("message"))

    options = RunOptions(engine=engine, use_cache=False, scheduler=scheduler if engine == "dask" else None)
    return run_notebook(path, options=options, on_event=on_event), summaries


@pytest.mark.parametrize("engine", ENGINES)
def test_sys_exit_means_the_same_under_every_engine(tmp_path, make_notebook, one_worker, engine):
    path = make_notebook(tmp_path, [
        ("import sys", ["imports"]),
        ("x = 1\nprint('a ran')", ["step:a"]),
        "sys.exit(0)",
        "x = 99\nprint('not reached')",
        ("y = x + 1", ["step:b"]),
    ])
    result, summaries = run_collecting(path, engine, one_worker)
    assert {s["name"]: s["status"] for s in result.steps} == {"a": "succeeded", "b": "succeeded"}, result.steps
    assert result.load("b")["y"] == 2  # a handed on x as it was when it exited
    cells = summaries["a"].get("cells")
    assert [c["cell"] for c in cells] == [0, 1, 2]  # the prelude, its cells up to the exit; not cell 3
    assert [o.get("text") for o in cells[1]["outputs"]] == ["a ran\n"] and cells[2]["outputs"] == []

    failing = make_notebook(tmp_path, [("import sys", ["imports"]), ("sys.exit(2)", ["step:c"]),
                                       ("z = 1", ["step:d", "after:c"])], name="failing")
    result, _ = run_collecting(failing, engine, one_worker)
    assert {s["name"]: s["status"] for s in result.steps} == {"c": "failed", "d": "upstream_failed"}, result.steps
    error = result.step("c")["error"]
    assert (error["ename"], error["evalue"], error["cell"]) == ("SystemExit", "2", 1)


def test_a_crash_in_compiled_code_under_the_local_engine_names_the_cell_and_line(tmp_path, make_notebook,
                                                                                  monkeypatch):
    # the step runs in the `nbscale run` process, which the crash ends: the run store, read next, says where
    path = make_notebook(tmp_path, [("a = 1", ["step:a"]), ("import ctypes\nctypes.string_at(0)", ["step:b"])])
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))  # (where the reader looks too)
    env = dict(os.environ)
    env.pop("PYTHONFAULTHANDLER", None)
    done = subprocess.run([sys.executable, "-m", "nbscale", "run", str(path), "--engine", "local"],
                          capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert done.returncode == -signal.SIGSEGV, done.stderr
    # and at once where the run was started (the shell said only "Segmentation fault")
    assert re.search(r'File "<cell 2 \[\w+\]>", line 2 in <module>', done.stderr), done.stderr
    from nbscale.kernels.runstore import RunStore

    with RunStore(tmp_path / ".nbscale" / "runs.sqlite") as store:
        run = store.get_run(store.list_runs()[0]["id"])
    expected = r"the process running it stopped: Segmentation fault at cell 2, line 2 \(in string_at, \S+\.py:\d+\)"
    assert re.fullmatch(expected, run["error"]), run["error"]
    steps = {s["step"]: s for s in run["steps"]}
    assert steps["b"]["status"] == "failed" and re.fullmatch(expected, steps["b"]["error"])


def figures_by_cell(summary) -> dict:
    return {c["cell"]: sum(1 for o in c["outputs"] if o["output_type"] == "display_data" and "image/png" in o["data"])
            for c in summary["cells"]}


@pytest.mark.parametrize("engine", ["local", "dask"])
def test_figures_land_in_their_cells_and_stay_in_their_step(tmp_path, make_notebook, one_worker, engine):
    importlib.import_module("matplotlib")  # a test dependency: an ImportError must fail, not skip
    path = make_notebook(tmp_path, [
        ("%matplotlib inline\nimport matplotlib.pyplot as plt", ["imports"]),
        ("fig = plt.figure()\nplt.plot([1, 2])\nv = 1", ["step:a"]),
        "print('no figure here')\nimport matplotlib\nmatplotlib.interactive(False)\nleft_open = plt.figure()\n"
        "plt.plot([3])",
        ("print('open before', len(plt.get_fignums()))\nplt.bar([1], [v])\nw = v", ["step:b"]),
    ])
    result, summaries = run_collecting(path, engine, one_worker)
    assert result.ok, [s.get("error") for s in result.steps]
    assert figures_by_cell(summaries["a"]) == {0: 0, 1: 1, 2: 0}
    assert figures_by_cell(summaries["b"]) == {0: 0, 3: 1}  # b's own figure, nothing of a's
    assert summaries["b"]["stdout"] == "open before 0\n"
    assert summaries.get("warnings") is None  # setting up figures is no change to put back




@pytest.mark.parametrize("engine", ENGINES)
def test_an_output_that_cannot_be_pickled_points_at_the_cell_and_line_binding_it(tmp_path, make_notebook,
                                                                               one_worker, engine):
    path = make_notebook(tmp_path, [
        ("import threading", ["imports"]),
        ("x = 1\nlock = threading.Lock()", ["step:a"]),
        ("with lock:\n    z = x + 1", ["step:b"]),
    ])
    result, summaries = run_collecting(path, engine, one_worker)
    error = summaries["a"]["error"]
    assert not result.ok and error["ename"] == "MarshalError", error
    assert (error["cell"], error["line"]) == (1, 2) and "'lock'" in error["evalue"], error
    assert "(bound at cell 2, line 2)" in error["evalue"]



@pytest.mark.parametrize("engine", ENGINES)
def test_a_secret_the_step_holds_at_its_end_is_not_kept_in_the_store(tmp_path, make_notebook, one_worker, engine):
    # the step's final values are kept for the run's results: a credential among them once went to
    # the store in plain text (the secret is made as the step runs: no file of the notebook holds it)
    path = make_notebook(tmp_path, [
        ("token = 's3cr' + 'et-' + str(41 * 1000 + 7)\nurl = f'postgresql://me:{token}@db/x'\n"
         "headers = {'Authorization': 'Bearer ' + token}\nrows = [1, 2, 3]\nnote = 'kept'", ["step:a"]),
    ])
    result, _ = run_collecting(path, engine, one_worker)
    assert result.ok, [s.get("error") for s in result.steps]
    kept = result.load("a")
    assert kept["rows"] == [1, 2, 3] and kept["note"] == "kept"
    assert not {"token", "url", "headers"} & set(kept)
    leaked = [str(f) for f in tmp_path.rglob("*") if f.is_file() and b"s3cret-41007" in f.read_bytes()]
    assert leaked == []


@pytest.mark.parametrize("engine", ENGINES)
def test_a_run_knows_the_values_its_steps_stored_from_their_outcomes(tmp_path, make_notebook, one_worker, engine):
    # another run stores others under a step's key once the steps stored theirs, before the run returns
    from nbscale.kernels.contract import RUN_FINISHED, STEP_FINISHED, artifacts_url
    from nbscale.kernels.errors import ValuesReplaced
    from nbscale.kernels.runner import RunOptions, run_notebook
    from nbscale.kernels.store import ArtifactStore

    path = make_notebook(tmp_path, [("x = [1, 2]\nnote = 'kept'", ["step:a"]), ("y = len(x)", ["step:b"])])
    keys = {}

    def on_event(kind, step, payload):
        if kind == STEP_FINISHED and step == "a":
            keys["a"] = payload["key"]
        if kind == RUN_FINISHED:
            ArtifactStore(artifacts_url(path)).put(keys["a"], {"x": [3], "note": "another run's"}, [], "a",
                                                   replace=True)

    options = RunOptions(engine=engine, use_cache=False, scheduler=one_worker if engine == "dask" else None)
    result = run_notebook(path, options=options, on_event=on_event)
    assert result.ok, [s.get("error") for s in result.steps]
    assert set(result.stored["a"]) == {"x", "note"} and result.load("b") == {"y": 2}
    with pytest.raises(ValuesReplaced):
        result.load("a")


def _leave_room(room: int, folder: str, dask_worker=None) -> None:
    """The store's reserve set so that `room` bytes of the disk's free space at `folder` are left
    to store files (kernels/disk_room.py), in this process or on a Dask worker."""
    from nbscale.kernels import disk_room

    st = os.statvfs(folder)
    free = st.f_bavail * st.f_frsize
    disk_room.reserve = lambda total: free - room


@pytest.mark.parametrize("engine", ["local", "dask"])
def test_a_value_the_disk_has_no_room_for_is_handed_on_and_made_again_next_time(tmp_path, make_notebook,
                                                                                monkeypatch, engine):
    # a 60 MB tmpfs: the Dask run's background write of a 80 MB value once took the disk's last
    # bytes, and the run store's write that came next failed the run ("database or disk is full")
    from distributed import Client, LocalCluster

    from nbscale.kernels import disk_room
    from nbscale.kernels.runner import RunOptions, run_notebook

    path = make_notebook(tmp_path, [("import numpy as np", ["imports"]),
                                    ("big = np.ones(8 * 2**20)", ["step:make"]),  # 64 MiB
                                    ("total = float(big.sum())\nsmall = [1, 2]", ["step:use"])])
    monkeypatch.setattr(disk_room, "reserve", disk_room.reserve)  # (put back after the test)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
                      host="127.0.0.1") as cluster, Client(cluster, set_as_default=False) as client:
        _leave_room(16 * 2**20, str(tmp_path))
        client.run(_leave_room, 16 * 2**20, str(tmp_path))
        warnings = []

        def on_event(kind, step, payload):
            if kind == "warning":
                warnings.append(payload.get("message", ""))

        options = RunOptions(engine=engine, scheduler=cluster.scheduler_address if engine == "dask" else None)
        first = run_notebook(path, options=options, on_event=on_event)
        assert first.ok, first.steps
        assert first.load("use")["total"] == 8 * 2**20  # handed on in memory
        assert any("StoreFull" in w and "MB free" in w for w in warnings), warnings
        again = run_notebook(path, options=options)
    assert again.ok and not again.step("make")["cached"]  # no cache entry: made again
    assert again.step("use")["cached"]  # (its own small value was stored)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_logger_given_a_file_handler_kept_in_a_name_is_handed_on(tmp_path, make_notebook, one_worker, engine):
    # the handler, which cannot be pickled, once went along with the logger that holds it and failed
    # the run ("output 'h' of type logging.FileHandler cannot be serialised")
    path = make_notebook(tmp_path, [
        ("import logging", ["imports"]),
        ("logger = logging.getLogger('nbscale-test-exp')\nlogger.setLevel(logging.INFO)\n"
         "h = logging.FileHandler('exp.log', mode='w')\nlogger.addHandler(h)\nlogger.info('setup')\nh.flush()",
         ["step:setup"]),
        ("logger.info('training')\nacc = 0.9", ["step:train"]),
        ("for hh in logger.handlers:\n    hh.flush()\nname = logger.name", ["step:out"]),
    ])
    result, _ = run_collecting(path, engine, one_worker)
    assert result.ok, [s.get("error") for s in result.steps]
    assert result.load("out")["name"] == "nbscale-test-exp" and result.load("train")["acc"] == 0.9
    assert (tmp_path / "exp.log").read_text().startswith("setup")


@pytest.mark.parametrize("engine", ENGINES)
def test_a_pickle_of_a_notebook_class_is_written_and_read_in_later_steps(tmp_path, make_notebook, one_worker, engine):
    # a scikit-learn pipeline holding a transformer class of the notebook, saved with joblib and
    # loaded in another step: the pickle names `__main__.Scale`, which the steps did not hold
    # ("Can't pickle <class '__main__.Scale'>", "Can't get attribute 'Scale' on <module '__main__'>")
    path = make_notebook(tmp_path, [
        ("import joblib\nimport pickle as pk\nimport numpy as np\nfrom sklearn.base import BaseEstimator, "
         "TransformerMixin\nfrom sklearn.linear_model import LogisticRegression\n"
         "from sklearn.pipeline import make_pipeline", ["imports"]),
        ("class Scale(BaseEstimator, TransformerMixin):\n    def fit(self, X, y=None):\n"
         "        self.m = X.max(axis=0) * FACTOR\n        return self\n    def transform(self, X):\n"
         "        return X / self.m\ndef shift(v):\n    return v + 1\nFACTOR = 2.0\n"
         "X = np.array([[0.0, 1.0], [1.0, 0.0], [0.9, 0.1], [0.1, 0.9]])\ny = np.array([0, 1, 1, 0])\n"
         "model = make_pipeline(Scale(), LogisticRegression())\nmodel.fit(X, y)", ["step:fit"]),
        ("joblib.dump(model, 'model.joblib')\nwith open('shift.pkl', 'wb') as f:\n    pk.dump(shift, f)",
         ["step:save"]),
        ("loaded = joblib.load('model.joblib')\nwith open('shift.pkl', 'rb') as f:\n    moved = pk.load(f)(1)\n"
         "scale = loaded[0].m.tolist()\npredicted = loaded.predict(X).tolist()", ["step:score"]),
    ])
    result, _ = run_collecting(path, engine, one_worker)
    assert result.ok, [s.get("error") for s in result.steps]
    values = result.load("score")
    assert values["scale"] == [2.0, 2.0] and values["moved"] == 2 and values["predicted"] == [0, 1, 1, 0]
