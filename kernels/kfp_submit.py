"""Submitting a compiled pipeline to a Kubeflow Pipelines endpoint, for the CLI and the server.

Credentials (a bearer token, session cookies) go only into the HTTP requests to the given host —
never into the YAML, a log or a return value, and never to another host: the health check does not
follow redirects (kfp's own client drops them on a redirect to another host). An endpoint, or the
auth proxy in front of it, may quote the credential it refused (`401 invalid credentials: Bearer …`):
an `EndpointError` is made of its answer only after `masked` has taken the credentials out.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from pathlib import Path

from .errors import NbscaleRuntimeError
from .masking import masked


def submit_pipeline(pipeline, options, parameters: dict | None = None, *, run_name=None, token=None, cookies=None,
                    namespace=None) -> dict:
    """Compile `pipeline` with KFP `options` (compiler.targets.kfp.load_options), upload it (or a
    new version), and start a run with `parameters` (typed by the notebook; ParameterError when
    not). Returns {pipeline, version_name, uploaded, run_id, url, …}; EndpointError on failure."""
    from nbscale.compiler.targets.kfp import generate, kfp_argument, write_yaml
    from nbscale.kernels import params

    if not options.host:
        raise EndpointError("no KFP endpoint configured (host)")
    module = generate(pipeline, options)
    given = dict(parameters or {})
    missing = [name for name in module.withheld if name not in given]
    if missing:  # (else KFP refuses the run for a required input, after the upload)
        listed = ", ".join(f"-p {name}=..." for name in missing)
        raise params.ParameterError(f"parameter(s) {', '.join(missing)} may be credentials: their defaults are not "
                                    f"sent to KFP, so give their values: {listed}")
    values = params.resolve(pipeline, given)
    for name in given:
        _exact_in_kfp(name, values[name])
    arguments = {name: kfp_argument(module.parameter_types[name], values[name]) for name in given}
    name = options.pipeline_name or pipeline.name
    with tempfile.TemporaryDirectory(prefix="nbscale-kfp-") as tmp:
        yaml_path = write_yaml(module, Path(tmp) / "pipeline.yaml")
        endpoint = KfpEndpoint(options.host, token=token, cookies=cookies, namespace=namespace)
        endpoint.check()
        return endpoint.submit(yaml_path, name, options.experiment,
                               run_name or f"{name} {time.strftime('%Y-%m-%d %H:%M:%S')}", arguments,
                               description=f"{pipeline.notebook}, compiled by nbscale")


KFP_EXACT_INT = 2 ** 53  # KFP's API carries numbers as doubles: integers beyond this lose digits


def _exact_in_kfp(name: str, value) -> None:
    from nbscale.kernels.errors import ParameterError

    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > KFP_EXACT_INT:
        raise ParameterError(f"parameter '{name}' is {value}: KFP carries numbers as doubles, exact only up to "
                             f"±2**53; pass it as text")


class EndpointError(NbscaleRuntimeError):
    """The KFP endpoint could not be reached or refused a call: one line, for the user.

    `status` is the HTTP status the endpoint answered (None if none); `unreachable` says no answer
    came at all. The message may quote the endpoint's answer: the server logs it, and tells the
    browser only the status. It is `masked` first, of the `sent` credentials too, so no log or
    terminal that shows it holds one."""

    def __init__(self, message: str, status: int | None = None, unreachable: bool = False, *, sent=()):
        super().__init__(masked(message, sent)[:MESSAGE_MAX])
        self.status, self.unreachable = status, unreachable


MESSAGE_MAX = 400  # cut after masking: a cut made before could keep the start of a secret


class KfpEndpoint:
    """kfp.Client, plus a quick health check that fails in one line instead of kfp's retries."""

    HEALTHZ = "/apis/v2beta1/healthz"

    def __init__(self, host: str, *, token=None, cookies=None, namespace=None):
        self.host = host.rstrip("/")
        self.token, self.cookies, self.namespace = token, cookies, namespace
        self._check_host()

    def _check_host(self) -> None:
        """An http(s) URL of a host, without a user or password: urllib sent `user:pw@host` to the
        name resolver as a host name, and a malformed URL failed with a traceback."""
        try:
            parts = urllib.parse.urlsplit(self.host)
            hostname = parts.hostname
        except ValueError as exc:
            raise EndpointError(f"the host is not a URL ({exc})", sent=[self.host]) from None
        if parts.scheme not in ("http", "https") or not hostname:
            raise EndpointError("the host is not an http(s) URL of a host (e.g. https://kfp.example.com)",
                                sent=self.credentials())
        if parts.username or parts.password:
            raise EndpointError("a user name or password in the host URL is not sent anywhere: give a token "
                                "(--token, NBSCALE_KFP_TOKEN) or cookies (--cookies)", sent=self.credentials())

    def _headers(self) -> dict:
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if self.cookies:
            headers["Cookie"] = self.cookies
        return headers

    def credentials(self) -> list[str]:
        """What this endpoint is sent that no message may show: the token (all the Authorization
        header holds beyond "Bearer"), the cookies and each cookie's value, user info in the host URL."""
        sent = [self.token, self.cookies]
        for cookie in (self.cookies or "").split(";"):
            sent += [cookie.strip(), cookie.partition("=")[2].strip()]
        parts = urllib.parse.urlsplit(self.host)
        sent += [parts.password, parts.netloc.rpartition("@")[0]]
        return [value for value in sent if value]

    def check(self) -> None:
        request = urllib.request.Request(self.host + self.HEALTHZ, headers=self._headers())
        opener = urllib.request.build_opener(NoRedirect)  # credentials stay with this host
        try:
            with opener.open(request, timeout=15) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            moved = " (a redirect: give the URL it points to as the host)" if 300 <= exc.code < 400 else ""
            raise EndpointError(f"health check answered {exc.code} {exc.reason}{moved}{_body_message(exc.read())}",
                                status=exc.code, sent=self.credentials()) from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise EndpointError(f"cannot reach the KFP API ({reason})", unreachable=True,
                                sent=self.credentials()) from None

    def submit(self, yaml_path: Path, name: str, experiment: str, run_name: str, arguments: dict, *,
               description: str) -> dict:
        try:
            with _quiet():
                return self._submit(yaml_path, name, experiment, run_name, arguments, description)
        except EndpointError as exc:  # (its message may quote an answer: masked again, of these credentials)
            raise EndpointError(str(exc), exc.status, exc.unreachable, sent=self.credentials()) from None
        except Exception as exc:  # noqa: BLE001 - whatever kfp raises becomes one line
            raise EndpointError(_describe(exc), status=_status(exc), sent=self.credentials()) from None

    def _submit(self, yaml_path, name, experiment, run_name, arguments, description) -> dict:
        import kfp

        client = kfp.Client(host=self.host, existing_token=self.token, cookies=self.cookies,
                            namespace=self.namespace or "kubeflow")
        digest = hashlib.sha256(yaml_path.read_bytes()).hexdigest()
        version_name = f"{name} {digest[:12]}"  # same YAML, same version: submitting again re-uses it
        pipeline_id = client.get_pipeline_id(name)
        uploaded = True
        if pipeline_id is None:
            pipeline = client.upload_pipeline(str(yaml_path), pipeline_name=name, description=description,
                                              namespace=self.namespace)
            pipeline_id = pipeline.pipeline_id
            version_id, version_name = _latest_version(client, pipeline_id)
        else:
            version_id = _version_named(client, pipeline_id, version_name)
            if version_id is None:
                version = client.upload_pipeline_version(str(yaml_path), version_name, pipeline_id=pipeline_id,
                                                         description=description)
                version_id = version.pipeline_version_id
            else:
                uploaded = False
        exp = client.create_experiment(experiment, namespace=self.namespace)
        run = client.run_pipeline(exp.experiment_id, run_name, params=arguments, pipeline_id=pipeline_id,
                                  version_id=version_id)
        ui = os.environ.get("KF_PIPELINES_UI_ENDPOINT") or self.host
        return {"pipeline": name, "pipeline_id": pipeline_id, "version_id": version_id,
                "version_name": version_name, "uploaded": uploaded, "experiment_id": exp.experiment_id,
                "run_id": run.run_id, "url": f"{ui.rstrip('/')}/#/runs/details/{run.run_id}"}


class NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is answered as the HTTPError it is, not followed with the credentials."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def _filter(name: str) -> str:
    return json.dumps({"predicates": [{"operation": "EQUALS", "key": "display_name", "stringValue": name}]})


def _version_named(client, pipeline_id: str, name: str) -> str | None:
    response = client.list_pipeline_versions(pipeline_id, page_size=1, filter=_filter(name))
    versions = response.pipeline_versions or []
    return versions[0].pipeline_version_id if versions else None


def _latest_version(client, pipeline_id: str) -> tuple[str | None, str]:
    response = client.list_pipeline_versions(pipeline_id, page_size=1, sort_by="created_at desc")
    versions = response.pipeline_versions or []
    if not versions:
        raise EndpointError(f"pipeline {pipeline_id} was uploaded but has no version")
    return versions[0].pipeline_version_id, versions[0].display_name


@contextlib.contextmanager
def _quiet():
    """kfp.Client prints links and warns about versions; nbscale prints its own summary."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def _status(exc: Exception) -> int | None:
    status = getattr(exc, "status", None)
    return status if isinstance(status, int) and hasattr(exc, "reason") else None


def _describe(exc: Exception) -> str:
    status = getattr(exc, "status", None)
    if status is not None and hasattr(exc, "reason"):  # kfp_server_api.ApiException
        return f"{status} {exc.reason}{_body_message(getattr(exc, 'body', None))}"
    reason = getattr(exc, "reason", None)
    text = str(reason or exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def _body_message(body) -> str:
    if not body:
        return ""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    try:
        data = json.loads(body)
        message = data.get("message") or data.get("error") if isinstance(data, dict) else None
    except ValueError:
        message = body
    message = " ".join(str(message or "").split())
    return f": {message}" if message else ""
