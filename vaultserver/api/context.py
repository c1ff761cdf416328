"""What every blueprint needs from the request context: the services, the trip off the event loop, who asks.

Tokens come in an `Authorization: Bearer` header (API clients) or in HttpOnly cookies (the browser, so that
hls.js and Safari's native player can fetch keys). A state change authorised by a cookie must come from the
same origin (CSRF). Reading the token and the CSRF check happen on the event loop (no I/O); the session
check itself reads the database, so it runs on a worker thread: on its own for `require_auth` routes, or
sharing the one trip with the route's service call (`signed_in`), which is how every media route works.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any, TypeVar
from urllib.parse import urlsplit

from quart import current_app, g, request

from vaultserver.errors import ValidationError, VaultError
from vaultserver.services import Services
from vaultserver.services.principal import AuthError, Principal

ACCESS_COOKIE, REFRESH_COOKIE = "vault_access", "vault_refresh"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
T = TypeVar("T")


def services() -> Services:
    services: Services = current_app.config["VAULT_SERVICES"]
    return services


async def run(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Services are synchronous (SQLite, bcrypt, file reads): run them off the event loop."""
    return await asyncio.to_thread(fn, *args, **kwargs)


def client_ip() -> str:
    return str(g.client_ip) if getattr(g, "client_ip", None) else (request.remote_addr or "")


def same_origin() -> bool:
    origin = request.headers.get("Origin") or request.headers.get("Referer")
    if not origin:
        return False
    return urlsplit(origin).netloc.lower() == (request.host or "").lower()


def access_token() -> str:
    """The request's access token; raises before any trip off the loop when there is none or it is CSRF."""
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        token, by_cookie = header[7:].strip(), False
    else:
        token, by_cookie = request.cookies.get(ACCESS_COOKIE, ""), True
    if not token:
        raise AuthError("Sign in first", code="AUTH_002")
    if by_cookie and request.method not in SAFE_METHODS and not same_origin():
        raise VaultError("Cross-site request refused", code="SEC_002", status=403)
    return token


async def principal() -> Principal:
    who = await run(services().sessions.authenticate, access_token())
    g.principal = who
    return who


def _checked_call(s: Services, token: str, fn: Callable[..., T], args: tuple[Any, ...],
                  kwargs: dict[str, Any]) -> tuple[Principal, T]:
    who = s.sessions.authenticate(token)
    return who, fn(who, *args, **kwargs)


async def signed_in(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """The session check and `fn(principal, *args, **kwargs)` in one trip off the event loop.

    The check comes first, so a signed-out caller hears 401 before anything about what it asked for.
    """
    s = services()
    who, result = await asyncio.to_thread(_checked_call, s, access_token(), fn, args, kwargs)
    g.principal = who
    return result


def require_auth(
    admin: bool = False,
) -> Callable[[Callable[..., Awaitable[Any]]], Callable[..., Awaitable[Any]]]:
    def decorate(view: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        @wraps(view)
        async def guarded(*args: Any, **kwargs: Any) -> Any:
            who = await principal()
            if admin and not who.is_admin:
                raise VaultError("Administrators only", code="AUTH_004", status=403)
            return await view(*args, **kwargs)

        return guarded

    return decorate


async def json_body() -> dict[str, Any]:
    body = await request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ValidationError("Send a JSON object")
    return body


def text_field(body: dict[str, Any], name: str, required: bool = True, limit: int = 256) -> str:
    value = body.get(name, "")
    if not isinstance(value, str) or (required and not value) or len(value) > limit:
        raise ValidationError(
            f"'{name}' must be a non-empty string of at most {limit} characters", details={"field": name}
        )
    return value
