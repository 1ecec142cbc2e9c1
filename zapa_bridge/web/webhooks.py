"""`POST /api/v1/webhooks/whatsapp`: where zapw posts every event.

Thin on purpose: authenticate, parse, hand to the intake (dedupe and apply, queue or
spool: one Redis call), answer. Whatever takes longer (a session's release of its held
messages) happens in the `handle_event` task, so zapw gets its answer in milliseconds, far
inside its 10 s timeout.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from flask import Blueprint, Response, current_app, request

from zapa_bridge.errors import IntakeUnavailable, InvalidEvent
from zapa_bridge.inbound.auth import WebhookUnauthorized
from zapa_bridge.inbound.events import MAX_NESTING, nested_deeper_than, parse_event
from zapa_bridge.logs import line
from zapa_bridge.web import throttle
from zapa_bridge.web.api_errors import ApiError

log = logging.getLogger("zapa.webhooks")

webhooks = Blueprint("webhooks", __name__)

WEBHOOK_PATH = "/api/v1/webhooks/whatsapp"

# The four answers, as `jsonify` would write them, built once: zapw posts every event here.
_ANSWERS = {outcome: json.dumps({"status": outcome}, separators=(",", ":")).encode() + b"\n"
            for outcome in ("accepted", "duplicate", "ignored", "spooled")}


@webhooks.post(WEBHOOK_PATH)
def receive() -> Any:
    web = current_app.extensions["zapa_web"]
    throttle.refuse_if_blocked(throttle.WEBHOOK)
    token = request.args.get("token")
    # A token in the URL is checked before a byte of the body is read: a guesser is refused
    # without being waited for.
    body = b"" if web.authenticator.decides_by_token(token) else _body()
    try:
        web.authenticator.verify(token=token, headers=request.headers, body=body)
    except WebhookUnauthorized as exc:
        log.warning(line("webhook.refused", remote=throttle.client_address(), reason=str(exc)))
        retry_after = throttle.record_failure(throttle.WEBHOOK)
        if retry_after is not None:
            return throttle.too_many_failures(retry_after)
        raise ApiError(401, "unauthorized", str(exc)) from None
    if not body:
        body = _body()
    payload = decode_body(body)
    try:
        event = parse_event(payload)
    except InvalidEvent as exc:
        raise ApiError(422, "invalid_envelope", str(exc), field=exc.field) from None
    try:
        outcome = web.intake.accept(event)
    except IntakeUnavailable as exc:
        log.error(line("webhook.unavailable", event_type=event.event_type,
                       session=event.session, error=str(exc)))
        raise ApiError(503, "unavailable", "the event could not be stored; retry") from None
    return Response(_ANSWERS[outcome], mimetype="application/json")


def _body() -> bytes:
    return request.get_data(cache=False)


def decode_body(body: bytes) -> Any:
    """The JSON of a body, or a 400: not JSON, or nested deeper than `MAX_NESTING` (a
    body Python's decoder cannot even unwind gives `RecursionError`, answered the same)."""
    try:
        payload = json.loads(body)
    except RecursionError:
        payload = None
    except ValueError:
        raise ApiError(400, "invalid_json", "the body is not JSON") from None
    else:
        if not nested_deeper_than(payload, MAX_NESTING):
            return payload
    raise ApiError(400, "too_deep", f"the body nests deeper than {MAX_NESTING} levels")
