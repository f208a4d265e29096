"""Per-cell dataflow facts at notebook (module) level, in execution order.

For a sequence of cells it finds: names read before being bound (with the position of the
first read), names bound, names mutated in place and the objects they may change (on a shared
`heap.Heap`, which says what each name may be and hold), names deleted, functions defined (with
what they read and change when called), where each name is bound or changed (for `graph
--why`), and code the analysis cannot see through.
"""

from __future__ import annotations

import ast
import builtins
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from . import effects
from .callables import (
    SPECIAL_METHODS,
    Callable,
    argument_for,
    callee_of,
    changed_arguments,
    default_values,
    defaults_used,
    lambda_callable,
    star_parameters,
)
from .heap import FILLING, Heap, immutable
from .local_modules import local_functions
from .parsing import ParsedCell, Visitor, parse_cell
from .scopes import SCOPE_NODES, outer_parts, scope_facts
from .syntax import EXPANDED_ARGUMENT, READS_ONLY_SCOPE, expanded_names

READS_ONLY_SCOPE_NAME = READS_ONLY_SCOPE.split()[1].rstrip(":")
_CALLING_ITER = effects.ITERATING_CALLS | {"iter", "next"}  # calls that call their argument's `__iter__`

# Names a notebook kernel provides without any cell binding them.
KERNEL_NAMES = frozenset(dir(builtins)) | {
    "get_ipython", "display", "In", "Out", "_", "__", "___", "_i", "_ii", "_iii", "_ih", "_oh",
    "exit", "quit", "__name__", "__doc__", "__builtins__", "__spec__", "__loader__",
}


class Use(NamedTuple):
    """Where a name is read or changed. (A named tuple: made for most names read, it is made in a
    third of the time of a frozen dataclass.)"""

    name: str
    cell: int
    line: int
    col: int
    optional: bool = False  # read after a binding that may not have run (if/for/try)


@dataclass(frozen=True, slots=True)
class Site:
    """Where a name is bound or an object changed: notebook cell index, line, and the statement
    (or expression) that does it, turned into text only when asked (`graph --why`). The node is
    not kept (a big cell's tree would live as long as its facts): the cell, the node's type and
    its position say where it is, and it is parsed again when its text is asked for."""

    cell: int
    line: int
    node: ast.AST | None = None  # kept only when it has no position to be found by (`withitem`)
    parsed: ParsedCell | None = field(default=None, compare=False)  # where the node is found again
    kind: type | None = field(default=None, compare=False)
    span: int = field(default=0, compare=False)  # its position, `_packed`

    @property
    def code(self) -> str:
        node = self.node if self.node is not None else _found_again(self)
        if node is None:
            return ""
        code = ast.unparse(node).splitlines()[0]
        return code if len(code) <= 72 else code[:69] + "..."



def _catches_name_error(kind) -> bool:
    """An `except` clause naming NameError or UnboundLocalError (alone or in a tuple)."""
    names = kind.elts if type(kind) is ast.Tuple else [kind]
    return any(type(n) is ast.Name and n.id in ("NameError", "UnboundLocalError") for n in names)

def _site(cell: int, line: int, parsed: ParsedCell | None, node: ast.AST | None) -> Site:
    """A Site of `node`, keeping the node only when it has no position to be found by."""
    if not _findable(parsed, node):
        return Site(cell, line, node)
    return Site(cell, line, None, parsed, type(node), _packed(node))


def _findable(parsed: ParsedCell | None, node: ast.AST | None) -> bool:
    return node is not None and parsed is not None and getattr(node, "end_col_offset", None) is not None


class Sites(Mapping):
    """Name → the Site of its first binding, each kept as one number (cell, line, node type and
    position): a Site object, its position and its line number took 150 bytes a name, 9 MB for a
    cell binding 60,000 names. A node without a position is kept in a Site as it is.

    The number is a short one when its parts are small (`_short`): Python keeps a number of up to
    60 bits in 32 bytes, a longer one in 48 or more (1 MB for those 60,000 names)."""

    def __init__(self):
        self._sites: dict[str, int | Site] = {}
        self._parsed: dict[int, ParsedCell] = {}  # cell index → the cell its nodes are found in
        self._place: dict[int, int] = {}  # cell index → its place among these sites' cells
        self._cells: list[int] = []  # cell indices by place

    def add(self, name: str, cell: int, line: int, parsed: ParsedCell | None, node: ast.AST | None) -> None:
        if not _findable(parsed, node):
            self._sites[name] = Site(cell, line, node)
            return
        place = self._place.get(cell)
        if place is None:  # the first site in this cell
            place = self._place[cell] = len(self._cells)
            self._cells.append(cell)
            self._parsed[cell] = parsed
        kind = _KIND_NUMBER.get(type(node))
        if kind is None:
            kind = _KIND_NUMBER[type(node)] = len(_KINDS)
            _KINDS.append(type(node))
        value = _short(place, kind, line, node)
        if value is None:
            value = (((cell << _BITS | line) << _BITS | kind) << _SPAN) | _packed(node)
        self._sites[name] = value

    def __getitem__(self, name: str) -> Site:
        value = self._sites[name]
        if type(value) is Site:
            return value
        if not value >> _SHORT_BITS:
            return self._short_site(value)
        span, rest = value & _SPAN_MASK, value >> _SPAN
        kind, rest = rest & _MASK, rest >> _BITS
        line, cell = rest & _MASK, rest >> _BITS
        return Site(cell, line, None, self._parsed[cell], _KINDS[kind], span)

    def _short_site(self, value: int) -> Site:
        end_col, value = value & 0xFFFF, value >> 16
        col, value = value & 0xFF, value >> 8
        lines, value = value & 0xF, value >> 4
        line, value = value & 0x7, value >> 3
        lineno, value = value & 0xFFFFF, value >> 20
        kind, place = value & 0x1F, value >> 5
        cell = self._cells[place]
        span = ((lineno << _BITS | col) << _BITS | lineno + lines) << _BITS | end_col
        return Site(cell, lineno + line, None, self._parsed[cell], _KINDS[kind], span)

    def __contains__(self, name) -> bool:
        return name in self._sites

    def __iter__(self):
        return iter(self._sites)

    def __len__(self) -> int:
        return len(self._sites)

    def names(self):
        """The names bound, as a set-like view (`dict.keys`): `Facts.binds`."""
        return self._sites.keys()


_BITS = 32  # bits of each number `Sites` and `_packed` pack (a line, a column, a cell)
_MASK = (1 << _BITS) - 1
_SPAN = 4 * _BITS  # the bits of `_packed`
_SPAN_MASK = (1 << _SPAN) - 1
_KINDS: list[type] = []  # node types by number, as `Sites` packs them
_KIND_NUMBER: dict[type, int] = {}


# A short site (`_short`), from its high bits: the cell's place among the sites' cells (4 bits), the
# node type (5), the node's first line (20), the site's line after it (3), the node's last line
# after its first (4), its first column (8) and its last (16): 60 bits, which a longer site (one
# that does not fit, or `Sites.add`'s number of a cell index, a line and a type above `_packed`,
# longer than 160 bits) never is.
_SHORT_BITS = 60


def _short(place: int, kind: int, line: int, node: ast.AST) -> int | None:
    """The site of `node` on `line` as a number of at most 60 bits, if its parts fit (`_SHORT_BITS`)."""
    lineno, col, end_col = node.lineno, node.col_offset, node.end_col_offset
    after, lines = line - lineno, node.end_lineno - lineno
    if place < 16 and kind < 32 and lineno < 1 << 20 and 0 <= after < 8 and lines < 16 and col < 256 \
            and end_col < 1 << 16:
        return (((((place << 5 | kind) << 20 | lineno) << 3 | after) << 4 | lines) << 8 | col) << 16 | end_col
    return None


def _packed(node: ast.AST) -> int:
    """A node's position as one number (smaller than a tuple of four: one per name bound)."""
    return ((node.lineno << _BITS | node.col_offset) << _BITS | node.end_lineno) << _BITS | node.end_col_offset


def _found_again(site: Site) -> ast.AST | None:
    """The node a Site was made for, in a new parse of the piece of its cell holding it."""
    if site.parsed is None:
        return None
    line = site.span >> 3 * _BITS
    for piece in site.parsed.parts():
        if piece.line < line <= piece.line + piece.text.count("\n") + 1:
            for stmt in piece.statements():
                for node in ast.walk(stmt):
                    if type(node) is site.kind and getattr(node, "end_col_offset", None) is not None \
                            and _packed(node) == site.span:
                        return node
    return None


