"""compiler/settings.py: process-wide settings travel to later steps; seeds are diagnosed.

The compiler side is checked on the IR (`steps[].settings`, hashes, diagnostics); the last tests
run compiled steps with the real executor in a fresh Python process and check that a later step
sees what a top-to-bottom run would (pandas options, warning filters, matplotlib rcParams).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap

import pytest

from nbscale.compiler import compile_source
from nbscale.compiler import settings as settings_pass
from nbscale.compiler.settings import SEED_CALLS, SETTING_CALLS, replay_source

# (imports cell, setting statement): every form docs/tags.md lists, through its usual alias
SETTINGS = [
    ("import sklearn", "sklearn.set_config(display='text')"),
    ("from sklearn import set_config", "set_config(assume_finite=True)"),
    ("import pandas as pd", "pd.set_option('display.max_columns', 50)"),
    ("import pandas", "pandas.set_option('display.width', 200)"),
    ("import pandas as pd", "pd.reset_option('display.width')"),
    ("import pandas as pd", "pd.options.display.max_rows = 10"),
    ("import pandas as pd", "pd.options.mode.chained_assignment = None"),
    ("import numpy as np", "np.set_printoptions(precision=3, suppress=True)"),
    ("import numpy as np", "np.seterr(all='ignore')"),
    ("import warnings", "warnings.filterwarnings('ignore', category=FutureWarning)"),
    ("import warnings", "warnings.simplefilter('ignore')"),
    ("from warnings import filterwarnings", "filterwarnings('ignore')"),
    ("import matplotlib.pyplot as plt", "plt.rcParams['figure.figsize'] = (10, 6)"),
    ("import matplotlib as mpl", "mpl.rcParams.update({'font.size': 12})"),
    ("import matplotlib", "matplotlib.rcParams['axes.grid'] = True"),
    ("from matplotlib import rcParams", "rcParams['figure.dpi'] = 120"),
    ("from matplotlib import pyplot as plt", "plt.style.use('ggplot')"),
    ("import matplotlib.pyplot as plt", "plt.rc('font', size=9)"),
    ("import seaborn as sns", "sns.set_theme(style='whitegrid')"),
    ("import seaborn as sns", "sns.set()"),
    ("import os", "os.environ['MODE'] = 'fast'"),
    ("from os import environ", "environ['MODE'] = 'fast'"),
    ("import os", "os.environ.update({'MODE': 'fast'})"),
    ("import os", "os.environ.setdefault('MODE', 'fast')"),
    ("import os", "os.chdir('data')"),
    ("import decimal", "decimal.getcontext().prec = 4"),
    ("from decimal import getcontext", "getcontext().rounding = 'ROUND_DOWN'"),
    ("import decimal", "decimal.setcontext(decimal.Context(prec=6))"),
]


def codes(pipeline):
    return [d.code for d in pipeline.diagnostics]


@pytest.mark.parametrize("imports, statement", SETTINGS, ids=[s for _, s in SETTINGS])
def test_each_setting_travels_to_every_later_step_with_its_import(imports, statement):
    p = compile_source([
        ("x = 1", ["step:before"]),
        (imports + "\n" + statement + "\ny = x", ["step:sets"]),
        ("z = 2", ["step:later"]),
        ("w = z", ["step:last"]),
    ])
    assert codes(p) == [], p.diagnostics
    assert p.step("before").settings == [] and p.step("sets").settings == []  # it runs its own cell
    entry = {"cell": 1, "line": 2, "source": statement, "imports": [imports]}
    assert p.step("later").settings == [entry] and p.step("last").settings == [entry]
    assert replay_source(entry) == f"{imports}\n{statement}"


def test_a_setting_calls_value_kept_in_a_name_travels_as_the_call():
    # `old = np.seterr(divide="raise")`: later steps divided by zero with no error, where top to
    # bottom they raise; the name keeps the settings before, which only the step holds
    p = compile_source([("import numpy as np", ["imports"]), ("old = np.seterr(divide='raise')", ["step:sets"]),
                        ("r = np.array([1.0]) / 0", ["step:later"]), ("back = old", ["step:last"])])
    entry = {"cell": 1, "line": 1, "source": "np.seterr(divide='raise')", "imports": ["import numpy as np"]}
    assert p.step("later").settings == [entry] and codes(p) == []
    assert p.step("last").sources == {"old": "sets"}


def test_a_call_of_an_own_modules_function_that_changes_the_module_travels(tmp_path):
    # `cfg.configure(k=5)` updates cfg's SETTINGS: a later step on another worker imported cfg
    # afresh and read k=1, where top to bottom it reads 5
    from conftest import make_notebook

    from nbscale.compiler import compile_notebook

    (tmp_path / "cfg.py").write_text("SETTINGS = {'k': 1}\nN = 0\ndef configure(**kw):\n    SETTINGS.update(kw)\n"
                                     "def bump():\n    global N\n    N += 1\n"
                                     "def get(name):\n    return SETTINGS[name]\n")
    nb = make_notebook(tmp_path, [("import cfg\nfrom cfg import bump as more", ["imports"]),
                                  ("cfg.configure(k=5)\nmore()\nv = cfg.get('k')", ["step:a"]),
                                  ("w = cfg.get('k')", ["step:b"])])
    settings = compile_notebook(nb).step("b").settings
    assert [entry["source"] for entry in settings] == ["cfg.configure(k=5)", "more()"]  # (not `cfg.get`)


def test_every_listed_call_is_a_setting_and_no_seed_is():
    assert not SETTING_CALLS & SEED_CALLS
    shown = {statement.split("(")[0] for _, statement in SETTINGS}
    assert {"pd.set_option", "np.set_printoptions", "warnings.filterwarnings", "sklearn.set_config"} <= shown


def test_settings_are_replayed_in_notebook_order_and_imports_from_the_prelude_come_along():
    p = compile_source([
        ("import pandas as pd\nimport warnings", ["imports"]),
        ("pd.set_option('display.max_rows', 5)\na = 1", ["step:a"]),
        ("warnings.simplefilter('ignore')\npd.set_option('display.max_rows', 7)\nb = 2", ["step:b"]),
        ("c = 3", ["step:c"]),
    ])
    assert [s["source"] for s in p.step("c").settings] == [
        "pd.set_option('display.max_rows', 5)", "warnings.simplefilter('ignore')",
        "pd.set_option('display.max_rows', 7)"]
    assert [(s["cell"], s["line"]) for s in p.step("c").settings] == [(1, 1), (2, 1), (2, 2)]
    assert p.step("c").settings[1]["imports"] == ["import warnings"]
    assert [s["source"] for s in p.step("b").settings] == ["pd.set_option('display.max_rows', 5)"]
    assert p.step("c").after == []  # settings make no data edge: c still runs in parallel


def test_a_multi_line_setting_is_kept_whole():
    statement = "plt.rcParams.update({\n    'font.size': 12,\n    'axes.grid': True,\n})"
    p = compile_source([("import matplotlib.pyplot as plt\n" + statement, ["step:a"]), ("b = 1", ["step:b"])])
    assert p.step("b").settings[0]["source"] == statement


def test_a_parameter_a_setting_reads_becomes_a_parameter_of_the_later_steps():
    p = compile_source([
        ("rows = 10", ["parameters"]),
        ("import pandas as pd\npd.set_option('display.max_rows', rows)", ["step:a"]),
        ("y = 2", ["step:b"]),
    ])
    assert codes(p) == []
    assert p.step("b").parameters == ["rows"]
    assert p.step("b").settings[0]["source"] == "pd.set_option('display.max_rows', rows)"


def test_a_setting_that_reads_a_computed_value_is_a_warning_and_not_replayed():
    p = compile_source([
        ("import pandas as pd\nwidth = 40 + 2\npd.set_option('display.width', width)", ["step:a"]),
        ("y = 2", ["step:b"]),
    ])
    assert codes(p) == ["setting-not-replayed"]
    diag = p.diagnostics[0]
    assert (diag.severity, diag.cell, diag.line) == ("warning", 0, 3)
    assert "'width'" in diag.message and p.step("b").settings == []


def test_a_setting_inside_a_block_is_a_warning_and_one_inside_with_is_scoped():
    p = compile_source([
        ("import warnings\nimport numpy as np\nif True:\n    np.set_printoptions(precision=2)\n"
         "with warnings.catch_warnings():\n    warnings.simplefilter('ignore')\n    a = 1", ["step:a"]),
        ("b = a", ["step:b"]),
    ])
    assert [(d.code, d.line) for d in p.diagnostics] == [("setting-not-replayed", 4)]
    assert p.step("b").settings == []


def test_settings_in_the_prelude_need_no_replay():
    p = compile_source([
        ("import pandas as pd\npd.set_option('display.max_rows', 5)\nimport random\nrandom.seed(0)", ["imports"]),
        ("a = 1", ["step:a"]), ("b = a", ["step:b"]),
    ])
    assert codes(p) == [] and all(s.settings == [] for s in p.steps)



def test_an_inline_backend_config_magic_travels_and_other_magics_do_not():
    p = compile_source([
        ("%config InlineBackend.figure_formats = ['svg']\n%config Completer.use_jedi = False\n"
         "%time x = 1\n%config InlineBackend", ["step:a"]),
        ("y = x", ["step:b"]),
    ])
    assert codes(p) == []
    assert p.step("b").settings == [{"cell": 0, "line": 1, "imports": [],
                                     "source": "get_ipython().run_line_magic('config', "
                                               "\"InlineBackend.figure_formats = ['svg']\")"}]

@pytest.mark.parametrize("magic, python", [
    ("%cd data", "get_ipython().run_line_magic('cd', 'data')"),
    ("%env MODE=fast", "get_ipython().run_line_magic('env', 'MODE=fast')"),
    ("%set_env MODE fast", "get_ipython().run_line_magic('set_env', 'MODE fast')"),
])
def test_magics_that_change_the_folder_or_the_environment_travel_as_os_chdir_does(magic, python):
    """`%cd`, `%env` in a step: later steps ran in the notebook's folder, without the variable."""
    p = compile_source([(f"x = 1\n{magic}", ["step:a"]), ("%env MODE\ny = x", ["step:b"]), ("z = y", ["step:c"])])
    assert codes(p) == []
    entry = {"cell": 0, "line": 2, "imports": [], "source": python}
    assert p.step("b").settings == [entry] and p.step("c").settings == [entry]  # (`%env MODE` reads only)


