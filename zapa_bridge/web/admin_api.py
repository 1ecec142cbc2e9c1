"""The operators' JSON API under `/api/v1/integration/`, behind `Bearer $ZAPA_ADMIN_TOKEN`.

Wrong tokens are throttled per client address (`throttle`, shared with the admin page's
sign-in). A body is read only after the token check; `POST messages` reads at most what
zapw could be sent (`send_request_limit`).
"""

from __future__ import annotations

import hmac
import logging
import time
from typing import Any

import redis
from flask import Blueprint, Response, current_app, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from zapa_bridge.errors import (
    BridgeError,
    InvalidMessage,
    NotADeadLetter,
    QueueUnavailable,
    SessionAlreadyExists,
    SessionNotFound,
)
from zapa_bridge.logs import line
from zapa_bridge.outbound.messages import check_field_names
from zapa_bridge.session_ids import session_id_problem
from zapa_bridge.web import throttle
from zapa_bridge.web.api_errors import ApiError

log = logging.getLogger("zapa.web.admin_api")

admin_api = Blueprint("admin_api", __name__, url_prefix="/api/v1/integration")

# What a send request may carry beyond zapw's body: our own fields (session, priority,
# idempotency key, ttl), longer field names, the client's whitespace and escapes.
SEND_REQUEST_ALLOWANCE = 4096


def web() -> Any:
    return current_app.extensions["zapa_web"]


def token_matches(given: str | None) -> bool:
    """Constant-time check of an admin token; open only when none is configured (dev)."""
    expected = web().admin_token
    if expected is None:
        return True
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


@admin_api.before_request
def require_admin_token() -> Response | None:
    if web().admin_token is None:
        return None  # development without a token: open, nothing to guess
    # Blocked first: while an address is blocked, even the right token is refused.
    throttle.refuse_if_blocked(throttle.ADMIN)
    header = request.headers.get("Authorization")
    given = header[7:] if header is not None and header.startswith("Bearer ") else None
    if token_matches(given):
        return None
    if header is not None:  # a request with no credentials at all guesses nothing
        log.warning(line("admin_api.refused", remote=throttle.client_address()))
        retry_after = throttle.record_failure(throttle.ADMIN)
        if retry_after is not None:
            return throttle.too_many_failures(retry_after)
    raise ApiError(401, "unauthorized", "Authorization: Bearer <ZAPA_ADMIN_TOKEN> required")


@admin_api.get("/health")
def health() -> Any:
    checker = web().health_checker()
    snapshot = checker.latest() or checker.run()
    body = snapshot.as_dict()
    body["age"] = round(time.time() - snapshot.taken_at, 1)
    return jsonify(body)


@admin_api.post("/reinitialize")
def reinitialize() -> Any:
    report = web().run_reconcile()
    snapshot = web().health_checker().run()
    return jsonify({"reconcile": report.as_dict(), "health": snapshot.as_dict()})


@admin_api.get("/queue/stats")
def queue_stats() -> Any:
    return jsonify(web().queue_overview())


@admin_api.get("/sessions")
def list_sessions() -> Any:
    core = web().core
    held = core.held.counts()
    try:
        sessions = [_session_json(info) for info in core.bridge.list_sessions()]
        source, error = "bridge", None
    except BridgeError as exc:
        sessions = [state.as_dict() for state in core.sessions.all()]
        source, error = "registry", exc.message
    for session in sessions:
        session["held"] = held.get(session["id"], 0)
    return jsonify({"sessions": sessions, "source": source, "error": error})


@admin_api.post("/sessions")
def create_session() -> Any:
    body = _json_body()
    session_id = body.get("session_id") if isinstance(body, dict) else None
    if session_id == "":
        session_id = None  # as absent: the bridge picks the id
    if session_id is not None:
        _check_session_id(session_id)
    try:
        info = web().core.bridge.create_session(session_id)
    except SessionAlreadyExists as exc:
        raise ApiError(409, "session_exists", exc.message) from None
    except BridgeError as exc:
        raise ApiError(502, "bridge_error", exc.message) from None
    return jsonify(_session_json(info)), 201


@admin_api.delete("/sessions/<session_id>")
def delete_session(session_id: str) -> Any:
    _check_session_id(session_id)
    core = web().core
    try:
        core.bridge.delete_session(session_id)
    except SessionNotFound as exc:
        core.sessions.forget(session_id)
        raise ApiError(404, "not_found", exc.message) from None
    except BridgeError as exc:
        raise ApiError(502, "bridge_error", exc.message) from None
    # Deleted on purpose: sends to it fail from now on instead of waiting for it.
    core.sessions.forget(session_id)
    return "", 204


@admin_api.get("/messages/<message_id>")
def get_message(message_id: str) -> Any:
    record = web().core.store.get(message_id)
    if record is None:
        raise ApiError(404, "not_found", f"no message {message_id}")
    return jsonify(record.as_dict())


