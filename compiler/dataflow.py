"""Steps' inputs, outputs and edges from the names they read, bind and mutate.

A step's input X comes from the nearest earlier step, in notebook order, that binds X or may
have changed it (changed an object X may be or hold, on the heap shared by all steps); that is
what running the notebook top to bottom would have in X. Why each edge exists is kept in
`Flow.reasons` for `nbscale graph --why`.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from . import graph
from .analysis import KERNEL_NAMES, Facts, Site, Use, analyse_cells
from .diagnostics import Diagnostic
from .file_edges import FileOrder, file_order
from .heap import Heap
from .ir import Prelude, Step
from .layout import Layout
from .module_files import imported_files
from .notebook import cell_label
from .parsing import ParsedCell, ParsedCells
from .path_constants import path_constants, scanned_steps
from .prelude_reads import prelude_reads
from .python_check import RefusalCheck

if TYPE_CHECKING:
    from .settings import SettingsWalk

DYNAMIC_MESSAGES = {
    "*": "a star import binds names the analysis cannot see",
    "exec": "exec() reads and binds names the analysis cannot see",
    "eval": "eval() reads names the analysis cannot see",
    "globals": "globals() gives access to names the analysis cannot see",
    "locals": "locals() gives access to names the analysis cannot see",
    "vars": "vars() gives access to names the analysis cannot see",
    "__import__": "__import__() binds a module the analysis cannot see",
}
# The dynamic code that may bind names of the namespace it runs in (`exec('z = 5')`, `eval('(z := 5)')`,
# `globals()["z"] = 5`), as a message names it; `__import__()` returns its module, and binds no name.
BINDING_DYNAMIC = {"*": "star import", "exec": "exec()", "eval": "eval()", "globals": "globals()",
                   "locals": "locals()", "vars": "vars()"}


@dataclass
class Flow:
    prelude: Prelude
    steps: list[Step]
    diagnostics: list[Diagnostic] = field(default_factory=list)
    builder: _Builder | None = field(default=None, repr=False)

    def reasons(self) -> dict[tuple[str, str], list[Reason]]:
        """(upstream, downstream) → why the downstream step takes each name from the upstream one."""
        return self.builder.reasons() if self.builder else {}


@dataclass(frozen=True)
class Reason:
    """`step` reads (or changes) `name` and takes it from `producer`, which binds it or may
    change it at `site`, or only hands it on with `partners` (names sharing objects with it that
    `step` may change), so that they arrive as one object."""

    name: str
    producer: str
    step: str
    uses: str  # "reads", "changes" or "hands on" (for a later step that changes what it shares)
    how: str  # "binds", "may change" or "hands on"
    site: Site | None = None
    partners: tuple[str, ...] = ()


def build_flow(layout: Layout, parameter_names: set[str], cells: ParsedCells | None = None,
               immutable: set[str] = frozenset(), also: SettingsWalk | None = None,
               defaults: dict[str, object] | None = None) -> Flow:
    """`cells`: the notebook's cells parsed once for the whole compile (parsed here when not given);
    `immutable`: parameters whose values cannot change in place (numbers, strings, booleans);
    `also`: the settings pass, handed the prelude and each step as soon as this analysis has walked
    them. Then each cell's tree is let go (`ParsedCell.release`): a compile holds one step's trees
    at a time, not the whole notebook's. `defaults`: the parameters' default values (a text one may
    name a file the steps write and read: `path_constants`)."""
    cells = cells if cells is not None else ParsedCells(layout.sources)
    check = RefusalCheck(layout.sources, [*layout.prelude, *(i for step in layout.steps for i in step.cells)])
    try:
        builder, prelude_names = _walk(layout, parameter_names, cells, immutable, also, defaults, check)
    finally:
        check.close()
    builder.finish()
    prelude = Prelude(cells=list(layout.prelude), source=[layout.sources[i] for i in layout.prelude],
                      names=sorted(prelude_names))
    return Flow(prelude, builder.steps, builder.diagnostics, builder)


def _walk(layout, parameter_names, cells, immutable, also, defaults, check: RefusalCheck):
    """The analysis of the prelude and then of each step, in notebook order: (the builder, the
    names the prelude binds)."""
    prelude = cells.cells(layout.prelude)
    constants = path_constants([stmt for cell in prelude if cell.tree is not None for stmt in cell.tree.body],
                               defaults or {})  # (from the trees, before they go; a big cell's: none)
    reads = prelude_reads(prelude, constants)
    prelude_facts = analyse_cells(prelude)
    prelude_names = set(prelude_facts.binds)
    if also is not None:
        also.prelude(prelude, prelude_names, prelude_facts.callables, *_prelude_objects(prelude_facts, prelude_names))
    refused = check.of(prelude)  # (from the trees, before they go)
    _released(prelude)
    builder = _Builder(layout, parameter_names, prelude_names, cells, constants)
    builder.prelude_reads = reads
    for name in immutable:  # `Model(random_state=seed)` twice: fitting one model changes no other
        builder.heap.declare_immutable(name)
    builder.check_prelude(prelude_facts)
    builder.note_refused(refused)
    _prelude_functions(builder.heap, prelude_facts)
    known = dict(prelude_facts.callables)
    origins = dict(prelude_facts.origins)
    for step_layout in layout.steps:
        builder.heap.epoch = len(builder.steps)
        step_cells = cells.cells(step_layout.cells)
        facts = analyse_cells(step_cells, known, builder.heap, builder.modules | prelude_facts.imported, origins)
        origins.update(facts.origins)
        if also is not None:
            also.step(step_layout.name, step_cells, facts.callables)
        refused = check.of(step_cells)
        _released(step_cells)
        known.update(facts.callables)
        builder.add_step(step_layout, facts)
        builder.note_refused(refused)
    return builder, prelude_names


def _prelude_functions(heap: Heap, facts: Facts) -> None:
    """The prelude's functions (not its classes), known on the steps' heap: an object a step makes
    holding one (`FunctionTransformer(clip_fn)`) calls it when it is called or its method is
    (`heap.functions`)."""
    for name, callee in facts.callables.items():
        if name[0] != "." and facts.heap.objects(name).isdisjoint(facts.heap.classes):
            heap.functions.update(dict.fromkeys(heap.objects(name), callee))


def _prelude_objects(facts, names) -> tuple[set[str], set[str]]:
    """The prelude's names whose call changes an object (`app = RESULTS.append`, a partial, a
    closure), and those that may be instances of a class of the notebook (`timer = Timer()`)."""
    heap = facts.heap
    calling = {n for n in names if heap.changed_by_calling(heap.objects(n))}
    made = names - set(facts.callables) - facts.imported  # (a class or an import is no instance)
    return calling, {n for n in made if heap.may_be_instances(heap.objects(n))}


class _Builder:
    def __init__(self, layout: Layout, parameters: set[str], prelude_names: set[str], cells: ParsedCells,
                 path_constants: dict[str, str]):
        self.layout = layout
        self.cells = cells
        self.parameters = parameters
        self.path_constants = path_constants  # name → the file name it holds (`path_constants`)
        self.prelude_names = prelude_names
        self.steps: list[Step] = []
        self.facts: dict[str, Facts] = {}
        self.producer: dict[str, str] = {}  # name → step holding its current value
        self.handing_on: tuple[Step, set[str]] | None = None  # the last step added, its deletes (`_hand_on`)
        self.heap = Heap()
        self.heap.history = {}  # what names were after each step (`_outputs`)
        self.position: dict[str, int] = {}  # step → its place in notebook order
        self.received: dict[str, dict[str, frozenset]] = {}  # step → input name → its objects
        # step → the names it must get from one producer, with the changed objects that tie them (`_gather`)
        self.together: dict[str, list[tuple[set[str], set]]] = {}
        self.carried: set[tuple[str, str]] = set()  # (step, name) it only hands on for a group
        # step → (names, objects) of each gathering that went up from it (`_gathered_before`)
        self.gathered: dict[str, list[tuple[set[str], set]]] = {}
        # (step, name) → the step holding the name's value before it, for a name the step binds on
        # some paths only (`if flag: x = 2`): taken from it when a later step takes the name
        self.fallback: dict[tuple[str, str], str] = {}
        self.passed: set[tuple[str, str]] = set()  # (step, name) it receives for `fallback`
        self.files: FileOrder = FileOrder({}, {})  # step → earlier step → files (`_file_edges`)
        self.prelude_reads: list[tuple] = []  # (cell, line, file, module) the prelude reads as it runs
        self.prelude_dynamic: Use | None = None  # where the prelude may bind names unseen (`BINDING_DYNAMIC`)
        self.modules: set[str] = set()  # names currently bound to imported modules by a step
        self.diagnostics: list[Diagnostic] = []
        self.skipped_binds = self._skipped_binds()

    def _skipped_binds(self):
        found = {}
        for index in self.layout.skipped:
            cell = self.cells[index]
            for name in analyse_cells([cell]).binds:
                found.setdefault(name, index)
            cell.release()
        return found

    def check_prelude(self, facts: Facts):
        self._report_code_problems(facts)
        self.prelude_dynamic = _binding_dynamic(facts)
        for name, use in facts.reads.items():
            if name in KERNEL_NAMES or use.optional:
                continue
            if self.prelude_dynamic is not None:
                self._maybe_bound_dynamically(name, use, self.prelude_dynamic)
                continue
            hint = ("imports and functions cells run before the parameters; pass it as an argument"
                    if name in self.parameters else None)
            self._undefined(name, use, hint)

    def note_refused(self, refused: list[Diagnostic]) -> None:
        """What Python's compiler refuses (`python_check`), but in a cell whose syntax error the
        analysis reported already."""
        reported = {d.cell for d in self.diagnostics if d.code == "syntax-error"}
        self.diagnostics += [d for d in refused if d.cell not in reported]

    def add_step(self, layout_step, facts: Facts):
        self._hand_on()
        self.facts[layout_step.name] = facts
        self._report_code_problems(facts)
        step = Step(name=layout_step.name, cells=list(layout_step.cells),
                    source=[self.layout.sources[i] for i in layout_step.cells])
        self._options(step, layout_step.options)
        if not any(self.layout.sources[i].strip() for i in step.cells):
            self.diagnostics.append(Diagnostic("empty-step", f"step '{step.name}' has no code",
                                               cell=step.cells[0] if step.cells else None))
        for name in facts.maybe_binds:
            if name in self.producer:
                self.fallback[(step.name, name)] = self.producer[name]
        self._resolve_reads(step, facts)
        mutated = set(facts.mutates) | self.heap.names_reaching(facts.changed)
        mutated -= facts.imported | self.prelude_names | self.modules
        for name in sorted(mutated - facts.binds - set(facts.reads)):
            if name in self.producer:  # shares objects with what it mutates: hand it on too
                step.sources[name] = self.producer[name]
        self._unify_groups(step, facts)
        also = mutated - facts.binds - facts.deletes
        also &= set(step.sources)  # (no copies of `binds`: a big cell binds tens of thousands of names)
        step.defines = sorted(n for n in facts.binds if n not in facts.deletes)
        if also:
            step.defines = sorted(step.defines + list(also))
        self.handing_on = (step, facts.deletes)
        self.modules = (self.modules - facts.binds) | facts.imported
        self.position[step.name] = len(self.steps)
        self.steps.append(step)

    def _hand_on(self):
        """The step added last now holds the current value of the names it defines, for the steps
        after it: done when the next one is added, so that the last step, with no step to hand its
        names to, adds none to `producer` (2 MB for a notebook of one cell binding 60,000 names)."""
        if self.handing_on is None:
            return
        step, deletes = self.handing_on
        for name in step.defines:
            self.producer[name] = step.name
        for name in deletes:
            self.producer.pop(name, None)
        self.handing_on = None

    def _resolve_reads(self, step, facts):
        for name, use in facts.reads.items():
            if name in self.producer:
                step.sources[name] = self.producer[name]
                if self.heap.generators and facts.read_objects.get(name, frozenset()) & self.heap.generators:
                    self._generator_handed_on(name, use)
            elif name in self.parameters:
                step.parameters.append(name)
            elif name in self.prelude_names or name in KERNEL_NAMES or use.optional:
                continue
            elif (dynamic := _binding_dynamic(facts) or self.prelude_dynamic) is not None:
                self._maybe_bound_dynamically(name, use, dynamic)  # (the prelude runs before every step)
            else:
                self._undefined(name, use, self._undefined_hint(name, use))
        step.parameters.sort()

    def _unify_groups(self, step, facts):
        """A step that may mutate shared objects gets every name sharing them from one producer.

        Copies are made per producer, so names from one producer keep their shared identity. The
        latest producer of the group hands on the other names too: it either received them
        unchanged, or it now receives them from their producer (which precedes it). Names are
        judged by the objects they had when the step received them.
        """
        received = self.received.setdefault(step.name, {})
        for name in step.sources:
            received.setdefault(name, facts.read_objects.get(name) or self.heap.objects(name))
        if not facts.changed:
            return  # nothing changed in place: no group to keep together
        # names reaching one changed object must arrive in one copy, so it stays one object
        reaching = self.heap.reaching(facts.changed)  # (most names reach none: no closure for them)
        touched = {n: self.heap.reach(received[n]) & facts.changed for n in sorted(step.sources)
                   if not reaching.isdisjoint(received[n])}
        groups: list[tuple[list[str], set[str]]] = []
        for name, objects in touched.items():
            if not objects:
                continue
            joined = [g for g in groups if not g[1].isdisjoint(objects)]
            names, shared = [name], set(objects)
            for g in joined:
                groups.remove(g)
                names, shared = g[0] + names, g[1] | shared
            groups.append((names, shared))
        for names, shared in groups:
            self._gather(step, sorted(names), shared)

    def _gather(self, step, names, shared):
        """`names` reach the objects `shared` that a step changes: `step` gets them from one
        producer, and so on upwards, so that they are the same objects all the way."""
        reaching = reached = None
        while names:
            names, shared = self._tied(step.name, names, shared)
            if self._gathered_before(step.name, names, shared):
                return  # (from here up, they come from one producer already: a chain of n steps costs n, not n²)
            producers = {step.sources[n] for n in names}
            latest = self.steps[max(self.position[p] for p in producers)]
            received = self.received[step.name]
            held = self.received.setdefault(latest.name, {})
            for name in names:
                source = step.sources[name]
                if source != latest.name and name not in latest.defines:
                    latest.sources.setdefault(name, source)
                    held.setdefault(name, received[name])
                    step.sources[name] = latest.name
                    self.carried.add((latest.name, name))
            if shared != reached:  # (once per gathering, unless a tie adds objects: a chain of
                reaching, reached = self.heap.reaching(shared), shared  # n steps cost n closures)
            # the producer must have received them as one copy too, even when it changes nothing
            step, names = latest, sorted(n for n in latest.sources if not reaching.isdisjoint(held[n]))

    def _gathered_before(self, step_name, names, shared) -> bool:
        """Whether an earlier gathering at this step covered `names` and the objects `shared`, and
        went up from it: what it made one chain still is one (a later gathering through this step
        moves whole tied groups, `_tied`). Notes this gathering otherwise."""
        done = self.gathered.setdefault(step_name, [])
        if any(set(names) <= earlier_names and shared <= earlier_shared for earlier_names, earlier_shared in done):
            return True
        done.append((set(names), set(shared)))
        return False

    def _tied(self, step_name, names, shared) -> tuple[list[str], set]:
        """`names` with the names an earlier gathering in the step tied to any of them (they stay
        together, with the objects that tied them, when a later step moves one to another producer)."""
        together = self.together.setdefault(step_name, [])
        tied, objects = set(names), set(shared)
        for group in [g for g in together if not g[0].isdisjoint(tied)]:
            together.remove(group)
            tied |= group[0]
            objects |= group[1]
        together.append((tied, objects))
        return sorted(tied), objects

    def reasons(self) -> dict[tuple[str, str], list[Reason]]:
        found: dict[tuple[str, str], list[Reason]] = {}
        for step in self.steps:
            reads = self.facts[step.name].reads
            for name, producer in sorted(step.sources.items()):
                handing_on = (step.name, name) in self.carried or (step.name, name) in self.passed
                uses = "reads" if name in reads else "hands on" if handing_on else "changes"
                reason = self._reason(step, name, producer, uses)
                found.setdefault((producer, step.name), []).append(reason)
        return found

    def _reason(self, step, name, producer, uses):
        facts = self.facts[producer]
        if (producer, name) in self.carried:
            partners = tuple(sorted(n for n, p in step.sources.items() if p == producer and n != name
                                    and (producer, n) not in self.carried))
            return Reason(name, producer, step.name, uses, "hands on", None, partners)
        if name in facts.binds:
            return Reason(name, producer, step.name, uses, "binds", facts.bind_sites.get(name))
        held = self.heap.reach(self.received.get(producer, {}).get(name) or self.heap.objects(name))
        site = next((where for objects, where in facts.change_sites if not held.isdisjoint(objects)), None)
        if site is None and name in facts.mutates:
            use = facts.mutates[name]
            site = Site(use.cell, use.line)
        return Reason(name, producer, step.name, uses, "may change", site)

    def _undefined_hint(self, name, use):
        if name in self.skipped_binds:
            return f"it is bound only in {cell_label(self.skipped_binds[name])}, which is tagged skip"
        earlier = next(((step, dynamic) for step, facts in self.facts.items()
                        if (dynamic := _binding_dynamic(facts)) is not None), None)
        if earlier is not None:
            step, dynamic = earlier
            return (f"the {BINDING_DYNAMIC[dynamic.name]} of step '{step}' ({cell_label(dynamic.cell, dynamic.line)}) "
                    "may bind it, but a name bound so does not travel to other steps: bind it explicitly, "
                    "or use it in that step")
        known = set(self.producer) | self.parameters | self.prelude_names
        close = difflib.get_close_matches(name, sorted(known), n=1)
        return f"did you mean '{close[0]}'?" if close else None

    def _generator_handed_on(self, name, use):
        self.diagnostics.append(Diagnostic(
            "generator-handed-on", f"'{name}' may be a generator made in step '{self.producer[name]}': a "
            "generator cannot be copied or pickled, so no step can hand it on to another: the run would fail",
            cell=use.cell, line=use.line, col=use.col,
            hint=f"make it a list in step '{self.producer[name]}' (list(...)), or draw from it in that step"))

    def _undefined(self, name, use, hint):
        self.diagnostics.append(Diagnostic(
            "undefined-name", f"name '{name}' is not defined before it is used",
            cell=use.cell, line=use.line, col=use.col, hint=hint))

    def _maybe_bound_dynamically(self, name, use, dynamic: Use):
        """`name` is bound by no code the analysis sees, and `dynamic`, which runs before the step
        (in it, or in the prelude), may bind it: a warning, not an error (`from math import *`, then
        `sqrt(4)`)."""
        what = BINDING_DYNAMIC[dynamic.name]
        self.diagnostics.append(Diagnostic(
            "dynamic-code", f"name '{name}' is bound by no code the analysis can see: the {what} in "
            f"{cell_label(dynamic.cell, dynamic.line)} may bind it; if it does not, the code fails here as it runs",
            cell=use.cell, line=use.line, col=use.col,
            hint=f"import it by name (`from module import {name}`) so that it can be checked" if dynamic.name == "*"
            else f"bind it in code the analysis can see (`{name} = ...`) so that it can be checked"))

    def _report_code_problems(self, facts: Facts):
        for cell, line, col, msg in facts.syntax_errors:
            self.diagnostics.append(Diagnostic("syntax-error", f"syntax error: {msg}",
                                               cell=cell, line=line, col=col))
        for use in facts.dynamic:
            self.diagnostics.append(Diagnostic(
                "dynamic-code", DYNAMIC_MESSAGES.get(use.name, "dynamic code"),
                cell=use.cell, line=use.line, col=use.col,
                hint="pass the names it needs explicitly, or keep it inside one step"))

    @staticmethod
    def _options(step, options):
        step.resources = dict(options.get("resources", {}))
        step.image = options.get("image")
        step.retries = options.get("retries", 0)
        step.cache = options.get("cache", True)
        step.timeout = options.get("timeout")

    # --- after all steps -------------------------------------------------------------------
    def finish(self):
        self._pass_through()
        for step in self.steps:
            step.sources = dict(sorted(step.sources.items()))
            step.inputs = list(step.sources)
            step.after = _unique([step.sources[n] for n in step.inputs])
        self._after_tags()
        self._file_edges()
        self._prelude_reads_written()
        upstream = {s.name: s.after for s in self.steps}
        cycle = graph.find_cycle([s.name for s in self.steps], upstream)
        if cycle:
            self._cycle(cycle)
        else:
            self._ambiguities(upstream)
        self._outputs()
        self._late_binding_hints()

    def _pass_through(self):
        """A step that binds a name on some paths only, when a later step takes the name from it,
        receives the value before it and hands that on when its binding does not run (as top to
        bottom, the name keeps its value). Latest steps first: what one now takes, an earlier
        one may have to pass through in turn."""
        if not self.fallback:
            return
        by_name = {s.name: s for s in self.steps}
        for step in reversed(self.steps):
            for name, producer in list(step.sources.items()):
                earlier = self.fallback.get((producer, name))
                source = by_name[producer].sources
                if earlier is not None and name not in source:
                    source[name] = earlier
                    self.passed.add((producer, name))
                    self.received.setdefault(producer, {}).setdefault(name, self.heap.objects(name))

    def _after_tags(self):
        names = [s.name for s in self.steps]
        order = {n: i for i, n in enumerate(names)}
        for step, layout_step in zip(self.steps, self.layout.steps):
            for target in layout_step.after:
                if target in order:
                    step.after = _unique(step.after + [target])
                    continue
                close = difflib.get_close_matches(target, names, n=1)
                self.diagnostics.append(Diagnostic(
                    "after-missing-step", f"step '{step.name}' is after '{target}', which is no step",
                    cell=layout_step.after_cells[target],
                    hint=f"did you mean '{close[0]}'?" if close else f"steps: {', '.join(names)}"))
            step.after.sort(key=order.get)

    def _file_edges(self):
        """A later step whose cells name a file an earlier one writes comes after it, one that writes
        a file anew after the earlier ones that read the version it replaces (`file_order`)."""
        order = {s.name: i for i, s in enumerate(self.steps)}
        self.files = file_order(scanned_steps(self.path_constants, self.steps, self.prelude_names | self.parameters),
                                imported_files)
        for step in self.steps:
            earlier = [*self.files.handed_on.get(step.name, ()), *self.files.replaces.get(step.name, ())]
            if earlier:
                step.after = sorted(_unique(step.after + earlier), key=order.get)

    def _prelude_reads_written(self):
        """A file the imports or functions cells read as they run, which a step writes: top to bottom
        they read it once, before the steps (`prelude_reads`)."""
        for cell, line, path, module in self.prelude_reads:
            writers = self.files.written.get(path)
            if writers:
                where = f"by {module}, which this cell imports" if module else "here"
                self.diagnostics.append(Diagnostic(
                    "prelude-reads-step-file",
                    f"{path} is read {where}, and the imports and functions cells run again before every step: "
                    f"the steps after '{writers[0]}', which writes it, read what it wrote, where a run top to "
                    "bottom reads the file once, before any step", cell=cell, line=line,
                    hint="read the file in the steps that use it (or hand its content on from the step that "
                         "writes it)"))

    def _cycle(self, cycle):
        first = next(s for s in self.layout.steps if s.name == cycle[0])
        cell = next((c for t, c in first.after_cells.items() if t in cycle), first.cells[0] if first.cells else None)
        self.diagnostics.append(Diagnostic(
            "cycle", "steps depend on each other in a cycle: " + " -> ".join(cycle),
            cell=cell, hint="remove one of the after: tags in the cycle"))

    def _ambiguities(self, upstream):
        # Information only: notebook order settles which step hands the name on, and the value
        # travels from that step explicitly, whichever of the two runs first.
        reported = set()
        ancestors = _Ancestors([s.name for s in self.steps], upstream)
        position = self.position
        binders = self._binders({name for step in self.steps for name in step.sources})
        for step in self.steps:
            for name, producer in step.sources.items():
                for other in binders.get(name, ()):
                    if other in (producer, step.name) or (name, other, producer) in reported:
                        continue
                    if position[other] < position[step.name] and ancestors.parallel(other, producer):
                        reported.add((name, other, producer))
                        self._ambiguous(step, name, producer, other)

    def _first_bind_cell(self, name) -> int | None:
        """The first cell of a step that binds `name`, in notebook order."""
        for step in self.steps:
            site = self.facts[step.name].bind_sites.get(name)
            if site is not None:
                return site.cell
        return None

    def _binders(self, names) -> dict[str, list[str]]:
        """Name (of `names`) → the steps binding it, in notebook order. Found when needed, for the
        names steps receive: kept for every name bound, it took megabytes for a big cell."""
        found: dict[str, list[str]] = {}
        for step in self.steps:
            for name in names.intersection(self.facts[step.name].binds):
                found.setdefault(name, []).append(step.name)
        return found

    def _ambiguous(self, step, name, producer, other):
        use = self.facts[step.name].reads.get(name)
        self.diagnostics.append(Diagnostic(
            "ambiguous-name",
            f"'{name}' is bound by '{other}' and '{producer}', which may run in parallel; "
            f"'{step.name}' takes it from '{producer}', the later in the notebook, as a run from top "
            "to bottom does",
            cell=use.cell if use else step.cells[0], line=use.line if use else None,
            col=use.col if use else None,
            hint=f"nothing to do if '{step.name}' means the value of '{producer}'; else rename one of them"))

    def _outputs(self):
        by_name = {s.name: s for s in self.steps}
        for step in self.steps:
            for name, producer in step.sources.items():
                if name not in by_name[producer].outputs:
                    by_name[producer].outputs.append(name)
        self.heap.epoch = len(self.steps)  # what follows is no step's doing
        for step in self.steps:
            step.outputs.sort()
            after = {n: self.heap.points_at(n, self.position[step.name]) for n in step.outputs}
            step.groups = _groups(step.outputs, after, self.heap)

    def _late_binding_hints(self):
        # "not defined" is clearer with where the name *is* bound, when that comes later
        first_cell = {}
        for i, diag in enumerate(self.diagnostics):
            if diag.code != "undefined-name" or diag.hint:
                continue
            name = diag.message.split("'")[1]
            if name not in first_cell:
                first_cell[name] = self._first_bind_cell(name)
            cell = first_cell[name]
            deleted = self._deleted_before(name, diag.cell)
            if deleted is not None:
                hint = f"'{name}' is deleted in {cell_label(deleted.cell, deleted.line)}"
            elif cell is not None and cell > diag.cell:
                hint = f"'{name}' is first bound in {cell_label(cell)}, which runs later"
            else:
                continue
            self.diagnostics[i] = Diagnostic(diag.code, diag.message, diag.cell, diag.line, diag.col, hint=hint)

    def _deleted_before(self, name, cell):
        """Where the last step before `cell` that deletes `name` does so, or None."""
        found = None
        for step in self.steps:
            use = self.facts[step.name].delete_sites.get(name)
            if use is not None and use.cell < cell:
                found = use
        return found


def _groups(outputs, points, heap):
    """Outputs that may share an object (at any depth): serialised together, they stay shared."""
    reach = {n: heap.reach(points.get(n) or heap.objects(n)) for n in outputs}
    groups: list[tuple[list[str], set[str]]] = []
    for name in outputs:
        joined = [g for g in groups if not g[1].isdisjoint(reach[name])]
        names, objects = [name], set(reach[name])
        for g in joined:
            groups.remove(g)
            names, objects = g[0] + names, g[1] | objects
        groups.append((names, objects))
    return sorted(sorted(names) for names, _ in groups if len(names) > 1)


class _Ancestors:
    """Every step's ancestors as a bit set (bit i: the i-th step in notebook order), in one pass in
    topological order: a step's are its upstream steps and their ancestors. Sets of names per
    step would be quadratic in time and memory; these are a few machine words per step."""

    def __init__(self, names: list[str], upstream: dict[str, list[str]]):
        self.bit = {name: 1 << i for i, name in enumerate(names)}
        self.bits: dict[str, int] = {}
        for name in graph.topological_order(names, upstream):  # (no cycle: checked before)
            found = 0
            for up in upstream.get(name, ()):
                found |= self.bit.get(up, 0) | self.bits.get(up, 0)  # (every `up` is a step)
            self.bits[name] = found

    def parallel(self, a: str, b: str) -> bool:
        """Neither step is an ancestor of the other."""
        return not self.bits[b] & self.bit[a] and not self.bits[a] & self.bit[b]


def _binding_dynamic(facts: Facts) -> Use | None:
    """The first code among `facts` that may bind names unseen (`BINDING_DYNAMIC`), or None."""
    return next((use for use in facts.dynamic if use.name in BINDING_DYNAMIC), None)


def _unique(items):
    return list(dict.fromkeys(items))


def _released(cells: list[ParsedCell]) -> None:
    """Let the trees of `cells` go, every pass over them done (`ParsedCell.release`)."""
    for cell in cells:
        cell.release()
