"""Run one pipeline step in a fresh namespace, in the current process.

`execute_step` is what the engines call inside a task: prelude cells, then the parameters, then
the inputs, then the step's cells one by one — each through IPython, so `%magic`, `%%cellmagic`
and `!shell` work as in the notebook. It captures what the step prints and displays, maps a
failure back to notebook cell and line, and measures wall time, CPU time and peak memory.

One IPython shell serves the whole process, but every step gets a new user namespace (a new
`__main__` module); the shell's own state that could carry values from one step to the next
(output history, `_`, `__future__` flags, event callbacks) is reset around each step. Steps in
one process run one at a time (a process-wide lock): stdout, the working directory and
`sys.modules["__main__"]` are process-wide.
"""

from __future__ import annotations

import atexit
import base64
import builtins
import difflib
import hashlib
import io
import math
import numbers
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import traceback
import types
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import IPython
import psutil
from IPython.core.compilerop import CachingCompiler
from IPython.core.display_functions import display as ipython_display
from IPython.core.displayhook import DisplayHook
from IPython.core.displaypub import DisplayPublisher
from IPython.core.interactiveshell import InteractiveShell
from IPython.core.profiledir import ProfileDir
from traitlets import Type
from traitlets.config import Config

from ..compiler.ir import Metrics, Prelude, Step

__all__ = ["Frame", "StepError", "StepResult", "execute_step"]

SUCCEEDED = "succeeded"
FAILED = "failed"

RSS_INTERVAL_S = 0.01


# ---------------------------------------------------------------------------------------------
# Results


@dataclass
class Frame:
    """One traceback frame that lies in a notebook cell."""

    cell: int
    line: int | None
    name: str  # function name, "<module>" for the cell's top level


@dataclass
class StepError:
    """Why a step failed, mapped back to the notebook.

    `cell`/`line` locate the deepest frame in a notebook cell (a prelude cell when the failure is
    inside a function defined there); `running_cell` is the step's cell that was executing.
    """

    cell: int | None
    line: int | None
    ename: str
    evalue: str
    traceback: str
    frames: list[Frame] = field(default_factory=list)
    running_cell: int | None = None


@dataclass
class StepResult:
    step: str
    status: str  # SUCCEEDED | FAILED
    outputs: dict = field(default_factory=dict)
    namespace_values: dict = field(default_factory=dict)
    stdout: str = ""
    stderr: str = ""
    displays: list[dict] = field(default_factory=list)
    error: StepError | None = None
    wall_s: float = 0.0
    cpu_s: float = 0.0
    peak_rss_bytes: int = 0
    metrics: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    started_at: float = 0.0  # epoch seconds
    # Per executed cell, in order: {"cell", "started", "finished", "outputs"} where outputs are
    # nbformat outputs (stream, display_data, execute_result) in the order the cell made them.
    cells: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == SUCCEEDED

    def to_json(self) -> dict:
        """A JSON-safe summary: everything but the values (outputs are listed by name)."""
        return {
            "step": self.step,
            "status": self.status,
            "outputs": sorted(self.outputs),
            "stdout": self.stdout,
            "stderr": self.stderr,
            "displays": _json_safe(self.displays),
            "error": asdict(self.error) if self.error is not None else None,
            "wall_s": self.wall_s,
            "cpu_s": self.cpu_s,
            "peak_rss_bytes": self.peak_rss_bytes,
            "metrics": {k: v if math.isfinite(v) else None for k, v in self.metrics.items()},
            "warnings": list(self.warnings),
            "started_at": self.started_at,
            "cells": _json_safe(self.cells),
        }


# ---------------------------------------------------------------------------------------------
# The step


