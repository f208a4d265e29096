"""What a function (or lambda, class, comprehension) reads, binds and mutates outside itself.

Python's scoping rules in a small recursive walk: a nested scope's free names are resolved in
the scope that encloses it; a class body's names are not visible to its methods; a
comprehension's first iterable is evaluated in the enclosing scope; `global` and `nonlocal`
move a name out of the local scope.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

from . import effects
from .heap import Heap, contents
from .parsing import Visitor

SCOPE_NODES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef,
               ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
_FUNCTION_NODES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)


@dataclass
class ScopeFacts:
    """What one scope does to names it does not own."""

    free: set[str] = field(default_factory=set)  # read from an enclosing or global scope
    global_binds: set[str] = field(default_factory=set)  # bound through `global`
    mutated_free: set[str] = field(default_factory=set)  # enclosing names it may mutate in place
    mutated_params: set[str] = field(default_factory=set)  # its parameters it may mutate
    deep_mutated: set[str] = field(default_factory=set)  # those of both it may change through (`p[0]["x"] = 1`)
    params: list[str] = field(default_factory=list)
    walrus_binds: set[str] = field(default_factory=set)  # comprehension `:=` targets
    # enclosing names it draws from (loops over them, unpacks them, gives them to calls) and reads
    # items of (`counts[k]`): changes when they are iterators and defaultdicts (`heap.kinds`)
    drawn_free: set[str] = field(default_factory=set)
    indexed_free: set[str] = field(default_factory=set)
    generator: bool = False  # `yield` in its own body (not in a function defined in it)
    dynamic: list[ast.AST] = field(default_factory=list)  # exec/eval/globals()… seen inside


def scope_facts(node: ast.AST, modules=frozenset()) -> ScopeFacts:
    """Facts about the scope that `node` (one of SCOPE_NODES) opens. `modules`: names bound to
    imported modules around it (calls on them modify nothing)."""
    walker = _ScopeWalker(modules)
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
        walker.params = _param_names(node.args)
        for param in walker.params:
            walker.heap.objects(param)
        body = node.body if isinstance(node.body, list) else [node.body]
        for stmt in body:
            walker.visit(stmt)
    elif isinstance(node, ast.ClassDef):
        walker.is_class = True
        for stmt in node.body:
            walker.visit(stmt)
    else:  # comprehension: its first iterable belongs to the enclosing scope
        walker.comprehension = True
        _walk_generators(walker, node.generators, skip_first_iter=True)
        for elt in _comprehension_results(node):
            walker.visit(elt)
    return walker.facts()


def outer_parts(node: ast.AST) -> list[ast.AST]:
    """Sub-expressions of a scope node that run in the enclosing scope, at definition time."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
        args = node.args
        parts = [*args.defaults, *(d for d in args.kw_defaults if d is not None)]
        if not isinstance(node, ast.Lambda):
            parts += [*node.decorator_list, *_annotations(node)]
        return parts
    if isinstance(node, ast.ClassDef):
        return [*node.decorator_list, *node.bases, *(k.value for k in node.keywords)]
    return [node.generators[0].iter]


def _annotations(node):
    args = node.args
    every = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
    found = [a.annotation for a in every if a is not None and a.annotation is not None]
    return found + ([node.returns] if node.returns is not None else [])


def _param_names(args: ast.arguments) -> list[str]:
    every = [*args.posonlyargs, *args.args, args.vararg, *args.kwonlyargs, args.kwarg]
    return [a.arg for a in every if a is not None]


def _comprehension_results(node):
    return [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]


def _walk_generators(walker, generators, skip_first_iter):
    for i, gen in enumerate(generators):
        if i or not skip_first_iter:
            walker.visit(gen.iter)
        walker.loop(gen.target, gen.iter)
        for cond in gen.ifs:
            walker.visit(cond)


