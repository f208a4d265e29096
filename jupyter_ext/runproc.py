"""One run started by the Jupyter server, in a process of its own: `python -m nbscale.jupyter_ext.runproc`.

Steps execute user code, change the working directory and swap `sys.stdout` (the executor does
what a kernel does): none of that may happen inside the Jupyter server. So the server starts this
process per run, and it calls `run_notebook` exactly as `nbscale run` does, writing to the same run
store beside the notebook.

Protocol (one JSON object per line):
- stdin, server → run: the spec `{"notebook", "parameters", "options": RunOptions fields,
  "cluster_factory", "cancel_grace_s"}`, then `cancel` lines (the user's), or `server-closing` (the server closes).
  The end of stdin (the server went away) cancels too, recorded as `server-closing` is.
- stdout, run → server: `{"type": "created", "run_id"}` (at the runner's `run_created` event, which
  carries the id), `{"type": "event", "kind", "step", "payload"}` for every event as it happens, the
  live-only ones too (`contract.LIVE_ONLY`: a running step's output, the cluster starting),
  `{"type": "cluster", "model"}` samples of a cluster the run started for itself (a Dask run with no
  scheduler given shares the notebook folder's warm cluster when one is live, as `nbscale run` does),
  `{"type": "done", "status"}`, `{"type": "error", "input": bool, "message"}`. Everything else the
  process prints goes to stderr.
A cancel raises KeyboardInterrupt in the main thread: the runner marks the run cancelled, as on
Ctrl-C in the CLI; SIGTERM does the same once the run began (exit code 143). This process owns the
run (its pid is the run's owner in the run store): if it dies, the supervisor finishes the run.
A step may swallow the interrupt (`except BaseException: pass` in a loop). While the server lives it
kills this process `cancel_grace_s` (the spec's; the server's `Nbscale.cancel_grace`) after a cancel;
once the server is gone (killed: the end of stdin) nobody would, and the run would stay `running`
for ever with its owner alive. So then this process ends itself: `cancel_grace_s` after the server
went away it ends what the running step started and interrupts again, as a second Ctrl-C (the run is
recorded `cancelled`, "stopped again", and the process ends); if even that is not acted on (the main
thread held in C code), it kills itself, and the run store's next reader fails the run and ends the
processes its steps left (`RunStore.reap`).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
import traceback

from nbscale.kernels.contract import CANCELLED, CLUSTER_STARTED, CLUSTER_STARTING, RUN_CREATED, STEP_FINISHED

SAMPLE_INTERVAL_S = 0.5
CANCEL_LINE = "cancel"  # the user cancelled the run
SERVER_CLOSING_LINE = "server-closing"  # the server is closing: as the end of stdin, said as that
CANCEL_GRACE_S = 15.0  # without the spec's `cancel_grace_s`: how long a step may take to stop once no server watches


class Channel:
    """The line-oriented JSON channel to the server on the original stdout (thread-safe)."""

    def __init__(self, stream):
        self.stream = stream
        self.lock = threading.Lock()

    def send(self, message: dict) -> None:
        line = json.dumps(message, default=str, allow_nan=False) + "\n"
        with self.lock:
            try:
                self.stream.write(line)
                self.stream.flush()
            except (OSError, ValueError):  # the server went away: the stdin watcher cancels
                pass


_channel: Channel | None = None
_running = threading.Event()  # set while run_notebook may be interrupted


def main() -> int:
    global _channel
    line = sys.stdin.readline()
    # The channel keeps the original stdout; fd 1 (prints, logging, workers) now goes to stderr.
    _channel = channel = Channel(os.fdopen(os.dup(1), "w", encoding="utf-8"))
    spec = _spec(line)
    if spec is None:  # said on the channel, for the server: no traceback in its place
        channel.send({"type": "error", "input": True, "message": f"not a run spec: {line[:200]!r}"})
        return 2
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    signal.signal(signal.SIGINT, signal.default_int_handler)
    grace = _grace(spec.get("cancel_grace_s"))
    threading.Thread(target=_watch_server, args=(grace,), name="nbscale-cancel", daemon=True).start()

    from nbscale.errors import NbscaleError
    from nbscale.kernels.errors import RunStoreError, Terminated
    from nbscale.kernels.interrupts import sigterm_interrupts
    from nbscale.kernels.runner import RunOptions, run_notebook

    def on_event(kind, step, payload):
        payload = payload or {}
        if kind == RUN_CREATED:  # the run is in the run store: the server may answer with its id
            channel.send({"type": "created", "run_id": payload["run_id"]})
            return
        channel.send({"type": "event", "kind": kind, "step": step, "payload": _compact(kind, payload)})

    try:
        options = RunOptions(**spec["options"])
    except (TypeError, NbscaleError) as exc:  # an option it does not know, a bad value
        channel.send({"type": "error", "input": True, "message": f"bad run options: {exc}"})
        return 2
    if options.engine == "dask" and not (options.scheduler or options.scheduler_file) \
            and not _shares_warm_cluster(spec, options):
        _sample_own_cluster(spec.get("cluster_factory"))
    _running.set()
    try:
        # the run store is the CLI's, beside the notebook (contract.run_store_path)
        with sigterm_interrupts():
            result = run_notebook(spec["notebook"], spec.get("parameters") or {}, options, on_event=on_event)
        _running.clear()
    except KeyboardInterrupt as exc:
        _running.clear()
        channel.send({"type": "done", "status": CANCELLED})
        return 143 if isinstance(exc, Terminated) else 130
    except NbscaleError as exc:
        channel.send({"type": "error", "input": not isinstance(exc, RunStoreError), "message": str(exc)})
        return 2
    except BaseException as exc:  # noqa: BLE001 - report any crash to the server, then fail
        traceback.print_exc()
        channel.send({"type": "error", "input": False, "message": f"{type(exc).__name__}: {exc}"})
        return 1
    channel.send({"type": "done", "status": result.status})
    return 0


def _spec(line: str) -> dict | None:
    """The spec line as a dict with `notebook` and `options` (a dict), or None when it is not one."""
    try:
        spec = json.loads(line)
    except ValueError:
        return None
    ok = isinstance(spec, dict) and isinstance(spec.get("notebook"), str) and isinstance(spec.get("options"), dict)
    return spec if ok else None


def _grace(value) -> float:
    """The spec's `cancel_grace_s`, if it is a sensible number of seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 3600:
        return float(value)
    return CANCEL_GRACE_S


