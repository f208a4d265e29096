"""Run a notebook as a pipeline: compile, plan against the cache, run on an engine, record.

The same code path serves the CLI (`nbscale run`), the Python API (`nbscale.run`) and the
JupyterLab server extension. Everything about a run goes to the run store as it happens, and every
run ends in a final state: Ctrl-C (or SIGTERM, `Terminated`) cancels it, an error fails it, and a
run store deleted under it fails it with the news that its record is lost.
"""

from __future__ import annotations

import os
import threading
import time
import warnings
from contextlib import nullcontext, suppress
from dataclasses import dataclass, field
from functools import cached_property, partial
from pathlib import Path

from ..compiler.compile_cache import compile_cached, default_folder
from ..compiler.diagnostics import errors_text
from ..compiler.file_versions import FileVersions, file_versions
from ..compiler.graph import find_cycle
from ..compiler.hashing import step_hashes
from ..compiler.path_constants import prelude_constants, scanned_steps
from . import params as params_mod
from .children import end_orphans_of, end_step_children, owner_marker
from .contract import (
    CACHED,
    CANCELLED,
    CANCELLED_BY_USER,
    CLUSTER_STARTED,
    FAILED,
    LIVE_ONLY,
    METRICS_KEY,
    OK,
    PROFILES_STORED,
    RUN_CREATED,
    RUN_FINISHED,
    RUN_STARTED,
    RUNNING,
    SERVER_WENT_AWAY,
    STEP_FINISHED,
    STEP_OUTPUT,
    STEP_PROGRESS,
    STEP_QUEUED,
    STEP_STALE,
    STEP_STARTED,
    STOPPED_TWICE_BY_SIGTERM,
    SUCCEEDED,
    UPSTREAM_FAILED,
    WARNING,
    StepSpec,
    artifacts_url,
    past_timeout_last_words,
    run_key,
    run_store_path,
    state_lost_message,
    step_log_path,
    truncated_text,
)
from .cost import saved_seconds
from .engines import check_engine_name, get_engine
from .errors import (
    ArtifactNotFound,
    CorruptArtifact,
    ParameterError,
    PipelineNotRunnable,
    RunStoreError,
    ServerGone,
    Terminated,
    ValuesReplaced,
)
from .file_locks import FileLocks
from .fingerprints import PRODUCT, as_left
from .interrupts import interrupt_requested, last_words, stop_requests_noted, watching_this_process
from .liveness import current_owner
from .profile_records import light, stored_profiles
from .project_settings import profiles_enabled
from .runstore import RunStore
from .steplog import OutputSoFar, warnings_in, write_step_log
from .store import ArtifactStore, caller_tells_of_damage
from .task import damage_reason, reusable_manifest, stored_digests


def default_run_store(notebook) -> RunStore:
    """The run store beside `notebook`, which the CLI, the API and the server share."""
    return RunStore(run_store_path(notebook))


@dataclass
class RunResult:
    run_id: str
    status: str
    steps: list[dict]
    metrics: dict
    store_url: str
    hashes: dict = field(default_factory=dict)
    error: str | None = None  # why a run that ran its steps still failed (its record was lost)
    run_store: str | None = field(default=None, repr=False)  # the run store's file, which `drift` reads
    stored: dict = field(default_factory=dict, repr=False)  # step → the digests of the values it stored or found

    @cached_property
    def drift(self) -> dict | None:
        """Its data drift against its reference run (`drift.safe_run_drift`), computed when first read:
        comparing profiles needs numpy and scipy, and a run whose drift nobody reads (`nbscale run`
        without --json, a cached re-run) should not pay for them."""
        if self.error or not self.run_store or not os.path.isfile(self.run_store):
            return None
        from .drift import safe_run_drift

        with RunStore(self.run_store) as store:
            return safe_run_drift(store, self.run_id)

    @property
    def ok(self) -> bool:
        return self.status == SUCCEEDED

    def step(self, name) -> dict:
        found = next((s for s in self.steps if s["name"] == name), None)
        if found is None:  # (a bare StopIteration: a generator calling it would end, or fail unexplained)
            raise KeyError(f"run {self.run_id[:12]} has no step {name!r} (its steps: "
                           f"{', '.join(s['name'] for s in self.steps)})")
        return found

    def load(self, step: str, names=None) -> dict:
        """Values a step handed on (and the final values it kept), from the artifact store; this run's,
        or `ValuesReplaced` when a later run stored others under the same key."""
        artifacts = ArtifactStore(self.store_url)
        if self.stored.get(step):
            values = own_values(artifacts, self.hashes[step], names, self.stored[step], step, self.run_id)
        else:
            values = artifacts.get(self.hashes[step], names)
        values.pop(METRICS_KEY, None)
        return values

    def to_json(self) -> dict:
        data = {"run_id": self.run_id, "status": self.status, "steps": self.steps, "metrics": self.metrics}
        if self.error:
            data["error"] = self.error
        if self.drift:
            data["drift"] = self.drift
        return data


@dataclass
class RunOptions:
    engine: str = "dask"
    use_cache: bool = True
    store_url: str | None = None
    scheduler: str | None = None
    scheduler_file: str | None = None
    workers: int | None = None

    def __post_init__(self):
        # refused before anything is recorded: a cluster of no worker ran nothing, and waited for good
        if self.workers is not None and (type(self.workers) is not int or self.workers < 1):
            raise ParameterError(f"workers: a whole number of at least 1, not {self.workers!r}")
        if type(self.use_cache) is not bool:  # (`use_cache="no"` would count as true)
            raise ParameterError(f"use_cache must be True or False, not {self.use_cache!r}")


def _refuse_undecodable(notebook: Path) -> None:
    try:
        str(notebook.resolve()).encode("utf-8")
    except UnicodeEncodeError:
        shown = os.fsencode(notebook).decode("utf-8", "backslashreplace")
        raise PipelineNotRunnable(f"{shown}: the notebook's path is not valid UTF-8; rename the file or "
                                  "its folder (run records keep the path as text)") from None


