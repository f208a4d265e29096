"""Process-wide settings and seeds: which statements travel to later steps, which are diagnosed.

Run top to bottom, `pd.set_option(...)` in one cell changes what every later cell sees. A step
of a pipeline runs elsewhere, so **configuration calls travel**: each step gets the settings the
steps before it (in notebook order) made, replayed in that order before its own cells
(`Step.settings`), and they are part of its hash. A **seeding call** (`np.random.seed(0)`)
cannot travel faithfully, because the generator's state advances between cells: it is a
`global-seed` warning. Calls are recognised by what they resolve to through the notebook's
imports (`import pandas as pd` → `pandas.set_option`), never by the alias alone.

Assignments travel too when they store into process state a later cell would see: an attribute
of what an import binds (`helpers.LEVEL = 5`: a module or class is not handed on as a value), and
an item or attribute of what the prelude made (`config["lr"] = 0.5`: the prelude runs afresh
before every step), until a step binds that name again.

The `imports`/`functions` cells (the prelude) run before every step already: a setting there
needs no replay, and a seed there seeds every step alike (reproducible; see docs/tags.md).
"""

from __future__ import annotations

import ast
import builtins
import functools
import re
from dataclasses import dataclass, field

from .analysis import KERNEL_NAMES
from .callables import SPECIAL_METHODS, Callable, callee_of, changed_arguments
from .diagnostics import Diagnostic
from .effects import CONTAINER_METHODS, VALUE_METHODS, dotted_name, root_name
from .parsing import LINE_END, ParsedCell, Piece, child_nodes
from .pyplot_figures import PLOTTING_METHODS, PYPLOT, FigureWalk, PyplotCall, figure_function
from .scopes import scope_facts

# Calls that change a process-wide setting every later cell sees (qualified through the imports).
SETTING_CALLS = frozenset({
    "sklearn.set_config",
    "pandas.set_option", "pandas.reset_option",
    "numpy.set_printoptions", "numpy.seterr",
    "warnings.filterwarnings", "warnings.simplefilter", "warnings.resetwarnings",
    "matplotlib.rc", "matplotlib.pyplot.rc", "matplotlib.style.use", "matplotlib.pyplot.style.use",
    "matplotlib.rcParams.update", "matplotlib.pyplot.rcParams.update",
    "seaborn.set", "seaborn.set_theme", "seaborn.set_style", "seaborn.set_context", "seaborn.set_palette",
    "os.environ.update", "os.environ.setdefault",
    "os.chdir",  # a relative path: replayed from the notebook folder, where every step starts
    "decimal.setcontext",
})
# Objects whose items or attributes are settings: `plt.rcParams["figure.dpi"] = 120`,
# `pd.options.display.max_rows = 50`, `os.environ["MODE"] = "fast"` (put back after the step that
# set it, as every process-wide change is: later steps get it by replay).
SETTING_OBJECTS = ("matplotlib.rcParams", "matplotlib.pyplot.rcParams", "pandas.options", "os.environ")
# Calls giving an object whose attributes are settings: `decimal.getcontext().prec = 4` (the
# thread's context, which a step's process puts back).
SETTING_CONTEXTS = frozenset({"decimal.getcontext"})
# `%config InlineBackend.figure_formats = ["svg"]`: settings of a configurable the kernel keeps.
SETTING_CONFIGURABLES = ("InlineBackend",)
# Line magics that change the process's folder or environment (`%cd data`, `%set_env MODE fast`;
# `%env` when it sets): later cells see it, as after `os.chdir`.
FOLDER_AND_ENVIRONMENT_MAGICS = frozenset({"cd", "pushd", "popd", "set_env"})
# Logging set up in a step: the step's process's, and a file handler's `mode="w"` replayed before
# every later step would empty its file each time; so not replayed, but said (`logging-not-replayed`)
LOGGING_CALLS = frozenset({"logging.basicConfig", "logging.disable", "logging.captureWarnings",
                           "logging.config.dictConfig", "logging.config.fileConfig"})
LOGGER_METHODS = frozenset({"setLevel", "addHandler", "removeHandler", "addFilter", "removeFilter"})
LOGGER_ATTRIBUTES = frozenset({"propagate", "disabled", "level", "handlers"})
# Calls that seed a global random generator.
SEED_CALLS = frozenset({
    "random.seed", "numpy.random.seed", "random.setstate", "numpy.random.set_state",
    "torch.manual_seed", "torch.cuda.manual_seed", "torch.cuda.manual_seed_all", "torch.random.manual_seed",
    "tensorflow.random.set_seed", "tensorflow.set_random_seed", "tensorflow.keras.utils.set_random_seed",
    "keras.utils.set_random_seed",
})
# The global generators a seed call in the imports or functions cells restarts before every step
# (seed call → generator), and what of theirs draws no number (any other function does: `rand`).
PRELUDE_SEEDED = {"random.seed": "random", "random.setstate": "random",
                  "numpy.random.seed": "numpy.random", "numpy.random.set_state": "numpy.random"}
NOT_DRAWING = {
    "random": frozenset({"seed", "getstate", "setstate", "Random", "SystemRandom"}),
    "numpy.random": frozenset({"seed", "get_state", "set_state", "default_rng", "Generator", "RandomState",
                               "SeedSequence", "BitGenerator", "MT19937", "PCG64", "PCG64DXSM", "Philox", "SFC64",
                               "bit_generator"}),
}
# Calls that change a container in place (`results.append(score)`, `next(ids)`): one the imports
# or functions cells made is made again before every step, so later steps do not see the change.
# (`add` only changes a set when its value is unused: pandas' `df.add(1)` makes a new frame.)
CONTAINER_CHANGES = CONTAINER_METHODS - VALUE_METHODS
ADVANCING_CALLS = frozenset({"next"})
# Decorators that keep a function's results: one of the prelude is made again, empty, before every
# step, so a later step computes again what top to bottom it would take from the cache.
CACHING_DECORATORS = frozenset({"functools.lru_cache", "functools.cache"})
# Everything the settings pass resolves names against; a module that is none of these, nor a
# part of or a container of one (`numpy` of `numpy.random.seed`), makes no setting or seed.
_KNOWN_NAMES = (SETTING_CALLS | SEED_CALLS | frozenset(SETTING_OBJECTS) | SETTING_CONTEXTS | LOGGING_CALLS
                | {"logging.getLogger", "matplotlib.pyplot", "seaborn"})
