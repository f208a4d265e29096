"""Tests for nbscale.kernels.namespace: functions rebound to a step's globals, metrics."""

from __future__ import annotations

import functools
import json
import posixpath

import cloudpickle
import numpy as np
import pytest
from test_executor import ok, run

from nbscale.compiler.ir import Metrics
from nbscale.kernels.array_views import WALK_LIMIT
from nbscale.kernels.executor import Frame
from nbscale.kernels.namespace import HELD_DEPTH, evaluate_metrics, rebind_functions, replay_settings


def notebook_function(source: str, name: str):
    """A function defined as a notebook defines it: in a namespace named __main__."""
    ns = {"__name__": "__main__"}
    exec(compile(source, "<notebook>", "exec"), ns)
    return ns[name]


# --- functions from earlier steps ------------------------------------------------------------


def test_rebound_function_reads_the_new_namespace():
    scale = notebook_function("factor = 2\ndef scale(v):\n    return v * factor", "scale")
    ns = {"__name__": "__main__", "factor": 10}
    rebound = rebind_functions({"scale": scale, "alias": scale, "n": 1}, ns)
    assert rebound["scale"](3) == 30 and scale(3) == 6  # the original keeps its globals
    assert rebound["alias"] is rebound["scale"]  # one function under two names stays one
    assert rebound["n"] == 1
    assert rebound["scale"].__qualname__ == "scale"


class Transformer:
    """As scikit-learn's FunctionTransformer holds its function."""

    def __init__(self, func):
        self.func = func

    def transform(self, v):
        return self.func(v)


def test_functions_held_by_partials_objects_and_tuples_read_the_new_namespace():
    """`partial(scale)`, `FunctionTransformer(scale)`, `np.vectorize(scale)`, a pipeline's steps (a
    list of tuples of objects): a call of the holder calls the function, which in the notebook reads
    the current globals; unpickled, it read its pickled copy of them."""
    scale = cloudpickle.loads(cloudpickle.dumps(notebook_function("K = 1\ndef scale(v):\n    return v * K", "scale")))
    given = {"p": functools.partial(scale), "ft": Transformer(scale), "vf": np.vectorize(scale),
             "pipe": [("scale", Transformer(functools.partial(scale)))], "pair": (scale, 1),
             "plain": Transformer(None)}
    rebound = rebind_functions(given, {"__name__": "__main__", "K": 5})
    assert rebound["p"](2) == rebound["ft"].transform(2) == rebound["vf"](2) == 10
    assert rebound["pipe"][0][1].transform(2) == 10 and rebound["pair"][0](2) == 10
    assert given["p"](2) == 2 and scale(2) == 2  # a partial is made anew: the given one is as it was
    assert rebound["plain"] is given["plain"] and rebound["ft"] is given["ft"]  # (set on the step's copy)


def test_functions_a_decorator_wraps_read_the_new_namespace():
    # `@functools.wraps` and `@lru_cache`: the wrapper called the function it wrapped, which kept the
    # globals of the step that defined it (a later step's change of `df` or `K` was not seen)
    source = ("import functools\nK = 1\n"
              "def timed(fn):\n    @functools.wraps(fn)\n    def w(*a):\n        return fn(*a)\n    return w\n"
              "@timed\ndef scale(v):\n    return v * K\n"
              "@functools.lru_cache(maxsize=8)\ndef cached(v):\n    return v * K\n"
              "@functools.cache\ndef forever(v):\n    return v * K\n")
    given = {name: notebook_function(source, name) for name in ("scale", "cached", "forever")}
    rebound = rebind_functions(given, {"__name__": "__main__", "K": 5})
    assert rebound["scale"](2) == rebound["cached"](2) == rebound["forever"](2) == 10
    assert rebound["cached"].cache_parameters() == {"maxsize": 8, "typed": False}
    assert rebound["scale"].__name__ == "scale" and rebound["cached"].__wrapped__.__name__ == "cached"
    assert given["scale"](2) == given["cached"](2) == 2  # the given ones are as they were


def test_methods_of_a_notebook_class_read_the_new_namespace():
    # the class arrived with the globals of the step that defined it: a method reading a parameter
    # that step was not given failed with NameError, and one reading a name a later step rebound
    # read its old value
    source = ("class Base:\n    def scaled(self, v):\n        return v * K\n"
              "class Builder(Base):\n    @staticmethod\n    def window():\n        return WINDOW\n"
              "    def build(self, v):\n        return self.scaled(v) + self.window()\n")
    builder = cloudpickle.loads(cloudpickle.dumps(notebook_function(source + "b = Builder()", "b")))
    rebound = rebind_functions({"b": builder}, {"__name__": "__main__", "K": 10, "WINDOW": 1})
    assert rebound["b"].build(2) == 21 and type(rebound["b"]).window() == 1


def test_objects_are_looked_into_a_few_levels_deep_only():
    scale = notebook_function("K = 1\ndef scale(v):\n    return v * K", "scale")
    deep = scale
    for _ in range(HELD_DEPTH + 1):
        deep = Transformer(deep)
    rebind_functions({"deep": deep}, {"__name__": "__main__", "K": 5})
    for _ in range(HELD_DEPTH + 1):
        deep = deep.func
    assert deep is scale  # beyond HELD_DEPTH: left as it was