def execute_step(
    step,
    prelude,
    parameters: dict,
    inputs: dict,
    *,
    metrics=None,
    cwd: str | None = None,
    notebook: str = "",
) -> StepResult:
    """Run `step` in a fresh namespace: prelude cells, parameters, inputs, then its cells.

    `step`, `prelude` and `metrics` may be IR dataclasses or their JSON dicts. Parameter and
    input values are bound as Python objects. KeyboardInterrupt propagates; any other failure
    of the step's code is reported in the result.
    """
    step = _coerce(step, Step)
    prelude = _coerce(prelude, Prelude) if prelude is not None else Prelude()
    metrics = _coerce(metrics, Metrics) if metrics is not None else None
    if len(step.cells) != len(step.source):
        raise ValueError(f"step {step.name!r}: {len(step.cells)} cells but {len(step.source)} sources")
    if len(prelude.cells) != len(prelude.source):
        raise ValueError(f"prelude: {len(prelude.cells)} cells but {len(prelude.source)} sources")

    with _LOCK:
        shell = _get_shell()
        if shell.step_run is not None:
            raise RuntimeError("execute_step cannot run inside a step that is running")
        run = _StepRun(step, prelude)
        result = StepResult(step=step.name, status=SUCCEEDED, started_at=time.time())
        sampler = _RssSampler()
        wall0, cpu0 = time.perf_counter(), time.process_time()
        with sampler, _StepEnvironment(shell, run, cwd=cwd, notebook=notebook) as ns:
            result.error = _run_cells(shell, run, prelude.cells, prelude.source)
            if result.error is None:
                ns.update(parameters or {})
                ns.update(_rebind_functions(inputs or {}, ns))
                result.error = _run_cells(shell, run, step.cells, step.source)
            if result.error is None and metrics is not None and metrics.step == step.name:
                result.metrics, metric_warnings = _evaluate_metrics(metrics, ns)
                result.warnings.extend(metric_warnings)
            result.namespace_values = {n: ns[n] for n in step.defines if n in ns}
            if result.error is None:
                missing = [n for n in step.outputs if n not in ns]
                if missing:
                    result.error = _missing_outputs(step, missing, notebook)
                else:
                    result.outputs = {n: ns[n] for n in step.outputs}
                    _remember_cells(result.outputs.values())
        result.wall_s = time.perf_counter() - wall0
        result.cpu_s = time.process_time() - cpu0
        result.peak_rss_bytes = sampler.peak
        # `!cmd` output comes through a pseudo-terminal, with \r\n line ends
        result.stdout = run.stdout.getvalue().replace("\r\n", "\n")
        result.stderr = _filter_noise(run.stderr.getvalue().replace("\r\n", "\n"))
        result.displays = run.displays
        result.cells = run.cell_outputs()
        if result.error is not None:
            result.status = FAILED
            result.outputs = {}
        return result


def _coerce(value, cls):
    if isinstance(value, cls):
        return value
    if isinstance(value, Mapping):
        return cls(**value)
    raise TypeError(f"expected {cls.__name__} or dict, got {type(value).__name__}")


def _run_cells(shell, run: _StepRun, cells: list[int], sources: list[str]) -> StepError | None:
    for cell, source in zip(cells, sources):
        run.start_cell(cell)
        shell.compile.current = (cell, source)
        run.pending_tracebacks.clear()
        try:
            outcome = shell.run_cell(source, store_history=True)
        finally:
            shell.compile.current = None
            run.finish_cell()
        exc = outcome.error_before_exec or outcome.error_in_exec
        if isinstance(exc, KeyboardInterrupt):
            raise exc
        # Tracebacks IPython showed that are not this cell's failure (a failing event callback,
        # a traceback the code asked for) go to stderr, as they would be printed in Jupyter.
        for shown in run.pending_tracebacks:
            if shown is not exc:
                run.stderr.write(_format_exception(shown, run.sources))
        run.pending_tracebacks.clear()
        if exc is not None:
            before_exec = outcome.error_before_exec is not None
            return _step_error(exc, cell, run.sources, before_exec=before_exec)
    return None


def _missing_outputs(step: Step, missing: list[str], notebook: str) -> StepError:
    names = ", ".join(repr(n) for n in missing)
    where = f" of {notebook}" if notebook else ""
    message = (
        f"step {step.name!r}{where} finished without defining its output(s) {names}: "
        f"a downstream step reads {'it' if len(missing) == 1 else 'them'}, but no cell of the "
        f"step bound {'that name' if len(missing) == 1 else 'those names'}"
    )
    return StepError(
        cell=None, line=None, ename="MissingOutputError", evalue=message, traceback=message + "\n"
    )


# ---------------------------------------------------------------------------------------------
# Inputs: functions from earlier steps read this step's globals


def _rebind_functions(inputs: dict, ns: dict) -> dict:
    """Give notebook functions among `inputs` this namespace as their globals.

    A function defined in an earlier step arrives (cloudpickled by value) with a private globals
    dict holding the values it read back then; in the notebook it reads the current ones.
    Functions whose globals are a real module's (library code) are left alone.
    """
    rebound: dict[int, types.FunctionType] = {}
    out = {}
    for name, value in inputs.items():
        if _is_notebook_function(value) and value.__globals__ is not ns:
            if id(value) not in rebound:
                rebound[id(value)] = _rebind(value, ns)
            value = rebound[id(value)]
        out[name] = value
    return out


