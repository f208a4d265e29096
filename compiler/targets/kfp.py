"""Pipeline IR → Kubeflow Pipelines (KFP v2): a readable DSL module, and YAML compiled from it.

`generate(pipeline, options)` writes a real Python module: one lightweight component per step,
and a pipeline function that wires them. Nothing here imports the kfp SDK at module import time;
`write_yaml` imports it to compile the module (the SDK needs `inspect.getsource` of each
component, so the module is written to a file and imported from there).

What a generated component does: it calls `nbscale.kernels.kfp_component.run_step`, which runs
the step's cells with nbscale's executor. The step's own code (its cells and the prelude) is
data in the call, written as Python literals. Parameter *values* are never part of the code:
each step receives the parameters it reads as typed component inputs (`int`, `float`, `str`,
`bool`; `list`, `dict` and `None` literals travel as JSON text, because KFP's protobuf structs
turn the ints inside them into floats and reorder dict keys). Data between steps is one KFP
artifact per output — or per group of outputs that may share objects — written and read with
nbscale's marshalling, in the artifact store's layout.
"""

from __future__ import annotations

import importlib.util
import json
import keyword
import math
import re
import sys
import tempfile
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from ... import __version__
from ..ir import Pipeline

DEFAULT_BASE_IMAGE = "python:3.11-slim"
DEFAULT_ACCELERATOR = "nvidia.com/gpu"
DEFAULT_EXPERIMENT = "Default"
RUNTIME = "nbscale.kernels.kfp_component"
NATIVE_TYPES = ("int", "float", "str", "bool")  # KFP parameter types that carry a value unchanged
METRICS_OUTPUT = "metrics"
RECORD_OUTPUT = "step_record"
WIDTH = 99  # generated lines stay within this many characters where the content allows
_KFP_LOCK = threading.Lock()  # the kfp SDK traces a pipeline function into process-wide state


def default_packages() -> list[str]:
    """nbscale's run time, pinned to this version: what every step needs inside its container."""
    return [f"nbscale[run]=={__version__}"]


# ---------------------------------------------------------------------------------------------
# Options: built-in defaults < pyproject.toml [tool.nbscale.kfp] < notebook metadata < CLI flags


@dataclass
class KfpOptions:
    base_image: str = DEFAULT_BASE_IMAGE
    packages_to_install: list[str] = field(default_factory=default_packages)
    pipeline_name: str | None = None  # None: the IR's name (notebook metadata nbscale.name, or the stem)
    experiment: str = DEFAULT_EXPERIMENT
    install_kfp_package: bool = True
    accelerator: str = DEFAULT_ACCELERATOR
    host: str | None = None
    origin: dict[str, str] = field(default_factory=dict, compare=False)  # option → where it was set


_TYPES = {"base_image": str, "packages_to_install": list, "pipeline_name": str, "experiment": str,
          "install_kfp_package": bool, "accelerator": str, "host": str}
OPTION_NAMES = tuple(_TYPES)


class OptionsError(ValueError):
    """A project default in pyproject.toml or the notebook's metadata is unknown or mistyped."""


def load_options(notebook, overrides: dict | None = None) -> KfpOptions:
    """KFP options for `notebook`: defaults, then pyproject.toml `[tool.nbscale.kfp]` (the nearest
    one above the notebook), then the notebook's metadata `nbscale.kfp`, then `overrides` — the
    command-line flags that were given (None values are ignored)."""
    options = KfpOptions()
    notebook = Path(notebook)
    pyproject = _find_pyproject(notebook.resolve().parent)
    if pyproject is not None:
        _apply(options, _pyproject_table(pyproject), f"{pyproject} [tool.nbscale.kfp]")
    _apply(options, _metadata_table(notebook), f"{notebook.name} metadata nbscale.kfp")
    _apply(options, {k: v for k, v in (overrides or {}).items() if v is not None}, "command line")
    return options


def _apply(options: KfpOptions, table: dict, origin: str) -> None:
    for key, value in table.items():
        if key not in _TYPES:
            raise OptionsError(f"{origin}: unknown key {key!r}; known keys: {', '.join(OPTION_NAMES)}")
        expected = _TYPES[key]
        if expected is list:
            if isinstance(value, str):
                value = [value]
            if not (isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)):
                raise OptionsError(f"{origin}: {key} must be a list of strings, got {value!r}")
            value = list(value)
        elif not isinstance(value, expected) or (expected is str and not value.strip()):
            raise OptionsError(f"{origin}: {key} must be a non-empty {expected.__name__}, got {value!r}")
        setattr(options, key, value)
        options.origin[key] = origin


