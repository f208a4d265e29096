"""The whole cell-tag grammar: nbscale's own tags and Kale's spellings as aliases.

`parse_cell_tags` turns one cell's tags into a `CellTags`; problems become diagnostics.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

from .diagnostics import Diagnostic
from .errors import NbscaleCompileError
from .image_reference import image_problem

# Role tags: at most one per cell.
IMPORTS, FUNCTIONS, PARAMETERS, METRICS, SKIP = "imports", "functions", "parameters", "metrics", "skip"
ROLE_TAGS = (IMPORTS, FUNCTIONS, PARAMETERS, METRICS, SKIP)
# Tags of the form key:value.
VALUE_TAGS = ("step", "after", "resources", "image", "retries", "cache", "timeout")

ALIASES = {  # Kale's spellings, so Kale notebooks run unchanged
    "block": "step",
    "prev": "after",
    "pipeline-parameters": PARAMETERS,
    "pipeline-metrics": METRICS,
    "injected-parameters": PARAMETERS,  # papermill's: its values override the parameters cell
}

# Tags other tools put on cells; they are theirs, not ours, and are left alone.
FOREIGN_TAGS = frozenset({
    "hide-input", "hide-output", "hide-cell", "remove-input",
    "remove-output", "remove-cell", "raises-exception", "skip-execution", "thebe-init",
    "full-width", "margin", "output_scroll", "scroll-output", "nbval-ignore-output",
    "nbval-skip", "nbval-raises-exception", "nbval-check-output",
})
# Kale's tags for the step's pod (`label:team:ml`, `annotation:KEY:VALUE`): Kubernetes metadata
# nbscale does not set; a Kale notebook holding them still compiles, told they do nothing.
KALE_POD_METADATA = ("label:", "annotation:")

# nbformat forbids commas in tags, so `;` separates lists too: resources:cpu=2;memory=4Gi
LIST_SEPARATOR = re.compile(r"[,;]")
# at most MAX_STEP_NAME characters: a step's name names its log files (a file name holds 255 bytes)
MAX_STEP_NAME = 100
STEP_NAME = re.compile(rf"^[A-Za-z_][A-Za-z0-9_\-]{{0,{MAX_STEP_NAME - 1}}}$")
# re.ASCII: \d must not match other scripts' digits ('٣', '²'), which int() rejects or misreads.
# Numbers have at most 18 digits: they fit the 64-bit ints of Kubernetes and KFP (and Python
# writes no int of more than 4,300 digits as text at all).
CPU = re.compile(r"^(\d{1,18}(\.\d{1,18})?|\d{1,18}m)$", re.ASCII)
MEMORY = re.compile(r"^\d{1,18}(\.\d{1,18})?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$", re.ASCII)  # Kubernetes quantities
DURATION = re.compile(r"^(?:(\d{1,18})h)?(?:(\d{1,18})m)?(?:(\d{1,18})s)?$", re.ASCII)
WHOLE = re.compile(r"\d{1,18}", re.ASCII)
MAX_RETRIES = 1000
MAX_TIMEOUT = 10 * 365 * 24 * 3600  # seconds
RESOURCE_KEYS = ("cpu", "memory", "gpu")
# bytes per unit of a memory quantity (Kubernetes writes `k`, the KFP SDK `K`)
MEMORY_FACTORS = {"": 1, "k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
                  "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}


@dataclass
class CellTags:
    role: str | None = None
    step: str | None = None
    after: list[str] = field(default_factory=list)
    options: dict = field(default_factory=dict)  # resources, image, retries, cache, timeout

    @property
    def has_step_options(self) -> bool:
        return bool(self.after or self.options)


def known_tags() -> list[str]:
    role_aliases = (alias for alias, tag in ALIASES.items() if tag in ROLE_TAGS)
    return [*ROLE_TAGS, *(f"{k}:" for k in VALUE_TAGS), *role_aliases, "block:", "prev:", "limit:"]


def acted_on(tags) -> list[str]:
    """The tags of nbscale's grammar among `tags` (well formed or not): those a code cell would
    act on, or be told were wrong."""
    found = []
    for tag in tags:
        key = tag.partition(":")[0]
        if ALIASES.get(key, key) in (*ROLE_TAGS, *VALUE_TAGS, "limit"):
            found.append(tag)
    return found


def parse_cell_tags(tags, cell: int) -> tuple[CellTags, list[Diagnostic]]:
    parsed, problems = CellTags(), []
    for tag in tags:
        try:
            _apply(tag, parsed)
        except _TagError as exc:
            problems.append(Diagnostic(exc.code, exc.message, cell=cell, hint=exc.hint))
    return parsed, problems


class _TagError(NbscaleCompileError):
    def __init__(self, code, message, hint=None):
        super().__init__(message)
        self.code, self.message, self.hint = code, message, hint


MAX_TAG = 1000  # characters: a tag is a name or a short setting; a longer one is quoted shortened


def _apply(tag: str, parsed: CellTags) -> None:
    if tag in FOREIGN_TAGS:
        return
    if len(tag) > MAX_TAG:
        raise _TagError("bad-tag-value", f"a tag of {len(tag):,} characters ('{tag[:40]}…')",
                        f"tags are names and short settings, of at most {MAX_TAG} characters")
    if tag.startswith("limit:"):  # Kale: limit:RESOURCE:VALUE
        _apply_kale_limit(tag, parsed)
        return
    if tag.startswith(KALE_POD_METADATA):
        kind = "label" if tag.startswith("label:") else "annotation"
        raise _TagError("kale-pod-metadata", f"'{tag}': Kale's pod {kind} tag is ignored: nbscale sets no {kind}s "
                        "on the step's pod", "on Kubeflow, set them on the pipeline's run or namespace instead; "
                        "remove the tag to silence this")
    key, sep, value = tag.partition(":")
    key = ALIASES.get(key, key)
    if not sep:
        if key not in ROLE_TAGS:
            raise _unknown(tag)
        if parsed.role and parsed.role != key:
            raise _TagError("bad-tag-value", f"cell has two roles: '{parsed.role}' and '{key}'",
                            "a cell is one of imports, functions, parameters, metrics or skip")
        parsed.role = key
        return
    if key not in VALUE_TAGS:
        raise _unknown(tag)
    value = value.strip()
    if not value:
        raise _TagError("bad-tag-value", f"tag '{tag}' has no value", f"write it as '{key}:VALUE'")
    getattr(_Values, key)(value, parsed, tag)


def _unknown(tag):
    close = difflib.get_close_matches(tag, known_tags(), n=1, cutoff=0.6)
    if not close:
        close = difflib.get_close_matches(tag.split(":")[0] + ":", known_tags(), n=1, cutoff=0.6)
    hint = f"did you mean '{close[0]}'?" if close else "see docs/tags.md for the tags nbscale knows"
    return _TagError("unknown-tag", f"unknown tag '{tag}'", hint)


class _Values:
    """One parser per key:value tag; each fills `parsed` or raises _TagError."""

    @staticmethod
    def step(value, parsed, tag):
        _check_step_name(value, tag)
        if parsed.step and parsed.step != value:
            raise _TagError("bad-tag-value", f"cell has two step tags: '{parsed.step}' and '{value}'")
        parsed.step = value

    @staticmethod
    def after(value, parsed, tag):
        for name in filter(None, (v.strip() for v in LIST_SEPARATOR.split(value))):
            _check_step_name(name, tag)
            parsed.after.append(name)

    @staticmethod
    def resources(value, parsed, tag):
        res = parsed.options.setdefault("resources", {})
        for item in filter(None, (v.strip() for v in LIST_SEPARATOR.split(value))):
            name, eq, amount = item.partition("=")
            if not eq:
                raise _TagError("bad-tag-value", f"'{item}' in '{tag}' is not NAME=VALUE",
                                "example: resources:cpu=2,memory=4Gi,gpu=1")
            res[name.strip()] = _resource_value(name.strip(), amount.strip(), tag)

    @staticmethod
    def image(value, parsed, tag):
        problem = image_problem(value)
        if problem is not None:
            raise _TagError("bad-tag-value", f"'{tag}': {problem}")
        parsed.options["image"] = value

    @staticmethod
    def retries(value, parsed, tag):
        if not _is_whole(value) or int(value) > MAX_RETRIES:
            raise _TagError("bad-tag-value", f"'{tag}': retries must be a whole number from 0 to {MAX_RETRIES:,}")
        parsed.options["retries"] = int(value)

    @staticmethod
    def cache(value, parsed, tag):
        flags = {"on": True, "true": True, "off": False, "false": False}
        if value.lower() not in flags:
            raise _TagError("bad-tag-value", f"'{tag}': cache takes 'on' or 'off'")
        parsed.options["cache"] = flags[value.lower()]

    @staticmethod
    def timeout(value, parsed, tag):
        parsed.options["timeout"] = parse_duration(value, tag)


def parse_duration(value: str, tag: str = "") -> int:
    """'90' or '90s' → 90; '30m' → 1800; '1h30m' → 5400 (seconds)."""
    if _is_whole(value):
        seconds = int(value)
    else:
        match = DURATION.match(value)
        if not match or not any(match.groups()):
            raise _TagError("bad-tag-value", f"'{tag or value}': not a duration",
                            "examples: timeout:90s, timeout:30m, timeout:1h30m")
        h, m, s = (int(g or 0) for g in match.groups())
        seconds = h * 3600 + m * 60 + s
    if seconds <= 0:
        raise _TagError("bad-tag-value", f"'{tag or value}': a timeout must be positive")
    if seconds > MAX_TIMEOUT:  # (a thread waits at most 292 years; KFP keeps 32-bit seconds)
        raise _TagError("bad-tag-value", f"'{tag or value}': a timeout of at most 10 years ({MAX_TIMEOUT:,} s)")
    return seconds


def _check_step_name(name, tag):
    if not STEP_NAME.match(name):
        if len(name) > 60:
            name, tag = name[:57] + "...", "step:..."
        raise _TagError("bad-tag-value", f"'{name}' in '{tag}' is not a valid step name",
                        f"step names start with a letter or '_' and hold letters, digits, '_', '-', at most "
                        f"{MAX_STEP_NAME} characters")


def _resource_value(name, amount, tag):
    if name == "cpu" and CPU.match(amount):
        return float(amount[:-1]) / 1000 if amount.endswith("m") else _number(amount)
    if name == "memory" and MEMORY.match(amount):
        return amount
    if name == "gpu" and _is_whole(amount):
        return int(amount)
    if name not in RESOURCE_KEYS:
        raise _TagError("bad-tag-value", f"unknown resource '{name}' in '{tag}'",
                        "resources are cpu, memory and gpu")
    raise _TagError("bad-tag-value", f"'{amount}' is not a valid {name} amount in '{tag}'",
                    "examples: cpu=2, cpu=500m, memory=4Gi, gpu=1")


def _is_whole(text):
    return WHOLE.fullmatch(text) is not None


def _number(text):
    value = float(text)
    return int(value) if value.is_integer() else value


def _apply_kale_limit(tag, parsed):
    # limit:cpu:2, limit:memory:4Gi, limit:nvidia.com/gpu:1
    _, _, rest = tag.partition(":")
    name, sep, amount = rest.rpartition(":")
    if not sep or not name:
        raise _TagError("bad-tag-value", f"'{tag}' is not limit:RESOURCE:VALUE",
                        "example: limit:nvidia.com/gpu:1 (or resources:gpu=1)")
    name = "gpu" if name.endswith("/gpu") else name
    parsed.options.setdefault("resources", {})[name] = _resource_value(name, amount, tag)


def kale_gpu_kind(tag: str) -> str | None:
    """The kind of GPU a Kale limit tag asks for (`limit:amd.com/gpu:1` → `amd.com/gpu`), or None
    for any other tag. The step gets GPUs of one kind for all: the KFP target's `accelerator`."""
    if not tag.startswith("limit:"):
        return None
    name, sep, amount = tag[len("limit:"):].rpartition(":")
    return name if sep and name.endswith("/gpu") and _is_whole(amount) and int(amount) > 0 else None
