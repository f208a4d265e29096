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

SCOPE_NODES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef,
               ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


@dataclass
class ScopeFacts:
    """What one scope does to names it does not own."""

    free: set[str] = field(default_factory=set)  # read from an enclosing or global scope
    global_binds: set[str] = field(default_factory=set)  # bound through `global`
    mutated_free: set[str] = field(default_factory=set)  # enclosing names it may mutate in place
    mutated_params: set[str] = field(default_factory=set)  # its parameters it may mutate
    params: list[str] = field(default_factory=list)
    walrus_binds: set[str] = field(default_factory=set)  # comprehension `:=` targets
    dynamic: list[ast.AST] = field(default_factory=list)  # exec/eval/globals()… seen inside


def scope_facts(node: ast.AST, modules=frozenset()) -> ScopeFacts:
    """Facts about the scope that `node` (one of SCOPE_NODES) opens. `modules`: names bound to
    imported modules around it (calls on them modify nothing)."""
    walker = _ScopeWalker(modules)
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
        walker.params = _param_names(node.args)
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
        walker.bind_target(gen.target)
        for cond in gen.ifs:
            walker.visit(cond)


class _ScopeWalker(ast.NodeVisitor):
    def __init__(self, modules=frozenset()):
        self.modules = set(modules)
        self.params: list[str] = []
        self.comprehension = False
        self.is_class = False
        self.binds: set[str] = set()
        self.loads: set[str] = set()
        self.globals: set[str] = set()
        self.nonlocals: set[str] = set()
        self.mutated: set[str] = set()
        self.nested_free: set[str] = set()
        self.walrus: set[str] = set()
        self.nested_global_binds: set[str] = set()
        self.aliases = effects.AliasGroups()
        self.dynamic: list[ast.AST] = []

    def facts(self) -> ScopeFacts:
        local = (self.binds | set(self.params)) - self.globals - self.nonlocals
        mutated = self.aliases.expand(self.mutated)
        return ScopeFacts(
            # a class body's names are invisible to its methods: their free names stay free
            free=((self.loads | self.nonlocals) - local) | (self.nested_free - (set() if self.is_class else local)),
            global_binds=(self.globals & self.binds) | self.nested_global_binds,
            mutated_free=mutated - local,
            mutated_params=mutated & set(self.params),
            params=self.params,
            walrus_binds=self.walrus,
            dynamic=self.dynamic,
        )

    def bind_target(self, target):
        for name in effects.target_names(target):
            self.binds.add(name)
        self.mutated |= effects.mutated_by_target(target)
        self.visit_target_loads(target)

    def visit_target_loads(self, target):
        for node in effects.target_load_parts(target):
            self.visit(node)

    # scopes nested in this one
    def _nested(self, node):
        for part in outer_parts(node):
            self.visit(part)
        inner = scope_facts(node, self.modules)
        self.nested_free |= inner.free
        self.mutated |= inner.mutated_free
        self.binds |= inner.walrus_binds
        self.nested_global_binds |= inner.global_binds
        self.dynamic += inner.dynamic
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            self.binds.add(node.name)

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _nested
    visit_Lambda = visit_ListComp = visit_SetComp = visit_DictComp = visit_GeneratorExp = _nested

    def visit_Global(self, node):
        self.globals.update(node.names)

    def visit_Nonlocal(self, node):
        self.nonlocals.update(node.names)

    def visit_Name(self, node):
        if isinstance(node.ctx, ast.Load):
            self.loads.add(node.id)
        else:
            self.binds.add(node.id)

    def visit_NamedExpr(self, node):
        self.visit(node.value)
        (self.walrus if self.comprehension else self.binds).add(node.target.id)

    def visit_Import(self, node):
        self.binds.update(effects.import_names(node))
        self.modules.update(effects.import_names(node))

    def visit_ImportFrom(self, node):
        self.binds.update(effects.import_names(node))
        self.modules.update(effects.import_names(node))
        if any(a.name == "*" for a in node.names):
            self.dynamic.append(node)

    def visit_ExceptHandler(self, node):
        if node.name:
            self.binds.add(node.name)
        self.generic_visit(node)

    def visit_Assign(self, node):
        self.visit(node.value)
        for target in node.targets:
            self.bind_target(target)
        self.aliases.add_assign(node.targets, node.value)

    def visit_AugAssign(self, node):
        self.visit(node.value)
        if isinstance(node.target, ast.Name):
            self.loads.add(node.target.id)
        self.bind_target(node.target)

    def visit_AnnAssign(self, node):
        if node.value is not None:
            self.visit(node.value)
            self.bind_target(node.target)
        self.visit(node.annotation)

    def visit_For(self, node):
        self.visit(node.iter)
        self.bind_target(node.target)
        self.aliases.add_loop(node.target, node.iter)
        for stmt in node.body + node.orelse:
            self.visit(stmt)

    visit_AsyncFor = visit_For

    def visit_withitem(self, node):
        self.visit(node.context_expr)
        if node.optional_vars is not None:
            self.bind_target(node.optional_vars)

    def visit_Delete(self, node):
        for target in node.targets:
            self.bind_target(target)

    def visit_Call(self, node):
        self.mutated |= effects.mutated_by_call(node, self.modules)
        self.aliases.add_call(node, self.modules)
        if effects.is_dynamic_call(node):
            self.dynamic.append(node)
        self.generic_visit(node)

    def visit_MatchAs(self, node):
        if node.name:
            self.binds.add(node.name)
        self.generic_visit(node)

    def visit_MatchStar(self, node):
        if node.name:
            self.binds.add(node.name)

    def visit_MatchMapping(self, node):
        if node.rest:
            self.binds.add(node.rest)
        self.generic_visit(node)
