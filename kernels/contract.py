"""The step contract every engine and every reader of a run shares.

One home for: the step and run statuses, the step events an engine emits, what a step is given
(`StepSpec`) and what it gives back (`StepOutcome`), the error shape a failure is reported in
(`error_dict`, `failed_outcome`), why a run stopped early (`OWNER_STOPPED`, ...), the one timeout
mechanism (`deadline`), and where a notebook's state lives (`state_dir`, `run_store_path`,
`artifacts_url`). Engines, the runner, the run store, the server extension and the CLI import these
names instead of spelling them again.

An engine implements `run(specs, emit) -> {step: StepOutcome}`: `specs` in a topological order,
`emit(kind, step, payload)` for the live events below, and `step_finished` emitted once per step
with `finished_payload(outcome)`.
"""

from __future__ import annotations

import contextlib
import contextvars
import ctypes
import hashlib
import json
import os
import signal
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .array_views import received, sendable
from .errors import StepTimeout

# --- statuses ------------------------------------------------------------------------------------
PENDING, RUNNING = "pending", "running"
SUCCEEDED, FAILED, CACHED, UPSTREAM_FAILED, CANCELLED = "succeeded", "failed", "cached", "upstream_failed", "cancelled"
STATUSES = (PENDING, RUNNING, SUCCEEDED, FAILED, CACHED, UPSTREAM_FAILED, CANCELLED)
FINISHED = (SUCCEEDED, FAILED, CACHED, UPSTREAM_FAILED, CANCELLED)
OK = (SUCCEEDED, CACHED)
# a live state, never a step row's status: the step's inputs are ready and it waits for a worker
# (`STEP_QUEUED`); it is `running` only once its code started on one (`STEP_STARTED`)
QUEUED = "queued"

# --- events (kind, step, payload) ----------------------------------------------------------------
RUN_CREATED, RUN_STARTED, RUN_FINISHED = "run_created", "run_started", "run_finished"
STEP_STARTED, STEP_CACHED, STEP_RETRY, STEP_FINISHED = "step_started", "step_cached", "step_retry", "step_finished"
STEP_NOTEBOOK, WARNING = "step_notebook", "warning"
# what a running step printed lately (`nbscale run -v`): payload {"stream", "text"}, at most every
# OUTPUT_EVENT_INTERVAL_S and OUTPUT_EVENT_CHARS characters, so a flood of prints stays cheap
STEP_OUTPUT = "step_output"
OUTPUT_EVENT_INTERVAL_S = 0.2
OUTPUT_EVENT_CHARS = 8_000
# characters of one stream (stdout, stderr) of a step kept in the run store; the whole of it is in
# the step's log file (`step_log_path`) and the stored text says so (`truncated_text`)
STORED_OUTPUT_CHARS = 1_000_000
STEP_STALE = "step_stale"  # a stored result exists but a dependency changed: payload {"changes": [text]}
STEP_QUEUED = "step_queued"  # every step it comes after has finished: it waits for a worker
# a signal asked the run to stop, payload {"reason"}: a run whose process dies before it ends is cancelled
STOP_REQUESTED = "stop_requested"
# the cluster a run starts for itself (an embedded LocalCluster) is starting / has started
CLUSTER_STARTING, CLUSTER_STARTED = "cluster_starting", "cluster_started"
# how a running step's Dask compute on the cluster goes (`compute_progress`): payload {"done", "total",
# "what": "compute"} (tasks), at most every PROGRESS_EVENT_INTERVAL_S; a compute that ended well sends done == total
STEP_PROGRESS = "step_progress"
PROGRESS_EVENT_INTERVAL_S = 0.5
# `task.run_step` emits STEP_STARTED as the step's own code is about to run: its `execute` calls
# `code_starts()` then (after nbscale's own set-up: isolation, input copies), so that an engine may
# make ready for the code in the meantime (the Dask engine's record of the running step, `dask_lifecycle`)
_CODE_STARTS: contextvars.ContextVar = contextvars.ContextVar("nbscale_code_starts", default=None)
# events that are a live feed only: sent to whoever follows the run as they happen (the panel,
# `nbscale run -v`), never stored in the run store (what they show is stored when the step ends)
LIVE_ONLY = frozenset({STEP_OUTPUT, STEP_PROGRESS, CLUSTER_STARTING, CLUSTER_STARTED})

