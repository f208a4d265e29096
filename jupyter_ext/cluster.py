"""The server's Dask cluster: at most one per server, started, connected to, scaled, adapted, closed.

`ServerCluster` is what the panel's Cluster section drives: the warm cluster of the server's root
(kernels/warm_cluster.py), a cluster the configured factory built, or a scheduler the server only
connected to (from the panel, or `c.Nbscale.scheduler_address` at first need). Dask runs started
from the panel run on it. `DaskCluster` wraps one live cluster and its asynchronous client, and
answers ClusterModels, with where the browser finds the cluster's Dask dashboard
(`dashboard_model`): through jupyter-server-proxy when the dashboard is on the server's machine, as
dask-labextension does, so it works on a remote server and on JupyterHub.

The embedded LocalCluster the panel starts is a warm cluster, not one inside the server: a process
of its own with its files in the root's state folder, so `nbscale run` of a notebook under the
root, `papermill --engine nbscale`, `nbscale.run()` and `nbscale cluster status` find it and share
it. The server starts it, or adopts the live one that runs under its root use (also on its own, at
a GET of the cluster: after a restart, or one `nbscale cluster start` began); it outlives the
server until Dask's `distributed.scheduler.idle-timeout` (default 30 minutes) ends it. The server
checks before each use that its process still serves (its idle timeout, `nbscale cluster stop` or
another server's Close end it); Close stops only the process it attached to, and is refused while
steps of any run execute on it (a CLI run there would fail).
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import ipaddress
import logging
import os
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

from nbscale.kernels.warm_cluster import ADAPT_HANDLER, ADAPTIVE_HANDLER, MAX_WORKERS, SCALE_HANDLER

from . import models
from .errors import Conflict, ExtensionError, InvalidInput

CLOSE_TIMEOUT_S = 10.0  # closing a client of a scheduler that stopped answering waits no longer
# What a Scale, Adapt or Close of a running pipeline's own cluster would do, said as it is refused.
DONE_TO = {"scale": "scaled", "adapt": "made adaptive", "close": "closed"}


class ServerCluster:
    """The one cluster of the server, and the start or connect under way.

    Starting and connecting wait on the network (or on a factory) for as long as they take, and no
    lock is held meanwhile: `current` and `pending` change only between two awaits, which on the
    server's one event loop needs no lock. A close during a start or connect wins: it ends the
    attempt, which then closes what it built and answers Conflict.
    """

    def __init__(self, *, factory: dict | None = None, scheduler_address: str | None = None, events=None,
                 log: logging.Logger | None = None, connect_timeout_s: float = 10.0, warm_folder=None):
        """`warm_folder`: the server's root, whose warm cluster is the server's embedded cluster
        (without it, the embedded cluster is a LocalCluster inside this process)."""
        self.factory = factory or None
        self.scheduler_address = scheduler_address or None
        self.warm_folder = Path(warm_folder).resolve() if warm_folder is not None else None
        self.events = events  # an EventHub: woken when a cluster appears, told when it is closed
        self.log = log or logging.getLogger("nbscale.jupyter_ext")
        self.connect_timeout_s = connect_timeout_s
        self.current: DaskCluster | None = None
        self.pending: Attempt | None = None  # the start or connect under way
        self.error: str | None = None  # why the configured scheduler could not be reached, or the warm one ended
        self._configured: asyncio.Future | None = None  # the one connect to `scheduler_address`
        self._adopting: asyncio.Future | None = None  # the look for a live warm cluster under way
        self._detaching: set[asyncio.Future] = set()  # clients of warm clusters that ended, being closed

    async def model(self) -> dict | None:
        """The cluster's ClusterModel, None while there is none."""
        await self.ensure_configured()
        await self.adopt_warm()
        self._forget_ended_warm()
        return None if self.current is None else await self.current.model()

    async def sample(self) -> dict | None:
        """Like `model`, for the periodic samples: an unreachable scheduler is a NoCluster, not an error."""
        self._forget_ended_warm()
        if self.current is None:
            return None
        try:
            return await self.current.model()
        except ExtensionError as exc:
            return models.no_cluster(exc.message)

    async def scheduler_for_runs(self) -> str | None:
        """The scheduler address Dask runs started here use (None: they find the notebook folder's
        warm cluster, or start a cluster of their own)."""
        await self.ensure_configured()
        self._forget_ended_warm()
        return None if self.current is None else self.current.address

    async def start(self, n: int | None = None) -> dict:
        if self._embedded_is_warm():
            if n is not None and not 1 <= n <= MAX_WORKERS:
                raise InvalidInput(f"the number of workers must be 1 to {MAX_WORKERS}, not {n}")
            folder, timeout, shown = self.warm_folder, self.connect_timeout_s, ROOT_SHOWN
            cluster = await self._attach(f"starting the warm cluster of {shown}",
                                         lambda: DaskCluster.start_warm(folder, n, timeout, shown))
        else:
            cluster = await self._attach("starting a cluster", lambda: DaskCluster.start(self.factory, n))
        self.log.info("nbscale: %s", cluster.describe())
        self._wake()
        return await cluster.model()

    async def adopt_warm(self) -> None:
        """Attach to the live warm cluster that runs under the root use, when the server has no
        cluster (after a restart, or one `nbscale cluster start` began): the panel shows the cluster
        the runs share. Callers that come while a look is under way wait for it."""
        if self.current is not None or self.pending is not None or self.scheduler_address \
                or not self._embedded_is_warm():
            return
        if self._adopting is None:
            self._adopting = asyncio.ensure_future(self._adopt())
        await asyncio.shield(self._adopting)

    async def _adopt(self) -> None:
        from nbscale.kernels import warm_cluster

        folder, timeout = self.warm_folder, self.connect_timeout_s
        try:
            found = await asyncio.to_thread(warm_cluster.find, folder)
            # one of another Python environment is not the server's: its runs would not use it
            if found.live and warm_cluster.same_environment(found.cluster) and self.current is None \
                    and self.pending is None:
                shown = shown_folder(found.folder, folder)
                cluster = await self._attach(f"attaching to the warm cluster of {shown}",
                                             lambda: DaskCluster.attach_warm(found.cluster, timeout, shown=shown))
                self.log.info("nbscale: %s", cluster.describe())
                self._wake()
        except ExtensionError as exc:  # it stopped meanwhile, or a start came first
            self.log.info("nbscale: not attaching to the warm cluster of %s: %s", folder, exc.message)
        finally:
            self._adopting = None

    def _forget_ended_warm(self) -> None:
        """Forget the warm cluster when its process no longer serves: its idle timeout, `nbscale cluster
        stop` or another server's Close ended it (a pid check, not a request to a gone scheduler)."""
        cluster = self.current
        ended = cluster.warm_ended() if cluster is not None else None
        if not ended:
            return
        self.current, self.error = None, ended
        self.log.info("nbscale: %s", ended)
        detaching = asyncio.ensure_future(cluster.detach())  # not awaited: a sample does not wait on it
        self._detaching.add(detaching)
        detaching.add_done_callback(self._detaching.discard)
        if self.events is not None:
            self.events.publish({"type": "cluster", "payload": models.no_cluster(ended)})

    def _embedded_is_warm(self) -> bool:
        """Whether the embedded cluster is the root's warm cluster: not a factory's cluster, and a root
        where its files can be written (a read-only root gets a LocalCluster in this process, as a
        run there gets one of its own)."""
        import dask

        from nbscale.kernels.warm_cluster import state_folder

        if self.warm_folder is None or self.factory or dask.config.get("nbscale.cluster-factory", None):
            return False
        state = state_folder(self.warm_folder)
        return os.access(state if state.is_dir() else self.warm_folder, os.W_OK)

    async def connect(self, address: str) -> dict:
        cluster = await self._attach(f"connecting to {address}",
                                     lambda: DaskCluster.connect(address, self.connect_timeout_s))
        self.log.info("nbscale: connected to the Dask scheduler at %s", cluster.address)
        self._wake()
        return await cluster.model()

    async def scale(self, n: int, run_cluster: dict | None = None) -> dict:
        """Scale the cluster the server owns; `run_cluster` is the run's own cluster the panel shows
        while the server has none (it says why that one cannot be scaled)."""
        cluster = self._owned("scale", run_cluster)
        await cluster.scale(n)
        return await cluster.model()

    async def adapt(self, minimum: int, maximum: int, run_cluster: dict | None = None) -> dict:
        cluster = self._owned("adapt", run_cluster)
        await cluster.adapt(minimum, maximum)
        return await cluster.model()

    async def close(self, run_cluster: dict | None = None) -> dict:
        """Close the cluster the server owns, disconnect from a scheduler, or end the start or connect
        under way; NoCluster afterwards."""
        if self.current is None and self.pending is None:
            self._refuse_run_cluster("close", run_cluster)
            raise Conflict("no cluster to close")
        if self.current is not None:
            await self.current.refuse_close_while_running()
        cluster, self.current = self.current, None
        attempt, self.pending = self.pending, None
        if attempt is not None:
            self.log.info("nbscale: closed while %s; what it builds is closed when it is ready", attempt.doing)
        if cluster is not None:
            await cluster.close()
        if self.events is not None:
            self.events.publish({"type": "cluster", "payload": models.no_cluster()})
        return models.no_cluster()

    async def shutdown(self) -> None:
        """At server shutdown: close (or disconnect from) whatever cluster there is; the warm cluster
        goes on (runs under the root find it) until its idle timeout."""
        cluster, self.current, self.pending = self.current, None, None
        if cluster is not None:
            await (cluster.detach() if cluster.warm is not None else cluster.close())
        await asyncio.gather(*self._detaching, return_exceptions=True)

    async def ensure_configured(self) -> None:
        """Connect once to the configured `scheduler_address`, at first need; callers that come while
        that connect is under way wait for it (it ends within the connect timeout)."""
        if not self.scheduler_address or (self._configured is None and self.current is not None):
            return
        if self._configured is None:
            self._configured = asyncio.ensure_future(self._connect_configured())
        await asyncio.shield(self._configured)

    async def _connect_configured(self) -> None:
        address = self.scheduler_address
        try:
            await self._attach(f"connecting to {address}", lambda: DaskCluster.connect(address, self.connect_timeout_s))
        except ExtensionError as exc:
            self.error = exc.message
            self.log.warning("nbscale: %s", exc.message)

    async def _attach(self, doing: str, build) -> DaskCluster:
        """Build a cluster (`build()`, awaited with nothing locked) and make it the current one — unless
        a close came meanwhile: then what was built is closed again and the caller gets Conflict."""
        self._refuse_second()
        attempt = self.pending = Attempt(doing)
        try:
            cluster = await build()
        finally:
            closed_meanwhile = self.pending is not attempt
            if not closed_meanwhile:
                self.pending = None
        if closed_meanwhile:  # a warm cluster it only found running goes on for the runs that share it
            await (cluster.detach() if cluster.warm is not None and not cluster.started else cluster.close())
            raise Conflict(f"the cluster was closed while {doing}")
        self.current, self.error = cluster, None
        return cluster

    def _refuse_second(self) -> None:
        if self.current is not None:
            raise Conflict(f"a cluster is already running ({self.current.kind} at {self.current.address}); "
                           "close it first")
        if self.pending is not None:
            raise Conflict(f"already {self.pending.doing}; wait for it, or close it")

    def _owned(self, what: str, run_cluster: dict | None = None) -> DaskCluster:
        if self.current is None:
            self._refuse_run_cluster(what, run_cluster)
            raise Conflict(f"no cluster to {what}; start one first")
        if self.current.cluster is None and self.current.warm is None:
            raise Conflict(f"cannot {what} a cluster this server only connected to")
        return self.current

    @staticmethod
    def _refuse_run_cluster(what: str, run_cluster: dict | None) -> None:
        """The panel shows a running pipeline's own cluster while the server has none: it lives in the
        run's process and ends with the run, so the server cannot change it — say that, not "no cluster"."""
        if run_cluster is None or run_cluster.get("status") != "running":
            return
        n = len(run_cluster.get("workers") or [])
        shown = f"the {n} worker{'' if n == 1 else 's'} shown belong{'s' if n == 1 else ''} to"
        end = ("Cancel the run to end it now" if what == "close"
               else f"start a cluster to keep one for the next runs and {what} it")
        raise Conflict(f"{shown} the running pipeline's own cluster, which ends with the run and cannot be "
                       f"{DONE_TO[what]} from here; {end}")

    def _wake(self) -> None:
        if self.events is not None:
            self.events.wake()


