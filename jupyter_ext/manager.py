"""The server side of the panel, wired together: a plain async object with no web framework in it.

`handlers.py` maps HTTP onto its parts, which know nothing of HTTP either:
- `notebooks` (`notebooks.Notebooks`): notebook paths confined to the server's root, pipelines;
- `runs` (`runs.Runs`): history, starting runs in processes of their own, cancel, run events;
- `cluster` (`cluster.ServerCluster`): the server's one Dask cluster, where Dask runs go;
- `kfp` (`kfp.KfpService`): KFP v2 YAML and submitting to a KFP endpoint;
- `events` (`events.EventHub`): the websocket's fan-out, and the samples this class takes for it.
What needs two parts (a cluster model that falls back to a run's own cluster, the periodic sample,
following the run stores of watched notebooks, shutdown) lives here.
"""

from __future__ import annotations

import logging

from . import models
from .cluster import ServerCluster
from .events import EventHub
from .kfp import KfpService
from .notebooks import Notebooks
from .runs import Runs


class NbscaleManager:
    def __init__(self, root_dir, *, default_engine: str = "dask", scheduler_address: str | None = None,
                 cluster_factory: dict | None = None, kfp_host: str | None = None, kfp_hosts=(),
                 allow_hidden: bool = False,
                 log: logging.Logger | None = None, sample_interval_s: float = 0.5, idle_interval_s: float = 2.0,
                 follow_interval_s: float = 0.1,
                 cancel_grace_s: float = 15.0, start_timeout_s: float = 120.0, connect_timeout_s: float = 10.0):
        self.log = log or logging.getLogger("nbscale.jupyter_ext")
        self.notebooks = Notebooks(root_dir, allow_hidden)
        self.events = EventHub(self.sample, log=self.log, sample_interval_s=sample_interval_s,
                               idle_interval_s=idle_interval_s, follow=self.follow_stores,
                               follow_interval_s=follow_interval_s)
        # the embedded cluster is the root's warm cluster: CLI runs under the root find and share it
        self.cluster = ServerCluster(factory=cluster_factory, scheduler_address=scheduler_address,
                                     events=self.events, log=self.log, connect_timeout_s=connect_timeout_s,
                                     warm_folder=self.notebooks.root)
        self.runs = Runs(self.notebooks, self.events, default_engine=default_engine, cluster_factory=cluster_factory,
                         scheduler_for_runs=self.cluster.scheduler_for_runs, log=self.log,
                         cancel_grace_s=cancel_grace_s, start_timeout_s=start_timeout_s)
        self.kfp = KfpService(kfp_host, kfp_hosts, log=self.log, root=self.notebooks.root)

    async def cluster_model(self) -> dict:
        """The server's cluster (connecting to the configured scheduler at first need); while there is
        none, the cluster a running Dask run started for itself; else NoCluster."""
        return (await self.cluster.model() or self.runs.cluster_sample()
                or models.no_cluster(self.cluster.error))

    async def cluster_sample(self) -> dict:
        """Like `cluster_model`, for samples: an unreachable scheduler is a NoCluster with its error."""
        return (await self.cluster.sample() or self.runs.cluster_sample()
                or models.no_cluster(self.cluster.error))

    async def follow_stores(self) -> bool:
        """Publish what other processes' runs wrote to the run stores of the watched notebooks."""
        return await self.runs.publish_store_events(self.events.watched())

    async def sample(self) -> bool:
        """One sample for the event subscribers: a cluster sample while a run is active or there is a
        cluster. True while a run is active (started here, or another process's lately seen)."""
        active = bool(self.runs.active()) or self.runs.foreign_active()
        if active or self.cluster.current is not None:
            self.events.publish({"type": "cluster", "payload": await self.cluster_sample()})
        return active

    async def close(self) -> None:
        """Stop sampling, cancel the runs started here, close the server's cluster (disconnect from a
        remote one)."""
        self.events.close()
        await self.runs.close()
        await self.cluster.shutdown()
