"""The body of one step as an engine runs it: inputs in, step executed, outputs persisted.

It is a plain function of plain data so that any engine can call it: in-process (local), as a
Dask task on a worker anywhere, or inside a papermill kernel. Failures are results, not
exceptions, so that an engine can mark downstream steps `upstream_failed` and let independent
branches finish. A step run in this process leaves the process as it found it for the next step,
of this run or another one (`process_state`, `children`).
"""

from __future__ import annotations

import os
import re
import socket
import threading
import time
import traceback
from contextlib import contextmanager

from .capture import live_output
from .children import marked_for_owner, step_children

# StepSpec and StepOutcome are imported from here by tasks pickled to workers: keep the names.
from .contract import (
    CACHED,
    CANCELLED,
    FAILED,
    METRICS_KEY,
    PROFILES_STORED,
    STEP_CACHED,
    STEP_OUTPUT,
    STEP_RETRY,
    STEP_STALE,
    STEP_STARTED,
    TIMEOUT_SWALLOWED,
    UPSTREAM_FAILED,
    WARNING,
    StepOutcome,
    StepSpec,
    announced_code_start,
    deadline,
    error_dict,
    explain_timeout,
    failed_outcome,
    run_key,
    timeout_message,
    unstorable_output,
)
from .cost import measured
from .errors import ArtifactNotFound, MarshalError, StepTimeout
from .fingerprints import ADVANCED, FILE, GREW, MODULE, PRODUCT, check
from .handoff import (
    await_writes,
    collection_digests,
    is_dask_collection,
    memory_digests,
    read_only_message,
    start_write,
    step_inputs,
    value_digests,
    wrote_into_read_only,
)
from .interrupts import step_stop_requested
from .masking import kept_values
from .process_state import DECIMAL_CONTEXT, NUMPY_RANDOM_STATE, RANDOM_STATE, environment, restored_process_state
from .shell_holder import held_for_run
from .step_threads import left_threads_message, step_threads
from .steplineage import step_lineage
from .store import ArtifactStore, caller_tells_of_damage

__all__ = ["RESTORED", "StepOutcome", "StepSpec", "await_stored", "damage_reason", "execute_in_process",
           "input_digests", "isolated_step", "restored_message", "reusable_manifest", "run_step", "stored_digests",
           "written_digests"]

RESTORED = "restored"  # key of `execute`'s extra summary: what the step changed process-wide (warned about)
NOTE = "note"  # key of `execute`'s extra summary: a warning about the attempt (it ran again on copies)
RESTORED_SHOWN = 8


# said of a step that ended while it was being stopped (its code caught Ctrl-C, or its processes
# were ended first): what it made is not kept
ENDED_WHILE_STOPPED = "cancelled while it ran: it ended as it was being stopped, so what it made may be cut short"


def run_step(spec: StepSpec, upstream: dict, emit=None, execute=None) -> StepOutcome:
    """Run one step. `upstream`: step name → its StepOutcome; `emit(kind, step, payload)`.

    `execute(spec, inputs) -> (StepResult, extra summary)` runs one attempt; inputs are grouped by
    the step that hands them on. The default runs the step in this process, isolated
    (`isolated_step`: what it changes process-wide is put back, a WARNING event names it, and the
    processes it started end with it); the papermill engine runs it as a notebook in a kernel.
    Never raises (but for KeyboardInterrupt): whatever goes wrong is a failed outcome.
    """
    emit = emit or (lambda *args: None)
    try:
        with environment(spec.environ):  # (its cache check too: the variables it read are compared)
            return _run_step(spec, upstream, emit, execute or execute_in_process)
    except StepTimeout:  # struck as the step ended, in nbscale's own code
        return failed_outcome(spec.step["name"], "StepTimeout", timeout_message(spec.step["name"],
                                                                                spec.step.get("timeout")))
    except Exception as exc:  # noqa: BLE001 - a broken task must not take the run down
        return failed_outcome(spec.step["name"], type(exc).__name__, f"nbscale could not run the step: {exc}",
                              traceback.format_exc())


