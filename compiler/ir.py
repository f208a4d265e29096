"""The pipeline IR: the JSON contract between compiler, run time, KFP target and panel."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field, fields

from .diagnostics import ERROR, Diagnostic

SCHEMA = "nbscale.pipeline/1"


@dataclass
class Parameter:
    name: str
    type: str  # int, float, str, bool, list, dict, none
    default: object
    cell: int | None = None
    line: int | None = None


@dataclass
class Step:
    name: str
    cells: list[int]
    source: list[str]  # original text of each cell in `cells`, IPython syntax kept
    inputs: list[str] = field(default_factory=list)  # names received from upstream steps
    sources: dict[str, str] = field(default_factory=dict)  # input name → step that hands it on
    parameters: list[str] = field(default_factory=list)  # pipeline parameters the step reads
    # process-wide settings earlier steps made, replayed before the cells, in notebook order:
    # {"cell", "line", "source": the statement, "imports": what it needs} (compiler/settings.py)
    settings: list[dict] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)  # names handed on to downstream steps
    groups: list[list[str]] = field(default_factory=list)  # outputs that may share objects
    defines: list[str] = field(default_factory=list)  # every name the step binds or may mutate
    after: list[str] = field(default_factory=list)  # every direct upstream step
    resources: dict = field(default_factory=dict)
    image: str | None = None
    retries: int = 0
    cache: bool = True
    timeout: int | None = None  # seconds
    hash: str = ""


@dataclass
class Prelude:
    cells: list[int] = field(default_factory=list)
    source: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)


@dataclass
class Metrics:
    step: str | None = None
    names: list[str] = field(default_factory=list)
    exprs: dict[str, str] = field(default_factory=dict)  # metric name → Python expression
    # expressions whose value is a dict of metric name → number, named by its keys alone
    # (a dict comprehension line, `**scores` in a dict)
    spread: list[str] = field(default_factory=list)


@dataclass
class Pipeline:
    name: str
    notebook: str
    parameters: list[Parameter] = field(default_factory=list)
    prelude: Prelude = field(default_factory=Prelude)
    steps: list[Step] = field(default_factory=list)
    metrics: Metrics = field(default_factory=Metrics)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    schema: str = SCHEMA

    @property
    def has_errors(self) -> bool:
        return any(d.severity == ERROR for d in self.diagnostics)

    def step(self, name: str) -> Step:
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(name)

    def to_json(self, copied: bool = True) -> dict:
        """The IR as JSON values; `copied=False` shares the lists and dicts of the records (for
        writing it out at once, without copying every value of a big pipeline first)."""
        record = plain if copied else _shallow
        return {
            "schema": self.schema,
            "name": self.name,
            "notebook": self.notebook,
            "parameters": [record(p) for p in self.parameters],
            "prelude": record(self.prelude),
            "steps": [record(s) for s in self.steps],
            "metrics": record(self.metrics),
            "diagnostics": [d.to_json() for d in self.diagnostics],
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(copied=False), indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, data: dict) -> Pipeline:
        schema = data.get("schema") if isinstance(data, dict) else None
        if schema != SCHEMA:
            raise ValueError(f"not an nbscale pipeline IR (schema {schema!r}, expected {SCHEMA!r})")
        try:
            return cls(
                name=data["name"],
                notebook=data["notebook"],
                parameters=[Parameter(**p) for p in data["parameters"]],
                prelude=Prelude(**data["prelude"]),
                steps=[Step(**s) for s in data["steps"]],
                metrics=Metrics(**data["metrics"]),
                diagnostics=[Diagnostic.from_json(d) for d in data["diagnostics"]],
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"malformed nbscale pipeline IR: {exc!r}") from None


def plain(record) -> dict:
    """`dataclasses.asdict(record)` for the IR's records, whose fields hold JSON-like values: the
    same dict, made without asdict's deep copy of every string (a 5,000-cell IR: 80 → 20 ms)."""
    return {f.name: _copied(getattr(record, f.name)) for f in fields(record)}


def _shallow(record) -> dict:
    return {f.name: getattr(record, f.name) for f in fields(record)}


def _copied(value):
    kind = type(value)
    if kind is str or kind is int or kind is float or kind is bool or value is None:
        return value
    if kind is list or kind is tuple:
        return kind(_copied(v) for v in value)
    if kind is dict:
        return {_copied(k): _copied(v) for k, v in value.items()}
    return copy.deepcopy(value)  # anything else, as asdict copies it
