"""A run started from the kernel (`%nbscale run`): its process, the thread that follows it in the run
store, and its display.

The run happens in a process of its own, started the way the Jupyter server starts one
(`python -m nbscale.jupyter_ext.runproc`, the same spec and `cancel` protocol): the kernel stays
free, and the run's code never runs in the user's namespace. The process gets a session of its own,
so a kernel interrupt (SIGINT to the kernel's process group) does not reach it; if the kernel dies,
its end of the pipe closes and the run cancels itself.

Two daemon threads: one reads the process's messages (the run's id, samples of its cluster, its
end); one follows the run in the run store — the stream the CLI and the panel read — at most
POLL_HZ times a second and only while the run is live, and refreshes the view.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from .kernels.contract import CANCELLED, FINISHED, SUCCEEDED, run_store_path, state_dir
from .run_static import bundle
from .run_view import RunModel

POLL_HZ = 5
CANCEL_GRACE_S = 15.0  # after a `cancel` line, how long the run may take to stop before SIGTERM
START_TIMEOUT_S = 120.0  # how long the process may take to put the run in the run store


class LiveRun:
    def __init__(self, notebook: Path, parameters: dict, options: dict, *, widgets: bool = True):
        self.notebook = Path(notebook).resolve()
        self.model = RunModel(str(self.notebook))
        self.parameters, self.options = parameters, options
        self.view = None
        if widgets:
            from .run_widget import RunWidget

            self.view = RunWidget(self.model, self.cancel)
        self.handle = None  # the IPython display handle
        self.process: subprocess.Popen | None = None
        self.ended = threading.Event()  # the run finished (or never started) and the view shows it
        self.created = threading.Event()
        self.cancel_requested = False
        self.log_path = None
        self._last_static = 0.0

    # -- start ------------------------------------------------------------------------------------

    def start(self) -> LiveRun:
        from IPython.display import display

        self.handle = display(self.bundle(), raw=True, display_id=True)
        log_dir = state_dir(self.notebook) / "logs"  # beside the runs' own log folders
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"magic-{os.getpid()}-{int(time.time() * 1000)}.stderr"
        spec = {"notebook": str(self.notebook), "parameters": self.parameters, "options": self.options}
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "nbscale.jupyter_ext.runproc"], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=log, cwd=self.notebook.parent, start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.process.stdin.write((json.dumps(spec) + "\n").encode())
        self.process.stdin.flush()
        threading.Thread(target=self._read_messages, name="nbscale-magic-messages", daemon=True).start()
        threading.Thread(target=self._follow, name="nbscale-magic-follow", daemon=True).start()
        return self

    def bundle(self) -> dict:
        return bundle(self.model, self.view.model_id if self.view else None)

    # -- the process's messages -------------------------------------------------------------------

    def _read_messages(self) -> None:
        for raw in self.process.stdout:
            try:
                message = json.loads(raw)
            except ValueError:
                continue
            kind = message.get("type")
            if kind == "created":
                self.model.run_id = message.get("run_id")
                self.created.set()
            elif kind == "cluster" and isinstance(message.get("model"), dict):
                self.model.apply_cluster(message["model"])
            elif kind == "error":
                self.model.fail(str(message.get("message")))
        self.process.wait()
        if self.process.returncode == 0:  # its stderr holds nothing worth keeping
            self.log_path.unlink(missing_ok=True)
        if not self.created.is_set():  # it ended before the run existed: nothing to follow
            self.model.fail(self.model.error or f"the run's process ended with exit code "
                            f"{self.process.returncode} before the run began (see {self.log_path})")
            self.created.set()

    # -- following the run store ------------------------------------------------------------------

    def _follow(self) -> None:
        from .kernels.runstore import RunStore

        if not self.created.wait(START_TIMEOUT_S) or self.model.run_id is None:
            self.model.fail(self.model.error or f"the run did not start in {START_TIMEOUT_S:.0f} s")
            self._end()
            return
        store = RunStore(run_store_path(self.notebook))
        try:
            self.model.expect(last_success(store, str(self.notebook), self.model.run_id))
            while not self._poll(store):
                self.refresh()
                time.sleep(1 / POLL_HZ)
        except Exception as exc:  # noqa: BLE001 - the view must say it stopped following, not die silently
            self.model.fail(f"stopped following the run: {type(exc).__name__}: {exc}")
        finally:
            store.close()
            self._end()

    def _poll(self, store) -> bool:
        """Apply the run's new events (and its row when something happened); True once it is over."""
        events = store.events_since(self.model.run_id, self.model.last_event_id)
        for event in events:
            self.model.apply(event)
        if events or self.process.poll() is not None:
            run = store.get_run(self.model.run_id, heavy=False)  # cached steps, times, errors, metrics
            self.model.apply_run(run)
            if run["status"] in FINISHED:
                return True
            if self.process.poll() is not None:
                # the process is gone but the run is not finished: the store's reaper will say so
                # once the owner is seen gone; until then, say what is known
                self.model.fail(f"the run's process ended (exit code {self.process.returncode}); see {self.log_path}")
                return True
        return False

    def refresh(self) -> None:
        if self.view is not None:
            self.view.refresh()
        elif time.monotonic() - self._last_static > 1.0:  # no widgets: the static view, once a second
            self._last_static = time.monotonic()
            self.update_display()

    def update_display(self) -> None:
        if self.handle is not None:
            self.handle.update(self.bundle(), raw=True)

    def _end(self) -> None:
        # the static parts first: whoever sees the widget's final state (and saves the notebook then)
        # gets a display that already shows it, as both leave on the kernel's one iopub channel in order
        self.update_display()
        if self.view is not None:
            self.view.refresh()
        self.ended.set()

    # -- cancel and wait --------------------------------------------------------------------------

    def cancel(self) -> None:
        """Cancel as the panel does: a `cancel` line; SIGTERM (which also cancels) after a grace time.
        Returns at once: the button's handler runs in the kernel's thread."""
        self.cancel_requested = True
        process = self.process
        if process is None or process.poll() is not None:
            return
        try:
            process.stdin.write(b"cancel\n")
            process.stdin.flush()
        except (OSError, ValueError):
            pass
        threading.Thread(target=self._escalate, name="nbscale-magic-cancel", daemon=True).start()

    def _escalate(self) -> None:
        try:
            self.process.wait(CANCEL_GRACE_S)
        except subprocess.TimeoutExpired:
            self.process.terminate()
            try:
                self.process.wait(CANCEL_GRACE_S)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def wait(self, timeout: float | None = None) -> str:
        """Block until the run ends (an interrupt stops the waiting, not the run); its status."""
        try:
            self.ended.wait(timeout)
        except KeyboardInterrupt:
            print("stopped waiting; the run goes on (%nbscale wait to wait again)")
            return self.model.status
        if self.ended.is_set():
            self.update_display()  # from this cell: a batch runner (nbclient) takes the update in
        return self.model.status

    @property
    def cancelled(self) -> bool:
        return self.model.status == CANCELLED


def last_success(store, notebook: str, other_than: str) -> dict:
    """The notebook's latest successful run before this one (its step rows), or {}."""
    for row in store.list_runs(notebook, limit=20):
        if row["status"] == SUCCEEDED and row["id"] != other_than:
            return store.get_run(row["id"])
    return {}
