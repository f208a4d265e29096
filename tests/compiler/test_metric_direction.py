"""Metric direction: whole words of the name decide, unless the notebook's metadata declares it."""

import json

import pytest

from nbscale.compiler import compile_notebook
from nbscale.compiler.metric_direction import (
    declared_directions,
    direction_by_name,
    metric_direction,
    metric_directions,
    name_words,
    notebook_directions,
)
from nbscale.compiler.notebook import Cell, Notebook


def test_words_split_on_separators_and_camel_case():
    assert name_words("valLoss_2.RMSE") == ["val", "loss", "2", "rmse"]
    assert name_words("mean-abs error") == ["mean", "abs", "error"]
    assert name_words("HTTPLatency") == ["http", "latency"]


@pytest.mark.parametrize("name", ["loss", "val_loss", "valLoss", "fitTime", "scores.rmse", "RMSE", "mean-abs-error",
                                  "predict_latency", "perplexity", "logloss", "error_rate", "train duration"])
def test_lower_is_better_by_whole_words(name):
    assert direction_by_name(name) == "min"


@pytest.mark.parametrize("name", ["accuracy", "acc_lr", "f1", "uptime", "timeliness", "terror_index", "lossless_ratio",
                                  "neg_log_loss", "neg_mean_squared_error"])
def test_higher_is_better_otherwise(name):
    # the substring rule this replaces took uptime, terror_index and lossless_ratio for losses
    assert direction_by_name(name) == "max"


def test_the_notebook_declaration_wins():
    assert metric_direction("uptime", {"uptime": "min"}) == "min"
    assert metric_direction("loss", {"loss": "max"}) == "max"
    assert metric_direction("loss", {"other": "max"}) == "min"
    assert metric_directions(["acc", "loss"], {"cost_usd": "max"}) == {"acc": "max", "loss": "min", "cost_usd": "max"}


def test_declared_directions_are_validated():
    valid, problems = declared_directions({"nbscale": {"metrics": {"rmse": "min", "f1": "higher", "n": 3}}})
    assert valid == {"rmse": "min"}
    assert [p.code for p in problems] == ["bad-metric", "bad-metric"]
    assert 'nbscale.metrics["f1"] is "higher"' in problems[0].message
    assert problems[0].severity == "error" and "min" in problems[0].hint
    assert declared_directions({"nbscale": {"metrics": ["rmse"]}})[1][0].message.startswith(
        "notebook metadata nbscale.metrics must be an object")
    assert declared_directions({}) == ({}, [])
    assert declared_directions(None) == ({}, [])


def notebook(metadata):
    cells = (Cell(index=0, cell_type="code", source="loss = 0.5", tags=("step:train",)),
             Cell(index=1, cell_type="code", source="loss", tags=("metrics",)))
    return Notebook(path="nb.ipynb", cells=cells, metadata=metadata)


def test_the_compiler_reports_a_bad_declaration():
    pipeline = compile_notebook(notebook({"nbscale": {"metrics": {"loss": "lowest"}}}))
    bad = [d for d in pipeline.diagnostics if d.code == "bad-metric"]
    assert len(bad) == 1 and bad[0].cell is None and "nbscale.metrics" in bad[0].message
    assert not compile_notebook(notebook({"nbscale": {"metrics": {"loss": "min"}}})).diagnostics


def test_notebook_directions_reads_the_file(tmp_path):
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps({"cells": [], "metadata": {"nbscale": {"metrics": {"uptime": "min", "x": "?"}}},
                                "nbformat": 4, "nbformat_minor": 5}))
    assert notebook_directions(path) == {"uptime": "min"}
    assert notebook_directions(tmp_path / "missing.ipynb") == {}
    path.write_text('{"nbformat": 4, "metadata": {"x": ' + "[" * 5000 + "]" * 5000 + "}, \"cells\": []}")
    assert notebook_directions(path) == {}  # (too deep for the JSON reader: the panel's run history answered 500)
