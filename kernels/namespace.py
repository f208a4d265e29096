"""The step's namespace: functions from earlier steps rebound to it, metrics read from it.

`rebind_functions` gives notebook functions that arrive as inputs the step's namespace as their
globals, so they read the current values as they would in the notebook; `remember_origins` marks
a step's output functions with the cell they were defined in, which pickling by value would lose.
`evaluate_metrics` evaluates the `metrics` cell's expressions in a finished step's namespace.
The executor and the papermill engine's kernel-side cells both use them.
"""

from __future__ import annotations

import functools
import numbers
import operator
import types
from collections.abc import Mapping
from itertools import islice

from ..compiler.ir import Metrics
from ..compiler.notebook import cell_label
from .array_views import WALK_LIMIT, walked
from .capture import short_repr
from .contract import error_dict
from .tracebacks import is_cell_code

__all__ = ["evaluate_metrics", "rebind_functions", "remember_origins", "replay_settings"]

# ---------------------------------------------------------------------------------------------
# Functions from earlier steps read this step's globals

_MAIN_NAMES = ("__main__", "__mp_main__", None)

# cloudpickle (3.1+) renames the code it pickles by value "<dynamic-code>", which would lose the
# cell a function was defined in; output functions carry their code name in this attribute.
_ORIGIN = "__nbscale_code_name__"
_DYNAMIC_CODE = "<dynamic-code>"


def rebind_functions(inputs: dict, ns: dict) -> dict:
    """Give notebook functions among `inputs`, and in the dicts and lists they hold, this namespace
    as their globals.

    A function defined in an earlier step arrives (cloudpickled by value) with a private globals
    dict holding the values it read back then, or (copied in memory) with the globals of the step
    that made it; in the notebook it reads, and changes, the current ones (`ops["f"](5)` too: the
    step's dicts and lists are its own copies, changed in place; a tuple's function keeps its
    globals). Functions whose globals are a real module's (library code) are left alone.
    """
    rebound: dict[int, types.FunctionType] = {}

    def rebind(value):
        if not _is_notebook_function(value) or value.__globals__ is ns:
            return value
        if id(value) not in rebound:
            rebound[id(value)] = value  # (a closure holding itself: as it is, while it is rebound)
            rebound[id(value)] = _rebind(value, ns, rebind)
        return rebound[id(value)]

    out = {name: rebind(value) for name, value in inputs.items()}
    if any(type(value) in (dict, list) for value in out.values()):
        left = WALK_LIMIT  # items looked at in all: a list of a million numbers is not walked to its end
        for held in walked(out):
            if left <= 0:
                break
            if type(held) in (dict, list):
                for key, value in _items(held, left):
                    left -= 1
                    if _is_notebook_function(value):
                        held[key] = rebind(value)
    holders = _Holders(rebind)
    return {name: holders.rebound(value, HELD_DEPTH) for name, value in out.items()}


# how deep in objects' attributes, partials and containers a notebook function is looked for: a
# scikit-learn Pipeline holds it 5 deep (pipeline → steps list → (name, step) → FunctionTransformer → func)
HELD_DEPTH = 6
HELD_LOOKS = 10_000  # at most this many objects and items looked into per step
HELD_ATTRIBUTES = 64  # an object with more attributes is no holder of functions looked into