@dataclass
class Facts:
    reads: dict[str, Use] = field(default_factory=dict)
    imported: set[str] = field(default_factory=set)
    mutates: dict[str, Use] = field(default_factory=dict)  # names changed in place, directly
    changed: set[str] = field(default_factory=set)  # heap objects the cells may change
    read_objects: dict[str, frozenset] = field(default_factory=dict)  # name → its objects when first read
    bind_sites: Sites = field(default_factory=Sites)  # name → its first binding (and cell)
    change_sites: list[tuple[frozenset, Site]] = field(default_factory=list)  # objects changed, where
    deletes: set[str] = field(default_factory=set)
    delete_sites: dict[str, Use] = field(default_factory=dict)  # name → where it is deleted
    maybe_binds: set[str] = field(default_factory=set)  # bound (or deleted) on some paths only
    callables: dict[str, Callable] = field(default_factory=dict)
    heap: Heap = field(default_factory=Heap)
    dynamic: list[Use] = field(default_factory=list)  # star import / exec / eval / globals()
    origins: dict[str, str] = field(default_factory=dict)  # name an import binds → what it imports
    syntax_errors: list[tuple[int, int, int, str]] = field(default_factory=list)

    @property
    def binds(self):
        """The names bound: those with a bind site, as a set-like view (a set of them besides
        took 2 MB for a big cell)."""
        return self.bind_sites.names()


def analyse_cells(cells, known: dict[str, Callable] | None = None, heap=None, modules=(),
                  origins: dict[str, str] | None = None) -> Facts:
    """Facts for cells run one after another in one namespace. `cells`: (index, source) pairs,
    or cells parsed already (`parsing.ParsedCell`, shared with the other passes of a compile).

    `known` holds callables defined before these cells (prelude, earlier steps): a reference to
    one counts as reading what it reads. `heap` continues the objects of earlier cells;
    `modules` are names already bound to imported modules, and `origins` what earlier imports
    bound them to (`{"jl": "joblib"}`).
    """
    walker = _ModuleWalker(dict(known or {}), heap, modules, origins)
    for cell in cells:
        parsed = cell if isinstance(cell, ParsedCell) else parse_cell(*cell)
        if parsed.error is not None:
            walker.facts.syntax_errors.append((parsed.index, *parsed.error))
            continue
        walker.cell, walker.parsed = parsed.index, parsed
        for stmt in parsed.statements():
            walker.visit(stmt)
            walker.heap.forget_results()  # (no statement evaluates another's nodes: let them go)
    facts = walker.facts
    facts.maybe_binds = {n for n in walker.unsure if n in facts.bind_sites and n not in facts.deletes}
    return facts