# --- why a run ended without finishing its steps (the run's `error`) ------------------------------
CANCELLED_BY_USER = "cancelled by the user"  # Ctrl-C, Cancel in the panel
STOPPED_BY_SIGTERM = "stopped by SIGTERM"  # handled like Ctrl-C: the run is cancelled
SERVER_WENT_AWAY = "the Jupyter server or kernel that started the run went away"  # its run process cancels it
OWNER_STOPPED = "the process running it stopped"  # found by whoever opens the run store next
OWNER_STOPPED_EARLY = "the process running it ended before its steps did"  # after a stop was asked for
STOPPED_TWICE_BY_SIGTERM = f"stopped again (a second Ctrl-C, SIGTERM or SIGHUP): {OWNER_STOPPED_EARLY}"


def state_lost_message(run_store) -> str:
    """The run's record went away under it (`.nbscale/` or its `runs.sqlite` deleted or replaced)."""
    return (f"the state folder {Path(run_store).parent} (or its run store {Path(run_store).name}) was deleted "
            "or replaced during the run: this run's history and the values it stored for reuse are lost")


METRICS_KEY = "__nbscale_metrics__"  # a metrics step keeps its metrics under this name in the store
# in a step's summary: its profiles are taken during its background store write; read them from the manifest
PROFILES_STORED = "profiles_stored"


@dataclass
class StepSpec:
    """Everything a task needs, all picklable: no client, no run store."""

    step: dict  # IR step (JSON)
    prelude: dict
    metrics: dict
    parameters: dict  # the parameter values of this run
    hash: str
    store_url: str
    cwd: str
    notebook: str
    use_cache: bool = True
    keep: list[str] = field(default_factory=list)  # names worth keeping beyond the outputs
    key: str = ""  # the cache key, when the plan already knows it (a cached step); else from the inputs
    # with a `key`: files whose version the step used a later step replaced (`file_versions`): the
    # stored result is not checked against them, as the plan did not check it
    unchecked: tuple = ()
    # files it uses that an earlier step writes anew (`file_versions.made_before`): one it read and then
    # changed is no state it advances
    made_before: tuple = ()
    # producer step → its key, for cached producers this run does not load: if this cached step's
    # stored result turns out damaged, it reads its inputs from there and runs
    stored_inputs: dict = field(default_factory=dict)
    # a run id: large values are stored in the background (`handoff`), waited for under this id
    background_run: str = ""
    profile: bool = True  # profile the values it hands on (`profiles`; off by a project setting)
    owner: str = ""  # the run's owner (`children.owner_marker`), named to the processes the step starts
    # the environment variables of the process that runs the pipeline, for a worker that has others
    # (a warm cluster's have those of `nbscale cluster start`): the step sees these, as top to bottom;
    # never in its repr (Dask logs a failed task's arguments; credentials stay out of logs)
    environ: dict | None = field(default=None, repr=False)


@dataclass
class StepOutcome:
    step: str
    status: str
    values: dict = field(default_factory=dict)  # outputs, in memory for downstream steps
    summary: dict = field(default_factory=dict)  # StepResult.to_json() or a short reason
    attempts: int = 0
    started: float = 0.0
    finished: float = 0.0
    key: str = ""  # the cache key its outputs are stored under (`run_key`)
    digests: dict = field(default_factory=dict)  # output name → content digest of the stored value
    stale: list = field(default_factory=list)  # why a stored result was not reused (dependency changes)
    # name → digest of each value its result holds under `key` (outputs, kept final values, metrics), as
    # its own write (or its cache hit) stored them: `RunResult.load` tells them from a later run's
    stored: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status in OK

    def __getstate__(self) -> dict:  # sent to another worker: numpy views among its values stay views
        return {**self.__dict__, "values": sendable(self.values)}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update({**state, "values": received(state["values"])})


def finished_payload(outcome: StepOutcome) -> dict:
    """The payload of a `step_finished` event, the same from every engine."""
    return {"status": outcome.status, "summary": outcome.summary, "attempts": outcome.attempts,
            "started": outcome.started, "finished": outcome.finished, "key": outcome.key,
            "stale": list(outcome.stale)}


def run_key(code_hash: str, input_digests: dict) -> str:
    """The cache key of a step: its static hash (code, prelude, parameters it reads — the IR's
    `hash`) and the content digests of the values it receives. Keys chain on what upstream steps
    produced, not on their code: an upstream re-run that gives the same values changes nothing."""
    if not input_digests:
        return code_hash
    text = json.dumps({"code": code_hash, "inputs": input_digests}, sort_keys=True)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


