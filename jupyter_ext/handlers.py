"""Thin jupyter_server handlers: HTTP (and one websocket) mapped onto the manager's parts.

Handlers do the HTTP: they read query arguments and JSON bodies, check and convert them into the
typed arguments the parts take, and map the parts' errors (`errors.py`) to status codes in one
place (`STATUS`). Every handler is authenticated (403 without a token or login cookie) and
authorised through jupyter_server's authorizer; state-changing calls go through jupyter_server's
XSRF check. Errors are `{"error": "...", "detail": ...}` JSON. See docs/api.md.
"""

from __future__ import annotations

import functools
import json
import os
import re
import urllib.parse
from http.client import responses
from pathlib import Path

from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import authorized, ws_authenticated
from jupyter_server.base.handlers import APIHandler, JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from jupyter_server.utils import url_path_join
from tornado import web
from tornado.websocket import WebSocketClosedError, WebSocketHandler

from nbscale.kernels.errors import AmbiguousRunId, RunStoreError
from nbscale.kernels.warm_cluster import MAX_WORKERS

from . import comparison
from .errors import Conflict, ExtensionError, InvalidInput, NotAllowed, NotFound, Unavailable, UpstreamError
from .lineage import lineage_model
from .manager import NbscaleManager
from .stepdetail import image_headers, step_detail, step_image
from .suggestions import suggestion_model

AUTH_RESOURCE = "nbscale"
# Running a notebook or starting cluster processes executes code, as a kernel does.
EXECUTE = ("execute", "kernels")
# The one place errors become status codes; any other ExtensionError is the server's own failure.
# A run store the parts could not use (corrupt, unreadable, locked: kernels' RunStoreError and its
# subclasses) is 503 with the store's own message, which names the file and what to do.
STATUS = ((InvalidInput, 400), (NotAllowed, 403), (NotFound, 404), (Conflict, 409), (Unavailable, 501),
          (UpstreamError, 502), (AmbiguousRunId, 400), (RunStoreError, 503))
ANSWERED = (ExtensionError, RunStoreError)  # errors answered with their message; others are a 500
MAX_RUNS_LISTED = 1000
RUN_KEYS = ("path", "engine", "parameters", "use_cache")
KFP_SUBMIT_KEYS = ("path", "parameters", "experiment", "run_name", "host")
# the keys each cluster action takes (besides "action")
CLUSTER_KEYS = {"start": ("n",), "connect": ("address",), "scale": ("n",), "adapt": ("minimum", "maximum"),
                "close": ()}
MAX_ERROR_CHARS = 1000  # an error message longer than this is cut in its middle


def status_for(error: Exception) -> int:
    return next((code for cls, code in STATUS if isinstance(error, cls)), 500)


def error_body(error: Exception, root: Path | None = None) -> dict:
    """The answer to an error. Its message names files under `root` relative to it: a part's error
    (a run store's, an OS error's) names them by their whole path, which is not the browser's to learn."""
    body = {"error": _cut(_relative(getattr(error, "message", None) or str(error), root))}
    detail = getattr(error, "detail", None)
    if detail is not None:
        body["detail"] = detail
    return body