def _find_pyproject(folder: Path) -> Path | None:
    for candidate in (folder, *folder.parents):
        path = candidate / "pyproject.toml"
        if path.is_file():
            return path
    return None


def _pyproject_table(path: Path) -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise OptionsError(f"{path}: cannot read it: {exc}") from None
    table = data.get("tool", {}).get("nbscale", {}).get("kfp", {})
    if not isinstance(table, dict):
        raise OptionsError(f"{path}: [tool.nbscale.kfp] must be a table")
    return table


def _metadata_table(notebook: Path) -> dict:
    try:
        metadata = json.loads(notebook.read_text(encoding="utf-8")).get("metadata", {})
    except (OSError, ValueError, AttributeError):
        return {}  # the compiler reports unreadable notebooks
    table = metadata.get("nbscale", {}) if isinstance(metadata, dict) else {}
    table = table.get("kfp", {}) if isinstance(table, dict) else {}
    if not isinstance(table, dict):
        raise OptionsError(f"{notebook.name}: metadata nbscale.kfp must be a mapping")
    return table


# What nbscale[run] brings into a step's image besides nbscale (its own and its dependencies' modules)
RUNTIME_MODULES = {"nbscale", "numpy", "pandas", "pyarrow", "cloudpickle", "fsspec", "dask", "distributed",
                   "joblib", "psutil", "rich", "yaml", "IPython", "nbformat", "click", "kfp"}


def third_party_imports(pipeline: Pipeline) -> list[str]:
    """Top-level modules the steps import that neither the standard library nor nbscale[run]
    provides: what an image built from the defaults would lack."""
    import ast

    from ..syntax import to_python

    found = set()
    for source in [*pipeline.prelude.source, *(s for step in pipeline.steps for s in step.source)]:
        try:
            tree = ast.parse(to_python(source))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.add(node.module.split(".")[0])
    stdlib = set(getattr(sys, "stdlib_module_names", ()))
    return sorted(found - stdlib - RUNTIME_MODULES)


# ---------------------------------------------------------------------------------------------
# Generation


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


def kfp_name(name: str) -> str:
    """KFP's pipeline-name form of `name`: ^[a-z0-9][a-z0-9-]{0,127}$."""
    text = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:128].strip("-")
    return text or "pipeline"


def is_native(type_name: str) -> bool:
    return type_name in NATIVE_TYPES


def wire_type(type_name: str, default=None) -> str:
    """How a parameter travels: its own KFP type (int, float, str, bool), or "json" — JSON text
    in a str input — for lists, dicts and None, whose values KFP's protobuf structs would change,
    and for strings holding "{{", which kfp.local would take for one of its placeholders."""
    if not is_native(type_name) or (isinstance(default, str) and "{{" in default):
        return "json"
    return type_name


def kfp_argument(type_name: str, value):
    """A parameter value as the KFP pipeline takes it (`type_name` from `wire_type`)."""
    return value if is_native(type_name) else _json_text(value)