class _ScopeWalker(Visitor):
    def __init__(self, modules=frozenset()):
        self.modules = set(modules)
        self.params: list[str] = []
        self.comprehension = False
        self.is_class = False
        self.binds: set[str] = set()
        self.loads: set[str] = set()
        self.globals: set[str] = set()
        self.nonlocals: set[str] = set()
        self.changed: set[str] = set()  # objects it may change
        self.nested_free: set[str] = set()
        self.walrus: set[str] = set()
        self.drawn: set[str] = set()  # names it draws from (`ScopeFacts.drawn_free`)
        self.indexed: set[str] = set()  # names it reads items of
        self.generator = False
        self.nested_global_binds: set[str] = set()
        self.heap = Heap()
        self.dynamic: list[ast.AST] = []
        self.assigned: ast.AST | None = None  # the value of the assignment being walked

    def facts(self) -> ScopeFacts:
        local = (self.binds | set(self.params)) - self.globals - self.nonlocals
        # names are changed when the objects they had on entry are (or what those own)
        mutated, deep = set(), set()
        if self.changed:  # (most scopes change nothing)
            initial = self.heap.initial.items()
            mutated = {n for n, obj in initial if obj in self.changed or contents(obj) in self.changed}
            deep = {n for n, obj in initial if contents(obj) in self.changed}
        return ScopeFacts(
            # a class body's names are invisible to its methods: their free names stay free
            free=((self.loads | self.nonlocals) - local) | (self.nested_free - (set() if self.is_class else local)),
            global_binds=(self.globals & self.binds) | self.nested_global_binds,
            mutated_free=mutated - local,
            mutated_params=mutated & set(self.params),
            deep_mutated=deep - (local - set(self.params)),
            params=self.params,
            walrus_binds=self.walrus,
            drawn_free=self.drawn - local,
            indexed_free=self.indexed - local,
            generator=self.generator,
            dynamic=self.dynamic,
        )

    def bind(self, name, objects=frozenset()):
        self.binds.add(name)
        self.heap.bind(name, objects)

    def assign(self, target, objects, value=None):
        """`target = value`, where the value may be `objects` (empty: a new object)."""
        if isinstance(target, ast.Name):
            self.bind(target.id, objects)
        elif isinstance(target, (ast.Tuple, ast.List)):
            for part, part_objects in effects.unpacked(self.heap, target, objects, value, self.modules):
                self.assign(part, part_objects)
        elif isinstance(target, ast.Starred):
            self.assign(target.value, objects)
        else:
            for node in effects.target_load_parts(target):
                self.visit(node)
            self.changed |= effects.store_changes(self.heap, target, objects, self.modules)

    def loop(self, target, iterable):
        self._draws(iterable)
        for part, exprs in effects.loop_sources(target, iterable):
            self.assign(part, effects.elements_of(self.heap, exprs, self.modules))

    def _draws(self, expr):
        if type(expr) is ast.Starred:
            expr = expr.value
        if type(expr) is ast.Name:
            self.drawn.add(expr.id)

    def change_name(self, name, deep):
        objects = self.heap.objects(name)
        self.changed |= self.heap.owned_reach(objects) if deep else objects

    # scopes nested in this one
    def _nested(self, node):
        for part in outer_parts(node):
            self.visit(part)
        inner = scope_facts(node, self.modules)
        if self.is_class and "__class__" in inner.free and isinstance(node, _FUNCTION_NODES):
            # Python defines `__class__` for the functions of a class body (zero-argument `super()`
            # uses it): the class it is the body of, not a name of the enclosing scopes
            self.nested_free |= inner.free - {"__class__"}
        else:
            self.nested_free |= inner.free
        self.drawn |= inner.drawn_free
        self.indexed |= inner.indexed_free
        for name in inner.mutated_free:
            self.change_name(name, name in inner.deep_mutated)
        for name in inner.walrus_binds:  # (of a comprehension in one: the scope around them both binds it)
            if self.comprehension:
                self.walrus.add(name)
            else:
                self.bind(name)
        self.nested_global_binds |= inner.global_binds
        self.dynamic += inner.dynamic
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            self.bind(node.name)

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _nested
    visit_Lambda = visit_ListComp = visit_SetComp = visit_DictComp = visit_GeneratorExp = _nested

    def visit_Global(self, node):
        self.globals.update(node.names)

    def visit_Nonlocal(self, node):
        self.nonlocals.update(node.names)

    def visit_Name(self, node):
        if type(node.ctx) is ast.Load:  # (the parser makes no subclasses)
            if self.comprehension and node.id in self.walrus:
                return  # `[y for x in xs if (y := f(x))]`: the `:=` before ran first, y is the comprehension's own
            self.loads.add(node.id)
        else:
            self.bind(node.id)

    def visit_NamedExpr(self, node):
        self.visit(node.value)
        self.heap.bind(node.target.id, effects.objects_of(self.heap, node.value, self.modules))
        (self.walrus if self.comprehension else self.binds).add(node.target.id)

    def visit_Import(self, node):
        for name in effects.import_names(node):
            self.bind(name)
        self.modules.update(effects.import_names(node))

    def visit_ImportFrom(self, node):
        self.visit_Import(node)
        if any(a.name == "*" for a in node.names):
            self.dynamic.append(node)

    def visit_ExceptHandler(self, node):
        if node.name:
            self.bind(node.name)
        self.generic_visit(node)

    def visit_Assign(self, node):
        self.assigned = node.value
        self.visit(node.value)
        objects = effects.objects_of(self.heap, node.value, self.modules)
        if any(type(t) in (ast.Tuple, ast.List) for t in node.targets):  # `a, b = it`
            self._draws(node.value)
        for target in node.targets:
            self.assign(target, objects, node.value)

    def visit_AugAssign(self, node):
        self.visit(node.value)
        if isinstance(node.target, ast.Name):  # `lst += …` changes the same object
            self.loads.add(node.target.id)
            self.binds.add(node.target.id)
            self.changed |= effects.augmented_changes(self.heap, node, self.modules)
        else:
            self.assign(node.target, frozenset())

    def visit_AnnAssign(self, node):
        if node.value is not None:
            self.visit(node.value)
            self.assign(node.target, effects.objects_of(self.heap, node.value, self.modules), node.value)
        self.visit(node.annotation)

    def visit_For(self, node):
        self.visit(node.iter)
        self.loop(node.target, node.iter)
        for stmt in node.body + node.orelse:
            self.visit(stmt)

    visit_AsyncFor = visit_For

    def visit_withitem(self, node):
        self.visit(node.context_expr)
        if node.optional_vars is not None:
            self.assign(node.optional_vars, effects.objects_of(self.heap, node.context_expr, self.modules))

    def visit_Delete(self, node):
        for target in node.targets:
            if isinstance(target, ast.Name):
                self.binds.add(target.id)
            else:
                self.assign(target, frozenset())

    def visit_Call(self, node):
        used = node is self.assigned  # (`df.add(1)` is no `set.add`)
        self.changed |= effects.call_changes(self.heap, node, self.modules, used)
        if effects.is_dynamic_call(node):
            self.dynamic.append(node)
        for value in [*node.args, *(k.value for k in node.keywords)]:  # `list(it)`: any call may draw
            self._draws(value)
        super().visit_Call(node)  # its function and arguments

    def visit_Subscript(self, node):
        super().visit_Subscript(node)
        if type(node.ctx) is ast.Load and type(node.value) is ast.Name:
            self.indexed.add(node.value.id)

    def visit_Starred(self, node):
        if type(node.ctx) is ast.Load:  # `[*it]`
            self._draws(node)
        self.visit(node.value)

    def visit_YieldFrom(self, node):
        self.generator = True
        self._draws(node.value)
        self.visit(node.value)

    def visit_Yield(self, node):
        self.generator = True
        if node.value is not None:
            self.visit(node.value)

    def visit_MatchAs(self, node):
        if node.name:
            self.bind(node.name)
        self.generic_visit(node)

    def visit_MatchStar(self, node):
        if node.name:
            self.bind(node.name)

    def visit_MatchMapping(self, node):
        if node.rest:
            self.bind(node.rest)
        self.generic_visit(node)
