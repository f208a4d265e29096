"""The papermill engine: each step runs as its own notebook, through papermill, in a real kernel.

For users who need full kernel semantics in a step (widgets, rich display, kernel magics). A
step notebook holds the prelude cells, a cell that loads the step's parameters and inputs with
nbscale's marshalling, the step's own cells (each knows its notebook cell in
`metadata.nbscale.cell`) and a cell that saves the step's outputs. papermill executes it in an
ipykernel; the executed notebook is kept next to the run as `.nbscale/runs/RUN_ID/STEP.ipynb`
and linked from the run by a `step_notebook` event.

`run_step_in_kernel(spec, upstream, emit)` is the task body, with the signature of
`task.run_step`: the engine runs it in threads (one kernel per running step, independent steps
in parallel) or, when a Dask scheduler is given (option, or Dask's own `scheduler-address`
config), as Dask tasks on the workers. papermill is imported only when a step runs.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import re
import signal
import tempfile
import threading
import time
import uuid
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from datetime import datetime
from pathlib import Path

from ..contract import (
    FAILED,
    STEP_FINISHED,
    STEP_NOTEBOOK,
    SUCCEEDED,
    StepOutcome,
    code_starts,
    finished_payload,
    missing_outputs_message,
    state_dir,
    timeout_message,
    unstorable_output,
)
from ..dependencies import PAPERMILL_STEP_PREFIX
from ..errors import MarshalError
from ..executor import StepError, StepResult
from ..mentions import step_texts, value_texts
from ..store import ArtifactStore
from ..task import run_step
from . import Engine
from .papermill_cells import FAULT_FILE, IN_KEY, IO_DIR, OUT_KEY, SAVE_MARKER, load_inputs, save_outputs  # noqa: F401 - step notebooks of earlier versions

KERNEL = "python3"
# the step notebook's load and save cells call this module's functions inside the kernel
LOADER = "nbscale.kernels.engines.papermill_cells"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
CELL_FRAME = re.compile(r"Cell In\[(\d+)\], line (\d+)(?:, in ([\w<>.]+))?")


class PapermillEngine(Engine):
    name = "papermill"

    def __init__(self, kernel_name=None, scheduler=None, scheduler_file=None, workers=None, run_id=None,
                 runs_dir=None, start_timeout=60, execution_timeout=None, **options):
        super().__init__(**options)
        self.kernel = {"kernel_name": kernel_name or KERNEL, "start_timeout": start_timeout,
                       "execution_timeout": execution_timeout}
        self.scheduler, self.scheduler_file, self.workers = scheduler, scheduler_file, workers
        self.run_id, self.runs_dir = run_id, runs_dir
        self.dask = None

    def run(self, specs, emit) -> dict:
        if not specs:
            return {}
        # The runner hands its recorder's `emit`: its run id names the folder of step notebooks.
        run_id = self.run_id or getattr(getattr(emit, "__self__", None), "run_id", None) or uuid.uuid4().hex
        folder = Path(self.runs_dir) if self.runs_dir else state_dir(specs[0].notebook) / "runs"
        keeper = _NotebookKeeper(folder / run_id, emit)
        scheduler = self.scheduler or _dask_config_scheduler()
        if scheduler or self.scheduler_file:
            return self._run_dask(specs, emit, keeper, scheduler)
        return self._run_threads(specs, emit, keeper)

    def close(self):
        if self.dask is not None:
            self.dask.close()
            self.dask = None

    # --- in this process: one thread (and one kernel) per running step ------------------------
    def _run_threads(self, specs, emit, keeper) -> dict:
        by_name = {s.step["name"]: s for s in specs}
        waiting = dict(by_name)
        outcomes, running = {}, {}
        pool = ThreadPoolExecutor(max_workers=self.workers or os.cpu_count() or 1,
                                  thread_name_prefix="nbscale-papermill")
        kernels = _Kernels()  # process groups of the steps' kernels
        try:
            while waiting or running:
                for name, spec in list(waiting.items()):
                    if all(u in outcomes for u in spec.step["after"]):
                        upstream = {u: outcomes[u] for u in spec.step["after"]}
                        running[pool.submit(run_step_in_kernel, spec, upstream, emit, **self.kernel,
                                            on_kernel=kernels.started)] = name
                        del waiting[name]
                if not running:
                    raise RuntimeError(f"steps {sorted(waiting)} wait for steps that are not planned")
                # (in turns: a Ctrl-C the kernel gave another thread is only seen here between two)
                done, _ = wait(list(running), timeout=SIGNALS_SEEN_EVERY, return_when=FIRST_COMPLETED)
                for future in done:
                    outcome = future.result()
                    del running[future]
                    keeper.keep(outcome)
                    outcomes[outcome.step] = outcome
                    emit(STEP_FINISHED, outcome.step, finished_payload(outcome))
        except BaseException:  # Ctrl-C, SIGTERM: the steps' code stops with their kernels
            kernels.stop()
            raise
        finally:
            pool.shutdown(wait=not running, cancel_futures=True)
        return outcomes

    # --- on Dask: each step a task on a worker ------------------------------------------------
    def _run_dask(self, specs, emit, keeper, scheduler) -> dict:
        from .dask import DaskEngine

        body = functools.partial(run_step_in_kernel, **self.kernel)
        self.dask = DaskEngine(scheduler=scheduler, scheduler_file=self.scheduler_file, run_id=keeper.run_id,
                               body=body, on_outcome=keeper.keep)
        return self.dask.run(specs, emit)


def _dask_config_scheduler():
    try:
        import dask
    except ImportError:
        return None
    return dask.config.get("scheduler-address", None)


class _NotebookKeeper:
    """Writes executed step notebooks next to the run and links them from it."""

    def __init__(self, folder: Path, emit):
        self.folder, self.emit = folder, emit
        self.run_id = folder.name

    def keep(self, outcome: StepOutcome) -> None:
        notebook = outcome.summary.get("step_notebook")
        if not isinstance(notebook, dict):
            return
        import nbformat

        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{outcome.step}.ipynb"
        tmp = path.with_name(f".{path.name}.tmp")
        nbformat.write(nbformat.from_dict(notebook), str(tmp))
        os.replace(tmp, path)
        outcome.summary["step_notebook"] = str(path)
        self.emit(STEP_NOTEBOOK, outcome.step, {"path": str(path)})


# ---------------------------------------------------------------------------------------------
# The task body


def run_step_in_kernel(spec, upstream: dict, emit=None, *, kernel_name=KERNEL, start_timeout=60,
                       execution_timeout=None, on_kernel=None) -> StepOutcome:
    """Run one step as a notebook in a kernel; the `task.run_step` of this engine.

    The outcome's summary holds the executed step notebook (`step_notebook`, nbformat JSON) for
    the engine to keep. Never raises (but for KeyboardInterrupt). `on_kernel(process group)` is
    told of each kernel started, for a cancel to stop it.
    """
    execute = functools.partial(_execute_in_kernel, kernel_name=kernel_name, start_timeout=start_timeout,
                                execution_timeout=execution_timeout, on_kernel=on_kernel)
    return run_step(spec, upstream, emit, execute)


def _execute_in_kernel(spec, inputs, *, kernel_name, start_timeout, execution_timeout, on_kernel=None):
    """One attempt of the step, as a notebook in a kernel (the `execute` of `task.run_step`)."""
    result, notebook = execute_step_notebook(spec, inputs, kernel_name=kernel_name, start_timeout=start_timeout,
                                             execution_timeout=execution_timeout, on_kernel=on_kernel)
    return result, {"step_notebook": notebook}


# How often the thread waiting for the steps looks at signals: Linux may hand a Ctrl-C to any thread
# of the process (a step's, starting its kernel), and Python runs its handler in the main thread
# only, as it next runs Python code; a wait without end would first see it as a step ends, after
# a kernel started meanwhile ran the step's code.
SIGNALS_SEEN_EVERY = 0.1
KILLED_AFTER_S = 2.0  # a kernel interrupted at its step's timeout, and still running this long after, is killed


class _StepDeadline:
    """The step's `timeout:` over all its cells (papermill's execution timeout is per cell: a step
    of three cells ran three times its timeout, and succeeded). At the timeout its kernel is
    interrupted, so that the error points at the line that was running; a kernel still running
    KILLED_AFTER_S later (its code caught the KeyboardInterrupt, or waits in compiled code) is
    killed, and so is one whose cell ended after it (no later cell runs). Either way the step
    fails: what it made may be cut short. `started` is the kernel manager's `on_kernel`."""

    def __init__(self, seconds, on_kernel=None):
        self.seconds, self.on_kernel = seconds, on_kernel
        self.struck, self.lock, self.timers, self.group = False, threading.Lock(), [], None

    def started(self, group: int) -> None:
        self.group = group
        if self.on_kernel is not None:
            self.on_kernel(group)

    def cell_starts(self, cell=None, **_) -> None:
        """nbclient's `on_cell_start`: the step's time counts from its first own cell, not from its
        kernel's start-up, nor nbscale's cell that loads its inputs (it imports nbscale there)."""
        role = (cell or {}).get("metadata", {}).get("nbscale", {}).get("role")
        if self.seconds and role == "step" and self.group is not None and not self.timers:
            self._after(float(self.seconds), self._strike, self.group)

    def cell_ends(self, **_) -> None:
        """nbclient's `on_cell_executed`: a cell whose code caught the interrupt and ended is the
        step's last; the next would run past the timeout."""
        if self.struck:
            _signal_group(self.group, signal.SIGKILL)

    def _strike(self, group: int) -> None:
        self.struck = True
        _signal_group(group, signal.SIGINT)
        self._after(KILLED_AFTER_S, _signal_group, group, signal.SIGKILL)

    def _after(self, seconds: float, function, *args) -> None:
        with self.lock:
            if self.timers is None:  # the step ended meanwhile
                return
            timer = threading.Timer(seconds, function, args)
            timer.daemon = True
            timer.start()
            self.timers.append(timer)

    def ended(self) -> None:
        with self.lock:
            for timer in self.timers:
                timer.cancel()
            self.timers = None


