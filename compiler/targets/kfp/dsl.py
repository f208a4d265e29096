"""Pipeline IR → the KFP v2 DSL module: one lightweight component per step, and a pipeline
function that wires them.

A generated component calls `nbscale.kernels.kfp_component.run_kfp_step`, which runs the step's
cells with nbscale's executor. The step's own code (its cells and the prelude) is data in the
call, written as Python literals (`literals`). Parameter *values* are never part of the code:
each step receives the parameters it reads as typed component inputs (`parameters`). Data
between steps is one KFP artifact per output — or per group of outputs that may share objects —
written and read with nbscale's marshalling, in the artifact store's layout. Nothing here
imports the kfp SDK: the module is text until `yaml.write_yaml` compiles it.

Untrusted text (names from the notebook, its file name or pyproject.toml, step options, parameter
defaults) enters the module only as a literal; parameter names must be identifiers and counts
(timeout, retries, gpus) whole numbers, checked here. `verify` checks the result's shape again
before anything imports it.
"""

from __future__ import annotations

import ast
import keyword
import math
import re
from dataclasses import dataclass, field
from decimal import Decimal

from .... import __version__
from ...credentials import holds_credential, may_be_credential, secret_name
from ...diagnostics import Diagnostic
from ...errors import PipelineHasErrors, TargetError
from ...graph import topological_order
from ...ir import Pipeline
from ...notebook import cell_label, cell_number
from ...pyparse import parse_text
from ...tags import MEMORY_FACTORS
from .literals import Code, docstring, literal, string_literal, wrapped
from .options import KfpOptions
from .parameters import is_native, kfp_argument, wire_type

RUNTIME = "nbscale.kernels.kfp_component"
RUNTIME_ENTRY = "run_kfp_step"  # the function of RUNTIME a component calls
METRICS_OUTPUT = "metrics"
RECORD_OUTPUT = "step_record"
# What the pipeline function's body calls besides components. Its parameters are named as the
# notebook's are (they are the pipeline's inputs), and a KFP parameter name starts with a letter,
# so these names are never hidden by one (a parameter `dsl` would hide the module).
DSL_ALIAS = "_dsl"
SET_TIMEOUT_NAME = "_set_timeout"
# The pod deadline counts from the pod's start: pulling the image and installing the packages come
# first, while the step's own timer starts with its code (and ends it with the running cell and
# line): a deadline of the step's timeout alone killed short steps before they began
POD_START_MARGIN_S = 600
KFP_PARAMETER_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")  # what kfp accepts as an input's name
KFP_RESERVED_PARAMETERS = ("Output",)  # kfp refuses a function argument of this name


@dataclass
class KfpModule:
    """A generated DSL module: its text, and where things are in it."""

    text: str
    pipeline_function: str  # the @dsl.pipeline function's name
    pipeline_name: str  # KFP's pipeline name (lower case, digits, '-')
    display_name: str
    components: dict[str, str] = field(default_factory=dict)  # step → KFP component name
    outputs: dict[str, dict[str, str]] = field(default_factory=dict)  # step → {variable: output}
    parameter_types: dict[str, str] = field(default_factory=dict)  # parameter → IR type
    withheld: list[str] = field(default_factory=list)  # parameters whose default may be a credential: none written


def kfp_name(name: str) -> str:
    """KFP's pipeline-name form of `name`: ^[a-z0-9][a-z0-9-]{0,127}$."""
    text = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:128].strip("-")
    return text or "pipeline"


def generate(pipeline: Pipeline, options: KfpOptions | None = None, *, keep: dict | None = None,
             imported: dict | None = None) -> KfpModule:
    """The DSL module for `pipeline`.

    `keep` (step → names) makes those steps also save the final values of these names in their
    record (the kfp-local engine uses it for `RunResult.load`). `imported` (step → artifact URI)
    replaces those steps by a `dsl.importer` of their cached outputs.
    """
    if pipeline.has_errors:
        raise PipelineHasErrors(pipeline)
    refuse_nothing_to_run(pipeline)
    check_values(pipeline)
    return _Generator(pipeline, options or KfpOptions(), keep or {}, imported or {}).module()