def run_notebook(notebook, parameters=None, options: RunOptions | None = None, *,
                 on_event=None, run_store: RunStore | None = None) -> RunResult:
    """Compile `notebook`, type `parameters` by its parameters cell, and run it."""
    notebook = Path(notebook)
    pipeline = compile_cached(notebook, default_folder())
    if pipeline.has_errors:
        raise PipelineNotRunnable(errors_text(pipeline.diagnostics, str(notebook)))
    values = params_mod.resolve(pipeline, parameters or {})
    return run_pipeline(pipeline, values, notebook, options, on_event=on_event, run_store=run_store)


def run_pipeline(pipeline, values: dict, notebook, options: RunOptions | None = None, *, on_event=None,
                 run_store: RunStore | None = None, cwd=None, engine_label=None, engine_options=None) -> RunResult:
    """Run a compiled pipeline with resolved parameter `values`, recording it in the run store.

    `cwd`: where steps run (default: the notebook's folder); `engine_label`: the engine name
    recorded for the run; `engine_options`: extra keyword arguments for the engine.
    """
    options = options or RunOptions()
    notebook = Path(notebook)
    _refuse_undecodable(notebook)  # the run store, logs and events hold it as UTF-8
    store_url = options.store_url or artifacts_url(notebook)
    ArtifactStore(store_url)  # a store that cannot be opened is refused before the run is recorded
    profile = profiles_enabled(notebook)  # so is a bad setting
    check_engine_name(options.engine)  # so is an unknown engine
    store = run_store or default_run_store(notebook)
    hashes = step_hashes(pipeline, values)
    run_id = store.create_run(str(notebook.resolve()), pipeline.name, engine_label or options.engine,
                              params_mod.recorded(values), [s.name for s in pipeline.steps])
    recorder = _Recorder(store, run_id, hashes, on_event, notebook)
    store.on_file_lost(recorder.state_lost)  # the heartbeat notices it during the run
    engine = None
    locks = FileLocks()
    # The whole run up to its recorded end: a Ctrl-C or SIGTERM as the engine closes, or as the run's
    # end is recorded, cancels it like one during a step (it stayed `running`, then read `failed`).
    try:
        try:
            recorder.emit(RUN_CREATED, None, {"run_id": run_id})  # before planning, which reads the store
            versions = _file_versions(pipeline, values)
            locks.acquire(versions.written, str(cwd or notebook.resolve().parent),
                          {"run": run_id, "notebook": str(notebook), "pid": os.getpid(),
                           "owner": owner_marker(current_owner().pid, current_owner().started)},
                          lambda message: recorder.emit(WARNING, None, {"message": message}))
            damaged: dict[str, CorruptArtifact] = {}
            rebuilt: dict[str, list] = {}
            stored: dict[str, dict] = {}  # the digests of the stored values of the steps found cached
            specs, keys = _plan(pipeline, values, hashes, store_url, notebook, options, cwd, profile, damaged, rebuilt,
                                partial(store.last_keys, str(notebook.resolve())), versions=versions,
                                stored=stored)
            store.start_run(run_id)
            recorder.emit(RUN_STARTED, None, {"engine": options.engine, "steps": len(pipeline.steps)})
            recorder.plan({s.step["name"]: s.step["after"] for s in specs})
            for name, error in damaged.items():  # found as the cache was looked up (removed: the step runs)
                recorder.emit(WARNING, name, {"message": str(error)})
                recorder.stale_before[name] = [damage_reason(error)]
            for name, reasons in rebuilt.items():  # (its engine does not look it up: it says nothing of why)
                recorder.emit(STEP_STALE, name, {"changes": reasons})
                recorder.stale_before[name] = reasons
            # cached steps are recorded as found, not as the run ends: a run cancelled or killed later
            # must not turn them into cancelled ones
            recorder.record_cached = _cached_step_recorder(pipeline, recorder, store_url)
            planned = {s.step["name"] for s in specs}
            for step in pipeline.steps:
                if step.name not in planned:
                    recorder.record_cached(step.name, keys.get(step.name) or hashes[step.name])
            outcomes = {}
            if specs:
                engine = get_engine(options.engine, scheduler=options.scheduler,
                                    scheduler_file=options.scheduler_file, workers=options.workers,
                                    run_id=run_id, notebook=str(notebook), **(engine_options or {}))
                connect_engine(engine, recorder.emit)
                stopped_twice = partial(store.end_unfinished_at_once, run_id, CANCELLED, STOPPED_TWICE_BY_SIGTERM)
                with stop_requests_noted(partial(_note_stop, store, run_id)), last_words(stopped_twice), \
                        _ended_past_timeout(store, run_id):
                    outcomes = engine.run(specs, recorder.emit)
        except BaseException as exc:
            _stop(store, recorder, exc)  # before the engine closes, which takes a while: the panel says so at once
            raise
        finally:
            if engine is not None:
                engine.close()
                if not (outcomes and all(o.ok for o in outcomes.values())):
                    # a worker restarted under a cancelled or failing step left what the step started to init
                    owner = current_owner()
                    with suppress(Exception):  # never in the way of the run's own outcome
                        end_orphans_of(owner.pid, owner.started, orphaned_only=True)
        # the key each step's result is stored under: found cached, or reported by the engine; an
        # engine that keeps its own cache (kfp-local) stores under the static hash
        keys = {**hashes, **keys, **{name: o.key for name, o in outcomes.items() if o.key}}
        with stop_requests_noted(partial(_note_stop, store, run_id)):
            status = _finish(pipeline, outcomes, recorder, store_url, keys)
            error = None
            if store.file_lost():  # the steps ran, but what they stored went with the folder
                status, error = FAILED, state_lost_message(store.path)
            store.remove_file_lost_listener(recorder.state_lost)
            final = store.finish_run(run_id, status, error)
    except BaseException as exc:
        _stop(store, recorder, exc)  # (once: after the one above, nothing more)
        requested = interrupt_requested()  # a step's own KeyboardInterrupt in its place says nothing of why
        if isinstance(exc, KeyboardInterrupt) and requested is not None and not isinstance(exc, requested):
            raise requested() from exc
        raise
    finally:
        locks.release()
    run = store.get_run(run_id, heavy=("profiles",))  # (the lineage records stay in the store)
    # the digests of what the steps that ran (or that their engine found cached) stored, as they stored
    # it: in the run's end event too, for a result read back from the run store (`stored_digests_of`)
    stored.update({name: o.stored for name, o in outcomes.items() if o.ok and o.stored})
    if final == status:
        recorder.emit(RUN_FINISHED, None, {"status": status, **({"error": error} if error else {}), STORED: stored})
    else:  # another process took it for dead while it stalled, and recorded its end: that stands
        status, error = final, run.get("error") if isinstance(run.get("error"), str) else None
        recorder.tell(RUN_FINISHED, None, {"status": status, **({"error": error} if error else {})})
    return RunResult(run_id, status, steps_json(run, store.events_since(run_id)), _metrics(run), store_url, keys,
                     error, store.path, stored)