# Words in a cell that make the pass walk it (imports, definitions, magics).
_ALWAYS_WALK = frozenset({"import", "def", "class", "get_ipython", *PLOTTING_METHODS})
# Words in a function's text that make the pass walk its body (an import in it, `%config`).
_BODY_WALK = frozenset({"import", "get_ipython"})
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Code that runs later, when called (a class body is taken as its methods).
_LATER = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)
# A setting inside a `with` block is scoped to it (`with warnings.catch_warnings(): ...`).
_WITH = (ast.With, ast.AsyncWith)
# what may change an object of the prelude: a call, a decorator's name, `with obj:`, `for x in obj:`
_CHANGING_NODES = (ast.Call, ast.Name, *_WITH, ast.For, ast.AsyncFor)
_BUILTIN_NAMES = frozenset(dir(builtins)) | KERNEL_NAMES
_MORE_STEPS_SHOWN = 5
_CHANGING_WORDS = CONTAINER_CHANGES | ADVANCING_CALLS


@dataclass
class _Imported:
    module: str  # what the name is: "pandas", "matplotlib.pyplot", "sklearn.set_config"
    statement: str  # the import that binds it, alone: "import pandas as pd"


@dataclass
class Settings:
    """The settings each step replays (step name → entries) and the diagnostics found."""

    replayed: dict[str, list[dict]] = field(default_factory=dict)
    parameters: dict[str, set[str]] = field(default_factory=dict)  # step → parameters its settings read
    diagnostics: list[Diagnostic] = field(default_factory=list)


def replay_source(setting: dict) -> str:
    """The code that replays one `Step.settings` entry: its imports, then the statement."""
    return "\n".join([*setting.get("imports", []), setting["source"]])


def find_settings(prelude: list[ParsedCell], steps: list[tuple[str, list[ParsedCell]]],
                  parameters: set[str], prelude_names: set[str], skim: bool = True) -> Settings:
    """Settings and seeds of `steps` ((name, [parsed cell]) in notebook order); the prelude
    only lends its imports. A step replays the settings of every step before it.

    `skim`: pass over the cells whose text shows that they hold nothing this pass looks for
    (the result is the same; False walks every cell, for tests that say so)."""
    walk = SettingsWalk(parameters, [name for name, _ in steps], skim)
    walk.prelude(prelude, prelude_names)
    for name, cells in steps:
        walk.step(name, cells)
    return walk.settings


class SettingsWalk:
    """`find_settings` given the prelude, then one step at a time (`settings` holds the result):
    the compile hands each step's cells to this pass right after the dataflow analysis walked
    them, while their trees are at hand (`dataflow.build_flow`'s `also`)."""

    def __init__(self, parameters: set[str], step_names: list[str], skim: bool = True):
        self.settings = Settings()
        self._step_names = step_names
        self._finder = _Finder(parameters, set())
        self._finder.skim = skim
        # the settings of the steps walked so far, in order, with the prelude's name each stores into
        self._made: list[tuple[dict, str | None]] = []
        self._made_reads: set[str] = set()
        self._position = 0  # of the next step
        self._drew: dict[str, list[str]] = {}  # a global generator the prelude seeds → the steps drawing from it
        self._figures = FigureWalk()

    def prelude(self, cells: list[ParsedCell], names: set[str], callables: dict[str, Callable] | None = None,
                calling: set[str] = frozenset(), instances: set[str] = frozenset()) -> None:
        """The prelude's cells, and the names it binds (a setting may read them); `callables`: the
        functions and classes it defines, as the dataflow analysis sees them; `calling`: those of its
        names whose call changes an object (a bound method, a partial, a closure); `instances`: those
        that may be instances of its classes."""
        self._finder.prelude_names = set(names)  # (a step that binds one of them again takes it off)
        self._finder.calling, self._finder.instances = set(calling), set(instances)
        self._finder.functions(callables or {})
        for cell in cells:
            self._finder.cell(cell, step=None)
        self.settings.diagnostics += self._finder.problems  # (`_prelude_logging`)
        self._finder.problems = []

    def step(self, name: str, cells: list[ParsedCell], callables: dict[str, Callable] | None = None) -> None:
        """The next step's cells, in notebook order; `callables`: the functions and classes they
        define, as the dataflow analysis sees them."""
        finder, result, position, steps = self._finder, self.settings, self._position, self._step_names
        finder.functions(callables or {})
        self._position += 1
        result.replayed[name] = [entry for entry, _ in self._made]
        result.parameters[name] = set(self._made_reads)
        finder.found, finder.problems, finder.draws, finder.pyplot_calls = [], [], {}, []
        prelude_names = set(finder.prelude_names)
        for cell in cells:
            finder.cell(cell, step=name)
        self._repeated_draws(name, finder)
        figure_warning = self._figures.step(name, finder.pyplot_calls)
        if figure_warning is not None:
            result.diagnostics.append(figure_warning)
        for kind, entry, reads, into in finder.found:
            if kind == "setting":
                self._made.append((entry, into))
                self._made_reads |= reads
        rebound = prelude_names - finder.prelude_names  # later steps get the step's own value: no replay into it
        if rebound:
            self._made = [(entry, into) for entry, into in self._made if into not in rebound]
        if position + 1 < len(steps):  # what the last step sets or seeds affects no other step
            later = steps[position + 1:position + 2 + _MORE_STEPS_SHOWN]
            result.diagnostics += finder.problems
            seeds = [entry for kind, entry, _, _ in finder.found if kind == "seed"]
            result.diagnostics += [_seed_warning(entry, name, later, len(steps) - position - 1) for entry in seeds]


    def _repeated_draws(self, name: str, finder: _Finder) -> None:
        """A step drawing from a global generator the prelude seeds, after another step did: the
        prelude seeds it again before every step, so both draw the same numbers (a step that seeds
        it itself is `global-seed`'s)."""
        seeded_here = {PRELUDE_SEEDED.get(entry["seeds"]) for kind, entry, _, _ in finder.found if kind == "seed"}
        for generator, where in finder.draws.items():
            earlier = self._drew.setdefault(generator, [])
            if generator not in seeded_here:
                if earlier:
                    self.settings.diagnostics.append(
                        _repeated_draws_warning(where, name, earlier[0], finder.prelude_seeds[generator]))
                earlier.append(name)