def test_a_setting_magic_expanded_from_the_notebooks_names_is_said_not_to_travel():
    p = compile_source([("data = 'in'\n%cd $data", ["step:a"]), ("y = data", ["step:b"])])
    assert codes(p) == ["setting-not-replayed"] and p.step("b").settings == []
    assert "'$data' is expanded from the notebook's names" in p.diagnostics[0].message


def test_look_alikes_are_not_settings():
    p = compile_source([
        ("class Opts:\n    def set_option(self, *a):\n        pass\npd = Opts()\npd.set_option('x', 1)\n"
         "def filterwarnings(*a):\n    pass\nfilterwarnings('ignore')\nrcParams = {}\nrcParams['a'] = 1", ["step:a"]),
        ("b = 1", ["step:b"]),
    ])
    assert codes(p) == [] and p.step("b").settings == []


def test_an_alias_bound_again_is_no_module_any_more():
    p = compile_source([
        ("import pandas as pd\nclass Fake:\n    def set_option(self, *a):\n        pass\npd = Fake()\n"
         "pd.set_option('x', 1)", ["step:a"]),
        ("b = 1", ["step:b"]),
    ])
    assert p.step("b").settings == []


def test_attributes_set_on_what_an_import_binds_travel_with_the_import():
    p = compile_source([
        ("import helpers\nfrom models import Config", ["imports"]),
        ("import torch\nhelpers.LEVEL = 5\nhelpers.N += 1\ntorch.backends.cudnn.benchmark = True\n"
         "Config.debug = True\nx = 1", ["step:a"]),
        ("y = helpers.level()", ["step:b"]),
    ])
    assert codes(p) == [], p.diagnostics
    assert [replay_source(s) for s in p.step("b").settings] == [
        "import helpers\nhelpers.LEVEL = 5", "import helpers\nhelpers.N += 1",
        "import torch\ntorch.backends.cudnn.benchmark = True", "from models import Config\nConfig.debug = True"]


