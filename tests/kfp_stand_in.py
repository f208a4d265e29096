"""A stand-in for the KFP v2beta1 REST API on 127.0.0.1 (no KFP API server can run on our machines).

It keeps pipelines, versions, experiments and runs in dicts and records every request, so tests can
check what `submit` sent (and that credentials went only where they were meant to go).
"""

from __future__ import annotations

import email
import json
import threading
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOKEN = "tok-SECRET-4b1d"
COOKIE = "authservice_session=COOKIE-SECRET-77"
API = "/apis/v2beta1"


class KfpStandIn:
    """A stand-in for the KFP v2beta1 API (see the module docstring): state in dicts, one thread."""

    def __init__(self):
        self.requests: list[dict] = []
        self.pipelines: dict[str, dict] = {}
        self.versions: dict[str, list[dict]] = {}
        self.experiments: dict[str, dict] = {}
        self.runs: list[dict] = []
        self.uploads: list[bytes] = []
        # (method, path) → (status, body) or (status, body, headers): answered instead of the API
        self.fail: dict[tuple[str, str], tuple] = {}
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                stand_in._handle(self, "GET")

            def do_POST(self):
                stand_in._handle(self, "POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    # -- the API ----------------------------------------------------------------------------
    def _handle(self, handler, method):
        url = urllib.parse.urlsplit(handler.path)
        query = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        self.requests.append({"method": method, "path": url.path, "query": query,
                              "headers": {k.lower(): v for k, v in handler.headers.items()}, "body": body})
        if (method, url.path) in self.fail:
            status, payload, *headers = self.fail[(method, url.path)]
            return self._send(handler, status, payload, *headers)
        route = url.path[len(API):] if url.path.startswith(API) else None
        try:
            status, payload = self._route(method, route, query, body, handler.headers) if route else (404, {})
        except Exception as exc:  # noqa: BLE001 - a bug in the stand-in shows as an answer, not a hang
            status, payload = 500, {"error": repr(exc), "code": 13, "message": f"stand-in failed: {exc!r}"}
        self._send(handler, status, payload)

    def _route(self, method, route, query, body, headers):
        parts = route.strip("/").split("/")
        if (method, route) == ("GET", "/healthz"):
            return 200, {"commit_sha": "stand-in", "tag_name": "2.5.0", "multi_user": False}
        if (method, route) == ("GET", "/pipelines"):
            name = _filtered_name(query)
            found = [p for p in self.pipelines.values() if name is None or p["display_name"] == name]
            return 200, ({"pipelines": found, "total_size": len(found)} if found else {})
        if (method, route) == ("POST", "/pipelines/upload"):
            self.uploads.append(_uploaded_file(body, headers))
            pid = str(uuid.uuid4())
            self.pipelines[pid] = {"pipeline_id": pid, "display_name": query["name"],
                                   "description": query.get("description", "")}
            self.versions[pid] = [{"pipeline_id": pid, "pipeline_version_id": str(uuid.uuid4()),
                                   "display_name": query["name"], "created_at": "2026-01-01T00:00:00Z"}]
            return 200, self.pipelines[pid]
        if (method, route) == ("POST", "/pipelines/upload_version"):
            pid = query["pipelineid"]
            if pid not in self.pipelines:
                return 404, {"error": f"pipeline {pid} not found", "code": 5, "message": "not found"}
            if any(v["display_name"] == query["name"] for v in self.versions[pid]):
                return 409, {"error": "already exists", "code": 6, "message": "version name already exists"}
            self.uploads.append(_uploaded_file(body, headers))
            version = {"pipeline_id": pid, "pipeline_version_id": str(uuid.uuid4()),
                       "display_name": query["name"], "created_at": "2026-01-02T00:00:00Z"}
            self.versions[pid].append(version)
            return 200, version
        if method == "GET" and len(parts) == 3 and parts[0] == "pipelines" and parts[2] == "versions":
            versions = list(self.versions.get(parts[1], []))
            name = _filtered_name(query)
            if name is not None:
                versions = [v for v in versions if v["display_name"] == name]
            if query.get("sort_by") == "created_at desc":
                versions.sort(key=lambda v: v["created_at"], reverse=True)
            versions = versions[: int(query.get("page_size", 10))]
            return 200, ({"pipeline_versions": versions, "total_size": len(versions)} if versions else {})
        if (method, route) == ("GET", "/experiments"):
            name = _filtered_name(query)
            found = [e for e in self.experiments.values() if e["display_name"] == name]
            return 200, ({"experiments": found, "total_size": len(found)} if found else {})
        if (method, route) == ("POST", "/experiments"):
            data = json.loads(body)
            eid = str(uuid.uuid4())
            self.experiments[eid] = {"experiment_id": eid, "display_name": data["display_name"]}
            return 200, self.experiments[eid]
        if (method, route) == ("POST", "/runs"):
            data = json.loads(body)
            run = {**data, "run_id": str(uuid.uuid4()), "state": "PENDING"}
            self.runs.append(run)
            return 200, run
        return 404, {"error": "not found", "code": 5, "message": f"{method} {route} is not served"}

    @staticmethod
    def _send(handler, status, payload, headers=None):
        data = json.dumps(payload).encode()
        handler.send_response(status)
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)


def _filtered_name(query):
    if "filter" not in query:
        return None
    (predicate,) = json.loads(query["filter"])["predicates"]
    assert predicate["operation"] in ("EQUALS", 1) and predicate["key"] == "display_name"  # name or enum number
    return predicate["stringValue"]


def _uploaded_file(body: bytes, headers) -> bytes:
    message = email.message_from_bytes(b"Content-Type: " + headers["Content-Type"].encode() + b"\r\n\r\n" + body)
    (part,) = [p for p in message.walk() if p.get_param("name", header="content-disposition") == "uploadfile"]
    return part.get_payload(decode=True)