class _Finder:
    """Walks cells in notebook order, resolving names through the imports seen so far."""

    def __init__(self, parameters: set[str], prelude_names: set[str]):
        self.parameters = parameters
        self.prelude_names = prelude_names
        self.imported: dict[str, _Imported] = {}
        self.seeding_functions: dict[str, str] = {}  # function name → the seed call in its body
        # functions of the prelude that change a mutable default of theirs → that parameter
        self.keeping_functions: dict[str, str] = {}
        # functions whose body makes a setting → whether the prelude defines it (every step has it)
        self.setting_functions: dict[str, bool] = {}
        # the notebook's functions (and methods, as `.NAME`) as the dataflow analysis sees them
        self.known: dict[str, Callable] = {}
        self.changing_functions: set[str] = set()  # those of them that change a name of the prelude
        # functions of the notebook's own modules (`cfg.configure`, by the name a call uses) that change
        # their module's globals: a call changes what later cells see, as a module attribute set does
        self.module_changers: set[str] = set()
        self.changing_methods: set[str] = set()  # methods of the prelude's classes that change their object
        self.calling: set[str] = set()  # names of the prelude whose call changes an object (`prelude`)
        self.instances: set[str] = set()  # names of the prelude that may be instances of its classes
        # what Python calls a special method for that a notebook class has changing its instance
        # (`SPECIAL_METHODS`: "call", "with", "iterate")
        self.special_uses: set[str] = set()
        # functions of the prelude that keep their results (`@lru_cache`) → step names they read
        self.caching_functions: dict[str, list[str]] = {}
        # ("setting" | "seed", entry, parameters read, the prelude's name a setting stores into or None)
        self.found: list[tuple[str, dict, set[str], str | None]] = []
        self.problems: list[Diagnostic] = []
        self.loggers: set[str] = set()  # names bound to `logging.getLogger(...)` in the steps
        # the global generators the prelude seeds → its seed call; the current step's first draw from each
        self.prelude_seeds: dict[str, dict] = {}
        self.draws: dict[str, dict] = {}
        self.pyplot_calls: list[PyplotCall] = []  # the current step's, in order (`pyplot_figures`)
        self.skim = True

    def functions(self, callables: dict[str, Callable]) -> None:
        """Functions defined next (a step's, the prelude's): those changing the prelude's names."""
        self.known.update(callables)
        for name, callee in callables.items():
            self._note_changing(name, callee)
            if callee.changes_module:
                self.module_changers.add(name)
        self.special_uses |= {use for use, methods in SPECIAL_METHODS.items()
                              if any(callables.get("." + m) and callables["." + m].changes_self for m in methods)}

    def _note_changing(self, name: str, callee: Callable | None) -> None:
        if callee is not None and (callee.mutated_params or not callee.mutates.isdisjoint(self.prelude_names)):
            self.changing_functions.add(name)

    def cell(self, cell: ParsedCell, step: str | None) -> None:
        if cell.error is not None:
            return  # a syntax error is reported once, by the dataflow analysis
        for piece in cell.parts():  # (a big cell's pieces are parsed only when their text may matter)
            if self.skim and not self._may_matter(piece.text):
                continue
            statements = piece.statements()
            # in a piece of many statements, skim each one too (a long cell with one `def` in it)
            lines = _line_starts(piece.text) if self.skim and len(statements) > 1 else None
            for stmt in statements:
                if lines is not None and not self._may_matter(_statement_text(piece, lines, stmt)):
                    continue
                nodes = _run_now_marked(stmt)  # one walk, shared by both passes over the statement
                if step is not None:
                    self._statement(stmt, nodes, cell.index, piece)
                else:
                    self._prelude_seeds(nodes, cell.index, piece)
                    self._prelude_logging(stmt, nodes, cell.index, piece)
                text = None  # the text of a definition (decorators too), for `_body_of` to skim
                if self.skim and isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    text = _definition_text(piece, lines, stmt) if lines else piece.text
                self._remember(stmt, nodes, in_prelude=step is None, text=text)

    def _statement(self, stmt, nodes, index, piece: Piece):
        if self._is_setting(stmt):
            self._setting(stmt, {"cell": index, "line": stmt.lineno}, piece)
        elif type(stmt) is ast.Assign and type(stmt.value) is ast.Call and \
                self._qualified(stmt.value.func) in SETTING_CALLS:
            # `old = np.seterr(divide="raise")`: the call travels (its value, the settings before, is the step's)
            self._setting(stmt.value, {"cell": index, "line": stmt.lineno}, piece)
        elif not isinstance(stmt, _WITH):
            for node, in_with in nodes:
                if in_with:
                    continue
                if node is not stmt and isinstance(node, ast.stmt) and self._is_setting(node):
                    self.problems.append(_nested_warning(node, index, piece))
                elif isinstance(node, ast.Call) and self.setting_functions.get(getattr(node.func, "id", None)) is False:
                    self.problems.append(_step_function_warning(node, index, piece))
        for node, _ in [*nodes, *_decorators(stmt)]:
            # (a name is a decorator's: `_decorators`; those `nodes` holds are names stored to)
            changed = self._prelude_object_changed(node) if isinstance(node, _CHANGING_NODES) and (
                not isinstance(node, ast.Name) or isinstance(node.ctx, ast.Load)) else None
            if changed is not None:
                what, hint = changed
                self.problems.append(_prelude_change_warning(node, what, index, piece, hint))
            kept = self.keeping_functions.get(node.func.id) if isinstance(node, ast.Call) and isinstance(
                node.func, ast.Name) else None
            if kept is not None:
                self.problems.append(_prelude_change_warning(
                    node, f"the default value of {node.func.id}'s parameter '{kept}'", index, piece,
                    f"give '{kept}' a value made in a step as an argument"))
            seed = self._seed_of(node) if isinstance(node, ast.Call) else None
            if seed is not None:
                self.found.append(("seed", {**_call_entry(node, index, piece), **seed}, set(), None))
            if self._sets_up_logging(node):
                self.problems.append(_logging_warning(node, index, piece))
            if type(node) is ast.Call:
                self._note_pyplot_call(node, index, piece)
            drawn = self._drawn_from(node) if self.prelude_seeds and isinstance(node, ast.Call) else None
            if drawn in self.prelude_seeds and drawn not in self.draws:
                self.draws[drawn] = _call_entry(node, index, piece)

    def _note_pyplot_call(self, call: ast.Call, index: int, piece: Piece) -> None:
        func = call.func
        qualified = self._qualified(func)
        function = figure_function(qualified, func)
        if function is not None:
            pyplot = qualified is not None and qualified.startswith(PYPLOT)
            module = (ast.unparse(func.value) if type(func) is ast.Attribute else "matplotlib.pyplot") if pyplot \
                else "plt"
            numbered = bool(call.args or any(k.arg == "num" for k in call.keywords))
            self.pyplot_calls.append(PyplotCall(
                function, index, call.lineno, (piece.segment(call) or ast.unparse(call)).splitlines()[0], module,
                selects=pyplot and function == "figure" and numbered))

    def _sets_up_logging(self, node) -> bool:
        """`logging.basicConfig(...)`, `log.setLevel(...)` or `log.propagate = False` of a logger
        (`logging.getLogger(...)`, or a name bound to one in a step)."""
        if type(node) is ast.Call:
            func = node.func
            return self._qualified(func) in LOGGING_CALLS or type(func) is ast.Attribute \
                and func.attr in LOGGER_METHODS and self._is_logger(func.value)
        if type(node) in (ast.Assign, ast.AugAssign):
            targets = node.targets if type(node) is ast.Assign else [node.target]
            return any(type(t) is ast.Attribute and t.attr in LOGGER_ATTRIBUTES and self._is_logger(t.value)
                       for t in targets)
        return False

    def _is_logger(self, expr) -> bool:
        if type(expr) is ast.Name:
            return expr.id in self.loggers
        return type(expr) is ast.Call and self._qualified(expr.func) == "logging.getLogger"

    def _prelude_logging(self, stmt, nodes, index, piece: Piece) -> None:
        """The imports and functions cells run before every step, in processes that run step after
        step: a log file they open anew (`FileHandler(P, mode="w")`, `basicConfig(filemode="w")`) is
        emptied before each one, and a handler they add each time (`log.addHandler(h)`, not under
        `if not log.handlers:`) is one more on the same logger: each line is written once per step run."""
        for node, _ in nodes:
            if type(node) is ast.Call and _opens_log_anew(self._qualified(node.func) or "", node):
                self.problems.append(_prelude_logging_warning(
                    node, index, piece, "opens its log file anew (mode 'w') before every step, so each step "
                    "empties what the steps before it logged", "open it with mode='a'"))
        call = stmt.value if type(stmt) is ast.Expr else None
        if type(call) is ast.Call and type(call.func) is ast.Attribute and call.func.attr == "addHandler":
            self.problems.append(_prelude_logging_warning(
                call, index, piece, "adds one more handler before every step, and steps share worker "
                "processes: each line is then written once per handler", "add it once: 'if not "
                f"{ast.unparse(call.func.value)}.handlers:' above it"))

    def _prelude_seeds(self, nodes, index, piece: Piece) -> None:
        for node, _ in nodes:
            generator = PRELUDE_SEEDED.get(self._qualified(node.func)) if isinstance(node, ast.Call) else None
            if generator is not None and generator not in self.prelude_seeds:
                self.prelude_seeds[generator] = {**_call_entry(node, index, piece), "generator": generator}

    def _drawn_from(self, call: ast.Call) -> str | None:
        """The global generator a call draws from (`np.random.rand()`: numpy.random), if one."""
        module, _, function = (self._qualified(call.func) or "").rpartition(".")
        return module if function not in NOT_DRAWING.get(module, (function,)) else None

    def _prelude_object_changed(self, call: ast.AST) -> tuple[str, str] | None:
        """(The object of the prelude that `call` changes in place, as a message names it, a hint),
        if it changes one: a name's object (a module's is no object of the prelude's:
        `np.random.shuffle(x)`), also through a function or method of the notebook that changes it
        (`log_result(v)` appending to a list of the prelude), or the cache of a function of the
        prelude. A name alone is a decorator (`@track`), a call of it."""
        if isinstance(call, (ast.With, ast.AsyncWith, ast.For, ast.AsyncFor)):
            return self._special_use_of_prelude(call)
        func = call.func if type(call) is ast.Call else call
        root = None
        if type(call) is ast.Call and isinstance(func, ast.Name) and func.id in self.prelude_names and (
                func.id in self.calling or func.id in self.instances and "call" in self.special_uses):
            root = func.id  # a bound method, partial or closure (or an instance of a class with `__call__`) changes
        elif isinstance(func, ast.Name) and func.id in ("iter", "next", "list", "tuple", "sorted") \
                and "iterate" in self.special_uses and type(call) is ast.Call and call.args \
                and root_name(call.args[0]) in self.instances:
            root = root_name(call.args[0])
        elif isinstance(func, ast.Attribute) and (func.attr in CONTAINER_CHANGES or func.attr in self.changing_methods):
            root = root_name(func.value)
        elif isinstance(func, ast.Name) and func.id in ADVANCING_CALLS and type(call) is ast.Call and call.args:
            root = root_name(call.args[0])
        elif isinstance(func, ast.Name) and func.id in self.changing_functions and func.id not in self.imported:
            root = self._changed_by_function(call, self.known[func.id])
        elif isinstance(func, ast.Name) and func.id in self.caching_functions:
            reads = ", ".join(repr(n) for n in self.caching_functions[func.id])
            return (f"the cache of {func.id} (its results depend on {reads}, which steps make)",
                    f"drop the cache of {func.id}, or make the function in a step")
        if root in self.prelude_names and root not in self.imported:
            return f"'{root}'", f"make '{root}' in a step (then the change is handed on), or return what you collect"
        return None

    def _special_use_of_prelude(self, stmt) -> tuple[str, str] | None:
        """`with timer:`, `for batch in loader:` over an object of the prelude, when a class of the
        notebook has a `__enter__`/`__exit__` or `__iter__`/`__next__` changing its instance."""
        use, exprs = (("with", [item.context_expr for item in stmt.items]) if isinstance(stmt, _WITH)
                      else ("iterate", [stmt.iter]))
        for expr in exprs if use in self.special_uses else ():
            if type(expr) is ast.Name and expr.id in self.prelude_names and expr.id in self.instances:
                return f"'{expr.id}'", f"make '{expr.id}' in a step (then the change is handed on)"
        return None

    def _changed_by_function(self, call, callee: Callable) -> str | None:
        """The name of the prelude a call of a function of the notebook changes, if one: a global
        it changes, or an argument."""
        changed = sorted(callee.mutates & self.prelude_names)
        if not changed and type(call) is ast.Call:
            _, args, keywords = callee_of(call, self.known)
            changed = [root_name(expr) for expr, _ in changed_arguments(callee, args, keywords)]
            changed = [name for name in changed if name in self.prelude_names]
        return changed[0] if changed else None

    def _may_matter(self, python: str) -> bool:
        """Whether a cell's text may hold anything this pass acts on: an import, a definition, a
        name that may resolve to a setting or seed call or object, a call of a notebook function
        that seeds or sets, or a store to a name the pass knows (it forgets what the name was) or to its attributes.
        False only when none of these can be there; most cells of a long notebook."""
        if not python.isascii():
            return True  # the parser normalises non-ASCII names (NFKC): the text may not show them
        words = set(_WORD.findall(python))
        if not words.isdisjoint(_ALWAYS_WALK) or not words.isdisjoint(self.seeding_functions) \
                or not words.isdisjoint(self.setting_functions) or not words.isdisjoint(self.loggers):
            return True
        if any(_may_set(self.imported[name].module) for name in words.intersection(self.imported)):
            return True
        if self.module_changers and any(name.partition(".")[0] in words for name in self.module_changers):
            return True
        if not words.isdisjoint(self.prelude_names) and (self.special_uses or
                not words.isdisjoint(_CHANGING_WORDS) or not words.isdisjoint(self.changing_methods)) \
                or not words.isdisjoint(self.keeping_functions) or not words.isdisjoint(self.changing_functions) \
                or not words.isdisjoint(self.caching_functions) or not words.isdisjoint(self.calling):
            return True
        stored = words.intersection(self.imported) | words.intersection(self.prelude_names)
        return any(_may_store(name, python) or _may_store_into(name, python) for name in stored)

    def _setting(self, stmt, where, piece: Piece):
        source = piece.segment(stmt) or ast.unparse(stmt)
        reads = {n.id for n in _run_now(stmt) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
        imports = [self.imported[n].statement for n in sorted(reads) if n in self.imported]
        unknown = sorted(reads - set(self.imported) - self.parameters - self.prelude_names - _BUILTIN_NAMES)
        expanded = _expanded_magic(stmt)
        why, hint = None, None
        if expanded is not None:
            why = f"'{expanded}' is expanded from the notebook's names as it runs"
            hint = "give the magic literal text, or use os.chdir / os.environ with parameters"
        elif unknown:
            why = (f"'{source.splitlines()[0]}' reads {', '.join(repr(n) for n in unknown)}, which the pipeline "
                   "computes")
            hint = "give the setting literal values or pipeline parameters, or move it to the imports cell"
        if why is not None:
            self.problems.append(Diagnostic("setting-not-replayed", f"{why}, so later steps run without this setting",
                                            cell=where["cell"], line=where["line"], hint=hint))
            return
        entry = {**where, "source": source, "imports": _unique(imports)}
        self.found.append(("setting", entry, reads & self.parameters, self._prelude_root(stmt)))

    def _is_setting(self, stmt) -> bool:
        if _is_setting_magic(stmt):
            return True
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
            func = stmt.value.func
            # `set_style()`, a function of the prelude (every step has it) that makes settings
            return self._qualified(func) in SETTING_CALLS or (
                isinstance(func, ast.Name) and self.setting_functions.get(func.id, False)) or \
                self._changes_its_module(func)
        targets = stmt.targets if isinstance(stmt, ast.Assign) else \
            [stmt.target] if isinstance(stmt, (ast.AugAssign, ast.AnnAssign)) and stmt.value is not None else []
        return bool(targets) and all(self._is_setting_target(t) for t in targets)

    def _changes_its_module(self, func) -> bool:
        """`cfg.configure(k=5)`: a function of the notebook's own module, called by a name an import
        binds, that changes the module's globals (`SETTINGS.update(kw)`): a step on another worker
        imports the module afresh."""
        name = dotted_name(func)
        return name in self.module_changers and name.partition(".")[0] in self.imported

    def _is_setting_target(self, target) -> bool:
        if isinstance(target, ast.Subscript):  # rcParams["figure.dpi"] = 120
            return self._qualified(target.value) in SETTING_OBJECTS or self._into_prelude(target)
        if isinstance(target, ast.Attribute):
            # pd.options.display.max_rows = 50, and any attribute of what an import binds: a module's
            # (helpers.LEVEL = 5, torch.backends.cudnn.benchmark = True) or a class's, which every
            # later cell sees top to bottom, while a step's process puts back all of a local module
            return self._qualified(target.value) is not None or self._into_prelude(target) or (
                isinstance(target.value, ast.Call) and self._qualified(target.value.func) in SETTING_CONTEXTS)
        return False

    def _into_prelude(self, target) -> bool:
        """Whether `target` stores into what the imports or functions cells made (`config["lr"] =
        0.1`, `config.lr = 0.1`): they run again before every step, so a later step sees the
        change only when it is replayed there."""
        while isinstance(target, (ast.Attribute, ast.Subscript)):
            target = target.value
        return isinstance(target, ast.Name) and target.id in self.prelude_names and target.id not in self.imported

    def _prelude_root(self, stmt) -> str | None:
        """The prelude's name a setting statement stores into, if it does."""
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [getattr(stmt, "target", None)]
        for target in targets:
            if isinstance(target, (ast.Attribute, ast.Subscript)) and self._into_prelude(target):
                while isinstance(target, (ast.Attribute, ast.Subscript)):
                    target = target.value
                return target.id
        return None

    def _seed_of(self, call: ast.Call) -> dict | None:
        """{"seeds": the seed call, "via": the notebook's function that makes it, or None}."""
        name = self._qualified(call.func)
        if name in SEED_CALLS:
            return {"seeds": name, "via": None}
        function = call.func.id if isinstance(call.func, ast.Name) else None
        if function in self.seeding_functions and function not in self.imported:
            return {"seeds": self.seeding_functions[function], "via": function}
        return None

    def _qualified(self, node) -> str | None:
        """`pd.set_option` → "pandas.set_option", when `pd` is an import; else None."""
        parts = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if isinstance(node, ast.Name) and node.id in self.imported:
            return ".".join([self.imported[node.id].module, *reversed(parts)])
        return None

    def _remember(self, stmt, nodes, in_prelude: bool, text: str | None = None):
        """What `stmt` leaves bound: imports (also inside `try:`), functions that seed, and
        functions of the prelude that make settings. `text`: code holding all of `stmt`, when
        its words may rule out that a function seeds or sets (`_body_may_matter`)."""
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            self._rebound(stmt.name, in_prelude)
            kept = _changed_mutable_default(stmt) if in_prelude else None
            if kept:
                self.keeping_functions[stmt.name] = kept
            self._note_changing(stmt.name, self.known.get(stmt.name))
            reads = self._cached_reads(stmt) if in_prelude and stmt.decorator_list else None
            if reads:
                self.caching_functions[stmt.name] = reads
            seed, sets = self._body_of(stmt) if text is None or self._body_may_matter(text) else (None, False)
            if seed:
                self.seeding_functions[stmt.name] = seed
            if sets:
                self.setting_functions[stmt.name] = in_prelude
            return
        for node, _ in nodes:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for name, imported in _imports_of(node).items():
                    self._rebound(name, in_prelude)
                    self.imported[name] = imported
            elif isinstance(node, ast.Name):  # (only stores are marked)
                self._rebound(node.id, in_prelude)  # `pd = ...` is no module any more
                if not in_prelude and type(stmt) is ast.Assign and self._is_logger(stmt.value):
                    self.loggers.add(node.id)
            elif isinstance(node, ast.ClassDef):
                self._rebound(node.name, in_prelude)
                if in_prelude:
                    self.changing_methods |= _changing_methods(node)

    def _rebound(self, name, in_prelude: bool):
        """`name` is bound again: forget what it was; in a step, it is no longer what the prelude made."""
        self._forget(name)
        if not in_prelude:
            self.prelude_names.discard(name)

    def _cached_reads(self, function) -> list[str]:
        """The names a function of the prelude kept by a cache (`@lru_cache`) reads that steps make
        (none of the prelude's, no builtin): its results may then differ from a fresh call's."""
        if not any(self._qualified(d.func if isinstance(d, ast.Call) else d) in CACHING_DECORATORS
                   for d in function.decorator_list):
            return []
        free = scope_facts(function, set(self.imported)).free
        return sorted(free - self.prelude_names - set(self.imported) - _BUILTIN_NAMES - {function.name})

    def _forget(self, name):
        self.changing_functions.discard(name)
        self.caching_functions.pop(name, None)
        self.keeping_functions.pop(name, None)
        self.imported.pop(name, None)
        self.seeding_functions.pop(name, None)
        self.setting_functions.pop(name, None)
        self.loggers.discard(name)

    def _body_may_matter(self, text: str) -> bool:
        """Whether a definition's text may hold what `_body_of` looks for: a name resolving through
        an import (the notebook's, or one in the body), a seeding or setting function of the
        notebook, or a `%config` magic. False for most functions of a long notebook, whose walk
        would cost more than the rest of this pass."""
        if not text.isascii():
            return True  # the parser normalises non-ASCII names (NFKC): the text may not show them
        words = set(_WORD.findall(text))
        return not words.isdisjoint(_BODY_WALK) or not words.isdisjoint(self.imported) \
            or not words.isdisjoint(self.seeding_functions) or not words.isdisjoint(self.setting_functions)

    def _body_of(self, function) -> tuple[str | None, bool]:
        """The seed call a function's body makes, if any, and whether it makes a setting."""
        outer = dict(self.imported)
        for node in ast.walk(function):  # a body may import what it uses: `import random`
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                self.imported.update(_imports_of(node))
        try:
            calls = (n for n in ast.walk(function) if isinstance(n, ast.Call))
            seed = next((s["seeds"] for s in map(self._seed_of, calls) if s), None)
            sets = any(isinstance(n, ast.stmt) and self._is_setting(n) for n in _run_now_in_body(function))
            return seed, sets
        finally:
            self.imported = outer


def _line_starts(python: str) -> list[int]:
    """Where each line of `python` starts; one more entry past the end."""
    return [0, *(m.end() for m in LINE_END.finditer(python)), len(python) + 1]


def _definition_text(piece: Piece, line_starts: list[int], stmt: ast.stmt) -> str:
    """The whole lines of `stmt` and of its decorators (a `def`'s line number is not theirs)."""
    first = min([stmt.lineno, *(d.lineno for d in getattr(stmt, "decorator_list", ()))])
    return _lines_of(piece, line_starts, first, stmt.end_lineno)


def _statement_text(piece: Piece, line_starts: list[int], stmt: ast.stmt) -> str:
    """The whole lines `stmt` is written on (more than the statement when `;` joins some)."""
    return _lines_of(piece, line_starts, stmt.lineno, stmt.end_lineno)


def _lines_of(piece: Piece, line_starts: list[int], first: int, last: int) -> str:
    """Lines `first` to `last` of the cell (counted from 1), out of `piece` (`line_starts`: its own)."""
    first, last = first - piece.line, last - piece.line
    return piece.text[line_starts[first - 1]:line_starts[min(last, len(line_starts) - 1)]]


@functools.lru_cache(maxsize=1024)
def _may_set(module: str) -> bool:
    """Whether a name bound to `module` may make a setting or a seed call (see _KNOWN_NAMES)."""
    return any(known == module or known.startswith(module + ".") or module.startswith(known + ".")
               for known in _KNOWN_NAMES) or module.rpartition(".")[0] in NOT_DRAWING  # (`from random import choice`)


@functools.lru_cache(maxsize=1024)
def _name_not_followed_by_dot_or_call(name: str):
    # `\bNAME\b(?!\s*[.(])`, written to start with the name: a pattern that starts with text is
    # searched for that text first, 15 times faster than one starting with `\b` (a check per cell)
    name = re.escape(name)
    return re.compile(rf"{name}(?<!\w{name})\b(?!\s*[.(])")


def _may_store(name: str, python: str) -> bool:
    """Whether `python` may bind `name`: it shows the name somewhere other than before `.` or `(`
    (`math.sqrt(x)` reads math; `math = 1`, `for math in`, `math, b = ` may bind it)."""
    return _name_not_followed_by_dot_or_call(name).search(python) is not None


@functools.lru_cache(maxsize=1024)
def _store_into(name: str):
    name = re.escape(name)  # (starts with the name, as _name_not_followed_by_dot_or_call says why)
    return re.compile(rf"{name}(?<!\w{name})(?:\s*(?:\.\s*\w+|\[[^\n]*?\]))+\s*(?:[-+*/%&|^@]|//|\*\*|<<|>>)?=(?!=)")


def _may_store_into(name: str, python: str) -> bool:
    """Whether `python` may store into an attribute or item of `name`: `name.a = …`, `name["a"].b += …`."""
    return _store_into(name).search(python) is not None


def _imports_of(node) -> dict[str, _Imported]:
    found = {}
    for alias in node.names:
        if alias.name == "*" or (isinstance(node, ast.ImportFrom) and (node.level or not node.module)):
            continue
        if isinstance(node, ast.ImportFrom):
            name, module = alias.asname or alias.name, f"{node.module}.{alias.name}"
            statement = ast.unparse(ast.ImportFrom(node.module, [alias], 0))
        else:
            name = alias.asname or alias.name.split(".")[0]
            module = alias.name if alias.asname else name
            statement = ast.unparse(ast.Import([alias]))
        found[name] = _Imported(module, statement)
    return found


def _run_now(stmt, *, into_with=True):
    """`stmt` and the nodes in it that run when it runs, in source order: not the bodies of
    functions, lambdas and classes (they run later), nor of `with` blocks unless `into_with`."""
    if isinstance(stmt, _LATER):
        yield stmt
        return
    stack = [stmt]
    while stack:
        node = stack.pop()
        yield node
        children = []
        for child in child_nodes(node):
            if isinstance(child, _LATER):
                continue
            if isinstance(child, _WITH) and not into_with:
                children += [item.context_expr for item in child.items]
                continue
            children.append(child)
        stack += reversed(children)


def _run_now_marked(stmt) -> list[tuple[ast.AST, bool]]:
    """The nodes of `_run_now(stmt)` the passes over a statement look at (statements, calls, and
    names stored to), in the same order, each with whether `_run_now(stmt, into_with=False)`
    leaves it out: it is in a `with` block inside `stmt` (but not in the block's context
    expressions). One walk answers both instead of one walk per question."""
    if isinstance(stmt, _LATER):
        return [(stmt, False)]
    found = []
    stack = [(stmt, _SHOWN)]
    while stack:
        node, state = stack.pop()
        if isinstance(node, (ast.stmt, ast.Call)) or (isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store)):
            found.append((node, state != _SHOWN))
        children = []
        for child in child_nodes(node):
            if isinstance(child, _LATER):
                continue
            if state == _SHOWN:
                children.append((child, _BLOCK if isinstance(child, _WITH) else _SHOWN))
            elif state == _BLOCK:  # a `with` inside stmt: only its context expressions are shown
                children.append((child, _ITEM if isinstance(child, ast.withitem) else _HIDDEN))
            elif state == _ITEM:
                children.append((child, _SHOWN if child is node.context_expr else _HIDDEN))
            else:
                children.append((child, _HIDDEN))
        stack += reversed(children)
    return found


