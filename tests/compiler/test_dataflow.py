from nbscale.compiler import compile_source


def codes(pipeline):
    return [d.code for d in pipeline.diagnostics]


def test_edges_come_from_data_and_independent_steps_stay_independent():
    p = compile_source([
        ("X, y = [1, 2], [3, 4]", ["step:split"]),
        ("lr = ('lr', X, y)", ["step:train_lr"]),
        ("rf = ('rf', X, y)", ["step:train_rf"]),
        ("best = max(lr, rf)", ["step:pick"]),
    ])
    assert p.step("train_lr").after == ["split"] and p.step("train_rf").after == ["split"]
    assert p.step("pick").after == ["train_lr", "train_rf"]
    assert p.step("pick").sources == {"lr": "train_lr", "rf": "train_rf"}
    assert p.step("split").outputs == ["X", "y"]
    assert not p.diagnostics


def test_reading_a_name_without_fitting_method_calls_keeps_parallelism():
    p = compile_source([
        ("X = [[1], [2]]\ny = [0, 1]", ["step:split"]),
        ("from sklearn.linear_model import LinearRegression\na = LinearRegression().fit(X, y)", ["step:a"]),
        ("b = sum(y)\nX.copy()", ["step:b"]),
        ("c = (a, b, X)", ["step:c"]),
    ])
    assert p.step("b").after == ["split"]
    assert p.step("c").sources["X"] == "split"


def test_nearest_earlier_binder_wins():
    p = compile_source([("x = 1", ["step:a"]), ("x = 2", ["step:b"]), ("y = x", ["step:c"])])
    assert p.step("c").sources == {"x": "b"}
    assert p.step("a").outputs == []


def test_mutation_hands_the_value_on():
    p = compile_source([
        ("train = {'v': 1}\ntest = {'v': 2}", ["step:load"]),
        ("data = [train, test]\nfor df in data:\n    df['x2'] = df['v'] * 2", ["step:clean"]),
        ("total = train['x2'] + test['x2']", ["step:use"]),
    ])
    assert p.step("use").sources == {"test": "clean", "train": "clean"}
    assert set(p.step("clean").inputs) == {"train", "test"}
    assert p.step("clean").groups == [["test", "train"]]


def test_mutating_one_alias_hands_on_the_whole_group():
    p = compile_source([
        ("train = [1]\nalias = train", ["step:load"]),
        ("alias.append(2)", ["step:mutate"]),
        ("n = len(train)", ["step:use"]),
    ])
    assert p.step("use").sources == {"train": "mutate"}
    assert "train" in p.step("mutate").inputs


def test_method_call_mutation_and_inplace_flag():
    p = compile_source([
        ("df = {'a': None}", ["step:load"]),
        ("df.update(a=1)", ["step:fix"]),
        ("v = df['a']", ["step:use"]),
    ])
    assert p.step("use").sources == {"df": "fix"}


def test_function_defined_in_functions_cell_reads_globals_at_call_site():
    p = compile_source([
        ("def scaled(v):\n    return v * SCALE\n", ["functions"]),
        ("SCALE = 3", ["step:load"]),
        ("x = 1", ["step:other"]),
        ("out = scaled(2)", ["step:use"]),
    ])
    assert p.step("use").sources == {"SCALE": "load"}
    assert p.prelude.names == ["scaled"]


def test_function_defined_in_earlier_step_is_an_input_with_its_globals():
    p = compile_source([
        ("K = 2\ndef f(v):\n    return v * K\n", ["step:define"]),
        ("K = 5", ["step:rebind"]),
        ("r = f(1)", ["step:use"]),
    ])
    assert p.step("use").sources == {"K": "rebind", "f": "define"}


def test_parameters_are_not_inputs_but_are_recorded():
    p = compile_source([
        ("alpha = 0.5", ["parameters"]),
        ("beta = alpha * 2", ["step:a"]),
    ])
    assert p.step("a").parameters == ["alpha"] and p.step("a").inputs == []


def test_parameter_rebound_by_a_step_flows_from_that_step():
    p = compile_source([("alpha = 0.5", ["parameters"]), ("alpha = 1", ["step:a"]), ("b = alpha", ["step:b"])])
    assert p.step("b").sources == {"alpha": "a"} and p.step("b").parameters == []


def test_undefined_name_points_at_cell_line_col():
    p = compile_source([("import math", ["imports"]), ("x = 1", ["step:a"]),
                        ("y = 1\nz = x + undefined_thing", ["step:b"])])
    (diag,) = p.diagnostics
    assert (diag.code, diag.cell, diag.line, diag.col) == ("undefined-name", 2, 2, 9)


def test_undefined_name_hints():
    p = compile_source([("y = x", ["step:a"]), ("x = 1", ["step:b"])])
    assert "cell 1" in p.diagnostics[0].hint
    p = compile_source([("x = 1", ["skip"]), ("y = x", ["step:a"])])
    assert "skip" in p.diagnostics[0].hint
    p = compile_source([("counter = 1", ["step:a"]), ("y = countr", ["step:b"])])
    assert "counter" in p.diagnostics[0].hint


def test_optional_reads_are_not_errors():
    p = compile_source([("if True:\n    x = 1\nprint(x)", ["step:a"])])
    assert not p.diagnostics


