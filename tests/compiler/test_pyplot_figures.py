"""compiler/pyplot_figures.py: a step that finishes a figure an earlier step drew is warned.

Each step starts with no pyplot figure open, so `plt.savefig(...)` in a step after the one that
plotted saves a new, empty figure, silently; top to bottom with a backend that keeps figures it is
the plotted one. Checked on the diagnostics of compiled notebooks.
"""

from __future__ import annotations

import pytest

from nbscale.compiler import compile_source

PLT = ("import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt", ["imports"])


def figure_warnings(cells):
    return [d for d in compile_source(cells).diagnostics if d.code == "pyplot-current-figure"]


@pytest.mark.parametrize("imports, drawing, finishing", [
    ("import matplotlib.pyplot as plt", "plt.figure(figsize=(2, 2))\nplt.plot([1, 2], [3, 4])",
     "plt.title('late')\nplt.savefig('p.png')"),
    ("from matplotlib import pyplot as plt", "plt.plot([1, 2])", "plt.savefig('p.png')"),
    ("from matplotlib.pyplot import plot, savefig", "plot([1, 2])", "savefig('p.png')"),
    ("import matplotlib as mpl\nimport matplotlib.pyplot", "mpl.pyplot.hist([1, 2, 2])", "mpl.pyplot.xlabel('x')"),
    ("import matplotlib.pyplot as plt", "plt.scatter([1], [2])", "fig = plt.gcf()\nfig.savefig('p.png')"),
    ("import matplotlib.pyplot as plt", "plt.bar(['a'], [1])", "plt.gca().set_title('t')"),
    ("import matplotlib.pyplot as plt", "plt.figure(1)\nplt.plot([1])", "plt.figure(1)\nplt.legend(['a'])"),
    ("import matplotlib.pyplot as plt", "for k in range(3):\n    plt.plot([k, k + 1])",
     "if True:\n    plt.savefig('p.png')"),
], ids=["title_savefig", "from_import_module", "from_import_functions", "module_attribute", "gcf", "gca",
        "figure_by_number", "in_blocks"])
def test_a_step_finishing_a_figure_an_earlier_step_drew_is_warned_at_its_first_such_call(imports, drawing,
                                                                                         finishing):
    warnings = figure_warnings([(imports, ["imports"]), (drawing, ["step:a"]), (finishing, ["step:b"])])
    assert [(d.cell, d.line) for d in warnings] == [(2, 1 if not finishing.startswith("if") else 2)]
    message = warnings[0].message
    assert "step 'b'" in message and "which step 'a' drew" in message and "cell 2, line" in message
    assert "new, empty" in message and "fig.savefig(...)' in step 'b'" in warnings[0].hint


@pytest.mark.parametrize("imports, drawing, finishing", [
    ("import seaborn as sns\nimport matplotlib.pyplot as plt", "sns.histplot([1, 2, 2])", "plt.savefig('p.png')"),
    ("import pandas as pd\nimport matplotlib.pyplot as plt", "df = pd.DataFrame({'a': [1, 2]})\ndf.plot()",
     "plt.title('t')"),
    ("import pandas as pd\nimport matplotlib.pyplot as plt", "s = pd.Series([1, 2])\ns.plot.bar()",
     "plt.savefig('p.png')"),
    ("import pandas as pd\nimport matplotlib.pyplot as plt", "s = pd.Series([1, 2])\ns.hist()",
     "plt.savefig('p.png')"),
    ("import seaborn as sns\nimport matplotlib.pyplot as plt", "plt.plot([1])", "sns.despine()"),
], ids=["seaborn", "pandas_plot", "pandas_plot_accessor", "pandas_hist", "seaborn_despine"])
def test_drawing_through_seaborn_or_pandas_counts_as_drawing_the_figure(imports, drawing, finishing):
    warnings = figure_warnings([(imports, ["imports"]), (drawing, ["step:a"]), (finishing, ["step:b"])])
    assert [(d.cell, d.line) for d in warnings] == [(2, 1)]
    assert "which step 'a' drew" in warnings[0].message
    assert "'fig, ax = plt.subplots()' in step 'a'" in warnings[0].hint