# The states of `_run_now_marked`'s walk: shown without `with` blocks; a `with` block; one of its
# items; inside a block.
_SHOWN, _BLOCK, _ITEM, _HIDDEN = range(4)


def _line_magic(stmt) -> tuple[str, str] | None:
    """(name, argument) of a line magic statement, as to_python writes it:
    `get_ipython().run_line_magic('cd', 'data')`."""
    call = stmt.value if isinstance(stmt, ast.Expr) else None
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr == "run_line_magic"
            and isinstance(call.func.value, ast.Call) and getattr(call.func.value.func, "id", None) == "get_ipython"):
        return None
    args = [a.value if isinstance(a, ast.Constant) else None for a in call.args]
    if len(args) != 2 or not isinstance(args[0], str) or not isinstance(args[1], str):
        return None
    return args[0], args[1]


def _is_setting_magic(stmt) -> bool:
    """`%config InlineBackend.x = v`, `%cd data`, `%env MODE=fast`: a magic that changes what every
    later cell sees, as `os.chdir` and `os.environ[...] =` do (`%env MODE` only reads)."""
    magic = _line_magic(stmt)
    if magic is None:
        return False
    name, argument = magic
    if name == "config":
        return "=" in argument and argument.split(".", 1)[0].strip() in SETTING_CONFIGURABLES
    if name == "env":
        return "=" in argument or len(argument.split()) > 1
    return name in FOLDER_AND_ENVIRONMENT_MAGICS


