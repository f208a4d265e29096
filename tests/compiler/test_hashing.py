import hashlib
import json

from nbscale.compiler import compile_source, hashing
from nbscale.compiler.hashing import step_hashes

BASE = [
    ("import math", ["imports"]),
    ("alpha = 0.5\nbeta = 2", ["parameters"]),
    ("# notes", []),
    ("x = [1, 2, 3]", ["step:load"]),
    ("a = sum(x) * alpha", ["step:left"]),
    ("b = max(x) * beta", ["step:right"]),
    ("c = a + b", ["step:join"]),
    ("x.describe()", ["skip"]),
]


def hashes(cells, values=None):
    pipeline = compile_source(cells)
    return step_hashes(pipeline, values) if values else {s.name: s.hash for s in pipeline.steps}


def edit(cells, index, source=None, tags=None):
    cells = list(cells)
    old_source, old_tags = cells[index]
    cells[index] = (old_source if source is None else source, old_tags if tags is None else tags)
    return cells


def changed(before, after):
    return {name for name in before if before[name] != after[name]}


def test_hashes_are_stable_and_distinct():
    first, second = hashes(BASE), hashes(BASE)
    assert first == second
    assert len(set(first.values())) == 4 and all(h.startswith("sha256:") for h in first.values())


def test_editing_a_step_changes_it_and_downstream_only():
    assert changed(hashes(BASE), hashes(edit(BASE, 4, "a = sum(x) * alpha + 1"))) == {"left", "join"}
    assert changed(hashes(BASE), hashes(edit(BASE, 3, "x = [1, 2, 4]"))) == {"load", "left", "right", "join"}


def test_editing_markdown_skip_or_options_changes_nothing():
    assert changed(hashes(BASE), hashes(edit(BASE, 7, "x.head()"))) == set()
    assert changed(hashes(BASE), hashes(edit(BASE, 6, tags=["step:join", "resources:cpu=4", "retries:2"]))) == set()


def test_editing_the_prelude_changes_every_step():
    assert changed(hashes(BASE), hashes(edit(BASE, 0, "import math, os"))) == {"load", "left", "right", "join"}


def test_parameters_change_only_steps_that_read_them():
    assert changed(hashes(BASE), hashes(edit(BASE, 1, "alpha = 0.7\nbeta = 2"))) == {"left", "join"}
    assert changed(hashes(BASE), hashes(BASE, {"beta": 3})) == {"right", "join"}
    assert changed(hashes(BASE), hashes(BASE, {"beta": 2})) == set()


def test_parameter_values_that_json_would_confuse_give_other_hashes():
    import numpy as np

    cells = [("cfg = None", ["parameters"]), ("r = repr(cfg)", ["step:use"])]
    arr = np.arange(5000)
    edited = arr.copy()
    edited[2000] = -1  # repr shows only the array's ends
    pairs = [({"a": 1, "b": 2}, {"b": 2, "a": 1}), ({1: "x"}, {"1": "x"}), ((1, 2), [1, 2]),
             (1, 1.0), (1, True), (1, "1"), (None, "None"), ([[1]], [(1,)]), (arr, edited),
             (np.float64(1.5), 1.5)]
    for one, other in pairs:
        assert hashes(cells, {"cfg": one}) != hashes(cells, {"cfg": other}), (one, other)
    # equal values, made apart, keep their key: the cache still hits
    assert hashes(cells, {"cfg": {"a": [1, (2, 3)]}}) == hashes(cells, {"cfg": {"a": [1, (2, 3)]}})
    assert hashes(cells, {"cfg": np.arange(5000)}) == hashes(cells, {"cfg": np.arange(5000)})


def test_a_parameter_value_that_cannot_be_pickled_is_never_taken_for_another():
    cells = [("fn = None", ["parameters"]), ("r = fn(1)", ["step:use"])]
    assert hashes(cells, {"fn": lambda v: v}) != hashes(cells, {"fn": lambda v: v})


def test_image_is_part_of_the_hash():
    assert changed(hashes(BASE), hashes(edit(BASE, 5, tags=["step:right", "image:python:3.12"]))) == {"right", "join"}


def test_a_setting_changes_the_hash_of_later_steps_only():
    def with_rows(value):
        return {s.name: s.hash for s in compile_source([
            ("x = 1", ["step:a"]),
            (f"import pandas as pd\npd.set_option('display.max_rows', {value})", ["step:b"]),
            ("y = 2", ["step:c"]),
        ]).steps}
    five, six = with_rows(5), with_rows(6)
    assert five["a"] == six["a"]
    assert five["b"] != six["b"]  # its own code
    assert five["c"] != six["c"]  # c reads nothing from b: only the replayed setting differs


def test_a_step_without_settings_keeps_the_hash_it_had_before_settings_existed():
    p = compile_source([("x = 1", ["step:a"]), ("y = x", ["step:b"])])
    assert all(s.settings == [] for s in p.steps)
    assert p.step("a").hash == "sha256:" + hashlib.sha256(json.dumps({
        "version": hashing.HASH_VERSION, "source": ["x = 1"], "prelude": [], "parameters": {}, "inputs": {},
        "upstream": {}, "image": None}, sort_keys=True).encode()).hexdigest()


def test_a_parameter_a_replayed_setting_reads_is_part_of_later_hashes():
    cells = [("rows = 5", ["parameters"]),
             ("import pandas as pd\npd.set_option('display.max_rows', rows)", ["step:a"]), ("y = 2", ["step:b"])]
    assert changed(hashes(cells), hashes(cells, {"rows": 6})) == {"a", "b"}


def test_a_hash_is_the_digest_of_the_json_text_also_for_big_cells_with_any_characters():
    # a cell's text is digested a slice at a time: a slice must not split what the text escapes
    big = "".join(f"v_{i} = 'é中😀\"\\\\ \t'  # {i}\n" for i in range(12_000)) + "lone = '\ud800'"
    p = compile_source([(big, ["step:a"]), ("y = v_5", ["step:b"]), ("import os", ["imports"])])
    step = p.step("a")
    content = {"version": hashing.HASH_VERSION, "source": step.source, "prelude": ["import os"], "parameters": {},
               "inputs": {}, "upstream": {}, "image": None}
    want = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()
    assert step.hash == "sha256:" + want
    assert len(big) > 2 * hashing._SLICE and hashing._json_digest_in_parts(content) == want  # (as a bigger cell's)
