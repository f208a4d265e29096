"""Functions and classes of the notebook as the analysis sees them: what calling one reads and
changes, which call expression calls one (`f(x)`, and `x.pipe(f)` which is `f(x)`), and which
argument expressions a call changes in place.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

from .effects import dotted_name
from .scopes import scope_facts


@dataclass
class Callable:
    """A function or class defined at notebook level: what calling it reads and changes."""

    name: str
    reads: set[str]
    binds: set[str]  # through `global`
    mutates: set[str]  # enclosing (global) names modified in place
    mutated_params: list[int]  # positions of parameters it modifies in place
    param_names: list[str]
    deep: set[str] = field(default_factory=set)  # of those, names it changes *through* (`p[0]["x"] = 1`)
    makes_functions: bool = False  # its body defines a function or lambda, which it may return (a closure)
    returns_params: list[int] = field(default_factory=list)  # positions of parameters it may return as they are
    # (position, depth) of parameters a part of which it may return (`return p.steps[-1][1]`: depth 3)
    returns_parts: list[tuple[int, int]] = field(default_factory=list)
    # positions of parameters a container it returns may hold (`return {"w": w}`)
    returns_holding: list[int] = field(default_factory=list)
    # a method that changes what its instance holds (`self.df["z"] = 1`): `obj.m()` changes what
    # `obj` was made from (`Acc(df)` owns `df`)
    deep_receiver: bool = False
    # free names it draws from (`list(it)`, a loop) and reads items of (`counts[k]`): a change when
    # they are iterators and defaultdicts (`heap.kinds`)
    draws: set[str] = field(default_factory=set)
    indexes: set[str] = field(default_factory=set)
    generator: bool = False  # it yields: a call makes an iterator drawing on its arguments
    # the functions it makes change state of their own, which they close over (`nonlocal n; n += 1`,
    # a list made in its body that they append to): a call of one changes it
    keeps_state: bool = False
    # positions of parameters it may yield, a part of or a container of (`@contextmanager def
    # using(x): yield x`: `with using(log) as y` binds y to log)
    yields_params: list[int] = field(default_factory=list)
    # a method that may return a part of its instance, this many levels down (`return self._h`: 1), or
    # the instance itself (0): `obj.m()` is a part of `obj`
    returns_receiver: int | None = None
    # a special method (`__call__`, `__enter__`, `__iter__`…) that changes its instance: Python calls
    # it for `obj(…)`, `with obj:`, `for x in obj` (`SPECIAL_METHODS`)
    changes_self: bool = False
    # a `@property` getter: reading the attribute calls it (`t = r.touch`)
    getter: bool = False
    # a function of the notebook's own module that changes the module's globals (`SETTINGS.update(kw)`,
    # `global N`): a call changes what later cells see of the module
    changes_module: bool = False
    # its `*args` and `**kwargs` parameters: every extra positional (keyword) argument is given to it
    vararg: str | None = None
    kwarg: str | None = None
    # parameter → what its default value may be, for the parameters it changes: a call that gives
    # none changes the default (`def add(x, into=log)`, then `add(1)` changes log)
    defaults: dict[str, frozenset] = field(default_factory=dict)
    # objects any call changes: the defaults of the functions it calls (`def wrap(x): add(x)`)
    always_changes: frozenset = frozenset()

    @property
    def changed_param_names(self) -> list[str]:
        return [self.param_names[i] for i in self.mutated_params if i < len(self.param_names)]


# what Python calls a special method for: `obj(…)`; `with obj:`; `for x in obj`, `list(obj)`, `[*obj]`;
# `obj[k]`; `x in obj`
SPECIAL_METHODS = {
    "call": ("__call__",),
    "with": ("__enter__", "__exit__", "__aenter__", "__aexit__"),
    "iterate": ("__iter__", "__next__", "__aiter__", "__anext__"),
    "index": ("__getitem__", "__missing__"),
    "contains": ("__contains__",),
}


def callee_of(call: ast.Call, known: dict[str, Callable], modules=frozenset()):
    """(Callable, positional and keyword argument expressions) for `f(…)`, `(lambda …: …)(…)`, `x.pipe(f, …)` and
    `x.m(…)` where a class of the notebook has a method `m` that changes an argument (known as
    `.m`); (None, [], []) when the callee is no function of the notebook."""
    func = call.func
    if isinstance(func, ast.Name) and func.id in known:
        return known[func.id], list(call.args), call.keywords
    if type(func) is ast.Lambda:  # `(lambda q: q.append(1))(lst)`
        return lambda_callable(func, modules), list(call.args), call.keywords
    if type(func) is ast.Call and func.args and type(func.args[0]) is ast.Name and func.args[0].id in known \
            and getattr(func.func, "id", getattr(func.func, "attr", None)) == "delayed":
        return known[func.args[0].id], list(call.args), call.keywords  # `delayed(f)(x)` calls f(x)
    if isinstance(func, ast.Attribute) and isinstance(func.value, (ast.Name, ast.Attribute)):
        dotted = dotted_name(func)  # `helpers.f(…)`, `utils.features.f(…)`: local_modules
        if dotted in known:
            return known[dotted], list(call.args), call.keywords
    method = "." + func.attr if isinstance(func, ast.Attribute) else None
    if method in known and not (isinstance(func.value, ast.Name) and func.value.id in modules):
        return known[method], list(call.args), call.keywords  # a method of a notebook class (by name)
    if isinstance(func, ast.Attribute) and func.attr == "pipe" and call.args:
        piped = call.args[0]
        if isinstance(piped, ast.Name) and piped.id in known:
            return known[piped.id], [func.value, *call.args[1:]], call.keywords
        if isinstance(piped, ast.Lambda):
            return lambda_callable(piped, modules), [func.value, *call.args[1:]], call.keywords
    return None, [], []


def lambda_callable(node: ast.Lambda, modules=frozenset(), facts=None) -> Callable:
    facts = facts or scope_facts(node, modules)
    params = list(facts.params)
    return Callable("<lambda>", set(facts.free), set(), set(facts.mutated_free),
                    [i for i, p in enumerate(params) if p in facts.mutated_params], params, set(facts.deep_mutated),
                    draws=set(facts.drawn_free), indexes=set(facts.indexed_free), **star_parameters(node))


def star_parameters(node) -> dict[str, str | None]:
    """The names of a function's (or lambda's) `*args` and `**kwargs` parameters, as `Callable` fields."""
    args = getattr(node, "args", None)
    if not isinstance(args, ast.arguments):
        return {}
    return {"vararg": args.vararg.arg if args.vararg else None, "kwarg": args.kwarg.arg if args.kwarg else None}


def changed_arguments(callee: Callable, args, keywords) -> list[tuple[ast.AST, str | None]]:
    """(argument expression, parameter name) for each parameter `callee` changes in place."""
    found = []
    for pos in callee.mutated_params:
        param = callee.param_names[pos] if pos < len(callee.param_names) else None
        if param is not None and param == callee.vararg:  # `def add(*frames)`: each extra argument
            found += [(arg.value if type(arg) is ast.Starred else arg, param) for arg in args[pos:]]
        elif param is not None and param == callee.kwarg:  # `def add(**frames)`: each extra keyword argument
            found += [(k.value, param) for k in keywords if k.arg is None or k.arg not in callee.param_names]
        else:
            expr, param = argument_for(callee, pos, args, keywords)
            if expr is not None:
                found.append((expr, param))
    return found


def defaults_used(callee: Callable, args, keywords) -> list[tuple[str, frozenset]]:
    """(parameter, its default's objects) for each parameter `callee` changes that the call may
    leave to its default (always, when it unpacks `*args` or `**kwargs`: what they give is unknown)."""
    if not callee.defaults:
        return []
    unpacked = any(type(a) is ast.Starred for a in args) or any(k.arg is None for k in keywords)
    used = []
    for pos in callee.mutated_params:
        param = callee.param_names[pos] if pos < len(callee.param_names) else None
        if param in callee.defaults and (unpacked or argument_for(callee, pos, args, keywords)[0] is None):
            used.append((param, callee.defaults[param]))
    return used


def default_values(node) -> list[tuple[str, ast.AST]]:
    """(parameter, default expression) of a function or lambda."""
    args = node.args
    positional = [*args.posonlyargs, *args.args]
    return [*((a.arg, d) for a, d in zip(positional[len(positional) - len(args.defaults):], args.defaults)),
            *((a.arg, d) for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is not None)]


def argument_for(callee: Callable, pos: int, args, keywords) -> tuple[ast.AST | None, str | None]:
    """The argument expression a call gives `callee`'s parameter at `pos` (None if none), and the
    parameter's name."""
    param = callee.param_names[pos] if pos < len(callee.param_names) else None
    expr = args[pos] if pos < len(args) else next((k.value for k in keywords if k.arg == param), None)
    return expr, param