def _expanded_magic(stmt) -> str | None:
    """The argument of a setting magic that IPython expands from the cell's names when it runs
    (`%cd $DATA`, `%env N={n}`): replayed in another step, it would read names that step lacks."""
    magic = _line_magic(stmt)
    return magic[1] if magic is not None and ("$" in magic[1] or "{" in magic[1]) else None


def _run_now_in_body(function):
    """The statements a call of `function` runs, outside `with` blocks and nested definitions."""
    for stmt in function.body:
        if not isinstance(stmt, _WITH):
            yield from _run_now(stmt, into_with=False)


def _decorators(stmt) -> list[tuple[ast.AST, bool]]:
    """The decorators of a definition, which run when it does: each call in them, and a decorator
    that is a name (`@track`, a call of it)."""
    found = []
    for decorator in getattr(stmt, "decorator_list", ()):
        if isinstance(decorator, ast.Name):
            found.append((decorator, False))
        else:
            found += [(node, False) for node in ast.walk(decorator) if isinstance(node, ast.Call)]
    return found


def _changing_methods(node: ast.ClassDef) -> set[str]:
    """The methods of a class that change their object (`self.items.append(x)`, `cls.n += 1`)."""
    found = set()
    for stmt in node.body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)) and stmt.args.args \
                and not any(getattr(d, "id", None) == "staticmethod" for d in stmt.decorator_list):
            facts = scope_facts(stmt)
            if facts.params and facts.params[0] in facts.mutated_params | facts.deep_mutated:
                found.add(stmt.name)
    return found


