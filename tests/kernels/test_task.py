"""run_step: the body of one step as any engine runs it, called directly with StepSpecs."""

from __future__ import annotations

from conftest import make_notebook

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


def test_run_step_failure_maps_cell_and_line(tmp_path):
    specs = _specs(tmp_path, [("a = 1", ["step:s"]), ("b = a\n\nc = b / 0", [])])
    out = run_step(specs["s"], {})
    assert out.status == FAILED and out.values == {}
    assert out.summary["error"]["cell"] == 1 and out.summary["error"]["line"] == 3
    assert not ArtifactStore(specs["s"].store_url).has(specs["s"].hash, specs["s"].step["outputs"])


def test_timeout_tag_stops_the_step_at_its_cell_and_line(tmp_path):
    import time

    specs = _specs(tmp_path, [("n = 0\nwhile True:\n    n += 1", ["step:spin", "timeout:1s"])])
    start = time.monotonic()
    out = run_step(specs["spin"], {})
    assert time.monotonic() - start < 5
    error = out.summary["error"]
    assert out.status == FAILED and error["ename"] == "StepTimeout" and "timeout of 1 s" in error["evalue"]
    assert (error["cell"], error["line"]) == (0, 2)


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
             ("getattr(df, '__setitem__')('x', 0)\ntotal = int(df['x'].sum())", ["step:sneaky"])]
    specs = _specs(tmp_path, cells)
    make = run_step(specs["make"], {})
    assert "df" not in specs["sneaky"].step["defines"]
    sneaky = run_step(specs["sneaky"], {"make": make})
    assert sneaky.status == SUCCEEDED
    assert ArtifactStore(specs["sneaky"].store_url).get(sneaky.key)["total"] == 0
    assert make.values["df"]["x"].tolist() == [1, 2], "copy-on-write keeps the write private"
    assert isinstance(make.values["df"], pd.DataFrame)
