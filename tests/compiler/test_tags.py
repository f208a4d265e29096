"""The cell-tag grammar of docs/tags.md, Kale's aliases, and the errors for bad tags."""

import pytest

from nbscale.compiler import compile_source
from nbscale.compiler.tags import kale_gpu_kind, parse_cell_tags


def parse(*tags):
    parsed, problems = parse_cell_tags(list(tags), cell=7)
    return parsed, problems


def ok(*tags):
    parsed, problems = parse(*tags)
    assert problems == [], [p.message for p in problems]
    return parsed


def problem(*tags):
    _, problems = parse(*tags)
    assert len(problems) == 1, [p.message for p in problems]
    assert problems[0].cell == 7
    return problems[0]


# -- nbscale's tags ------------------------------------------------------------------------


def test_step_tag_names_the_step():
    assert ok("step:train_rf").step == "train_rf"
    assert ok("step:_load-2").step == "_load-2"


@pytest.mark.parametrize("name", ["1load", "a b", "a.b", "ä", "x/y"])
def test_step_names_must_start_with_a_letter_and_hold_word_characters(name):
    diag = problem(f"step:{name}")
    assert diag.code == "bad-tag-value"
    assert "not a valid step name" in diag.message


def test_a_step_name_is_at_most_100_characters():
    # a 301-character name compiled, ran its steps, then failed writing their logs (File name too long)
    assert ok("step:" + "s" * 100).step == "s" * 100
    diag = problem("step:" + "s" * 301)
    assert diag.code == "bad-tag-value" and "at most 100 characters" in diag.hint and len(diag.message) < 120


def test_after_takes_a_comma_list_and_repeats():
    assert ok("after:load").after == ["load"]
    assert ok("after:load,clean").after == ["load", "clean"]
    assert ok("after:load", "after:clean").after == ["load", "clean"]
    assert ok("after: a , b", "after:c").after == ["a", "b", "c"]


def test_after_with_a_bad_name_is_an_error():
    assert problem("after:ok,2bad").code == "bad-tag-value"


@pytest.mark.parametrize("role", ["imports", "functions", "parameters", "metrics", "skip"])
def test_role_tags(role):
    parsed = ok(role)
    assert parsed.role == role
    assert parsed.step is None and not parsed.has_step_options


def test_the_same_role_twice_is_fine():
    assert ok("skip", "skip").role == "skip"


def test_two_roles_on_one_cell_are_an_error():
    diag = problem("imports", "skip")
    assert diag.code == "bad-tag-value"
    assert "two roles" in diag.message


def test_two_step_names_on_one_cell_are_an_error():
    diag = problem("step:a", "step:b")
    assert "two step tags" in diag.message


@pytest.mark.parametrize("tag, expected", [
    ("resources:cpu=2", {"cpu": 2}),
    ("resources:cpu=0.5", {"cpu": 0.5}),
    ("resources:cpu=500m", {"cpu": 0.5}),
    ("resources:cpu=250m", {"cpu": 0.25}),
    ("resources:memory=4Gi", {"memory": "4Gi"}),
    ("resources:memory=512Mi", {"memory": "512Mi"}),
    ("resources:memory=1G", {"memory": "1G"}),
    ("resources:memory=1048576", {"memory": "1048576"}),
    ("resources:gpu=1", {"gpu": 1}),
    ("resources:cpu=2,memory=4Gi,gpu=1", {"cpu": 2, "memory": "4Gi", "gpu": 1}),
])
def test_resources_values(tag, expected):
    assert ok(tag).options["resources"] == expected


def test_cpu_values_are_numbers_not_text():
    cpu = ok("resources:cpu=2").options["resources"]["cpu"]
    assert cpu == 2 and isinstance(cpu, int)
    assert isinstance(ok("resources:cpu=500m").options["resources"]["cpu"], float)


def test_repeated_resources_tags_merge():
    assert ok("resources:cpu=2", "resources:memory=4Gi").options["resources"] == {"cpu": 2, "memory": "4Gi"}


@pytest.mark.parametrize("tag", [
    "resources:disk=1", "resources:cpu=two", "resources:cpu=-1", "resources:memory=4GB",
    "resources:memory=lots", "resources:gpu=0.5", "resources:gpu=one", "resources:cpu",
])
def test_bad_resources_are_errors(tag):
    assert problem(tag).code == "bad-tag-value"


def test_unknown_resource_is_named_in_the_message():
    diag = problem("resources:disk=1")
    assert "disk" in diag.message and "cpu" in diag.hint