def _json_text(value) -> str:
    """JSON with every "{" inside strings written as \\u007b: valid JSON, same value, and no
    "{{" anywhere (structural braces never follow each other)."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False).replace("{", "\\u007b")
    if isinstance(value, list):
        return "[" + ", ".join(_json_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_json_text(str(k))}: {_json_text(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)


def generate(pipeline: Pipeline, options: KfpOptions | None = None, *, keep: dict | None = None,
             imported: dict | None = None) -> KfpModule:
    """The DSL module for `pipeline`.

    `keep` (step → names) makes those steps also save the final values of these names in their
    record (the kfp-local engine uses it for `RunResult.load`). `imported` (step → artifact URI)
    replaces those steps by a `dsl.importer` of their cached outputs.
    """
    if pipeline.has_errors:
        from ..errors import PipelineHasErrors

        raise PipelineHasErrors(pipeline)
    return _Generator(pipeline, options or KfpOptions(), keep or {}, imported or {}).module()


class _Code(str):
    """Text that `_literal` writes as it is: a reference to a variable, not a value."""


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


@dataclass
class _Unit:
    """Outputs of one step written as one artifact: a single name, or a group sharing objects."""

    names: list[str]
    label: str


class _Generator:
    MODULE_NAMES = ("dsl", "kfp", "set_timeout", "BASE_IMAGE", "PACKAGES_TO_INSTALL", "str", "int",
                    "float", "bool")

    def __init__(self, pipeline: Pipeline, options: KfpOptions, keep: dict, imported: dict):
        self.p, self.o, self.keep, self.imported = pipeline, options, keep, imported
        self.display_name = options.pipeline_name or pipeline.name
        self.module_names = _Names([*self.MODULE_NAMES, *(p.name for p in pipeline.parameters)])
        self.functions = {s.name: self.module_names.take(s.name) for s in pipeline.steps}
        self.pipeline_function = self.module_names.take(f"{kfp_name(self.display_name)}_pipeline")
        self.units = {s.name: _units(s) for s in pipeline.steps}
        self.out_keys: dict[str, dict[int, str]] = {}  # step → unit index → output name
        self.call_args: dict[str, list] = {}  # step → the component's inputs and what feeds them
        self.types = {p.name: wire_type(p.type, p.default) for p in pipeline.parameters}

    # -- the module -----------------------------------------------------------------------
    def module(self) -> KfpModule:
        parts = [self._header()]
        parts += [self._component(step) for step in self.p.steps if step.name not in self.imported]
        if any(s.timeout for s in self.p.steps if s.name not in self.imported):
            parts.append(_SET_TIMEOUT)
        parts.append(self._pipeline())
        text = "\n\n".join(parts).rstrip() + "\n"
        components = {s: self.functions[s].replace("_", "-") for s in self.functions if s not in self.imported}
        outputs = {s.name: {n: self.out_keys[s.name][i] for i, u in enumerate(self.units[s.name]) for n in u.names}
                   for s in self.p.steps if s.name in self.out_keys}
        return KfpModule(text, self.pipeline_function, kfp_name(self.display_name), self.display_name,
                         components, outputs, dict(self.types))

    def _header(self) -> str:
        nb = self.p.notebook
        packages = _literal(self.o.packages_to_install, 0, len("PACKAGES_TO_INSTALL = "))
        return "\n".join([
            f'"""Kubeflow Pipelines (v2) pipeline {self.display_name!r}: {nb} compiled by nbscale {__version__}.',
            "",
            "One lightweight component per notebook step. Each runs its cells with nbscale's run time",
            f"({RUNTIME}), which the image must provide: BASE_IMAGE with nbscale installed, or",
            "PACKAGES_TO_INSTALL with nbscale pinned. Parameters are typed component inputs; data",
            "between steps travels as artifacts in nbscale's own formats.",
            "",
            f"Regenerate it rather than editing it: nbscale compile {nb} --target kfp -o PIPELINE.yaml \\",
            "    --emit-python THIS_FILE.py",
            '"""',
            "",
            "from kfp import dsl",
            "",
            f"BASE_IMAGE = {_str(self.o.base_image)}",
            f"PACKAGES_TO_INSTALL = {packages}",
        ]) + "\n"

    # -- one component per step -----------------------------------------------------------
    def _component(self, step) -> str:
        names = _Names([METRICS_OUTPUT, RECORD_OUTPUT, "run_step"])
        signature: list[str] = []
        params = {p: _Code(names.take(f"p_{p}")) for p in step.parameters}
        native = {p: v for p, v in params.items() if is_native(self.types.get(p, "str"))}
        as_json = {p: v for p, v in params.items() if p not in native}
        call_args: list[tuple[str, object]] = []  # (input, parameter name | (producer, unit index))
        for p, var in params.items():
            kind = self.types.get(p, "str")
            signature.append(f"{var}: {kind if is_native(kind) else 'str'}")
            call_args.append((var, p))
        inputs: dict[str, _Code] = {}
        for (producer, index, label), members in self._input_units(step).items():
            var = _Code(names.take(f"in_{label}"))
            signature.append(f"{var}: dsl.Input[dsl.Dataset]")
            inputs.update({n: var for n in members})
            call_args.append((var, (producer, index)))
        self.call_args[step.name] = call_args
        outputs: dict[str, _Code] = {}
        self.out_keys[step.name] = {}
        for index, unit in enumerate(self.units[step.name]):
            var = _Code(names.take(f"out_{unit.label}"))
            self.out_keys[step.name][index] = str(var)
            signature.append(f"{var}: dsl.Output[dsl.Dataset]")
            outputs.update({n: var for n in unit.names})
        metrics = self._metrics_for(step)
        if metrics:
            signature.append(f"{METRICS_OUTPUT}: dsl.Output[dsl.Metrics]")
        signature.append(f"{RECORD_OUTPUT}: dsl.Output[dsl.Artifact]")

        decorator = ["base_image=" + (_str(step.image) if step.image else "BASE_IMAGE"),
                     "packages_to_install=PACKAGES_TO_INSTALL"]
        if not self.o.install_kfp_package:
            decorator.append("install_kfp_package=False")
        step_literal = {"name": step.name, "cells": step.cells, "source": step.source, "outputs": step.outputs}
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
            kwargs.append(("metrics_artifact", _Code(METRICS_OUTPUT)))
        if step.timeout:
            kwargs.append(("timeout", step.timeout))
        if self.keep.get(step.name):
            kwargs.append(("keep", sorted(self.keep[step.name])))
        kwargs.append(("record", _Code(RECORD_OUTPUT)))

        cells = ", ".join(str(c) for c in step.cells)
        lines = [f"@dsl.component({', '.join(decorator)})"]
        lines += _signature(f"def {self.functions[step.name]}(", signature, "):")
        lines.append(f"    {_docstring(f'Step {step.name}: cell{_s(step.cells)} {cells} of {self.p.notebook}.')}")
        lines.append(f"    from {RUNTIME} import run_step")
        lines.append("")
        lines.append("    run_step(")
        for key, value in kwargs:
            lines.append(f"        {key}={_literal(value, 8, len(key) + 1)},")
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
        if m.step != step.name or not m.names:
            return None
        return {"names": list(m.names), "exprs": dict(m.exprs)}

    # -- the pipeline ---------------------------------------------------------------------
    def _pipeline(self) -> str:
        scope = _Names([*self.module_names.used])
        tasks = {s.name: scope.take(f"{self.functions[s.name]}_task") for s in self.p.steps}
        params = []
        for p in self.p.parameters:
            kind = self.types[p.name]
            default = _literal(kfp_argument(kind, p.default), 4, len(p.name) + 2)
            params.append(f"{p.name}: {kind if is_native(kind) else 'str'} = {default}")
        decorator = [f"name={_str(kfp_name(self.display_name))}"]
        if kfp_name(self.display_name) != self.display_name:
            decorator.append(f"display_name={_str(self.display_name)}")
        decorator.append(f"description={_str(f'{self.p.notebook} as a pipeline, compiled by nbscale {__version__}.')}")
        lines = ["@dsl.pipeline("] + [f"    {d}," for d in decorator] + [")"]
        lines += _signature(f"def {self.pipeline_function}(", params, "):")
        body: list[list[str]] = []
        for step in self.p.steps:
            body.append(self._task(step, tasks))
        for block in body:
            lines += block
            lines.append("")
        return "\n".join(lines).rstrip() + "\n"

    def _task(self, step, tasks) -> list[str]:
        var = tasks[step.name]
        if step.name in self.imported:
            args = [f"artifact_uri={_str(self.imported[step.name])}", "artifact_class=dsl.Dataset", "reimport=False"]
            lines = _signature(f"    {var} = dsl.importer(", args, "    )")
            lines.append(f"    {var}.set_display_name({_str(step.name + ' (cached)')})")
            return lines
        args = []
        for var_, source in self.call_args[step.name]:
            if isinstance(source, str):  # a pipeline parameter
                args.append(f"{var_}={source}")
            elif source[0] in self.imported:
                args.append(f"{var_}={tasks[source[0]]}.output")
            else:
                args.append(f"{var_}={tasks[source[0]]}.outputs[{_str(self.out_keys[source[0]][source[1]])}]")
        lines = _signature(f"    {var} = {self.functions[step.name]}(", args, "    )")
        lines.append(f"    {var}.set_display_name({_str(step.name)})")
        data_producers = {step.sources[n] for n in step.inputs}
        for upstream in step.after:
            if upstream not in data_producers and upstream not in self.imported:
                lines.append(f"    {var}.after({tasks[upstream]})")
        lines += [f"    {var}.{call}" for call in self._settings(step)]
        if step.timeout:
            lines.append(f"    set_timeout({var}, {step.timeout})")
        return lines

    def _settings(self, step) -> list[str]:
        calls = []
        res = step.resources or {}
        if "cpu" in res:
            cpu = _str(_cpu(res["cpu"]))
            calls.append(f"set_cpu_request({cpu}).set_cpu_limit({cpu})")
        if "memory" in res:
            memory = _str(_memory(res["memory"]))
            calls.append(f"set_memory_request({memory}).set_memory_limit({memory})")
        if res.get("gpu"):
            calls.append(f"set_accelerator_type({_str(self.o.accelerator)}).set_accelerator_limit({int(res['gpu'])})")
        if step.retries:
            calls.append(f"set_retry({int(step.retries)})")
        if not step.cache:
            calls.append("set_caching_options(False)")
        return calls