def test_deleted_name_is_gone_for_later_steps():
    p = compile_source([("x = 1", ["step:a"]), ("del x", ["step:b"]), ("y = x", ["step:c"])])
    assert codes(p) == ["undefined-name"]


def test_after_tags_add_order_and_are_validated():
    p = compile_source([("a = 1", ["step:first"]), ("b = 2", ["step:second", "after:first"])])
    assert p.step("second").after == ["first"] and p.step("second").inputs == []
    p = compile_source([("a = 1", ["step:first"]), ("b = 2", ["step:second", "after:frist"])])
    assert codes(p) == ["after-missing-step"] and "first" in p.diagnostics[0].hint


def test_cycle_in_after_tags():
    p = compile_source([("a = 1", ["step:one", "after:two"]), ("b = a", ["step:two"])])
    assert codes(p) == ["cycle"]
    assert "one" in p.diagnostics[0].message and "two" in p.diagnostics[0].message


def test_ambiguous_name_from_parallel_steps():
    p = compile_source([
        ("x = 1", ["step:a"]), ("x = 2", ["step:b"]), ("y = x", ["step:c"])])
    assert codes(p) == ["ambiguous-name"] and p.diagnostics[0].severity == "warning"
    p = compile_source([
        ("x = 1", ["step:a"]), ("x = x + 1", ["step:b"]), ("y = x", ["step:c"])])
    assert not p.diagnostics  # b depends on a: no ambiguity


def test_dynamic_code_is_a_warning():
    p = compile_source([("from math import *\nv = eval('1')", ["step:a"])])
    assert codes(p) == ["dynamic-code", "dynamic-code"]
    assert not p.has_errors


def test_syntax_error_is_reported_once_with_location():
    p = compile_source([("x = 1", ["step:a"]), ("y = (1,\n", ["step:b"])])
    assert codes(p) == ["syntax-error"] and p.diagnostics[0].cell == 1


def test_prelude_reading_a_parameter_is_an_error_with_hint():
    p = compile_source([("n = 3", ["parameters"]), ("LIMIT = n * 2", ["functions"]), ("x = LIMIT", ["step:a"])])
    assert codes(p) == ["undefined-name"] and "parameters" in p.diagnostics[0].hint


def test_untagged_notebook_is_one_step():
    p = compile_source(["import math", "x = math.pi", "y = x * 2"], name="my-analysis")
    assert [s.name for s in p.steps] == ["my-analysis"] and p.steps[0].cells == [0, 1, 2]


def test_step_options_reach_the_ir():
    p = compile_source([("x = 1", ["step:a", "resources:cpu=2,memory=4Gi,gpu=1", "retries:3",
                                   "cache:off", "timeout:30m", "image:python:3.11"])])
    step = p.step("a")
    assert step.resources == {"cpu": 2, "memory": "4Gi", "gpu": 1}
    assert (step.retries, step.cache, step.timeout, step.image) == (3, False, 1800, "python:3.11")


def test_calling_a_module_imported_in_a_step_does_not_mutate_it():
    p = compile_source([
        ("import time\nx = 1", ["step:start"]),
        ("time.sleep(0)\na = x", ["step:left"]),
        ("time.sleep(0)\nb = x", ["step:right"]),
    ])
    assert p.step("left").after == ["start"] and p.step("right").after == ["start"]


def test_calls_on_modules_neither_mutate_nor_alias_their_arguments():
    p = compile_source([
        ("import numpy as np", ["imports"]),
        ("a = np.zeros(3)\nb = np.ones(3)", ["step:load"]),
        ("la = np.log(a)", ["step:log_a"]),
        ("lb = np.log(b)", ["step:log_b"]),
        ("a[0] = 1.0", ["step:mut_a"]),
    ])
    assert {s.name: (s.inputs, s.after) for s in p.steps[1:]} == {
        "log_a": (["a"], ["load"]), "log_b": (["b"], ["load"]), "mut_a": (["a"], ["load"])}


def test_a_reused_loop_variable_does_not_join_unrelated_groups():
    p = compile_source([
        ("train, test, c, d = [1], [2], [3], [4]", ["step:load"]),
        ("for df in [train, test]:\n    df.append(0)", ["step:prep1"]),
        ("for df in [c, d]:\n    df.append(0)", ["step:prep2"]),
    ])
    assert p.step("prep1").inputs == ["test", "train"] and p.step("prep2").inputs == ["c", "d"]
    assert p.step("prep2").after == ["load"]


def test_rebinding_ends_sharing():
    p = compile_source([
        ("a = [1]\nb = a", ["step:load"]),
        ("b = [2]", ["step:fresh"]),
        ("a.append(3)", ["step:mutate"]),
        ("x = b", ["step:use"]),
    ])
    assert p.step("use").sources == {"b": "fresh"}


def test_zip_loop_mutation_changes_only_the_zipped_container_it_writes():
    p = compile_source([
        ("w = [0.0, 0.0]\nx = [1.0, 2.0]", ["step:load"]),
        ("for j, (wi, xi) in enumerate(zip(w, x)):\n    w[j] = wi + xi", ["step:fit"]),
        ("n = len(x)", ["step:count"]),
    ])
    assert p.step("count").sources == {"x": "load"} and p.step("count").after == ["load"]