def test_stores_into_what_the_prelude_made_travel_until_a_step_binds_the_name_again():
    p = compile_source([
        ("import math\ncfg = {'lr': 0.1, 'opt': {}}\nclass Opts:\n    depth = 1", ["imports"]),
        ("cfg['lr'] = 0.5\ncfg['opt']['m'] = 0.9\nOpts.depth += 1\nx = 1", ["step:a"]),
        ("y = cfg['lr'] * Opts.depth", ["step:b"]),
        ("cfg = {'lr': 1.0}\nz = 1", ["step:c"]),  # c hands on a cfg of its own: a's stores stop travelling
        ("w = cfg['lr']", ["step:d"]),
    ])
    assert codes(p) == [], p.diagnostics
    assert [s["source"] for s in p.step("b").settings] == ["cfg['lr'] = 0.5", "cfg['opt']['m'] = 0.9",
                                                          "Opts.depth += 1"]
    assert [s["source"] for s in p.step("d").settings] == ["Opts.depth += 1"]
    assert p.step("d").inputs == ["cfg"]


def test_a_step_changing_what_the_prelude_made_in_place_is_a_warning():
    """`results.append(x)` on a list the functions cell made: the prelude makes it again before
    every step, so a later step found it empty (top to bottom it holds every step's item)."""
    p = compile_source([
        ("import itertools\nimport logging\nresults = []\nids = itertools.count()\nlog = logging.getLogger()\n"
         "class Registry:\n    items = []", ["functions"]),
        ("results.append(1)\nlog.info('x')\nfor k in range(2):\n    Registry.items.extend([k])", ["step:a"]),
        ("i = next(ids)\nresults = [0]\nresults.append(2)", ["step:b"]),  # bound again: b hands its own on
        ("n = len(results) + i\nids.__next__()", ["step:c"]),
        ("results.append(3)", ["step:last"]),  # no step after it
    ])
    changed = [(d.cell, d.line, d.col) for d in p.diagnostics if d.code == "prelude-object-changed"]
    assert changed == [(1, 1, 1), (1, 4, 5), (2, 1, 5)], p.diagnostics
    assert all(d.severity == "warning" for d in p.diagnostics)
    assert "'results.append(1)' changes 'results'" in p.diagnostics[0].message


