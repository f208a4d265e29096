"""Thin jupyter_server handlers: HTTP (and one websocket) mapped onto `NbscaleManager` calls.

Every handler is authenticated (403 without a token or login cookie) and authorised through
jupyter_server's authorizer; state-changing calls go through jupyter_server's XSRF check. Errors
are `{"error": "...", "detail": ...}` JSON. See docs/api.md.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from http.client import responses

from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import authorized, ws_authenticated
from jupyter_server.base.handlers import APIHandler, JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from jupyter_server.utils import url_path_join
from tornado import web
from tornado.websocket import WebSocketClosedError, WebSocketHandler

from .manager import ApiError, BadRequest, NbscaleManager

AUTH_RESOURCE = "nbscale"
# Running a notebook or starting cluster processes executes code, as a kernel does.
EXECUTE = ("execute", "kernels")


class _Failure(web.HTTPError):
    """An ApiError on its way through tornado to `write_error`."""

    def __init__(self, error: ApiError):
        super().__init__(error.status, reason=responses.get(error.status))
        self.error = error


@contextmanager
def api_errors():
    try:
        yield
    except ApiError as exc:
        raise _Failure(exc) from None


class NbscaleHandler(APIHandler):
    auth_resource = AUTH_RESOURCE

    @property
    def manager(self) -> NbscaleManager:
        return self.settings["nbscale_manager"]

    def json_body(self) -> dict:
        try:
            body = json.loads(self.request.body or b"{}")
        except ValueError:
            raise _Failure(BadRequest("the request body is not JSON")) from None
        if not isinstance(body, dict):
            raise _Failure(BadRequest("the request body must be a JSON object"))
        return body

    def reply(self, model, status: int = 200) -> None:
        self.set_status(status)
        self.finish(json.dumps(model, allow_nan=False))

    def write_error(self, status_code: int, **kwargs) -> None:
        exc = (kwargs.get("exc_info") or (None, None, None))[1]
        if isinstance(exc, _Failure):
            body = {"error": exc.error.message}
            if exc.error.detail is not None:
                body["detail"] = exc.error.detail
        elif isinstance(exc, web.HTTPError):
            body = {"error": exc.log_message or responses.get(status_code, "error")}
        else:  # an unexpected exception: tornado logged it; the client gets no internals
            body = {"error": "internal server error"}
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))


class PipelineHandler(NbscaleHandler):
    @web.authenticated
    @authorized
    async def get(self):
        with api_errors():
            self.reply(await self.manager.pipeline(self.get_query_argument("path", "")))


class RunsHandler(NbscaleHandler):
    @web.authenticated
    @authorized
    async def get(self):
        with api_errors():
            limit = self.get_query_argument("limit", "50")
            if not limit.isdigit():
                raise BadRequest("'limit' must be an integer from 1 to 1000")
            self.reply(await self.manager.list_runs(self.get_query_argument("path", ""), int(limit)))

    @web.authenticated
    @authorized(*EXECUTE)
    async def post(self):
        with api_errors():
            body = self.json_body()
            summary = await self.manager.start_run(body.get("path"), body.get("engine"), body.get("parameters"),
                                                   body.get("use_cache", True))
            self.reply(summary, 202)


class RunHandler(NbscaleHandler):
    @web.authenticated
    @authorized
    async def get(self, run_id):
        with api_errors():
            self.reply(await self.manager.run_detail(self.get_query_argument("path", ""), run_id))

    @web.authenticated
    @authorized
    async def delete(self, run_id):
        with api_errors():
            self.reply(await self.manager.cancel_run(self.get_query_argument("path", ""), run_id), 202)


class MetricsHandler(NbscaleHandler):
    @web.authenticated
    @authorized
    async def get(self):
        with api_errors():
            self.reply(await self.manager.metrics(self.get_query_argument("path", "")))


class ClusterHandler(NbscaleHandler):
    @web.authenticated
    @authorized
    async def get(self):
        with api_errors():
            self.reply(await self.manager.cluster())

    @web.authenticated
    @authorized(*EXECUTE)
    async def post(self):
        with api_errors():
            self.reply(await self.manager.cluster_action(self.json_body()))


class KfpYamlHandler(NbscaleHandler):
    @web.authenticated
    @authorized
    async def get(self):
        with api_errors():
            filename, text = await self.manager.kfp_yaml(self.get_query_argument("path", ""))
            self.set_header("Content-Disposition", f'attachment; filename="{_safe_filename(filename)}"')
            self.finish(text, set_content_type="application/yaml; charset=utf-8")


class KfpSubmitHandler(NbscaleHandler):
    @web.authenticated
    @authorized
    async def post(self):
        with api_errors():
            body = self.json_body()
            self.reply(await self.manager.kfp_submit(body.get("path"), body.get("parameters"),
                                                     body.get("experiment"), body.get("run_name")))


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
        path = self.get_query_argument("path", "")
        try:
            self.notebook = self.manager.notebook_path(path) if path else None
        except ApiError as exc:
            self.set_status(exc.status)
            self.finish(json.dumps({"error": exc.message}))
            return
        await super().get(*args, **kwargs)

    def open(self, *args, **kwargs):
        super().open(*args, **kwargs)
        self.unsubscribe = self.manager.subscribe(self._send, self.notebook)

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


def _safe_filename(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "pipeline.yaml"


def handlers(base_url: str) -> list[tuple]:
    def url(path: str) -> str:
        return url_path_join(base_url, "nbscale", "api", path)

    return [
        (url("pipeline"), PipelineHandler),
        (url("runs"), RunsHandler),
        (url(r"runs/([^/]+)"), RunHandler),
        (url("metrics"), MetricsHandler),
        (url("cluster"), ClusterHandler),
        (url("kfp/yaml"), KfpYamlHandler),
        (url("kfp/submit"), KfpSubmitHandler),
        (url("events"), EventsHandler),
    ]
