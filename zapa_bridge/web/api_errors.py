"""The one JSON error shape of every route: `{"error": {"code", "message"}}`."""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from zapa_bridge.errors import ZapaError


class ApiError(ZapaError):
    """An error answered to an HTTP client with its status and a machine-readable code."""

    def __init__(self, status: int, code: str, message: str, *,
                 field: str | None = None) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        super().__init__(message)

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field:
            error["field"] = self.field
        return {"error": error}


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(HTTPException, _http_error)


def _api_error(error: ApiError) -> Any:
    return jsonify(error.body()), error.status


def _http_error(error: HTTPException) -> Any:
    code = (error.name or "error").lower().replace(" ", "_")
    return _api_error(ApiError(error.code or 500, code, error.description or error.name))
