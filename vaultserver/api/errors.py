"""The one place errors become HTTP responses: `{"error": {"code", "message", "details", "timestamp"}}`."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from quart import Quart, Response, jsonify
from werkzeug.exceptions import HTTPException

from vaultserver.errors import VaultError

log = logging.getLogger(__name__)

HTTP_CODES = {
    400: "VALIDATION_001",
    401: "AUTH_002",
    403: "SEC_001",
    404: "MEDIA_001",
    405: "VALIDATION_001",
    413: "VALIDATION_001",
    416: "MEDIA_004",
    429: "AUTH_005",
}


def error_response(code: str, message: str, status: int, details: dict[str, Any] | None = None) -> Response:
    body = {
        "error": {
            "code": code,
            "message": message,
            "details": details or {},
            "timestamp": datetime.now(UTC).isoformat(),
        }
    }
    response = jsonify(body)
    response.status_code = status
    retry_after = (details or {}).get("retry_after")
    if retry_after:
        response.headers["Retry-After"] = str(retry_after)
    return response


def install(app: Quart) -> None:
    @app.errorhandler(VaultError)
    async def vault_error(exc: VaultError) -> Response:
        level = logging.WARNING if exc.status < 500 else logging.ERROR
        log.log(level, "%s %s: %s", exc.code, exc.status, exc.message)
        return error_response(exc.code, exc.message, exc.status, exc.details)

    @app.errorhandler(HTTPException)
    async def http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        return error_response(HTTP_CODES.get(status, "SYSTEM_001"), exc.description or exc.name, status)

    @app.errorhandler(Exception)
    async def unexpected(exc: Exception) -> Response:
        log.exception("Unhandled error")
        return error_response("SYSTEM_001", "Internal error; see the server log", 500)