def test_image_keeps_colons_in_the_reference():
    assert ok("image:python:3.11-slim").options["image"] == "python:3.11-slim"
    digest = "sha256:" + "ab" * 32
    assert ok(f"image:ghcr.io/org/img@{digest}").options["image"] == f"ghcr.io/org/img@{digest}"
    for bad in ("image:Python:3", "image:not an image", "image:img:", "image:a\x1b]0;T\x07", "image:" + "x" * 300):
        assert problem(bad).code == "bad-tag-value", bad


def test_retries():
    assert ok("retries:0").options["retries"] == 0
    assert ok("retries:3").options["retries"] == 3


@pytest.mark.parametrize("value", ["two", "-1", "1.5", "", "٣"])
def test_bad_retries(value):
    assert problem(f"retries:{value}").code == "bad-tag-value"


@pytest.mark.parametrize("value, expected", [
    ("on", True), ("off", False), ("true", True), ("false", False), ("OFF", False),
])
def test_cache(value, expected):
    assert ok(f"cache:{value}").options["cache"] is expected


def test_bad_cache():
    assert problem("cache:maybe").code == "bad-tag-value"


@pytest.mark.parametrize("value, seconds", [
    ("90s", 90), ("30m", 1800), ("1h30m", 5400), ("600", 600), ("2h", 7200), ("1h0m5s", 3605),
])
def test_timeout(value, seconds):
    assert ok(f"timeout:{value}").options["timeout"] == seconds


@pytest.mark.parametrize("value", ["soon", "0", "0s", "30m1h", "1.5h", "-5", "1d", "²", "h"])
def test_bad_timeout(value):
    diag = problem(f"timeout:{value}")
    assert diag.code == "bad-tag-value"


@pytest.mark.parametrize("tag", ["step:", "after:", "image:", "timeout: "])
def test_value_tag_without_value_is_an_error(tag):
    assert problem(tag).code == "bad-tag-value"


def test_step_options_flag_step_options():
    assert ok("retries:1").has_step_options
    assert ok("after:a").has_step_options
    assert not ok("step:a").has_step_options


# -- Kale's spellings ----------------------------------------------------------------------


def test_kale_block_and_prev():
    parsed = ok("block:train", "prev:load", "prev:clean")
    assert parsed.step == "train"
    assert parsed.after == ["load", "clean"]


def test_kale_roles():
    assert ok("pipeline-parameters").role == "parameters"
    assert ok("pipeline-metrics").role == "metrics"


@pytest.mark.parametrize("tag, expected", [
    ("limit:cpu:2", {"cpu": 2}),
    ("limit:cpu:500m", {"cpu": 0.5}),
    ("limit:memory:4Gi", {"memory": "4Gi"}),
    ("limit:nvidia.com/gpu:1", {"gpu": 1}),
    ("limit:amd.com/gpu:2", {"gpu": 2}),
])
def test_kale_limits(tag, expected):
    assert ok(tag).options["resources"] == expected


def test_kale_limits_merge_with_resources():
    parsed = ok("limit:cpu:2", "limit:memory:4Gi", "resources:gpu=1")
    assert parsed.options["resources"] == {"cpu": 2, "memory": "4Gi", "gpu": 1}


@pytest.mark.parametrize("tag", ["limit:cpu", "limit:disk:1", "limit:nvidia.com/gpu:half", "limit::2"])
def test_bad_kale_limits(tag):
    assert problem(tag).code == "bad-tag-value"


def test_kale_block_and_nbscale_step_with_the_same_name_agree():
    assert ok("block:a", "step:a").step == "a"


# -- unknown and foreign tags --------------------------------------------------------------


@pytest.mark.parametrize("tag, suggestion", [
    ("stpe:train", "step:"),
    ("setp:load", "step:"),
    ("parmeters", "parameters"),
    ("paramters", "parameters"),
    ("improts", "imports"),
    ("metric", "metrics"),
    ("skipp", "skip"),
    ("retry:2", "retries:"),
    ("block", "block:"),
])
def test_unknown_tags_get_a_did_you_mean_hint(tag, suggestion):
    diag = problem(tag)
    assert diag.code == "unknown-tag"
    assert tag in diag.message
    assert diag.hint == f"did you mean '{suggestion}'?"


def test_a_hint_never_suggests_the_tag_itself():
    for tag in ["block", "prev", "step", "after"]:
        diag = problem(tag)
        assert diag.hint != f"did you mean '{tag}'?"