def _watch_server(grace: float = CANCEL_GRACE_S):
    """A `cancel` line, or the end of stdin (the server is gone: recorded as that), interrupts the run.
    Once the server is gone, a run that did not stop within `grace` seconds is ended from here."""
    gone = False
    for line in sys.stdin:
        if line.strip() == CANCEL_LINE:
            break
        if line.strip() == SERVER_CLOSING_LINE:
            _server_gone()
            break
    else:
        _server_gone()
        gone = True
    _running.wait()  # a cancel before the run begins takes effect as it begins
    _interrupt_main()
    if not gone:  # the server kills this process past its grace time, as long as it is there to
        for _line in sys.stdin:
            pass
    _end_unwatched(grace)


def _end_unwatched(grace: float) -> None:
    """The run was asked to stop and no server watches this process any more: past `grace` seconds,
    end the running step's processes and interrupt again (the runner records the run `cancelled`,
    "stopped again", and the process ends); past another `grace`, kill this process."""
    time.sleep(grace)
    try:
        from nbscale.kernels.children import end_step_children

        end_step_children()
    except Exception:  # noqa: BLE001 - ending the process matters more
        traceback.print_exc()
    _interrupt_main()
    time.sleep(max(grace, 1.0))  # a main thread held in C code never acts on a signal
    os.kill(os.getpid(), signal.SIGKILL)


def _server_gone():
    from nbscale.kernels.errors import ServerGone
    from nbscale.kernels.interrupts import interrupt_as

    interrupt_as(ServerGone)