def _in_task_order(steps: list) -> list:
    """The steps in notebook order, but each after those it comes after: a task is made (and named)
    before a later one's `.after(task)` names it (`after:b` at a step above b's)."""
    order = topological_order([s.name for s in steps], {s.name: s.after for s in steps})
    by_name = {s.name: s for s in steps}
    return [by_name[name] for name in order] if order is not None else steps


def refuse_nothing_to_run(pipeline: Pipeline, notebook=None) -> None:
    """A pipeline of no step has no KFP form (its pipeline function would have no body): refused
    as `nbscale run` says it, naming the notebook as `notebook` (else by the pipeline's name for it)."""
    if pipeline.steps or pipeline.has_errors:
        return
    why = next((d.message for d in pipeline.diagnostics if d.code == "nothing-to-run"), "nothing to run")
    raise TargetError(f"{notebook or pipeline.notebook}: {why}")


class _Names:
    """Unique identifiers within one scope."""

    def __init__(self, reserved=()):
        self.used = set(reserved)

    def take(self, base: str) -> str:
        base = _identifier(base)
        name, n = base, 2
        while name in self.used or keyword.iskeyword(name):
            name, n = f"{base}_{n}", n + 1
        self.used.add(name)
        return name


def _identifier(text: str) -> str:
    text = re.sub(r"\W", "_", text, flags=re.ASCII)
    return text if text and not text[0].isdigit() else f"_{text}"


def _component_base(step: str) -> str:
    """The function name a step's component starts from, already in the form kfp keeps as it is.

    kfp names a component after its function (`_` → space, first letter upper-cased) and its task
    after that, lower-cased with runs of other characters as one '-'. A name of lower-case words
    joined by single '_' comes through unchanged (`a_b` → task `a-b`), so two functions are two
    tasks, `KfpModule.components` is the task's real name, and no function is `_` or `__`
    (kfp's component name for those is empty, and kfp crashes on it).
    """
    words = re.sub(r"[^a-z0-9]+", "_", step.lower()).strip("_")
    return words if words and not words[0].isdigit() else f"step_{words}".rstrip("_")


@dataclass
class _Unit:
    """Outputs of one step written as one artifact: a single name, or a group sharing objects."""

    names: list[str]
    label: str