_MAIN_NAMES = ("__main__", "__mp_main__", None)

# cloudpickle (3.1+) renames the code it pickles by value "<dynamic-code>", which would lose the
# cell a function was defined in; output functions carry their code name in this attribute.
_ORIGIN = "__nbscale_code_name__"
_DYNAMIC_CODE = "<dynamic-code>"


def _is_notebook_function(value) -> bool:
    # Judged by the globals, not __module__: functools.wraps copies __module__ onto library
    # wrappers, whose globals must stay the library's.
    return isinstance(value, types.FunctionType) and value.__globals__.get("__name__") in _MAIN_NAMES


def _rebind(fn: types.FunctionType, ns: dict) -> types.FunctionType:
    code = fn.__code__
    origin = fn.__dict__.get(_ORIGIN)
    if isinstance(origin, str) and code.co_filename == _DYNAMIC_CODE:
        code = _with_filename(code, origin)
    new = types.FunctionType(code, ns, fn.__name__, fn.__defaults__, fn.__closure__)
    new.__kwdefaults__ = fn.__kwdefaults__
    new.__qualname__ = fn.__qualname__
    new.__doc__ = fn.__doc__
    new.__module__ = fn.__module__
    new.__annotations__ = fn.__annotations__
    new.__dict__.update(fn.__dict__)
    if hasattr(fn, "__type_params__"):  # Python 3.12+
        new.__type_params__ = fn.__type_params__
    return new


def _remember_cells(values) -> None:
    for value in values:
        if _is_notebook_function(value) and _CODE_NAME.match(value.__code__.co_filename):
            try:
                value.__dict__[_ORIGIN] = value.__code__.co_filename
            except (AttributeError, TypeError):
                pass


def _with_filename(code: types.CodeType, filename: str) -> types.CodeType:
    consts = tuple(
        _with_filename(c, filename)
        if isinstance(c, types.CodeType) and c.co_filename == _DYNAMIC_CODE else c
        for c in code.co_consts
    )
    return code.replace(co_filename=filename, co_consts=consts)


# ---------------------------------------------------------------------------------------------
# Metrics


def _evaluate_metrics(metrics: Metrics, ns: dict) -> tuple[dict[str, float], list[str]]:
    exprs = dict(metrics.exprs)
    for name in metrics.names:
        exprs.setdefault(name, name)
    values: dict[str, float] = {}
    warnings: list[str] = []
    for name, expr in exprs.items():
        try:
            value = eval(compile(expr, f"<metric {name}>", "eval"), ns)
        except KeyboardInterrupt:
            raise
        except BaseException as e:  # a metric that cannot be computed must not fail the step
            warnings.append(f"metric {name!r} ({expr}) could not be evaluated: {type(e).__name__}: {e}")
            continue
        _add_metric(name, value, values, warnings)
    return values, warnings


def _add_metric(name: str, value, values: dict[str, float], warnings: list[str]) -> None:
    if isinstance(value, Mapping):
        for key, item in value.items():
            _add_metric(f"{name}.{key}", item, values, warnings)
        return
    number = _as_number(value)
    if number is None:
        warnings.append(
            f"metric {name!r} is not a number (a {type(value).__name__}: {_short_repr(value)}); skipped"
        )
    else:
        values[name] = number


def _as_number(value) -> float | None:
    if isinstance(value, (bool, numbers.Real)):  # numpy integer/floating types are registered
        return float(value)
    if getattr(value, "shape", None) == () and hasattr(value, "item"):  # numpy bool_, 0-d arrays
        item = value.item()
        if isinstance(item, (bool, numbers.Real)):
            return float(item)
    return None