def _interrupt_main():
    # A signal aimed at the main thread also wakes it from a blocking sleep or wait.
    if hasattr(signal, "pthread_kill"):
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
    else:  # pragma: no cover - Windows
        import _thread

        _thread.interrupt_main()


def _compact(kind, payload: dict) -> dict:
    """What the panel needs of an event; logs, displays and values stay in the run store."""
    if kind != STEP_FINISHED:
        return {k: v for k, v in payload.items() if k != "summary"}
    summary = payload.get("summary") or {}
    error = summary.get("error") or summary.get("reason")
    if isinstance(error, dict):
        error = {k: error.get(k) for k in ("cell", "line", "ename", "evalue", "traceback")}
    return {"status": payload.get("status"), "duration_s": summary.get("wall_s"), "error": error,
            "attempts": payload.get("attempts"), "started": payload.get("started"),
            "finished": payload.get("finished")}


# --- the cluster a run starts for itself ---------------------------------------------------------


def _shares_warm_cluster(spec: dict, options) -> bool:
    """Whether the engine will run on the live warm cluster of the notebook's folder (`nbscale cluster
    start`) as `nbscale run` does, rather than on a cluster of its own (configured or embedded)."""
    import dask

    from nbscale.kernels import warm_cluster

    if spec.get("cluster_factory") or dask.config.get("nbscale.cluster-factory", None) or options.workers:
        return False
    found = warm_cluster.for_notebook(spec["notebook"])
    return found.live and warm_cluster.same_environment(found.cluster)


def _sample_own_cluster(factory):
    """Make the Dask engine build its cluster through `own_cluster`, which samples it for the panel."""
    import dask

    inner = factory or dask.config.get("nbscale.cluster-factory", None)
    # (the factory runs in this process: the cluster's phase goes to the panel like any event)
    dask.config.set({"nbscale.cluster-factory": {"module": __name__, "class": "own_cluster",
                                                 "kwargs": {"inner": inner}}})


def own_cluster(inner=None):
    """The engine's cluster (the configured factory's, or its embedded LocalCluster), sampled."""
    from nbscale.kernels.engines.dask import cluster_from_factory, local_cluster

    _send_event(CLUSTER_STARTING)
    cluster = cluster_from_factory(inner) if inner else local_cluster()
    _send_event(CLUSTER_STARTED, {"scheduler_address": cluster.scheduler_address})
    sampler = _Sampler(cluster)
    close = cluster.close

    def close_sampled(*args, **kwargs):
        sampler.stop()
        return close(*args, **kwargs)

    cluster.close = close_sampled
    sampler.start()
    return cluster


def _send_event(kind: str, payload: dict | None = None) -> None:
    """A live-only run event (no step) from this process itself."""
    if _channel is not None:
        _channel.send({"type": "event", "kind": kind, "step": None, "payload": payload or {}})


class _Sampler(threading.Thread):
    def __init__(self, cluster):
        super().__init__(name="nbscale-cluster-sampler", daemon=True)
        self.cluster = cluster
        self.stopped = threading.Event()
        self.client = None

    def run(self):
        from distributed import Client

        from nbscale.jupyter_ext.models import cluster_model

        try:
            self.client = Client(self.cluster.scheduler_address, set_as_default=False, timeout="10s")
            while not self.stopped.is_set():
                identity = self.client.scheduler_info(n_workers=-1)
                states = self.client.sync(self.client.scheduler.get_task_prefix_states)
                if _channel is not None and not self.stopped.is_set():
                    _channel.send({"type": "cluster", "model": cluster_model(identity, kind="run", task_states=states)})
                self.stopped.wait(SAMPLE_INTERVAL_S)
        except Exception:  # noqa: BLE001 - sampling is best effort; the run goes on
            pass
        finally:
            if self.client is not None:
                try:
                    self.client.close(timeout=2)
                except Exception:  # noqa: BLE001
                    pass

    def stop(self):
        self.stopped.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout=3)


if __name__ == "__main__":
    sys.exit(main())