def _step_function_warning(call, index, piece: Piece) -> Diagnostic:
    code = (piece.segment(call) or ast.unparse(call)).splitlines()[0]
    return Diagnostic(
        "setting-not-replayed",
        f"'{code}' makes process-wide settings in a function of a step, so later steps run without them",
        cell=index, line=call.lineno, col=call.col_offset + 1,
        hint="define the function in the functions cell, and call it as a statement of its own")


def _opens_log_anew(name: str, call: ast.Call) -> bool:
    """`logging.FileHandler(P, "w")`, `RotatingFileHandler(P, mode="w")`, `basicConfig(filemode="w")`."""
    if name.startswith("logging.") and name.endswith("FileHandler"):
        mode = next((k.value for k in call.keywords if k.arg == "mode"), call.args[1] if len(call.args) > 1 else None)
    elif name == "logging.basicConfig":
        mode = next((k.value for k in call.keywords if k.arg == "filemode"), None)
    else:
        return False
    return type(mode) is ast.Constant and isinstance(mode.value, str) and "w" in mode.value


def _prelude_logging_warning(node, index, piece: Piece, what: str, hint: str) -> Diagnostic:
    code = (piece.segment(node) or ast.unparse(node)).splitlines()[0]
    return Diagnostic("prelude-logging", f"'{code}' in the imports or functions cells {what}",
                      cell=index, line=node.lineno, col=node.col_offset + 1, hint=hint)