# --- errors --------------------------------------------------------------------------------------


def error_dict(ename: str, evalue: str, traceback: str | None = None, *, cell=None, line=None,
               frames=None) -> dict:
    """A step error as JSON (the fields of `tracebacks.StepError`), for failures outside the step's cells."""
    return {"cell": cell, "line": line, "ename": ename, "evalue": evalue,
            "traceback": traceback if traceback is not None else evalue + "\n", "frames": list(frames or [])}


def unstorable_output(variable: str, message: str, step: dict) -> dict:
    """A step output that cannot be pickled (`MarshalError`: its `variable` and message) as the
    step's error, pointing at the statement of the step that first binds it: the cell to change,
    not the run time's code."""
    from ..compiler.analysis import analyse_cells  # (only on this failure)
    from ..compiler.notebook import cell_label

    site = analyse_cells(list(zip(step.get("cells", ()), step.get("source", ())))).bind_sites.get(variable)
    cell, line = (site.cell, site.line) if site is not None else (None, None)
    where = f" (bound at {cell_label(cell, line)})" if cell is not None else ""
    message = (f"{message}{where}; a later step reads it, and values pass from step to step pickled: make it in the "
               "step that uses it, or in the imports cell, which runs before every step")
    return error_dict("MarshalError", message, cell=cell, line=line)


def failed_outcome(step: str, ename: str, message: str, traceback: str | None = None) -> StepOutcome:
    """A step that failed before or after its code ran (setup, marshalling, a lost worker)."""
    now = time.time()
    return StepOutcome(step, FAILED, summary={"status": FAILED, "error": error_dict(ename, message, traceback)},
                       started=now, finished=now)


def missing_outputs_message(step: str, missing: list[str], notebook: str = "") -> str:
    names = ", ".join(repr(n) for n in missing)
    where = f" of {notebook}" if notebook else ""
    one = len(missing) == 1
    return (f"step {step!r}{where} finished without defining its output(s) {names}: a downstream step reads "
            f"{'it' if one else 'them'}, but no cell of the step bound {'that name' if one else 'those names'}")


@contextmanager
def announced_code_start(announce):
    """Within the block, `code_starts()` calls `announce()`, the first time only; the block's end
    calls it if nothing did (an `execute` that failed before the code, or that does not say)."""
    called = []

    def once():
        if not called:
            called.append(True)
            announce()

    token = _CODE_STARTS.set(once)
    try:
        yield
    finally:
        _CODE_STARTS.reset(token)
        once()


def code_starts() -> None:
    """The step's own code (its imports cell first) is about to run: said by an `execute`."""
    announce = _CODE_STARTS.get()
    if announce is not None:
        announce()


# --- timeouts ------------------------------------------------------------------------------------


def timeout_message(step: str, seconds) -> str:
    return f"step '{step}' ran longer than its timeout of {seconds} s"


# said of a step that outlived its timeout by catching it and ending on its own
TIMEOUT_SWALLOWED = (" (its code caught the timeout and ended on its own, so what it made may be cut short: "
                     "nothing of it is kept; catch Exception, not BaseException or a bare except)")


def explain_timeout(error, step: str, seconds) -> None:
    """`deadline` raises a bare StepTimeout in the user's code: give its StepError the message."""
    if error is not None and error.ename == "StepTimeout" and not error.evalue:
        error.evalue = timeout_message(step, seconds)
        error.traceback = error.traceback.rstrip("\n") + ": " + error.evalue + "\n"


@contextmanager
def deadline(seconds, owner: tuple[str, str] | None = None, step: str | None = None):
    """Raise StepTimeout in this thread after `seconds` (the step's `timeout:` tag). `owner`: the
    (run, step) whose code the block runs, known meanwhile to `timed_code_running`; `step`: its
    name, when no run owns it (a KFP component).

    The exception is raised between Python bytecodes, so it lands in the user's code and is
    reported at the cell and line that was running; a long call into C code ends first. In the
    main thread (the local engine) a signal raises it too (`_Alarm`), which also ends a sleep or
    a wait in a system call. On a Dask worker the run's client stops a step that outlives its
    timeout anyway (`dask_lifecycle.StepDeadlines`); in the main thread of a process the run owns,
    `past_timeout_last_words` ends the process. Yields a `_Timer`: whether the timeout struck.
    """
    timer = _Timer()
    if not seconds:
        yield timer
        return
    name = step or (owner[1] if owner else "")
    with _Alarm(seconds) as alarm, _raised_in_thread(seconds, alarm, timer), _timed(owner), \
            _process_ended_past(seconds, name):
        yield timer
    timer.struck = timer.struck or alarm.struck


