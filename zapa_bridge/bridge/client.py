"""HTTP client of the zapw bridge, and the one place its failures become our errors.

Every call has a timeout, answers are unwrapped from zapw's `{status, data}` envelope, and
every `requests` exception or error answer is translated here into the `BridgeError` tree,
so no other module ever sees a `requests` exception.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypedDict, cast

import requests
from opentelemetry.trace import SpanKind
from requests.adapters import HTTPAdapter

from zapa_bridge.config import DEFAULT_MAX_BODY_BYTES, Settings
from zapa_bridge.errors import (
    BridgeError,
    BridgeInvalidRequest,
    BridgeRejectedBody,
    BridgeServerError,
    BridgeTimeout,
    BridgeUnauthorized,
    BridgeUnreachable,
    SessionAlreadyExists,
    SessionNotConnected,
    SessionNotFound,
    UnexpectedBridgeResponse,
)
from zapa_bridge.outbound.messages import OutboundMessage, encode_body
from zapa_bridge.session_ids import path_segment
from zapa_bridge.tracing import span

# zapw blocks up to 30 s on create waiting for a QR, and ~15 s on a get that refreshes one.
CREATE_SESSION_TIMEOUT = 35.0
GET_SESSION_TIMEOUT = 20.0
NOT_CONNECTED_TEXT = "session not connected"
DROPPED_AFTER_SENDING = frozenset({"Connection reset", "Remote end closed connection"})
# Express's own error handler answers outside zapw's envelope (`statusCode`, no `status`):
# in production with this text, in development with the body parser's own message.
BODY_REFUSAL_TEXTS = ("an unexpected error occurred", "request entity too large", "json")
JSON_HEADERS = {"Content-Type": "application/json"}


@dataclass(frozen=True, slots=True)
class BridgeHealth:
    status: str
    service: str
    uptime: float
    timestamp: str


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """A zapw session object; fields zapw omits are None."""

    id: str
    status: str
    created_at: str | None = None
    phone_number: str | None = None
    name: str | None = None
    connected_at: str | None = None
    qr_code: str | None = None
    qr_expires_at: str | None = None

    @property
    def connected(self) -> bool:
        return self.status == "connected"

    @classmethod
    def from_bridge(cls, data: dict[str, Any]) -> SessionInfo:
        return cls(
            id=str(data["id"]),
            status=str(data.get("status", "unknown")),
            created_at=data.get("createdAt"),
            phone_number=data.get("phoneNumber"),
            name=data.get("name"),
            connected_at=data.get("connectedAt"),
            qr_code=data.get("qrCode"),
            qr_expires_at=data.get("qrExpiresAt"),
        )


@dataclass(frozen=True, slots=True)
class SendReceipt:
    """zapw's answer to an accepted send; `message_id` may be empty."""

    message_id: str
    timestamp: int | None
    status: str


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One event of zapw's `GET /events` list, kept whether or not its webhook was posted.

    `session_id` is the JSON value zapw holds (usually a string); `timestamp` is when zapw
    stored the event (epoch ms), a few ms from the webhook's own.
    """

    id: str
    session_id: Any
    event_type: Any
    timestamp: Any
    data: Any

    @classmethod
    def from_bridge(cls, item: dict[str, Any]) -> StoredEvent:
        return cls(id=str(item.get("id", "")), session_id=item.get("sessionId"),
                   event_type=item.get("eventType"), timestamp=item.get("timestamp"),
                   data=item.get("data"))

    def envelope(self) -> dict[str, Any]:
        """The webhook body this event would have been posted as (zapw's list keeps no
        `origin`)."""
        return {"sessionId": self.session_id, "eventType": self.event_type,
                "timestamp": self.timestamp, "data": self.data}


class BridgeClient:
    """A keep-alive connection pool to one zapw bridge."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: float = 15.0,
        connect_timeout: float = 3.05,
        pool_size: int = 32,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        # The largest JSON body this bridge parses: messages are checked against it first.
        self.max_body_bytes = max_body_bytes
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self._http = requests.Session()
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=pool_size, max_retries=0)
        self._http.mount("http://", adapter)
        self._http.mount("https://", adapter)
        self._http.headers["Accept"] = "application/json"
        if api_key:
            self._http.headers["Authorization"] = f"Bearer {api_key}"

    @classmethod
    def from_settings(cls, settings: Settings) -> BridgeClient:
        key = settings.zapw_api_key.get_secret_value() if settings.zapw_api_key else None
        return cls(settings.zapw_base_url, api_key=key, timeout=settings.zapw_timeout,
                   connect_timeout=settings.zapw_connect_timeout,
                   pool_size=max(10, settings.worker_concurrency),
                   max_body_bytes=settings.zapw_max_body_bytes)

    def close(self) -> None:
        self._http.close()

    # -- calls -------------------------------------------------------------------------

    def health(self) -> BridgeHealth:
        data = self._call("GET", "/health", envelope=False)
        return BridgeHealth(status=str(data.get("status")), service=str(data.get("service")),
                            uptime=float(data.get("uptime") or 0.0),
                            timestamp=str(data.get("timestamp")))

    def list_sessions(self) -> list[SessionInfo]:
        data = self._call("GET", "/sessions")
        if not isinstance(data, list):
            raise UnexpectedBridgeResponse("session list is not a list", status_code=200)
        return [SessionInfo.from_bridge(item) for item in data]

    def get_session(self, session_id: str) -> SessionInfo:
        data = self._call("GET", _session_path(session_id), session_id=session_id,
                          timeout=GET_SESSION_TIMEOUT)
        return SessionInfo.from_bridge(data)

    def create_session(self, session_id: str | None = None) -> SessionInfo:
        if session_id:
            _session_path(session_id)  # a session no URL could reach is not made
        body = {"sessionId": session_id} if session_id else {}
        data = self._call("POST", "/sessions", body=encode_body(body), session_id=session_id,
                          timeout=CREATE_SESSION_TIMEOUT)
        return SessionInfo.from_bridge(data)

    def delete_session(self, session_id: str) -> None:
        self._call("DELETE", _session_path(session_id), session_id=session_id)

    def recent_events(self) -> list[StoredEvent]:
        """`GET /events`: the last events zapw emitted, for every session, newest first."""
        data = self._call("GET", "/events")
        if not isinstance(data, list):
            raise UnexpectedBridgeResponse("event list is not a list", status_code=200)
        return [StoredEvent.from_bridge(item) for item in data if isinstance(item, dict)]

    def send(self, session_id: str, message: OutboundMessage) -> SendReceipt:
        with span("zapa.bridge.send", kind=SpanKind.CLIENT,
                  attributes={"zapa.session": session_id,
                              "zapa.message_type": str(message.type)}) as current:
            data = self._call("POST", _session_path(session_id, "/messages"),
                              body=message.bridge_payload(), session_id=session_id)
            if isinstance(data, dict) and data.get("messageId"):
                current.set_attribute("zapa.bridge_message_id", str(data["messageId"]))
        if not isinstance(data, dict):
            raise UnexpectedBridgeResponse("send answer has no data object", status_code=200,
                                           session_id=session_id)
        timestamp = data.get("timestamp")
        return SendReceipt(message_id=str(data.get("messageId") or ""),
                           timestamp=int(timestamp) if isinstance(timestamp, int | float) else None,
                           status=str(data.get("status", "sent")))

    # -- the boundary ------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        session_id: str | None = None,
        timeout: float | None = None,
        envelope: bool = True,
    ) -> Any:
        """`body`: JSON already encoded by `encode_body`, so what was measured is what goes."""
        try:
            response = self._http.request(
                method, self.base_url + path, data=body,
                headers=JSON_HEADERS if body is not None else None,
                timeout=(self.connect_timeout, timeout or self.timeout),
            )
        except requests.ConnectTimeout as exc:
            raise BridgeUnreachable(f"connect to bridge timed out: {type(exc).__name__}",
                                    session_id=session_id) from None
        except requests.Timeout:
            raise BridgeTimeout(f"bridge did not answer {method} in time",
                                session_id=session_id) from None
        except requests.ConnectionError as exc:
            reason = _reason(exc)
            # A connection dropped after the request went out may have been acted on.
            raise BridgeUnreachable(f"bridge unreachable: {reason}", session_id=session_id,
                                    maybe_sent=reason in DROPPED_AFTER_SENDING) from None
        except requests.RequestException as exc:
            raise BridgeUnreachable(f"bridge request failed: {type(exc).__name__}",
                                    session_id=session_id) from None
        return _unwrap(response, session_id=session_id, envelope=envelope)