def _short_repr(value, limit: int = 60) -> str:
    try:
        text = repr(value)
    except Exception:
        text = object.__repr__(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---------------------------------------------------------------------------------------------
# Errors: map code names back to notebook cells and lines

# Code compiled from a cell is named "<cell 4 [digest]>", or "<cell 4 +2 [digest]>" when its
# first line is line 3 of the cell (the body of a cell magic, leading blank lines). The name
# travels with the code object — also when a function is pickled by value to another process.
_CODE_NAME = re.compile(r"^<cell (\d+)(?: \+(\d+))? \[[0-9a-f]+\]>$")
# Exact line maps for code whose transformation changed line numbers (magics continued over
# several lines), known only in the process that compiled it; the name's offset is the fallback.
_LINE_MAPS: dict[str, tuple[int, ...]] = {}
_LINE_MAPS_MAX = 20_000
_TIMED_CODE = frozenset({"<timed exec>", "<timed eval>"})


class _CellCompiler(CachingCompiler):
    """Names each cell's code after its notebook cell, so tracebacks can be mapped back."""

    def __init__(self):
        super().__init__()
        self.current: tuple[int, str] | None = None  # (cell index, original source)
        self.last_parsed: str | None = None

    def ast_parse(self, source, filename="<unknown>", symbol="exec"):
        self.last_parsed = source
        return super().ast_parse(source, filename, symbol)

    def __call__(self, source, filename, symbol, **kwargs):
        # %time / %%time compile the code they parsed last under a fixed name: name it after
        # the cell instead, so a failure in a timed body maps to its line.
        if filename in _TIMED_CODE and self.current is not None and self.last_parsed:
            filename = self.cache(self.last_parsed, raw_code=self.last_parsed)
        return super().__call__(source, filename, symbol, **kwargs)

    def get_code_name(self, raw_code, transformed_code, number):
        if self.current is None:
            return super().get_code_name(raw_code, transformed_code, number)
        cell, source = self.current
        line_map = _line_map(raw_code, transformed_code, _start_line(source, raw_code))
        offset = line_map[0] - 1 if line_map else 0
        digest = hashlib.sha1(f"{cell}\0{offset}\0{transformed_code}".encode()).hexdigest()[:12]
        name = f"<cell {cell}{f' +{offset}' if offset else ''} [{digest}]>"
        if any(line != i + 1 + offset for i, line in enumerate(line_map)):
            if len(_LINE_MAPS) >= _LINE_MAPS_MAX:
                _LINE_MAPS.clear()
            _LINE_MAPS[name] = tuple(line_map)
        return name


def _start_line(source: str, raw_code: str) -> int:
    """0-based line of `source` where `raw_code` (the cell, or a cell magic's body) starts."""
    if raw_code == source or not raw_code.strip():
        return 0
    pos = source.find(raw_code)
    if pos < 0:
        stripped = raw_code.lstrip("\n")
        pos = source.find(stripped.rstrip())
        if pos < 0:
            return 0
        return max(source.count("\n", 0, pos) - (len(raw_code) - len(stripped)), 0)
    return source.count("\n", 0, pos)


def _line_map(raw_code: str, transformed: str, start: int) -> list[int]:
    """1-based cell line for each line of the transformed code.

    IPython's transformations keep line numbers for line magics and `!cmd`, but drop leading
    blank lines and join a magic continued with backslashes into one line.
    """
    raw, new = raw_code.splitlines(), transformed.splitlines()
    if raw == new:
        return [start + j + 1 for j in range(len(new))]
    out = [start + 1] * len(new)
    last = max(len(raw) - 1, 0)
    matcher = difflib.SequenceMatcher(None, raw, new, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        for j in range(j1, j2):
            i = i1 + (j - j1) if tag == "equal" else min(i1 + (j - j1), max(i2 - 1, i1))
            out[j] = start + min(i, last) + 1
    return out


def _cell_location(filename: str, lineno: int | None) -> tuple[int, int | None] | None:
    """(cell, line) for a code name made by _CellCompiler, else None."""
    match = _CODE_NAME.match(filename or "")
    if match is None:
        return None
    cell, offset = int(match.group(1)), int(match.group(2) or 0)
    if lineno is None:
        return cell, None
    line_map = _LINE_MAPS.get(filename)
    if line_map and 1 <= lineno <= len(line_map):
        return cell, line_map[lineno - 1]
    return cell, lineno + offset


_HIDDEN_DIRS = (os.path.dirname(IPython.__file__) + os.sep,)
_THIS_FILE = os.path.abspath(__file__)


def _hidden(filename: str) -> bool:
    return filename.startswith(_HIDDEN_DIRS) or os.path.abspath(filename) == _THIS_FILE


def _step_error(
    exc: BaseException, running_cell: int, sources: dict, *, before_exec: bool
) -> StepError:
    frames: list[Frame] = []
    if isinstance(exc, SyntaxError) and before_exec:  # the cell did not compile
        loc = _cell_location(exc.filename, exc.lineno) or (running_cell, exc.lineno)
        cell, line = loc
    else:
        for summary in traceback.extract_tb(exc.__traceback__):
            loc = _cell_location(summary.filename, summary.lineno)
            if loc is not None:
                frames.append(Frame(cell=loc[0], line=loc[1], name=summary.name))
        cell, line = (frames[-1].cell, frames[-1].line) if frames else (running_cell, None)
    return StepError(
        cell=cell,
        line=line,
        ename=type(exc).__name__,
        evalue=_strip_ansi(str(exc)),
        traceback=_format_exception(exc, sources),
        frames=frames,
        running_cell=running_cell,
    )


_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_MARK = "\x00"  # marks a rewritten filename in a formatted traceback
_MARKED = re.compile(r'File "\x00([^"]*)", line ')


def _strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


_CAUSE = "\nThe above exception was the direct cause of the following exception:\n\n"
_CONTEXT = "\nDuring handling of the above exception, another exception occurred:\n\n"


def _format_exception(exc: BaseException, sources: dict) -> str:
    """Plain-text traceback, "cell 4, line 2" for notebook code, IPython's own frames hidden."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None:  # newest first; each older exception goes in front
        seen.add(id(current))
        parts[:0] = _format_one(current, sources)
        if current.__cause__ is not None:
            older, link = current.__cause__, _CAUSE
        elif current.__context__ is not None and not current.__suppress_context__:
            older, link = current.__context__, _CONTEXT
        else:
            older, link = None, ""
        if older is not None and id(older) in seen:
            older = None
        if older is not None:
            parts.insert(0, link)
        current = older
    return _strip_ansi("".join(parts))


def _format_one(exc: BaseException, sources: dict) -> list[str]:
    out: list[str] = []
    summaries = []
    for summary in traceback.extract_tb(exc.__traceback__):
        loc = _cell_location(summary.filename, summary.lineno)
        if loc is not None:
            summaries.append(_cell_frame(summary, loc, sources))
        elif not _hidden(summary.filename):
            summaries.append(summary)
    if summaries:
        out.append("Traceback (most recent call last):\n")
        out.extend(traceback.StackSummary.from_list(summaries).format())
    shown = exc
    if isinstance(exc, SyntaxError):
        loc = _cell_location(exc.filename, exc.lineno)
        if loc is not None:
            # Written out by hand: copying a SyntaxError to relabel it loses its detail at times.
            text = _source_line(sources.get(loc[0]), loc[1]) or (exc.text or "").strip()
            out.append(f"  cell {loc[0]}, line {loc[1]}\n" + (f"    {text}\n" if text else ""))
            out.append(f"{type(exc).__name__}: {exc.msg}\n")
            return out
    out.extend(traceback.format_exception_only(type(shown), shown))
    return [_MARKED.sub(r"\1, line ", part) for part in out]


def _cell_frame(summary: traceback.FrameSummary, loc: tuple[int, int | None], sources: dict):
    cell, line = loc
    text = _source_line(sources.get(cell), line)
    if text is None:
        text = summary.line or ""
    extra = {}
    same = text.strip() == (summary.line or "").strip()
    if sys.version_info >= (3, 11) and same and summary.lineno == getattr(summary, "end_lineno", -1):
        extra = {"end_lineno": line, "colno": summary.colno, "end_colno": summary.end_colno}
    return traceback.FrameSummary(  # "\n" ends the line as linecache's do (caret offsets)
        _MARK + f"cell {cell}", line, summary.name, lookup_line=False, line=text + "\n", **extra
    )


def _source_line(source: str | None, line: int | None) -> str | None:
    if source is None or not line:
        return None
    lines = source.splitlines()
    return lines[line - 1] if 1 <= line <= len(lines) else None


_NOISE = [
    re.compile(r"^\S*[/\\](IPython|ipykernel|traitlets)[/\\]\S+:\d+: \w*Warning: "),
    re.compile(r"^\s*warn\(\"To exit: use 'exit', 'quit', or Ctrl-D\.\""),
    re.compile(r"Attempting to work in a virtualenv"),
]


def _filter_noise(text: str) -> str:
    """Drop warnings that IPython/ipykernel themselves emit (and the source line after them)."""
    if not text:
        return text
    out: list[str] = []
    skip_indented = False
    for line in text.splitlines(keepends=True):
        if skip_indented and line.startswith((" ", "\t")):
            skip_indented = False
            continue
        skip_indented = False
        if any(p.search(line) for p in _NOISE):
            skip_indented = True
            continue
        out.append(line)
    return "".join(out)


# ---------------------------------------------------------------------------------------------
# Captures


class _Capture(io.StringIO):
    """sys.stdout/sys.stderr during a step; each write also goes to the running cell's outputs."""

    def __init__(self, name: str, run: _StepRun | None = None, stream: str = ""):
        super().__init__()
        self.name = name
        self._run, self._stream = run, stream

    def write(self, text) -> int:
        written = super().write(text)
        if self._run is not None:
            self._run.add_stream(self._stream, text)
        return written

    @property
    def encoding(self):  # some libraries (click, tqdm) read it
        return "utf-8"

    def isatty(self) -> bool:
        return False


class _StepRun:
    """What one step has produced so far; the shell's display hooks write here."""

    def __init__(self, step: Step, prelude: Prelude):
        self.sources = dict(zip(prelude.cells, prelude.source))
        self.sources.update(zip(step.cells, step.source))
        self.current_cell: int | None = None
        self.stdout = _Capture("<stdout>", self, "stdout")
        self.stderr = _Capture("<stderr>", self, "stderr")
        self.displays: list[dict] = []
        self.cells: list[dict] = []  # per executed cell: its outputs in order, start and end
        self._cell: dict | None = None
        self.pending_tracebacks: list[BaseException] = []
        self._display_ids: dict[str, list[dict]] = {}
        self._clear_on_next = False

    def add_display(self, output_type: str, data: dict, metadata: dict | None, **extra) -> None:
        data = {mime: _encode_bytes(value) for mime, value in (data or {}).items()}
        transient = extra.pop("transient", None) or {}
        display_id = transient.get("display_id")
        if extra.pop("update", False):
            for output in self._display_ids.get(display_id, []):
                output["data"], output["metadata"] = data, dict(metadata or {})
            return
        if self._clear_on_next:
            self.clear(wait=False)
        output = {"output_type": output_type, "data": data, "metadata": dict(metadata or {})}
        output.update(extra)
        output["cell"] = self.current_cell
        self.displays.append(output)
        if self._cell is not None:
            self._cell["outputs"].append(output)  # the same object: display updates reach both
        if display_id is not None:
            self._display_ids.setdefault(display_id, []).append(output)

    def clear(self, wait: bool) -> None:
        if wait:
            self._clear_on_next = True
            return
        self._clear_on_next = False
        self.displays = [d for d in self.displays if d["cell"] != self.current_cell]
        if self._cell is not None:
            self._cell["outputs"].clear()  # clear_output() clears printed text too

    def start_cell(self, cell: int) -> None:
        self.current_cell = cell
        self._cell = {"cell": cell, "started": time.time(), "finished": None, "outputs": []}
        self.cells.append(self._cell)

    def finish_cell(self) -> None:
        if self._cell is not None:
            self._cell["finished"] = time.time()

    def add_stream(self, name: str, text: str) -> None:
        if self._cell is None or not text:
            return
        if self._clear_on_next:
            self.clear(wait=False)
        outputs = self._cell["outputs"]
        if outputs and outputs[-1]["output_type"] == "stream" and outputs[-1]["name"] == name:
            outputs[-1]["text"] += text  # consecutive writes make one output, as in Jupyter
        else:
            outputs.append({"output_type": "stream", "name": name, "text": text})

    def cell_outputs(self) -> list[dict]:
        """The cells' outputs as nbformat outputs, text as a kernel sends it (IPython's own
        warnings left out of stderr, as from the step's stderr)."""
        cells = []
        for entry in self.cells:
            outputs = []
            for output in entry["outputs"]:
                output = {k: v for k, v in output.items() if k != "cell"}
                if output["output_type"] == "stream" and output["name"] == "stderr":
                    output["text"] = _filter_noise(output["text"])
                    if not output["text"]:
                        continue
                outputs.append(output)
            cells.append({**entry, "outputs": outputs})
        return cells


def _encode_bytes(value):
    if isinstance(value, (bytes, bytearray)):  # image/png and friends, as nbformat stores them
        return base64.b64encode(bytes(value)).decode("ascii")
    return value


def _json_safe(value):
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (str, int, bool)):
        return value
    if isinstance(value, (bytes, bytearray)):
        return _encode_bytes(value)
    return _short_repr(value, 1000)


class _RssSampler:
    """Peak resident set size while the block runs: sampled every 10 ms, plus start and end."""

    def __init__(self, interval: float = RSS_INTERVAL_S):
        self.interval = interval
        self._process = psutil.Process()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="nbscale-rss", daemon=True)
        self.peak = 0

    def _rss(self) -> int:
        try:
            return self._process.memory_info().rss
        except psutil.Error:
            return 0

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, self._rss())

    def __enter__(self):
        self.peak = self._rss()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())
        return False


