"""Kubeflow Pipelines from the panel: the notebook's KFP v2 YAML, and submitting it to a KFP endpoint.

Both use the notebook's KFP options (pyproject.toml `[tool.nbscale.kfp]`, notebook metadata
`nbscale.kfp`) through the compiler's KFP target, and submitting goes through
`nbscale.kernels.kfp_submit`, as `nbscale submit` does — with one difference: the server sends
its credentials (from its own environment) only to endpoints its configuration names
(`c.Nbscale.kfp_host`, the default, and `c.Nbscale.kfp_hosts`). A notebook may name an
experiment, never a host: a host in its metadata or project is ignored, with a warning in the
answer. What an endpoint answers is not passed on to the browser (that would let a request read
internal URLs): the answer says which endpoint failed and how; the detail goes to the server log.
Credentials never appear in answers or logs: URLs are logged through `redact_url`, and what an
endpoint answered reaches the log only as `EndpointError` made it, masked
(`nbscale.kernels.masking.masked`: an auth proxy may quote the credential it refused).
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from nbscale.compiler.errors import NbscaleCompileError
from nbscale.compiler.targets import kfp  # the kfp SDK itself is imported only when YAML is written
from nbscale.kernels.steplineage import public_url

from .errors import Conflict, InvalidInput, NotAllowed, Unavailable, UpstreamError
from .notebooks import compile_without_errors

CREDENTIAL_ENV = {"token": "NBSCALE_KFP_TOKEN", "cookies": "NBSCALE_KFP_COOKIES",
                  "namespace": "NBSCALE_KFP_NAMESPACE"}
NO_ENDPOINT = "no KFP endpoint configured for this server (c.Nbscale.kfp_host)"


class KfpService:
    """KFP YAML of a notebook, and submitting it to one of the server's configured endpoints."""

    def __init__(self, host: str | None = None, hosts=(), log: logging.Logger | None = None, root=None):
        self.host = host or None  # the default endpoint
        self.hosts = [h for h in hosts if h]  # other endpoints a request may name
        self.log = log or logging.getLogger("nbscale.jupyter_ext")
        # the server's root: a pyproject.toml above it is not the server's to read, nor its path to show
        self.root = root

    async def yaml(self, notebook: Path) -> tuple[str, str]:
        """(file name, YAML text) of the notebook's KFP v2 pipeline."""
        target = kfp
        pipeline = await asyncio.to_thread(compile_without_errors, notebook, "exporting")
        text = await asyncio.to_thread(_yaml_text, target, notebook, pipeline, self.root)
        return f"{pipeline.name}.yaml", text

    async def submit(self, notebook: Path, parameters: dict, experiment: str | None = None,
                     run_name: str | None = None, host: str | None = None) -> dict:
        """Compile and submit to `host` (a configured endpoint, by URL or host name; default
        `c.Nbscale.kfp_host`): `{run_url, run_id, pipeline, version_name, experiment, warnings}`."""
        endpoint = self.endpoint(host)
        target = kfp
        pipeline = await asyncio.to_thread(compile_without_errors, notebook, "submitting")
        return await asyncio.to_thread(self._submit, target, notebook, pipeline, endpoint, experiment,
                                       parameters, run_name)

    def endpoint(self, requested: str | None = None) -> str:
        """The configured endpoint a submit goes to; Conflict when there is none, NotAllowed when the
        request names one the configuration does not."""
        if not self.host and not self.hosts:
            raise Conflict(NO_ENDPOINT)
        if not requested:
            if not self.host:
                raise Conflict(f"{NO_ENDPOINT}; name one of c.Nbscale.kfp_hosts")
            return self.host
        found = next((h for h in (self.host, *self.hosts) if h and _names(requested, h)), None)
        if found is None:
            raise NotAllowed("that KFP endpoint is not one this server submits to "
                             "(c.Nbscale.kfp_host, c.Nbscale.kfp_hosts)")
        return found

    def _submit(self, target, notebook: Path, pipeline, endpoint: str, experiment, parameters: dict,
                run_name) -> dict:
        from nbscale.kernels.errors import ParameterError
        from nbscale.kernels.kfp_submit import EndpointError, submit_pipeline

        options = _options(target, notebook, {"experiment": experiment}, self.root)
        warnings = self._ignored_host(notebook, options)
        options.host = endpoint
        credentials = {name: os.environ.get(variable) for name, variable in CREDENTIAL_ENV.items()}
        try:
            result = submit_pipeline(pipeline, options, parameters, run_name=run_name, **credentials)
        except (ParameterError, NbscaleCompileError) as exc:
            raise InvalidInput(str(exc)) from None
        except EndpointError as exc:
            self.log.warning("nbscale: submitting %s to KFP at %s failed: %s", notebook.name,
                             redact_url(endpoint), exc)
            raise UpstreamError(upstream_message(endpoint, exc)) from None
        except ImportError as exc:
            raise Unavailable(f"KFP submit needs the kfp package (pip install 'nbscale[kfp]'): {exc}") from None
        return {"run_url": result["url"], "run_id": result["run_id"], "pipeline": result["pipeline"],
                "version_name": result["version_name"], "experiment": options.experiment, "warnings": warnings}

    def _ignored_host(self, notebook: Path, options) -> list[str]:
        """A host the notebook's metadata or project names is not used here: say so."""
        origin = options.origin.get("host")
        if not options.host or origin is None:
            return []
        self.log.warning("nbscale: ignored the KFP host %s set in %s (%s)", redact_url(options.host), origin,
                         notebook.name)
        where = "the notebook's metadata (nbscale.kfp.host)" if "metadata" in origin \
            else "pyproject.toml [tool.nbscale.kfp] host"
        return [f"ignored the KFP host set in {where}: this server submits only to the endpoints its "
                "configuration names (c.Nbscale.kfp_host, c.Nbscale.kfp_hosts)"]