def _cut(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    """An error's message, its middle left out past `limit` characters: it repeats what the request
    named (a run id, a step), which may be megabytes."""
    if len(text) <= limit:
        return text
    return f"{text[:limit // 2]}…[{len(text) - limit:,} characters]…{text[-limit // 2:]}"


def _relative(text: str, root: Path | None) -> str:
    """`text` with paths under `root` relative to it (not a sibling's that starts alike, `/srv/nb2`
    under `/srv/nb`; nothing to take off a root that is `/`)."""
    if root is None or Path(root).parent == Path(root):
        return text
    for form in {str(root), os.path.realpath(root)}:
        text = re.sub(re.escape(form) + r"(?:/|(?![\w.-]))", lambda m: "" if m.group(0).endswith("/") else ".",
                      text)
    return text


def api_call(method):
    """Answer the parts' errors as `{"error", "detail"?}` JSON with their status code."""

    @functools.wraps(method)
    async def wrapper(self, *args, **kwargs):
        try:
            return await method(self, *args, **kwargs)
        except ANSWERED as exc:
            self.reply(error_body(exc, self.manager.notebooks.root), status_for(exc))

    return wrapper


class NbscaleHandler(APIHandler):
    auth_resource = AUTH_RESOURCE

    @property
    def manager(self) -> NbscaleManager:
        return self.settings["nbscale_manager"]

    def notebook(self, path) -> Path:
        """The notebook a request names (`path` of a body may be any JSON value)."""
        return self.manager.notebooks.resolve(path if isinstance(path, str) else None)

    def query_notebook(self) -> Path:
        """The notebook `?path=` names, as given: tornado would strip its spaces (` a.ipynb` named `a.ipynb`,
        another notebook, whose runs and pipeline the panel then showed)."""
        return self.notebook(self.get_query_argument("path", "", strip=False))

    def refuse_root_state_outside(self) -> None:
        notebooks = self.manager.notebooks
        notebooks.refuse_state_outside(notebooks.root, "in the server's root")

    def json_body(self) -> dict:
        try:
            body = json.loads(self.request.body or b"{}")
        except ValueError:
            raise InvalidInput("the request body is not JSON") from None
        except RecursionError:
            raise InvalidInput("the request body is nested too deeply") from None
        if not isinstance(body, dict):
            raise InvalidInput("the request body must be a JSON object")
        return body

    def reply(self, model, status: int = 200) -> None:
        self.set_status(status)
        self.finish(json.dumps(model, allow_nan=False))

    def write_error(self, status_code: int, **kwargs) -> None:
        exc = (kwargs.get("exc_info") or (None, None, None))[1]
        if isinstance(exc, web.HTTPError):  # from tornado or jupyter_server: 403, XSRF, ...
            body = {"error": exc.log_message or responses.get(status_code, "error")}
        else:  # an unexpected exception: tornado logged it; the client gets no internals
            body = {"error": "internal server error"}
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))


class PipelineHandler(NbscaleHandler):
    @web.authenticated
    @authorized
    @api_call
    async def get(self):
        self.reply(await self.manager.notebooks.pipeline_model(self.query_notebook()))


class RunsHandler(NbscaleHandler):
    @web.authenticated
    @authorized
    @api_call
    async def get(self):
        limit = _limit(self.get_query_argument("limit", "50"))
        self.reply(await self.manager.runs.history(self.query_notebook(), limit))

    @web.authenticated
    @authorized(*EXECUTE)
    @api_call
    async def post(self):
        body = self.json_body()
        notebook = self.notebook(body.get("path"))
        engine = _optional_string(body, "engine")
        parameters, use_cache = _parameters(body), _use_cache(body)
        _known_keys(body, RUN_KEYS)
        summary = await self.manager.runs.start(notebook, engine, parameters, use_cache)
        self.reply(summary, 202)


class RunHandler(NbscaleHandler):
    @web.authenticated
    @authorized
    @api_call
    async def get(self, run_id):
        notebook = self.query_notebook()
        self.reply(await self.manager.runs.detail(notebook, _run_id(run_id)))

    @web.authenticated
    @authorized
    @api_call
    async def delete(self, run_id):
        notebook = self.query_notebook()
        self.reply(await self.manager.runs.cancel(notebook, _run_id(run_id)), 202)


class StepHandler(NbscaleHandler):
    """StepDetail of one step of a run (stepdetail.py)."""

    @web.authenticated
    @authorized
    @api_call
    async def get(self, run_id, step):
        manager = self.manager
        self.reply(await step_detail(manager.runs, manager.notebooks, self.query_notebook(), _run_id(run_id), step))


class StepFileHandler(NbscaleHandler):
    """An image a step's cells showed, and only that (stepdetail.step_image)."""

    @web.authenticated
    @authorized
    @api_call
    async def get(self, run_id, step, name):
        data, mime = await step_image(self.manager.runs, self.query_notebook(), _run_id(run_id), step, name)
        for header, value in image_headers(mime).items():
            self.set_header(header, value)
        self.finish(data, set_content_type=mime)  # APIHandler.finish would say JSON


class SuggestHandler(NbscaleHandler):
    """Step tags proposed for the notebook (suggestions.py); nothing is written."""

    @web.authenticated
    @authorized
    @api_call
    async def get(self):
        self.reply(await suggestion_model(self.manager.notebooks, self.query_notebook()))


