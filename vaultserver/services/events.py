"""What changed in the library, told to the open gallery pages as it happens (`GET /api/events`).

Services publish from whatever thread did the change (a request's worker thread, a conversion pool thread);
each open page subscribes on the server's event loop. An event names who it concerns (an item, a set of
accounts or one session) and carries nothing a viewer could not already read: the events route asks
`MediaService.may_see_event` before it sends one (no database read), so the access rule stays in one place.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

ITEM_ADDED, ITEM_DELETED, ITEM_CONVERTING = "item_added", "item_deleted", "item_converting"
ALBUM_CHANGED, SESSION_ENDED = "album_changed", "session_ended"
BACKLOG = 256  # events a slow page may fall behind by before it is told to reload instead


@dataclass(frozen=True)
class Event:
    """One change, and who it concerns. `media_id`: an item event, for admins and members and the `guests`
    (account ids) that see the item through a shared album, as they were when it happened (a deleted item's
    albums are gone with it). `users`: only these accounts (an album's owner and the accounts it is shared
    with). `session_id`: only that signed-in device."""

    kind: str
    data: dict[str, Any] = field(default_factory=dict)
    media_id: str | None = None
    guests: frozenset[str] = frozenset()
    users: frozenset[str] | None = None
    session_id: str | None = None


RESYNC = Event("resync")  # what a page that fell too far behind gets: reload what it shows


class Subscription:
    """One open page's queue, on the event loop that reads it."""

    def __init__(self, hub: EventHub, loop: asyncio.AbstractEventLoop) -> None:
        self._hub, self._loop = hub, loop
        self._queue: asyncio.Queue[Event] = asyncio.Queue(BACKLOG)
        self._behind = False

    def _put(self, event: Event) -> None:  # on the loop
        if self._behind:
            return
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self._behind = True
            while not self._queue.empty():
                self._queue.get_nowait()
            self._queue.put_nowait(RESYNC)

    def deliver(self, event: Event) -> None:  # from any thread
        try:
            self._loop.call_soon_threadsafe(self._put, event)
        except RuntimeError:  # the loop has closed: this page is gone
            self._hub.unsubscribe(self)

    async def next(self, timeout: float) -> Event | None:
        """The next event, or None after `timeout` seconds without one (time to check the session)."""
        try:
            event = await asyncio.wait_for(self._queue.get(), timeout)
        except TimeoutError:
            return None
        if event is RESYNC:
            self._behind = False
        return event

    async def events(self, timeout: float) -> AsyncIterator[Event | None]:
        while True:
            yield await self.next(timeout)


class EventHub:
    def __init__(self) -> None:
        self._subscriptions: set[Subscription] = set()
        self._lock = threading.Lock()

    def subscribe(self) -> Subscription:
        """Called on the event loop that will read the subscription."""
        subscription = Subscription(self, asyncio.get_running_loop())
        with self._lock:
            self._subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            self._subscriptions.discard(subscription)

    def publish(self, event: Event) -> None:
        """Tell every open page; never raises into the change that caused it."""
        with self._lock:
            subscriptions = list(self._subscriptions)
        for subscription in subscriptions:
            subscription.deliver(event)

    @property
    def listeners(self) -> int:
        with self._lock:
            return len(self._subscriptions)
