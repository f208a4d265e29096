"""What a running step produces: its streams, its displays, each cell's outputs, its peak memory.

`StepRun` collects one step's output as it runs: `StreamCapture`s stand in for sys.stdout and
sys.stderr, the step shell's display hooks hand it `display(...)` data and cell results, and it
keeps each executed cell's outputs in order as nbformat outputs (as a kernel would send them).
Capture is linear in what is printed: a stream output gathers its writes as parts, joined once
when the cell outputs are read. A `live_output` listener (`nbscale run -v`, the panel) gets what
is printed in batches (`OutputBatcher`). `RssSampler` measures the peak resident memory while the
step runs. `json_safe` shapes what is captured for the run's JSON summary.
"""

from __future__ import annotations

import base64
import io
import math
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from functools import partial

import psutil

from ..compiler.ir import Prelude, Step
from .contract import OUTPUT_EVENT_CHARS, OUTPUT_EVENT_INTERVAL_S
from .process_state import proc_status_field

__all__ = ["OutputBatcher", "RssSampler", "StepRun", "StreamCapture", "json_safe", "live_output", "short_repr"]

RSS_INTERVAL_S = 0.01


class StreamCapture(io.StringIO):
    """sys.stdout/sys.stderr during a step; each write also goes to the running cell's outputs."""

    def __init__(self, name: str, run: StepRun | None = None, stream: str = ""):
        super().__init__()
        self.name = name
        self._run, self._stream = run, stream
        self._closed_by_step = False

    def close(self) -> None:
        # `sys.stdout.close()` in a step: later writes fail as they would top to bottom, and what it
        # printed before is still the step's output (a closed StringIO would lose it)
        self._closed_by_step = True

    @property
    def closed(self) -> bool:
        return self._closed_by_step

    def write(self, text) -> int:
        if self._closed_by_step:
            raise ValueError("I/O operation on closed file.")
        written = super().write(text)
        if self._run is not None:
            self._run.add_stream(self._stream, text)
        return written

    @property
    def encoding(self):  # some libraries (click, tqdm) read it
        return "utf-8"

    def isatty(self) -> bool:
        return False


class StepRun:
    """What one step has produced so far; the shell's display hooks write here."""

    def __init__(self, step: Step, prelude: Prelude):
        self.sources = dict(zip(prelude.cells, prelude.source))  # cell index → source
        self.sources.update(zip(step.cells, step.source))
        self.current_cell: int | None = None
        self.stdout = StreamCapture("<stdout>", self, "stdout")
        self.stderr = StreamCapture("<stderr>", self, "stderr")
        self.displays: list[dict] = []
        self.cells: list[dict] = []  # per executed cell: its outputs in order, start and end
        self._cell: dict | None = None
        # Tracebacks the shell would have printed while the current cell ran (its own failure
        # among them): the executor decides which are the cell's failure and which go to stderr.
        self.pending_tracebacks: list[BaseException] = []
        self._display_ids: dict[str, list[dict]] = {}
        self._clear_on_next = False
        listener = getattr(_LIVE, "listener", None)
        self.live = OutputBatcher(partial(listener, step.name)) if listener is not None else None

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
        if self.live is not None:  # a live listener sees the end of each cell's output
            self.live.flush()

    def add_stream(self, name: str, text: str) -> None:
        if not text:
            return
        if self.live is not None:
            self.live.add(name, text)
        if self._cell is None:
            return
        if self._clear_on_next:
            self.clear(wait=False)
        outputs = self._cell["outputs"]
        if outputs and outputs[-1]["output_type"] == "stream" and outputs[-1]["name"] == name:
            # consecutive writes make one output, as in Jupyter; kept as parts and joined once
            # (`text += ...` on a dict value copies the whole text each time: quadratic)
            outputs[-1]["text"].append(text)
        else:
            outputs.append({"output_type": "stream", "name": name, "text": _Parts([text])})

    def stdout_text(self) -> str:
        return _plain_line_ends(self.stdout.getvalue())

    def stderr_text(self) -> str:
        """What the step wrote to stderr, IPython's own warnings left out."""
        return _filter_noise(_plain_line_ends(self.stderr.getvalue()))

    def cell_outputs(self) -> list[dict]:
        """The cells' outputs as nbformat outputs, text as a kernel sends it (IPython's own
        warnings left out of stderr, as from the step's stderr)."""
        cells = []
        for entry in self.cells:
            outputs = []
            for output in entry["outputs"]:
                output = {k: v for k, v in output.items() if k != "cell"}
                if output["output_type"] == "stream":
                    output["text"] = "".join(output["text"])
                if output["output_type"] == "stream" and output["name"] == "stderr":
                    output["text"] = _filter_noise(output["text"])
                    if not output["text"]:
                        continue
                outputs.append(output)
            cells.append({**entry, "outputs": outputs})
        return cells


class _Parts(list):
    """The writes of one stream output so far (`StepRun.cell_outputs` joins them)."""


def _plain_line_ends(text: str) -> str:
    return text.replace("\r\n", "\n")  # `!cmd` output comes through a pseudo-terminal


# ---------------------------------------------------------------------------------------------
# Live output

_LIVE = threading.local()


@contextmanager
def live_output(listener: Callable[[str, str, str], None]):
    """Steps that start in this thread inside the block hand what they print to
    `listener(step, stream, text)`, batched by `OutputBatcher` (whoever runs a step sets it to emit
    STEP_OUTPUT events)."""
    previous = getattr(_LIVE, "listener", None)
    _LIVE.listener = listener
    try:
        yield
    finally:
        _LIVE.listener = previous