STORED = "stored"  # key of a run's end event: step → the digests of the values it stored or found


def stored_digests_of(rows: list[dict], events: list[dict]) -> dict[str, dict]:
    """Step → the digests of the values each step that succeeded stored (or found cached), for a run
    read back from the run store (its `rows`, its `events`): what `own_values` tells a later run's
    values from. As the run's end event recorded them; else (a run recorded before they were, or
    one that did not end) those its steps handed on, as their lineage recorded them."""
    ended = next((e["payload"].get(STORED) for e in reversed(events)
                  if e.get("kind") == RUN_FINISHED and isinstance(e.get("payload"), dict)), None)
    if isinstance(ended, dict):
        return {step: digests for step, digests in ended.items() if isinstance(digests, dict)}
    return {row["step"]: digests for row in rows
            if row.get("status") in OK and (digests := (row.get("lineage") or {}).get("outputs"))}


LOAD_ATTEMPTS = 8  # reads of a step's values that other runs stored again while they were read


def own_values(artifacts: ArtifactStore, key: str, names, own: dict, step: str, run_id: str) -> dict:
    """The values stored under `key` while they are the ones a run stored (`own`: digests of them, all
    or those it handed on): another run that stores others there (the step ran again, a file it read
    had changed) replaces them, one that stores the same changes nothing. What is read is the version
    whose digests were compared: each write has a writer of its own, and the one stored is the same
    before and after the read (another run may replace it between the check and the read); else it
    is looked at again."""
    for _ in range(LOAD_ATTEMPTS):
        manifest = artifacts.manifest(key)  # (ArtifactNotFound, CorruptArtifact: as `get` says them)
        now = stored_digests(manifest)
        if any(now.get(name) != digest for name, digest in own.items()):
            raise ValuesReplaced(key, step, run_id)
        try:
            values = artifacts.get(key, names)
        except CorruptArtifact:
            raise
        except ArtifactNotFound:  # a name it does not hold; or it was replaced as it was read
            if _writer(artifacts, key) == manifest.get("writer"):
                raise
            continue
        if _writer(artifacts, key) == manifest.get("writer"):
            return values
    raise ValuesReplaced(key, step, run_id)  # stored again and again as it was read: no longer known as its own


def _writer(artifacts: ArtifactStore, key: str) -> str | None:
    """The writer of the values stored under `key` now (None: none are)."""
    try:
        return artifacts.manifest(key).get("writer")
    except ArtifactNotFound:
        return None


def _ended_past_timeout(store, run_id: str):
    """In nbscale's own process, a step in its main thread (the local engine) that outlives its
    timeout by more than a grace ends the process (`past_timeout_last_words`), the run recorded
    `failed` first and the step's child processes ended; a program that called `nbscale.run()` is
    never ended."""
    if not watching_this_process():
        return nullcontext()

    def say(message: str) -> None:
        store.end_unfinished_at_once(run_id, FAILED, message)
        end_step_children()

    return past_timeout_last_words(say)


def _stop(store, recorder, exc) -> None:
    store.remove_file_lost_listener(recorder.state_lost)
    recorder.stopped(exc)


def connect_engine(engine, emit) -> None:
    """Connect an engine that runs on a cluster (`connect()`) before its run, and say which cluster
    the run uses when the engine has something to say (`cluster_note`: the shared warm cluster of
    the notebook's folder, or why a warm cluster found there is not used)."""
    if not callable(getattr(engine, "connect", None)):
        return
    engine.connect()
    note = getattr(engine, "cluster_note", None)
    if not note:
        return
    shared = getattr(engine, "shared_address", None)
    if shared:
        emit(CLUSTER_STARTED, None, {"scheduler_address": shared, "shared": True, "message": note})
    else:
        emit(WARNING, None, {"message": note})