class _ModuleWalker(Visitor):
    """Walks module-level statements in the order Python runs them."""

    def __init__(self, known: dict[str, Callable], heap=None, modules=(), origins=None):
        self.facts = Facts()
        if heap is not None:
            self.facts.heap = heap
        self.heap = self.facts.heap
        self.modules = set(modules)
        self.origins = {**(origins or {})}  # (the step's own imports go to `facts.origins` too)
        self.known = known
        self.cell = 0
        self.loops = 0  # loops around the statement being walked (`break` outside one is refused)
        self.parsed: ParsedCell | None = None  # the cell being walked
        self.statement: ast.stmt | None = None  # the simple statement being walked
        # Surely bound by now: the names with a bind site (`binds`), but for the `unsure` ones,
        # bound on some paths only, or deleted since. (A set of the names surely bound, nearly
        # every name bound, took 2 MB for a big cell.)
        self.binds = self.facts.binds
        self.unsure: set[str] = set()
        self.maybe: set[str] = set()  # bound on some paths (if/for/while/try bodies)
        self.captures: list[frozenset[str]] = []  # what a `match` statement's patterns capture may be
        self.conditional = 0
        self.name_error_caught = 0  # inside the body of a `try` that catches NameError
        self.assigned: ast.AST | None = None  # the value of the assignment being walked

    @classmethod
    def _method_for(cls, kind: type):
        method = super()._method_for(kind)
        return _walking_statement(method) if issubclass(kind, ast.stmt) else method

    # --- recording -------------------------------------------------------------------------
    def _site(self, node):
        stmt = self.statement
        return _site(self.cell, getattr(node, "lineno", 1), self.parsed,
                     stmt if isinstance(stmt, SIMPLE_STATEMENTS) else node)

    def _use(self, name, node, optional=False):
        return Use(name, self.cell, getattr(node, "lineno", 1), getattr(node, "col_offset", 0) + 1,
                   optional)

    def read(self, name, node, seen=None, optional=False):
        callee = self.known.get(name)
        if callee is not None and name not in (seen or ()):
            self._called(callee, node, (seen or set()) | {name})
        if name in self.binds and name not in self.unsure:  # surely bound
            return
        optional = optional or name in self.maybe or self.name_error_caught > 0
        if name not in self.facts.read_objects:  # (objects() again would find the same)
            self.facts.read_objects[name] = self.heap.objects(name)
        current = self.facts.reads.get(name)
        if current is None or (current.optional and not optional):
            self.facts.reads[name] = self._use(name, node, optional)

    def _called(self, callee: Callable, node, seen, optional=False):
        for name in sorted(callee.reads):
            self.read(name, node, seen, optional)
        for name in sorted(callee.mutates):
            self.change_name(name, node, name in callee.deep)
        for name in callee.binds:
            self.bind(name, node=node)
        self._drawn_by(callee.draws, callee.indexes, node)

    def _drawn_by(self, draws, indexes, node):
        """Code that draws from the names `draws` (a loop, `list(it)`) and reads items of `indexes`
        (`counts[k]`) changes those that are iterators and defaultdicts."""
        if not self.heap.kinds or not (draws or indexes):
            return
        changed = set()
        for name in sorted(draws):
            changed |= self.heap.drawn(self.heap.objects(name))
        for name in sorted(indexes):
            changed |= self.heap.of_kind(self.heap.objects(name), FILLING)
        self.change(changed, [], node)

    def _draw(self, expr, node=None):
        """A loop, an unpacking or `x in it` draws from the value of `expr`."""
        if self.heap.kinds:
            self.change(self.heap.drawn(effects.objects_of(self.heap, expr, self.modules)), [], node or expr)
        self._special_use("iterate", expr, node)

    def _special_use(self, use: str, expr, node=None):
        """Python calls a special method of the value of `expr` (`SPECIAL_METHODS[use]`): when a class of
        the notebook has one that changes its instance, the value changes, if it may be an instance
        (what an object is an instance of is not tracked, as for methods called by name)."""
        if not any(getattr(self.known.get("." + m), "changes_self", False) for m in SPECIAL_METHODS[use]):
            return
        if type(expr) is ast.Name and (expr.id in self.known or expr.id in self.modules):
            return
        changed = self.heap.may_be_instances(effects.objects_of(self.heap, expr, self.modules))
        self.change(changed, [], node or expr)

    def bind(self, name, objects=frozenset(), node=None, same_object=False):
        if not same_object:
            self.heap.bind(name, objects)
        first = name not in self.binds
        if first:
            where, stmt = node or self.statement, self.statement
            self.facts.bind_sites.add(name, self.cell, getattr(where, "lineno", 1), self.parsed,
                                      stmt if isinstance(stmt, SIMPLE_STATEMENTS) else where)
        self.facts.deletes.discard(name)
        if not self.conditional:
            self.unsure.discard(name)
        else:
            self.maybe.add(name)
            if first:  # (a name surely bound before stays so)
                self.unsure.add(name)

    def change(self, objects, names, node):
        """`objects` may change here; `names` are the ones the code changes directly."""
        if objects:
            self.facts.changed |= objects
            self.facts.change_sites.append((frozenset(objects), self._site(node)))
        for name in names:
            if name not in self.facts.mutates:
                self.facts.mutates[name] = self._use(name, node)

    def change_name(self, name, node, deep=False):
        objects = self.heap.objects(name)
        self.change(self.heap.owned_reach(objects) if deep else set(objects), [name], node)

    def assign(self, target, objects, value=None):
        """`target = value`, where the value may be `objects` (empty: a new object)."""
        if isinstance(target, ast.Name):
            self.bind(target.id, objects, target)
        elif isinstance(target, (ast.Tuple, ast.List)):
            if self.heap.kinds:  # `first, *rest = it` draws from it
                self.change(self.heap.drawn(objects), [], target)
            for part, part_objects in effects.unpacked(self.heap, target, objects, value, self.modules):
                self.assign(part, part_objects)
        elif isinstance(target, ast.Starred):
            self.assign(target.value, objects)
        else:  # `x[k] = …`, `x.a = …`: x is read and changed in place
            for part in effects.target_load_parts(target):
                self.visit(part)
            names = effects.mutated_by_target(target)
            for name in names:
                self.read(name, target)
            changed = effects.store_changes(self.heap, target, objects, self.modules)
            self.change(changed | self._class_attribute_changed(target.value), names, target)

    def _in_loop(self, stmts):
        self.loops += 1
        self._conditionally(stmts)
        self.loops -= 1

    def _conditionally(self, stmts):
        self.conditional += 1
        for stmt in stmts:
            self.visit(stmt)
        self.conditional -= 1

    # --- statements ------------------------------------------------------------------------
    def visit_Assign(self, node):
        self.assigned = node.value  # (a call whose value is used: `df.add(1)` is no `set.add`)
        self.visit(node.value)
        objects = effects.objects_of(self.heap, node.value, self.modules) | self._returned_arguments(node.value)
        objects |= self._generated(node.value)
        for target in node.targets:
            self.assign(target, objects, node.value)
        self._maybe_lambda(node.targets, node.value)
        self._maybe_closure(node.targets, node.value)
        self._note_bound_method(node.targets, node.value)

    def visit_AnnAssign(self, node):
        self.visit(node.annotation)
        if node.value is not None:
            self.visit(node.value)
            self.assign(node.target, effects.objects_of(self.heap, node.value, self.modules), node.value)

    def visit_AugAssign(self, node):
        self.visit(node.value)
        if isinstance(node.target, ast.Name):  # `lst += …` changes the same object
            name = node.target.id
            self.read(name, node.target)
            self.change(effects.augmented_changes(self.heap, node, self.modules), [name], node.target)
            self.bind(name, node=node.target, same_object=True)
        else:  # `arrs[0] += 1`, `m.w += 1`: the object held there changes in place (an array, a list)
            held = effects.objects_of(self.heap, node.target, self.modules)
            self.assign(node.target, frozenset())
            held |= self._class_attribute_changed(node.target)  # (its parts walked: `Child().shared += [1]`)
            if held:
                self.change(set(held), [], node.target)

    def visit_Delete(self, node):
        for target in node.targets:
            self._delete(target)

    def _delete(self, target):
        if isinstance(target, (ast.Tuple, ast.List)):  # `del (a, b)` deletes a and b
            for part in target.elts:
                self._delete(part)
        elif isinstance(target, ast.Name):
            self._delete_name(target.id, target)
        else:  # `del d[k]`, `del o.a`: d and o change
            self.assign(target, frozenset())

    def _delete_name(self, name, node):
        self.read(name, node)
        if self.conditional:  # it may still be there: the step hands on what it has, if anything
            self.bind(name, node=node, same_object=True)
            self.unsure.add(name)
            return
        self.facts.deletes.add(name)
        self.facts.delete_sites.setdefault(name, self._use(name, node))
        self.unsure.add(name)
        self.maybe.discard(name)

    def visit_Import(self, node):
        for name in effects.import_names(node):
            self.bind(name, node=node)
            self.facts.imported.add(name)
            self.modules.add(name)
        origins = effects.import_origins(node)
        self.origins.update(origins)
        self.facts.origins.update(origins)
        for name, callee in local_functions(node).items():  # (`helpers.py` beside the notebook)
            self.known[name] = self.facts.callables[name] = callee

    def visit_ImportFrom(self, node):
        self.visit_Import(node)
        if any(a.name == "*" for a in node.names):
            self.facts.dynamic.append(self._use("*", node))

    def visit_If(self, node):
        self.visit(node.test)
        self._conditionally(node.body + node.orelse)

    def visit_While(self, node):
        self.visit(node.test)
        self._in_loop(node.body)
        self._conditionally(node.orelse)

    def visit_For(self, node):
        self.visit(node.iter)
        self._draw(node.iter)
        sources = [(part, effects.elements_of(self.heap, exprs, self.modules))
                   for part, exprs in effects.loop_sources(node.target, node.iter)]
        # a loop over a non-empty literal (`for df in [train, test]`) surely runs its body
        surely = isinstance(node.iter, (ast.List, ast.Tuple)) and bool(node.iter.elts) and not node.orelse
        self.conditional += not surely
        for part, objects in sources:
            self.assign(part, objects)
        self.loops += 1
        for stmt in node.body:
            self.visit(stmt)
        self.loops -= 1
        for stmt in node.orelse:
            self.visit(stmt)
        self.conditional -= not surely

    visit_AsyncFor = visit_For

    def visit_Try(self, node):
        # `try: v = x` / `except NameError: v = -1`: a name it reads there may be undefined, as it is
        # top to bottom (after `del x` in an earlier step)
        guarded = any(_catches_name_error(h.type) for h in node.handlers)
        self.name_error_caught += guarded
        self._conditionally(node.body)
        self.name_error_caught -= guarded
        raised = self._raised_objects(node.body) if any(h.name for h in node.handlers) else set()
        for handler in node.handlers:
            if handler.type is not None:
                self.visit(handler.type)
            self.conditional += 1
            if handler.name:
                self.bind(handler.name, node=handler)
                self.heap.hold(self.heap.objects(handler.name), raised, owned=False)
            self.conditional -= 1
            self._conditionally(handler.body)
        self._conditionally(node.orelse)
        for stmt in node.finalbody:
            self.visit(stmt)

    visit_TryStar = visit_Try

    def _raised_objects(self, body) -> set[str]:
        """What the exceptions the block raises itself may hold (`raise ValueError(rows)`: a handler's
        `e.args[0]` is rows). Those raised in a function it calls are not followed."""
        found = set()
        for stmt in body:
            for node in ast.walk(stmt):
                if type(node) is ast.Raise and node.exc is not None:
                    exc = node.exc
                    found |= effects.argument_objects(self.heap, exc, self.modules) if type(exc) is ast.Call \
                        else set(effects.objects_of(self.heap, exc, self.modules))
        return found

    def visit_With(self, node):
        for item in node.items:
            self.visit(item.context_expr)
            self._special_use("with", item.context_expr)
            if item.optional_vars is not None:
                self.assign(item.optional_vars, self._entered(item.context_expr))
        for stmt in node.body:
            self.visit(stmt)

    visit_AsyncWith = visit_With

    def _entered(self, context_expr) -> set[str]:
        """What `with EXPR as v` may bind v to: EXPR's value, or what a call was given when it hands
        that on (`nullcontext(x)`, `closing(conn)`, a notebook's `@contextmanager` yielding its
        argument). `open(path)`, `sqlite3.connect(db)`, `tqdm(X)`, a `@contextmanager` yielding a new
        connection bind v to something new."""
        objects = set(effects.objects_of(self.heap, context_expr, self.modules))
        if type(context_expr) is not ast.Call:
            return objects
        if effects.callee_name(context_expr) in effects.ENTERING_ARGUMENT:
            given = effects.argument_objects(self.heap, context_expr, self.modules)
        else:
            callee, args, keywords = callee_of(context_expr, self.known, self.modules)
            yielded = [argument_for(callee, pos, args, keywords)[0] for pos in callee.yields_params] if callee else []
            given = set().union(*(effects.objects_of(self.heap, arg, self.modules) for arg in yielded if arg))
        return objects | {obj for obj in given if not immutable(obj)}

    def visit_Match(self, node):
        self.visit(node.subject)
        # a name a pattern captures may be the subject or any part of it (`case {'jan': d}`, `case [first, *_]`)
        self.captures.append(frozenset(self.heap.owned_reach(effects.objects_of(self.heap, node.subject,
                                                                                self.modules))))
        for case in node.cases:
            self.conditional += 1
            self.visit(case.pattern)
            if case.guard is not None:
                self.visit(case.guard)
            for stmt in case.body:
                self.visit(stmt)
            self.conditional -= 1
        self.captures.pop()

    def visit_MatchAs(self, node):
        if node.pattern is not None:
            self.visit(node.pattern)
        if node.name:
            self.bind(node.name, self.captures[-1], node=node)

    def visit_MatchStar(self, node):
        if node.name:  # (a new list of parts of the subject)
            self.bind(node.name, effects.container(self.heap, "list", [self.captures[-1]]), node=node)

    def visit_MatchMapping(self, node):
        self.generic_visit(node)
        if node.rest:  # (a new dict of parts of the subject)
            self.bind(node.rest, effects.container(self.heap, "dict", [self.captures[-1]]), node=node)

    def visit_Global(self, node):
        pass  # `global` at module level changes nothing

    # What Python's compiler refuses but its parser takes: caught here, so that `check` reports it
    # instead of a run failing at the cell after the steps before it ran.
    def visit_Return(self, node):
        self._refused(node, "'return' outside function")

    def visit_Yield(self, node):
        self._refused(node, "'yield' outside function")

    visit_YieldFrom = visit_Yield

    def visit_Break(self, node):
        if not self.loops:
            self._refused(node, "'break' outside loop")

    def visit_Continue(self, node):
        if not self.loops:
            self._refused(node, "'continue' not properly in loop")

    def visit_Nonlocal(self, node):
        self._refused(node, "nonlocal declaration not allowed at module level")

    def _refused(self, node, message: str):
        self.facts.syntax_errors.append((self.cell, node.lineno, node.col_offset + 1, message))
        self.generic_visit(node)

    # --- definitions -----------------------------------------------------------------------
    def visit_FunctionDef(self, node):
        for part in outer_parts(node):
            self.visit(part)
        self.define(node.name, node)
        if any(getattr(self.known.get(name), "keeps_state", False) for name in _decorator_names(node)):
            made = self.heap.objects(node.name)  # (`@memo def sq`: a call of sq changes memo's cache in it)
            self.heap.on_call(made, made)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node):
        if node.name == READS_ONLY_SCOPE_NAME:  # %timeit: reads now, binds nothing
            for name in sorted(scope_facts(node, self.modules).free):
                self.read(name, node)
            return
        bases = {id(base) for base in node.bases if type(base) is ast.Name}
        for part in outer_parts(node):
            if id(part) in bases:  # its methods run when the subclass is used (`define` gives them to it)
                self.read(part.id, part, seen={part.id})
            else:
                self.visit(part)
        facts = scope_facts(node, self.modules)
        # The class body runs now; its methods run later, when the class is used.
        immediate = facts.free - self._free_of_methods(node)
        for name in sorted(immediate):
            self.read(name, node)
        if facts.mutated_free:  # (`class C: registry.append(1)` changes it now; a method, when called)
            body = scope_facts(_without_methods(node), self.modules)
            for name in sorted(body.mutated_free - self.modules):
                self.change_name(name, node, name in body.deep_mutated)
        self.define(node.name, node, facts)
        self._note_class(node)
        self._define_methods(node)

    def _note_class(self, node):
        """A class of the notebook is pickled by value, with its attributes as they are, wherever its
        subclasses and instances travel: a subclass holds its notebook bases, so that `Base.factor = 7`
        changes `Child` (and `Child.registry.append(x)` may change `Base`'s list), and an instance its
        class (`_instance_made`)."""
        made = self.heap.objects(node.name)
        bases = set().union(*(effects.objects_of(self.heap, base, self.modules) for base in node.bases))
        self.heap.hold(made, bases & self.heap.classes, owned=False)
        self.heap.classes.update(made)
        self.heap.class_attributes.update(dict.fromkeys(made, _class_attribute_names(node)))

    def _class_attribute_changed(self, expr) -> set[str]:
        """`b.registry` changed in place (`b.registry.append(x)`, `b.registry[0] = x`, `b.registry +=
        [x]`), where b may be an instance of a notebook class whose body binds `registry`: that may be
        the class's list, and the class changes (with every instance: `heap.instance_of`)."""
        while type(expr) is ast.Subscript:
            expr = expr.value
        if not self.heap.instances or type(expr) is not ast.Attribute:
            return set()
        return self.heap.classes_binding(effects.objects_of(self.heap, expr.value, self.modules), expr.attr)

    def _instance_made(self, node):
        """`s = Scaler()`, `makers["s"]()`: the new object is an instance of a class of the notebook,
        which a later change of the class (`Scaler.k = 10`) changes (`heap.instance_of`)."""
        func = node.func
        if not self.heap.classes or not (type(func) is ast.Subscript
                                         or type(func) is ast.Name and func.id in self.known):
            return
        classes = effects.objects_of(self.heap, func, self.modules) & self.heap.classes
        if classes:  # (made here when a lowercase name's call makes nothing the heap names: before anything asks)
            self.heap.instance_of(self._call_value(node, "instance")[0], classes)

    def _call_value(self, node, label: str) -> tuple[frozenset[str], bool]:
        """The objects a call makes (`effects.call_result`, once per call site), or one new object of
        unknown contents when the heap knows none; and whether it is such a new one."""
        new = []

        def make():
            known = effects.call_result(self.heap, node, self.modules)
            if known:
                return known
            new.append(self.heap.fresh(effects.callee_name(node) or label))
            return frozenset(new)

        return self.heap.result(node, make), bool(new)

    def _define_methods(self, node):
        """The methods of a notebook class that change an argument or their instance, known by name
        as `.NAME`: what an object is an instance of is not tracked, so `p.apply(df)` counts as
        changing df wherever a class of the notebook has an `apply` that changes its parameter, and
        `m.predict(X)` as changing m where one has a `predict` that changes its instance (`self.calls
        += 1`: a name that is a read-only method's elsewhere). `__init__` tells what calling the
        class changes (`Features(df)` adding a column to df)."""
        for stmt in node.body:
            if not isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            facts = scope_facts(stmt, self.modules)
            static = any(getattr(d, "id", None) == "staticmethod" for d in stmt.decorator_list)
            params = list(facts.params)[0 if static else 1:]  # an instance's call gives no `self`
            positions = [i for i, p in enumerate(params) if p in facts.mutated_params]
            receiver = not static and bool(facts.params) and list(facts.params)[0] in facts.deep_mutated
            returned = None
            if not static and facts.params:  # `return self._h`: a part of its instance
                itself, parts, holding = _returned_params(stmt, list(facts.params)[:1])
                returned = 0 if itself or holding else max((depth for _, depth in parts), default=None)
            key = "." + stmt.name
            changes_self = not static and bool(facts.params) and \
                not {list(facts.params)[0]}.isdisjoint(facts.mutated_params | facts.deep_mutated)
            if stmt.name == "__init__" and positions and node.name in self.known:
                self.known[node.name] = self.facts.callables[node.name] = dataclasses.replace(
                    self.known[node.name], mutated_params=positions, param_names=params,
                    deep=self.known[node.name].deep | set(facts.deep_mutated), **star_parameters(stmt))
            if positions or receiver or returned is not None or changes_self:
                changes_self = changes_self or getattr(self.known.get(key), "changes_self", False)  # (any class's)
                getter = any(type(d) is ast.Name and d.id == "property" for d in stmt.decorator_list)
                self.known[key] = self.facts.callables[key] = method = Callable(
                    key, set(), set(), set(), positions, params, set(facts.deep_mutated), deep_receiver=receiver,
                    returns_receiver=returned, changes_self=changes_self, getter=getter, **star_parameters(stmt))
                method.defaults = self._changed_defaults(stmt, method)

    def _hold_defaults(self, function_objects, node) -> None:
        """A function holds its default values (`def add(x, into=log)`: `add.__defaults__` is log), so
        it travels with them: a later step given both gets the one list, as the notebook has it."""
        if type(node) is not ast.ClassDef:
            for _, default in default_values(node):
                self.heap.hold(function_objects, effects.objects_of(self.heap, default, self.modules), owned=False)

    def _inner_defaults_changed(self, node, own_params: set) -> frozenset:
        """The notebook's objects that functions defined inside `node` take as defaults and change
        (`def outer(): def inner(x, into=log): into.append(x)`): calling `node` may change them."""
        if type(node) is ast.ClassDef or type(node) is ast.Lambda:
            return frozenset()
        found = set()
        for inner in ast.walk(node):
            defaults = default_values(inner) if inner is not node and type(inner) in _FUNCTION_NODES else ()
            if defaults:
                changed = scope_facts(inner, self.modules).mutated_params
                found |= {obj for param, default in defaults
                          if param in changed and effects.root_name(default) not in own_params | {None}
                          for obj in effects.objects_of(self.heap, default, self.modules)}
        return frozenset(found)

    def _changed_by_callees(self, names, itself=None) -> frozenset:
        """What calling code that calls these notebook functions changes whatever it gives them: the
        defaults they change (`def wrap(x): add(x)`, `lambda v: add(v)` with `def add(x, into=log)`)."""
        found = set()
        for name in names:
            callee = self.known.get(name)
            if callee is not None and name != itself:
                found |= callee.always_changes.union(*callee.defaults.values())
        return frozenset(found)

    def _changed_defaults(self, node, callee: Callable) -> dict[str, frozenset]:
        """What the defaults of the parameters a function changes may be, as they are now (Python
        evaluates a default once, where the function is defined)."""
        if type(node) is ast.ClassDef or not callee.mutated_params:
            return {}
        changed = callee.changed_param_names
        return {param: frozenset(effects.objects_of(self.heap, default, self.modules))
                for param, default in default_values(node) if param in changed}

    def _free_of_methods(self, node):
        free = set()
        for stmt in node.body:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                free |= scope_facts(stmt, self.modules).free
        return free

    def define(self, name, node, facts=None):
        facts = facts or scope_facts(node, self.modules)
        self._note_dynamic(facts.dynamic)
        reads = set(facts.free)
        mutates, binds = set(facts.mutated_free), set(facts.global_binds)
        # calling a known function runs its body too; so does calling what a known decorator made
        # (`@track def f`: a call of f runs track's wrapper), and using a class its bases' methods
        for callee_name in [*reads, *_decorator_names(node), *_base_names(node)]:
            callee = self.known.get(callee_name)
            if callee is not None and callee_name != name:
                reads |= callee.reads
                mutates |= callee.mutates
                binds |= callee.binds
        positions = [i for i, p in enumerate(facts.params) if p in facts.mutated_params]
        for changed in self._changed_through_calls(name, node, facts.free):  # `def f(y): g(y)`
            if changed in facts.params:
                positions = sorted({*positions, list(facts.params).index(changed)})
            elif changed in facts.free:
                mutates.add(changed)
        deep = set(facts.deep_mutated)
        for callee_name in list(facts.free):
            callee = self.known.get(callee_name)
            if callee is not None and callee_name != name:
                deep |= callee.deep & callee.mutates
        draws, indexes = set(facts.drawn_free), set(facts.indexed_free)
        for callee_name in list(facts.free):
            callee = self.known.get(callee_name)
            if callee is not None and callee_name != name:
                draws |= callee.draws
                indexes |= callee.indexes
        returned, parts, holding = _returned_params(node, list(facts.params))
        self.known[name] = self.facts.callables[name] = Callable(
            name, reads - {name}, binds, mutates, positions, list(facts.params), deep, _makes_functions(node),
            returned, parts, holding, draws=draws, indexes=indexes, generator=facts.generator,
            yields_params=_yielded_params(node, list(facts.params)) if facts.generator else [],
            keeps_state=_closures_keep_state(node), **star_parameters(node))
        self.known[name].defaults = self._changed_defaults(node, self.known[name])
        self.known[name].always_changes = self._changed_by_callees(reads, name) | \
            self._inner_defaults_changed(node, set(facts.params))
        self.bind(name, node=node)
        self.heap.functions.update(dict.fromkeys(self.heap.objects(name), self.known[name]))
        self._hold_defaults(self.heap.objects(name), node)

    def _generated(self, value) -> frozenset[str]:
        """`g = gen(xs)` with a generator function of the notebook: g is an iterator drawing on xs."""
        if type(value) is not ast.Call:
            return frozenset()
        callee, _, _ = callee_of(value, self.known, self.modules)
        if callee is None or not callee.generator:
            return frozenset()
        given = effects.given_objects(self.heap, value, self.modules)
        return effects.generator(self.heap, callee.name, given, self.heap.elements(given))  # (it may yield them)

    def _returned_arguments(self, value) -> frozenset[str]:
        """`a = ident(b)` with a function of the notebook that may return its parameter: a may be b;
        `a = section(b, k)` (`return p[k]`, `return p.steps[-1][1]`): a may be a part of b, or what b
        holds; `a = wrap(b)` (`return {"w": p}`): a holds b."""
        if type(value) is not ast.Call:
            return frozenset()
        callee, args, keywords = callee_of(value, self.known, self.modules)
        if callee is None or not (callee.returns_params or callee.returns_parts or callee.returns_holding
                                  or callee.returns_receiver is not None):
            return frozenset()
        found = frozenset()
        if callee.returns_receiver is not None and type(value.func) is ast.Attribute and value.func.attr != "pipe":
            receiver = effects.objects_of(self.heap, value.func.value, self.modules)
            found |= self.heap.elements(receiver, callee.returns_receiver)
        for pos, depth in [*((p, 0) for p in callee.returns_params), *callee.returns_parts]:
            expr, _ = argument_for(callee, pos, args, keywords)
            if expr is not None and type(expr) is not ast.Starred:
                objects = effects.objects_of(self.heap, expr, self.modules)
                found |= self.heap.elements(objects, depth) if depth else objects
        held = set()
        for pos in callee.returns_holding:
            expr, _ = argument_for(callee, pos, args, keywords)
            if expr is not None and type(expr) is not ast.Starred:
                held |= effects.objects_of(self.heap, expr, self.modules)
        if held:
            made = effects.objects_of(self.heap, value, self.modules)
            if not made:  # (a new object of unknown contents)
                made = frozenset({self.heap.fresh(callee.name)})
            self.heap.hold(made, held)
            found |= made
        return found

    def _changed_through_calls(self, name, node, free) -> set[str]:
        """Names a definition's body hands to functions of the notebook that change them (one it
        calls is among its free names: most definitions call none, and are not walked)."""
        if not any(n != name and n in self.known and self.known[n].mutated_params for n in free):
            return set()
        changed = set()
        for call in (n for n in ast.walk(node) if type(n) is ast.Call):
            callee, args, keywords = callee_of(call, self.known, self.modules)
            if callee is not None and callee.name != name:
                changed |= {effects.root_name(expr) for expr, _ in changed_arguments(callee, args, keywords)}
        return changed - {None}

    def _maybe_closure(self, targets, value):
        """`g = make()`, where `make` of the notebook defines a function: g may be that closure, and
        calling g reads and changes what make's body does (`def make(): return lambda: K * 10`)."""
        if not (isinstance(value, ast.Call) and len(targets) == 1 and isinstance(targets[0], ast.Name)):
            return
        factory, _, _ = callee_of(value, self.known, self.modules)
        if factory is not None and factory.makes_functions:
            name = targets[0].id
            self.known[name] = self.facts.callables[name] = Callable(
                name, factory.reads - {name}, factory.binds, factory.mutates, [], [], factory.deep,
                draws=factory.draws, indexes=factory.indexes)

    def _maybe_lambda(self, targets, value):
        # `f = lambda x: x + k` is used like a def: its body reads happen when it is called; so is
        # `h = g`, another name for a function of the notebook
        if len(targets) != 1 or not isinstance(targets[0], ast.Name):
            return
        if isinstance(value, ast.Lambda):
            self.define(targets[0].id, value)
        elif type(value) is ast.Name and value.id in self.known and value.id != targets[0].id:
            name = targets[0].id
            self.known[name] = self.facts.callables[name] = dataclasses.replace(self.known[value.id], name=name)

    def _note_dynamic(self, nodes):
        for node in nodes:
            self.facts.dynamic.append(self._use("*" if isinstance(node, ast.ImportFrom)
                                                else effects.callee_name(node), node))

    # --- expressions -----------------------------------------------------------------------
    def visit_Name(self, node):
        if type(node.ctx) is ast.Load:  # (the parser makes no subclasses)
            self.read(node.id, node)
        else:
            self.bind(node.id, node=node)

    def visit_Attribute(self, node):
        self.visit(node.value)
        if type(node.ctx) is ast.Load:
            getter = self.known.get("." + node.attr)
            if getter is not None and getter.getter and getter.changes_self:  # `t = r.touch`, whose getter
                # changes r (`self.n += 1`), as `r.touch()` would: on what may be an instance
                self.change(self.heap.may_be_instances(effects.objects_of(self.heap, node.value, self.modules)),
                            [], node)

    def visit_NamedExpr(self, node):
        self.visit(node.value)
        self.bind(node.target.id, effects.objects_of(self.heap, node.value, self.modules), node)

    def visit_Subscript(self, node):
        super().visit_Subscript(node)
        if type(node.ctx) is not ast.Load:
            return
        if FILLING in self.heap.made_kinds:  # `counts[k]` inserts k in a defaultdict
            objects = effects.objects_of(self.heap, node.value, self.modules)
            self.change(self.heap.of_kind(objects, FILLING), [], node)
        self._special_use("index", node.value, node)

    def visit_Starred(self, node):
        self.visit(node.value)
        if type(node.ctx) is ast.Load:  # `[*it]`
            self._draw(node.value)

    def visit_Compare(self, node):
        super().visit_Compare(node)
        for op, right in zip(node.ops, node.comparators):
            if type(op) in (ast.In, ast.NotIn):  # `x in it` draws from it up to x
                self._draw(right)
                self._special_use("contains", right)

    def visit_Call(self, node):
        super().visit_Call(node)  # its function and arguments
        self._note_callable_made(node)
        self._instance_made(node)
        self._wrapped_functions(node)
        for name in sorted(_expanded_reads(node)):
            self.read(name, node, optional=True)
        used = node is self.assigned
        changed = effects.call_changes(self.heap, node, self.modules, used)
        names = effects.mutated_by_call(node, self.modules, used) - self.modules
        names -= self._seeds_given(node)
        callee, args, keywords = callee_of(node, self.known, self.modules)
        if type(node.func) is ast.Lambda:  # `(lambda q=log: q.append(1))()`: its defaults are the call's
            callee.defaults = self._changed_defaults(node.func, callee)
        if type(node.func) is ast.Attribute and self.heap.instances:
            self._method_reads(node)
        if effects.pickles(node, self.origins, self.modules):
            self._pickle_reads(node)
        if callee is not None and callee.changes_self and type(node.func) is ast.Attribute \
                and effects.root_name(node.func.value) not in self.modules:  # (`m.predict(X)`: read-only elsewhere)
            changed |= set(effects.part_objects(self.heap, node.func.value, self.modules))
        if callee is not None and callee.deep_receiver and type(node.func) is ast.Attribute:
            receiver = effects.root_name(node.func.value)
            if receiver is not None and receiver not in self.modules:
                changed |= self.heap.owned_reach(self.heap.objects(receiver))
                names |= {receiver}
        if callee is not None:  # a function of the notebook: it says which parameters it changes
            given = effects.argument_objects(self.heap, node, self.modules)
            for expr, _ in changed_arguments(callee, args, keywords):
                objects = effects.objects_of(self.heap, expr, self.modules)
                self.heap.hold(objects, given - objects, owned=False)
                self.heap.spoil(objects)  # (it may store anything in it)
                names |= {effects.root_name(expr)} - {None} - self.modules
            changed |= self._argument_changes(callee, args, keywords)
        direct = self._held_functions(node) if callee is None else []
        for held in direct:  # `ops["g"](5)`, `for f in fs: f()`
            self._called(held, node, {held.name}, optional=True)  # (which of them is called is not known)
            changed |= self._argument_changes(held, list(node.args), node.keywords)
        for held in self._functions_reached(node, direct):  # `p(X)`, `ft.transform(X)`, `cross_val_score(pipe, …)`
            self._called(held, node, {held.name}, optional=True)
            changed |= self._reached_function_changes(held, node)
        changed |= self._mapped_changes(node)
        changed |= self._passed_function_changes(node, callee)
        self._bound_methods_given([*node.args, *(k.value for k in node.keywords)])
        changed |= self._given_callable_changes(node)
        changed |= self._called_value_changes(node)
        if changed and self.heap.instances and type(node.func) is ast.Attribute and \
                not changed.isdisjoint(effects.part_objects(self.heap, node.func.value, self.modules)):
            changed |= self._class_attribute_changed(node.func.value)  # `b.registry.append(x)`
        if changed or names:  # (most calls change nothing)
            self.change(changed, sorted(names), node)
        if effects.is_dynamic_call(node):
            self.facts.dynamic.append(self._use(node.func.id, node))

    def visit_List(self, node):
        super().visit_List(node)
        self._bound_methods_given(node.elts)

    visit_Tuple = visit_Set = visit_List

    def visit_Dict(self, node):
        self.generic_visit(node)
        self._bound_methods_given(node.values)

    def _bound_methods_given(self, exprs):
        """A changing method taken as a value, given to a call (`map(lst.append, xs)`) or put in a
        container (`cbs = [lst.append]`), may be called by whatever gets it: its object changes here,
        and calling it later (`for cb in cbs: cb(1)`) changes it again (`heap.calls_change`)."""
        for expr in exprs:
            expr = expr.value if type(expr) is ast.Starred else expr
            root = effects.root_name(expr) if type(expr) is ast.Attribute else None
            # (`list.append`, `MyClass.add`: a function of a type, which changes what it is given)
            if root is None or root in self.modules or root in self.known or \
                    (root in KERNEL_NAMES and root not in self.binds) or \
                    not (expr.attr in effects.CHANGING_METHOD_VALUES or self._changes_its_instance(expr.attr)):
                continue
            receiver = effects.part_objects(self.heap, expr.value, self.modules)
            deep = expr.attr not in effects.CONTAINER_METHODS  # (`m.fit` changes what m owns)
            self.heap.on_call(effects.objects_of(self.heap, expr, self.modules), receiver, deep=deep)
            changed = self.heap.owned_reach(receiver) if deep else set(receiver)
            self.change(changed, sorted({effects.root_name(expr)} - {None}), expr)

    def _given_callable_changes(self, node) -> set[str]:
        """A callable value given to a call (`push = log.append`, then `map(push, xs)`) may be called
        by it: what calling it changes (`heap.calls_change`), and the defaults a notebook function
        given away may fall back on (`ex.map(add, xs)` with `def add(x, into=log)`)."""
        changed = set()
        for arg in [*node.args, *(k.value for k in node.keywords)]:
            arg = arg.value if type(arg) is ast.Starred else arg
            if self.heap.sure_callables:
                objects = effects.objects_of(self.heap, arg, self.modules)
                changed |= self.heap.changed_by_calling(objects & self.heap.sure_callables)
            if type(arg) is ast.Name and arg.id in self.heap.method_names:
                changed |= self.heap.changed_by_calling(self.heap.objects(arg.id))
            if type(arg) is ast.Name and arg.id in self.known:
                changed |= self._changed_by_callees([arg.id])
        return changed

    def _changes_its_instance(self, method: str) -> bool:
        """A notebook class has a method of this name that changes its instance (`acc.record`)."""
        known = self.known.get("." + method)
        return known is not None and (known.changes_self or known.deep_receiver)

    def _called_value_changes(self, node) -> set[str]:
        """Calling a value rather than a function of the notebook: a bound method, a `partial` or a
        closure made earlier changes what it was made to change (`heap.calls_change`: `app =
        data.append`, then `app(3)`); an instance changes when a notebook class's `__call__` changes it
        (`scorer(y, p)`); `list(obj)`, `iter(obj)` call `__iter__`."""
        func = node.func
        if type(func) not in (ast.Name, ast.Subscript) or (type(func) is ast.Name and func.id in self.modules):
            return set()
        if type(func) is ast.Name and func.id in _CALLING_ITER and node.args:
            self._special_use("iterate", node.args[0], node)
        self._special_use("call", func, node)
        return self.heap.changed_by_calling(effects.objects_of(self.heap, func, self.modules))

    def _held_functions(self, node) -> list[Callable]:
        """The functions of the notebook that calling a value taken from a container, or bound by a
        loop, may call (`heap.functions`)."""
        func = node.func
        if not self.heap.functions or type(func) not in (ast.Name, ast.Subscript) or (
                type(func) is ast.Name and (func.id in self.known or func.id in self.modules)):
            return []
        objects = effects.objects_of(self.heap, func, self.modules)
        return [self.heap.functions[obj] for obj in sorted(objects) if obj in self.heap.functions]

    def _functions_reached(self, node, direct) -> list[Callable]:
        """The functions of the notebook held in what a call calls, is called on or is given (`p =
        partial(f)`, then `p(X)`; `ft = FunctionTransformer(f)`, then `ft.transform(X)`, a pipeline
        holding ft fitted, or given to `cross_val_score`): the call may call them, and they read the
        step's globals then. (One taken out of a container and called is `direct`, from
        `_held_functions`; one named is read where it is named.)"""
        holders = self.heap.function_holders() if self.heap.functions else ()
        if not holders:
            return []
        func = node.func
        objects, called = set(), func.value if type(func) is ast.Attribute else func
        for value in [called, *node.args, *(k.value for k in node.keywords)]:
            value = value.value if type(value) is ast.Starred else value
            if type(value) is not ast.Name or (value.id not in self.known and value.id not in self.modules):
                objects |= effects.objects_of(self.heap, value, self.modules)
        if holders.isdisjoint(objects):
            return []
        functions, classes = self.heap.functions, self.heap.classes
        found = [functions[obj] for obj in sorted(self.heap.reach(objects & holders))
                 if obj in functions and obj not in classes]
        return [held for held in found if held not in direct]

    def _reached_function_changes(self, held: Callable, node) -> set[str]:
        """What a call that may call `held` changes: the defaults it changes, and when it changes a
        parameter, anything the call is given (how the call hands on its arguments is not known)."""
        changed = self._argument_changes(held, [], [])
        if held.mutated_params:
            given = effects.argument_objects(self.heap, node, self.modules)
            deep = not held.deep.isdisjoint(held.changed_param_names)
            changed |= self.heap.owned_reach(given) if deep else given
        return changed

    def _wrapped_functions(self, node):
        """`vf = np.vectorize(f)`, `g = jax.jit(f)`: a library's function given a function of the
        notebook (or a lambda) may make a callable holding it, which calls it when called
        (`_functions_reached`). A value the heap knows (a container, an iterator drawing on f, a
        `partial`) says what it holds already."""
        known, func = self.known, node.func
        functions = [arg for arg in (*node.args, *(k.value for k in node.keywords))  # (by its name, or a lambda)
                     if type(arg) is ast.Lambda or type(arg) is ast.Name and arg.id in known]
        if not functions or not (type(func) is ast.Name and func.id not in known or type(func) is ast.Attribute
                                 and effects.root_name(func) in self.modules):
            return
        given = set().union(*(effects.objects_of(self.heap, arg, self.modules) for arg in functions))
        wrapped = {obj for obj in given if obj in self.heap.functions and obj not in self.heap.classes}
        if not wrapped:
            return
        made, unknown = self._call_value(node, "call")
        if unknown:  # (a value the heap knows says what it holds already)
            self.heap.hold(made, wrapped, owned=False)

    def _note_bound_method(self, targets, value):
        """`app = data.append`: calling app later changes data, as `data.append(…)` does (`m.fit`: m and
        what it owns; `df.head`, a read-only method: nothing) (`heap.calls_change`)."""
        if len(targets) != 1 or type(targets[0]) is not ast.Name or type(value) is not ast.Attribute \
                or value.attr in effects.READ_ONLY_METHODS or value.attr in effects.IMMUTABLE_ATTRIBUTES \
                or effects.root_name(value) in self.modules:
            return
        receiver = effects.part_objects(self.heap, value.value, self.modules)
        self.heap.on_call(self.heap.objects(targets[0].id), receiver, deep=value.attr not in effects.CONTAINER_METHODS,
                          sure=False)
        if value.attr in effects.CHANGING_METHOD_VALUES or self._changes_its_instance(value.attr):
            self.heap.method_names.add(targets[0].id)

    def _note_callable_made(self, node):
        """`partial(f, log)`, and `make(log)` with a notebook function that makes a function: the
        callable made holds what it was given (a partial's arguments, a closure's cells), and calling
        it changes what `f(log, …)`, or `make`'s inner function, would (`heap.calls_change`)."""
        callee_keeps_state = False
        if effects.callee_name(node) == "partial" and node.args:
            label = "partial"
            changed = self._changes_of(ast.Call(func=node.args[0], args=node.args[1:], keywords=node.keywords))
        else:
            callee, args, keywords = callee_of(node, self.known, self.modules)
            if callee is None or not callee.makes_functions:
                return
            label, changed = callee.name, self._argument_changes(callee, args, keywords)
            callee_keeps_state = callee.keeps_state
        made = self.heap.result(node, lambda: frozenset({self.heap.fresh(label)}))  # (before anything asks)
        self.heap.hold(made, effects.argument_objects(self.heap, node, self.modules))
        if callee_keeps_state:  # (`nonlocal n; n += 1`: a call of the closure changes the closure)
            changed = set(changed) | made
        self.heap.on_call(made, changed)

    def _method_reads(self, call) -> None:
        """`fb.build(s)` on what may be an instance of a notebook class: its methods read the globals
        they name as they run (`self.w * WINDOW`: a parameter the step must be given, and whose
        change makes it run again), as calling the class does; maybe (another object may be there)."""
        for obj in effects.part_objects(self.heap, call.func.value, self.modules):
            for cls in self.heap.instances.get(obj, ()):
                klass = self.heap.functions.get(cls)
                for name in sorted(klass.reads if klass is not None else ()):
                    self.read(name, call, optional=True)

    def _pickle_reads(self, call) -> None:
        """`pickle.load(f)`, `joblib.dump(model, path)`: a pickle names the notebook's classes and
        functions as attributes of `__main__` (a scikit-learn pipeline holding a transformer class
        of the notebook), which the step's namespace must hold, as a run top to bottom does: the
        step reads each one defined so far, and what it reads (maybe: the pickle may hold none, and
        what they read is needed only if defined by then)."""
        for name, callee in self.known.items():  # (not `.method`, nor `helpers.f` of an own module)
            if name.isidentifier() and name not in self.modules:
                self.read(name, call, self.known, optional=True)
                for read in sorted(callee.reads):
                    self.read(read, call, self.known, optional=True)

    def _changes_of(self, call) -> set[str]:
        """The objects `call` (one the notebook does not run: a bound method's or a partial's) would
        change."""
        changed = effects.call_changes(self.heap, call, self.modules)
        callee, args, keywords = callee_of(call, self.known, self.modules)
        return changed | self._argument_changes(callee, args, keywords) if callee is not None else changed

    def _argument_changes(self, callee, args, keywords) -> set[str]:
        """The objects given to the parameters a function of the notebook changes."""
        changed = set()
        for expr, param in changed_arguments(callee, args, keywords):
            objects = effects.objects_of(self.heap, expr, self.modules)
            changed |= self.heap.owned_reach(objects) if param in callee.deep else set(objects)
        for param, objects in defaults_used(callee, args, keywords):
            changed |= self.heap.owned_reach(objects) if param in callee.deep else set(objects)
        return changed | callee.always_changes

    def _seeds_given(self, call) -> set[str]:
        """Names given as `random_state=`/`rng=` that hold a number or a string (a seed, which no
        call changes), not a generator it draws from: `Model(random_state=seed)` in sibling steps
        must not order them."""
        seeds = set()
        for keyword in call.keywords:
            if keyword.arg in effects.GENERATOR_KEYWORDS and type(keyword.value) is ast.Name:
                objects = self.heap.objects(keyword.value.id)
                if objects and all(immutable(obj) for obj in objects):
                    seeds.add(keyword.value.id)
        return seeds

    def _mapped_changes(self, node) -> set[str]:
        """`map(f, frames)` with a function of the notebook (or a lambda) that changes its parameter:
        it changes the elements of `frames`."""
        func, args = node.func, node.args
        if type(func) is not ast.Name or func.id != "map" or len(args) != 2:
            return set()
        if type(args[0]) is ast.Lambda:
            callee = lambda_callable(args[0], self.modules)
            callee.always_changes = self._changed_by_callees(scope_facts(args[0], self.modules).free)
        else:
            callee = self.known.get(args[0].id) if type(args[0]) is ast.Name else None
        if callee is None:
            return set()
        changed = set(callee.always_changes).union(*(objects for _, objects in defaults_used(callee, [args[1]], [])))
        if 0 in callee.mutated_params:
            changed |= set(effects.elements_of(self.heap, [args[1]], self.modules))
        return changed

    def _scope_now(self, node):
        # Lambdas and comprehensions in an expression: their reads happen (about) now.
        for part in outer_parts(node):
            self.visit(part)
        facts = scope_facts(node, self.modules)
        if type(node) is ast.Lambda:  # kept in a container and called later: `ops["scale"](2)` (`_held_functions`)
            made = effects.objects_of(self.heap, node, self.modules)
            made_callable = lambda_callable(node, self.modules, facts)
            made_callable.defaults = self._changed_defaults(node, made_callable)
            made_callable.always_changes = self._changed_by_callees(facts.free)
            self.heap.functions.update(dict.fromkeys(made, made_callable))
            self._hold_defaults(made, node)
        self._note_dynamic(facts.dynamic)
        # a lambda bound to a name (`scale = lambda v: v * factor`) reads its free names when called,
        # as a `def` does: a call reads them for certain (`Callable.reads`); one used at once
        # (`sorted(xs, key=lambda v: v * k)`) reads them now
        named = type(node) is ast.Lambda and self.assigned is node
        for name in sorted(facts.free):
            self.read(name, node, optional=named)
        for name in sorted(facts.mutated_free - self.modules):
            self.change_name(name, node, name in facts.deep_mutated)
        for name in facts.walrus_binds:
            self.bind(name, node=node)
        if type(node) is not ast.Lambda:  # (a generator expression draws later, when drawn from: this is sooner)
            self._draw(node.generators[0].iter, node)
        self._drawn_by(facts.drawn_free, facts.indexed_free, node)
        changed = self._comprehension_changes(node, facts)
        if changed:
            self.change(changed, [], node)
        if type(node) is not ast.Lambda:  # `[log.append for _ in xs]`
            self._bound_methods_given([node.key, node.value] if type(node) is ast.DictComp else [node.elt])

    def _comprehension_changes(self, node, facts) -> set[str]:
        """`[add_feat(d) for d in (train, test)]`, `{k: cap(d) for k, d in frames.items()}`,
        `[round(fit(m), 3) for m in ms]`, `[fit(ms[k]) for k in ms]` with a function of the notebook that
        changes its parameter: it changes the elements the comprehension gives it, or what it is given."""
        changed: set[str] = set()
        for call in self._changing_calls(node, facts.free):
            callee, args, keywords = callee_of(call, self.known, self.modules)
            given = {effects.root_name(expr) for expr, _ in changed_arguments(callee, args, keywords)} - {None}
            generators = getattr(node, "generators", ())  # (none in a lambda)
            for generator in generators:
                for part, exprs in effects.loop_sources(generator.target, generator.iter):
                    if {n.id for n in ast.walk(part) if type(n) is ast.Name} & given:
                        changed |= self.heap.owned_reach(effects.elements_of(self.heap, exprs, self.modules))
            bound = {n.id for g in generators for n in ast.walk(g.target) if type(n) is ast.Name}
            bound |= set(facts.params) if type(node) is ast.Lambda else set()
            for name in sorted(given - bound - self.modules):  # `fit(ms[k])`: ms is the comprehension's free name
                changed |= self.heap.owned_reach(self.heap.objects(name))
        return changed

    def _changing_calls(self, node, free) -> list[ast.Call]:
        """The calls in a comprehension or lambda of functions of the notebook that change an argument
        (walked only when such a function is among its free names, or its element is a call)."""
        if not any(n in self.known and self.known[n].mutated_params for n in free) and \
                type(getattr(node, "elt", None)) is not ast.Call:
            return []
        return [call for call in ast.walk(node) if type(call) is ast.Call
                and getattr(callee_of(call, self.known, self.modules)[0], "mutated_params", None)]

    def _passed_function_changes(self, node, callee) -> set[str]:
        """`ex.map(fit_one, models)`, `max(ms, key=lambda m: m.fit(X, y).score(X, y))`, `reduce(f, parts,
        base)`: a function the notebook does not define, given one of the notebook's (or a lambda) that
        changes its parameter, may call it on anything else it is given (`map` is exact: `_mapped_changes`)."""
        if callee is not None or (type(node.func) is ast.Name and node.func.id == "map"):
            return set()
        passed = [*node.args, *(k.value for k in node.keywords)]
        functions = [arg for arg in passed if self._changes_a_parameter(arg)]
        changed: set[str] = set()
        for arg in passed if functions else ():
            if arg not in functions and type(arg) is not ast.Starred:
                changed |= self.heap.owned_reach(effects.objects_of(self.heap, arg, self.modules))
        return changed

    def _changes_a_parameter(self, expr) -> bool:
        if type(expr) is ast.Lambda:
            facts = scope_facts(expr, self.modules)
            return bool(facts.mutated_params) or bool(self._changing_calls(expr, facts.free))
        return type(expr) is ast.Name and expr.id in self.known and bool(self.known[expr.id].mutated_params)

    visit_Lambda = visit_ListComp = visit_SetComp = visit_DictComp = visit_GeneratorExp = _scope_now


