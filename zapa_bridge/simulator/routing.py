"""A small Express-like router and the response shapes both HTTP edges share.

Express matches paths case-insensitively, tolerates one trailing slash, matches `:param`
against the still-encoded path and decodes it afterwards (so `a%2Fb` is one id). Werkzeug's
own routing differs on each point, hence this.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

from werkzeug.wrappers import Response

JSON_TYPE = "application/json; charset=utf-8"
Handler = Callable[..., Response]


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler


class Router:
    def __init__(self) -> None:
        self._routes: list[Route] = []

    def add(self, method: str, template: str, handler: Handler) -> None:
        """Register `handler` for e.g. ("POST", "/sessions/:id/messages")."""
        regex = re.sub(r":(\w+)", r"(?P<\1>[^/]+)", template.rstrip("/"))
        pattern = re.compile(f"^{regex}/?$", re.IGNORECASE)
        self._routes.append(Route(method, pattern, handler))

    def match(self, method: str, path: str) -> tuple[Handler, dict[str, str]] | None:
        """The handler and decoded params for a raw (still encoded) path; HEAD is GET."""
        wanted = "GET" if method == "HEAD" else method
        for route in self._routes:
            found = route.pattern.match(path)
            if found and route.method == wanted:
                params = {name: unquote(value, errors="strict")
                          for name, value in found.groupdict().items()}
                return route.handler, params
        return None


def raw_path(environ: dict[str, Any]) -> str:
    """The request path as the client sent it, still percent-encoded."""
    uri = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if uri:
        path = uri.split("?", 1)[0]
        if "://" in path:  # absolute-form request target
            path = "/" + path.split("://", 1)[1].partition("/")[2]
        return path or "/"
    return quote(environ.get("PATH_INFO", "/"))


def json_response(status: int, body: Any) -> Response:
    """A compact JSON answer, as Express' `res.json` writes it."""
    return Response(json.dumps(body, separators=(",", ":")), status=status,
                    content_type=JSON_TYPE)
