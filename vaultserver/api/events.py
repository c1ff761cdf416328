"""`GET /api/events`: what changed in the library, pushed to an open gallery page as Server-Sent Events.

A page opens one long response (the browser's EventSource, with its cookies; an API client with its Bearer
header), checked like any request when it opens. From then on it is bound to the session, not to the token:
an access token that expires or is replaced by a refresh does not end it. The session is checked again
every CHECK_SECONDS and before any event is passed on, WITHOUT counting as activity: an open page must not
keep its person signed in past the idle timeout. When the session ends (signed out, idle, expired, account
disabled or deleted) the page hears `session_ended` and the stream closes. Each event goes only to those
who may see it (`MediaService.may_see_event`, decided without a database read). A comment line every
CHECK_SECONDS keeps the connection and any proxy awake. The server's stop ends every stream at once, so an
open page never holds the shutdown up.

Each event is `event: <kind>` and one line of JSON `data:`; see `services/events.py` for the kinds.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from quart import Blueprint, Response, current_app

from vaultserver.api.context import principal, run, services
from vaultserver.services import Services
from vaultserver.services.events import SESSION_ENDED, Event, Subscription
from vaultserver.services.media import MediaService
from vaultserver.services.principal import AuthError, Principal

log = logging.getLogger(__name__)

bp = Blueprint("events", __name__)

CHECK_SECONDS = 15.0  # between session checks (and keep-alive comments) while nothing happens
RECHECK_AFTER = 1.0  # an event re-checks the session unless it was checked this recently
RETRY_MS = 3000  # how soon a browser reconnects if the stream drops
CLOSING = "VAULT_CLOSING"  # in app.config: an asyncio.Event the server sets when it stops
_STOPPING = Event("server_stopping")  # never sent: what the stream hears when the server stops


def frame(kind: str, data: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


@bp.get("/api/events")
async def events() -> Response:
    who = await principal()
    closing: asyncio.Event | None = current_app.config.get(CLOSING)
    response = Response(_stream(services(), who, closing), content_type="text/event-stream")
    response.timeout = None  # open for as long as the page and its session are
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Accel-Buffering"] = "no"  # a buffering proxy would hold events back
    # Not kept alive once the stream ends: at the server's stop, a connection left idle after it would
    # be waited for (measured: the whole grace period) instead of closed.
    response.headers["Connection"] = "close"
    return response


async def _next(subscription: Subscription, closing: asyncio.Event | None) -> Event | None:
    """The next event, None after CHECK_SECONDS of quiet, or _STOPPING when the server stops."""
    if closing is None:
        return await subscription.next(CHECK_SECONDS)
    if closing.is_set():
        return _STOPPING
    news = asyncio.ensure_future(subscription.next(CHECK_SECONDS))
    stop = asyncio.ensure_future(closing.wait())
    try:
        await asyncio.wait((news, stop), return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.cancel()
        if not news.done():
            news.cancel()
    return news.result() if news.done() and not news.cancelled() else _STOPPING


async def _stream(s: Services, who: Principal, closing: asyncio.Event | None) -> AsyncIterator[bytes]:
    subscription = s.events.subscribe()
    checked = time.monotonic()
    try:
        yield f"retry: {RETRY_MS}\n: connected\n\n".encode()
        while True:
            event = await _next(subscription, closing)
            if event is _STOPPING:
                return
            if event is not None and event.kind == SESSION_ENDED and event.session_id == who.session_id:
                yield frame(SESSION_ENDED, event.data)  # before the check, which would fail without a reason
                return
            if event is None or time.monotonic() - checked >= RECHECK_AFTER:
                try:
                    who = await run(s.sessions.check, who.session_id, who.user_id)
                except AuthError as exc:
                    yield frame(SESSION_ENDED, {"reason": "signed_out", "message": exc.message})
                    return
                checked = time.monotonic()
            if event is None:
                yield b": still here\n\n"
            elif MediaService.may_see_event(who, event):
                yield frame(event.kind, event.data)
    finally:
        s.events.unsubscribe(subscription)
