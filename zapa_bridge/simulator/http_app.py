"""zapw's HTTP face: its routes, envelopes, status codes and quirks, row by row.

The order of checks is Express' middleware order in zapw: CORS preflight, body parsing
(malformed JSON or a body over 100 KB is a 500 before anything else), static `/`, the
API-key check, the routes, then Express' HTML 404. Views are thin: one call into the bridge
core each.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.wrappers import Request, Response

from zapa_bridge.simulator.body_parser import BodyRefused, parse_body
from zapa_bridge.simulator.bridge import SimulatedBridge
from zapa_bridge.simulator.errors import ZapwError
from zapa_bridge.simulator.routing import Router, json_response, raw_path

log = logging.getLogger(__name__)
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
OPEN_PATHS = ("/health", "/")  # zapw's auth middleware compares req.path exactly
CORS_METHODS = "GET,HEAD,PUT,PATCH,POST,DELETE"
INDEX_HTML = """<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>zapw - WhatsApp Bridge</title></head>
<body><h1>zapw</h1><p>WhatsApp bridge test interface (simulated).</p></body>
</html>
"""


class ZapwApp:
    """A WSGI app answering as zapw; paths under /_sim go to the control app instead."""

    def __init__(self, bridge: SimulatedBridge, control: WSGIApp) -> None:
        self.bridge = bridge
        self.control = control
        self.router = Router()
        self.router.add("GET", "/health", self.health)
        self.router.add("POST", "/sessions", self.create_session)
        self.router.add("GET", "/sessions", self.list_sessions)
        self.router.add("GET", "/sessions/:session_id", self.get_session)
        self.router.add("DELETE", "/sessions/:session_id", self.delete_session)
        self.router.add("POST", "/sessions/:session_id/messages", self.send)
        self.router.add("GET", "/events", self.events)
        self.router.add("DELETE", "/events", self.clear_events)

    def __call__(self, environ: dict[str, Any],
                 start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = raw_path(environ)
        if path == "/_sim" or path.startswith("/_sim/"):
            return self.control(environ, start_response)
        response = self.respond(Request(environ), path)
        response.headers["Access-Control-Allow-Origin"] = "*"
        return response(environ, start_response)

    def respond(self, request: Request, path: str) -> Response:
        if request.method == "OPTIONS":
            return no_content({"Access-Control-Allow-Methods": CORS_METHODS})
        try:
            body = parse_body(request)
        except BodyRefused:
            return internal_error()
        if request.method in ("GET", "HEAD") and path in ("/", "/index.html"):
            return Response(INDEX_HTML, content_type="text/html; charset=UTF-8")
        if path not in OPEN_PATHS and (refusal := self.auth_refusal(request)) is not None:
            return refusal
        try:
            found = self.router.match(request.method, path)
        except UnicodeDecodeError:
            return internal_error()  # Express: "Failed to decode param"
        if found is None:
            return not_found_page(request.method, path)
        handler, params = found
        try:
            return handler(body, **params)
        except ZapwError as error:
            return json_response(error.status, {"status": "error", "error": error.text})
        except Exception:
            log.exception("simulated zapw failed on %s %s", request.method, path)
            return internal_error()

    def auth_refusal(self, request: Request) -> Response | None:
        """zapw's API-key check: `Bearer <key>` first, else `X-API-Key`; 401 without status."""
        expected = self.bridge.config.api_key
        if not expected:
            return None
        header = request.headers.get("Authorization", "")
        given = header[7:] if header.startswith("Bearer ") else request.headers.get("X-API-Key")
        if not given:
            return json_response(401, {"error": "Unauthorized", "message": "API key is required"})
        if given != expected:
            return json_response(401, {"error": "Unauthorized", "message": "Invalid API key"})
        return None

    # -- routes ----------------------------------------------------------------------------

    def health(self, body: Any) -> Response:
        return json_response(200, self.bridge.health())

    def create_session(self, body: Any) -> Response:
        requested = body.get("sessionId") if isinstance(body, dict) else None
        return success(self.bridge.create_session(requested), status=201)

    def list_sessions(self, body: Any) -> Response:
        return success(self.bridge.list_sessions())

    def get_session(self, body: Any, session_id: str) -> Response:
        return success(self.bridge.get_session(session_id))

    def delete_session(self, body: Any, session_id: str) -> Response:
        self.bridge.delete_session(session_id)
        return no_content()

    def send(self, body: Any, session_id: str) -> Response:
        return success(self.bridge.send(session_id, body))

    def events(self, body: Any) -> Response:
        return success(self.bridge.recent_events())

    def clear_events(self, body: Any) -> Response:
        self.bridge.clear_events()
        return json_response(200, {"status": "success"})  # `data: undefined` is left out


def success(data: Any, status: int = 200) -> Response:
    return json_response(status, {"status": "success", "data": data})


def no_content(headers: dict[str, str] | None = None) -> Response:
    """A 204 as Express sends it: no body and no Content-Type."""
    response = Response(status=204, headers=headers)
    del response.headers["Content-Type"]
    return response


def internal_error() -> Response:
    """zapw's error-handler answer for anything thrown outside a route's own catch."""
    return json_response(500, {"error": "Internal Server Error",
                               "message": "An unexpected error occurred", "statusCode": 500})


def not_found_page(method: str, path: str) -> Response:
    """Express' finalhandler page for a route nobody answers."""
    text = f"Cannot {method} {path}".replace("&", "&amp;").replace("<", "&lt;") \
        .replace(">", "&gt;")
    page = ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>Error</title>\n</head>\n<body>\n<pre>{text}</pre>\n</body>\n</html>\n")
    return Response(page, status=404, content_type="text/html; charset=utf-8",
                    headers={"Content-Security-Policy": "default-src 'none'",
                             "X-Content-Type-Options": "nosniff"})

