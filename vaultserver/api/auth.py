"""Sign-in, refresh, sign-out, "who am I" and changing my own password. The request plumbing they share with
every other blueprint (services, the session check, JSON bodies) lives in api/context.py.
"""

from __future__ import annotations

from typing import Any

from quart import Blueprint, Response, g, jsonify, request

from vaultserver.api.context import (
    ACCESS_COOKIE,
    REFRESH_COOKIE,
    client_ip,
    json_body,
    require_auth,
    run,
    same_origin,
    services,
    text_field,
)
from vaultserver.errors import VaultError
from vaultserver.services.principal import AuthError, Principal, Tokens
from vaultserver.services.sessions import ACCESS_TTL, REFRESH_TTL

bp = Blueprint("auth", __name__, url_prefix="/api/auth")


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


@bp.post("/login")
async def login() -> Response:
    body = await json_body()
    username, password = text_field(body, "username", limit=64), text_field(body, "password", limit=1024)
    s = services()
    user = await run(s.users.authenticate, username, password, client_ip())
    tokens = await run(
        s.sessions.create,
        user,
        device_name=text_field(body, "device_name", False, 128),
        device_type=text_field(body, "device_type", False, 32),
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
        if token and not same_origin():
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


@bp.post("/password")
@require_auth()
async def change_password() -> Response:
    """Change my own password; every other device of mine is signed out, this one stays."""
    body = await json_body()
    current = text_field(body, "current_password", limit=1024)
    new = text_field(body, "new_password", limit=1024)
    signed_out = await run(services().change_own_password, g.principal, current, new, client_ip())
    return jsonify({"ok": True, "signed_out": signed_out})


@bp.get("/me")
@require_auth()
async def me() -> Response:
    who: Principal = g.principal
    user = await run(services().users.get, who.user_id)
    if user is None:  # deleted since the session check
        raise AuthError("This account no longer exists", code="AUTH_004")
    return jsonify({"user": user.to_dict(), "session_id": who.session_id})