class _Generator:
    MODULE_NAMES = ("dsl", "kfp", DSL_ALIAS, SET_TIMEOUT_NAME, "BASE_IMAGE", "PACKAGES_TO_INSTALL", "str",
                    "int", "float", "bool")

    def __init__(self, pipeline: Pipeline, options: KfpOptions, keep: dict, imported: dict):
        self.p, self.o, self.keep, self.imported = pipeline, options, keep, imported
        self.display_name = options.pipeline_name or pipeline.name
        # kfp reads a YAML whose pipeline is named like one of its components as that component
        # alone, so no component function takes the pipeline's own name.
        pipeline_as_component = kfp_name(self.display_name).replace("-", "_")
        self.module_names = _Names([*self.MODULE_NAMES, pipeline_as_component,
                                    *(p.name for p in pipeline.parameters)])
        self.functions = {s.name: self.module_names.take(_component_base(s.name)) for s in pipeline.steps}
        self.pipeline_function = self.module_names.take(f"{kfp_name(self.display_name)}_pipeline")
        self.units = {s.name: _units(s) for s in pipeline.steps}
        self.out_keys: dict[str, dict[int, str]] = {}  # step → unit index → output name
        self.call_args: dict[str, list] = {}  # step → the component's inputs and what feeds them
        self.types = {p.name: wire_type(p.type, p.default) for p in pipeline.parameters}
        self.withheld = [p.name for p in pipeline.parameters if may_be_credential(p.name, p.default)]

    # -- the module -----------------------------------------------------------------------
    def module(self) -> KfpModule:
        parts = [self._header()]
        parts += [self._component(step) for step in self.p.steps if step.name not in self.imported]
        if any(s.timeout for s in self.p.steps if s.name not in self.imported):
            parts.append(SET_TIMEOUT)
        parts.append(self._pipeline())
        text = "\n\n".join(parts).rstrip() + "\n"
        components = {s: self.functions[s].replace("_", "-") for s in self.functions if s not in self.imported}
        outputs = {s.name: {n: self.out_keys[s.name][i] for i, u in enumerate(self.units[s.name]) for n in u.names}
                   for s in self.p.steps if s.name in self.out_keys}
        return KfpModule(text, self.pipeline_function, kfp_name(self.display_name), self.display_name,
                         components, outputs, dict(self.types), list(self.withheld))

    def _header(self) -> str:
        nb = self.p.notebook
        packages = literal(self.o.packages_to_install, 0, len("PACKAGES_TO_INSTALL = "))
        about = "\n".join([
            f"Kubeflow Pipelines (v2) pipeline {self.display_name!r}: {nb} compiled by nbscale {__version__}.",
            "",
            "One lightweight component per notebook step. Each runs its cells with nbscale's run time",
            f"({RUNTIME}), which the image must provide: BASE_IMAGE with nbscale installed, or",
            "PACKAGES_TO_INSTALL with nbscale pinned. Parameters are typed component inputs; data",
            "between steps travels as artifacts in nbscale's own formats.",
            "",
            "Regenerate it rather than editing it:",
            f"    nbscale compile {nb} --target kfp -o PIPELINE.yaml --emit-python THIS_FILE.py",
            "",
        ])
        return "\n".join([
            docstring(about),
            "",
            "from kfp import dsl",
            *([f"from kfp import dsl as {DSL_ALIAS}"] if self.imported else []),
            "",
            f"BASE_IMAGE = {string_literal(self.o.base_image)}",
            f"PACKAGES_TO_INSTALL = {packages}",
        ]) + "\n"

    # -- one component per step -----------------------------------------------------------
    def _component(self, step) -> str:
        names = _Names([METRICS_OUTPUT, RECORD_OUTPUT, RUNTIME_ENTRY])
        signature: list[str] = []
        params = {p: Code(names.take(f"p_{p}")) for p in step.parameters}
        native = {p: v for p, v in params.items() if is_native(self.types.get(p, "str"))}
        as_json = {p: v for p, v in params.items() if p not in native}
        call_args: list[tuple[str, object]] = []  # (input, parameter name | (producer, unit index))
        for p, var in params.items():
            kind = self.types.get(p, "str")
            signature.append(f"{var}: {kind if is_native(kind) else 'str'}")
            call_args.append((var, p))
        inputs: dict[str, Code] = {}
        for (producer, index, label), members in self._input_units(step).items():
            var = Code(names.take(f"in_{label}"))
            signature.append(f"{var}: dsl.Input[dsl.Dataset]")
            inputs.update({n: var for n in members})
            call_args.append((var, (producer, index)))
        self.call_args[step.name] = call_args
        outputs: dict[str, Code] = {}
        self.out_keys[step.name] = {}
        for index, unit in enumerate(self.units[step.name]):
            var = Code(names.take(f"out_{unit.label}"))
            self.out_keys[step.name][index] = str(var)
            signature.append(f"{var}: dsl.Output[dsl.Dataset]")
            outputs.update({n: var for n in unit.names})
        metrics = self._metrics_for(step)
        if metrics:
            signature.append(f"{METRICS_OUTPUT}: dsl.Output[dsl.Metrics]")
        signature.append(f"{RECORD_OUTPUT}: dsl.Output[dsl.Artifact]")

        decorator = ["base_image=" + (string_literal(step.image) if step.image else "BASE_IMAGE"),
                     "packages_to_install=PACKAGES_TO_INSTALL"]
        if not self.o.install_kfp_package:
            decorator.append("install_kfp_package=False")
        step_literal = {"name": step.name, "cells": step.cells, "source": step.source, "outputs": step.outputs}
        if step.settings:  # process-wide settings of earlier steps, replayed before the cells
            step_literal["settings"] = step.settings
        prelude = {"cells": self.p.prelude.cells, "source": self.p.prelude.source}
        kwargs = [("notebook", self.p.notebook), ("step", step_literal), ("prelude", prelude)]
        if native:
            kwargs.append(("parameters", native))
        if as_json:
            kwargs.append(("json_parameters", as_json))
        if inputs:
            kwargs.append(("inputs", inputs))
        if outputs:
            kwargs.append(("outputs", outputs))
        if metrics:
            kwargs.append(("metrics", metrics))
            kwargs.append(("metrics_artifact", Code(METRICS_OUTPUT)))
        if step.timeout:
            kwargs.append(("timeout", int(step.timeout)))
        if self.keep.get(step.name):
            kwargs.append(("keep", sorted(self.keep[step.name])))
        kwargs.append(("record", Code(RECORD_OUTPUT)))

        cells = ", ".join(str(cell_number(c)) for c in step.cells)  # as JupyterLab numbers them
        lines = [f"@dsl.component({', '.join(decorator)})"]
        lines += wrapped(f"def {self.functions[step.name]}(", signature, "):")
        lines.append(f"    {docstring(f'Step {step.name}: cell{_s(step.cells)} {cells} of {self.p.notebook}.', 4)}")
        lines.append(f"    from {RUNTIME} import {RUNTIME_ENTRY}")
        lines.append("")
        lines.append(f"    {RUNTIME_ENTRY}(")
        for key, value in kwargs:
            lines.append(f"        {key}={literal(value, 8, len(key) + 1)},")
        lines.append("    )")
        return "\n".join(lines) + "\n"

    def _input_units(self, step) -> dict[tuple, list[str]]:
        """The artifacts a step reads: (producer, unit index, label) → the names it takes from each."""
        wanted: dict[tuple, list[str]] = {}
        for name in step.inputs:
            producer = step.sources[name]
            for index, unit in enumerate(self.units[producer]):
                if name in unit.names:
                    wanted.setdefault((producer, index, unit.label), []).append(name)
        return wanted

    def _metrics_for(self, step) -> dict | None:
        m = self.p.metrics
        if m.step != step.name or not (m.names or m.spread):
            return None
        metrics = {"names": list(m.names), "exprs": dict(m.exprs)}
        if m.spread:  # only then, so that modules compiled before it existed stay the same
            metrics["spread"] = list(m.spread)
        return metrics

    # -- the pipeline ---------------------------------------------------------------------
    def _pipeline(self) -> str:
        scope = _Names([*self.module_names.used])
        tasks = {s.name: scope.take(f"{self.functions[s.name]}_task") for s in self.p.steps}
        # no compiled pipeline holds a credential: such a parameter is a required input, given at
        # submit; it comes first, as Python wants parameters without defaults before the others
        required, params = [], []
        for p in self.p.parameters:
            kind = self.types[p.name]
            annotated = f"{p.name}: {kind if is_native(kind) else 'str'}"
            if p.name in self.withheld:
                required.append(annotated)
            else:
                params.append(f"{annotated} = {literal(kfp_argument(kind, p.default), 4, len(p.name) + 2)}")
        params = required + params
        decorator = [f"name={string_literal(kfp_name(self.display_name))}"]
        if kfp_name(self.display_name) != self.display_name:
            decorator.append(f"display_name={string_literal(self.display_name)}")
        description = f"{self.p.notebook} as a pipeline, compiled by nbscale {__version__}."
        decorator.append(f"description={string_literal(description)}")
        lines = ["@dsl.pipeline("] + [f"    {d}," for d in decorator] + [")"]
        lines += wrapped(f"def {self.pipeline_function}(", params, "):")
        body: list[list[str]] = []
        for step in _in_task_order(self.p.steps):
            body.append(self._task(step, tasks))
        for block in body:
            lines += block
            lines.append("")
        return "\n".join(lines).rstrip() + "\n"

    def _task(self, step, tasks) -> list[str]:
        var = tasks[step.name]
        if step.name in self.imported:
            args = [f"artifact_uri={string_literal(self.imported[step.name])}",
                    f"artifact_class={DSL_ALIAS}.Dataset", "reimport=False"]
            lines = wrapped(f"    {var} = {DSL_ALIAS}.importer(", args, "    )")
            lines.append(f"    {var}.set_display_name({string_literal(step.name + ' (cached)')})")
            return lines
        args = []
        for var_, source in self.call_args[step.name]:
            if isinstance(source, str):  # a pipeline parameter
                args.append(f"{var_}={source}")
            elif source[0] in self.imported:
                args.append(f"{var_}={tasks[source[0]]}.output")
            else:
                args.append(f"{var_}={tasks[source[0]]}.outputs[{string_literal(self.out_keys[source[0]][source[1]])}]")
        lines = wrapped(f"    {var} = {self.functions[step.name]}(", args, "    )")
        lines.append(f"    {var}.set_display_name({string_literal(step.name)})")
        data_producers = {step.sources[n] for n in step.inputs}
        for upstream in step.after:
            if upstream not in data_producers and upstream not in self.imported:
                lines.append(f"    {var}.after({tasks[upstream]})")
        lines += [f"    {var}.{call}" for call in self._settings(step)]
        if step.timeout:
            lines.append(f"    {SET_TIMEOUT_NAME}({var}, {int(step.timeout) + POD_START_MARGIN_S})")
        return lines

    def _settings(self, step) -> list[str]:
        calls = []
        res = step.resources or {}
        if "cpu" in res:
            cpu = string_literal(_cpu(res["cpu"]))
            calls.append(f"set_cpu_request({cpu}).set_cpu_limit({cpu})")
        if "memory" in res:
            memory = string_literal(_memory(res["memory"]))
            calls.append(f"set_memory_request({memory}).set_memory_limit({memory})")
        if res.get("gpu"):
            calls.append(f"set_accelerator_type({string_literal(self.o.accelerator)}).set_accelerator_limit({int(res['gpu'])})")
        if step.retries:
            calls.append(f"set_retry({int(step.retries)})")
        if not step.cache:
            calls.append("set_caching_options(False)")
        return calls