def _run_step(spec: StepSpec, upstream: dict, emit, execute) -> StepOutcome:
    name, step = spec.step["name"], spec.step
    # an upstream step not in `upstream` was cached and not needed here
    failed = sorted(u for u in step["after"] if u in upstream and not upstream[u].ok)
    if failed:
        return StepOutcome(name, UPSTREAM_FAILED, summary={"reason": f"upstream failed: {', '.join(failed)}"})
    store = ArtifactStore(spec.store_url)
    key = spec.key or run_key(spec.hash, input_digests(step, upstream))
    stale: list[str] = []
    if spec.use_cache and step.get("cache", True):
        cached, stale = _from_cache(store, key, spec, upstream, emit)
        if cached is not None:
            return cached
    if not os.path.isdir(spec.cwd):
        return failed_outcome(name, "FileNotFoundError", (
            f"the notebook folder {spec.cwd} does not exist on {socket.gethostname()}, where this step runs; "
            f"steps run in the notebook's folder: give the workers the same folder on a shared file system, "
            f"or read data from URLs (s3://…), and pass --store URL for artifacts"))
    inputs = _inputs(step, upstream, store, spec.stored_inputs)
    started = time.time()
    with announced_code_start(lambda: emit(STEP_STARTED, name, {"hash": key})):
        result, extra, attempt = _attempts(spec, inputs, emit, execute)
    status = result.status
    if result.ok and step_stop_requested():
        # its code caught Ctrl-C or SIGTERM and ended, or ended as its worker was being restarted to
        # stop it (its processes ended first): what it made may be cut short, and is not kept
        status, extra = CANCELLED, {**extra, "reason": ENDED_WHILE_STOPPED}
    outcome = StepOutcome(name, status, summary={**result.to_json(), **extra}, attempts=attempt,
                          started=started, finished=time.time(), key=key, stale=stale)
    if outcome.ok:
        network = (result.dependencies or {}).get("network")
        if network and step.get("cache", True):  # (kept for reuse)
            emit(WARNING, name, {"message": network_message(network)})
        unstored = _persist(store, spec, result, outcome)
        if unstored:
            emit(WARNING, name, {"message": unstored})
    # what produced its values (digests, files, versions): the run store keeps it (steplineage)
    outcome.summary["lineage"] = step_lineage(spec, upstream, result, outcome)
    return outcome


def network_message(places: list[str]) -> str:
    """The warning for a step that read over the network (`dependencies._connected_to`)."""
    shown = ", ".join(places[:3]) + (f" and {len(places) - 3} more" if len(places) > 3 else "")
    return (f"the step read over the network ({shown}): nbscale cannot see whether what it read there changes, "
            "and reuses its result while its code, inputs and files stay the same; tag it `cache:off` to run it "
            "every time")


def _attempts(spec: StepSpec, inputs: dict, emit, execute):
    """The step's attempts, up to its `retries:`: the last one's StepResult and extra summary, and
    how many ran."""
    name, retries = spec.step["name"], spec.step.get("retries", 0)
    for attempt in range(1, retries + 2):
        # what the step prints reaches `emit` as it comes (batched), from any engine's worker
        with live_output(lambda step, stream, text: emit(STEP_OUTPUT, step, {"stream": stream, "text": text})):
            result, extra = execute(spec, inputs)
        restored, note = extra.pop(RESTORED, None), extra.pop(NOTE, None)
        if restored:
            emit(WARNING, name, {"message": restored_message(restored)})
        if note:
            emit(WARNING, name, {"message": note})
        if result.ok:
            break
        if attempt <= retries:
            emit(STEP_RETRY, name, {"attempt": attempt, "error": result.error.evalue})
    return result, extra, attempt


def input_digests(step: dict, upstream: dict) -> dict:
    """Content digest of each value the step receives, as its producer stored it."""
    return {name: upstream[producer].digests.get(name, "") for name, producer in step["sources"].items()}


