"""nbscale's JupyterLab server extension: the `/nbscale/api/…` endpoints behind the side panel.

Enabled by `jupyter-config/jupyter_server_config.d/nbscale.json`; configured through traitlets,
e.g. in `jupyter_server_config.py`:

    c.Nbscale.default_engine = "dask"                  # engine of runs started from the panel
    c.Nbscale.scheduler_address = "tcp://host:8786"    # connect to this Dask scheduler at first need
    c.Nbscale.cluster_factory = {"module": "dask_jobqueue", "class": "SLURMCluster", "kwargs": {}}
    c.Nbscale.kfp_host = "https://kfp.example.com"     # where Submit to KFP goes (with the server's
    c.Nbscale.kfp_hosts = ["https://kfp-staging.example.com"]  # credentials); others a request may name

The heavy parts (manager, handlers, Dask) are imported when the server loads the extension; see
`manager.py` for how the server side is put together. The server runs the extension as
`extension.NbscaleExtension`, which loads it (`load_server_extension`) and stops it at shutdown
(`unload_server_extension`).
"""

from __future__ import annotations

from traitlets import Dict, Float, List, Unicode, default
from traitlets.config import Configurable


class Nbscale(Configurable):
    """Server-side settings of nbscale's JupyterLab panel."""

    default_engine = Unicode("dask", help="Engine of runs started from the panel when the request names none "
                                          "(dask, local, papermill or a plug-in engine).").tag(config=True)
    scheduler_address = Unicode(None, allow_none=True,
                                help="Address of a Dask scheduler the server connects to at first need; runs "
                                     "started from the panel use it. Default: no cluster until one is "
                                     "started from the panel.").tag(config=True)
    cluster_factory = Dict(None, allow_none=True,
                           help="The cluster the panel's Start button builds: {module, class, args, kwargs}, "
                                "called with asynchronous=True (as dask-labextension's labextension.factory). "
                                "Default: Dask config `nbscale.cluster-factory`, else a LocalCluster. Runs that "
                                "start their own cluster use it too.").tag(config=True)
    kfp_host = Unicode(None, allow_none=True,
                       help="Kubeflow Pipelines endpoint Submit to KFP sends to, with the credentials of the "
                            "server's environment (NBSCALE_KFP_TOKEN, NBSCALE_KFP_COOKIES). The only source of "
                            "the endpoint: a host in a notebook's metadata or pyproject.toml is ignored. "
                            "Logged without credentials.").tag(config=True)
    kfp_hosts = List(Unicode(), help="Other KFP endpoints a submit request may name (by URL or host[:port]); "
                                     "kfp_host is always allowed.").tag(config=True)
    cancel_grace = Float(15.0, help="Seconds a cancelled run may take to stop before its process is "
                                    "killed.").tag(config=True)

    @default("cluster_factory")
    def _default_factory(self):
        return None


NbscaleConfig = Nbscale  # alias; configure it as c.Nbscale.*


def _jupyter_server_extension_points():
    from .extension import NbscaleExtension

    return [{"module": "nbscale.jupyter_ext", "app": NbscaleExtension}]


def load_server_extension(serverapp):
    from .handlers import handlers
    from .kfp import redact_url
    from .manager import NbscaleManager

    config = Nbscale(parent=serverapp)
    contents = getattr(serverapp, "contents_manager", None)
    root_dir = getattr(contents, "root_dir", None) or serverapp.root_dir
    manager = NbscaleManager(
        root_dir, default_engine=config.default_engine, scheduler_address=config.scheduler_address,
        cluster_factory=config.cluster_factory, kfp_host=config.kfp_host, kfp_hosts=config.kfp_hosts,
        allow_hidden=bool(getattr(contents, "allow_hidden", False)), log=serverapp.log,
        cancel_grace_s=config.cancel_grace)
    web_app = serverapp.web_app
    web_app.settings["nbscale_manager"] = manager
    web_app.add_handlers(".*$", handlers(web_app.settings["base_url"]))
    serverapp.log.info("nbscale | server API at %snbscale/api (default engine %s%s%s)",
                       web_app.settings["base_url"], config.default_engine,
                       f", scheduler {config.scheduler_address}" if config.scheduler_address else "",
                       _kfp_note(config, redact_url))


async def unload_server_extension(serverapp):
    """At server shutdown (through `NbscaleExtension.stop_extension`): cancel the runs started here,
    kill those still running after `cancel_grace`, close the server's cluster."""
    manager = serverapp.web_app.settings.get("nbscale_manager")
    if manager is not None:
        await manager.close()


def _kfp_note(config: Nbscale, redact_url) -> str:
    hosts = [redact_url(h) for h in (config.kfp_host, *config.kfp_hosts) if h]
    return f", KFP {', '.join(hosts)}" if hosts else ""