class MetricsHandler(NbscaleHandler):
    @web.authenticated
    @authorized
    @api_call
    async def get(self):
        self.reply(await self.manager.runs.metrics(self.query_notebook()))


class LineageHandler(NbscaleHandler):
    """What produced a metric or stored value of a run (lineage.py): `?name=NAME&path=NOTEBOOK`."""

    @web.authenticated
    @authorized
    @api_call
    async def get(self, run_id):
        name = self.get_query_argument("name", "")
        self.reply(await lineage_model(self.manager.runs, self.query_notebook(), _run_id(run_id), name))


class CompareHandler(NbscaleHandler):
    @web.authenticated
    @authorized
    @api_call
    async def get(self):
        notebook = self.query_notebook()
        run_ids = [part.strip() for part in self.get_query_argument("runs", "").split(",") if part.strip()]
        self.reply(await comparison.compare(self.manager.runs, notebook, run_ids))


class ClusterHandler(NbscaleHandler):
    @web.authenticated
    @authorized
    @api_call
    async def get(self):
        self.refuse_root_state_outside()  # a live warm cluster is adopted from the root's state folder
        self.reply(await self.manager.cluster_model())

    @web.authenticated
    @authorized(*EXECUTE)
    @api_call
    async def post(self):
        self.refuse_root_state_outside()  # the warm cluster's files (info, lock, log) are written there
        # the run's own cluster the panel shows while the server has none: refusals name it
        run_cluster = self.manager.runs.cluster_sample()
        self.reply(await _cluster_action(self.manager.cluster, self.json_body(), run_cluster))


class KfpYamlHandler(NbscaleHandler):
    @web.authenticated
    @authorized
    @api_call
    async def get(self):
        filename, text = await self.manager.kfp.yaml(self.query_notebook())
        self.set_header("Content-Disposition", _attachment(filename))
        self.finish(text, set_content_type="application/yaml; charset=utf-8")


class KfpSubmitHandler(NbscaleHandler):
    @web.authenticated
    @authorized(*EXECUTE)  # it runs the notebook's code, on the cluster and with the server's credentials
    @api_call
    async def post(self):
        body = self.json_body()
        notebook = self.notebook(body.get("path"))
        parameters = _parameters(body)
        experiment, run_name = _optional_string(body, "experiment"), _optional_string(body, "run_name")
        host = _optional_string(body, "host")  # one of the configured endpoints, by URL or host name
        _known_keys(body, KFP_SUBMIT_KEYS)
        self.reply(await self.manager.kfp.submit(notebook, parameters, experiment, run_name, host))


class EventsHandler(WebSocketMixin, WebSocketHandler, JupyterHandler):
    """Pushes Event JSON messages: run/step events of the notebook's runs, and cluster samples."""

    auth_resource = AUTH_RESOURCE
    unsubscribe = None

    def set_default_headers(self):
        """No JupyterHandler default headers on a websocket."""

    @property
    def manager(self) -> NbscaleManager:
        return self.settings["nbscale_manager"]

    @ws_authenticated
    async def get(self, *args, **kwargs):
        user = self.current_user
        if not await ensure_async(self.authorizer.is_authorized(self, user, "read", AUTH_RESOURCE)):
            raise web.HTTPError(403)
        path = self.get_query_argument("path", "", strip=False)
        try:
            self.notebook = self.manager.notebooks.resolve(path) if path else None
        except ANSWERED as exc:
            self.set_status(status_for(exc))
            self.finish(json.dumps(error_body(exc, self.manager.notebooks.root)))
            return
        await super().get(*args, **kwargs)

    def open(self, *args, **kwargs):
        super().open(*args, **kwargs)
        self.unsubscribe = self.manager.events.subscribe(self._send, self.notebook)

    def _send(self, event: dict) -> None:
        if self.ws_connection is None or self.ws_connection.is_closing():
            return
        try:
            self.write_message(json.dumps(event, allow_nan=False, default=str))
        except WebSocketClosedError:
            pass

    def on_message(self, message):
        """The stream is one-way; messages from the client are ignored."""

    def on_close(self):
        if self.unsubscribe is not None:
            self.unsubscribe()
            self.unsubscribe = None


# --- request values -> typed arguments --------------------------------------------------------------