def test_unknown_tag_far_from_every_tag_points_to_the_docs():
    diag = problem("zzzzzzzzzz")
    assert diag.code == "unknown-tag"
    assert "docs/tags.md" in diag.hint


@pytest.mark.parametrize("tag", [
    "hide-input", "hide-output", "hide-cell", "remove-input", "remove-cell",
    "raises-exception", "skip-execution", "thebe-init", "nbval-ignore-output", "nbval-skip",
])
def test_other_tools_tags_are_ignored(tag):
    parsed = ok(tag)
    assert parsed.role is None and parsed.step is None and not parsed.has_step_options


@pytest.mark.parametrize("tag", ["label:team:ml", "annotation:owner:me@example.com", "label:bad"])
def test_kales_pod_label_and_annotation_tags_are_a_warning_and_change_nothing(tag):
    # a Kale notebook with them did not compile (unknown-tag); nbscale sets no pod metadata
    parsed, problems = parse("block:train", tag, "prev:load")
    assert [(p.code, p.severity) for p in problems] == [("kale-pod-metadata", "warning")]
    assert tag in problems[0].message and "ignored" in problems[0].message and problems[0].cell == 7
    assert parsed.step == "train" and parsed.after == ["load"] and parsed.options == {}


def test_foreign_tags_next_to_ours_change_nothing():
    assert ok("hide-input", "step:a", "remove-output").step == "a"


def test_every_problem_on_a_cell_is_reported():
    _, problems = parse("stpe:a", "retries:x", "step:ok")
    assert [p.code for p in problems] == ["unknown-tag", "bad-tag-value"]


# -- through the compiler ------------------------------------------------------------------


def test_step_options_reach_the_ir():
    p = compile_source([
        ("a = 1", ["step:load"]),
        ("b = a", ["step:train", "resources:cpu=500m", "resources:memory=4Gi", "limit:nvidia.com/gpu:1",
                   "image:python:3.11-slim", "retries:2", "cache:off", "timeout:1h30m", "after:load"]),
    ])
    train = p.step("train")
    assert train.resources == {"cpu": 0.5, "memory": "4Gi", "gpu": 1}
    assert (train.image, train.retries, train.cache, train.timeout) == ("python:3.11-slim", 2, False, 5400)
    assert train.after == ["load"]
    load = p.step("load")
    assert (load.resources, load.image, load.retries, load.cache, load.timeout) == ({}, None, 0, True, None)
    assert not p.diagnostics


def test_tag_problems_point_at_their_cell():
    p = compile_source(["a = 1", ("b = a", ["parmeters"])])
    [diag] = p.diagnostics
    assert (diag.code, diag.cell, diag.severity) == ("unknown-tag", 1, "error")
    assert p.has_errors


def test_foreign_tags_in_a_notebook_raise_nothing():
    p = compile_source([("x = 1", ["remove-cell"]), ("y = x", ["hide-input", "step:s"])])
    assert not p.diagnostics


def test_semicolon_separates_lists_because_nbformat_forbids_commas_in_tags():
    parsed, problems = parse_cell_tags(["resources:cpu=2;memory=4Gi;gpu=1", "after:a;b"], 0)
    assert not problems
    assert parsed.options["resources"] == {"cpu": 2, "memory": "4Gi", "gpu": 1} and parsed.after == ["a", "b"]


def test_numbers_too_big_for_kubernetes_kfp_or_a_thread_and_huge_tags_are_bad_values():
    for tag in ["retries:1001", "retries:" + "9" * 5000, "timeout:" + "9" * 30 + "s", "timeout:99999999999",
                "resources:cpu=" + "9" * 40, "resources:memory=" + "9" * 19 + "Gi", "x" * 1001]:
        (problem,) = parse_cell_tags([tag], cell=3)[1]
        assert problem.code == "bad-tag-value" and problem.cell == 3 and len(problem.message) < 1200, tag
    assert parse_cell_tags(["retries:1000", "timeout:87600h"], cell=0)[1] == []


def test_the_kind_of_gpu_a_kale_limit_tag_asks_for_is_known_for_the_kfp_target_to_compare():
    assert kale_gpu_kind("limit:amd.com/gpu:1") == "amd.com/gpu"
    assert kale_gpu_kind("limit:nvidia.com/gpu:2") == "nvidia.com/gpu"
    assert [kale_gpu_kind(t) for t in ("limit:amd.com/gpu:0", "limit:cpu:2", "resources:gpu=1", "limit:amd.com/gpu:x",
                                       "step:amd.com/gpu:1")] == [None] * 5
