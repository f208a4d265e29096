"""Kubeflow Pipelines from the panel: the notebook's KFP v2 YAML, and submitting it to a KFP endpoint.

Both use the notebook's KFP options (pyproject.toml `[tool.nbscale.kfp]`, notebook metadata
`nbscale.kfp`) through the compiler's KFP target, and submitting goes through
`nbscale.kernels.kfp_submit`, as `nbscale kfp submit` does. The host is `c.Nbscale.kfp_host`, else
the project's; credentials come only from the server's environment and never appear in answers
or logs (`redact_url`).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from nbscale.compiler.errors import NbscaleCompileError
from nbscale.compiler.targets import kfp  # the kfp SDK itself is imported only when YAML is written

from .errors import InvalidInput, Unavailable, UpstreamError
from .notebooks import compile_without_errors

CREDENTIAL_ENV = {"token": "NBSCALE_KFP_TOKEN", "cookies": "NBSCALE_KFP_COOKIES",
                  "namespace": "NBSCALE_KFP_NAMESPACE"}


class KfpService:
    def __init__(self, host: str | None = None):
        self.host = host or None

    async def yaml(self, notebook: Path) -> tuple[str, str]:
        """(file name, YAML text) of the notebook's KFP v2 pipeline."""
        target = kfp
        pipeline = await asyncio.to_thread(compile_without_errors, notebook, "exporting")
        text = await asyncio.to_thread(_yaml_text, target, notebook, pipeline)
        return f"{pipeline.name}.yaml", text

    async def submit(self, notebook: Path, parameters: dict, experiment: str | None = None,
                     run_name: str | None = None) -> dict:
        """Compile and submit; `{run_url, run_id, pipeline, version_name, experiment}`."""
        target = kfp
        pipeline = await asyncio.to_thread(compile_without_errors, notebook, "submitting")
        overrides = {k: v for k, v in (("host", self.host), ("experiment", experiment)) if v}
        return await asyncio.to_thread(_submit, target, notebook, pipeline, overrides, parameters, run_name)


def _options(target, notebook: Path, overrides: dict | None = None):
    try:
        return target.load_options(notebook, overrides)
    except NbscaleCompileError as exc:  # OptionsError: a mistyped project default or notebook metadata
        raise InvalidInput(str(exc)) from None


def _yaml_text(target, notebook: Path, pipeline) -> str:
    options = _options(target, notebook)
    with tempfile.TemporaryDirectory(prefix="nbscale-kfp-") as tmp:
        path = Path(tmp) / "pipeline.yaml"
        try:
            target.compile_pipeline(pipeline, options, path)
        except ImportError as exc:
            raise Unavailable(f"KFP export needs the kfp package (pip install 'nbscale[kfp]'): {exc}") from None
        return path.read_text(encoding="utf-8")


def _submit(target, notebook: Path, pipeline, overrides: dict, parameters: dict, run_name) -> dict:
    from nbscale.kernels.errors import ParameterError
    from nbscale.kernels.kfp_submit import EndpointError, submit_pipeline

    options = _options(target, notebook, overrides)
    if not options.host:
        raise InvalidInput("no KFP host: set c.Nbscale.kfp_host, or host in pyproject.toml [tool.nbscale.kfp]")
    credentials = {name: os.environ.get(variable) for name, variable in CREDENTIAL_ENV.items()}
    try:
        result = submit_pipeline(pipeline, options, parameters, run_name=run_name, **credentials)
    except ParameterError as exc:
        raise InvalidInput(str(exc)) from None
    except EndpointError as exc:
        raise UpstreamError(f"{redact_url(options.host)}: {exc}") from None
    except ImportError as exc:
        raise Unavailable(f"KFP submit needs the kfp package (pip install 'nbscale[kfp]'): {exc}") from None
    return {"run_url": result["url"], "run_id": result["run_id"], "pipeline": result["pipeline"],
            "version_name": result["version_name"], "experiment": options.experiment}


def redact_url(url: str | None) -> str:
    """A URL without user info, query or fragment (which may carry credentials), for logs."""
    if not url:
        return ""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))
