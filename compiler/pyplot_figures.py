"""pyplot's current figure across steps: a step that only finishes a figure an earlier step drew.

Top to bottom with a backend that keeps figures open (`matplotlib.use("Agg")`, a script),
`plt.plot(...)` in one cell and `plt.title(...)`, `plt.savefig(...)` in a later one work on one
figure. A step starts with no figure open (figures are closed after every step, and a step may run
in another process), so there the later cell titles and saves a new, empty figure, and nothing
fails. The figures are not handed on: pyplot's registry is no value of the notebook's. So this
pass warns at the first call of a step that acts on the current figure without drawing one
(`pyplot-current-figure`), when an earlier step left a figure open, drawn with pyplot, seaborn
or pandas (`df.plot()`). A step that draws (`plt.plot`) without making a figure first is not
warned: with Jupyter's inline backend, which closes the figures after every cell, it draws a new
figure top to bottom too.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from .diagnostics import Diagnostic

PYPLOT = "matplotlib.pyplot."
# pyplot functions that make a new current figure.
NEW_FIGURE = frozenset({"figure", "subplots", "subplot_mosaic"})
# pyplot functions that act on the current figure or axes without drawing data: alone in a step
# they finish a figure drawn before.
FINISHING = frozenset({
    "savefig", "gcf", "gca", "gci", "sca", "sci", "title", "suptitle", "xlabel", "ylabel", "legend", "figlegend",
    "xlim", "ylim", "xticks", "yticks", "xscale", "yscale", "grid", "colorbar", "tight_layout", "subplots_adjust",
    "margins", "autoscale", "tick_params", "ticklabel_format", "locator_params", "minorticks_on", "minorticks_off",
    "clim", "twinx", "twiny", "axis", "box", "bar_label", "clabel", "annotate", "text", "figtext", "draw",
    "findobj", "get_current_fig_manager", "clf", "cla", "delaxes", "despine", "move_legend",
})
# pyplot functions that neither draw nor read a figure (settings, the backend, files, other objects).
NO_FIGURE = frozenset({
    "close", "connect", "disconnect", "fignum_exists", "get_figlabels", "get_fignums", "get_plot_commands",
    "get", "getp", "setp", "imread", "imsave", "ion", "ioff", "isinteractive", "rc", "rc_context", "rcdefaults",
    "set_loglevel", "switch_backend", "xkcd", "get_cmap", "colormaps", "install_repl_displayhook",
    "uninstall_repl_displayhook", "draw_if_interactive", "new_figure_manager", "show", "pause", "style", "cycler",
})


SEABORN = "seaborn."
# seaborn functions that draw on pyplot's current figure (or make one), and those that finish it
SEABORN_DRAWING = frozenset({
    "relplot", "scatterplot", "lineplot", "displot", "histplot", "kdeplot", "ecdfplot", "rugplot", "distplot",
    "catplot", "stripplot", "swarmplot", "boxplot", "violinplot", "boxenplot", "pointplot", "barplot", "countplot",
    "lmplot", "regplot", "residplot", "heatmap", "clustermap", "pairplot", "jointplot",
})
SEABORN_FINISHING = frozenset({"despine", "move_legend"})
# methods that draw with pyplot on any object (pandas' `df.plot(...)`, `df.plot.bar()`, `s.hist()`)
PLOTTING_METHODS = frozenset({"plot", "hist", "boxplot"})


@dataclass(frozen=True)
class PyplotCall:
    """A call of a pyplot function in a step, in the order the step runs them."""

    function: str  # "savefig"
    cell: int
    line: int
    source: str  # the call's text
    module: str  # the name the call reaches pyplot by: "plt"
    selects: bool = False  # `plt.figure(1)`: a figure by its number, made before if it exists


class FigureWalk:
    """One step at a time, in notebook order: `step` gives the warning for a step, if any."""

    def __init__(self):
        self._open: tuple[str, PyplotCall] | None = None  # the last step that left a figure open, its drawing call

    def step(self, name: str, calls: list[PyplotCall]) -> Diagnostic | None:
        drawn = False  # a figure of the step's own is open
        made = finished = None
        closed = False
        for call in calls:
            if call.function == "close":
                drawn, closed = False, True
            elif call.function in NO_FIGURE or not call.function.islower():
                continue  # (classes: `plt.Figure()` is no figure of pyplot's)
            elif call.function in FINISHING or call.function == "figure" and call.selects:
                finished = finished or (None if drawn else call)
                drawn, made = True, made or call
            elif not drawn:
                drawn, made = True, call
        warning = _warning(name, finished, *self._open) if finished is not None and self._open else None
        if drawn:
            self._open = (name, made)
        elif closed:
            self._open = None
        return warning


def figure_function(qualified: str | None, func) -> str | None:
    """What a call does to pyplot's figures, as the pyplot function doing the same is named:
    "savefig" of "matplotlib.pyplot.savefig", "histplot" of seaborn's, "plot" of `df.plot(...)` or
    `df.plot.bar(...)`; None for a call that does nothing to them. `qualified`: the callee through
    the notebook's imports (None if not an import's); `func`: the call's `func` node."""
    if qualified is not None and qualified.startswith(PYPLOT):
        function = qualified[len(PYPLOT):]
        return function if function.isidentifier() else None  # (`plt.style.use` is a setting, not this pass's)
    if qualified is not None and qualified.startswith(SEABORN):
        function = qualified[len(SEABORN):]
        return function if function in SEABORN_DRAWING or function in SEABORN_FINISHING else None
    if qualified is None and type(func) is ast.Attribute:
        method, value = func.attr, func.value
        if method in PLOTTING_METHODS or type(value) is ast.Attribute and value.attr == "plot":
            return "plot"  # (`df.plot.bar`: the accessor's method)
    return None


def _warning(step: str, call: PyplotCall, drawer: str, drawn: PyplotCall) -> Diagnostic:
    return Diagnostic(
        "pyplot-current-figure",
        f"'{call.source}' in step '{step}' acts on pyplot's current figure, which step '{drawer}' drew "
        f"('{drawn.source}', cell {drawn.cell + 1}, line {drawn.line}); a step starts with no figure open, so here it "
        "is a new, empty one",
        cell=call.cell, line=call.line,
        hint=f"draw and finish the figure in one step, or hand the figure on as a value: 'fig, ax = "
             f"{call.module}.subplots()' in step '{drawer}', then 'fig.savefig(...)' in step '{step}'")
