"""compiler/suggest.py: step tags proposed for an untagged notebook.

The proposals are checked on their shape (which cells start steps, what runs in parallel, what stays
together) and on their results: each proposed notebook is run as a pipeline (the local engine, a
real step executor) and every value it hands on equals the value of a top-to-bottom run."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from conftest import ROOT, make_notebook
from value_fingerprint import fingerprint

import nbscale
from nbscale.compiler import compile_notebook
from nbscale.compiler.suggest import SuggestError, notebook_durations, suggest, write_tags


def untagged(source: Path, target: Path) -> Path:
    data = json.loads(source.read_text())
    for cell in data["cells"]:
        cell.get("metadata", {}).pop("tags", None)
    target.write_text(json.dumps(data))
    return target


def top_to_bottom(path: Path) -> dict:
    """The values a top-to-bottom run leaves: the untagged notebook is one step that runs every cell
    in order (magics too), and keeps its final values."""
    result = nbscale.run(path, engine="local", use_cache=False)
    assert result.ok and len(result.steps) == 1, result.steps
    return result.load(result.steps[0]["name"])


def same_values_as_top_to_bottom(path: Path, tags: dict) -> None:
    proposed = write_tags(path, tags, path.with_name(path.stem + ".proposed.ipynb"))
    result = nbscale.run(proposed, engine="local", use_cache=False)
    assert result.ok, result.steps
    expected = top_to_bottom(path)
    last = {}  # name → the last step that binds or changes it: the one that holds its final value
    for step in compile_notebook(proposed).steps:
        last.update(dict.fromkeys(step.defines, step.name))
    checked = [name for name in last if name in expected and not callable(expected[name])]
    assert checked
    for name in checked:
        assert fingerprint(result.load(last[name], [name])[name]) == fingerprint(expected[name]), (last[name], name)


def test_iris_untagged_gets_the_parallelism_a_person_tags(tmp_path):
    path = untagged(ROOT / "examples" / "iris.ipynb", tmp_path / "iris.ipynb")
    proposal = suggest(path)
    assert proposal.durations == "estimate" and proposal.roles == {1: "imports", 2: "parameters"}
    steps = {s.name: s for s in proposal.steps}
    training = [s for s in proposal.steps if s.cells in ([9], [10])]
    assert len(training) == 2 and all(t.name not in u.after for t in training for u in training)
    assert steps[proposal.steps[-1].name].after[-2:] == [t.name for t in training]  # evaluation joins both
    assert proposal.steps[0].name == "load_the_data"  # the markdown heading above its first cell
    assert proposal.speedup > 1.2
    same_values_as_top_to_bottom(path, proposal.tags)


def test_a_chain_of_cells_becomes_one_step_and_tiny_side_cells_join_it(tmp_path):
    cells = ["a = len('xyz')", "b = a + 1", "c = b * 2", "d = 5", "e = c + d"]
    path = make_notebook(tmp_path, name="chain", cells=cells)
    proposal = suggest(path)
    assert [s.cells for s in proposal.steps] == [[0, 1, 2, 3, 4]]
    assert proposal.speedup == 1.0


def test_given_durations_keep_heavy_independent_cells_apart_and_merge_light_ones(tmp_path):
    cells = ["import math", "x = 2", "slow_a = math.factorial(x)", "slow_b = math.factorial(x + 1)",
             "tiny_a = x + 1", "tiny_b = x + 2", "both = slow_a + slow_b + tiny_a + tiny_b"]
    path = make_notebook(tmp_path, name="fan", cells=cells)
    times = {1: 0.01, 2: 5.0, 3: 5.0, 4: 0.001, 5: 0.001, 6: 0.01}
    proposal = suggest(path, times)
    assert proposal.durations == "given" and proposal.roles == {0: "imports", 1: "parameters"}
    by_cell = {c: s.name for s in proposal.steps for c in s.cells}
    assert by_cell[2] != by_cell[3]  # two heavy branches stay parallel
    assert by_cell[4] == by_cell[5]  # tiny cells join a neighbour
    assert proposal.critical_path == pytest.approx(5.012, abs=0.01)
    assert proposal.total == pytest.approx(10.012, abs=0.01)
    same_values_as_top_to_bottom(path, proposal.tags)


def test_cells_that_change_the_process_or_the_cell_before_stay_together(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "n.txt").write_text("7")
    cells = ["import os\nos.chdir('data')", "n = int(open('n.txt').read())",
             "rows = [n, n + 1]", "rows.append(99)", "total = sum(rows)"]
    path = make_notebook(tmp_path, name="together", cells=cells)
    proposal = suggest(path, {i: 3.0 for i in range(5)})
    by_cell = {c: s.name for s in proposal.steps for c in s.cells}
    assert by_cell[0] == by_cell[1] and by_cell[2] == by_cell[3]
    assert any("changes the process" in n for n in proposal.notes)
    assert any("it changes rows, which cell 3 makes" in n for n in proposal.notes)


def test_step_options_stay_on_the_cell_that_starts_a_step(tmp_path):
    path = make_notebook(tmp_path, name="opts", cells=[("a = 1", ["step:first"]), "b = a + 1",
                                                   ("c = b + 1", ["step:big", "resources:cpu=2", "retries:2"]),
                                                   ("d = c", ["after:first", "hide-input"])])
    proposal = suggest(path)
    assert proposal.tags[2][:3] == ["step:big", "resources:cpu=2", "retries:2"]
    assert "hide-input" in proposal.tags[3] and "after:first" not in proposal.tags[3]  # others' tags are kept
    assert compile_notebook(write_tags(path, proposal.tags, tmp_path / "out.ipynb")).diagnostics == []


def test_the_notebooks_own_timing_is_used(tmp_path):
    path = make_notebook(tmp_path, name="timed", cells=["a = 1 + 1", "b = a * 2", "c = a * 3", "d = b + c"])
    data = json.loads(path.read_text())
    for cell, seconds in zip(data["cells"], [0.1, 4.0, 4.0, 0.1]):
        cell["metadata"]["papermill"] = {"duration": seconds}
    data["cells"][3]["metadata"]["execution"] = {"iopub.execute_input": "2026-01-01T00:00:00.000Z",
                                                 "shell.execute_reply": "2026-01-01T00:00:00.250Z"}
    del data["cells"][3]["metadata"]["papermill"]
    path.write_text(json.dumps(data))
    assert notebook_durations(path) == {0: 0.1, 1: 4.0, 2: 4.0, 3: 0.25}
    proposal = suggest(path)
    assert proposal.durations == "notebook"
    by_cell = {c: s.name for s in proposal.steps for c in s.cells}
    assert by_cell[1] != by_cell[2]
    assert suggest(path, use_notebook_times=False).durations == "estimate"


def test_unusable_notebook_timing_counts_as_none(tmp_path):
    """Hand-edited or broken timing: one time with a zone and one without raised TypeError; NaN and
    infinity reached the speed-up and the JSON."""
    def execution(start, end):
        day = "2026-01-01T00:00:"
        return {"execution": {"iopub.execute_input": day + start, "shell.execute_reply": day + end}}

    durations = (float("inf"), float("nan"), 1e308, -1.0, 10**400, True, 400 * 86400)  # the last: over a year
    bad = [{"papermill": {"duration": d}} for d in durations]
    bad += [execution("00Z", "01"), execution("02Z", "01Z")]  # a zone and none; ended before it started
    fallback = {"papermill": {"duration": float("nan")}, **execution("00Z", "02Z")}  # as if it had no duration
    path = make_notebook(tmp_path, name="badtime", cells=[f"v{i} = {i} + 1" for i in range(len(bad) + 1)])
    data = json.loads(path.read_text())
    for cell, meta in zip(data["cells"], [*bad, fallback]):
        cell["metadata"].update(meta)
    path.write_text(json.dumps(data))
    assert notebook_durations(path) == {len(bad): 2.0}
    proposal = suggest(path)
    assert proposal.durations == "estimate"
    json.dumps(proposal.as_dict(), allow_nan=False)


def test_a_notebook_that_does_not_compile_gets_no_proposal(tmp_path):
    path = make_notebook(tmp_path, name="bad", cells=["a = undefined_name + 1", "b = a"])
    before = path.read_bytes()
    with pytest.raises(SuggestError, match="must compile"):
        suggest(path)
    assert path.read_bytes() == before
    with pytest.raises(SuggestError, match="no code cells"):
        suggest(make_notebook(tmp_path, name="empty", cells=[]))


def test_write_tags_keeps_outputs_and_metadata_and_writes_atomically(tmp_path):
    path = make_notebook(tmp_path, name="w", cells=["a = 1", "b = a"])
    data = json.loads(path.read_text())
    data["cells"][0]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "hi\n"}]
    data["metadata"]["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path.write_text(json.dumps(data))
    out = write_tags(path, {0: ["step:one"], 1: []}, tmp_path / "out.ipynb")
    written = json.loads(out.read_text())
    assert written["cells"][0]["metadata"]["tags"] == ["step:one"] and "tags" not in written["cells"][1]["metadata"]
    assert written["cells"][0]["outputs"] == data["cells"][0]["outputs"]
    assert written["metadata"]["kernelspec"]["name"] == "python3"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".partial")] == []
    path.chmod(0o640)
    write_tags(path, {0: ["step:one"], 1: []}, path)  # in place: the notebook keeps its mode
    assert path.stat().st_mode & 0o777 == 0o640


def test_tags_are_not_written_when_the_code_cells_changed_since_the_proposal(tmp_path):
    path = make_notebook(tmp_path, name="edited", cells=["import time", "a = 1", "b = a + 1", "c = 2"])
    proposal = suggest(path)
    data = json.loads(path.read_text())
    data["cells"].insert(1, {"cell_type": "code", "metadata": {}, "source": "z = 0", "outputs": [],
                             "execution_count": None})  # saved from an editor meanwhile: indexes move
    path.write_text(json.dumps(data))
    before = path.read_bytes()
    with pytest.raises(SuggestError, match="changed since"):
        write_tags(path, proposal.tags, path, proposal.sources)
    assert path.read_bytes() == before
    assert write_tags(make_notebook(tmp_path, name="same", cells=["import time", "a = 1", "b = a + 1", "c = 2"]),
                      proposal.tags, tmp_path / "same.out.ipynb", proposal.sources).exists()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_generated_notebooks_give_the_top_to_bottom_values(tmp_path, seed):
    rng = random.Random(seed)
    names, cells = [], []
    for i in range(12):
        reads = rng.sample(names, k=min(len(names), rng.randint(0, 2)))
        kind = rng.choice(["new", "new", "list", "mutate"]) if names else "new"
        listy = [n for n in names if n.startswith("l")]
        if kind == "mutate" and listy:
            cells.append(f"{rng.choice(listy)}.append({i})")
            continue
        name = f"{'l' if kind == 'list' else 'v'}{i}"
        value = f"[{', '.join(reads) or i}]" if kind == "list" else (" + ".join(f"len({r})" if r.startswith("l")
                                                                              else r for r in reads) or str(i))
        cells.append(f"{name} = {value}")
        names.append(name)
    path = make_notebook(tmp_path, name=f"gen{seed}", cells=cells)
    times = {i: rng.choice([0.01, 2.0]) for i in range(len(cells))}
    proposal = suggest(path, times)
    assert proposal.critical_path <= proposal.total
    same_values_as_top_to_bottom(path, proposal.tags)


@pytest.mark.parametrize("example", ["iris", "kale_style", "magics", "mutation", "untagged"])
def test_every_example_untagged_gets_a_proposal_with_its_results(tmp_path, example):
    path = untagged(ROOT / "examples" / f"{example}.ipynb", tmp_path / f"{example}.ipynb")
    proposal = suggest(path)
    assert proposal.steps and proposal.critical_path <= proposal.total
    assert compile_notebook(write_tags(path, proposal.tags, tmp_path / "check.ipynb")).has_errors is False
    same_values_as_top_to_bottom(path, proposal.tags)


def _critical_if_merged_by_walking(ups, weights, finish, k, overhead) -> float:
    """The critical path with segments k and k + 1 merged, found by walking the merged graph."""
    moved = {k: k, k + 1: k}
    merged = finish[:k]
    ready = max((finish[u] for u in (ups[k] | ups[k + 1]) - {k, k + 1}), default=0.0)
    merged.append(ready + weights[k] + weights[k + 1] - overhead)
    for j in range(k + 2, len(weights)):
        ready = max((merged[moved.get(u, u if u < k else u - 1)] for u in ups[j]), default=0.0)
        merged.append(ready + weights[j])
    return max(merged)


def test_the_critical_paths_if_merged_are_those_of_the_merged_graphs():
    # found for every k at once, in linear time: walking the graph for each k took a notebook of
    # 800 steps 94 s to suggest for
    from nbscale.compiler.suggest import _criticals_if_merged, _finish_times

    rng = random.Random(7)
    for _ in range(2000):
        n = rng.randint(2, 12)
        p = rng.random()
        ups = [{u for u in range(j) if rng.random() < p} for j in range(n)]
        weights = [0.05 + rng.choice([0.0, 0.1, 1.0, rng.random() * 3]) for _ in range(n)]
        finish = _finish_times(ups, weights)
        walked = [_critical_if_merged_by_walking(ups, weights, finish, k, 0.05) for k in range(n - 1)]
        assert _criticals_if_merged(ups, weights, finish, 0.05) == pytest.approx(walked, abs=1e-9), (ups, weights)
