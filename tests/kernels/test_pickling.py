"""kernels/pickling.py: a step's lru_cache'd functions and (Python 3.11) cached_property classes pickle."""

from __future__ import annotations

import copy
import fnmatch
import functools
import pickle

import cloudpickle
from conftest import make_notebook

from nbscale.kernels import pickling  # noqa: F401 - (registers its reducers)
from nbscale.kernels.runner import RunOptions, run_notebook


def test_a_function_found_by_name_still_pickles_by_name():
    assert pickle.loads(pickle.dumps(fnmatch._compile_pattern)) is fnmatch._compile_pattern
    assert copy.deepcopy(fnmatch._compile_pattern) is fnmatch._compile_pattern


def test_functions_and_classes_defined_in_no_module_pickle_by_value():
    ns: dict = {"__name__": "a_step"}  # as a step's code: no module holds its names
    exec("import functools\n@functools.lru_cache(maxsize=8, typed=True)\ndef fib(n):\n"
         "    return n if n < 2 else fib(n - 1) + fib(n - 2)\n"
         "class C:\n    @functools.cached_property\n    def v(self):\n        return self.n * 2\n", ns)
    fib = cloudpickle.loads(cloudpickle.dumps(ns["fib"]))
    assert fib(20) == 6765 and fib.cache_parameters() == {"maxsize": 8, "typed": True}
    c = ns["C"]()
    c.n = 5
    again = cloudpickle.loads(cloudpickle.dumps(c))
    assert again.v == 10 and again.__dict__["v"] == 10  # (cached under its own name)
    assert isinstance(type(again).__dict__["v"], functools.cached_property)


def test_a_step_hands_on_a_cached_function_and_a_class_with_a_cached_property_on_a_cluster(tmp_path):
    nb = make_notebook(tmp_path, [
        ("import functools\n@functools.cache\ndef fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n"
         "class C:\n    @functools.cached_property\n    def v(self):\n        return 10\nc = C()", ["step:define"]),
        ("out = (fib(20), c.v)", ["step:use"])])
    result = run_notebook(nb, options=RunOptions(engine="dask", workers=1))
    assert result.ok, result.steps
    assert result.load("use")["out"] == (6765, 10)