_SET_TIMEOUT = '''\
def set_timeout(task, seconds):
    """A pod deadline for one task, as kfp-kubernetes' set_timeout writes it (without needing that
    package). nbscale's run time also stops the step itself after `seconds`."""
    task.platform_config.setdefault("kubernetes", {})["activeDeadlineSeconds"] = str(seconds)
'''


def _units(step) -> list[_Unit]:
    """Write units of a step's outputs, in the artifact store's order: groups, then single names."""
    units = [list(g) for g in step.groups if len(g) > 1]
    grouped = {n for g in units for n in g}
    result = [_Unit(g, f"{g[0]}_group") for g in units]
    result += [_Unit([n], n) for n in step.outputs if n not in grouped]
    return result


def _docstring(text: str) -> str:
    plain = not any(c in text for c in ('"', "\\", "\n")) and "{{" not in text
    return f'"""{text}"""' if plain else _str(text)


def _s(items) -> str:
    return "s" * (len(items) != 1)


def _cpu(value) -> str:
    if isinstance(value, str):
        return value
    if float(value).is_integer():
        return str(int(value))
    return f"{round(float(value) * 1000)}m"


_MEMORY = re.compile(r"^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|Pi|Ei|K|M|G|T|P|E|k)?$")
_FACTORS = {None: 1, "k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
            "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}


def _memory(value) -> str:
    """A Kubernetes memory quantity as KFP accepts it (a whole number with an optional suffix)."""
    text = str(value)
    match = _MEMORY.match(text)
    if not match:
        return text
    number, suffix = match.groups()
    if "." not in number and suffix != "k":
        return text
    size = math.ceil(float(number) * _FACTORS[suffix])  # bytes
    binary = suffix is not None and suffix.endswith("i")
    for unit in (("Ei", "Pi", "Ti", "Gi", "Mi", "Ki") if binary else ("E", "P", "T", "G", "M", "K")):
        if size % _FACTORS[unit] == 0:
            return f"{size // _FACTORS[unit]}{unit}"
    return str(size)


# ---------------------------------------------------------------------------------------------
# Python literals, laid out for reading


def _str(text: str) -> str:
    """A string literal, in double quotes unless the text holds some (then as Python's repr).

    "{{" is written "{\\x7b": KFP resolves "{{$...}}" placeholders anywhere in a component's
    command — and a component's source code is part of its command."""
    r = repr(text)
    if r[0] == "'" and '"' not in text:
        r = '"' + r[1:-1] + '"'
    return r.replace("{{", "{\\x7b")


def _literal(value, indent: int, used: int = 0) -> str:
    """`value` as Python source. `indent`: the column of the line it starts on; `used`: how many
    characters stand before it on that line. One line when it fits; else one item per line."""
    flat = _flat(value)
    if flat is not None and indent + used + len(flat) + 1 <= WIDTH:
        return flat
    inner = " " * (indent + 4)
    if isinstance(value, str):  # a multi-line or long string: one piece per line
        pieces = value.splitlines(keepends=True) or [value]
        if len(pieces) == 1:
            return _str(value)
        return "(\n" + "".join(f"{inner}{_str(p)}\n" for p in pieces) + " " * indent + ")"
    if isinstance(value, dict):
        items = [f"{inner}{_str(k)}: {_literal(v, indent + 4, len(_str(k)) + 2)}," for k, v in value.items()]
        return "{\n" + "\n".join(items) + "\n" + " " * indent + "}"
    if isinstance(value, (list, tuple)):
        items = [f"{inner}{_literal(v, indent + 4)}," for v in value]
        return "[\n" + "\n".join(items) + "\n" + " " * indent + "]"
    return _scalar(value)


def _flat(value) -> str | None:
    """One-line source of `value`, or None when it must span lines (a string with newlines)."""
    if isinstance(value, _Code):
        return str(value)
    if isinstance(value, str):
        return None if "\n" in value[:-1] else _str(value)
    if isinstance(value, dict):
        items = [(_flat(k), _flat(v)) for k, v in value.items()]
        if any(k is None or v is None for k, v in items):
            return None
        return "{" + ", ".join(f"{k}: {v}" for k, v in items) + "}"
    if isinstance(value, (list, tuple)):
        items = [_flat(v) for v in value]
        return None if any(i is None for i in items) else "[" + ", ".join(items) + "]"
    return _scalar(value)


def _scalar(value) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return f"float({str(value)!r})"
    if value is None or isinstance(value, (bool, int, float)):
        return repr(value)
    raise TypeError(f"cannot write {type(value).__name__} as a literal")


def _signature(opening: str, items: list[str], closing: str) -> list[str]:
    """`opening` items `closing` on one line when it fits, else one item per line (indented one
    level deeper than `opening`)."""
    one = opening + ", ".join(items) + closing.strip()
    if len(one) <= WIDTH:
        return [one]
    pad = " " * (len(opening) - len(opening.lstrip()) + 4)
    return [opening] + [f"{pad}{item}," for item in items] + [closing]


# ---------------------------------------------------------------------------------------------
# YAML (imports the kfp SDK)


def write_yaml(module: KfpModule, yaml_path, *, python_path=None) -> Path:
    """Compile the generated module with the kfp SDK and write the pipeline YAML.

    The module is written to `python_path` (or a temporary file) and imported from there. The YAML
    is what `kfp.compiler.Compiler` writes, except for its leading comment block, which is ours:
    KFP's breaks the YAML when a parameter's default holds a newline.
    """
    import yaml
    from google.protobuf import json_format

    yaml_path = Path(yaml_path)
    with tempfile.TemporaryDirectory(prefix="nbscale-kfp-") as tmp:
        path = Path(python_path) if python_path else Path(tmp) / "pipeline_dsl.py"
        path.write_text(module.text, encoding="utf-8")
        with _KFP_LOCK:
            pipeline_func = _import(path, module.pipeline_function)
            spec = json_format.MessageToDict(pipeline_func.pipeline_spec)
            documents = [spec]
            if pipeline_func.platform_spec.platforms:
                documents.append(json_format.MessageToDict(pipeline_func.platform_spec))
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml: 7× faster on a 60-step pipeline
    text = _yaml_header(spec, module) + yaml.dump_all(documents, Dumper=dumper, sort_keys=True, allow_unicode=True)
    yaml_path.write_text(text, encoding="utf-8")
    return yaml_path


def _import(path: Path, attribute: str):
    name = f"nbscale_kfp_{uuid.uuid4().hex}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
        return getattr(module, attribute)
    finally:
        sys.modules.pop(name, None)


_COMMENT_TYPES = {"NUMBER_INTEGER": "int", "NUMBER_DOUBLE": "float", "STRING": "str", "BOOLEAN": "bool",
                  "LIST": "list", "STRUCT": "dict"}


def _yaml_header(spec: dict, module: KfpModule) -> str:
    lines = ["# PIPELINE DEFINITION", f"# Name: {spec['pipelineInfo']['name']}"]
    description = spec["pipelineInfo"].get("description")
    if description:
        lines.append("# Description: " + " ".join(description.split()))
    parameters = spec["root"].get("inputDefinitions", {}).get("parameters", {})
    if parameters:
        lines.append("# Inputs:")
    for name in sorted(parameters):
        kind = _COMMENT_TYPES.get(parameters[name]["parameterType"], parameters[name]["parameterType"])
        note = "" if is_native(module.parameter_types.get(name, kind)) else " (JSON text)"
        default = parameters[name].get("defaultValue")
        if kind == "int" and isinstance(default, float) and default.is_integer():
            default = int(default)  # protobuf keeps every number as a double
        default = json.dumps(default, ensure_ascii=False)
        lines.append(f"#    {name}: {kind}{note} [Default: {default}]")
    lines.append(f"# Generated by nbscale {__version__}; regenerate with `nbscale compile NOTEBOOK --target kfp`.")
    return "".join(f"{line}\n" for line in lines)


def compile_pipeline(pipeline: Pipeline, options: KfpOptions, yaml_path, *, python_path=None) -> KfpModule:
    """generate + write_yaml: the YAML (and the DSL module, when `python_path` is given)."""
    module = generate(pipeline, options)
    write_yaml(module, yaml_path, python_path=python_path)
    return module