class _Holders:
    """Notebook functions held by objects a step is given: `partial(f)`, `FunctionTransformer(f)`
    (`.func`), `np.vectorize(f)` (`.pyfunc`), a pipeline's steps (a list of tuples): rebound too,
    since a call of the object calls the function, which reads the step's globals in the notebook.
    A partial or a tuple is made anew (they cannot be changed); an object's attribute is set, on the
    step's own copy. Bounded: a step given big objects pays for a few looks, not a walk of them."""

    def __init__(self, rebind):
        self.rebind, self.left, self.seen, self.classes = rebind, HELD_LOOKS, {}, set()

    def _rebind_class(self, cls: type) -> None:
        """The methods of a notebook class (and of its notebook bases) read the step's globals: the
        class arrived with the globals of the step that defined it, where a parameter a method reads
        may not have been given (`self.w * WINDOW`: NameError in the step that calls it). On the
        step's own copy of the class."""
        for klass in getattr(cls, "__mro__", ()):
            if id(klass) in self.classes or klass.__module__ not in _MAIN_NAMES:
                continue
            self.classes.add(id(klass))
            for name, attribute in list(vars(klass).items()):
                wrapped = isinstance(attribute, (staticmethod, classmethod))
                function = attribute.__func__ if wrapped else attribute
                if _is_notebook_function(function):
                    new = self.rebind(function)
                    if new is not function:
                        try:
                            setattr(klass, name, type(attribute)(new) if wrapped else new)
                        except (AttributeError, TypeError):  # a class that refuses it: as it is
                            pass

    def rebound(self, value, depth: int):
        if _is_notebook_function(value):
            return self.rebind(value)
        self._rebind_class(value if isinstance(value, type) else type(value))
        if depth == 0 or self.left <= 0 or isinstance(value, _NOT_HOLDERS):
            return value
        if id(value) in self.seen:
            return self.seen[id(value)]
        self.left -= 1
        self.seen[id(value)] = value  # (a cycle back to it: as it is)
        new = self._rebound_parts(value, depth - 1)
        self.seen[id(value)] = new
        return new

    def _rebound_parts(self, value, depth: int):
        if type(value) is _LRU_CACHED:  # (`@lru_cache`: the C wrapper calls the function it was given)
            func = self.rebound(getattr(value, "__wrapped__", None), depth)
            if func is getattr(value, "__wrapped__", None) or not callable(func):
                return value
            return functools.lru_cache(**value.cache_parameters())(func)
        if isinstance(value, functools.partial):
            func, args = self.rebound(value.func, depth), [self.rebound(a, depth) for a in value.args]
            keywords = {k: self.rebound(v, depth) for k, v in value.keywords.items()}
            if func is value.func and all(map(operator.is_, args, value.args)) and \
                    all(keywords[k] is v for k, v in value.keywords.items()):
                return value
            return functools.partial(func, *args, **keywords)
        if type(value) is tuple:
            head = []
            for item in islice(value, max(self.left, 0)):
                self.left -= 1
                head.append(self.rebound(item, depth))
            return value if all(map(operator.is_, head, value)) else (*head, *value[len(head):])
        if type(value) in (list, dict):
            for key, item in _items(value, self.left):
                self.left -= 1  # (each item is a look, a number's too)
                new = self.rebound(item, depth)
                if new is not item:
                    value[key] = new
            return value
        attributes = getattr(value, "__dict__", None)
        if type(attributes) is dict and len(attributes) <= HELD_ATTRIBUTES:
            for key, item in list(attributes.items()):
                new = self.rebound(item, depth)
                if new is not item:
                    attributes[key] = new
        return value


def _items(container, most: int) -> list[tuple]:
    """(key, item) of a dict's or list's first `most` items."""
    pairs = container.items() if type(container) is dict else enumerate(container)
    return list(islice(pairs, max(most, 0)))


_LRU_CACHED = type(functools.lru_cache(len))
# what holds no function of the notebook worth a look: values, and what a function's own rebind covers
_NOT_HOLDERS = (str, bytes, int, float, complex, bool, type(None), type, types.ModuleType, types.FunctionType,
                types.BuiltinFunctionType, types.MethodType)


def remember_origins(values) -> None:
    """Mark notebook functions among `values` with the cell their code came from."""
    for value in values:
        if _is_notebook_function(value) and is_cell_code(value.__code__.co_filename):
            try:
                value.__dict__[_ORIGIN] = value.__code__.co_filename
            except (AttributeError, TypeError):
                pass


def _is_notebook_function(value) -> bool:
    # Judged by the globals, not __module__: functools.wraps copies __module__ onto library
    # wrappers, whose globals must stay the library's.
    return isinstance(value, types.FunctionType) and value.__globals__.get("__name__") in _MAIN_NAMES


