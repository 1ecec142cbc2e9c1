"""Failed credential checks per client address, counted in Redis: too many, and that
address is refused for the rest of the window, right credentials or not.

One throttle serves the admin page's sign-in, the admin API's bearer check and the
webhook's token check. Scopes keep the admin token's guesses apart from the webhook
token's, so a misconfigured zapw never locks the operators out. A blocked address gets
429 before its credentials are looked at: while blocked, a right guess is worth nothing.
If Redis does not answer, failures go uncounted and requests go through (the webhook must
keep spooling); the checks themselves still run.

At the edges, two calls around the credential check:

    throttle.refuse_if_blocked(throttle.ADMIN)     # before: 429 with Retry-After
    ...
    throttle.record_failure(throttle.ADMIN)        # when the check failed
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

import redis
from flask import Response, abort, current_app, jsonify, request

from zapa_bridge.logs import line
from zapa_bridge.store import keys
from zapa_bridge.web.api_errors import ApiError

log = logging.getLogger("zapa.web.throttle")

ADMIN = "admin"  # ZAPA_ADMIN_TOKEN: the page's sign-in and the API's bearer check
WEBHOOK = "webhook"  # ZAPA_WEBHOOK_TOKEN or the signature
FAILURES_ALLOWED = 10
WINDOW_SECONDS = 60
# Blocked addresses one process remembers; past it the oldest is forgotten (it is still
# counted in Redis, so its next failure blocks it again).
MAX_REMEMBERED = 10_000


class FailureThrottle:
    """Counts failures per (scope, address) in Redis, in fixed windows that start at the
    first failure, and remembers in this process which addresses are blocked.

    Asking whether an address is blocked costs no Redis call: every valid webhook asks.
    A process learns of a block from its own count (the INCR that reaches or passes the
    limit), so once the limit is reached, each other process checks at most one more
    credential of that address before it refuses the rest of the window too."""

    def __init__(self, client: redis.Redis, *, limit: int = FAILURES_ALLOWED,
                 window: int = WINDOW_SECONDS, clock: Callable[[], float] = time.monotonic
                 ) -> None:
        self._redis = client
        self.limit = limit
        self.window = window
        self._clock = clock
        self._blocked_until: dict[tuple[str, str], float] = {}

    def blocked(self, scope: str, address: str) -> int | None:
        """Seconds until `address` may try again in `scope`, or None when it may now."""
        until = self._blocked_until.get((scope, address))
        if until is None:
            return None
        remaining = until - self._clock()
        if remaining <= 0:
            del self._blocked_until[scope, address]
            return None
        return max(1, math.ceil(remaining))

    def failed(self, scope: str, address: str) -> int | None:
        """Count one failure; returns the seconds `address` is blocked for when this failure
        was past the limit (the `limit`-th is still answered as a plain failure, and blocks
        what follows)."""
        key = keys.auth_failures(scope, address)
        try:
            with self._redis.pipeline(transaction=True) as pipe:
                pipe.set(key, 0, ex=self.window, nx=True)
                pipe.incr(key)
                pipe.pttl(key)
                _, count, remaining_ms = pipe.execute()
        except redis.RedisError as exc:
            log.warning(line("auth.throttle_unavailable", scope=scope, error=type(exc).__name__))
            return None
        if int(count) < self.limit:
            return None
        retry_after = max(1, math.ceil(max(int(remaining_ms), 1) / 1000))
        self._remember(scope, address, retry_after)
        if int(count) == self.limit:  # the last failure allowed: answered as a failure
            log.warning(line("auth.throttled", scope=scope, remote=address,
                             failures=count, retry_after=retry_after))
            return None
        return retry_after

    def _remember(self, scope: str, address: str, seconds: int) -> None:
        now = self._clock()
        if len(self._blocked_until) >= MAX_REMEMBERED:  # many addresses: keep the live ones
            self._blocked_until = {entry: until for entry, until in self._blocked_until.items()
                                   if until > now}
            if len(self._blocked_until) >= MAX_REMEMBERED:
                self._blocked_until.pop(next(iter(self._blocked_until)))
        self._blocked_until[scope, address] = now + seconds


# -- at the Flask edges --------------------------------------------------------------------

def current() -> FailureThrottle:
    """The app's throttle (built by `create_app`)."""
    throttle: FailureThrottle = current_app.extensions["zapa_throttle"]
    return throttle


def client_address() -> str:
    """The address failures are counted by: the peer of the connection (a reverse proxy
    must set it from the real client, see docs/operations.md, Security)."""
    return request.remote_addr or "unknown"


def refuse_if_blocked(scope: str) -> None:
    """Answer 429 (the JSON error shape, with Retry-After) when this client is blocked."""
    retry_after = current().blocked(scope, client_address())
    if retry_after is not None:
        abort(too_many_failures(retry_after))


def record_failure(scope: str) -> int | None:
    """Count this client's failed check; the seconds it is now blocked for, if it is."""
    return current().failed(scope, client_address())


def too_many_failures(retry_after: int) -> Response:
    """The 429 answer; built here because it carries a header the error handler cannot."""
    error = ApiError(429, "too_many_requests",
                     f"too many failed attempts from this address; retry in {retry_after} s")
    response = jsonify(error.body())
    response.status_code = 429
    response.headers["Retry-After"] = str(retry_after)
    return response