def upstream_message(endpoint: str, exc) -> str:
    """What the browser learns of a failed submit: the endpoint (redacted) and the status, not the
    endpoint's answer."""
    where = redact_url(endpoint)
    if exc.status is not None:
        return f"KFP at {where} answered {exc.status}"
    if exc.unreachable:
        return f"cannot reach the KFP API at {where}"
    return f"submitting to KFP at {where} failed; the server log has the reason"


def _names(requested: str, configured: str) -> bool:
    """Does a request's `requested` name the configured endpoint: its URL (credentials left out,
    trailing slash ignored), or its host[:port]?"""
    wanted = requested.strip().rstrip("/")
    return wanted in (configured.rstrip("/"), redact_url(configured).rstrip("/"), _host_port(configured))


def _options(target, notebook: Path, overrides: dict | None = None, root=None):
    try:
        return target.load_options(notebook, overrides, boundary=root)
    except NbscaleCompileError as exc:  # OptionsError: a mistyped project default or notebook metadata
        raise InvalidInput(str(exc)) from None


def _yaml_text(target, notebook: Path, pipeline, root=None) -> str:
    options = _options(target, notebook, root=root)
    with tempfile.TemporaryDirectory(prefix="nbscale-kfp-") as tmp:
        path = Path(tmp) / "pipeline.yaml"
        try:
            target.compile_pipeline(pipeline, options, path)
        except NbscaleCompileError as exc:  # what KFP cannot take (a parameter name, a cell Python refuses)
            raise InvalidInput(str(exc)) from None
        except ImportError as exc:
            raise Unavailable(f"KFP export needs the kfp package (pip install 'nbscale[kfp]'): {exc}") from None
        return path.read_text(encoding="utf-8")


def redact_url(url: str | None) -> str:
    """A URL without user info, query or fragment (which may carry credentials), for logs."""
    return public_url(url) if url else ""


def _host_port(url: str) -> str:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:  # a malformed port: leave it out
        port = None
    return f"{parts.hostname or ''}:{port}" if port else (parts.hostname or "")