def _rebind(fn: types.FunctionType, ns: dict, rebind) -> types.FunctionType:
    """`fn` with `ns` as its globals; a notebook function in one of its closure's cells is rebound too
    (`rebind`), in a cell of its own: the function a decorator's wrapper calls (`@timed`, whose `w`
    calls `fn`) reads the step's globals as the wrapper does."""
    code = fn.__code__
    origin = fn.__dict__.get(_ORIGIN)
    if isinstance(origin, str) and code.co_filename == _DYNAMIC_CODE:
        code = _with_filename(code, origin)
    closure = fn.__closure__
    if closure and any(_is_notebook_function(_contents(cell)) for cell in closure):
        closure = tuple(types.CellType(rebind(_contents(cell))) if _is_notebook_function(_contents(cell)) else cell
                        for cell in closure)
    new = types.FunctionType(code, ns, fn.__name__, fn.__defaults__, closure)
    new.__kwdefaults__ = fn.__kwdefaults__
    new.__qualname__ = fn.__qualname__
    new.__doc__ = fn.__doc__
    new.__module__ = fn.__module__
    new.__annotations__ = fn.__annotations__
    new.__dict__.update(fn.__dict__)
    if hasattr(fn, "__type_params__"):  # Python 3.12+
        new.__type_params__ = fn.__type_params__
    return new


def _contents(cell):
    try:
        return cell.cell_contents
    except ValueError:  # empty: a name of the enclosing function not bound yet
        return None


def _with_filename(code: types.CodeType, filename: str) -> types.CodeType:
    consts = tuple(
        _with_filename(c, filename)
        if isinstance(c, types.CodeType) and c.co_filename == _DYNAMIC_CODE else c
        for c in code.co_consts
    )
    return code.replace(co_filename=filename, co_consts=consts)


# ---------------------------------------------------------------------------------------------
# Metrics


def evaluate_metrics(metrics: Metrics, ns: dict) -> tuple[dict[str, float], list[str]]:
    """The metrics' values in `ns` as floats (a dict flattened to "name.key"), and warnings for
    those that could not be computed or are not numbers: a metric never fails its step."""
    exprs = dict(metrics.exprs)
    for name in metrics.names:
        exprs.setdefault(name, name)
    values: dict[str, float] = {}
    warnings: list[str] = []
    for name, expr in exprs.items():
        try:
            value = eval(compile(expr, f"<metric {name}>", "eval"), ns)
        except KeyboardInterrupt:
            raise
        except BaseException as e:
            warnings.append(f"metric {name!r} ({expr}) could not be evaluated: {type(e).__name__}: {e}")
            continue
        _add_metric(name, value, values, warnings)
    for expr in getattr(metrics, "spread", ()):  # a dict whose keys are the metric names
        try:
            value = eval(compile(expr, "<metrics>", "eval"), ns)
        except KeyboardInterrupt:
            raise
        except BaseException as e:
            warnings.append(f"metrics {expr} could not be evaluated: {type(e).__name__}: {e}")
            continue
        if not isinstance(value, Mapping):
            warnings.append(f"metrics {expr} is not a dict (a {type(value).__name__}); skipped")
            continue
        for key, item in value.items():
            _add_metric(str(key), item, values, warnings)
    return values, warnings


def replay_settings(settings, ns: dict):
    """Run the process-wide settings earlier steps made (`Step.settings`), in notebook order, in a
    copy of the step's namespace: they change the process, not the step's names. A failure is the
    step's error, placed at the setting's cell and line (a contract.error_dict)."""
    from ..compiler.settings import replay_source

    for setting in settings or ():
        where = cell_label(setting["cell"], setting["line"])
        try:
            exec(compile(replay_source(setting), f"<setting of {where}>", "exec"), dict(ns))
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # noqa: BLE001 - reported as the step's failure
            return error_dict(type(exc).__name__, f"replaying the setting of {where} ({setting['source']}) "
                              f"failed: {type(exc).__name__}: {exc}", cell=setting["cell"], line=setting["line"])
    return None


def _add_metric(name: str, value, values: dict[str, float], warnings: list[str]) -> None:
    if isinstance(value, Mapping):
        for key, item in value.items():
            _add_metric(f"{name}.{key}", item, values, warnings)
        return
    number = _as_number(value)
    if number is None:
        warnings.append(
            f"metric {name!r} is not a number (a {type(value).__name__}: {short_repr(value)}); skipped"
        )
    else:
        values[name] = number


def _as_number(value) -> float | int | None:
    """An integer stays an integer (bool and numpy integers too); any other real is a float."""
    if getattr(value, "shape", None) == () and hasattr(value, "item"):  # numpy scalars, 0-d arrays
        value = value.item()
    if isinstance(value, numbers.Integral):  # numpy integer types are registered
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    return None