assert all(hasattr(_ModuleWalker, "visit_" + n.__name__) for n in SCOPE_NODES)


def _expanded_reads(call: ast.Call) -> set[str]:
    """The names IPython's expansion of a `!command` or a magic's line reads (`syntax.expanded_names`)."""
    func = call.func
    if not (type(func) is ast.Attribute and func.attr in EXPANDED_ARGUMENT and type(func.value) is ast.Call
            and type(func.value.func) is ast.Name and func.value.func.id == "get_ipython"):
        return set()
    index = EXPANDED_ARGUMENT[func.attr]
    argument = call.args[index] if len(call.args) > index else None
    if type(argument) is not ast.Constant or type(argument.value) is not str:
        return set()
    return expanded_names(argument.value)


def _walking_statement(method):
    """`method` (a walker's visitor of a statement type), noting the statement being walked."""
    def visit_statement(walker, node):
        outer, walker.statement = walker.statement, node
        try:
            return method(walker, node)
        finally:
            walker.statement = outer
    return visit_statement


# Statements shown whole in a site's code (compound ones show the expression that acted).
SIMPLE_STATEMENTS = (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Expr, ast.Delete, ast.Import,
                     ast.ImportFrom, ast.Return)


def _without_methods(node: ast.ClassDef) -> ast.ClassDef:
    """The class with its body's statements that run when it is defined, not its methods'."""
    body = [stmt for stmt in node.body if not isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef))]
    return ast.ClassDef(name=node.name, bases=[], keywords=[], body=body or [ast.Pass()], decorator_list=[])


