"""The embedded cluster's workers as they start: a process group of their own."""

from __future__ import annotations

import os

from distributed import Client

from nbscale.kernels.engines.dask import local_cluster


def test_the_embedded_clusters_workers_are_out_of_the_runs_process_group():
    """A terminal's Ctrl-C reached the workers and every process of their steps."""
    cluster = local_cluster(1, http=False)
    try:
        with Client(cluster, set_as_default=False) as client:
            (group,) = client.run(os.getpgid, 0).values()
            (pid,) = client.run(os.getpid).values()
        assert group == pid != os.getpgrp()
    finally:
        cluster.close()