def reusable_manifest(store: ArtifactStore, key: str, outputs, cwd: str, unchecked=(),
                      made_before=(), grown: list | None = None) -> tuple[dict | None, list[str]]:
    """The manifest stored under `key` if its result still holds, and else why not: the changes
    of the dependencies the step recorded when it ran (files, local modules, versions, env), but for
    the files in `unchecked` (as the cells name them), and a file in `made_before` (an earlier step
    writes it) that it read and then changed. Files it wrote or appended to that were added to
    since are no change here; given a list `grown`, their changes are added to it, for the caller
    to tell whether a later step left them so (`fingerprints.as_left`)."""
    stored = store.complete_manifest(key)
    if stored is None:
        return None, []
    if any(name not in stored["outputs"] for name in outputs):
        return None, _never_stored(stored, outputs)
    try:
        manifest = store.manifest(key)
    except ArtifactNotFound:
        return None, []
    changes = check(manifest["dependencies"], cwd) if manifest.get("dependencies") else []
    if any(change.kind == MODULE for change in changes):
        from .dependencies import forget_bytecode

        for change in changes:
            if change.kind == MODULE:  # the step imports it again: from its source, not stale bytecode
                forget_bytecode(os.path.join(cwd, change.name))
    folder = os.path.abspath(cwd)
    if unchecked:
        skipped = {os.path.normpath(os.path.join(folder, path)) for path in unchecked}
        changes = [c for c in changes
                   if c.kind not in (FILE, PRODUCT) or os.path.normpath(os.path.join(folder, c.name)) not in skipped]
    if made_before:
        made = {os.path.normpath(os.path.join(folder, path)) for path in made_before}
        changes = [c for c in changes
                   if c.what != ADVANCED or os.path.normpath(os.path.join(folder, c.name)) not in made]
    if grown is not None:
        grown.extend(c for c in changes if c.what == GREW)
    changes = [c for c in changes if c.what != GREW]
    return (None, [c.text for c in changes]) if changes else (manifest, [])


def _never_stored(manifest: dict, outputs) -> list[str]:
    """Why a stored result lacks outputs of the step: they are Dask collections (handed on as graphs,
    never stored: `handoff`); else nothing beyond there being no such result."""
    lazy = [name for name in outputs if name in (manifest.get("never_stored") or ())]
    if not lazy:
        return []
    what = f"{lazy[0]} is a Dask collection" if len(lazy) == 1 else f"{', '.join(lazy)} are Dask collections"
    return [f"{what}: handed on as a graph and never stored, so this step and the steps that read it run every time"]


def stored_digests(manifest: dict) -> dict:
    """The digests readers' keys chain on: taken in memory when the values were handed on that way."""
    return {name: entry.get("content") or entry["digest"] for name, entry in manifest["outputs"].items()}


def damage_reason(error: Exception) -> str:
    """Why a step whose stored result was found damaged (and removed) runs again."""
    return f"the stored result was damaged: {error}"


def _from_cache(store, key, spec, upstream, emit) -> tuple[StepOutcome | None, list[str]]:
    """The step's stored result as a CACHED outcome, or None and why it cannot be reused."""
    name, step = spec.step["name"], spec.step
    with caller_tells_of_damage() as damaged:  # (a file of another size than its manifest says)
        manifest, stale = reusable_manifest(store, key, step["outputs"], spec.cwd, spec.unchecked if spec.key else (),
                                            spec.made_before)
    if damaged:
        emit(WARNING, name, {"message": str(damaged[0])})
        return None, [damage_reason(damaged[0])]
    if stale:
        emit(STEP_STALE, name, {"changes": stale})
    if manifest is None:
        return None, stale
    try:
        with caller_tells_of_damage():  # told below, as the step's warning
            values = store.get(key, step["outputs"])
    except MarshalError as exc:  # stored intact, and cannot be loaded (a missing plug-in, a class changed)
        emit(WARNING, name, {"message": f"the stored result cannot be loaded ({exc}): the step runs again"})
        return None, [f"the stored result cannot be loaded: {exc}"]
    except ArtifactNotFound as exc:  # corrupt (the store removed it) or gone: the step runs instead
        emit(WARNING, name, {"message": str(exc)})
        unloaded = sorted({p for p in step["sources"].values() if p not in upstream and p not in spec.stored_inputs})
        if unloaded:  # cached upstream steps this run did not load, as it planned to use the cache
            return failed_outcome(name, type(exc).__name__, f"{exc}; its inputs from {', '.join(unloaded)} "
                                  "were not loaded in this run: run the pipeline again to recompute it"), []
        return None, [damage_reason(exc)]
    now = time.time()
    emit(STEP_CACHED, name, {"hash": key})
    digests = stored_digests(manifest)
    return StepOutcome(name, CACHED, values=values, stored=digests, started=now, finished=now, key=key,
                       digests=digests), []