def _class_attribute_names(node: ast.ClassDef) -> frozenset[str]:
    """The names a class's body binds (`registry = []`, `k: float = 2.0`): attributes of the class,
    which its instances share until one binds its own."""
    targets = [t for stmt in node.body if type(stmt) is ast.Assign for t in stmt.targets]
    targets += [stmt.target for stmt in node.body if type(stmt) is ast.AnnAssign and stmt.value is not None]
    return frozenset(n.id for target in targets for n in ast.walk(target) if type(n) is ast.Name)


def _base_names(node) -> list[str]:
    """The bases a class names (`class Sub(Clip)`): its instances run their methods."""
    return [base.id for base in getattr(node, "bases", ()) if type(base) is ast.Name]


def _decorator_names(node) -> list[str]:
    """The names of a definition's decorators that may be functions of the notebook: `@track`,
    `@track(...)`."""
    names = []
    for decorator in getattr(node, "decorator_list", ()):
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        if isinstance(target, ast.Name):
            names.append(target.id)
    return names


def _makes_functions(node) -> bool:
    """Whether a function's body defines a function or returns a lambda (not counting itself); a
    class's methods are no closures it returns."""
    if isinstance(node, ast.ClassDef):
        return False
    if isinstance(node, ast.Lambda):
        return isinstance(node.body, ast.Lambda)
    return any(isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef))
               or (type(stmt) is ast.Return and isinstance(stmt.value, ast.Lambda)) for stmt in _body_statements(node))


