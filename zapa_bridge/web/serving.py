"""What the web process needs from its server beyond Flask: a request body read against a
deadline and within the size limit, and an error log that never carries a query string.

gunicorn runs gevent workers (gunicorn.conf.py): a connection that is slow to send holds a
greenlet, not one of a few threads, so slow clients cannot starve the webhook. The worker
class there bounds a request's line and headers (ZAPA_WEB_HEADER_TIMEOUT); the body is
bounded here (ZAPA_WEB_BODY_TIMEOUT), since gunicorn reads it only when the app does.
gevent patches the standard library when its worker starts, before the app is imported:
redis-py, requests and the spool drainer's thread then yield to other connections while
they wait. sqlite3 (the spool) does not; its calls are short and local. This module is
imported by the app and by a worker's hook, never by gunicorn's master, which must stay
unpatched.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any

import gevent
from flask import request
from gevent import monkey  # only asked whether it patched, never told to
from werkzeug.exceptions import RequestEntityTooLarge, RequestTimeout
from werkzeug.wsgi import get_content_length

from zapa_bridge.errors import ConfigError

BODY_TIMEOUT_VARIABLE = "ZAPA_WEB_BODY_TIMEOUT"
DEFAULT_BODY_TIMEOUT = 10.0

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

# A query string as it appears in a request line or URI: `?` up to a space or a quote.
_QUERY = re.compile(r"\?[^\s'\"]*")


def body_timeout(environ: dict[str, str] | None = None) -> float:
    """`ZAPA_WEB_BODY_TIMEOUT`: seconds a request may take to send its whole body."""
    raw = (os.environ if environ is None else environ).get(BODY_TIMEOUT_VARIABLE)
    if raw is None or raw == "":
        return DEFAULT_BODY_TIMEOUT
    try:
        seconds = float(raw)
    except ValueError:
        seconds = 0.0
    if not seconds > 0:
        raise ConfigError({BODY_TIMEOUT_VARIABLE: f"must be a number of seconds > 0, not {raw!r}"})
    return seconds


class RequestBodyGuard:
    """WSGI middleware: the body must arrive within `timeout` seconds of the headers (or
    408), and a chunked body over the request's limit (Flask's `max_content_length`, the
    app's or a route's own) is refused (413), not cut to the limit."""

    def __init__(self, app: WSGIApp, *, timeout: float) -> None:
        self.app = app
        self.timeout = timeout

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        stream = environ["wsgi.input"]
        if _gevent_patched():
            stream = DeadlineInput(stream, time.monotonic() + self.timeout)
        if _length_unknown(environ):
            stream = ChunkedLimit(stream, lambda: request.max_content_length)
        environ["wsgi.input"] = stream
        return self.app(environ, start_response)


class DeadlineInput:
    """A `wsgi.input` whose reads raise 408 once the deadline has passed, even mid-read."""

    def __init__(self, stream: IO[bytes], deadline: float) -> None:
        self._stream = stream
        self._deadline = deadline

    def read(self, size: int = -1) -> bytes:
        return self._before_deadline(lambda: self._stream.read(size))

    def readline(self, size: int = -1) -> bytes:
        return self._before_deadline(lambda: self._stream.readline(size))

    def readlines(self, hint: int = -1) -> list[bytes]:
        return self._before_deadline(lambda: self._stream.readlines(hint))

    def __iter__(self) -> Iterator[bytes]:
        while line := self.readline():
            yield line

    def _before_deadline(self, read: Callable[[], Any]) -> Any:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise _too_slow()
        timer = gevent.Timeout(remaining)
        timer.start()
        try:
            return read()
        except gevent.Timeout as exc:
            if exc is not timer:
                raise
            raise _too_slow() from None
        finally:
            timer.close()


class ChunkedLimit:
    """A chunked `wsgi.input` that raises 413 once the body proves longer than `limit()`
    (asked at each read, inside the request: a view may lower it; None is no limit).

    werkzeug reads a body of unknown length up to the limit and stops there, silently: the
    view would get a cut body (answered 400 as bad JSON). When exactly the limit has been
    read, one more byte is asked for: if it exists, the body is too large."""

    def __init__(self, stream: IO[bytes], limit: Callable[[], int | None]) -> None:
        self._stream = stream
        self._limit = limit
        self._read = 0

    def read(self, size: int = -1) -> bytes:
        left = self._left()
        if left is None:
            return self._stream.read(size)
        return self._counted(self._stream.read(left if size < 0 else min(size, left)))

    def readline(self, size: int = -1) -> bytes:
        left = self._left()
        if left is None:
            return self._stream.readline(size)
        return self._counted(self._stream.readline(left if size < 0 else min(size, left)))

    def readlines(self, hint: int = -1) -> list[bytes]:
        return list(self)

    def __iter__(self) -> Iterator[bytes]:
        while line := self.readline():
            yield line

    def _left(self) -> int | None:
        """Bytes to read at most, one past the limit included (None: no limit)."""
        limit = self._limit()
        return None if limit is None else limit + 1 - self._read

    def _counted(self, data: bytes) -> bytes:
        self._read += len(data)
        limit = self._limit()
        if limit is not None and self._read == limit and self._stream.read(1):
            self._read += 1
        if limit is not None and self._read > limit:
            raise RequestEntityTooLarge(f"the body is over {limit} bytes")
        return data


def hide_query_strings(logger: logging.Logger) -> None:
    """Strip query strings from every line `logger` writes (gunicorn's error log quotes a
    bad request line whole, the webhook's `?token=` included)."""
    if not any(isinstance(known, QueryStringFilter) for known in logger.filters):
        logger.addFilter(QueryStringFilter())


class QueryStringFilter(logging.Filter):
    """Rewrites a record's message, and its traceback, with every `?query` replaced."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.msg, record.args = strip_query_strings(message), None
        if record.exc_text:
            record.exc_text = strip_query_strings(record.exc_text)
        return True


def strip_query_strings(text: str) -> str:
    return _QUERY.sub("?[query removed]", text)


def _length_unknown(environ: dict[str, Any]) -> bool:
    """A chunked body, which the server ends itself: werkzeug cuts such a body at the
    limit (where it would refuse a Content-Length over it)."""
    return bool(environ.get("wsgi.input_terminated")) and get_content_length(environ) is None


def _gevent_patched() -> bool:
    """Whether a gevent worker serves us (it patched the sockets): only then can a timer
    cut a blocked read short."""
    return bool(monkey.is_module_patched("socket"))


def _too_slow() -> RequestTimeout:
    return RequestTimeout("the request body did not arrive in time")