def test_a_long_list_is_looked_into_only_so_far():
    # every item of a list was looked at, numbers too: a step given a list of a million numbers paid
    # 1 s for it (top to bottom: nothing). A function that far into a list keeps its globals.
    scale = notebook_function("K = 1\ndef scale(v):\n    return v * K", "scale")
    items = [scale, *range(2 * WALK_LIMIT), scale]
    rebound = rebind_functions({"items": items}, {"__name__": "__main__", "K": 5})
    assert rebound["items"][0](2) == 10  # near the start: rebound, as before
    assert rebound["items"][-1] is scale  # beyond the items looked at: as it was
    row = (scale, *range(2 * WALK_LIMIT), scale)  # (a tuple is made anew, with its head rebound)
    rebound = rebind_functions({"row": row}, {"__name__": "__main__", "K": 5})["row"]
    assert rebound[0](2) == 10 and rebound[-1] is scale and rebound[1:-1] == row[1:-1]


def test_library_functions_and_their_wrappers_keep_their_globals():
    wrapped = functools.wraps(notebook_function("def f():\n    pass", "f"))(posixpath.join)
    ns = {"__name__": "__main__"}
    rebound = rebind_functions({"join": posixpath.join, "wrapped": wrapped}, ns)
    assert rebound["join"] is posixpath.join and rebound["wrapped"] is wrapped


def test_function_from_earlier_step_reads_this_steps_globals():
    a = ok(run("factor = 2\ndef scale(v):\n    return v * factor", outputs=["scale"]))
    shipped = cloudpickle.loads(cloudpickle.dumps(a.outputs["scale"]))
    assert shipped(1) == 2  # unpickled alone, it still has step A's factor
    b = ok(run("factor = 10\nresult = scale(3)", inputs={"scale": shipped}, outputs=["result"]))
    assert b.outputs["result"] == 30


def test_library_functions_are_not_rebound():
    result = ok(run("joined = join('a', 'b')", inputs={"join": posixpath.join},
                    outputs=["joined"]))
    assert result.outputs["joined"] == "a/b"


def test_failure_in_shipped_function_maps_to_its_defining_cell():
    a = ok(run("def ratio(v):\n    return v / zero", cells=[2], outputs=["ratio"]))
    shipped = cloudpickle.loads(cloudpickle.dumps(a.outputs["ratio"]))
    b = run("zero = 0\nratio(1)", cells=[6], inputs={"ratio": shipped})
    assert b.error.frames == [Frame(6, 2, "<module>"), Frame(2, 2, "ratio")]
    assert (b.error.cell, b.error.line, b.error.running_cell) == (2, 2, 6)


# --- metrics ---------------------------------------------------------------------------------


def test_evaluate_metrics_flattens_dicts_and_warns_instead_of_failing():
    metrics = Metrics(step="s", names=["acc", "by_class"], exprs={"broken": "1 / 0", "text": "'x' * 3"})
    values, warnings = evaluate_metrics(metrics, {"acc": np.float64(0.5), "by_class": {"a": 1, "b": True}})
    assert values == {"acc": 0.5, "by_class.a": 1.0, "by_class.b": 1.0}
    assert [w.split(" ")[1] for w in warnings] == ["'broken'", "'text'"]
    assert "ZeroDivisionError" in warnings[0] and "'xxx'" in warnings[1]


def test_keyboard_interrupt_in_a_metric_propagates():
    def interrupt():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        evaluate_metrics(Metrics(step="s", exprs={"m": "interrupt()"}), {"interrupt": interrupt})


def test_metrics_numbers_dicts_numpy_and_warnings():
    metrics = Metrics(step="evaluate", names=["acc", "scores", "np_acc", "label", "flag"],
                      exprs={"acc": "hits / total", "scores": "{'lr': 0.5, 'rf': np.int64(1)}",
                             "np_acc": "np.float32(0.25)", "label": "'best'", "flag": "hits > 1"})
    result = ok(run("import numpy as np\nhits, total = 3, 4", name="evaluate", metrics=metrics))
    assert result.metrics == {"acc": 0.75, "scores.lr": 0.5, "scores.rf": 1.0, "np_acc": 0.25,
                              "flag": 1.0}
    # integers stay integers (numpy's and bools too), other numbers are floats: all plain Python types
    assert {k: type(v) for k, v in result.metrics.items()} == {
        "acc": float, "scores.lr": float, "scores.rf": int, "np_acc": float, "flag": int}
    assert len(result.warnings) == 1 and "'label'" in result.warnings[0]
    json.dumps(result.to_json())


def test_a_setting_that_fails_to_replay_is_the_steps_error_at_its_cell():
    setting = {"cell": 2, "line": 1, "source": "import missing_module_xyz", "imports": []}
    error = replay_settings([setting], {})
    assert (error["cell"], error["line"], error["ename"]) == (2, 1, "ModuleNotFoundError")
    # the message numbers the cell (index 2) as JupyterLab does
    assert error["evalue"].startswith("replaying the setting of cell 3, line 1 (import missing_module_xyz) failed")