SET_TIMEOUT = f'''\
def {SET_TIMEOUT_NAME}(task, seconds):
    """A pod deadline for one task, as kfp-kubernetes' set_timeout writes it (without needing that
    package): the step's timeout and a margin for the pod's start; nbscale's run time stops the
    step itself at its timeout."""
    task.platform_config.setdefault("kubernetes", {{}})["activeDeadlineSeconds"] = str(seconds)
'''


def check_values(pipeline: Pipeline) -> None:
    """Refuse what the module could not hold as a literal or a checked name: names that are not
    text, parameter names that are not identifiers (they name the pipeline's inputs), parameters
    a step reads but the pipeline lacks, and counts that are not whole numbers."""
    texts = [pipeline.name, pipeline.notebook, *(s.name for s in pipeline.steps),
             *(s.image for s in pipeline.steps if s.image is not None)]
    if not all(isinstance(t, str) for t in texts):
        raise TargetError(f"names must be text: {[t for t in texts if not isinstance(t, str)]!r}")
    names = [p.name for p in pipeline.parameters]
    bad = [n for n in names if not (isinstance(n, str) and n.isidentifier() and not keyword.iskeyword(n))]
    if bad:
        raise TargetError(f"parameter names must be Python identifiers: {', '.join(map(repr, bad))}")
    refused = [p for p in pipeline.parameters
               if not KFP_PARAMETER_NAME.fullmatch(p.name) or p.name in KFP_RESERVED_PARAMETERS]
    if refused:  # (each one named: renaming them one error at a time is a chore)
        which = "; ".join(f"{_where(pipeline, p)}parameter {p.name!r}" for p in refused)
        raise TargetError(f"{which}: cannot be a Kubeflow Pipelines input: a name must start with an ASCII letter "
                          "and hold only ASCII letters, digits and '_'"
                          f" (and not be {' or '.join(KFP_RESERVED_PARAMETERS)}); rename "
                          + ("it" if len(refused) == 1 else "them"))
    for step in pipeline.steps:
        unknown = [p for p in step.parameters if p not in names]
        if unknown:
            raise TargetError(f"step {step.name!r} reads parameters that are not declared: {unknown!r}")
        for what, value in (("timeout", step.timeout), ("retries", step.retries),
                            ("gpu", (step.resources or {}).get("gpu"))):
            if value is not None and not _whole(value):
                raise TargetError(f"step {step.name!r}: {what} must be a whole number ≥ 0, got {value!r}")
        cpu = (step.resources or {}).get("cpu")
        if cpu is not None and (type(cpu) not in (int, float, str) or (type(cpu) is not str and cpu < 0)):
            raise TargetError(f"step {step.name!r}: cpu must be a number or a quantity such as '500m', got {cpu!r}")


