"""Steps' inputs, outputs and edges from the names they read, bind and mutate.

A step's input X comes from the nearest earlier step, in notebook order, that binds X or may
have mutated it; that is what running the notebook top to bottom would have in X.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from . import graph
from .analysis import KERNEL_NAMES, Facts, analyse_cells
from .diagnostics import Diagnostic
from .effects import AliasGroups
from .ir import Prelude, Step
from .layout import Layout

DYNAMIC_MESSAGES = {
    "*": "a star import binds names the analysis cannot see",
    "exec": "exec() reads and binds names the analysis cannot see",
    "eval": "eval() reads names the analysis cannot see",
    "globals": "globals() gives access to names the analysis cannot see",
    "locals": "locals() gives access to names the analysis cannot see",
    "vars": "vars() gives access to names the analysis cannot see",
    "__import__": "__import__() binds a module the analysis cannot see",
}


@dataclass
class Flow:
    prelude: Prelude
    steps: list[Step]
    diagnostics: list[Diagnostic] = field(default_factory=list)


def build_flow(layout: Layout, parameter_names: set[str]) -> Flow:
    prelude_facts = analyse_cells([(i, layout.sources[i]) for i in layout.prelude])
    prelude_names = set(prelude_facts.binds)
    builder = _Builder(layout, parameter_names, prelude_names)
    builder.check_prelude(prelude_facts)
    known = dict(prelude_facts.callables)
    for step_layout in layout.steps:
        facts = analyse_cells([(i, layout.sources[i]) for i in step_layout.cells], known,
                              builder.aliases, builder.modules | prelude_facts.imported)
        known.update(facts.callables)
        builder.add_step(step_layout, facts)
    builder.finish()
    prelude = Prelude(cells=list(layout.prelude), source=[layout.sources[i] for i in layout.prelude],
                      names=sorted(prelude_names))
    return Flow(prelude, builder.steps, builder.diagnostics)


class _Builder:
    def __init__(self, layout: Layout, parameters: set[str], prelude_names: set[str]):
        self.layout = layout
        self.parameters = parameters
        self.prelude_names = prelude_names
        self.steps: list[Step] = []
        self.facts: dict[str, Facts] = {}
        self.producer: dict[str, str] = {}  # name → step holding its current value
        self.binders: dict[str, list[str]] = {}  # name → steps binding it, in notebook order
        self.aliases = AliasGroups()
        self.received_nodes: dict[str, dict[str, str]] = {}  # step → input name → alias version
        self.modules: set[str] = set()  # names currently bound to imported modules by a step
        self.diagnostics: list[Diagnostic] = []
        self.first_bind_cell: dict[str, int] = {}
        self.skipped_binds = self._skipped_binds()

    def _skipped_binds(self):
        found = {}
        for index in self.layout.skipped:
            for name in analyse_cells([(index, self.layout.sources[index])]).binds:
                found.setdefault(name, index)
        return found

    def check_prelude(self, facts: Facts):
        self._report_code_problems(facts)
        for name, use in facts.reads.items():
            if name in KERNEL_NAMES or use.optional:
                continue
            hint = ("imports and functions cells run before the parameters; pass it as an argument"
                    if name in self.parameters else None)
            self._undefined(name, use, hint)

    def add_step(self, layout_step, facts: Facts):
        self.facts[layout_step.name] = facts
        self._report_code_problems(facts)
        for name, cell in facts.bind_cells.items():
            self.first_bind_cell.setdefault(name, cell)
        step = Step(name=layout_step.name, cells=list(layout_step.cells),
                    source=[self.layout.sources[i] for i in layout_step.cells])
        self._options(step, layout_step.options)
        if not any(self.layout.sources[i].strip() for i in step.cells):
            self.diagnostics.append(Diagnostic("empty-step", f"step '{step.name}' has no code",
                                               cell=step.cells[0] if step.cells else None))
        self._resolve_reads(step, facts)
        mutated = set(facts.mutates) | self.aliases.expand_nodes(facts.mutated_nodes)
        mutated -= facts.imported | self.prelude_names | self.modules
        for name in sorted(mutated - facts.binds - set(facts.reads)):
            if name in self.producer:  # shares objects with what it mutates: hand it on too
                step.sources[name] = self.producer[name]
        self._unify_groups(step, facts)
        existing = facts.binds | (mutated & (set(step.sources) | facts.binds))
        step.defines = sorted(existing - facts.deletes)
        for name in step.defines:
            self.producer[name] = step.name
        for name in facts.binds:
            self.binders.setdefault(name, []).append(step.name)
        for name in facts.deletes:
            self.producer.pop(name, None)
        self.modules = (self.modules - facts.binds) | facts.imported
        self.steps.append(step)

    def _resolve_reads(self, step, facts):
        for name, use in facts.reads.items():
            if name in self.producer:
                step.sources[name] = self.producer[name]
            elif name in self.parameters:
                step.parameters.append(name)
            elif name in self.prelude_names or name in KERNEL_NAMES or use.optional:
                continue
            else:
                self._undefined(name, use, self._undefined_hint(name, use))
        step.parameters.sort()

    def _unify_groups(self, step, facts):
        """A step that may mutate shared objects gets every name sharing them from one producer.

        Copies are made per producer, so names from one producer keep their shared identity. The
        latest producer of the group hands on the other names too: it either received them
        unchanged, or it now receives them from their producer (which precedes it). Groups are
        judged by the version of each name the step received.
        """
        received = self.received_nodes.setdefault(step.name, {})
        for name in step.sources:
            received.setdefault(name, facts.read_nodes.get(name) or self.aliases.key(name))
        by_root: dict[str, list[str]] = {}
        roots = {self.aliases.root(n) for n in facts.mutated_nodes}
        for name in sorted(step.sources):
            root = self.aliases.root(received[name])
            if root in roots:
                by_root.setdefault(root, []).append(name)
        for group in by_root.values():
            self._gather(step, group)

    def _gather(self, step, names):
        order = {s.name: i for i, s in enumerate(self.steps)}
        producers = {step.sources[n] for n in names}
        if len(producers) < 2:
            return
        latest = self.steps[max(order[p] for p in producers)]
        received = self.received_nodes[step.name]
        held = self.received_nodes.setdefault(latest.name, {})
        for name in names:
            source = step.sources[name]
            if source != latest.name and name not in latest.defines:
                latest.sources.setdefault(name, source)
                held.setdefault(name, received[name])
                step.sources[name] = latest.name
        roots = {self.aliases.root(received[n]) for n in names}
        self._gather(latest, sorted(n for n in latest.sources if self.aliases.root(held[n]) in roots))

    def _undefined_hint(self, name, use):
        if name in self.skipped_binds:
            return f"it is bound only in cell {self.skipped_binds[name]}, which is tagged skip"
        known = set(self.producer) | self.parameters | self.prelude_names
        close = difflib.get_close_matches(name, sorted(known), n=1)
        return f"did you mean '{close[0]}'?" if close else None

    def _undefined(self, name, use, hint):
        self.diagnostics.append(Diagnostic(
            "undefined-name", f"name '{name}' is not defined before it is used",
            cell=use.cell, line=use.line, col=use.col, hint=hint))

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
        for step in self.steps:
            step.sources = dict(sorted(step.sources.items()))
            step.inputs = list(step.sources)
            step.after = _unique([step.sources[n] for n in step.inputs])
        self._after_tags()
        upstream = {s.name: s.after for s in self.steps}
        cycle = graph.find_cycle([s.name for s in self.steps], upstream)
        if cycle:
            self._cycle(cycle)
        else:
            self._ambiguities(upstream)
        self._outputs()
        self._late_binding_hints()

    def _after_tags(self):
        names = [s.name for s in self.steps]
        for step, layout_step in zip(self.steps, self.layout.steps):
            for target in layout_step.after:
                if target in names:
                    step.after = _unique(step.after + [target])
                    continue
                close = difflib.get_close_matches(target, names, n=1)
                self.diagnostics.append(Diagnostic(
                    "after-missing-step", f"step '{step.name}' is after '{target}', which is no step",
                    cell=layout_step.after_cells[target],
                    hint=f"did you mean '{close[0]}'?" if close else f"steps: {', '.join(names)}"))
            order = {n: i for i, n in enumerate(names)}
            step.after.sort(key=order.get)

    def _cycle(self, cycle):
        first = next(s for s in self.layout.steps if s.name == cycle[0])
        cell = next((c for t, c in first.after_cells.items() if t in cycle), first.cells[0] if first.cells else None)
        self.diagnostics.append(Diagnostic(
            "cycle", "steps depend on each other in a cycle: " + " -> ".join(cycle),
            cell=cell, hint="remove one of the after: tags in the cycle"))

    def _ambiguities(self, upstream):
        reported = set()
        memo = {s.name: graph.ancestors(s.name, upstream) for s in self.steps}
        position = {s.name: i for i, s in enumerate(self.steps)}
        for step in self.steps:
            for name, producer in step.sources.items():
                for other in self.binders.get(name, []):
                    if other in (producer, step.name) or (name, other, producer) in reported:
                        continue
                    if position[other] < position[step.name] and _parallel(other, producer, memo):
                        reported.add((name, other, producer))
                        self._ambiguous(step, name, producer, other)

    def _ambiguous(self, step, name, producer, other):
        use = self.facts[step.name].reads.get(name)
        self.diagnostics.append(Diagnostic(
            "ambiguous-name",
            f"'{name}' is bound by '{other}' and '{producer}', which may run in parallel; "
            f"'{step.name}' takes it from '{producer}' (the later in the notebook)",
            cell=use.cell if use else step.cells[0], line=use.line if use else None,
            col=use.col if use else None,
            hint=f"rename one of them, or tag '{producer}' with after:{other}"))

    def _outputs(self):
        by_name = {s.name: s for s in self.steps}
        for step in self.steps:
            for name, producer in step.sources.items():
                if name not in by_name[producer].outputs:
                    by_name[producer].outputs.append(name)
        for step in self.steps:
            step.outputs.sort()
            step.groups = _groups(step.outputs, self.aliases)

    def _late_binding_hints(self):
        # "not defined" is clearer with where the name *is* bound, when that comes later
        for i, diag in enumerate(self.diagnostics):
            if diag.code != "undefined-name" or diag.hint:
                continue
            name = diag.message.split("'")[1]
            cell = self.first_bind_cell.get(name)
            if cell is not None:
                self.diagnostics[i] = Diagnostic(
                    diag.code, diag.message, diag.cell, diag.line, diag.col,
                    hint=f"'{name}' is first bound in cell {cell}, which runs later")


def _groups(outputs, aliases):
    seen, groups = set(), []
    for name in outputs:
        if name in seen:
            continue
        group = sorted(aliases.group_of(name) & set(outputs))
        seen.update(group)
        if len(group) > 1:
            groups.append(group)
    return groups


def _parallel(a, b, ancestors):
    return a not in ancestors[b] and b not in ancestors[a]


def _unique(items):
    return list(dict.fromkeys(items))
