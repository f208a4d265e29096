"""The metrics cell: names, expressions, assignments, print() and dicts become run metrics."""

from nbscale.compiler import compile_source
from nbscale.compiler.metrics import parse_metrics

TRAIN = ("acc = 0.9\np, r = 0.5, 0.25\nmodel = {'w': 1}\nX, y = [1], [2]\na, b = 1, 2", ["step:train"])


def metrics_of(source):
    metrics, problems = parse_metrics(4, source, "evaluate")
    return metrics, problems


def test_a_name():
    metrics, problems = metrics_of("acc")
    assert not problems
    assert metrics.names == ["acc"] and metrics.exprs == {"acc": "acc"}
    assert metrics.step == "evaluate"


def test_an_expression_is_named_by_its_text():
    metrics, _ = metrics_of("model.score(X_test, y_test)")
    assert metrics.names == ["model.score(X_test, y_test)"]
    assert metrics.exprs == {"model.score(X_test, y_test)": "model.score(X_test, y_test)"}


def test_an_assignment_names_the_metric():
    metrics, _ = metrics_of("f1 = f1_score(y_test, pred)")
    assert metrics.names == ["f1"] and metrics.exprs == {"f1": "f1"}


def test_an_annotated_assignment_names_the_metric():
    metrics, _ = metrics_of("f1: float = f1_score(y_test, pred)")
    assert metrics.names == ["f1"]


def test_print_of_several_values_kale_style():
    metrics, _ = metrics_of("print(acc_lr, acc_rf)\nprint(loss)")
    assert metrics.names == ["acc_lr", "acc_rf", "loss"]


def test_dict_literal_keys_become_names():
    metrics, problems = metrics_of('{"precision": p, "recall": r, "f1": 2 * p * r / (p + r)}')
    assert not problems
    assert metrics.names == ["precision", "recall", "f1"]
    assert metrics.exprs == {"precision": "p", "recall": "r", "f1": "2 * p * r / (p + r)"}


def test_a_dict_comprehension_is_named_by_its_keys_not_its_text():
    metrics, problems = metrics_of('{f"acc_{k}": v for k, v in accs.items()}')
    assert not problems
    assert metrics.names == [] and metrics.exprs == {}
    assert metrics.spread == ["{f'acc_{k}': v for k, v in accs.items()}"]


def test_a_spread_dict_is_named_by_its_keys_beside_literal_keys():
    metrics, problems = metrics_of('{**scores, "loss": loss}\n{**scores}')
    assert not problems
    assert metrics.names == ["loss"] and metrics.spread == ["scores"]


def test_dict_with_a_non_string_key_is_a_bad_metric():
    metrics, problems = metrics_of('acc\n{"ok": p, 1: r}')
    assert [(d.code, d.cell, d.line, d.col) for d in problems] == [("bad-metric", 4, 2, 1)]
    assert problems[0].severity == "error"
    assert metrics.names == ["acc", "ok"]


def test_every_form_in_one_cell_keeps_order_and_drops_repeats():
    metrics, problems = metrics_of('acc\nf1 = 2 * p\nprint(acc, loss)\n{"p": p}\nacc')
    assert not problems
    assert metrics.names == ["acc", "f1", "loss", "p"]


def test_other_statements_are_code_not_metrics():
    metrics, _ = metrics_of("import math\nfor i in range(3):\n    pass\nif True:\n    x = 1\nacc")
    assert metrics.names == ["acc"]


def test_syntax_error_gives_no_metrics_and_no_duplicate_report():
    metrics, problems = metrics_of("acc = (")
    assert metrics.names == [] and problems == []


def test_metrics_cell_without_step_tag_is_its_own_step_named_metrics():
    p = compile_source([TRAIN, ("acc\n{'precision': p, 'recall': r}", ["metrics"])])
    assert not p.diagnostics, p.diagnostics
    assert [s.name for s in p.steps] == ["train", "metrics"]
    assert p.metrics.step == "metrics"
    assert p.metrics.names == ["acc", "precision", "recall"]
    assert p.step("metrics").inputs == ["acc", "p", "r"]
    assert p.step("metrics").after == ["train"]


def test_metrics_cell_with_a_step_tag_is_that_step():
    p = compile_source([TRAIN, ("acc", ["metrics", "step:eval"])])
    assert [s.name for s in p.steps] == ["train", "eval"]
    assert p.metrics.step == "eval"


def test_metrics_cell_continuing_the_current_step():
    p = compile_source([TRAIN, ("acc", ["metrics", "step:train"])])
    assert [s.name for s in p.steps] == ["train"]
    assert p.step("train").cells == [0, 1]
    assert p.metrics.step == "train"


def test_metrics_cell_in_the_middle_ends_its_step():
    p = compile_source([TRAIN, ("acc", ["metrics"]), "later = acc + 1"])
    assert p.metrics.step == "metrics"
    assert p.step("metrics").cells == [1, 2]


def test_kale_pipeline_metrics():
    p = compile_source([TRAIN, ("print(acc)", ["pipeline-metrics"])])
    assert (p.metrics.step, p.metrics.names) == ("metrics", ["acc"])


def test_metrics_step_name_does_not_clash_with_a_user_step():
    p = compile_source([("acc = 1", ["step:metrics"]), ("acc", ["metrics"])])
    assert p.metrics.step == "metrics_2"
    assert [s.name for s in p.steps] == ["metrics", "metrics_2"]
    assert "duplicate-step" not in [d.code for d in p.diagnostics]


def test_a_second_metrics_cell_is_an_error():
    p = compile_source([TRAIN, ("acc", ["metrics"]), ("p", ["metrics"])])
    dup = [d for d in p.diagnostics if d.code == "duplicate-metrics"]
    assert [(d.cell, d.severity) for d in dup] == [(2, "error")]
    assert dup[0].hint == "merge it into the metrics cell (cell 2)"  # index 1, as JupyterLab numbers it
    assert p.metrics.names == ["acc"]


def test_bad_metric_in_a_notebook():
    p = compile_source([TRAIN, ("{p: r}", ["metrics"])])
    assert [(d.code, d.cell) for d in p.diagnostics] == [("bad-metric", 1)]


def test_no_metrics_cell_means_no_metrics():
    p = compile_source([TRAIN])
    assert p.metrics.step is None and p.metrics.names == []
    assert p.to_json()["metrics"] == {"step": None, "names": [], "exprs": {}, "spread": []}


# -- at run time (passes once kernels/namespace.py evaluate_metrics reads Metrics.spread and
# keeps integers) ----------------------------------------------------------------------------


def test_metric_names_stay_readable_and_integers_stay_integers():
    from nbscale.kernels.executor import execute_step

    p = compile_source([
        ("accs = {'gb': 0.75, 'rf': 0.5}\nn_trees = 3", ["step:train"]),
        ('{f"acc_{k}": v for k, v in accs.items()}\nn_trees\n{**accs, "total": 1.25}', ["metrics"]),
    ])
    assert not p.diagnostics, p.diagnostics
    inputs = {"accs": {"gb": 0.75, "rf": 0.5}, "n_trees": 3}
    result = execute_step(p.step("metrics"), p.prelude, {}, inputs, metrics=p.metrics)
    assert result.error is None and result.warnings == []
    assert result.metrics == {"acc_gb": 0.75, "acc_rf": 0.5, "n_trees": 3, "gb": 0.75, "rf": 0.5, "total": 1.25}
    assert type(result.metrics["n_trees"]) is int