def test_calling_a_prelude_function_that_changes_its_mutable_default_is_a_warning():
    p = compile_source([
        ("def register(x, seen=[]):\n    seen.append(x)\n    return len(seen)\n"
         "def tally(x, *, counts=dict()):\n    counts[x] = counts.get(x, 0) + 1\n"
         "def reads(x, given=[]):\n    return len(given) + x", ["functions"]),
        ("a = register(1)\nb = reads(1)\ntally('k')", ["step:a"]),
        ("c = register(2)", ["step:b"]),  # the last step: no step after it
    ])
    found = [(d.cell, d.line, d.col) for d in p.diagnostics if d.code == "prelude-object-changed"]
    assert found == [(1, 1, 5), (1, 3, 1)], p.diagnostics
    assert "the default value of register's parameter 'seen'" in p.diagnostics[0].message


def test_a_function_decorator_or_method_of_the_prelude_changing_its_objects_is_a_warning():
    """A function of the prelude that appends to a list of the prelude, a decorator registering
    into a dict of it, a classmethod appending to its class's list, a method of an object the
    prelude made: each step changes its own copy, silently, unless warned."""
    p = compile_source([
        ("import functools\nRESULTS = []\nMODELS = {}\n"
         "def log_result(v):\n    RESULTS.append(v)\n"
         "def register(name):\n    def deco(f):\n        MODELS[name] = f\n        return f\n    return deco\n"
         "def track(f):\n    MODELS[f.__name__] = f\n    return f\n"
         "def put(box, v):\n    box.append(v)\n"
         "def pure(x):\n    return x + 1\n"
         "class Registry:\n    items = []\n    @classmethod\n    def add(cls, x):\n        cls.items.append(x)\n"
         "    def size(self):\n        return len(self.items)\n"
         "reg = Registry()", ["functions"]),
        ("log_result(1)\n@register('lin')\ndef lin(x):\n    return x\n@track\ndef sq(x):\n    return x * x",
         ["step:a"]),
        ("Registry.add('y')\nn = reg.size() + pure(1)\nput(RESULTS, 2)\nlog_result = print\nlog_result(3)",
         ["step:b"]),
        ("def via():\n    put(RESULTS, 4)\nvia()\nm = len(RESULTS) + len(MODELS)", ["step:c"]),
        ("k = 0", ["step:last"]),
    ])
    changed = [(d.cell, d.line, d.col) for d in p.diagnostics if d.code == "prelude-object-changed"]
    assert changed == [(1, 1, 1), (1, 2, 2), (1, 5, 2), (2, 1, 1), (2, 3, 1), (3, 3, 1)], p.diagnostics
    messages = [d.message for d in p.diagnostics]
    assert "'log_result(1)' changes 'RESULTS'" in messages[0] and "'register('lin')' changes 'MODELS'" in messages[1]
    assert "changes 'MODELS'" in messages[2] and "'Registry.add('y')' changes 'Registry'" in messages[3]
    assert "'via()' changes 'RESULTS'" in messages[5]


def test_special_methods_and_callable_values_changing_objects_of_the_prelude_are_warnings():
    """Prelude cells run before every step: `with timer:` (its `__enter__` changes it), `acc(3)`
    (`__call__`), a loop over a loader (`__iter__`), a bound method, a partial or a closure made there
    changed the step's own fresh object, where top to bottom they changed the notebook's one."""
    p = compile_source([
        ("import functools\nfrom statistics import mean", ["imports"]),
        ("class Timer:\n    def __enter__(self):\n        self.n = 1\n        return self\n"
         "    def __exit__(self, *a):\n        pass\n    def __call__(self, x):\n        self.last = x\n"
         "    def __iter__(self):\n        self.epoch = 1\n        return iter([])\n"
         "def make(lst):\n    return lambda x: lst.append(x)\n"
         "timer = Timer()\nRESULTS = []\napp = RESULTS.append\nadd = functools.partial(list.append, RESULTS)\n"
         "put = make(RESULTS)\nsize = len", ["functions"]),
        ("with timer:\n    pass\ntimer(3)\nfor x in timer:\n    pass\nlist(timer)", ["step:a"]),
        ("app(1)\nadd(2)\nput(3)\nm = mean([1, 2]) + size([1])\nwith open('f', 'w') as f:\n    pass", ["step:b"]),
        ("k = 0", ["step:last"]),
    ])
    changed = [(d.cell, d.line) for d in p.diagnostics if d.code == "prelude-object-changed"]
    assert changed == [(2, 1), (2, 3), (2, 4), (2, 6), (3, 1), (3, 2), (3, 3)], p.diagnostics