def execute_in_process(spec: StepSpec, inputs: dict, views: bool = True):
    """One attempt of the step in this process, on copies of its inputs (read-only views of arrays
    it only reads), within its timeout; what it changed process-wide is put back and the processes
    it started are ended afterwards."""
    from .dependencies import outdated_distributions
    from .executor import StepError, StepResult, execute_step  # IPython: only paid when a step really runs

    step = spec.step
    with step_threads() as left, isolated_step(spec.cwd, spec.owner, spec.background_run) as state:
        outdated = outdated_distributions()
        if outdated:
            return StepResult(step["name"], FAILED, error=StepError(**error_dict(
                OUTDATED_LIBRARIES, outdated_message(outdated)))), {}
        try:
            with deadline(step.get("timeout"), (spec.background_run, step["name"])) as timer:
                values, viewed = step_inputs(inputs, set(step.get("defines", ())), views)
                result = execute_step(step, spec.prelude, spec.parameters, values,
                                      metrics=spec.metrics, cwd=spec.cwd, notebook=spec.notebook)
        except StepTimeout:  # it struck outside the step's cells (copying inputs, collecting outputs)
            return StepResult(step["name"], FAILED, error=StepError(**error_dict(
                "StepTimeout", timeout_message(step["name"], step.get("timeout"))))), {}
        except MarshalError as exc:  # an input that cannot be copied for it: said, without nbscale's traceback
            return StepResult(step["name"], FAILED, error=StepError(**error_dict("MarshalError", str(exc)))), {}
        if timer.struck and result.ok:  # its code caught the timeout and ended: what it made may be cut short
            return StepResult(step["name"], FAILED, error=StepError(**error_dict(
                "StepTimeout", timeout_message(step["name"], step.get("timeout")) + TIMEOUT_SWALLOWED))), {}
    if viewed and wrote_into_read_only(result.error):
        result, extra = execute_in_process(spec, inputs, views=False)
        return result, {**extra, NOTE: read_only_message(viewed)}
    _explain(result, spec)
    # reseeding the global generators a step drew from is routine, not worth a warning
    restored = [what for what in state.restored if what not in (RANDOM_STATE, NUMPY_RANDOM_STATE)
                and not _made_again(what, step, spec.prelude)]
    extra = {RESTORED: restored} if restored else {}
    if left:
        extra[NOTE] = left_threads_message(left)
    return result, extra


def _made_again(restored: str, step: dict, prelude: dict) -> bool:
    """Whether what was put back after the step is made again before every later step, so that
    they see it as top to bottom: by the imports cell (`sys.path.insert(0, "lib")`), or by a
    statement that travels (`os.environ["MODE"] = "fast"`: `compiler.settings`) in the step or
    replayed into it. Nothing to warn about then."""
    before = [*prelude.get("source", ()), *(s.get("source", "") for s in step.get("settings", ()))]
    if restored.startswith("os.environ["):
        name = restored[len("os.environ["):-1]  # its repr
        quoted = {name, f'"{name[1:-1]}"'}
        return any(f"environ[{q}]" in text.replace(" ", "") for text in [*before, *step.get("source", ())]
                   for q in quoted)
    if restored == DECIMAL_CONTEXT:  # `decimal.getcontext().prec = 4` travels: in the step or replayed into it
        return any("getcontext()" in text or "setcontext(" in text for text in [*before, *step.get("source", ())])
    made_by = {"the working directory": ("chdir(", "%cd ")}.get(restored, (restored,) if restored.startswith(
        "sys.") else ())
    if any(word in text for text in before for word in made_by):
        return True
    # a module's attribute (`matplotlib.pyplot._backend_mod`) changed while the imports cell used its
    # package (`matplotlib.use("Agg")`) and the step's own code never names it: the imports cell's doing
    top = restored.partition(".")[0]
    named = re.compile(rf"\b{re.escape(top)}\b")
    return top.isidentifier() and top not in ("sys", "os") and any(named.search(text) for text in before) \
        and not any(named.search(text) for text in step.get("source", ()))


def restored_message(restored: list[str]) -> str:
    """The warning for a step whose process-wide changes were put back (`restored` names them)."""
    shown = ", ".join(restored[:RESTORED_SHOWN]) + (f" and {len(restored) - RESTORED_SHOWN} more"
                                                     if len(restored) > RESTORED_SHOWN else "")
    return (f"the step changed process-wide state, which nbscale put back after it so that later steps and "
            f"other runs do not see it: {shown}. Settings every step needs belong in an `imports` cell, which "
            "runs before every step")