def withheld_warnings(pipeline: Pipeline, module: KfpModule) -> list[Diagnostic]:
    """A warning at each parameter whose default the module left out as a possible credential:
    what to give at submit instead (one line each: the CLI prints notes as single lines)."""
    return [Diagnostic("credential-default", f"parameter '{p.name}' may be a credential, so its default is not written "
                       f"into the pipeline: it is a required input; give it at submit time: nbscale submit "
                       f"{pipeline.notebook} -p {p.name}=...", cell=p.cell, line=p.line)
            for p in pipeline.parameters if p.name in module.withheld]


def code_credential_warnings(pipeline: Pipeline) -> list[Diagnostic]:
    """A warning at each assignment in the pipeline's code of a literal that may be a credential
    (`password = "hunter2"`, `AWS_SECRET_ACCESS_KEY = "…"`, `db = {"password": …}`,
    `os.environ["DB_PASSWORD"] = "…"`, `hook = "https://hooks.slack.com/services/…"`): the code is
    written into the pipeline as it is, where a parameter's default would be withheld."""
    found = []
    cells = zip(pipeline.prelude.cells, pipeline.prelude.source)
    for index, source in [*cells, *(pair for step in pipeline.steps for pair in zip(step.cells, step.source))]:
        for name, line in _credential_literals(source):
            found.append(Diagnostic("credential-in-code", f"'{name}' is given a literal that may be a credential, and "
                                    "the cell's code is written into the pipeline as it is: read it from the "
                                    "environment (os.environ), or make it a parameter (its default is withheld)",
                                    cell=index, line=line))
    return found