@admin_api.post("/messages")
def send() -> Any:
    body = _send_request()
    key = request.headers.get("Idempotency-Key")
    if key is not None:
        body = {**body, "idempotency_key": key}
    try:
        # Before the body becomes keyword arguments, where `default_session` would clash.
        check_field_names(body)
        result = web().send_message.apply_async(kwargs=body)
    except InvalidMessage as exc:
        raise ApiError(422, "invalid_message", str(exc), field=exc.field) from None
    except QueueUnavailable as exc:
        raise ApiError(503, "unavailable", str(exc)) from None
    answer = jsonify({"id": result.id, "status": "queued"})
    answer.headers["Location"] = f"{admin_api.url_prefix}/messages/{result.id}"
    return answer, 202


@admin_api.get("/dead-letters")
def dead_letters() -> Any:
    limit, offset = _page()
    letters = web().core.dead_letters
    return jsonify({"count": letters.count(),
                    "dead_letters": [dict(record.as_dict(), message=record.message)
                                     for record in letters.list(limit, offset)]})


@admin_api.post("/dead-letters/<message_id>/replay")
def replay(message_id: str) -> Any:
    try:
        record = web().core.outbox.replay(message_id)
    except NotADeadLetter as exc:
        raise ApiError(404, "not_found", str(exc)) from None
    except QueueUnavailable as exc:
        raise ApiError(503, "unavailable", str(exc)) from None
    return jsonify(record.as_dict())


@admin_api.delete("/dead-letters")
def purge() -> Any:
    return jsonify({"purged": web().core.dead_letters.purge()})


@admin_api.get("/inbound-dead-letters")
def inbound_dead_letters() -> Any:
    limit, offset = _page()
    letters = web().core.inbound_dead_letters
    return jsonify({"count": letters.count(),
                    "inbound_dead_letters": [letter.as_dict()
                                             for letter in letters.list(limit, offset)]})


@admin_api.post("/inbound-dead-letters/<letter_id>/replay")
def replay_inbound(letter_id: str) -> Any:
    try:
        letter = web().core.inbound_dead_letters.replay(letter_id)
    except NotADeadLetter as exc:
        raise ApiError(404, "not_found", str(exc)) from None
    except redis.RedisError as exc:
        raise ApiError(503, "unavailable", f"redis unreachable: {type(exc).__name__}") \
            from None
    return jsonify(letter.as_dict(with_body=False))


@admin_api.delete("/inbound-dead-letters")
def purge_inbound() -> Any:
    return jsonify({"purged": web().core.inbound_dead_letters.purge()})


def send_request_limit() -> int:
    """The largest `POST messages` body read: zapw's own limit (ZAPW_MAX_BODY_BYTES), which
    the message's zapw body must fit anyway, plus `SEND_REQUEST_ALLOWANCE`."""
    return int(web().core.settings.zapw_max_body_bytes) + SEND_REQUEST_ALLOWANCE


def _send_request() -> dict[str, Any]:
    limit = send_request_limit()
    request.max_content_length = limit  # this route's limit, not the app's (webhooks')
    size = request.content_length
    if size is not None and size > limit:
        raise _too_large(f"{size} bytes", limit)
    try:
        body = _json_body()
    except RequestEntityTooLarge:  # no Content-Length, and the stream ran over
        raise _too_large(f"over {limit} bytes", limit) from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", "the body must be a JSON object")
    return body


def _too_large(size: str, limit: int) -> ApiError:
    return ApiError(413, "request_entity_too_large",
                    f"the request body is {size}; a send takes at most {limit} "
                    f"(ZAPW_MAX_BODY_BYTES, the largest body zapw accepts, plus "
                    f"{SEND_REQUEST_ALLOWANCE}): send large media by media_url")


def _json_body() -> Any:
    """The request's JSON, or None when it is not JSON. A body nested too deep for the
    decoder is a 400, never a 500."""
    try:
        return request.get_json(silent=True)
    except RecursionError:
        raise ApiError(400, "too_deep", "the body nests too deeply to be read") from None


def _check_session_id(value: object) -> None:
    problem = session_id_problem(value)
    if problem is not None:
        raise ApiError(422, "invalid_request", f"session_id {problem}", field="session_id")


def _page() -> tuple[int, int]:
    """`?limit=&offset=` of a listing."""
    return _int_arg("limit", 100, 1, 1000), _int_arg("offset", 0, 0, 10**9)


def _int_arg(name: str, default: int, lowest: int, highest: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = lowest - 1
    if not lowest <= value <= highest:
        raise ApiError(422, "invalid_request", f"{name} must be a whole number from {lowest} "
                       f"to {highest}", field=name)
    return value


def _session_json(info: Any) -> dict[str, Any]:
    return {"id": info.id, "status": info.status, "phone_number": info.phone_number,
            "name": info.name, "created_at": info.created_at,
            "connected_at": info.connected_at, "qr_code": info.qr_code,
            "qr_expires_at": info.qr_expires_at}
