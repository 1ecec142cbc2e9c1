"""The simulator's own control API under /_sim/: JSON in and out, never behind the API key.

It lets a test (or a person with curl) play WhatsApp's side and the operator's: inject
inbound messages and receipts, drop and restore sessions, inject faults, read what was
sent and posted. Each view parses its body and calls one method of the core or server.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.wrappers import Request, Response

from zapa_bridge.simulator.bridge import SimulatedBridge
from zapa_bridge.simulator.config import RESTART_DOWNTIME
from zapa_bridge.simulator.errors import ControlError
from zapa_bridge.simulator.inbound import Inbound
from zapa_bridge.simulator.routing import Router, json_response, raw_path


class ControlApp:
    """WSGI app for /_sim/...; `refuse` closes the server's socket for some seconds and
    `restart` restarts the simulated zapw (both are the server's, which owns the socket)."""

    def __init__(self, bridge: SimulatedBridge, refuse: Callable[..., None],
                 restart: Callable[..., None]) -> None:
        self.bridge = bridge
        self.refuse = refuse
        self.restart_server = restart
        self.router = Router()
        add = self.router.add
        add("GET", "/_sim/config", self.get_config)
        add("PUT", "/_sim/config", self.put_config)
        add("GET", "/_sim/faults", self.get_faults)
        add("PUT", "/_sim/faults", self.put_faults)
        add("DELETE", "/_sim/faults", self.clear_faults)
        add("POST", "/_sim/sessions", self.add_session)
        add("POST", "/_sim/sessions/:session_id/inbound", self.inbound)
        add("POST", "/_sim/sessions/:session_id/connect", self.connect)
        add("POST", "/_sim/sessions/:session_id/disconnect", self.disconnect)
        add("POST", "/_sim/messages/:message_id/status", self.status)
        add("GET", "/_sim/sends", self.sends)
        add("GET", "/_sim/webhooks", self.webhooks)
        add("POST", "/_sim/refuse", self.refuse_connections)
        add("POST", "/_sim/restart", self.restart)
        add("POST", "/_sim/reset", self.reset)

    def __call__(self, environ: dict[str, Any],
                 start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        return self.respond(request, raw_path(environ))(environ, start_response)

    def respond(self, request: Request, path: str) -> Response:
        try:
            found = self.router.match(request.method, path)
            if found is None:
                raise ControlError(404, f"no control route {request.method} {path}")
            handler, params = found
            return handler(request, _body(request), **params)
        except ControlError as error:
            return json_response(error.status, {"error": error.text})
        except (ValueError, TypeError) as error:
            return json_response(400, {"error": str(error)})

    # -- settings and faults -------------------------------------------------------------

    def get_config(self, request: Request, body: dict[str, Any]) -> Response:
        return json_response(200, self.bridge.config.to_json())

    def put_config(self, request: Request, body: dict[str, Any]) -> Response:
        return json_response(200, self.bridge.configure(**body).to_json())

    def get_faults(self, request: Request, body: dict[str, Any]) -> Response:
        return json_response(200, self.bridge.faults.current.to_json())

    def put_faults(self, request: Request, body: dict[str, Any]) -> Response:
        return json_response(200, self.bridge.faults.update(**body).to_json())

    def clear_faults(self, request: Request, body: dict[str, Any]) -> Response:
        return json_response(200, self.bridge.faults.clear().to_json())

    # -- WhatsApp's side -------------------------------------------------------------------

    def add_session(self, request: Request, body: dict[str, Any]) -> Response:
        session_id = _field(body, "session_id", str)
        connected = body.get("connected", True)
        if not isinstance(connected, bool):
            raise ValueError("connected: must be true or false")
        return json_response(201, self.bridge.add_session(session_id, connected=connected))

    def inbound(self, request: Request, body: dict[str, Any], session_id: str) -> Response:
        return json_response(200, self.bridge.inject_inbound(session_id, Inbound.from_json(body)))

    def connect(self, request: Request, body: dict[str, Any], session_id: str) -> Response:
        phone = _optional(body, "phone", str)
        name = _optional(body, "name", str)
        return json_response(200, self.bridge.connect(session_id, phone=phone, name=name))

    def disconnect(self, request: Request, body: dict[str, Any], session_id: str) -> Response:
        reason = _optional(body, "reason", dict)
        return json_response(200, self.bridge.disconnect(session_id, reason))

    def status(self, request: Request, body: dict[str, Any], message_id: str) -> Response:
        status = _field(body, "status", str)
        session_id = _optional(body, "session_id", str)
        return json_response(200, self.bridge.emit_status(message_id, status, session_id))

    # -- records and operations -----------------------------------------------------------

    def sends(self, request: Request, body: dict[str, Any]) -> Response:
        sends = self.bridge.sends(request.args.get("session_id"))
        return json_response(200, [sent.to_json() for sent in sends])

    def webhooks(self, request: Request, body: dict[str, Any]) -> Response:
        deliveries = self.bridge.webhooks.deliveries(request.args.get("event_type"))
        return json_response(200, [delivery.to_json() for delivery in deliveries])

    def refuse_connections(self, request: Request, body: dict[str, Any]) -> Response:
        seconds = body.get("seconds")
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds <= 0:
            raise ValueError("seconds: must be a number > 0")
        graceful = body.get("graceful", False)
        if not isinstance(graceful, bool):
            raise ValueError("graceful: must be true or false")
        response = json_response(202, {"refusing_for": seconds})
        # Close the socket only once this answer is written, or the caller never sees it.
        response.call_on_close(lambda: threading.Thread(
            target=self.refuse, args=(float(seconds),), kwargs={"graceful": graceful},
            daemon=True).start())
        return response

    def restart(self, request: Request, body: dict[str, Any]) -> Response:
        """Body `{"downtime": s, "drop_sessions": bool}`; answered before the socket closes.

        With a downtime of 0 the restart is done before the answer, else it starts once the
        answer is written.
        """
        downtime = body.get("downtime", RESTART_DOWNTIME)
        if isinstance(downtime, bool) or not isinstance(downtime, int | float) or downtime < 0:
            raise ValueError("downtime: must be a number of seconds >= 0")
        drop = body.get("drop_sessions", False)
        if not isinstance(drop, bool):
            raise ValueError("drop_sessions: must be true or false")
        response = json_response(202, {"restarting_for": downtime, "drop_sessions": drop})
        if downtime == 0:
            self.restart_server(downtime=0, drop_sessions=drop)
            return response
        response.call_on_close(lambda: threading.Thread(
            target=self.restart_server,
            kwargs={"downtime": float(downtime), "drop_sessions": drop, "wait": False},
            daemon=True).start())
        return response

    def reset(self, request: Request, body: dict[str, Any]) -> Response:
        self.bridge.reset()
        return json_response(200, {"reset": True})


def _body(request: Request) -> dict[str, Any]:
    raw = request.get_data()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise ControlError(400, "body: not valid JSON") from None
    if not isinstance(body, dict):
        raise ControlError(400, "body: must be a JSON object")
    return body


def _field(body: dict[str, Any], name: str, kind: type) -> Any:
    value = body.get(name)
    if not isinstance(value, kind) or not value:
        raise ValueError(f"{name}: required ({kind.__name__})")
    return value


def _optional(body: dict[str, Any], name: str, kind: type) -> Any:
    value = body.get(name)
    if value is not None and not isinstance(value, kind):
        raise ValueError(f"{name}: must be a {kind.__name__}")
    return value