# ---------------------------------------------------------------------------------------------
# The shell


class _StepDisplayHook(DisplayHook):
    """Records a cell's last expression as an execute_result instead of printing `Out[n]:`."""

    def start_displayhook(self):
        pass

    def write_output_prompt(self):
        pass

    def write_format_data(self, format_dict, md_dict=None) -> None:
        run = getattr(self.shell, "step_run", None)
        if run is None:
            return super().write_format_data(format_dict, md_dict)
        run.add_display(
            "execute_result", format_dict, md_dict, execution_count=self.shell.execution_count
        )

    def finish_displayhook(self):
        pass


class _StepDisplayPublisher(DisplayPublisher):
    """Records `display(...)` output as display_data."""

    def publish(self, data, metadata=None, source=None, *, transient=None, update=False, **kw):
        run = getattr(self.shell, "step_run", None)
        if run is None:
            return super().publish(data, metadata, transient=transient, update=update)
        run.add_display("display_data", data, metadata, transient=transient, update=update)

    def clear_output(self, wait=False):
        run = getattr(self.shell, "step_run", None)
        if run is not None:
            run.clear(wait)


class _StepShell(InteractiveShell):
    displayhook_class = Type(_StepDisplayHook)
    display_pub_class = Type(_StepDisplayPublisher)
    compiler_class = Type(_CellCompiler)

    step_run: _StepRun | None = None
    _depth = 0

    def run_cell(self, *args, **kwargs):
        self._depth += 1
        try:
            return super().run_cell(*args, **kwargs)
        finally:
            self._depth -= 1

    def showtraceback(self, exc_tuple=None, filename=None, tb_offset=None,
                      exception_only=False, running_compiled_code=False):
        if self.step_run is None:
            return super().showtraceback(exc_tuple, filename, tb_offset, exception_only,
                                         running_compiled_code)
        try:
            _, value, _ = self._get_exc_info(exc_tuple)
        except ValueError:
            return
        self._show(value)

    def showsyntaxerror(self, filename=None, running_compiled_code=False):
        if self.step_run is None:
            return super().showsyntaxerror(filename, running_compiled_code)
        _, value, _ = self._get_exc_info()
        self._show(value)

    def _show(self, value: BaseException) -> None:
        # At the top level it may be the cell's failure, which the StepResult reports. In a
        # nested run_cell (the body of %%capture) IPython prints it and the cell goes on.
        if self._depth <= 1:
            self.step_run.pending_tracebacks.append(value)
        else:
            print(_format_exception(value, self.step_run.sources), end="")