def _plan(pipeline, values, hashes, store_url, notebook, options, cwd=None, profile=True, damaged: dict | None = None,
          rebuilt: dict | None = None, last_keys=None, *, versions: FileVersions, stored: dict | None = None
          ) -> tuple[list[StepSpec], dict]:
    """Specs of the steps that may have to run, and of cached steps whose values they need; and the
    cache keys known before running (of the steps found cached). `damaged`, `rebuilt`, `last_keys`,
    `versions`, `stored`: see `cached_steps`."""
    folder = str(cwd or notebook.resolve().parent)
    rebuilt = {} if rebuilt is None else rebuilt  # not reused when decided later either
    learned: dict[str, dict[str, str]] = {}
    keys = cached_steps(pipeline, hashes, ArtifactStore(store_url), folder, options.use_cache, versions, damaged,
                        rebuilt, last_keys, learned, stored)[0]
    to_run = [s for s in pipeline.steps if s.name not in keys]
    # cached steps are loaded only where a step that runs reads their values
    needed = {s.name for s in to_run} | {u for s in to_run for u in s.after}
    by_name = {s.name: s for s in pipeline.steps}
    finals = final_names(pipeline)
    ir = pipeline.to_json()
    ir_steps = {s["name"]: s for s in ir["steps"]}
    order = {s.name: i for i, s in enumerate(pipeline.steps)}
    for name, writers in learned.items():  # (an engine waits for the steps a step comes after)
        later = {w for w in writers if w in needed} - set(ir_steps[name]["after"])
        if later:
            ir_steps[name] = {**ir_steps[name], "after": sorted({*ir_steps[name]["after"], *later}, key=order.get)}
    owner = owner_marker(current_owner().pid, current_owner().started)  # the run store records the same
    return [
        StepSpec(step=ir_steps[name], prelude=ir["prelude"],
                 metrics=ir["metrics"], parameters={p: values[p] for p in by_name[name].parameters},
                 hash=hashes[name], store_url=store_url, cwd=folder, notebook=str(notebook),
                 use_cache=options.use_cache and name not in rebuilt, keep=sorted(finals[name]), key=keys.get(name, ""),
                 profile=profile, owner=owner, unchecked=tuple(sorted(versions.gone.get(name, ()))),
                 made_before=tuple(sorted(versions.made_before.get(name, ()))),
                 stored_inputs={p: keys[p] for p in by_name[name].after if p in keys and p not in needed})
        for name in _topological(pipeline) if name in needed
    ], keys


def cached_steps(pipeline, hashes, artifacts, folder, use_cache=True, versions: FileVersions | None = None,
                 damaged: dict | None = None, rebuilt: dict | None = None, last_keys=None,
                 learned: dict | None = None, stored: dict | None = None) -> tuple[dict[str, str], dict[str, list]]:
    """The steps whose stored result holds, with their keys, found in order; and for the others,
    why not. A step is settled here only when every step it comes after is cached (else its
    inputs, or the files it reads, are known only once those ran: `task.run_step` decides then).
    `damaged`: filled with the CorruptArtifact of each step whose stored result was found damaged
    (and removed), for the caller to tell of; without it, the store warns (`caller_tells_of_damage`).
    `rebuilt`: filled with the steps taken out for a file they share with a step that runs (→ why),
    which must not be reused when decided later either. `last_keys`: called (once, if at all) for
    the key of each step's latest result (`RunStore.last_keys`). `learned`: filled with the steps
    that must come after others for a file no edge orders them by (`learned_order`). `stored`: filled
    with the digests of the stored values of each step found cached (`RunResult.load` checks them)."""
    rebuilt = {} if rebuilt is None else rebuilt
    keys: dict[str, str] = {}
    digests: dict[str, dict] = {}
    why: dict[str, list] = {}
    tried: dict[str, str] = {}  # steps whose stored result does not hold → their key
    recorded: dict[str, dict] = {}  # key of a stored result found → the dependencies its step recorded
    grown: dict[str, list] = {}  # step → files it wrote or appended to that were added to since
    by_name = {s.name: s for s in pipeline.steps}
    versions = versions or _file_versions(pipeline)
    for name in _topological(pipeline):
        step = by_name[name]
        if not use_cache or not step.cache:
            why[name] = ["caching is off for it (--no-cache or cache:off)"]
            continue
        if _waiting(step, keys, why):
            continue
        key = run_key(hashes[name], {n: digests[p].get(n, "") for n, p in step.sources.items()})
        # a file whose version the step used is gone (a later step wrote it anew): its check says nothing
        with caller_tells_of_damage() if damaged is not None else nullcontext([]) as found:
            manifest, changes = reusable_manifest(artifacts, key, step.outputs, folder, versions.gone.get(name, ()),
                                                  versions.made_before.get(name, ()), grown.setdefault(name, []))
        if found:
            damaged[name] = found[0]
            why[name] = [damage_reason(found[0])]
            continue
        if manifest is None:
            why[name] = changes or ["no stored result for its code, parameters and inputs"]
            tried[name] = key
            continue
        if name == pipeline.metrics.step and not _metrics_intact(artifacts, key):
            why[name] = ["its stored metrics were damaged"]
            continue
        keys[name], digests[name] = key, stored_digests(manifest)
        recorded[key] = manifest.get("dependencies") or {}
    order = {step.name: i for i, step in enumerate(pipeline.steps)}
    latest = _LatestRecords(artifacts, last_keys, recorded)
    _added_to_otherwise(keys, grown, recorded, order, folder, why, rebuilt, latest)
    for path, names in versions.together:
        if all(n in keys for n in names):
            continue
        for name in names:
            keys.pop(name, None)
            others = ", ".join(n for n in names if n != name)
            why.setdefault(name, []).append(
                f"it uses {path} with {others} ({names[0]} writes it), and one of them runs: they all run "
                "again, in order, so that each finds the file as a run top to bottom leaves it")
    together = {n for _, names in versions.together if any(n not in keys for n in names) for n in names}
    for name in together | _writers_of_what_runs_changes(keys, tried, why, artifacts, order, recorded, latest):
        rebuilt[name] = why.get(name, [])
    if len(keys) < len(order):  # (something runs: what it writes may be read by a step no edge orders after it)
        found = learned_order(pipeline, order, latest)
        if learned is not None:
            learned.update(found)
        for name, writers in found.items():
            running = sorted((w for w in writers if w not in keys), key=order.get)
            if name in keys and running:
                del keys[name]
                why.setdefault(name, []).append(
                    f"it read {writers[running[-1]]}, which {running[-1]} (that runs again) last wrote before it: "
                    "decided when that finishes, and run after it")
    for name in _topological(pipeline):  # what comes after the steps taken out is decided as they finish
        if name in keys and _waiting(by_name[name], keys, why):
            del keys[name]
    if stored is not None:
        stored.update({name: digests[name] for name in keys})
    return keys, why