class Attempt:
    """A start or connect under way: `ServerCluster.pending` until it ends or a close ends it."""

    def __init__(self, doing: str):
        self.doing = doing


class DaskCluster:
    """One live cluster: one the server owns (`cluster` set), a warm cluster (`warm`: its process
    scales it, on the server's requests), or one it only connected to."""

    def __init__(self, client, cluster=None, kind: str = "remote", warm=None, started: bool = True,
                 shown: str = ""):
        self.client, self.cluster, self.kind = client, cluster, kind
        self.warm = warm  # the WarmCluster (kernels/warm_cluster.py) it is
        self.shown = shown  # its folder as answers name it (`shown_folder`)
        self.started = started  # (a warm cluster) started by this server, not found running
        self.adaptive = None
        self.adaptive_bounds: dict | None = None

    def describe(self) -> str:
        if self.warm is None:
            return f"started a {self.kind} at {self.address}"
        return (f"{'started' if self.started else 'attached to'} the warm cluster of {self.warm.folder} at "
                f"{self.address} (process {self.warm.pid})")

    @property
    def address(self) -> str:
        return self.client.scheduler.address

    @classmethod
    async def start(cls, factory: dict | None, n: int | None) -> DaskCluster:
        import dask
        from distributed import Client

        factory = factory or dask.config.get("nbscale.cluster-factory", None)
        try:
            cluster = await (_from_factory(factory, n) if factory else _local_cluster(n))
            client = await Client(cluster, asynchronous=True, set_as_default=False)
        except Exception as exc:  # noqa: BLE001 - report why the cluster did not start
            raise ExtensionError(f"could not start the cluster: {type(exc).__name__}: {exc}") from None
        return cls(client, cluster, type(cluster).__name__)

    @classmethod
    async def start_warm(cls, folder: Path, n: int | None, timeout: float, shown: str) -> DaskCluster:
        """The live warm cluster that runs in `folder` use, started unless it runs already (then
        scaled to `n` when `n` is given), and a client of it."""
        import dask
        from dask.utils import parse_timedelta

        from nbscale.kernels import warm_cluster

        idle = dask.config.get("distributed.scheduler.idle-timeout", None)  # 0: never
        idle = warm_cluster.DEFAULT_IDLE_TIMEOUT if idle is None else idle
        try:
            found, started = await asyncio.to_thread(warm_cluster.start_or_find, folder, n,
                                                     parse_timedelta(idle, default="s"))
        except warm_cluster.WarmClusterError as exc:
            raise ExtensionError(f"could not start the cluster: {exc}") from None
        difference = warm_cluster.environment_difference(found)
        if difference and started:  # (this server's nbscale changed on disk since it started: the new one runs there)
            await asyncio.to_thread(warm_cluster.stop, found.folder, pid=found.pid)
            raise ExtensionError(f"the cluster started for {shown} was stopped: {difference}")
        if difference:
            raise ExtensionError(f"the warm cluster of {shown} is not this server's environment ({difference}): "
                                 f"runs started here would not use it; stop it ({stop_hint(shown)}) or start the "
                                 "server in that environment")
        cluster = await cls.attach_warm(found, timeout, started, shown)
        if not started and n is not None and found.workers != n:
            await cluster.scale(n)
        return cluster

    @classmethod
    async def attach_warm(cls, found, timeout: float, started: bool = False, shown: str = "") -> DaskCluster:
        """A client of the warm cluster `found` (a verified WarmCluster)."""
        from nbscale.kernels.warm_cluster import cluster_security

        connected = await cls.connect(found.address, timeout, security=cluster_security(found))
        return cls(connected.client, None, "LocalCluster", warm=found, started=started, shown=shown)

    def warm_ended(self) -> str | None:
        """Why the warm cluster this is no longer serves; None while it does (or it is no warm one)."""
        from nbscale.kernels import warm_cluster

        if self.warm is None or warm_cluster.is_serving(self.warm.pid, self.warm.folder):
            return None
        return (f"the warm cluster of {self.shown} at {self.address} has stopped (idle for its timeout, "
                "`nbscale cluster stop`, or closed from another server)")

    @classmethod
    async def connect(cls, address: str, timeout: float = 10.0, security=None) -> DaskCluster:
        """A client of the scheduler at `address` (over TLS with `security`); InvalidInput when it does
        not answer within `timeout` (distributed's own timeout does not bound a listener that accepts
        and never speaks)."""
        from distributed import Client

        client = None
        try:
            client = Client(address, asynchronous=True, timeout=f"{timeout}s", set_as_default=False,
                            security=security)
            await asyncio.wait_for(_started(client), timeout)
        except Exception as exc:  # noqa: BLE001 - unreachable, refused, silent, bad address
            if client is not None:
                await _close_quietly(client)
            reason = f"no answer within {timeout:g} s" if isinstance(exc, asyncio.TimeoutError) else type(exc).__name__
            raise InvalidInput(f"could not connect to the Dask scheduler at {address}: {reason}") from None
        return cls(client, None, "remote")

    async def model(self) -> dict:
        try:
            identity = await asyncio.wait_for(self.client.scheduler.identity(n_workers=-1), 10)
        except Exception as exc:  # noqa: BLE001
            raise ExtensionError(f"cannot reach the Dask scheduler at {self.address}: {type(exc).__name__}") from None
        try:
            states = await asyncio.wait_for(self.client.scheduler.get_task_prefix_states(), 10)
        except Exception:  # noqa: BLE001 - an older or restricted scheduler: no task counts
            states = {}
        if self.warm is not None:  # its process knows: the CLI or another server may have changed it
            self.adaptive_bounds = (await self._ask_warm(ADAPTIVE_HANDLER)).get("adaptive")
        dashboard = dashboard_model(self._dashboard_link(identity), identity)
        return models.cluster_model(identity, kind=self.kind, task_states=states, adaptive=self.adaptive_bounds,
                                    dashboard_link=dashboard["link"], dashboard=dashboard)

    def _dashboard_link(self, identity: dict) -> str | None:
        """The link Dask itself gives (its `distributed.dashboard.link` template filled in)."""
        if "dashboard" not in (identity.get("services") or {}):
            return None
        try:
            return self.client.dashboard_link
        except Exception:  # noqa: BLE001
            return None

    async def _ask_warm(self, handler: str, **kwargs) -> dict:
        """Ask the warm cluster's process (its scheduler's handler) to scale it, adapt it, or say how;
        a refusal is InvalidInput with its reason."""
        try:
            answer = await asyncio.wait_for(getattr(self.client.scheduler, handler)(**kwargs), 10)
        except Exception as exc:  # noqa: BLE001
            raise ExtensionError(f"cannot reach the Dask scheduler at {self.address}: {type(exc).__name__}") from None
        if not isinstance(answer, dict) or "error" in answer:
            raise InvalidInput(str(answer.get("error") if isinstance(answer, dict) else answer))
        return answer

    async def refuse_close_while_running(self) -> None:
        """Closing a warm cluster ends it for every run on it, also CLI runs the panel does not show:
        refused while steps of any run execute or wait there."""
        if self.warm is None:
            return
        from nbscale.kernels.warm_cluster import busy_runs

        try:
            runs = await asyncio.wait_for(self.client.run_on_scheduler(busy_runs), 10)
        except Exception:  # noqa: BLE001 - a scheduler that does not answer has no runs to spare
            return
        if runs:
            raise Conflict(f"steps of run{'s' if len(runs) > 1 else ''} {', '.join(runs)} run on the warm cluster "
                           f"of {self.shown} (started here or elsewhere, e.g. `nbscale run`): closing it would "
                           "fail them. Close it when they end (it stops by itself once idle for its timeout), or "
                           f"stop it anyway with {stop_hint(self.shown)}")

    async def scale(self, n: int) -> None:
        if self.warm is not None:
            await self._ask_warm(SCALE_HANDLER, n=n)
        else:
            self._stop_adaptive()
            await maybe_await(self.cluster.scale(n))
        # Give new workers a moment, so the model answered shows them (a slow factory may take longer).
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            identity = await self.client.scheduler.identity(n_workers=0)
            if identity.get("n_workers", n) == n:
                break
            await asyncio.sleep(0.1)

    async def adapt(self, minimum: int, maximum: int) -> None:
        if self.warm is not None:
            self.adaptive_bounds = (await self._ask_warm(ADAPT_HANDLER, minimum=minimum, maximum=maximum))["adaptive"]
            return
        self._stop_adaptive()
        self.adaptive = self.cluster.adapt(minimum=minimum, maximum=maximum)
        self.adaptive_bounds = {"minimum": minimum, "maximum": maximum}

    def _stop_adaptive(self) -> None:
        if self.adaptive is not None:
            self.adaptive.stop()
        self.adaptive = self.adaptive_bounds = None

    async def close(self) -> None:
        self._stop_adaptive()
        try:
            await _close_quietly(self.client, CLOSE_TIMEOUT_S)
        finally:
            if self.cluster is not None:
                await maybe_await(self.cluster.close())
            if self.warm is not None:  # the process this server attached to, never one started since
                from nbscale.kernels import warm_cluster

                await asyncio.to_thread(warm_cluster.stop, self.warm.folder, warm_cluster.STOP_TIMEOUT_S,
                                        self.warm.pid)

    async def detach(self) -> None:
        """Let go of the cluster without closing it (a warm cluster goes on for the runs that share it)."""
        await _close_quietly(self.client, CLOSE_TIMEOUT_S)