class OutputBatcher:
    """Hands printed text on in batches: at most one call per stream every `interval` seconds, with
    at most the last `limit` characters written since the previous call, so that megabytes of
    prints cost a few calls. A write sends at once when the interval has passed; otherwise a timer
    sends it when the interval ends, so that a step that prints once and then computes for minutes
    is seen printing (`flush` sends what is left and stops the timer)."""

    def __init__(self, listener, interval: float = OUTPUT_EVENT_INTERVAL_S, limit: int = OUTPUT_EVENT_CHARS):
        self.listener, self.interval, self.limit = listener, interval, limit
        self.pending: dict[str, list[str]] = {}
        self.sizes: dict[str, int] = {}
        self.dropped: dict[str, int] = {}  # characters not sent since the last call, per stream
        self.last = time.monotonic()
        self.lock = threading.Lock()  # the timer's thread flushes too
        self.timer: threading.Timer | None = None

    def add(self, stream: str, text: str) -> None:
        with self.lock:
            parts = self.pending.setdefault(stream, [])
            parts.append(text)
            self.sizes[stream] = self.sizes.get(stream, 0) + len(text)
            if self.sizes[stream] > 4 * self.limit:  # only the last `limit` characters are sent: drop older text
                kept = "".join(parts)[-self.limit:]
                parts[:] = [kept]
                self.dropped[stream] = self.dropped.get(stream, 0) + self.sizes[stream] - len(kept)
                self.sizes[stream] = len(kept)
            wait = self.interval - (time.monotonic() - self.last)
            if wait > 0 and self.timer is None:
                self.timer = threading.Timer(wait, self.flush)
                self.timer.daemon = True
                self.timer.start()
        if wait <= 0:
            self.flush()

    def flush(self) -> None:
        with self.lock:
            self.last = time.monotonic()
            pending, dropped, self.pending, self.sizes, self.dropped = self.pending, self.dropped, {}, {}, {}
            if self.timer is not None and self.timer is not threading.current_thread():
                self.timer.cancel()
            self.timer = None
        for stream, parts in pending.items():
            text = _with_gap("".join(parts), self.limit, dropped.get(stream, 0))
            try:
                self.listener(stream, text)
            except Exception:  # noqa: BLE001 - a listener's failure must not fail the user's print
                pass


def _with_gap(text: str, limit: int, dropped: int) -> str:
    """The last `limit` characters of `text`, from a line's start, after a line that says how much
    was left out: a live view must not pass a fragment off as a whole line, nor a gap as none."""
    if len(text) > limit:
        dropped += len(text) - limit
        text = text[-limit:]
    if not dropped:
        return text
    start = text.find("\n") + 1 if "\n" in text[:-1] else 0
    return f"[… {dropped + start:,} characters not shown live; the step's log has them all]\n{text[start:]}"


# ---------------------------------------------------------------------------------------------
# Shaping captured output


def _encode_bytes(value):
    if isinstance(value, (bytes, bytearray)):  # image/png and friends, as nbformat stores them
        return base64.b64encode(bytes(value)).decode("ascii")
    return value


def json_safe(value):
    """`value` with only JSON types: bytes as base64, non-finite floats as None, others as repr."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (str, int, bool)):
        return value
    if isinstance(value, (bytes, bytearray)):
        return _encode_bytes(value)
    return short_repr(value, 1000)


def short_repr(value, limit: int = 60) -> str:
    """repr(value), cut to `limit` characters; a failing __repr__ gives the default one."""
    try:
        text = repr(value)
    except Exception:
        text = object.__repr__(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


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
# Memory


class RssSampler:
    """Peak resident set size while the block runs. On Linux the kernel keeps it exactly (VmHWM in
    /proc/self/status, reset at the start through /proc/self/clear_refs): no thread, no sampling,
    and an allocation of a millisecond counts. Elsewhere a thread samples it every 10 ms."""

    def __init__(self, interval: float = RSS_INTERVAL_S):
        self.interval = interval
        self._process = _this_process()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
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
        if not reset_peak_rss():  # (after a reset the kernel's peak is at least the RSS now)
            self.peak = self._rss()
            self._thread = threading.Thread(target=self._sample, name="nbscale-rss", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self._thread is None:
            self.peak = kernel_peak_rss() or self._rss()
            return False
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())
        return False


_PROCESSES: dict[int, psutil.Process] = {}  # pid → its psutil handle: making one reads /proc each time


def _this_process() -> psutil.Process:
    pid = os.getpid()  # a forked worker is another process
    process = _PROCESSES.get(pid)
    if process is None:
        process = _PROCESSES[pid] = psutil.Process(pid)
    return process


def reset_peak_rss() -> bool:
    """Make the kernel's peak RSS of this process its current RSS (Linux >= 4.0); False where it cannot."""
    try:
        with open("/proc/self/clear_refs", "wb", buffering=0) as f:
            f.write(b"5")
        return True
    except OSError:
        return False


def kernel_peak_rss() -> int:
    """The kernel's peak RSS of this process since the last reset (VmHWM), in bytes; 0 if unknown."""
    value = proc_status_field(b"VmHWM")
    return int(value.split()[0]) * 1024 if value else 0