def _added_to_otherwise(keys: dict, grown: dict, recorded: dict, order: dict, folder: str, why: dict,
                        rebuilt: dict, latest: _LatestRecords) -> None:
    """Take out of `keys` each cached step a file of which it wrote or appended to was added to
    since (`grown`), where no step after it left the file as it is now (a cached one, or one as its
    `latest` result recorded it): another hand appended to it (`echo x >> out.csv`). Top to bottom
    the step writes it anew, and the steps after it append to that; kept, a later step would read
    what was added."""
    def added_to_otherwise(change, name: str) -> bool:
        if change.kind != PRODUCT and not any(change.name in d.get("files_written", ())
                                              for d in (*recorded.values(), *latest.all().values())):
            return False  # a log steps append to, which no step writes anew: what it holds is read by none
        after = [recorded[key] for other, key in keys.items() if order[other] > order[name]]
        after += [d for step, d in latest.all().items() if order.get(step, -1) > order[name]]
        return not as_left(change.name, folder, after)

    for name, changes in sorted(grown.items(), key=lambda item: -order[item[0]]):  # (the later steps decided)
        if name not in keys or not changes:
            continue
        unexplained = [c for c in changes if added_to_otherwise(c, name)]
        if unexplained:
            del keys[name]
            first = unexplained[0]
            did = "wrote" if first.kind == PRODUCT else "appended to"
            rebuilt[name] = why[name] = [
                f"{first.name} was added to since the step {did} it, and not by a step after it as that last ran: it "
                "runs again, so that the file is what a run top to bottom leaves"]


def _writers_of_what_runs_changes(keys: dict, tried: dict, why: dict, artifacts, order: dict,
                                  dependencies: dict, latest: _LatestRecords) -> set[str]:
    """Take out of `keys` each cached step whose file a step that runs again changes, where top to
    bottom the file would be another: the cached step wrote it before the other reads it and writes
    it back, or appends to it (`init` writes a CSV through a name it hands on, `add_rf` reads it and
    writes it back longer, or `m1` appends a row: the board grew at every run), or writes it after
    the other wrote it (the last run left the earlier version). As their last runs recorded
    (`dependencies`: key → those of the stored results read already; `tried`: step → the key of a
    stored result that does not hold; else `latest`, a step's latest result: its key changed, for a
    new parameter, or it waits for a step that runs again); `order`: the steps' notebook order.
    Until nothing more is taken out: a writer that runs again changes its files too. The steps
    taken out."""
    if not keys:
        return set()
    runs = {name: tried.get(name) for name in order if name not in keys}  # steps that may run again → key
    files: dict[str, tuple[set, set]] = {}  # step → (products, read then changed or appended to)

    def recorded(name: str, key: str | None) -> tuple[set, set]:
        if name not in files:
            found = dependencies.get(key) if key else None
            if found is None and key:
                found = _stored_dependencies(artifacts, key)
            if found is None and name not in keys:
                found = latest.of(name)
            found = found or {}
            files[name] = (set(found.get("files_written") or {}),
                           set(found.get("read_then_changed") or ()) | set(found.get("appended") or {}))
        return files[name]

    if not any(any(recorded(name, key)) for name, key in runs.items()):
        return set()  # (most runs: what runs again writes no file)

    def undone_by(cached: str, path: str) -> str | None:
        """A step that runs again and leaves `path` otherwise than a run top to bottom would."""
        for name, key in runs.items():
            products, advanced = recorded(name, key)
            if name != cached and (path in advanced and order[cached] < order[name]
                                   or path in products and order[cached] > order[name]):
                return name
        return None

    first = set(runs)
    while True:
        taken = {}
        for name, key in keys.items():
            for path in sorted(recorded(name, key)[0]):
                other = undone_by(name, path)
                if other is not None:
                    taken[name] = (path, other)
                    break
        if not taken:
            return set(runs) - first
        for name, (path, other) in taken.items():
            runs[name] = keys.pop(name)
            why.setdefault(name, []).append(
                f"it writes {path}, which {other} (that runs again) " + ("reads and writes back, or appends to, after "
                "it" if order[name] < order[other] else "writes before it") + ": it runs again too, so that each "
                "finds the file as a run top to bottom leaves it")


def learned_order(pipeline, order: dict, latest: _LatestRecords) -> dict[str, dict[str, str]]:
    """Step → {earlier step: file}: as their latest results recorded, the earlier step wrote a file
    the step read or imported, and no edge orders them (the file's name was built as the steps ran:
    `os.path.join(DATA_DIR, "clean.csv")`), so the step must come after it, as top to bottom.
    None learned where they would make a cycle (an `after:` tag pointing to a later step)."""
    records = latest.all()
    writers: dict[str, list[str]] = {}
    for step, record in records.items():
        for path in record.get("files_written") or ():
            writers.setdefault(path, []).append(step)
    if not writers:
        return {}
    static = {s.name: set(s.after) for s in pipeline.steps}
    learned: dict[str, dict[str, str]] = {}
    for step, record in records.items():
        for path in [*(record.get("files_read") or ()), *(record.get("modules") or ())]:  # (a module is read too)
            for writer in writers.get(path, ()):
                if step in order and writer in order and order[writer] < order[step] and writer not in static[step]:
                    learned.setdefault(step, {})[writer] = path
    if learned and find_cycle(list(static), {n: [*after, *learned.get(n, ())] for n, after in static.items()}):
        return {}
    return learned


def _stored_dependencies(artifacts, key: str) -> dict | None:
    """The dependencies the stored result under `key` recorded ({} for none); None when there is
    no readable result."""
    try:
        return artifacts.manifest(key).get("dependencies") or {}
    except (ArtifactNotFound, OSError, ValueError):
        return None