_LOCK = threading.RLock()
_SHELL: _StepShell | None = None


def _reinit_lock_after_fork() -> None:
    global _LOCK
    _LOCK = threading.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_lock_after_fork)


def _get_shell() -> _StepShell:
    """The process's step shell: no history file, no profile in the user's home, quiet."""
    global _SHELL
    if _SHELL is None:
        home = tempfile.mkdtemp(prefix="nbscale-ipython-")
        atexit.register(shutil.rmtree, home, True)
        config = Config()
        config.HistoryManager.enabled = False
        config.HistoryManager.hist_file = ":memory:"
        config.InteractiveShell.colors = "NoColor"
        config.InteractiveShell.warn_venv = False
        config.InteractiveShell.autocall = 0
        profile = ProfileDir.create_profile_dir(os.path.join(home, "profile_default"), config)
        # Creating a shell installs it process-wide (sys.modules["__main__"], builtins, prompts);
        # undo that, and install ours only while a step runs.
        state = _ProcessState.save()
        try:
            shell = _StepShell(config=config, ipython_dir=home, profile_dir=profile)
        finally:
            state.restore()
        shell.base_compiler_flags = shell.compile.flags
        _SHELL = shell
    return _SHELL


_ABSENT = object()
_NO_RESULT = ""  # what IPython's display hook holds before any result