class _Kernels:
    """The process groups of the steps' kernels, for a cancel to end them: also those of kernels
    still starting as it comes (a step's thread cannot be stopped, and its kernel would then run
    the step's code after the run said it was cancelled)."""

    def __init__(self):
        self.groups: set[int] = set()
        self.stopping = False
        self.lock = threading.Lock()

    def started(self, group: int) -> None:
        with self.lock:
            self.groups.add(group)
            if not self.stopping:
                return
        _signal_group(group, signal.SIGKILL)

    def stop(self) -> None:
        with self.lock:
            self.stopping = True
            groups = list(self.groups)
        for group in groups:
            _signal_group(group, signal.SIGKILL)


def _signal_group(group: int, signum: int) -> None:
    with contextlib.suppress(OSError):  # ended already
        os.killpg(group, signum)


def execute_step_notebook(spec, inputs: dict, *, kernel_name=KERNEL, start_timeout=60,
                          execution_timeout=None, on_kernel=None) -> tuple[StepResult, dict]:
    """Build the step's notebook, run it through papermill, read results and outputs back.

    `inputs`: producer step → {name: value}. Returns the StepResult (its `cells` are the step
    notebook's outputs under the original cell indexes) and the executed notebook (JSON).
    """
    import nbformat
    import papermill
    from nbclient.exceptions import CellTimeoutError

    name = spec.step["name"]
    result = StepResult(step=name, status=SUCCEEDED, started_at=time.time())
    with tempfile.TemporaryDirectory(prefix=f"{PAPERMILL_STEP_PREFIX}{name}-") as tmp:
        io_dir = os.path.join(tmp, IO_DIR)
        _write_inputs(io_dir, spec, inputs)
        source_path, executed_path = os.path.join(tmp, "step.ipynb"), os.path.join(tmp, "executed.ipynb")
        nbformat.write(step_notebook(spec, io_dir, kernel_name), source_path)
        code_starts()
        wall0 = time.perf_counter()
        failure = None
        deadline = _StepDeadline(spec.step.get("timeout"), on_kernel)
        with _quiet_papermill_logs():
            try:
                papermill.execute_notebook(
                    source_path, executed_path, kernel_name=kernel_name, progress_bar=False,
                    start_timeout=start_timeout, autosave_cell_every=0,
                    execution_timeout=execution_timeout, resources={"metadata": {"path": spec.cwd}},
                    kernel_manager_class=_kernel_manager_class(os.path.join(tmp, "kernel.log"), deadline.started),
                    on_cell_start=deadline.cell_starts, on_cell_executed=deadline.cell_ends)
            except papermill.PapermillExecutionError:
                pass  # the error is in the executed notebook, at its cell
            except CellTimeoutError as exc:
                failure = ("StepTimeout", f"{timeout_message(name, execution_timeout)} (in one cell): {exc}")
            except Exception as exc:  # noqa: BLE001 - a dead kernel, a kernel that did not start
                failure = (type(exc).__name__, str(exc).strip() or type(exc).__name__)
            finally:
                deadline.ended()
        result.wall_s = time.perf_counter() - wall0
        if deadline.struck:  # interrupted, killed, or its code caught the interrupt and ended
            failure = ("StepTimeout", timeout_message(name, spec.step["timeout"]))
        if failure is not None and failure[0] != "StepTimeout":  # (a timeout's kernel was shut down by it: its noise)
            failure = (failure[0], failure[1] + _kernel_fatal(io_dir) + _kernel_log(os.path.join(tmp, "kernel.log")))
        executed = nbformat.read(executed_path, as_version=4) if os.path.exists(executed_path) else None
        _read_back(result, executed, io_dir, spec, failure)
        notebook = _plain(executed) if executed is not None else None
    if result.error is not None:
        result.status, result.outputs = FAILED, {}
    return result, notebook