class _Timer:
    """What `deadline` yields: `struck` once the timeout has struck. A step whose code caught the
    StepTimeout (`except:`, `except BaseException`) and ended on its own has still outlived its
    timeout: its values may be cut short, and are not kept."""

    struck = False


_TIMED: dict[tuple[str, str], int] = {}  # (run, step) → its blocks under a deadline running in this process


@contextmanager
def _timed(owner):
    if owner is None:
        yield
        return
    _TIMED[owner] = _TIMED.get(owner, 0) + 1
    try:
        yield
    finally:
        _TIMED[owner] -= 1
        if not _TIMED[owner]:
            del _TIMED[owner]


def timed_code_running(run: str, step: str, dask_worker=None) -> bool:
    """Whether this process runs the step's code under its timeout now (asked of a Dask worker by
    `client.run`): its code may have ended while the run still counts it running, its end not yet
    reported (a chain's step ends as the next one starts)."""
    return (run, step) in _TIMED


@contextmanager
def _raised_in_thread(seconds, alarm: _Alarm, timer: _Timer):
    """`PyThreadState_SetAsyncExc` from a timer thread, unless the alarm struck already (the
    step's code took the signal over, or cleared the timer: this still ends it)."""
    thread_id, lock, state = threading.get_ident(), threading.Lock(), {"armed": True, "timer": None}

    def fire(after: float):
        with lock:
            if not state["armed"]:
                return
            if alarm.struck or alarm.in_charge():  # one exception at a time: a second would strike its handling
                return
            timer.struck = True
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), ctypes.py_object(StepTimeout))
            # again until the step has ended: a bare `except:` in its code may have swallowed it
            state["timer"] = _start_timer(after, fire, TIMEOUT_REFIRE_S)

    state["timer"] = _start_timer(seconds, fire, TIMEOUT_REFIRE_S)
    try:
        yield
    finally:
        with lock:
            state["armed"] = False
            state["timer"].cancel()
            # one raised just before: not delivered yet, it would strike the code after the step
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), None)


TIMEOUT_REFIRE_S = 1.0  # how often a timeout is raised again in a step that has not ended
TIMEOUT_GRACE_S = 10.0  # past its timeout, how long a step owning its process may unwind before the process ends
EXIT_TIMEOUT = 124  # the exit code of a process ended so (as `timeout(1)` ends one)
_PAST_TIMEOUT: list = []  # `past_timeout_last_words`
_EXIT = os._exit  # (the local engine refuses the steps' `os._exit` while they run: `task.exit_refused`)


@contextmanager
def past_timeout_last_words(say):
    """While the block runs, a step running in the main thread that has not ended TIMEOUT_GRACE_S
    past its timeout ends the process, after `say(message)` (its last words: record the run's end).
    Its code may catch the timeout in a loop (`while True: try: … except: pass`), or run compiled
    code that holds the interpreter: nothing else ends it. Only for a block that owns its process
    (`nbscale run` under the local engine, a KFP component): ended, it loses nothing but its run."""
    _PAST_TIMEOUT.append(say)
    try:
        yield
    finally:
        _PAST_TIMEOUT.remove(say)


@contextmanager
def _process_ended_past(seconds, step: str):
    if not _PAST_TIMEOUT or threading.current_thread() is not threading.main_thread():
        yield
        return
    lock, state = threading.Lock(), {"armed": True}

    def expire():
        with lock:
            if not state["armed"]:
                return
            message = (f"{timeout_message(step, seconds)} and did not stop within {TIMEOUT_GRACE_S:g} s (its code "
                       "catches the timeout, or runs compiled code that holds the interpreter); nbscale ended "
                       "the process")
            for say in reversed(_PAST_TIMEOUT):
                try:
                    say(message)
                except Exception:  # noqa: BLE001 - the process ends either way
                    pass
            print(f"nbscale: {message}", file=sys.__stderr__, flush=True)
            _EXIT(EXIT_TIMEOUT)

    watchdog = _start_timer(float(seconds) + TIMEOUT_GRACE_S, expire)
    try:
        yield
    finally:
        with lock:
            state["armed"] = False
            watchdog.cancel()