def _closures_keep_state(node) -> bool:
    """Whether the functions a function makes change state they close over, of their own: a
    `nonlocal` name, or a name its body binds that they change in place (`history.append(x)`,
    `memo[k] = v`); not its parameters (what it was given is the caller's, changed as such)."""
    if not _makes_functions(node) or isinstance(node, ast.Lambda):
        return False
    params = {a.arg for a in (*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs)}
    own = {target.id for stmt in _body_statements(node) if type(stmt) in (ast.Assign, ast.AnnAssign)
           for target in (stmt.targets if type(stmt) is ast.Assign else [stmt.target]) if type(target) is ast.Name}
    own -= params
    for inner in _body_statements(node):
        if not isinstance(inner, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Return)):
            continue
        for sub in ast.walk(inner):
            if type(sub) is ast.Nonlocal:
                return True
            func = sub.func if type(sub) is ast.Call else None
            if type(func) is ast.Attribute and func.attr in effects.CONTAINER_METHODS \
                    and effects.root_name(func.value) in own:
                return True
            if type(sub) in (ast.Assign, ast.AugAssign) and any(
                    type(t) in (ast.Subscript, ast.Attribute) and effects.root_name(t) in own
                    for t in (sub.targets if type(sub) is ast.Assign else [sub.target])):
                return True
    return False