def _kernel_manager_class(log_path, on_kernel=None):
    """A kernel manager that writes the kernel process's own stderr to `log_path`.

    What the step prints reaches the notebook through the kernel's messages; the process's
    stderr only carries the kernel's start-up chatter (ipykernel 7 warns about TCP at every
    start) and, when it dies, the reason.
    """
    from jupyter_client.manager import AsyncKernelManager

    class StepKernelManager(AsyncKernelManager):
        async def start_kernel(self, **kw):
            log = open(log_path, "ab")  # noqa: SIM115 - the kernel process holds it
            try:
                kw.setdefault("stderr", log)
                started = await super().start_kernel(**kw)
            finally:
                log.close()
            group = getattr(self.provisioner, "pgid", None)
            if on_kernel is not None and group:
                on_kernel(group)
            return started

    return StepKernelManager


def _kernel_fatal(io_dir: str) -> str:
    """Where the step was when its kernel died of a crash in compiled code (`fatal_errors`), if it did."""
    from ..fatal_errors import fatal_reason

    try:
        with open(os.path.join(io_dir, FAULT_FILE), encoding="utf-8") as f:
            noted = json.load(f)
    except (OSError, ValueError):
        return ""
    fatal = fatal_reason(noted.get("path"), noted.get("host")) if isinstance(noted, dict) else None
    return f": {fatal}" if fatal else ""