class _Alarm:
    """SIGALRM after `seconds`, then every TIMEOUT_REFIRE_S, its handler raising StepTimeout: a
    step asleep or blocked in a system call (`time.sleep`, a socket read, a child's wait) runs no
    bytecode for `_raised_in_thread` to land between, while a signal interrupts the call and the
    handler raises in it. Only in the main thread (where Python runs handlers), and only when the
    process does not use the real-time timer itself (its own `signal.alarm`)."""

    def __init__(self, seconds):
        self.seconds, self.armed, self.previous, self.struck = float(seconds), False, None, False

    def __enter__(self):
        if (threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer")
                or signal.getitimer(signal.ITIMER_REAL) != (0.0, 0.0)
                or signal.getsignal(signal.SIGALRM) not in (signal.SIG_DFL, signal.SIG_IGN)):
            return self
        self.previous, self.armed = signal.signal(signal.SIGALRM, self._strike), True
        signal.setitimer(signal.ITIMER_REAL, self.seconds, TIMEOUT_REFIRE_S)
        return self

    def in_charge(self) -> bool:
        """Armed, and still the process's SIGALRM handler with its timer running (the step's code
        did not take the signal over): it raises the timeout, the timer thread does not."""
        return (self.armed and signal.getsignal(signal.SIGALRM) == self._strike
                and signal.getitimer(signal.ITIMER_REAL) != (0.0, 0.0))

    def _strike(self, signum, frame):
        # never in the code that disarms it (here, and contextlib's `__exit__` on the way): raised
        # there, it would escape the step and leave the timer firing
        if self.armed and (frame is None or frame.f_code.co_filename not in _DISARMING):
            self.struck = True
            raise StepTimeout

    def __exit__(self, *exc):
        if self.previous is None:
            return
        self.armed = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        _settle()  # an alarm pending now runs the disarmed handler, not the one put back
        signal.signal(signal.SIGALRM, self.previous)
        self.previous = None


_DISARMING = (__file__, contextlib.__file__)


def _settle() -> None:
    """A call into Python code: the interpreter runs the signal handlers pending as it enters."""


def _start_timer(seconds: float, function, *args) -> threading.Timer:
    timer = threading.Timer(seconds, function, args)
    timer.daemon = True
    timer.start()
    return timer


# --- where a notebook's state lives --------------------------------------------------------------
STATE_DIR_NAME = ".nbscale"


def user_state_dir() -> Path:
    """The user's own state folder, shared by every notebook: $XDG_STATE_HOME/nbscale, else
    ~/.local/state/nbscale."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "nbscale"


def state_dir(notebook) -> Path:
    """The state folder beside a notebook: run store, artifacts, kept step notebooks."""
    # realpath, not Path.resolve(): a notebook path that is a symlink loop must reach the reading of
    # the notebook, which says it "cannot be read", not raise RuntimeError here (as resolve() does)
    return Path(os.path.realpath(notebook)).parent / STATE_DIR_NAME


def run_store_path(notebook) -> Path:
    return state_dir(notebook) / "runs.sqlite"


def artifacts_url(notebook) -> str:
    """The default artifact store: a folder in the state folder."""
    return str(state_dir(notebook) / "artifacts")


def logs_dir(notebook, run_id: str) -> Path:
    """A run's log folder in the state folder: one log per step, and the images its cells showed."""
    return state_dir(notebook) / "logs" / run_id


def step_log_path(notebook, run_id: str, step: str) -> Path:
    """Everything a step of a run printed and showed, cell by cell, as text (`nbscale show` reads it)."""
    return logs_dir(notebook, run_id) / f"{step}.log"


def truncated_text(text: str, log_path, limit: int = STORED_OUTPUT_CHARS) -> str:
    """`text` as the run store keeps it: whole up to `limit` characters, else its beginning and its
    end around a marker that says how much was left out and where the whole log is."""
    if text is None or len(text) <= limit:
        return text
    head, tail = text[: limit // 4], text[-(limit - limit // 4):]
    size = f"{len(text) / 1e6:.1f} MB" if len(text) >= 100_000 else f"{len(text)} characters"
    where = f"full log at {log_path}" if log_path else "the rest was not kept"
    return f"{head}\n… output truncated ({size}); {where}\n{tail}"
