"""One run process started by the server (`runproc.py`) and the thread that supervises it.

The thread reads the process's JSON lines (protocol in `runproc.py`), turns its events into Event
models, keeps its latest cluster sample, and when the process ends makes the run store final if
the process could not (killed, crashed, cancelled before the run began). It does so before it
collects the dead process: until then the run store's own check for dead owners leaves the run to
this supervisor, which knows more (a requested cancel, the exit code, the end of stderr). A process killed
(after a cancel's grace time, by the OOM killer) or crashed ended nothing its steps started, so the
supervisor then ends those, as the run store does for a dead owner (`children.end_orphans_of`).
Everything that touches the server's state goes back to the event loop through `call_soon_threadsafe`.

The owner (`runs.Runs`) provides `log`, `events` (an EventHub), `store_for(notebook)`, and
`run_created(process, run_id)` / `run_ended(process, final_status)`, called on the loop.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from nbscale.kernels.children import end_orphans_of
from nbscale.kernels.contract import CANCELLED, CANCELLED_BY_USER, FAILED, RUN_FINISHED, SERVER_WENT_AWAY
from nbscale.kernels.liveness import process_start_time

from . import models
from .errors import ExtensionError, InvalidInput
from .kfp import CREDENTIAL_ENV
from .runproc import CANCEL_LINE, SERVER_CLOSING_LINE

# Server credentials a run's user code has no business seeing.
# the server's own credentials: the code of a run must not read them (nor store them as a value)
CHILD_ENV_DROP = ("JUPYTER_TOKEN", "JUPYTER_PASSWORD", "JPY_API_TOKEN", "JUPYTERHUB_API_TOKEN",
                  *CREDENTIAL_ENV.values())


class RunProcess:
    def __init__(self, owner, loop: asyncio.AbstractEventLoop, notebook: Path):
        self.owner, self.loop, self.notebook = owner, loop, notebook
        self.run_id: str | None = None
        self.proc: subprocess.Popen | None = None
        self.thread: threading.Thread | None = None
        self.created: asyncio.Future = loop.create_future()  # the run id, once the run store has the run
        self.cancel_requested = False
        self.server_closing = False  # the cancel came from the server closing (`cancel`)
        self.finished_event_sent = False
        self.cluster_sample: dict | None = None  # the latest model of a cluster the run started for itself
        self.error: str | None = None
        self.input_error = False
        self.stdin_lock = threading.Lock()

    def start(self, spec: dict) -> asyncio.Future:
        """Start the process with `spec` (runproc's protocol) and its supervisor; the future of the run id."""
        self.stderr = tempfile.TemporaryFile()
        env = {k: v for k, v in os.environ.items() if k not in CHILD_ENV_DROP}
        # -P: the notebook's folder is the working directory but not an import path of the run process
        # itself (a `dask.py` beside the notebook must not replace Dask); steps still import from it.
        safe_path = ["-P"] if sys.version_info >= (3, 11) else []
        self.proc = subprocess.Popen(
            [sys.executable, *safe_path, "-m", "nbscale.jupyter_ext.runproc"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=self.stderr, cwd=str(self.notebook.parent), env=env, text=True,
            encoding="utf-8", start_new_session=True)
        # with the pid, how the run store and its steps' processes name the run's owner
        self.started = process_start_time(self.proc.pid) or 0.0
        self.proc.stdin.write(json.dumps(spec) + "\n")
        self.proc.stdin.flush()
        self.thread = threading.Thread(target=self._supervise, name="nbscale-run", daemon=True)
        self.thread.start()
        return self.created

    def cancel(self, grace: float, closing: bool = False) -> None:
        """Ask the run to stop (as Ctrl-C does the CLI); kill its process if it has not after `grace` s.
        `closing`: the server is closing (the run is recorded as stopped for that, not by the user)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        first = not self.cancel_requested
        self.cancel_requested = True
        self.server_closing = self.server_closing or closing
        with self.stdin_lock:
            try:
                self.proc.stdin.write((SERVER_CLOSING_LINE if closing else CANCEL_LINE) + "\n")
                self.proc.stdin.flush()
            except (OSError, ValueError):
                pass
        if first:
            timer = threading.Timer(grace, self.kill)
            timer.daemon = True
            timer.start()

    def join(self, timeout: float) -> None:
        if self.thread is not None:
            self.thread.join(timeout)
        if self.proc is not None and self.proc.poll() is None:
            self.kill()
            self.thread.join(timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.owner.log.warning("nbscale: run %s did not stop after cancel; killing its process",
                                   (self.run_id or "?")[:12])
            self.proc.kill()

    # the supervising thread -----------------------------------------------------------------------

    def _supervise(self) -> None:
        status = None
        try:
            for line in self.proc.stdout:
                try:
                    message = json.loads(line)
                except ValueError:
                    continue
                self._handle(message)
            try:
                status = self._finalize(self._exit_code())
                # killed or crashed, it ended nothing its steps started (after a clean end none is found)
                end_orphans_of(self.proc.pid, self.started)
            finally:
                self.proc.wait()  # collect it: from now on its run has a dead owner
            with self.stdin_lock:
                try:
                    self.proc.stdin.close()
                except OSError:
                    pass
        except Exception:  # noqa: BLE001 - never let a supervisor die silently
            self.owner.log.exception("nbscale: supervising run %s failed", self.run_id)
        finally:
            if self.run_id is None and not self.error:
                self.error = f"the run process ended before the run began: {self._stderr_tail(5)}"
            self.stderr.close()
            self._call(self._ended, status)

    def _handle(self, message: dict) -> None:
        kind = message.get("type")
        if kind == "created":
            self.run_id = message["run_id"]
            self._call(self._created, self.run_id)
        elif kind == "event" and self.run_id is not None:
            event = models.event(message.get("kind", ""), self.run_id, message.get("step"), message.get("payload"))
            if message.get("kind") == RUN_FINISHED:
                self.finished_event_sent = True
            self._call(self.owner.events.publish, event, self.notebook)
        elif kind == "cluster":
            self.cluster_sample = message.get("model")
        elif kind == "error":
            self.error, self.input_error = str(message.get("message") or "error"), bool(message.get("input"))

    def _exit_code(self) -> int:
        """Wait for the process to end without collecting it: as a zombie child of this process it
        still counts as the run's living owner, so no reader of the run store finishes the run first."""
        if not hasattr(os, "waitid"):  # pragma: no cover - Windows
            return self.proc.wait()
        while True:
            try:
                info = os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOWAIT)
            except ChildProcessError:
                return self.proc.wait()
            except InterruptedError:
                continue
            if info is not None:
                return info.si_status if info.si_code == os.CLD_EXITED else -info.si_status

    def _finalize(self, code: int) -> str | None:
        """Make the run store final when the process could not (killed, crashed, cancelled early);
        the run's final status."""
        if self.run_id is None:
            return None
        status = CANCELLED if self.cancel_requested else FAILED
        if status == CANCELLED:
            error = SERVER_WENT_AWAY if self.server_closing else CANCELLED_BY_USER
        else:
            error = self.error or f"the run process ended with exit code {code}: {self._stderr_tail()}"
        return self.owner.store_for(self.notebook).end_unfinished(self.run_id, status, error)

    def _stderr_tail(self, lines: int = 15) -> str:
        try:
            self.stderr.seek(0)
            text = self.stderr.read()[-20_000:].decode("utf-8", "replace")
        except (OSError, ValueError):
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])

    def _call(self, fn, *args) -> None:
        try:
            self.loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop is closed: the server is gone
            pass

    # on the loop ------------------------------------------------------------------------------------

    def _created(self, run_id: str) -> None:
        self.owner.run_created(self, run_id)
        if not self.created.done():
            self.created.set_result(run_id)

    def _ended(self, status: str | None) -> None:
        self.owner.run_ended(self, status)
        if not self.created.done():
            message = self.error or "the run process ended before the run began"
            self.created.set_exception(InvalidInput(message) if self.input_error else ExtensionError(message))