class _LatestRecords:
    """The dependencies each step's latest result recorded, looked up once, when first asked:
    `last_keys()` gives each step's key (`RunStore.last_keys`); `known`: key → those read already
    (the cached steps'), not read again."""

    def __init__(self, artifacts, last_keys=None, known: dict | None = None):
        self.artifacts, self.last_keys, self.known = artifacts, last_keys, known or {}
        self.records: dict[str, dict] | None = None

    def all(self) -> dict[str, dict]:
        if self.records is None:
            self.records = {}
            for step, key in (self.last_keys() if self.last_keys else {}).items():
                found = self.known.get(key)
                if found is None:
                    found = _stored_dependencies(self.artifacts, key)
                if found is not None:
                    self.records[step] = found
        return self.records

    def of(self, step: str) -> dict | None:
        return self.all().get(step)


def _waiting(step, keys: dict, why: dict) -> bool:
    waiting = [u for u in step.after if u not in keys]
    if waiting:
        why[step.name] = [f"it comes after {', '.join(waiting)}, which run(s) again: decided when they finish"]
    return bool(waiting)


def _file_versions(pipeline, values: dict | None = None) -> FileVersions:
    """The files the steps name, with the run's parameter `values` (`-p OUT=b.csv` names b.csv, not
    the default's file: the file a run locks and checks is the one it writes)."""
    # (a text holding NUL names no file: the step says so as it opens it)
    values = {name: value for name, value in (values or {}).items() if not (isinstance(value, str) and "\x00" in value)}
    constants = prelude_constants(pipeline.prelude.source,
                                  {p.name: values.get(p.name, p.default) for p in pipeline.parameters})
    bound_before = {*pipeline.prelude.names, *(p.name for p in pipeline.parameters)}
    return file_versions(scanned_steps(constants, pipeline.steps, bound_before))


def cache_report(notebook, parameters=None, options: RunOptions | None = None) -> dict[str, dict]:
    """Per step, whether a run now would reuse its stored result, under which key, and why not."""
    options = options or RunOptions()
    notebook = Path(notebook)
    pipeline = compile_cached(notebook, default_folder())
    if pipeline.has_errors:
        raise PipelineNotRunnable(errors_text(pipeline.diagnostics, str(notebook)))
    values = params_mod.resolve(pipeline, parameters or {})
    hashes = step_hashes(pipeline, values)
    artifacts = ArtifactStore(options.store_url or artifacts_url(notebook))
    keys, why = cached_steps(pipeline, hashes, artifacts, str(notebook.resolve().parent), options.use_cache,
                             _file_versions(pipeline, values), last_keys=partial(_last_keys, notebook))
    return {s.name: {"reused": s.name in keys, "key": keys.get(s.name), "why": why.get(s.name, [])}
            for s in pipeline.steps}


def _last_keys(notebook: Path) -> dict[str, str]:
    """`RunStore.last_keys` of the notebook, if it has a run store (none is made for asking)."""
    if not os.path.exists(run_store_path(notebook)):
        return {}
    return default_run_store(notebook).last_keys(str(notebook.resolve()))


def final_names(pipeline) -> dict[str, set]:
    """Per step, the names whose final (notebook-end) value it holds."""
    last = {}
    for step in pipeline.steps:
        for name in step.defines:
            last[name] = step.name
    finals = {s.name: set() for s in pipeline.steps}
    for name, step in last.items():
        finals[step].add(name)
    return finals


def _topological(pipeline):
    from ..compiler.graph import topological_order

    return topological_order([s.name for s in pipeline.steps], {s.name: s.after for s in pipeline.steps})


def _finish(pipeline, outcomes, recorder, store_url, keys) -> str:
    artifacts = ArtifactStore(store_url)
    for step in pipeline.steps:
        outcome = outcomes.get(step.name)
        if outcome is not None and outcome.status == CACHED and step.name not in recorder.cached_steps:
            recorder.record_cached(step.name, keys[step.name])  # loaded from the store, and not reported
        elif outcome is not None and outcome.ok and outcome.summary.get(PROFILES_STORED):
            # profiled during its background store write, which has ended: the manifest holds them
            recorder.profiles(step.name, stored_profiles(artifacts, outcome.key))
    failed = any(o.status in (FAILED, UPSTREAM_FAILED) for o in outcomes.values())
    return FAILED if failed else SUCCEEDED


def _cached_step_recorder(pipeline, recorder, store_url):
    """`record(step, key, tell=True)`: record a step found cached, with the metrics, the time it saves
    and the profiles its stored result holds; and the reuse as a use of the stored result."""
    artifacts = ArtifactStore(store_url)

    def record(step: str, key: str, tell: bool = True) -> None:
        # here, where every reuse passes: a step whose values no later step reads is never loaded,
        # and its result must not look unused to `cache gc --keep-last`
        artifacts.record_use(key)
        recorder.cached(step, key, _cached_metrics(artifacts, key, pipeline, step), saved_seconds(artifacts, key),
                        stored_profiles(artifacts, key), tell=tell)

    return record


def _cached_metrics(artifacts, step_hash, pipeline, name):
    if pipeline.metrics.step != name:
        return {}
    try:
        return artifacts.get(step_hash, [METRICS_KEY])[METRICS_KEY]
    except KeyError:  # none stored (checked intact as the run was planned: `_metrics_intact`)
        return {}


def _metrics_intact(artifacts, step_hash) -> bool:
    """Whether the metrics a cached metrics step stored can be read back: planning looks at sizes
    only, and a run that reused a damaged entry would report no metrics (nor regressions). A
    damaged one is removed by the store, so the step runs again."""
    try:
        artifacts.get(step_hash, [METRICS_KEY])
    except CorruptArtifact:
        return False
    except KeyError:  # none stored
        pass
    return True