class _ProcessState:
    """Process-wide things IPython (and a step) change: saved and put back."""

    SYS_ATTRS = ("stdout", "stderr", "ps1", "ps2", "ps3", "excepthook", "displayhook",
                 "last_type", "last_value", "last_traceback", "last_exc")
    BUILTINS = ("display", "__IPYTHON__")

    @classmethod
    def save(cls) -> _ProcessState:
        state = cls()
        state.sys = {a: getattr(sys, a, _ABSENT) for a in cls.SYS_ATTRS}
        state.builtins = {a: builtins.__dict__.get(a, _ABSENT) for a in cls.BUILTINS}
        state.main = sys.modules.get("__main__", _ABSENT)
        state.singletons = {c: c.__dict__.get("_instance", _ABSENT)
                            for c in (InteractiveShell, _StepShell)}
        return state

    def restore(self) -> None:
        for attr, value in self.sys.items():
            if value is _ABSENT:
                if hasattr(sys, attr):
                    delattr(sys, attr)
            else:
                setattr(sys, attr, value)
        for name, value in self.builtins.items():
            if value is _ABSENT:
                builtins.__dict__.pop(name, None)
            else:
                builtins.__dict__[name] = value
        if self.main is _ABSENT:
            sys.modules.pop("__main__", None)
        else:
            sys.modules["__main__"] = self.main
        for cls, value in self.singletons.items():
            if value is _ABSENT:
                if "_instance" in cls.__dict__:
                    delattr(cls, "_instance")
            else:
                cls._instance = value


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """The standard way of showing a warning, to the step's stderr."""
    text = warnings.formatwarning(message, category, filename, lineno, line)
    try:
        (file or sys.stderr).write(text)
    except (OSError, ValueError):
        pass


