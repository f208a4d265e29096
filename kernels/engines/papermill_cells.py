"""The papermill engine's cells inside the kernel: bind a step's parameters and inputs (the load
cell), record what its cells use, and save its outputs, kept values, metrics and that record (the
save cell). The engine (`papermill.py`) writes the step notebook that calls these and reads back
what they wrote in the step's io folder.
"""

from __future__ import annotations

import json
import os
import socket

from ..contract import missing_outputs_message
from ..dependencies import record
from ..errors import MarshalError
from ..executor import is_clean_exit, made_here
from ..fatal_errors import noting_exit, watch
from ..masking import kept_values
from ..namespace import evaluate_metrics, rebind_functions, replay_settings
from ..store import ArtifactStore

IO_DIR, OUT_KEY, IN_KEY = "io", "outputs", "inputs"
FAULT_FILE = "fault.json"  # (in the io folder)
SAVE_MARKER = "# nbscale: outputs of step"  # the first line of the save cell
_recording = None  # (context manager, Recording) of the step running in this kernel


def load_inputs(ns: dict, io_dir: str) -> None:
    """Bind the step's parameters and inputs in the kernel's namespace (the load cell)."""
    with open(os.path.join(io_dir, "step.json"), encoding="utf-8") as f:
        step = json.load(f)
    ns.update(step["parameters"])
    ns.update(rebind_functions(ArtifactStore(io_dir).get(IN_KEY), ns))
    error = replay_settings(step.get("settings", []), ns)  # what earlier steps set for the whole process
    if error is not None:
        raise RuntimeError(error["evalue"])
    _note_fault_file(io_dir)  # (before the recording: the kernel's own file is nothing the step uses)
    # What the step's cells use beyond their code, recorded from here to the save cell (same thread).
    global _recording
    recorder = record(os.getcwd(), step.get("named", []), step.get("given", []), step.get("notebook", ""))
    _recording = (recorder, recorder.__enter__())  # (what ipykernel set, MPLBACKEND..., is no dependency)
    _stop_at_clean_exit()


def _note_fault_file(io_dir: str) -> None:
    """Where this kernel writes its stacks if it dies of a crash in compiled code, or of the step's
    `os._exit` (`fatal_errors`): the engine reads it when the kernel died. (The kernel runs this step
    alone: `os._exit` stays noted until it ends.)"""
    with open(os.path.join(io_dir, FAULT_FILE), "w", encoding="utf-8") as f:
        json.dump({"path": watch(), "host": socket.gethostname()}, f)
    os._exit = noting_exit(os._exit)


def _stop_at_clean_exit() -> None:
    """`sys.exit(0)` in a step cell ends the step there, successfully (`executor.is_clean_exit`):
    the cell's reply is made a success, so that papermill goes on, and the step's later cells run
    as empty cells; the save cell still saves what the step defined so far."""
    import warnings

    from IPython import get_ipython

    shell = get_ipython()
    if shell is None:
        return
    warnings.filterwarnings("ignore", message="To exit: use 'exit'", category=UserWarning)
    stopped = []

    def after_cell(result) -> None:
        if result is not None and is_clean_exit(result.error_in_exec):
            result.error_in_exec = None
            stopped.append(True)

    def skip_when_stopped(lines: list[str]) -> list[str]:
        if stopped and not (lines and lines[0].startswith(SAVE_MARKER)):
            return []
        return lines

    shell.events.register("post_run_cell", after_cell)
    shell.input_transformers_cleanup.insert(0, skip_when_stopped)


def _stop_recording(made=((), ())) -> dict | None:
    """The step's fingerprint; `made`: the values it defined for itself and those it hands on
    (`executor.made_here`: a path it built and gave a C library)."""
    global _recording
    if _recording is None:
        return None
    recorder, recording = _recording
    _recording = None
    recorder.__exit__(None, None, None)
    recording.mention_built(*made)
    return recording.fingerprint()


def save_outputs(ns: dict, io_dir: str) -> None:
    """Write the step's outputs, the final values worth keeping and its metrics (the save cell)."""
    import resource

    from ...compiler.ir import Metrics

    with open(os.path.join(io_dir, "step.json"), encoding="utf-8") as f:
        step = json.load(f)
    report = {"missing": [n for n in step["outputs"] if n not in ns], "metrics": {}, "warnings": []}
    report["dependencies"] = _stop_recording(made_here({n: ns[n] for n in step.get("defines", []) if n in ns},
                                                       step["outputs"]))
    if step["metrics"] and not report["missing"]:
        report["metrics"], report["warnings"] = evaluate_metrics(Metrics(**step["metrics"]), ns)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    report["cpu_s"] = usage.ru_utime + usage.ru_stime
    report["peak_rss_bytes"] = usage.ru_maxrss * 1024  # kilobytes on Linux
    kept = kept_values({name: ns[name] for name in step["keep"] if name in ns})
    _write_report(report, io_dir)
    if report["missing"]:
        raise NameError(missing_outputs_message(step["name"], report["missing"]))
    outputs = {n: ns[n] for n in step["outputs"]}
    try:  # kept values are best effort: the store leaves out what cannot be serialised
        ArtifactStore(io_dir).put(OUT_KEY, {**outputs, **kept}, step["groups"], step["name"], optional=kept)
    except MarshalError as exc:  # (the engine points at where the step binds it)
        _write_report({**report, "unstorable": exc.variable}, io_dir)
        raise


def _write_report(report: dict, io_dir: str) -> None:
    with open(os.path.join(io_dir, "report.json"), "w", encoding="utf-8") as f:
        json.dump(report, f)