class _Recorder:
    """Turns engine events into run-store rows (thread-safe: Dask calls back from its loop), and
    says which steps are queued: their upstream steps finished, their code has not started yet."""

    def __init__(self, store: RunStore, run_id, hashes, on_event, notebook):
        self.store, self.run_id, self.hashes, self.on_event = store, run_id, hashes, on_event
        self.notebook = notebook
        self.lock = threading.Lock()
        self.done: set[str] = set()
        # queued/started bookkeeping, under its own lock so that a step's `step_queued` is never
        # sent after its `step_started` (Dask reports starts from another thread)
        self.order_lock = threading.Lock()
        self.waiting: dict[str, set[str]] = {}  # planned step not yet queued → upstream steps it waits for
        self.downstream: dict[str, list[str]] = {}  # planned step → the planned steps that come after it
        self.started_at: dict[str, float] = {}  # step → when it last started (also the time a lost step ran)
        self.record_cached = None  # record(step, key, tell) of a step found cached (`_cached_step_recorder`)
        self.has_stopped = False  # `stopped` has recorded the run's end
        self.cached_steps: set[str] = set()  # recorded as cached
        # step → why it runs again, when the run's plan decided it: its stored result was found damaged
        # (and removed then), or it shares a file with a step that runs (its engine does not look it
        # up): the step itself finds no reason to say
        self.stale_before: dict[str, list[str]] = {}
        self.printed = OutputSoFar()  # what running steps printed: the log of one the run stops

    def emit(self, kind, step, payload=None):
        payload = payload or {}
        if self.has_stopped and step is not None and kind != WARNING:
            # the run's end is recorded: a step whose thread went on (a kernel that was starting)
            # must not show as running or finished in a run that says it stopped
            return
        if kind == STEP_OUTPUT and step not in self.done:
            with self.lock:
                self.printed.add(step, payload.get("stream"), payload.get("text"))
        if kind in (STEP_STARTED, STEP_PROGRESS) and step in self.done:
            # a finished step computed again (its result was lost with a worker) stays finished; a
            # compute's count can come after its step's end (it travels another way)
            return
        log = None
        if kind == STEP_FINISHED and payload.get("status") != CACHED and step not in self.done:
            # (outside the lock: noticing a lost state folder emits a warning)
            summary = payload.get("summary") or {}
            for warning in warnings_in(summary.get("cells") or []):  # each once, before the step's end
                self.emit(WARNING, step, warning_payload(warning))
            for text in summary.get("warnings") or []:  # the step's own: a metric that is not a number
                if isinstance(text, str):
                    self.emit(WARNING, step, {"message": text})
            log = self._write_log(step, summary)
        with self.lock:
            if kind not in LIVE_ONLY:  # a live feed (a step's output is stored when it ends, in full in its log)
                self.store.add_event(self.run_id, kind, step, _event_payload(kind, payload))
            if kind == STEP_STARTED:
                self.store.update_step(self.run_id, step, status=RUNNING, hash=self.hashes[step])
            elif kind == STEP_FINISHED and step not in self.done:
                self._finished(step, payload, log)
        if kind == STEP_STARTED:
            with self.order_lock:
                self.started_at[step] = time.time()
        if (kind == STEP_FINISHED and payload.get("status") == CACHED and self.record_cached is not None
                and step not in self.cached_steps):  # an engine that loaded it from the store as it ran
            self.record_cached(step, payload.get("key") or self.hashes[step], tell=False)
        self.tell(kind, step, payload)
        if kind == STEP_FINISHED and payload.get("status") in OK:
            self.queue_ready(step)

    def tell(self, kind, step, payload) -> None:
        """Pass the event on to the caller's `on_event`. One that fails (a live view whose reader went
        away: `nbscale run … 2>&1 | head`) is told no more: what is shown is not what the run does."""
        on_event = self.on_event  # (another thread may stop telling it meanwhile)
        if on_event is None:
            return
        try:
            on_event(kind, step, payload)
        except Exception as exc:  # noqa: BLE001 - the run goes on, and is recorded as it went
            self.on_event = None
            warnings.warn(f"the run's live view stopped ({type(exc).__name__}: {exc}); the run goes on",
                          RuntimeWarning, stacklevel=2)

    def plan(self, after: dict[str, list[str]]) -> None:
        """The steps the engine is given, with the steps each comes after; those that wait for
        nothing are queued at once. Steps not planned were found cached: nothing to wait for."""
        with self.order_lock:
            self.waiting = {name: {u for u in ups if u in after} for name, ups in after.items()}
            self.downstream = {}
            for name, upstream in self.waiting.items():
                for u in upstream:
                    self.downstream.setdefault(u, []).append(name)
        self.queue_ready(None)

    def queue_ready(self, finished: str | None) -> None:
        """`finished` ended well: emit `step_queued` for the steps that now wait for nothing."""
        with self.order_lock:
            ready = []
            # only the steps after `finished` can be ready now (any step, at the start): not a scan of
            # every waiting step per finished one, which grows with the run
            after = list(self.waiting) if finished is None else self.downstream.get(finished, ())
            for name in after:
                upstream = self.waiting.get(name)
                if upstream is None:
                    continue
                upstream.discard(finished)
                if not upstream:
                    del self.waiting[name]
                    if name not in self.started_at and name not in self.done:
                        ready.append(name)
            for name in ready:  # still under the lock: before any `step_started` of these steps
                with self.lock:
                    self.store.add_event(self.run_id, STEP_QUEUED, name, {})
                self.tell(STEP_QUEUED, name, {})

    def _finished(self, step, payload, log):
        self.done.add(step)
        self.printed.forget(step)
        summary = payload.get("summary") or {}
        status = payload["status"]
        if status == CACHED:
            return  # recorded by `cached`, with the metrics
        started, finished, duration = payload.get("started"), payload.get("finished"), summary.get("wall_s")
        if duration is None and self.started_at.get(step):  # lost with its worker or scheduler: it ran until now
            started, finished = started or self.started_at[step], finished or time.time()
            duration = max(0.0, finished - started)
        self.store.update_step(
            self.run_id, step, status=status, hash=payload.get("key") or self.hashes[step],
            started=started or None, stale=payload.get("stale") or self.stale_before.get(step),
            finished=finished or None, duration_s=duration,
            cpu_s=summary.get("cpu_s"), peak_rss_bytes=summary.get("peak_rss_bytes"),
            attempts=payload.get("attempts"), stdout=truncated_text(summary.get("stdout"), log),
            stderr=truncated_text(summary.get("stderr"), log),
            error=summary.get("error") or summary.get("reason"), cached=False,
            profiles=summary.get("profiles") or None, lineage=summary.get("lineage") or None)
        if summary.get("metrics"):
            self.store.record_metrics(self.run_id, step, summary["metrics"])

    def _write_log(self, step, summary):
        """The step's log file (None when it showed nothing, or the state folder went away: a log
        must not bring back a deleted state folder, nor fail the run)."""
        if self.store.file_lost():
            return None
        try:
            return write_step_log(step_log_path(self.notebook, self.run_id, step), step, summary)
        except OSError:
            return None

    def cached(self, step, key, metrics, saved_s=None, profiles=None, tell=True):
        with self.lock:
            self.done.add(step)
            self.cached_steps.add(step)
            # saved_s: the wall time of the step run that stored the result (`cost.saved_seconds`)
            self.store.update_step(self.run_id, step, status=CACHED, hash=key, cached=True, duration_s=0.0,
                                   saved_s=saved_s, profiles=profiles)  # profiles: of the stored values
            if metrics:
                self.store.record_metrics(self.run_id, step, metrics)
        if tell:
            self.tell(STEP_FINISHED, step, {"status": CACHED})

    def profiles(self, step, profiles):
        if profiles:
            with self.lock:
                self.store.update_step(self.run_id, step, profiles=profiles)

    def stopped(self, exc: BaseException):
        """The run stopped before its steps finished: Ctrl-C and SIGTERM cancel it, an error fails it.
        Said once: what stops the run as the engine closes does not say it again."""
        if self.has_stopped:
            return
        self.has_stopped = True
        if isinstance(exc, KeyboardInterrupt):  # (the one asked for: a step may raise one of its own instead)
            status, reason = CANCELLED, stop_reason(interrupt_requested() or type(exc))
        else:
            status, reason = FAILED, f"{type(exc).__name__}: {exc}"
        stopped = self._keep_output_so_far()
        with self.lock, suppress(RunStoreError):  # the error that stopped the run is the one to report
            status = self.store.end_unfinished(self.run_id, status, reason)
        why = ({"reason": reason} if status == CANCELLED
               else {"error": {"ename": type(exc).__name__, "evalue": str(exc)}})
        for step, printed in stopped.items():  # (a papermill notebook shows it in the step's cell)
            self.tell(STEP_FINISHED, step, {"status": CANCELLED if status == CANCELLED else FAILED,
                                            "summary": {**why, **printed}})
        self.tell(RUN_FINISHED, None, {"status": status, "error": reason})

    def _keep_output_so_far(self) -> dict[str, dict[str, str]]:
        """The steps still running as the run stops, each with what it printed so far, kept as its
        log and in the run store (it hands back nothing more)."""
        with self.order_lock:
            running = [step for step in self.started_at if step not in self.done]
        stopped = {}
        for step in running:
            with self.lock:
                self.done.add(step)
                printed = self.printed.take(step)
            stopped[step] = printed
            log = self._write_log(step, printed) if printed else None
            streams = {name: truncated_text(text, log) for name, text in printed.items()}
            with self.lock, suppress(RunStoreError):
                self.store.update_step(self.run_id, step, duration_s=max(0.0, time.time() - self.started_at[step]),
                                       **streams)
        return stopped

    def state_lost(self):
        """The run store's file was deleted or replaced during the run (called once, from any thread)."""
        with suppress(RunStoreError):
            self.emit(WARNING, None, {"message": state_lost_message(self.store.path)})


