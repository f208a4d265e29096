"""The kfp-local engine: the pipeline compiled to KFP YAML and run by `kfp.local`, no cluster.

`nbscale run NB --engine kfp-local` generates the same DSL module and YAML as
`nbscale compile NB --target kfp` (with nothing to pip-install: the steps use this Python
environment), and runs the YAML with `kfp.local.SubprocessRunner(use_venv=False)` in a child
process — kfp.local keeps global state and rewires stdout and the root logger while it runs, so
it stays out of the calling process (the CLI, the Jupyter server). Each task is one more
process; tasks run one after another, as kfp.local runs them.

Steps report through their `step_record` artifacts: the engine watches them appear and turns them
into the same live events and run-store records as any other engine. Outputs of finished steps
go into nbscale's artifact store under the step hash, so cached runs, `RunResult.load` and the
other engines see them. Steps already in the artifact store are not run again: they enter the
KFP pipeline as `dsl.importer` tasks of their store entry (same folder layout as a KFP artifact).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from ..contract import (
    CACHED,
    CANCELLED,
    FAILED,
    METRICS_KEY,
    STEP_CACHED,
    STEP_FINISHED,
    STEP_RETRY,
    STEP_STARTED,
    SUCCEEDED,
    UPSTREAM_FAILED,
    StepOutcome,
    error_dict,
    finished_payload,
    run_key,
    state_dir,
)
from ..task import input_digests, stored_digests
from . import Engine

if TYPE_CHECKING:
    from ...compiler.ir import Pipeline

# The rest of the run time (executor, store) and the compiler are imported when the engine runs,
# not at module import: this module is also the kfp.local child process (`python -m`), which
# needs only kfp.
POLL_S = 0.05
KEEP_RUNS = 3  # run folders kept under .nbscale/kfp-local (pipeline YAML, DSL module, kfp.local log)
LOG_TAIL = 3000  # characters of the kfp.local log quoted when a task ends without a record


class KfpLocalEngine(Engine):
    name = "kfp-local"

    def run(self, specs, emit) -> dict:
        from ...compiler.targets.kfp import KfpOptions, generate, kfp_argument, write_yaml

        _require_kfp()
        outcomes: dict[str, StepOutcome] = {}
        imported = {}
        for spec in specs:
            name = spec.step["name"]
            manifest = _cached_manifest(spec)
            if manifest is not None:
                now = time.time()
                emit(STEP_CACHED, name, {"hash": spec.key})
                digests = stored_digests(manifest)
                outcomes[name] = outcome = StepOutcome(name, CACHED, started=now, finished=now, key=spec.key,
                                                       digests=digests, stored=digests)
                emit(STEP_FINISHED, name, finished_payload(outcome))
                imported[name] = _entry_uri(spec)
        to_run = [s for s in specs if s.step["name"] not in imported]
        if not to_run:
            return outcomes
        pipeline = _pipeline(specs)
        module = generate(pipeline, KfpOptions(packages_to_install=[], install_kfp_package=False),
                          keep={s.step["name"]: s.keep for s in to_run if s.keep}, imported=imported)
        folder = _run_folder(to_run[0].notebook)
        yaml_path = write_yaml(module, folder / "pipeline.yaml", python_path=folder / "pipeline_dsl.py")
        values = _parameter_values(specs)
        arguments = {p.name: kfp_argument(module.parameter_types[p.name], values[p.name]) for p in pipeline.parameters}
        _write_private(folder / "arguments.json", json.dumps(arguments, ensure_ascii=False))
        root = folder / "outputs"
        watcher = _Watcher(to_run, module, root, emit, cached=outcomes)
        log_path = folder / "kfp-local.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", __name__, str(yaml_path), str(folder / "arguments.json"), str(root)],
                cwd=to_run[0].cwd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
            try:
                while proc.poll() is None:
                    watcher.scan()
                    time.sleep(POLL_S)
            except BaseException:
                _stop(proc)
                raise
            finally:
                (folder / "arguments.json").unlink(missing_ok=True)  # the values may be secrets
                _hide_secrets(log_path, values)  # kfp.local logs each task's inputs
        watcher.scan()
        outcomes.update(watcher.finish(_tail(log_path) or f"(kfp.local printed nothing; exit code {proc.returncode})"))
        if all(o.ok for o in outcomes.values()):
            shutil.rmtree(root, ignore_errors=True)  # the values are in the artifact store now
        return outcomes


def _require_kfp():
    from ..errors import NbscaleRuntimeError

    try:
        import kfp  # noqa: F401
    except ImportError:
        raise NbscaleRuntimeError("the kfp-local engine needs the kfp SDK: pip install 'nbscale[kfp]'") from None


def _cached_manifest(spec) -> dict | None:
    """The stored result of a step the plan found cached (it knows its key), else None: whether a
    step that comes after a running one can reuse its result is known only once that one ran,
    and kfp.local runs the rest of the pipeline in one go."""
    from ..errors import ArtifactNotFound
    from ..store import ArtifactStore

    if not (spec.key and spec.use_cache and spec.step.get("cache", True)):
        return None
    store = ArtifactStore(spec.store_url)
    try:
        return store.manifest(spec.key) if store.has(spec.key, spec.step["outputs"]) else None
    except ArtifactNotFound:
        return None


def _entry_uri(spec) -> str:
    """The store entry of a step as a KFP artifact URI: a plain path for a local store."""
    from ..store import ArtifactStore, key_path

    store = ArtifactStore(spec.store_url)
    path = f"{store.root}/{key_path(spec.key)}"
    protocol = store.fs.protocol if isinstance(store.fs.protocol, str) else store.fs.protocol[0]
    return path if protocol in ("file", "local") else store.fs.unstrip_protocol(path)


def _parameter_values(specs) -> dict:
    values = {}
    for spec in specs:
        values.update(spec.parameters)
    return values


def _pipeline(specs) -> Pipeline:
    """The IR of the steps to run, parameters typed by this run's values. Their defaults are empty
    values of those types: the run's values go to the run as arguments, never into the pipeline
    files it keeps (a value may be a secret)."""
    from ...compiler.ir import Metrics, Parameter, Pipeline, Prelude, Step

    first = specs[0]
    return Pipeline(
        name=Path(first.notebook).stem,
        notebook=Path(first.notebook).name,
        parameters=[Parameter(name, _type_name(value), _empty_like(value))
                    for name, value in sorted(_parameter_values(specs).items())],
        prelude=Prelude(**first.prelude),
        steps=[Step(**spec.step) for spec in specs],
        metrics=Metrics(**first.metrics),
    )


_EMPTY = {"bool": bool, "int": int, "float": float, "str": str, "list": list, "dict": dict, "none": lambda: None}


def _empty_like(value):
    """An empty value of the type, travelling as the value does (`wire_type`: a string holding
    "{{", or an int a double cannot hold, goes as JSON text, and so must its default)."""
    from ...compiler.targets.kfp.parameters import EXACT_INT

    if isinstance(value, str) and "{{" in value:
        return "{{}}"
    if type(value) is int and abs(value) > EXACT_INT:
        return EXACT_INT + 1
    return _EMPTY[_type_name(value)]()


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


def _type_name(value) -> str:
    return {bool: "bool", int: "int", float: "float", str: "str", list: "list", dict: "dict"}.get(type(value), "none")


def _run_folder(notebook) -> Path:
    base = state_dir(notebook) / "kfp-local"
    base.mkdir(parents=True, exist_ok=True)
    hour_ago = time.time() - 3600  # a run folder that recent may belong to a run still going
    for old in sorted(p for p in base.iterdir() if p.is_dir())[:-(KEEP_RUNS - 1) or None]:
        if old.stat().st_mtime < hour_ago:
            shutil.rmtree(old, ignore_errors=True)
    folder = base / f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    return folder


def _stop(proc: subprocess.Popen) -> None:
    """End the kfp.local process and the task it is running (its own process group)."""
    for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


MIN_HIDDEN_TEXT = 4  # characters


def _hide_secrets(log_path: Path, values: dict) -> None:
    """The log without the text of what the run store hides of the parameters (`params.recorded`:
    credentials, at any depth of a dict or list), as given and as JSON inside kfp.local's task
    inputs."""
    from ..params import hidden_texts

    secrets = {}
    for name, texts in hidden_texts(values).items():
        # (a text of a few characters would take every such run of characters out of the log)
        secrets.update(dict.fromkeys((t for t in texts if len(t) >= MIN_HIDDEN_TEXT), name))
    if not secrets:
        return
    text = log_path.read_text(encoding="utf-8", errors="surrogateescape")
    for secret in sorted(secrets, key=len, reverse=True):  # (a longer one may hold a shorter)
        for form in {secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}:
            text = text.replace(form, f"<parameter {secrets[secret]}, hidden>")
    log_path.write_text(text, encoding="utf-8", errors="surrogateescape")


def _tail(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return text[-LOG_TAIL:]


class _Watcher:
    """Follows the steps' record artifacts as kfp.local writes them; emits events as they come."""

    def __init__(self, specs, module, root: Path, emit, cached: dict):
        self.specs = {s.step["name"]: s for s in specs}
        self.cached = cached  # outcomes of the cached steps: their digests key their readers
        self.module, self.root, self.emit = module, root, emit
        self.started: dict[str, int] = {}  # step → latest attempt seen starting
        self.processes: dict[str, dict] = {}  # step → the pid and host of that attempt's process
        self.handled: dict[str, int] = {}  # step → latest attempt whose result was handled
        self.outcomes: dict = {}
        self.run_dir: Path | None = None

    def task_dir(self, step: str) -> Path | None:
        if self.run_dir is None:
            runs = [p for p in self.root.glob("*") if p.is_dir()] if self.root.exists() else []
            if not runs:
                return None
            self.run_dir = runs[0]
        return self.run_dir / self.module.components[step]

    def scan(self) -> None:
        from ...compiler.targets.kfp import RECORD_OUTPUT
        from ..kfp_component import RESULT_FILE, STARTED_FILE

        for name, spec in self.specs.items():
            if name in self.outcomes:
                continue
            task = self.task_dir(name)
            if task is None:
                return
            record = task / RECORD_OUTPUT
            started = _read_json(record / STARTED_FILE)
            if started and started.get("attempt", 0) > self.started.get(name, 0):
                if name not in self.started:
                    self.emit(STEP_STARTED, name, {"hash": spec.hash})
                self.started[name] = started["attempt"]
                self.processes[name] = started
            result = _read_json(record / RESULT_FILE)
            if not result or result.get("attempt", 0) <= self.handled.get(name, 0):
                continue
            self.handled[name] = result["attempt"]
            self._result(name, spec, task, result)

    def _result(self, name, spec, task: Path, result: dict) -> None:
        if result["status"] != SUCCEEDED and result["attempt"] <= spec.step.get("retries", 0):
            error = result.get("error") or {}
            self.emit(STEP_RETRY, name, {"attempt": result["attempt"], "error": error.get("evalue")})
            return
        outcome = StepOutcome(name, result["status"], summary=result, attempts=result["attempt"],
                                  started=result.get("started", 0.0), finished=result.get("finished", 0.0))
        if outcome.status == SUCCEEDED:
            self._persist(spec, task, result, outcome)
        self.outcomes[name] = outcome
        self.emit(STEP_FINISHED, name, finished_payload(outcome))

    def _persist(self, spec, task: Path, result: dict, outcome) -> None:
        from ...compiler.targets.kfp import RECORD_OUTPUT
        from ..kfp_component import KEPT_FOLDER, ArtifactFolder
        from ..store import ArtifactStore

        name = spec.step["name"]
        try:
            units: dict[str, list[str]] = {}
            for variable, output in self.module.outputs.get(name, {}).items():
                units.setdefault(output, []).append(variable)
            values = {}
            for output, names in units.items():
                values.update(ArtifactFolder(str(task / output)).get(name, names))
            kept = task / RECORD_OUTPUT / KEPT_FOLDER
            if kept.exists():
                values.update({k: v for k, v in ArtifactFolder(str(kept)).get(name).items() if k not in values})
            if result.get("metrics"):
                values[METRICS_KEY] = result["metrics"]
            known = {**self.cached, **self.outcomes}
            outcome.key = run_key(spec.hash, input_digests(spec.step, known))
            manifest = ArtifactStore(spec.store_url).put(outcome.key, values, spec.step["groups"], name, replace=True,
                                                         dependencies=result.get("dependencies"))
            outcome.stored = stored_digests(manifest)
            outcome.digests = {n: d for n, d in outcome.stored.items() if n in spec.step["outputs"]}
            _describe(spec, known, values, result, outcome)
        except Exception as exc:  # noqa: BLE001 - any failure to store is this step's failure
            outcome.status = FAILED
            outcome.summary = {**result, "status": FAILED, "error": error_dict(
                type(exc).__name__, f"outputs of step {name!r} could not be stored: {exc}", str(exc))}

    def finish(self, log_tail: str) -> dict:
        """Outcomes for the steps that left no final record: they died, or never ran."""
        failed = {n for n, o in self.outcomes.items() if o.status == FAILED}
        for name, spec in self.specs.items():
            if name in self.outcomes:
                continue
            now = time.time()
            if name in self.started:
                reason = error_dict("TaskFailed", f"the KFP task of step {name!r} ended without a result"
                                    + (_fatal_note(self.processes.get(name)) or _killed_note(log_tail)), log_tail)
                outcome = StepOutcome(name, FAILED, summary={"error": reason}, attempts=self.started[name],
                                      started=now, finished=now)
                failed.add(name)
            else:
                upstream = sorted(u for u in spec.step["after"] if u in failed
                                  or (u in self.outcomes and self.outcomes[u].status == UPSTREAM_FAILED))
                if upstream:
                    outcome = StepOutcome(name, UPSTREAM_FAILED,
                                          summary={"reason": f"upstream failed: {', '.join(upstream)}"})
                elif failed:
                    outcome = StepOutcome(name, CANCELLED, summary={
                        "reason": f"not run: kfp.local stops a pipeline at its first failed task "
                                  f"({', '.join(sorted(failed))})"})
                else:
                    outcome = StepOutcome(name, FAILED, summary={"error": error_dict(
                        "KfpLocalError", "kfp.local ended before running this step", log_tail)})
                    failed.add(name)
            self.outcomes[name] = outcome
            self.emit(STEP_FINISHED, name, finished_payload(outcome))
        return self.outcomes


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _main(argv) -> int:
    """The child process: run the compiled YAML under kfp.local."""
    import warnings

    warnings.simplefilter("ignore")  # kfp.local warns about settings (resources, images) it cannot honour
    yaml_path, arguments_path, root = argv
    from kfp import components, local

    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=root, raise_on_error=False)
    pipeline = components.load_component_from_file(yaml_path)
    pipeline(**json.loads(Path(arguments_path).read_text(encoding="utf-8")))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))