def _unwrap(response: requests.Response, *, session_id: str | None, envelope: bool) -> Any:
    status = response.status_code
    if status == 204:
        return None
    body = _json_or_none(response)
    if 200 <= status < 300:
        if not isinstance(body, dict):
            raise UnexpectedBridgeResponse(f"{status} answer is not a JSON object",
                                           status_code=status, session_id=session_id)
        if not envelope:
            return body
        if body.get("status") != "success" or "data" not in body:
            raise UnexpectedBridgeResponse(f"{status} answer lacks the success envelope",
                                           status_code=status, session_id=session_id)
        return body["data"]
    raise _error_for(status, body, session_id)


class _ErrorFields(TypedDict):
    status_code: int
    session_id: str | None


def _error_for(status: int, body: Any, session_id: str | None) -> BridgeError:
    text = _error_text(body)
    kwargs: _ErrorFields = {"status_code": status, "session_id": session_id}
    if status == 401:
        return BridgeUnauthorized(f"bridge refused the API key: {text}", **kwargs)
    if status == 400 and text.strip().lower() == NOT_CONNECTED_TEXT:
        return SessionNotConnected(text, **kwargs)
    if status == 400:
        return BridgeInvalidRequest(text, **kwargs)
    if status == 404 and isinstance(body, dict) and "not found" in text.lower():
        return SessionNotFound(text, **kwargs)
    if status == 409:
        return SessionAlreadyExists(text, **kwargs)
    if _is_body_refusal(status, body):
        return BridgeRejectedBody(
            f"zapw's body parser refused the request (too large or not JSON): {text}", **kwargs)
    if status >= 500:
        return BridgeServerError(text, **kwargs)
    # An Express HTML 404 (unknown route) means ZAPW_URL points at the wrong place.
    return UnexpectedBridgeResponse(f"{status}: {text}", **kwargs)