@contextmanager
def isolated_step(folder: str | None = None, owner: str = "", run: str = ""):
    """Run the block as the one step of this process that other runs must not notice afterwards;
    it yields the `ProcessState`, whose `.restored` names what was put back once the block ended.

    Holds the process's step shell (steps of a worker with several threads take turns, so one
    step's snapshot never holds another's changes). nbscale's own once-per-process set-up (the
    shell, its import hooks) and the eviction of edited local modules (and of another folder's
    that `folder`, the step's, shadows) happen before the snapshot, so that restoring keeps them;
    so does naming the run's `owner` to the processes the step starts (`children.marked_for_owner`).
    `run`: the run's id, unless it is stopped meanwhile (`shell_holder`).
    """
    from . import native_io
    from .dependencies import forget_stale_bytecode, note_loaded_distributions, see_shell_commands, watch_imports
    from .executor import evict_outdated_modules
    from .shell import step_shell

    with step_shell(), held_for_run(run):
        evict_outdated_modules(folder)
        forget_stale_bytecode(folder)
        native_io.install()
        see_shell_commands()
        watch_imports()
        try:
            with step_children(), marked_for_owner(owner), restored_process_state() as state:
                yield state
        finally:
            note_loaded_distributions()  # the versions of the libraries it imported, as it ends


OUTDATED_LIBRARIES = "OutdatedLibraries"  # the error of a step refused by a process holding an old library


def outdated_message(outdated: dict) -> str:
    """Why a step does not run in a process that imported a library since upgraded (or removed)."""
    changes = ", ".join(f"{name} {then} (installed now: {now or 'none'})"
                        for name, (then, now) in sorted(outdated.items()))
    return (f"this process ({socket.gethostname()}, pid {os.getpid()}) imported {changes} before it was installed "
            "again or removed; a library cannot be imported again in the same process, so the step would run the "
            "old code. "
            "Restart the process: the kernel for a run inside it, the workers for a Dask cluster "
            "(`nbscale cluster stop` ends the warm cluster; a run restarts its idle workers itself)")


@contextmanager
def exit_refused():
    """`os._exit` in the step's code fails the step (SystemExit with what happened) instead of ending
    the process that runs it, for a step run in the run's own process (the local engine), which would
    end with the step's exit code (0: a pipeline that stopped half-way looked like a success). On a
    worker, `os._exit` is a worker's death (retried as `retries:` says). A process the step forked
    exits as asked. Runs of the process at once (`nbscale.run()` from threads) share the refusal: the
    first puts it in place, the last takes it away (each putting back what it found would have left it
    there for good, or taken it from a step still running)."""
    global _refusing
    with _refusals:
        if _refusing == 0:
            _refused_exit.update(real=os._exit, owner=os.getpid())
            os._exit = _refused
        _refusing += 1
    try:
        yield
    finally:
        with _refusals:
            _refusing -= 1
            if _refusing == 0:
                os._exit = _refused_exit["real"]


_refusals = threading.Lock()
_refusing = 0  # runs of this process refusing `os._exit` now
_refused_exit: dict = {}  # the real `os._exit`, and the pid of the process that refuses it


def _refused(code):
    if os.getpid() != _refused_exit["owner"]:  # (a forked child)
        _refused_exit["real"](code)
    raise SystemExit(f"os._exit({code!r}) would end the process running the step, and the run with it: "
                     "the step fails instead (sys.exit() ends a step early)")


def _explain(result, spec):
    error = result.error
    explain_timeout(error, spec.step["name"], spec.step.get("timeout"))
    if error is None or error.ename != "FileNotFoundError":
        return
    error.evalue += (f" (relative paths are relative to the notebook folder {spec.cwd} on "
                     f"{socket.gethostname()}, where the step runs; workers on other machines need the "
                     "same folder on a shared file system, or data read from URLs)")


def _inputs(step, upstream, store: ArtifactStore, stored: dict) -> dict[str, dict]:
    """Input values grouped by the step that hands them on: from its outcome, or, for a cached
    producer this run did not load, from the store under its key."""
    grouped: dict[str, dict] = {}
    for name, producer in step["sources"].items():
        grouped.setdefault(producer, {})[name] = None
    for producer, names in grouped.items():
        if producer in upstream:
            grouped[producer] = {n: upstream[producer].values[n] for n in names}
        else:
            grouped[producer] = store.get(stored[producer], list(names))
    return grouped