def _describe(spec, upstream: dict, values: dict, result: dict, outcome) -> None:
    """The step's lineage record and its values' profiles, as `task.run_step` makes them on the
    other engines, from what the KFP task stored and recorded."""
    from types import SimpleNamespace

    from ..profiles import step_profiles
    from ..steplineage import step_lineage

    values = {n: v for n, v in values.items() if n != METRICS_KEY}
    ran = SimpleNamespace(outputs={n: values[n] for n in spec.step["outputs"] if n in values},
                          namespace_values=values, metrics=result.get("metrics") or {},
                          dependencies=result.get("dependencies"))
    outcome.summary = {**outcome.summary, "lineage": step_lineage(spec, upstream, ran, outcome),
                       "profiles": step_profiles(values) if spec.profile else None}


def _fatal_note(started: dict | None) -> str:
    """Where the step was when its task's process died of a crash in compiled code (`fatal_errors`)."""
    from ..fatal_errors import died_of

    fatal = died_of((started or {}).get("pid"), (started or {}).get("host"))
    return f": {fatal}" if fatal else ""


def _killed_note(log_tail: str) -> str:
    """What the shell that ran the task said of its end: `Killed` is SIGKILL, most often the
    kernel's out-of-memory killer (a pod's memory limit does the same on a cluster)."""
    if any(line.strip() == "Killed" for line in log_tail.splitlines()):
        return ": its process was killed (SIGKILL), most often for running out of memory"
    return ""