ROOT_SHOWN = "the server's root"
ABOVE_ROOT_SHOWN = "a folder above the server's root"


def shown_folder(folder, root) -> str:
    """A warm cluster's folder as answers name it: relative to the server's root, never absolute (the
    server log has the whole path)."""
    folder, root = Path(folder), Path(root)
    if folder == root:
        return ROOT_SHOWN
    return folder.relative_to(root).as_posix() if folder.is_relative_to(root) else ABOVE_ROOT_SHOWN


def stop_hint(shown: str) -> str:
    """The command that stops the warm cluster of a folder shown as `shown`."""
    if shown == ROOT_SHOWN:
        return "`nbscale cluster stop` in the server's root"
    if shown == ABOVE_ROOT_SHOWN:
        return "`nbscale cluster stop` in the folder above the server's root that holds it"
    return f"`nbscale cluster stop --dir {shown}` in the server's root"


def dashboard_model(link: str | None, identity: dict) -> dict:
    """Where the browser finds the Dask dashboard: `{link, proxy_path, note}`.

    `link` is Dask's own link; `proxy_path` (`proxy/<port>/status`, under the Jupyter server's base
    URL) is set when jupyter-server-proxy is installed and the dashboard is on the server's machine —
    the only way a browser on another machine (a remote server, JupyterHub) reaches it; `note` says
    why there is no link, or why it goes straight to the dashboard. A `link` that is a path (a
    `distributed.dashboard.link` such as `{JUPYTERHUB_SERVICE_PREFIX}proxy/{port}/status`, the
    dask-labextension convention) is already on the Jupyter server and is used as it is.
    """
    if importlib.util.find_spec("bokeh") is None:
        return {"link": None, "proxy_path": None, "note": "install bokeh for the dashboard (pip install bokeh)"}
    port = (identity.get("services") or {}).get("dashboard")
    if not link or not isinstance(port, int):
        return {"link": None, "proxy_path": None, "note": "the scheduler serves no dashboard"}
    if link.startswith("/") and not link.startswith("//"):
        return {"link": link, "proxy_path": None, "note": None}
    host = urlsplit(link).hostname or ""
    if not is_this_machine(host):
        return {"link": link, "proxy_path": None,
                "note": f"the dashboard is on {host}, not on the Jupyter server's machine: "
                        "the link goes there directly"}
    if importlib.util.find_spec("jupyter_server_proxy") is None:
        return {"link": link, "proxy_path": None,
                "note": "jupyter-server-proxy is not installed: the link goes straight to the dashboard's port, "
                        "which only a browser on the server's machine can open (pip install jupyter-server-proxy)"}
    return {"link": link, "proxy_path": f"proxy/{port}/status", "note": None}