def test_seaborn_settings_and_data_draw_nothing():
    assert figure_warnings([("import seaborn as sns\nimport matplotlib.pyplot as plt", ["imports"]),
                            ("sns.set_theme()\nd = sns.load_dataset\np = sns.color_palette('deep')", ["step:a"]),
                            ("plt.savefig('p.png')", ["step:b"])]) == []


def test_the_warning_names_the_step_that_drew_last_and_uses_the_notebooks_alias():
    warnings = figure_warnings([("import matplotlib.pyplot as pp", ["imports"]),
                                ("pp.plot([1])", ["step:a"]), ("x = 1", ["step:b"]), ("pp.plot([2])", ["step:c"]),
                                ("y = x", ["step:d"]), ("pp.savefig('p.png')", ["step:e"])])
    assert [(d.cell, d.line) for d in warnings] == [(5, 1)]
    assert "which step 'c' drew ('pp.plot([2])', cell 4, line 1)" in warnings[0].message
    assert "'fig, ax = pp.subplots()' in step 'c'" in warnings[0].hint


def test_each_step_finishing_an_earlier_figure_is_warned_once():
    warnings = figure_warnings([PLT, ("plt.plot([1])", ["step:a"]),
                                ("plt.title('t')\nplt.xlabel('x')\nplt.savefig('p.png')", ["step:b"]),
                                ("plt.savefig('q.png')", ["step:c"])])
    assert [(d.cell, d.line) for d in warnings] == [(2, 1), (3, 1)]
    assert "which step 'b' drew" in warnings[1].message  # b's call made the figure it left open


@pytest.mark.parametrize("first, second", [
    ("plt.plot([1])", "plt.plot([2])\nplt.savefig('p.png')"),  # draws anew: with the inline backend, top to bottom too
    ("plt.plot([1])", "fig, ax = plt.subplots()\nax.plot([2])\nplt.title('t')\nplt.savefig('p.png')"),
    ("plt.plot([1])", "plt.figure()\nplt.plot([2])\nplt.savefig('p.png')"),
    ("plt.plot([1])\nplt.savefig('a.png')\nplt.close()", "plt.title('t')\nplt.savefig('p.png')"),
    ("plt.plot([1])\nplt.close('all')", "plt.savefig('p.png')"),
    ("fig, ax = plt.subplots()\nax.plot([1])", "fig.savefig('p.png')"),  # the figure is handed on as a value
    ("plt.rc('font', size=9)\nplt.style.use('ggplot')", "plt.savefig('p.png')"),  # settings draw nothing
    ("n = len(plt.get_fignums())\nimg = plt.imread", "plt.title('t')"),
    ("import matplotlib.pyplot as other\nx = 1", "plt.savefig('p.png')"),  # an import draws nothing
], ids=["draws_anew", "own_subplots", "own_figure", "closed", "closed_all", "figure_as_value", "settings",
        "no_figure_functions", "import_only"])
def test_no_warning_when_the_step_makes_its_own_figure_or_none_is_left_open(first, second):
    assert figure_warnings([PLT, (first, ["step:a"]), (second, ["step:b"])]) == []


def test_figures_drawn_in_the_imports_cell_or_in_one_step_are_no_warning():
    # the imports cell runs before every step: its figure is there in each
    assert figure_warnings([("import matplotlib.pyplot as plt\nplt.figure()\nplt.plot([1])", ["imports"]),
                            ("plt.savefig('a.png')", ["step:a"])]) == []
    # two cells of one step run in one process, one after the other
    assert figure_warnings([PLT, ("plt.plot([1])", ["step:a"]), ("plt.savefig('a.png')", ["step:a"])]) == []
    # a notebook function of the same name as a pyplot one
    assert figure_warnings([("def plot(v):\n    return v", ["functions"]), ("plot([1])", ["step:a"]),
                            ("def savefig(p):\n    return p\nsavefig('x')", ["step:b"])]) == []