def _credential_literals(source: str) -> list[tuple[str, int]]:
    """(name, line) of each literal assigned in a cell's code that may be a credential: to a name
    (`password = "…"`, `db_password: str = "…"`, `user, api_token = "u", "…"`), to a key of the
    environment (`os.environ["AWS_SECRET_ACCESS_KEY"] = "…"`), or of a credential's shape to anything."""
    if not isinstance(source, str) or not (holds_credential(source) or any(
            secret_name(word) for word in set(_IDENTIFIER.findall(source)))):
        return []  # (most cells: no secret-looking name or text in them, not parsed)
    try:
        tree = parse_text(source)
    except (SyntaxError, ValueError, RecursionError):  # IPython syntax, or too deep: not looked into
        return []
    found = []
    for node in ast.walk(tree):
        if type(node) is ast.Assign:
            pairs = [pair for target in node.targets for pair in _assigned(target, node.value)]
        elif type(node) is ast.AnnAssign and node.value is not None:
            pairs = _assigned(node.target, node.value)
        else:
            continue
        found += [(label, node.lineno) for label, name, value in pairs if _literal_credential(name, value)]
    return found


def _assigned(target, value) -> list[tuple[str, str, ast.expr]]:
    """(label, name, value) of what an assignment gives each target: unpacked when both sides are
    written out (`a, b = "u", "…"`); a name by its own; a key of the environment by that key;
    anything else by no name, so only a value of a credential's shape counts."""
    if type(target) in (ast.Tuple, ast.List):
        if type(value) not in (ast.Tuple, ast.List) or len(value.elts) != len(target.elts) \
                or any(type(e) is ast.Starred for e in [*target.elts, *value.elts]):
            return []
        return [pair for t, v in zip(target.elts, value.elts) for pair in _assigned(t, v)]
    if type(target) is ast.Name:
        return [(target.id, target.id, value)]
    key = _environment_key(target)
    return [(key or ast.unparse(target), key, value)]