def test_a_cached_function_of_the_prelude_reading_what_steps_make_is_a_warning():
    """`@lru_cache` on a function of the prelude reading a step's value: top to bottom a later
    call returns the cached result; a step's fresh cache computes it again from the changed value."""
    p = compile_source([
        ("from functools import lru_cache\nimport functools\nLIMIT = 3", ["imports"]),
        ("@lru_cache(maxsize=None)\ndef lookup(k):\n    return CFG[k]\n"
         "@functools.cache\ndef load(path):\n    return open(path).read()[:LIMIT]\n"
         "@lru_cache\ndef also(k):\n    return CFG.get(k)", ["functions"]),
        ("CFG = {'x': 1}\ntext = load('a.txt')", ["step:a"]),
        ("v1 = lookup('x')\nCFG['x'] = 2", ["step:b"]),
        ("v2 = also('x')", ["step:c"]),
        ("v3 = lookup('x')", ["step:last"]),
    ])
    changed = [(d.cell, d.line, d.col) for d in p.diagnostics if d.code == "prelude-object-changed"]
    assert changed == [(3, 1, 6), (4, 1, 6)], p.diagnostics
    assert "changes the cache of lookup (its results depend on 'CFG'" in p.diagnostics[0].message


def test_the_skim_finds_changes_to_what_the_prelude_made():
    from nbscale.compiler.parsing import parse_cell
    from nbscale.compiler.settings import find_settings

    def found(skim):
        prelude = [parse_cell(0, "seen = set()\nq = []")]
        steps = [("a", [parse_cell(1, "x = 1\nseen.update({x})")]), ("b", [parse_cell(2, "q.sort()")]),
                 ("c", [parse_cell(3, "y = 2")])]
        return find_settings(prelude, steps, set(), {"seen", "q"}, skim=skim)

    assert found(skim=True) == found(skim=False) and len(found(skim=True).diagnostics) == 2


def test_a_store_reading_a_computed_value_or_into_a_name_bound_again_is_no_setting():
    p = compile_source([
        ("import math\nimport helpers\ncfg = {}", ["imports"]),
        ("rate = 0.3\nhelpers.RATE = rate\nmath = 3\ncfg2 = cfg\nclass helpers:\n    pass\n"
         "helpers.X = 1\nx = 1", ["step:a"]),
        ("y = cfg", ["step:b"]),
    ])
    assert codes(p) == ["setting-not-replayed"] and "reads 'rate'" in p.diagnostics[0].message
    assert p.step("b").settings == []


# -- seeds --------------------------------------------------------------------------------------

SEEDS = [
    ("import random", "random.seed(0)"),
    ("import numpy as np", "np.random.seed(0)"),
    ("from numpy.random import seed", "seed(1)"),
    ("import torch", "torch.manual_seed(0)"),
    ("import torch", "torch.cuda.manual_seed_all(0)"),
    ("import tensorflow as tf", "tf.random.set_seed(0)"),
    ("import numpy as np", "np.random.set_state(np.random.RandomState(0).get_state())"),
    ("import random", "random.setstate(random.Random(0).getstate())"),
]


@pytest.mark.parametrize("imports, call", SEEDS, ids=[c for _, c in SEEDS])
def test_a_seed_is_a_warning_naming_cell_line_and_later_steps(imports, call):
    p = compile_source([
        (f"{imports}\n{call}\nx = 1", ["step:data"]),
        ("y = x", ["step:train"]),
        ("z = 1", ["step:report"]),
    ])
    assert codes(p) == ["global-seed"]
    diag = p.diagnostics[0]
    assert (diag.severity, diag.cell, diag.line) == ("warning", 0, 2)
    assert call in diag.message and "'train', 'report'" in diag.message
    assert "default_rng(0)" in diag.hint
    assert all(s.settings == [] for s in p.steps)  # a seed is not replayed


def test_a_seed_in_the_last_step_or_the_imports_cell_is_no_warning():
    assert codes(compile_source([("x = 1", ["step:a"]), ("import random\nrandom.seed(0)", ["step:b"])])) == []
    assert codes(compile_source([("import numpy as np\nnp.random.seed(0)", ["imports"]),
                                 ("x = 1", ["step:a"]), ("y = x", ["step:b"])])) == []


@pytest.mark.parametrize("imports, seed, first, second", [
    ("import numpy as np", "np.random.seed(0)", "x = np.random.rand()", "noise = np.random.normal(size=3)"),
    ("import numpy.random as npr", "npr.seed(0)", "x = npr.permutation(5)", "npr.shuffle(order)"),
    ("import random", "random.seed(1)", "x = random.random()", "pick = random.choice([1, 2])"),
    ("import random\nfrom random import sample", "random.setstate(random.Random(3).getstate())",
     "x = sample([1, 2], 1)", "y = random.randint(0, 9)"),
], ids=["numpy", "numpy_module_alias", "random", "random_from_import"])
def test_two_steps_drawing_from_a_generator_the_imports_cell_seeds_is_a_warning(imports, seed, first, second):
    # top to bottom the second step continues the draws of the first; here it drew the same numbers, silently
    p = compile_source([(f"{imports}\n{seed}", ["imports"]), (first, ["step:a"]),
                        (f"order = [1, 2]\n{second}", ["step:b"]), ("z = 1", ["step:c"])])
    assert [(d.code, d.cell, d.line) for d in p.diagnostics] == [("prelude-seed-repeats", 2, 2)]
    diag = p.diagnostics[0]
    assert "step 'b' draws the same numbers as step 'a'" in diag.message and seed in diag.message
    assert "cell 1, line" in diag.message and "rng" in diag.hint