def _returned_params(node, params: list[str]) -> tuple[list[int], list[tuple[int, int]], list[int]]:
    """What a function may return of its parameters, not counting the returns of functions defined
    in it: the positions of those it may return as they are (`return x`), (position, depth) of
    those a part of which it may return (`return cfg[k]`, `return p.steps[-1][1]`: depth 3), and
    the positions of those a container it returns may hold (`return {"w": w}`, `return a, b`)."""
    if isinstance(node, ast.Lambda):
        values = [node.body]
    else:
        values = [stmt.value for stmt in _body_statements(node) if type(stmt) is ast.Return and stmt.value is not None]
    returned, parts, holding = set(), set(), set()
    for value in values:
        _returned_value(value, params, returned, parts, holding)
    return sorted(returned), sorted(parts), sorted(holding)


def _returned_value(value, params, returned, parts, holding, held=False):
    """Note in `returned`, `parts` and `holding` what returning `value` returns of `params` (`held`:
    `value` is an element of a container the function returns)."""
    kind, depth = type(value), 0
    while kind is ast.Attribute or kind is ast.Subscript:
        value, depth = value.value, depth + 1
        kind = type(value)
    if kind is ast.Name:
        if value.id in params:
            position = params.index(value.id)
            if held:
                holding.add(position)
            elif depth:
                parts.add((position, depth))
            else:
                returned.add(position)
    elif depth:
        return  # (a part of something else: `return f(p)[0]`)
    elif kind is ast.IfExp:
        for part in (value.body, value.orelse):
            _returned_value(part, params, returned, parts, holding, held)
    elif kind is ast.Call and value.args and effects.callee_name(value) in effects.ELEMENT_FUNCTIONS \
            and type(value.func) is ast.Name:  # `return max(ms, key=…)`: an element, as `return ms[0]`
        _returned_value(ast.Subscript(value.args[0], ast.Constant(0)), params, returned, parts, holding, held)
    elif kind in (ast.Tuple, ast.List, ast.Set, ast.Dict):
        for part in (value.values if kind is ast.Dict else value.elts):
            _returned_value(part.value if type(part) is ast.Starred else part, params, returned, parts, holding, True)


_FUNCTION_NODES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)


def _yielded_params(node, params: list[str]) -> list[int]:
    """The positions of the parameters a generator function may yield, or yield a part or a
    container of."""
    if isinstance(node, ast.Lambda):
        return []
    returned, parts, holding = set(), set(), set()
    for stmt in _body_statements(node):
        value = getattr(stmt, "value", None)
        if type(value) in (ast.Yield, ast.YieldFrom) and value.value is not None:
            _returned_value(value.value, params, returned, parts, holding)
    return sorted(returned | holding | {position for position, _ in parts})


def _body_statements(node):
    """The statements of a definition's body, through `if`, loops, `try` and `with` blocks, not
    into nested definitions (statements only: no expression is walked)."""
    stack = list(getattr(node, "body", ()))
    while stack:
        stmt = stack.pop()
        yield stmt
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        for block in ("body", "orelse", "finalbody", "handlers", "cases"):
            stack.extend(getattr(stmt, block, ()))