def _environment_key(target) -> str:
    """The key of `os.environ["KEY"]` or `environ["KEY"]`; "" for any other target."""
    if type(target) is not ast.Subscript or type(target.slice) is not ast.Constant \
            or not isinstance(target.slice.value, str):
        return ""
    into = target.value
    if (type(into) is ast.Name and into.id == "environ") or (
            type(into) is ast.Attribute and into.attr == "environ" and type(into.value) is ast.Name
            and into.value.id == "os"):
        return target.slice.value
    return ""


def _literal_credential(name: str, value: ast.expr) -> bool:
    try:
        value = ast.literal_eval(value)
    except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
        return False  # not a literal: computed, or read from elsewhere
    return may_be_credential(name, value)


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _where(pipeline: Pipeline, parameter) -> str:
    """"NB:cell N:LINE: " for a parameter, as `nbscale check` points at code."""
    if parameter.cell is None:
        return ""
    line = f":{parameter.line}" if parameter.line is not None else ""
    return f"{pipeline.notebook}:{cell_label(parameter.cell)}{line}: "


def _whole(value) -> bool:
    """A whole number ≥ 0 (an int, or a float without a fraction), not a bool or other subclass."""
    return type(value) in (int, float) and value >= 0 and float(value).is_integer()


def _units(step) -> list[_Unit]:
    """Write units of a step's outputs, in the artifact store's order: groups, then single names."""
    units = [list(g) for g in step.groups if len(g) > 1]
    grouped = {n for g in units for n in g}
    result = [_Unit(g, f"{g[0]}_group") for g in units]
    result += [_Unit([n], n) for n in step.outputs if n not in grouped]
    return result


def _s(items) -> str:
    return "s" * (len(items) != 1)


def _cpu(value) -> str:
    """Whole millicores, as Kubernetes takes them: rounded up, as `_memory` rounds bytes, so a tiny
    request stays a request (1m, not 0m). Decimal, as written: 0.57 * 1000 is 570.0000000000001 in floats."""
    if isinstance(value, str):
        return value
    if float(value).is_integer():
        return str(int(value))
    return f"{math.ceil(Decimal(str(value)) * 1000)}m"


_MEMORY = re.compile(r"^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|Pi|Ei|K|M|G|T|P|E|k)?$", re.ASCII)
# No kilo among the decimal units written: Kubernetes knows only `k`, the KFP SDK only `K`, so a
# size that is not a whole number of megabytes is written in plain bytes, which both accept.
_WRITTEN = {True: ("Ei", "Pi", "Ti", "Gi", "Mi", "Ki"), False: ("E", "P", "T", "G", "M")}


def _memory(value) -> str:
    """A Kubernetes memory quantity as KFP accepts it (a whole number with an optional suffix)."""
    text = str(value)
    match = _MEMORY.match(text)
    if not match:
        return text
    number, suffix = match.groups()
    if "." not in number and suffix not in ("k", "K"):
        return text
    # Decimal, as written: 1.1 * 10**6 is 1100000.0000000002 in floats, which would round up a byte
    size = math.ceil(Decimal(number) * MEMORY_FACTORS[suffix or ""])  # bytes
    for unit in _WRITTEN[suffix is not None and suffix.endswith("i")]:
        if size % MEMORY_FACTORS[unit] == 0:
            return f"{size // MEMORY_FACTORS[unit]}{unit}"
    return str(size)