def test_one_step_drawing_a_generator_the_steps_seed_or_nothing_seeds_is_no_repeat_warning():
    seeded = ("import numpy as np\nimport random\nnp.random.seed(0)", ["imports"])
    assert codes(compile_source([seeded, ("x = np.random.rand()", ["step:a"]), ("y = x", ["step:b"])])) == []
    # draws of another generator, or of a generator made from the module (no global draw)
    assert codes(compile_source([seeded, ("x = random.random()", ["step:a"]),
                                 ("y = np.random.default_rng(0).random()\nz = random.Random(1).random()",
                                  ["step:b"]),
                                 ("w = np.random.rand()", ["step:c"])])) == []
    # unseeded by the prelude: nothing repeats (a fresh run draws other numbers; see the cache's rules)
    assert codes(compile_source([("import numpy as np", ["imports"]), ("x = np.random.rand()", ["step:a"]),
                                 ("y = np.random.rand()", ["step:b"])])) == []
    # a step that seeds it itself: its own `global-seed` warning, no repeat
    assert codes(compile_source([seeded, ("x = np.random.rand()", ["step:a"]),
                                 ("np.random.seed(5)\ny = np.random.rand()", ["step:b"]), ("z = 1", ["step:c"])])) \
        == ["global-seed"]


def test_a_seed_through_a_function_of_the_notebook_is_a_warning_where_it_is_called():
    p = compile_source([
        ("def set_seed(s):\n    import random\n    import numpy as np\n    random.seed(s)\n    np.random.seed(s)",
         ["functions"]),
        ("set_seed(42)\nx = 1", ["step:a"]),
        ("y = x", ["step:b"]),
    ])
    assert [(d.code, d.cell, d.line) for d in p.diagnostics] == [("global-seed", 1, 1)]
    assert "random.seed in set_seed" in p.diagnostics[0].message


def test_a_seed_inside_a_loop_or_with_block_still_seeds():
    p = compile_source([
        ("import torch\nwith torch.no_grad():\n    torch.manual_seed(0)\nfor i in range(2):\n    torch.manual_seed(i)",
         ["step:a"]),
        ("b = 1", ["step:b"]),
    ])
    assert [(d.code, d.line) for d in p.diagnostics] == [("global-seed", 3), ("global-seed", 5)]


def test_many_later_steps_are_counted_not_all_named():
    cells = [("import random\nrandom.seed(0)\nx0 = 0", ["step:s0"])]
    cells += [(f"x{i} = x{i - 1}", [f"step:s{i}"]) for i in range(1, 9)]
    message = compile_source(cells).diagnostics[0].message
    assert "'s5'" in message and "'s6'" not in message and "and 3 more" in message


# -- at run time (passes once kernels/executor.py replays Step.settings) ----------------------

RUN_STEP = textwrap.dedent("""
    import json, sys
    from nbscale.compiler import compile_source
    from nbscale.kernels.executor import execute_step
    cells = json.loads(sys.argv[1])
    pipeline = compile_source([tuple(c) for c in cells])
    step = pipeline.step(sys.argv[2])
    result = execute_step(step, pipeline.prelude, {p.name: p.default for p in pipeline.parameters}, {})
    error = result.error and {"cell": result.error.cell, "line": result.error.line, "evalue": result.error.evalue}
    print(json.dumps({"error": error, "values": {n: repr(v) for n, v in result.namespace_values.items()}}))
""")