def _logging_warning(node, index, piece: Piece) -> Diagnostic:
    code = (piece.segment(node) or ast.unparse(node)).splitlines()[0]
    return Diagnostic(
        "setting-not-replayed",
        f"'{code}' sets up logging for the step's process, so later steps run without it (a step found "
        "cached leaves it out of the run altogether)",
        cell=index, line=node.lineno, col=node.col_offset + 1,
        hint="set up logging in the imports cell, which runs before every step (a log file with mode='a', "
             "a handler added under 'if not log.handlers:')")


def _nested_warning(node, index, piece: Piece) -> Diagnostic:
    code = (piece.segment(node) or ast.unparse(node)).splitlines()[0]
    return Diagnostic(
        "setting-not-replayed",
        f"'{code}' is inside a block, so later steps run without this setting",
        cell=index, line=node.lineno, col=node.col_offset + 1,
        hint="make it a statement of its own at the top level of the cell, or move it to the imports cell")


def _changed_mutable_default(function) -> str | None:
    """The parameter with a mutable default (`seen=[]`) that the function's body changes in place,
    if one: top to bottom the default keeps what every call added."""
    args = function.args
    positional = [*args.posonlyargs, *args.args]
    defaults = [*zip(positional[len(positional) - len(args.defaults):], args.defaults),
                *((a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is not None)]
    mutable = {a.arg for a, d in defaults if isinstance(d, (ast.List, ast.Dict, ast.Set)) or (
        isinstance(d, ast.Call) and isinstance(d.func, ast.Name) and d.func.id in {"list", "dict", "set"})}
    for node in ast.walk(function):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr in CONTAINER_CHANGES and root_name(node.func.value) in mutable:
            return root_name(node.func.value)
        if isinstance(node, (ast.Assign, ast.AugAssign)):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                if isinstance(target, (ast.Subscript, ast.Attribute)) and root_name(target) in mutable:
                    return root_name(target)
    return None


def _prelude_change_warning(call, what: str, index, piece: Piece, hint: str) -> Diagnostic:
    """`what`: the object the call changes, as the message names it."""
    code = (piece.segment(call) or ast.unparse(call)).splitlines()[0]
    return Diagnostic(
        "prelude-object-changed",
        f"'{code}' changes {what}, which the imports or functions cells make again before every "
        "step, so later steps do not see the change as they do top to bottom", cell=index, line=call.lineno,
        col=call.col_offset + 1, hint=hint)


def _seed_warning(entry: dict, step: str, later: list[str], count: int) -> Diagnostic:
    """`later`: the first of the `count` steps after `step`."""
    shown = ", ".join(repr(s) for s in later[:_MORE_STEPS_SHOWN])
    if count > _MORE_STEPS_SHOWN:
        shown += f" and {count - _MORE_STEPS_SHOWN} more"
    how = entry["seeds"] + (f" in {entry['via']}" if entry["via"] else "")
    return Diagnostic(
        "global-seed",
        f"'{entry['source']}' in step '{step}' seeds a global random generator ({how}); later steps "
        f"({shown}) run elsewhere and do not continue from its state as they do top to bottom",
        cell=entry["cell"], line=entry["line"],
        hint="pass a generator as a value: rng = np.random.default_rng(0) (or random.Random(0), "
             "torch.Generator().manual_seed(0)) and draw from rng; seeding in the imports cell instead "
             "restarts the stream in every step (two steps draw the same numbers)")


def _call_entry(call: ast.Call, index: int, piece: Piece) -> dict:
    return {"cell": index, "line": call.lineno, "source": piece.segment(call) or ast.unparse(call)}


def _repeated_draws_warning(where: dict, step: str, first: str, seed: dict) -> Diagnostic:
    return Diagnostic(
        "prelude-seed-repeats",
        f"'{where['source']}' in step '{step}' draws the same numbers as step '{first}' did: '{seed['source']}' "
        f"(cell {seed['cell'] + 1}, line {seed['line']}) seeds the generator again before every step, where top to "
        f"bottom '{step}' would continue after the draws of '{first}'",
        cell=where["cell"], line=where["line"],
        hint=f"make a generator in step '{first}' ({_GENERATOR_MADE[seed['generator']]}) and draw from rng in both: "
             "it is handed on, and continues as top to bottom")


_GENERATOR_MADE = {"random": "rng = random.Random(0)", "numpy.random": "rng = np.random.default_rng(0)"}


def _unique(items):
    return list(dict.fromkeys(items))