def _kernel_log(path, lines=20) -> str:
    """The end of the kernel's own stderr, without its start-up warning (for a dead kernel)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = [line for line in f.read().splitlines() if "running over TCP without encryption" not in line]
    except OSError:
        return ""
    return ("\nkernel stderr:\n" + "\n".join(text[-lines:])) if text else ""


def step_notebook(spec, io_dir: str, kernel_name=KERNEL):
    """The step as a notebook: prelude, load inputs, the step's cells, save outputs."""
    import nbformat

    v4 = nbformat.v4
    nb = v4.new_notebook(metadata={
        "kernelspec": {"name": kernel_name, "display_name": kernel_name, "language": "python"},
        "language_info": {"name": "python"},
        "nbscale": {"step": spec.step["name"], "hash": spec.hash, "notebook": spec.notebook},
    })

    def code(source, role, cell=None, tags=()):
        meta = {"nbscale": {"role": role, **({"cell": cell} if cell is not None else {})}, "tags": list(tags)}
        return v4.new_code_cell(source, metadata=meta)

    for cell, source in zip(spec.prelude["cells"], spec.prelude["source"]):
        nb.cells.append(code(source, "prelude", cell))
    # Only paths generated here are written into code; parameter values travel as data.
    nb.cells.append(code(f"# nbscale: parameters and inputs of step {spec.step['name']!r}\n"
                         f"__import__({LOADER!r}, fromlist=['_']).load_inputs(globals(), {io_dir!r})",
                         "load", tags=["nbscale-inputs"]))
    for cell, source in zip(spec.step["cells"], spec.step["source"]):
        nb.cells.append(code(source, "step", cell))
    nb.cells.append(code(f"{SAVE_MARKER} {spec.step['name']!r}\n"
                         f"__import__({LOADER!r}, fromlist=['_']).save_outputs(globals(), {io_dir!r})",
                         "save", tags=["nbscale-outputs"]))
    return nb