async def _cluster_action(cluster, body: dict, run_cluster: dict | None = None) -> dict:
    action = body.get("action")
    if isinstance(action, str) and action in CLUSTER_KEYS:
        _known_keys(body, ("action", *CLUSTER_KEYS[action]), f"the {action} action")
    if action == "start":
        return await cluster.start(None if body.get("n") is None else _workers(body, "n", minimum=0))
    if action == "connect":
        address = body.get("address")
        if not isinstance(address, str) or not address.strip():
            raise InvalidInput("'address' must be a Dask scheduler address, e.g. tcp://host:8786")
        return await cluster.connect(address.strip())
    if action == "scale":
        return await cluster.scale(_workers(body, "n", minimum=0), run_cluster)
    if action == "adapt":
        minimum, maximum = _workers(body, "minimum", minimum=0), _workers(body, "maximum", minimum=1)
        if minimum > maximum:
            raise InvalidInput("'minimum' must not exceed 'maximum'")
        return await cluster.adapt(minimum, maximum, run_cluster)
    if action == "close":
        return await cluster.close(run_cluster)
    raise InvalidInput("'action' must be one of start, connect, scale, adapt, close")


def _limit(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_RUNS_LISTED:  # (`²` is a digit)
        raise InvalidInput(f"'limit' must be an integer from 1 to {MAX_RUNS_LISTED}")
    return int(text)


def _run_id(text: str) -> str:
    if not text.strip():
        raise InvalidInput("missing run id")
    return text


def _workers(body: dict, name: str, minimum: int) -> int:
    """A number of workers, checked here for every kind of cluster (a huge one reached Dask's
    messages, which cannot carry it, and came back as the scheduler's failure)."""
    value = body.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= MAX_WORKERS:
        raise InvalidInput(f"'{name}' must be an integer from {minimum} to {MAX_WORKERS}")
    return value


def _known_keys(body: dict, known: tuple[str, ...], what: str = "this request") -> None:
    """InvalidInput naming the keys of `body` that `what` does not take: a misspelt option
    (`"use_cach"`, `"parameter"`) or one only the CLI has (`"scheduler"`) would otherwise be left
    out without a word, and the run started as if it had not been asked for."""
    unknown = [key for key in body if key not in known]
    if unknown:
        names = ", ".join(repr(_cut(key, 60)) for key in unknown[:10]) + (" …" if len(unknown) > 10 else "")
        raise InvalidInput(f"unknown key(s) {names}; {what} takes {', '.join(known)}")


def _optional_string(body: dict, name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise InvalidInput(f"'{name}' must be a string")
    return value


def _parameters(body: dict) -> dict:
    value = body.get("parameters")
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput("'parameters' must be an object of name: value")
    return value


def _use_cache(body: dict) -> bool:
    value = body.get("use_cache")
    if value is None:
        return True
    if not isinstance(value, bool):
        raise InvalidInput("'use_cache' must be true or false")
    return value


def _attachment(name: str) -> str:
    """A Content-Disposition for a download named `name`: an ASCII name every client reads, and the
    name itself (RFC 6266's `filename*`) for those that read that. Tornado refuses a header value
    outside Latin-1: `日本.ipynb`'s download answered 500."""
    plain = "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in name) or "pipeline.yaml"
    return f"attachment; filename=\"{plain}\"; filename*=UTF-8''{urllib.parse.quote(name, safe='')}"


def handlers(base_url: str) -> list[tuple]:
    def url(path: str) -> str:
        return url_path_join(base_url, "nbscale", "api", path)

    return [
        (url("pipeline"), PipelineHandler),
        (url("notebooks/suggest"), SuggestHandler),
        (url("runs"), RunsHandler),
        (url(r"runs/([^/]+)"), RunHandler),
        (url(r"runs/([^/]+)/steps/([^/]+)"), StepHandler),
        (url(r"runs/([^/]+)/lineage"), LineageHandler),
        (url(r"runs/([^/]+)/steps/([^/]+)/files/([^/]+)"), StepFileHandler),
        (url("metrics"), MetricsHandler),
        (url("compare"), CompareHandler),
        (url("cluster"), ClusterHandler),
        (url("kfp/yaml"), KfpYamlHandler),
        (url("kfp/submit"), KfpSubmitHandler),
        (url("events"), EventsHandler),
    ]
