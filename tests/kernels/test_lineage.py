"""kernels/lineage.py on real runs (local engine): the lineage of a metric and of a stored value up
the DAG, with files (path + digest), local modules, package versions and parameters; a changed
file changes the new run's digest; cached steps answer from the run that stored them, or from the
stored result's manifest when that run is gone; unknown names list the names there are."""

from __future__ import annotations

import pandas
import pytest
from lineage_notebook import helpers_module, lineage_notebook

from nbscale.kernels.contract import CACHED, run_store_path
from nbscale.kernels.errors import UnknownRun
from nbscale.kernels.fingerprints import file_state
from nbscale.kernels.lineage import UnknownLineageName, lineage
from nbscale.kernels.runner import RunOptions, run_notebook
from nbscale.kernels.runstore import RunStore

LOCAL = RunOptions(engine="local")


@pytest.fixture
def nb(tmp_path):
    return lineage_notebook(tmp_path)


def run(nb, **parameters):
    result = run_notebook(nb, parameters, options=LOCAL)
    assert result.status == "succeeded", result.steps
    return result.run_id


def model_of(nb, run_id, name):
    store = RunStore(run_store_path(nb))
    try:
        return lineage(store, run_id, name)
    finally:
        store.close()


def test_a_metric_lists_its_steps_files_modules_versions_and_parameters(nb):
    run_id = run(nb, scale=3)
    model = model_of(nb, run_id, "score")
    assert (model["kind"], model["step"], model["value"]) == ("metric", "metrics", 12.0)
    assert model["run"]["id"] == run_id and model["run"]["engine"] == "local"
    assert model["run"]["notebook"] == str(nb.resolve())
    nodes = {n["step"]: n for n in model["nodes"]}
    assert list(nodes) == ["metrics", "evaluate", "count", "feat", "load"]
    assert {(e["from"], e["to"]) for e in model["edges"]} == {
        ("evaluate", "metrics"), ("count", "evaluate"), ("feat", "evaluate"), ("feat", "count"), ("load", "feat")}
    load, feat = nodes["load"], nodes["feat"]
    assert load["files_read"]["data.csv"] == file_state(str(nb.parent / "data.csv"))["digest"]
    assert load["packages"]["pandas"] == pandas.__version__ and "pandas" in load["imported"]
    assert feat["parameters"] == {"scale": 3} and load["parameters"] == {}
    module = f"{helpers_module(nb.parent)}.py"
    assert feat["modules"][module] == file_state(str(nb.parent / module))["digest"]
    assert feat["inputs"]["df"] == {"step": "load", "digest": load["outputs"]["df"]}
    assert feat["schemas"]["df"] == [["a", "int64"], ["y", "int64"]]
    assert all(n["source"] == "recorded" and n["key"].startswith("sha256:") for n in nodes.values())


def test_changing_the_file_changes_its_digest_in_the_new_run(nb):
    first = model_of(nb, run(nb), "score")
    (nb.parent / "data.csv").write_text("a\n10\n20\n30\n40\n")
    second = model_of(nb, run(nb), "score")
    old, new = ({n["step"]: n for n in m["nodes"]}["load"] for m in (first, second))
    assert old["files_read"]["data.csv"] != new["files_read"]["data.csv"]
    assert new["files_read"]["data.csv"] == file_state(str(nb.parent / "data.csv"))["digest"]
    assert old["outputs"]["df"] != new["outputs"]["df"] and new["status"] != CACHED


def test_a_stored_value_is_the_last_step_that_hands_it_on(nb):
    run_id = run(nb)
    model = model_of(nb, run_id, "df")
    assert (model["kind"], model["step"], model["also_made_by"]) == ("output", "feat", ["load"])
    assert model["digest"] == model["nodes"][0]["outputs"]["df"]
    assert [n["step"] for n in model["nodes"]] == ["feat", "load"]


def test_cached_steps_answer_from_the_run_that_stored_them(nb):
    first = run(nb)
    again = run(nb)
    model = model_of(nb, again, "score")
    for node in model["nodes"]:
        assert node["status"] == CACHED and node["cached_from"] == first and node["source"] == "run", node
    load = {n["step"]: n for n in model["nodes"]}["load"]
    assert load["files_read"]["data.csv"] == file_state(str(nb.parent / "data.csv"))["digest"]


def test_without_the_run_that_stored_it_the_manifest_still_names_files_and_versions(nb):
    run(nb)
    store_file = run_store_path(nb)
    for path in store_file.parent.glob(store_file.name + "*"):  # the run history is gone, the artifacts stay
        path.unlink()
    model = model_of(nb, run(nb), "score")
    load = {n["step"]: n for n in model["nodes"]}["metrics"]
    assert load["status"] == CACHED and load["source"] == "manifest" and load["cached_from"] is None
    assert load["packages"]["pandas"] == pandas.__version__
    assert [n["step"] for n in model["nodes"]] == ["metrics"]  # inputs are not in a manifest: the chain stops


def test_an_unknown_name_lists_the_names_the_run_has(nb):
    run_id = run(nb)
    with pytest.raises(UnknownLineageName) as err:
        model_of(nb, run_id, "\x1b[31mscore")
    assert err.value.names == ["df", "double", "n", "score", "total"]
    assert "score" in str(err.value) and run_id[:12] in str(err.value)
    with pytest.raises(UnknownRun):
        model_of(nb, "f" * 32, "score")


def test_a_failed_step_keeps_the_lineage_of_what_ran_before_it(tmp_path):
    from conftest import make_notebook

    nb = make_notebook(tmp_path, [("k = 2", ["parameters"]), ("x = k * 2", ["step:a"]),
                                  ("y = x / 0", ["step:b"]), ("y", ["metrics"])])
    result = run_notebook(nb, {}, options=LOCAL)
    assert result.status == "failed"
    model = model_of(nb, result.run_id, "x")
    assert model["step"] == "a" and model["nodes"][0]["parameters"] == {"k": 2}
    with pytest.raises(UnknownLineageName) as err:
        model_of(nb, result.run_id, "y")
    assert err.value.names == ["x"]


def test_a_kept_value_and_a_metric_json_cannot_carry(tmp_path):
    from conftest import make_notebook

    nb = make_notebook(tmp_path, [("x = 3", ["step:a"]), ("mean = x / 2\nunused = mean * 2", ["step:b"]),
                                  ("mean", ["metrics"])])
    result = run_notebook(nb, {}, options=LOCAL)
    assert result.status == "succeeded", result.steps
    kept = model_of(nb, result.run_id, "unused")  # handed on to no step: kept as the notebook's final value
    assert (kept["kind"], kept["step"]) == ("kept", "b")
    assert kept["digest"].startswith(("xxh3_128:", "blake2b:"))
    store = RunStore(run_store_path(nb))
    try:  # an infinite metric, kept as NULL by the store, stays JSON (the API and --output json)
        store.record_metrics(result.run_id, "b", {"bad": float("inf")})
        nan = lineage(store, result.run_id, "bad")
    finally:
        store.close()
    assert nan["value"] is None and nan["step"] == "b"