def _persist(store: ArtifactStore, spec: StepSpec, result, outcome: StepOutcome) -> str | None:
    """Store the step's result under its key (in the background for a run that can wait for it);
    a warning when the store cannot take it."""
    step = spec.step
    lazy = collection_digests(result.outputs)  # handed on in memory only, never stored
    stored = {n: v for n, v in result.outputs.items() if n not in lazy}
    keep = kept_values({n: v for n, v in result.namespace_values.items()
                        if n in spec.keep and n not in result.outputs and not is_dask_collection(v)})
    if result.metrics:
        keep[METRICS_KEY] = result.metrics  # a cached metrics step reports them again
    # per-column summaries of its frames and arrays, stored with them for cache hits
    from .profiles import can_wait, step_profiles  # numpy: paid once a step has values to hand on

    profiled = {**result.outputs, **keep} if spec.profile else {}
    in_memory = memory_digests(stored) if spec.background_run else None
    groups = [[n for n in group if n not in lazy] for group in step["groups"]]

    def write(content_digests=None, profiles=None):
        # kept values are best effort: what cannot be serialised is left out
        # replace: the step ran because what is stored there is missing, stale or not to be used
        # (cache:off, --no-cache); the digests downstream keys chain on must be of these values
        return store.put(outcome.key, {**stored, **keep}, [g for g in groups if g], step["name"], optional=keep,
                         replace=True, dependencies=result.dependencies, content_digests=content_digests,
                         cost=measured(outcome.summary),  # a later cache hit knows the time it saves
                         profiles=profiles, never_stored=list(lazy))

    outcome.values = result.outputs
    if in_memory is not None:  # readers start now; the write ends before the run does
        # profiled beside the write, off the critical path; at once where the profiling thread would
        # be the first to import what profiling needs
        profiles = (lambda: step_profiles(profiled)) if can_wait(profiled) else step_profiles(profiled)

        def write_and_note():  # the digests of what it wrote: taken as the run's writes are waited for
            _note_written(spec.background_run, step["name"], stored_digests(write(in_memory, profiles)))

        start_write(spec.background_run, step["name"], write_and_note)
        outcome.digests = {**in_memory, **lazy}
        outcome.summary[PROFILES_STORED] = True  # the runner reads them from the manifest once written
        return
    try:
        manifest = write(profiles=step_profiles(profiled))
    except MarshalError as exc:
        outcome.values = {}
        outcome.status = FAILED
        outcome.summary["status"] = FAILED
        outcome.summary["error"] = unstorable_output(exc.variable, str(exc), step)
        return
    except Exception as exc:  # noqa: BLE001 - a full disk, a file where a folder must be, a read-only
        # file system (fsspec's HTTP: NotImplementedError): only the cache entry is lost
        outcome.digests = {**(value_digests(stored) or {}), **lazy}
        return (f"could not store the step's result in {store.root} ({type(exc).__name__}: {exc}): it is handed on "
                "in memory, and the next run computes it again")
    outcome.summary["profiles"] = manifest.get("profiles")
    outcome.stored = stored_digests(manifest)
    outcome.digests = {**{n: d for n, d in outcome.stored.items() if n in stored}, **lazy}


# run → step → the digests of what the step's background write stored (`_persist`), in the process
# that wrote them, until the engine takes them (`written_digests`). Only the latest runs' are kept: a
# cancelled run's writes end after the run forgot them, and nobody takes theirs
_written: dict[str, dict[str, dict]] = {}
_written_lock = threading.Lock()
WRITTEN_RUNS_KEPT = 64


def _note_written(run_id: str, step: str, digests: dict) -> None:
    with _written_lock:
        _written.setdefault(run_id, {})[step] = digests
        while len(_written) > WRITTEN_RUNS_KEPT:
            del _written[next(iter(_written))]


def written_digests(run_id: str) -> dict[str, dict]:
    """Step → the digests of what its background write stored (`StepOutcome.stored`), for the run's writes that
    ended in this process; taken: a second call gives only the writes that ended since."""
    with _written_lock:
        return _written.pop(run_id, {})


async def await_stored(run_id: str, dask_worker=None) -> dict:
    """On a Dask worker (through `client.run`): wait for the run's background writes there
    (`handoff.await_writes`); {"failed": step → why its write failed, "stored": `written_digests`}."""
    failed = await await_writes(run_id)
    return {"failed": failed, "stored": written_digests(run_id)}