def _write_inputs(io_dir, spec, inputs):
    os.makedirs(io_dir, exist_ok=True)
    values, groups = {}, []
    for names in inputs.values():  # one unit per producer: objects it shares stay shared
        values.update(names)
        groups.append(list(names))
    ArtifactStore(io_dir).put(IN_KEY, values, groups, spec.step["name"])
    step = spec.step
    with open(os.path.join(io_dir, "step.json"), "w", encoding="utf-8") as f:
        json.dump({"name": step["name"], "outputs": step["outputs"], "groups": step["groups"],
                   "keep": [n for n in spec.keep if n not in step["outputs"]],
                   "metrics": spec.metrics if (spec.metrics or {}).get("step") == step["name"] else None,
                   "parameters": spec.parameters, "settings": step.get("settings", []),
                   "named": step_texts(step["source"], spec.prelude.get("source", []), spec.parameters),
                   "given": value_texts([*(spec.parameters or {}).values(), *values.values()]),
                   "defines": step.get("defines", []), "notebook": spec.notebook}, f)


# --- reading the executed notebook back ---------------------------------------------------------


def _read_back(result: StepResult, executed, io_dir, spec, failure) -> None:
    report = _report(io_dir)
    result.metrics = report.get("metrics") or {}
    result.warnings = report.get("warnings") or []
    result.cpu_s = report.get("cpu_s") or 0.0
    result.peak_rss_bytes = report.get("peak_rss_bytes") or 0
    result.dependencies = report.get("dependencies")
    cells = list(executed.cells) if executed is not None else []
    counts = {c.get("execution_count"): c for c in cells if c.get("cell_type") == "code"}
    stdout, stderr = [], []
    exited = False  # a cell called sys.exit(0): the step's later cells did not run
    for cell in cells:
        meta = cell.metadata.get("nbscale", {})
        pm = cell.metadata.get("papermill", {})
        if exited or "cell" not in meta or not _executed(pm):
            continue
        exited = any(_is_clean_exit(o) for o in cell.get("outputs", []))
        outputs = [_plain(o) for o in cell.get("outputs", []) if not _is_clean_exit(o)]
        result.cells.append({"cell": meta["cell"], "started": _epoch(pm.get("start_time")),
                             "finished": _epoch(pm.get("end_time")), "outputs": outputs})
        for output in outputs:
            if output["output_type"] == "stream":
                (stdout if output["name"] == "stdout" else stderr).append(output["text"])
            elif output["output_type"] in ("display_data", "execute_result"):
                result.displays.append({**output, "cell": meta["cell"]})
    result.stdout, result.stderr = "".join(stdout), "".join(stderr)
    result.error = _error(cells, counts, report, spec, failure)
    if result.error is None:
        store = ArtifactStore(io_dir)
        try:
            values = store.get(OUT_KEY, spec.step["outputs"])
        except KeyError:
            if not exited:
                result.error = StepError(None, None, "RuntimeError", "the step notebook saved no outputs", "")
            elif spec.step["outputs"]:  # it exited before its inputs were loaded (in the prelude)
                message = missing_outputs_message(spec.step["name"], spec.step["outputs"], spec.notebook)
                result.error = StepError(None, None, "MissingOutputError", message, message + "\n")
            return
        result.outputs = values
        result.namespace_values = _kept_values(store, spec.step["outputs"])


def _kept_values(store: ArtifactStore, outputs: list) -> dict:
    """The final values the step notebook kept besides its outputs: best effort, as they are kept
    (one pickled that cannot be made again, a ctypes buffer, is left out, not the step's failure)."""
    names = [name for name in store.manifest(OUT_KEY)["outputs"] if name not in outputs]
    try:
        return store.get(OUT_KEY, names) if names else {}
    except MarshalError:
        kept = {}
        for name in names:
            with contextlib.suppress(MarshalError):
                kept.update(store.get(OUT_KEY, [name]))
        return kept


