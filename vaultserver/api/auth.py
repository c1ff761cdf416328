"""Sign-in, refresh, sign-out, "who am I" — and the request guards every other blueprint uses.

Tokens come in an `Authorization: Bearer` header (API clients) or in HttpOnly cookies (the browser, so that
hls.js and Safari's native player can fetch keys). A state change authorised by a cookie must come from the
same origin (CSRF).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any
from urllib.parse import urlsplit

from quart import Blueprint, Response, current_app, g, jsonify, request

from vaultserver.errors import ValidationError, VaultError
from vaultserver.services import Services
from vaultserver.services.sessions import ACCESS_TTL, REFRESH_TTL, AuthError, Principal, Tokens

bp = Blueprint("auth", __name__, url_prefix="/api/auth")
ACCESS_COOKIE, REFRESH_COOKIE = "vault_access", "vault_refresh"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def services() -> Services:
    return current_app.config["VAULT_SERVICES"]


async def run(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Services are synchronous (SQLite, bcrypt): run them off the event loop."""
    return await asyncio.to_thread(fn, *args, **kwargs)


def client_ip() -> str:
    return str(g.client_ip) if getattr(g, "client_ip", None) else (request.remote_addr or "")


def _same_origin() -> bool:
    origin = request.headers.get("Origin") or request.headers.get("Referer")
    if not origin:
        return False
    return urlsplit(origin).netloc.lower() == (request.host or "").lower()


async def principal() -> Principal:
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        token, by_cookie = header[7:].strip(), False
    else:
        token, by_cookie = request.cookies.get(ACCESS_COOKIE, ""), True
    if not token:
        raise AuthError("Sign in first", code="AUTH_002")
    if by_cookie and request.method not in SAFE_METHODS and not _same_origin():
        raise VaultError("Cross-site request refused", code="SEC_002", status=403)
    who = await run(services().sessions.authenticate, token)
    g.principal = who
    return who


def require_auth(admin: bool = False) -> Callable:
    def decorate(view: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        @wraps(view)
        async def guarded(*args: Any, **kwargs: Any) -> Any:
            who = await principal()
            if admin and not who.is_admin:
                raise VaultError("Administrators only", code="AUTH_004", status=403)
            return await view(*args, **kwargs)

        return guarded

    return decorate


def _token_response(tokens: Tokens, body: dict[str, Any]) -> Response:
    response = jsonify(body)
    cookies = ((ACCESS_COOKIE, tokens.access_token, ACCESS_TTL, "/"),
               (REFRESH_COOKIE, tokens.refresh_token, REFRESH_TTL, "/api/auth"))
    for name, value, ttl, path in cookies:
        response.set_cookie(name, value, max_age=int(ttl.total_seconds()), path=path, secure=True,
                            httponly=True, samesite="Strict")
    response.headers["Cache-Control"] = "no-store"
    return response


def _token_body(tokens: Tokens) -> dict[str, Any]:
    return {
        "access_token": tokens.access_token,
        "refresh_token": tokens.refresh_token,
        "expires_in": tokens.expires_in,
        "token_type": tokens.token_type,
        "session_id": tokens.session_id,
    }


async def _json() -> dict[str, Any]:
    body = await request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ValidationError("Send a JSON object")
    return body


def _text(body: dict[str, Any], name: str, required: bool = True, limit: int = 256) -> str:
    value = body.get(name, "")
    if not isinstance(value, str) or (required and not value) or len(value) > limit:
        raise ValidationError(
            f"'{name}' must be a non-empty string of at most {limit} characters", details={"field": name}
        )
    return value


@bp.post("/login")
async def login() -> Response:
    body = await _json()
    username, password = _text(body, "username", limit=64), _text(body, "password", limit=1024)
    s = services()
    user = await run(s.users.authenticate, username, password, client_ip())
    tokens = await run(
        s.sessions.create,
        user,
        device_name=_text(body, "device_name", False, 128),
        device_type=_text(body, "device_type", False, 32),
        ip=client_ip(),
        user_agent=request.headers.get("User-Agent", ""),
    )
    return _token_response(tokens, {**_token_body(tokens), "user": user.to_dict()})


@bp.post("/refresh")
async def refresh() -> Response:
    body = await request.get_json(silent=True) or {}
    token = body.get("refresh_token") if isinstance(body, dict) else None
    if not token:
        token = request.cookies.get(REFRESH_COOKIE, "")
        if token and not _same_origin():
            raise VaultError("Cross-site request refused", code="SEC_002", status=403)
    if not isinstance(token, str) or not token:
        raise AuthError("No refresh token", code="AUTH_002")
    tokens = await run(services().sessions.refresh, token, client_ip())
    return _token_response(tokens, _token_body(tokens))


@bp.post("/logout")
@require_auth()
async def logout() -> Response:
    who: Principal = g.principal
    await run(services().sessions.revoke, who.session_id, "logout", who)
    response = jsonify({"ok": True})
    response.delete_cookie(ACCESS_COOKIE, path="/")
    response.delete_cookie(REFRESH_COOKIE, path="/api/auth")
    # Pictures are cached privately for an hour: the browser drops them with the session.
    response.headers["Clear-Site-Data"] = '"cache"'
    return response


@bp.get("/me")
@require_auth()
async def me() -> Response:
    who: Principal = g.principal
    user = await run(services().users.get, who.user_id)
    return jsonify({"user": user.to_dict(), "session_id": who.session_id})