def is_this_machine(host: str) -> bool:
    """Whether `host` names this machine (where jupyter-server-proxy's `proxy/<port>` reaches)."""
    try:
        if ipaddress.ip_address(host).is_loopback:
            return True
    except ValueError:
        pass
    return host in ("localhost", "0.0.0.0", "::") or host in own_names()


@functools.lru_cache(maxsize=1)
def own_names() -> frozenset:
    """This machine's host names and the addresses they resolve to (looked up once)."""
    names = {socket.gethostname(), socket.getfqdn()}
    try:
        names.update(socket.gethostbyname_ex(socket.gethostname())[2])
    except OSError:
        pass
    return frozenset(names)


async def _started(client):
    return await client


async def _close_quietly(client, timeout: float = 2.0) -> None:
    """Close a client; a scheduler that is gone or silent has nothing more to be told."""
    try:
        await asyncio.wait_for(client.close(), timeout)
    except Exception:  # noqa: BLE001 - timeout, broken connection
        pass


async def _from_factory(factory: dict, n: int | None):
    """The configured factory's cluster, built as dask-labextension builds one: asynchronous."""
    from nbscale.kernels.engines.dask import cluster_from_factory

    cluster = await maybe_await(cluster_from_factory(
        {**factory, "kwargs": {**factory.get("kwargs", {}), "asynchronous": True}}))
    if n is not None:
        cluster.scale(n)
    return cluster


async def _local_cluster(n: int | None):
    # Not the run engine's local_cluster: the server's cluster is asynchronous, on the server's loop.
    import dask
    from distributed import LocalCluster

    from nbscale.kernels.engines.dask import ALLOWED_FAILURES, quick_nannies
    from nbscale.kernels.engines.dask_collections import STEP_RESOURCE
    from nbscale.kernels.engines.dask_lifecycle import install_stranded_steps

    quick_nannies()
    # nbscale, not Dask, decides how often a step whose worker died runs again (its `retries:`)
    with dask.config.set({"distributed.scheduler.allowed-failures": ALLOWED_FAILURES}):
        cluster = await LocalCluster(n_workers=n if n is not None else (os.cpu_count() or 1), threads_per_worker=1,
                                     processes=True, asynchronous=True, dashboard_address="127.0.0.1:0",
                                     resources={STEP_RESOURCE: 1}, silence_logs=logging.ERROR)
    install_stranded_steps(cluster.scheduler)  # (the runs it is given install it too: `DaskEngine`)
    return cluster


async def maybe_await(value):
    if hasattr(value, "__await__"):
        return await value
    return value