def _report(io_dir) -> dict:
    try:
        with open(os.path.join(io_dir, "report.json"), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def _executed(pm: dict) -> bool:
    """Whether papermill ran the cell (its `metadata.papermill`): after a dead kernel or a cell timeout,
    papermill's `notebook_complete` marks the cells it never started `completed` too; only those it
    started have a start time."""
    return pm.get("status") in ("completed", "failed") and bool(pm.get("start_time"))


def _is_clean_exit(output) -> bool:
    """The error output of `sys.exit()` / `sys.exit(0)`, which ends a step successfully
    (`executor.is_clean_exit`; papermill too takes "" and "0" as a clean stop)."""
    return (output.get("output_type") == "error" and output.get("ename") == "SystemExit"
            and output.get("evalue") in ("", "0", "None", "False"))


def _failed_cell(cell) -> bool:
    errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    if errors:
        return not all(_is_clean_exit(o) for o in errors)
    return cell.get("metadata", {}).get("papermill", {}).get("status") == "failed"


def _error(cells, counts, report, spec, failure) -> StepError | None:
    failing = next((c for c in cells if _failed_cell(c)), None)
    if failing is None and failure is not None:  # a timeout or dead kernel: the last cell started
        started = [c for c in cells if c.get("metadata", {}).get("papermill", {}).get("start_time")]
        failing = started[-1] if started else None
    if failing is None and failure is None:
        return None
    meta = failing.metadata.get("nbscale", {}) if failing is not None else {}
    error = next((o for o in failing.get("outputs", []) if o.get("output_type") == "error"), None) \
        if failing is not None else None
    ename, evalue = failure or ((error["ename"], error["evalue"]) if error else ("CellExecutionError", ""))
    trace = ANSI.sub("", "\n".join(error["traceback"])) if error else evalue
    if meta.get("role") == "save":
        if report.get("missing"):
            message = missing_outputs_message(spec.step["name"], report["missing"], spec.notebook)
            return StepError(None, None, "MissingOutputError", message, message + "\n")
        if report.get("unstorable"):
            return StepError(**unstorable_output(report["unstorable"], evalue, spec.step))
        return StepError(None, None, ename, evalue, trace)
    if meta.get("role") == "load" or "cell" not in meta:
        return StepError(None, None, ename, f"loading the step's inputs failed: {evalue}" if meta else evalue,
                         trace)
    frames = []
    for match in CELL_FRAME.finditer(trace):
        origin = counts.get(int(match.group(1)))
        cell = origin.metadata.get("nbscale", {}).get("cell") if origin is not None else None
        if cell is not None:
            frames.append({"cell": cell, "line": int(match.group(2)), "name": match.group(3) or "<module>"})
    from ..executor import Frame

    frames = [Frame(**f) for f in frames]
    cell, line = (frames[-1].cell, frames[-1].line) if frames else (meta["cell"], None)
    return StepError(cell, line, ename, evalue, trace, frames, running_cell=meta["cell"])


def _epoch(stamp):
    if not stamp:
        return None
    try:
        return datetime.fromisoformat(stamp).timestamp()
    except ValueError:
        return None


def _plain(node):
    """NotebookNode → plain JSON data."""
    return json.loads(json.dumps(node))


class _QuietThreads(logging.Filter):
    """Drops papermill's own log lines ("Input Notebook: …") of the step notebooks' runs."""

    threads: set[int] = set()

    def filter(self, record):
        return record.thread not in self.threads


_FILTER = _QuietThreads()
_FILTER_LOCK = threading.Lock()


class _quiet_papermill_logs:
    def __enter__(self):
        with _FILTER_LOCK:
            logger = logging.getLogger("papermill")
            if _FILTER not in logger.filters:
                logger.addFilter(_FILTER)
            _FILTER.threads.add(threading.get_ident())

    def __exit__(self, *exc):
        with _FILTER_LOCK:
            _FILTER.threads.discard(threading.get_ident())
        return False
