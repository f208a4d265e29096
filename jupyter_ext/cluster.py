"""The server's Dask cluster: at most one per server, started, connected to, scaled, adapted, closed.

`ServerCluster` is what the panel's Cluster section drives: a cluster the server owns (the
configured factory's, or an embedded LocalCluster) or a scheduler it only connected to (from the
panel, or `c.Nbscale.scheduler_address` at first need). Dask runs started from the panel run on
it. `DaskCluster` wraps one live cluster and its asynchronous client, and answers ClusterModels.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import time

from . import models
from .errors import Conflict, ExtensionError, InvalidInput


class ServerCluster:
    def __init__(self, *, factory: dict | None = None, scheduler_address: str | None = None, events=None,
                 log: logging.Logger | None = None, connect_timeout_s: float = 10.0):
        self.factory = factory or None
        self.scheduler_address = scheduler_address or None
        self.events = events  # an EventHub: woken when a cluster appears, told when it is closed
        self.log = log or logging.getLogger("nbscale.jupyter_ext")
        self.connect_timeout_s = connect_timeout_s
        self.current: DaskCluster | None = None
        self.error: str | None = None  # why the configured scheduler could not be reached
        self._configured_tried = False
        self._lock: asyncio.Lock | None = None

    async def model(self) -> dict | None:
        """The cluster's ClusterModel, None while there is none."""
        await self.ensure_configured()
        return None if self.current is None else await self.current.model()

    async def sample(self) -> dict | None:
        """Like `model`, for the periodic samples: an unreachable scheduler is a NoCluster, not an error."""
        if self.current is None:
            return None
        try:
            return await self.current.model()
        except ExtensionError as exc:
            return models.no_cluster(exc.message)

    async def scheduler_for_runs(self) -> str | None:
        """The scheduler address Dask runs started here use (None: they start a cluster of their own)."""
        await self.ensure_configured()
        return None if self.current is None else self.current.address

    async def start(self, n: int | None = None) -> dict:
        async with self._locked():
            self._refuse_second()
            self.current = await DaskCluster.start(self.factory, n)
            self.error = None
            self.log.info("nbscale: started a %s at %s", self.current.kind, self.current.address)
        self._wake()
        return await self.current.model()

    async def connect(self, address: str) -> dict:
        async with self._locked():
            self._refuse_second()
            self.current = await DaskCluster.connect(address, self.connect_timeout_s)
            self.error = None
            self.log.info("nbscale: connected to the Dask scheduler at %s", self.current.address)
        self._wake()
        return await self.current.model()

    async def scale(self, n: int) -> dict:
        cluster = self._owned("scale")
        await cluster.scale(n)
        return await cluster.model()

    async def adapt(self, minimum: int, maximum: int) -> dict:
        cluster = self._owned("adapt")
        cluster.adapt(minimum, maximum)
        return await cluster.model()

    async def close(self) -> dict:
        """Close the cluster the server owns, or disconnect from a scheduler; NoCluster afterwards."""
        async with self._locked():
            cluster, self.current = self.current, None
            if cluster is None:
                raise Conflict("no cluster to close")
            await cluster.close()
        if self.events is not None:
            self.events.publish({"type": "cluster", "payload": models.no_cluster()})
        return models.no_cluster()

    async def shutdown(self) -> None:
        """At server shutdown: close (or disconnect from) whatever cluster there is."""
        cluster, self.current = self.current, None
        if cluster is not None:
            await cluster.close()

    async def ensure_configured(self) -> None:
        """Connect once to the configured `scheduler_address`, at first need."""
        if not self.scheduler_address or self._configured_tried or self.current is not None:
            return
        async with self._locked():
            if self._configured_tried or self.current is not None:
                return
            self._configured_tried = True
            try:
                self.current = await DaskCluster.connect(self.scheduler_address, self.connect_timeout_s)
            except ExtensionError as exc:
                self.error = exc.message
                self.log.warning("nbscale: %s", exc.message)

    def _refuse_second(self) -> None:
        if self.current is not None:
            raise Conflict(f"a cluster is already running ({self.current.kind} at {self.current.address}); "
                           "close it first")

    def _owned(self, what: str) -> DaskCluster:
        if self.current is None:
            raise Conflict(f"no cluster to {what}; start one first")
        if self.current.cluster is None:
            raise Conflict(f"cannot {what} a cluster this server only connected to")
        return self.current

    def _locked(self) -> asyncio.Lock:
        if self._lock is None:  # made on first use, inside the server's event loop
            self._lock = asyncio.Lock()
        return self._lock

    def _wake(self) -> None:
        if self.events is not None:
            self.events.wake()


class DaskCluster:
    """One live cluster: one the server owns (`cluster` set) or one it only connected to."""

    def __init__(self, client, cluster=None, kind: str = "remote"):
        self.client, self.cluster, self.kind = client, cluster, kind
        self.adaptive = None
        self.adaptive_bounds: dict | None = None

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
    async def connect(cls, address: str, timeout: float = 10.0) -> DaskCluster:
        from distributed import Client

        try:
            client = await Client(address, asynchronous=True, timeout=f"{timeout}s", set_as_default=False)
        except Exception as exc:  # noqa: BLE001 - unreachable, refused, bad address
            raise InvalidInput(f"could not connect to the Dask scheduler at {address}: {type(exc).__name__}") from None
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
        return models.cluster_model(identity, kind=self.kind, task_states=states, adaptive=self.adaptive_bounds,
                                    dashboard_link=self._dashboard_link(identity))

    def _dashboard_link(self, identity: dict) -> str | None:
        if importlib.util.find_spec("bokeh") is None or "dashboard" not in (identity.get("services") or {}):
            return None
        try:
            return self.client.dashboard_link
        except Exception:  # noqa: BLE001
            return None

    async def scale(self, n: int) -> None:
        self._stop_adaptive()
        await maybe_await(self.cluster.scale(n))
        # Give new workers a moment, so the model answered shows them (a slow factory may take longer).
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            identity = await self.client.scheduler.identity(n_workers=0)
            if identity.get("n_workers", n) == n:
                break
            await asyncio.sleep(0.1)

    def adapt(self, minimum: int, maximum: int) -> None:
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
            await self.client.close()
        finally:
            if self.cluster is not None:
                await maybe_await(self.cluster.close())


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
    from distributed import LocalCluster

    return await LocalCluster(n_workers=n if n is not None else (os.cpu_count() or 1), threads_per_worker=1,
                              processes=True, asynchronous=True, dashboard_address="127.0.0.1:0",
                              silence_logs=logging.ERROR)


async def maybe_await(value):
    if hasattr(value, "__await__"):
        return await value
    return value