def run_alone(cells, step, *, fails=False):
    """Run `step` of `cells` by itself in a fresh process, as a worker would: its namespace's
    reprs (or its error, when it `fails`)."""
    out = subprocess.run([sys.executable, "-c", RUN_STEP, json.dumps(cells), step],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert (result["error"] is not None) == fails, result["error"]
    return result["error"] if fails else result["values"]


def test_a_later_step_run_elsewhere_sees_the_settings_of_earlier_steps():
    cells = [
        ["import pandas as pd\nimport matplotlib\nmatplotlib.use('Agg')", ["imports"]],
        ["cols = 33", ["parameters"]],
        ["import warnings\nimport matplotlib.pyplot as plt\npd.set_option('display.max_columns', cols)\n"
         "warnings.filterwarnings('error', message='nbscale-test')\nplt.rcParams['figure.dpi'] = 42\nx = 1",
         ["step:settings"]],
        ["import warnings\nshown = pd.get_option('display.max_columns')\n"
         "dpi = matplotlib.rcParams['figure.dpi']\n"
         "try:\n    warnings.warn('nbscale-test')\n    raised = False\nexcept UserWarning:\n    raised = True",
         ["step:later"]],
    ]
    seen = run_alone(cells, "later")
    assert seen["shown"] == "33" and seen["dpi"] == "42.0" and seen["raised"] == "True"


def test_a_step_run_elsewhere_does_not_see_settings_of_steps_after_it():
    cells = [
        ["import pandas as pd\nshown = pd.get_option('display.max_rows')", ["step:first"]],
        ["import pandas as pd\npd.set_option('display.max_rows', 3)", ["step:second"]],
    ]
    assert run_alone(cells, "first")["shown"] == "60"


def test_a_prelude_function_that_makes_settings_travels_as_its_call():
    p = compile_source([
        ("def style():\n    import seaborn as sns\n    sns.set_theme(style='white')", ["functions"]),
        ("style()\nx = 1", ["step:a"]),
        ("y = x", ["step:b"]),
    ])
    assert codes(p) == []
    assert p.step("b").settings == [{"cell": 1, "line": 1, "source": "style()", "imports": []}]


def test_a_step_function_that_makes_settings_is_a_warning():
    p = compile_source([
        ("import warnings\ndef quiet():\n    warnings.simplefilter('ignore')\nquiet()\nx = 1", ["step:a"]),
        ("y = x", ["step:b"]),
    ])
    assert [(d.code, d.cell, d.line) for d in p.diagnostics] == [("setting-not-replayed", 0, 4)]
    assert "functions cell" in p.diagnostics[0].hint and p.step("b").settings == []


def test_the_last_step_may_set_and_seed_freely():
    p = compile_source([
        ("x = 1", ["step:a"]),
        ("import numpy as np\nnp.random.seed(0)\nif x:\n    np.set_printoptions(precision=1)", ["step:b"]),
    ])
    assert codes(p) == []


def test_a_setting_that_fails_when_replayed_fails_the_later_step_at_the_setting():
    cells = [
        ["import pandas as pd\nx = 1\npd.set_option('display.no_such_option', 1)", ["step:a"]],
        ["y = 2", ["step:b"]],
    ]
    error = run_alone(cells, "b", fails=True)
    assert (error["cell"], error["line"]) == (0, 3)
    assert "pd.set_option('display.no_such_option', 1)" in error["evalue"]


# Cells that try the text skim of the settings pass (find_settings(skim=True)): names stored to in
# every way, aliases and parts of setting modules, non-ASCII names, `;`, long cells.
SKIM_STEPS = [
    ["import math\nimport numpy as np\nfrom numpy import random as npr\nimport pandas.options.display as pod",
     "x = math.sqrt(2)\nnpr.seed(1)\npod.max_rows = 5"],
    ["math = 3\npd_width = 80", "[math for math in range(2)]\nimport pandas as pd\npd.set_option('w', math)"],
    ["for np in range(2):\n    pass\nnp.random.seed(0)", "np, other = 1, 2\nwith open('f') as math:\n    pass"],
    ["class pd:\n    pass\npd.set_option('x', 1)", "import pandas as pd\n(pd) = 1\npd.set_option('y', 2)"],
    ["import random as ran\nñ = 1\nran.seed(ñ)", "ｒａｎ = 2\nran.seed(3)"],
    ["import random\ny = 1; random.seed(y)", "z = 2\nq = z\n" * 40 + "random.seed(q)\nrandom = None\nrandom.seed(1)"],
    ["def reseed():\n    import random\n    random.seed(0)", "reseed()\nw = 1"],
    ["import warnings\nmsg = 'warnings.simplefilter(\"x\")'", "%config InlineBackend.figure_format = 'svg'\nv = 1"],
    ["import math\nmath += 1\nimport pandas as pd\npd.options.display.max_rows = math",
     "pd.options .display.width = 3"],
    ["w = 1\nif w:\n    np.random.seed(5)\nfor k in range(2):\n    pd.set_option('a',\n                  k)",
     "u = (\n  np.random.seed(2))"],
    # function bodies: seeding and setting through each way a name can resolve, and plain ones
    ["def plain(a):\n    return a + 1\nv = 1\ndef seeds():\n    np.random.seed(v)\n@plain\ndef also():\n    pass",
     "import random as rr\ndef dressed():\n    pass\n@(lambda f: rr.seed(0) or f)\ndef dressed():\n    pass\nt = 1"],
    ["def via():\n    seeds()\nx = 2\ndef opts():\n    pd.set_option('b', 1)", "via()\ndressed()\ny = 3"],
    ["def imports_it():\n    from random import seed\n    seed(4)\nq = 1", "imports_it()\nopts()"],
    ["def magic():\n    get_ipython().run_line_magic('config', 'InlineBackend.figure_format = \"svg\"')\nm = 1",
     "def ｍａｇｉｃ２():\n    ｎｐ.random.seed(7)\nz = 1", "ｍａｇｉｃ２()\nmagic()"],
]


def _cells(steps):
    from nbscale.compiler.parsing import parse_cell

    index, found = 1, []
    for n, cells in enumerate(steps):
        found.append((f"s{n}", [parse_cell(index + k, source) for k, source in enumerate(cells)]))
        index += len(cells)
    return found


@pytest.mark.parametrize("order", [SKIM_STEPS, list(reversed(SKIM_STEPS)), [[c] for s in SKIM_STEPS for c in s]])
def test_skimming_cells_finds_what_walking_every_cell_finds(order):
    from nbscale.compiler.parsing import parse_cell
    from nbscale.compiler.settings import find_settings

    prelude = [parse_cell(0, "import pandas as pd\nimport numpy as np\nimport math")]
    walked = find_settings(prelude, _cells(order), {"rows"}, {"pd", "np", "math"}, skim=False)
    skimmed = find_settings(prelude, _cells(order), {"rows"}, {"pd", "np", "math"}, skim=True)
    assert skimmed == walked
    assert walked.diagnostics and any(walked.replayed.values())  # the cells do hold settings and seeds


@pytest.mark.parametrize("text", [
    "np = 1", "a, np = b", "for np in rows: pass", "np", "np.log(x)", "np (x)", "np\n.x", "y = np .e",
    "xnp = 1", "np_ = 1", "_np = 1", "9np = 1", "énp = 1", "npé = 1", "x = 'np'", "", "np.a; np = 2",
])
def test_the_skim_finds_a_name_not_before_a_dot_or_call_as_the_word_boundary_pattern_does(text):
    assert settings_pass._may_store("np", text) == (re.search(r"\bnp\b(?!\s*[.(])", text) is not None)


def test_logging_set_up_in_a_step_is_a_warning_and_not_replayed():
    # a logger a step set up (level, handler) was gone in later steps run elsewhere, or when that
    # step was found cached, with no word
    p = compile_source([
        ("import logging", ["imports"]),
        ("log = logging.getLogger('nb')\nlog.setLevel(logging.INFO)\n"
         "log.addHandler(logging.FileHandler('nb.log', mode='w'))", ["step:setup"]),
        ("log.info('trained')\nlogging.getLogger('x').info('hi')\nx = 1", ["step:train"]),
        ("logging.basicConfig(level=logging.INFO)\nlog.propagate = False\nlogging.disable(logging.CRITICAL)",
         ["step:more"]),
        ("y = 2", ["step:last"]),
    ])
    assert [(d.code, d.cell, d.line) for d in p.diagnostics] == [
        ("setting-not-replayed", 1, 2), ("setting-not-replayed", 1, 3), ("setting-not-replayed", 3, 1),
        ("setting-not-replayed", 3, 2), ("setting-not-replayed", 3, 3)]
    assert "imports cell" in p.diagnostics[0].hint and all(s.settings == [] for s in p.steps)
    # in the imports cell (it runs before every step), or in the last step: nothing to say
    assert codes(compile_source([("import logging\nlogging.basicConfig(level=logging.INFO)\n"
                                  "logging.getLogger('nb').setLevel(logging.INFO)", ["imports"]),
                                 ("a = 1", ["step:a"]), ("log = logging.getLogger('nb')\nlog.setLevel(10)",
                                                         ["step:b"])])) == []


@pytest.mark.parametrize(("prelude", "said"), [
    ("import logging\nlog = logging.getLogger('exp')\nlog.addHandler(logging.FileHandler('exp.log', mode='w'))",
     ["opens its log file anew", "adds one more handler"]),
    ("import logging\nfrom logging.handlers import RotatingFileHandler as R\nh = R('exp.log', 'w')", ["anew"]),
    ("import logging as lg\nlg.basicConfig(filename='run.log', filemode='w')", ["anew"]),
    ("import logging\nlog = logging.getLogger('exp')\nif not log.handlers:\n"
     "    log.addHandler(logging.FileHandler('exp.log', mode='a'))", []),
    ("import logging\nlogging.basicConfig(filename='run.log', level=logging.INFO)", []),
])
def test_logging_the_imports_cell_sets_up_anew_before_every_step_is_a_warning(prelude, said):
    # the imports cell runs before every step, in processes running step after step: a log opened
    # with mode "w" kept only the last step's lines, and each step added one more handler (lines twice)
    p = compile_source([(prelude, ["imports"]), ("x = 1", ["step:a"]), ("y = x", ["step:b"])])
    found = [d for d in p.diagnostics if d.code == "prelude-logging"]
    assert len(found) == len(said) and all(any(s in d.message for d in found) for s in said)
    assert all(d.cell == 0 and d.line for d in found)
