"""prelude_classes: a class of the functions cell is one class in every step, as top to bottom."""

from __future__ import annotations

import json
import subprocess
import sys

import cloudpickle
import pytest
from conftest import make_notebook

from nbscale.kernels.prelude_classes import shared_classes

PRELUDE = ["from dataclasses import dataclass\nfrom enum import Enum",
           "class Base:\n    def __init__(self, lim):\n        self.lim = lim\n\n"
           "class Clip(Base):\n    def __init__(self, lim):\n        super().__init__(lim)\n"
           "    def twice(self):\n        return self.lim * 2\n\n"
           "@dataclass\nclass Cfg:\n    lr: float = 0.1\n\n"
           "class Mode(Enum):\n    FAST = 1\n    SLOW = 2\n\n"
           "DEFAULT, FAST = Clip(1), Mode.FAST\n"]


def _step(prelude=PRELUDE) -> tuple[dict, list]:
    """A step's namespace after its prelude ran, as the executor makes it; the classes taken."""
    ns = {"__name__": "__main__"}
    for source in prelude:
        exec(compile(source, "<cell>", "exec"), ns)  # noqa: S102 - the test's own code
    return ns, shared_classes(ns, prelude)


def test_a_later_steps_classes_are_the_first_steps_and_its_values_belong_to_them():
    first, _ = _step()
    made = first["Clip"](3), first["Cfg"](), first["Mode"].FAST
    later, taken = _step()
    assert {cls.__name__ for cls in taken} == {"Base", "Clip", "Cfg", "Mode"}
    assert all(later[name] is first[name] for name in ("Base", "Clip", "Cfg", "Mode"))
    assert isinstance(made[0], later["Clip"]) and made[0].twice() == 6
    assert made[1] == later["Cfg"]() and made[2] is later["Mode"].FAST
    assert isinstance(later["DEFAULT"], later["Clip"]) and later["FAST"] is later["Mode"].FAST
    assert isinstance(later["Clip"](2), later["Base"])  # super() of the class taken: its own


def test_a_class_of_its_own_is_based_on_the_base_taken():
    # a worker given a value of the base alone (rebuilt as it arrives, before the step's prelude
    # runs): the step's own Clip is based on that base
    base = type(cloudpickle.loads(_pickled_elsewhere("[ns['Base'](1)]"))[0])
    later, taken = _step()
    assert base in taken and later["Base"] is base
    assert issubclass(later["Clip"], base) and isinstance(later["DEFAULT"], base)


def test_another_prelude_has_classes_of_its_own():
    first, _ = _step()
    other, taken = _step([PRELUDE[0], PRELUDE[1] + "\nX = 2\n"])
    assert taken == [] and other["Clip"] is not first["Clip"]


def _pickled_elsewhere(values: str) -> bytes:
    """`values` (an expression of a step's namespace `ns`) cloudpickled in another process."""
    code = (f"import sys, cloudpickle\nsys.path[:0] = {sys.path!r}\n"
            f"from test_prelude_classes import _step\nns, _ = _step()\n"
            f"sys.stdout.buffer.write(cloudpickle.dumps({values}))")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, check=True, timeout=60).stdout


def test_a_value_pickled_in_another_process_is_rebuilt_as_this_processs_class():
    pickled = _pickled_elsewhere("[ns['Clip'](3), ns['Mode'].SLOW, ns['Cfg'](0.5)]")
    ns, _ = _step()
    clip, mode, cfg = cloudpickle.loads(pickled)
    assert isinstance(clip, ns["Clip"]) and mode is ns["Mode"].SLOW and cfg == ns["Cfg"](0.5)


@pytest.mark.parametrize("engine", ["local", "dask"])
def test_values_of_functions_cell_classes_are_of_the_class_later_steps_see(tmp_path, engine):
    # two producers (on two workers on dask) and a reader; then the reader alone again, the
    # producers' values read back from the store
    prelude = [(PRELUDE[0] + "\nimport os, pickle, json", ["imports"]), (PRELUDE[1], ["functions"])]
    reader = ("res = {'clip': isinstance(t1, Clip) and isinstance(t2, Base), 'same': type(t1) is type(t2),\n"
              "       'cfg': cfg == Cfg(), 'mode': mode is Mode.FAST, 'default': isinstance(DEFAULT, Clip)}\n"
              "pickle.dumps([t1, t2, cfg, mode])\njson.dump(res, open('out.json', 'w'))")
    cells = [*prelude, ("t1, cfg = Clip(3), Cfg()", ["step:one"]), ("t2, mode = Clip(4), Mode.FAST", ["step:two"])]
    from nbscale.kernels.runner import RunOptions, run_notebook

    for version in ("", "# again\n"):
        nb = make_notebook(tmp_path, [*cells, (version + reader, ["step:reader"])], name="classes")
        result = run_notebook(nb, options=RunOptions(engine=engine, workers=2 if engine == "dask" else None))
        assert result.ok, result.steps
        assert json.loads((tmp_path / "out.json").read_text()) == dict.fromkeys(
            ("clip", "same", "cfg", "mode", "default"), True)
    assert [s["cached"] for s in result.steps] == [True, True, False]


@pytest.mark.parametrize("engine", ["local", "dask"])
def test_a_later_steps_change_of_the_class_reaches_an_instance_made_before(tmp_path, engine):
    from nbscale.kernels.runner import RunOptions, run_notebook

    cells = [("import json", ["imports"]),
             ("class Scaler:\n    k = 1\n    def go(self, x):\n        return x * self.k", ["functions"]),
             ("s = Scaler()", ["step:make"]), ("Scaler.k = 10", ["step:change"]),
             ("json.dump(s.go(2), open('out.json', 'w'))", ["step:use"])]
    nb = make_notebook(tmp_path, cells, name="scaler")
    assert run_notebook(nb, options=RunOptions(engine=engine, use_cache=False)).ok
    assert json.loads((tmp_path / "out.json").read_text()) == 20  # as top to bottom