class _StepEnvironment:
    """Installs a fresh user namespace, the captures and the working directory for one step."""

    def __init__(self, shell: _StepShell, run: _StepRun, *, cwd: str | None, notebook: str):
        self.shell, self.run, self.cwd, self.notebook = shell, run, cwd, notebook

    def __enter__(self) -> dict:
        shell = self.shell
        self.saved_cwd = os.getcwd()
        self.saved_path = None
        self.state = _ProcessState.save()
        self.saved_shell = (shell.user_module, shell.user_ns, shell.user_ns_hidden, shell.ns_table)
        self.saved_events = {k: list(v) for k, v in shell.events.callbacks.items()}
        # Warning filters the step sets stay in the step; its warnings go to its stderr.
        self.warnings = warnings.catch_warnings()
        self.warnings.__enter__()
        warnings.showwarning = _show_warning
        warnings.filterwarnings("ignore", message="To exit: use 'exit'", category=UserWarning)
        try:
            if self.cwd is not None:
                os.chdir(self.cwd)
                here = os.getcwd()
                if here not in sys.path and "" not in sys.path:  # local imports, as in Jupyter
                    sys.path.insert(0, here)
                    self.saved_path = here
            module, ns = shell.prepare_user_module()
            shell.user_module, shell.user_ns, shell.user_ns_hidden = module, ns, {}
            shell.ns_table = {"user_global": ns, "user_local": ns, "builtin": builtins.__dict__}
            self._reset_shell_state()
            shell.init_user_ns()
            unders = {"_": _NO_RESULT, "__": _NO_RESULT, "___": _NO_RESULT}
            ns.update(unders)  # as a new kernel has them
            shell.user_ns_hidden.update(unders)
            if self.notebook:
                ns["__session__"] = self.notebook  # as ipykernel sets it
                shell.user_ns_hidden["__session__"] = self.notebook
            sys.modules["__main__"] = module  # pickle and friends find the step's classes
            builtins.__dict__["display"] = ipython_display
            builtins.__dict__["__IPYTHON__"] = True
            for cls in (InteractiveShell, _StepShell):  # get_ipython() and display() use it
                cls._instance = shell
            shell.step_run = self.run
            sys.stdout, sys.stderr = self.run.stdout, self.run.stderr
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return ns

    def __exit__(self, *exc) -> bool:
        shell = self.shell
        shell.step_run = None
        self.state.restore()
        shell.user_module, shell.user_ns, shell.user_ns_hidden, shell.ns_table = self.saved_shell
        shell.events.callbacks.clear()
        shell.events.callbacks.update(self.saved_events)
        self.warnings.__exit__(None, None, None)
        self._reset_shell_state()
        if self.saved_path is not None and self.saved_path in sys.path:
            sys.path.remove(self.saved_path)
        os.chdir(self.saved_cwd)
        return False

    def _reset_shell_state(self) -> None:
        """Forget everything the shell keeps between cells: nothing may reach the next step."""
        shell = self.shell
        history = shell.history_manager
        history.input_hist_parsed[:] = [""]
        history.input_hist_raw[:] = [""]
        history.output_hist.clear()
        history.output_hist_reprs.clear()
        history.dir_hist[:] = [Path.cwd()]
        hook = shell.displayhook
        for name in ("_", "__", "___"):  # the hook's own references to the last results
            setattr(hook, name, _NO_RESULT)
        hook.exec_result = None
        shell.last_execution_result = None
        shell.execution_count = 1
        shell.compile.flags = shell.base_compiler_flags
        shell.compile._filename_map.clear()
        shell._main_mod_cache.clear()