def _note_stop(store: RunStore, run_id: str, kind: type[KeyboardInterrupt]) -> None:
    store.note_stop_requested_at_once(run_id, stop_reason(kind))


def stop_reason(kind: type[KeyboardInterrupt]) -> str:
    """Why an interrupt of this kind cancelled the run, as the run store says it."""
    if issubclass(kind, Terminated):
        return f"stopped by {kind.signal_name}"  # (STOPPED_BY_SIGTERM, or SIGHUP's)
    return SERVER_WENT_AWAY if issubclass(kind, ServerGone) else CANCELLED_BY_USER


def _event_payload(kind, payload):
    if kind != STEP_FINISHED:
        return payload
    summary = payload.get("summary") or {}
    return {"status": payload.get("status"), "duration_s": summary.get("wall_s"),
            "error": summary.get("error") or summary.get("reason")}


def warning_payload(warning: dict) -> dict:
    """A WARNING event for a Python warning a step showed (`steplog.warnings_in`)."""
    return {**warning, "warning": warning["message"],
            "message": f"{warning['where']}: {warning['category']}: {warning['message']}"}


def step_warnings(events: list[dict], step: str) -> list[dict]:
    """The WARNING events' payloads of one step of a run (`RunStore.events_since`)."""
    return [e["payload"] for e in events if e["kind"] == WARNING and e["step"] == step and e.get("payload")]


def step_log(run: dict, step: str) -> str | None:
    """The path of a step's log, when the run wrote one."""
    path = step_log_path(run["notebook"], run["id"], step)
    return str(path) if path.exists() else None


def steps_json(run, events) -> list[dict]:
    """The steps of a run as `--output json` and the API give them: with their warnings and log."""
    steps = []
    warnings: dict[str, list[dict]] = {}  # grouped once: not a pass over every event per step
    for event in events:
        if event["kind"] == WARNING and event.get("payload"):
            warnings.setdefault(event["step"], []).append(event["payload"])
    for s in run["steps"]:
        steps.append({"name": s["step"], "status": s["status"], "duration_s": s.get("duration_s"),
                      "cached": bool(s.get("cached")), "attempts": s.get("attempts"), "error": s.get("error"),
                      "stale": s.get("stale") or [], "warnings": warnings.get(s["step"], []),
                      "log": step_log(run, s["step"]), "profiles": light(s.get("profiles") or None)})
    return steps


def _metrics(run) -> dict:
    return {m["name"]: m["value"] for m in run.get("metrics", [])}