def _is_body_refusal(status: int, body: Any) -> bool:
    """Express's 500 for a body it could not parse, given before any route or key check.
    zapw's routes answer their own 500s inside the envelope; those may pass on a retry."""
    if status != 500 or not isinstance(body, dict) or "status" in body \
            or "statusCode" not in body:
        return False
    message = body.get("message")
    return isinstance(message, str) and any(text in message.lower()
                                            for text in BODY_REFUSAL_TEXTS)


def _error_text(body: Any) -> str:
    if isinstance(body, dict):
        for key in ("error", "message"):
            if isinstance(body.get(key), str) and body[key]:
                detail = body.get("message") if key == "error" else None
                if isinstance(detail, str) and detail and detail != body[key]:
                    return f"{body[key]}: {detail}"
                return cast(str, body[key])
    return "no JSON error body"


def _json_or_none(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _reason(exc: requests.ConnectionError) -> str:
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known", "Connection reset",
                   "Remote end closed connection"):
        if marker in text:
            return marker
    return type(exc).__name__


def _session_path(session_id: str, tail: str = "") -> str:
    """`/sessions/{id}{tail}` with the id percent-encoded. An id that would make another
    path (`.` and `..`: `requests` drops or climbs them) is refused before anything is sent."""
    try:
        segment = path_segment(str(session_id))
    except ValueError as exc:
        raise BridgeInvalidRequest(str(exc), session_id=session_id) from None
    return f"/sessions/{segment}{tail}"
