"""What the open gallery pages hear about items: one added, one deleted, one converting (with its progress).

The library and the converting items call these once their change has happened. Nothing here may undo or
fail that change, so every failure is logged and swallowed. Each event names the guests who see the item
through a shared album at that moment (a deleted item's albums are gone with it, so its guests are asked
for before the delete). Converting progress comes with every ffmpeg tick, several a second; an item's is
passed on at most once a second.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, ParamSpec

from vaultserver.services.events import ITEM_ADDED, ITEM_CONVERTING, ITEM_DELETED, Event, EventHub

if TYPE_CHECKING:
    from vaultserver.services.access import AccessRule
    from vaultserver.services.items import MediaItem

log = logging.getLogger(__name__)

PROGRESS_INTERVAL = 1.0  # seconds between two progress events of one converting item
P = ParamSpec("P")


def _quietly(tell: Callable[P, None]) -> Callable[P, None]:
    """Telling the pages comes after the change: its failure is logged, never raised into the change."""
    @functools.wraps(tell)
    def told(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            tell(*args, **kwargs)
        except Exception:
            log.exception("Could not tell open pages: %s", tell.__name__)
    return told


class ItemEvents:
    def __init__(self, hub: EventHub, access: AccessRule) -> None:
        self._hub = hub
        self._access = access
        self._progress_told: dict[str, float] = {}  # media id -> when its progress was last passed on
        self._lock = threading.Lock()

    def guests_seeing(self, media_id: str) -> frozenset[str]:
        """The guests who see this item now (nobody, if that cannot be read: members still hear of it)."""
        try:
            return self._access.guests_seeing(media_id)
        except Exception:
            log.exception("Could not read who sees item %s; only members and admins are told", media_id)
            return frozenset()

    def _publish(self, kind: str, media_id: str, data: dict[str, object], guests: frozenset[str]) -> None:
        self._hub.publish(Event(kind, {"id": media_id, **data}, media_id=media_id, guests=guests))

    @_quietly
    def added(self, item: MediaItem) -> None:
        """A committed item (new, or a converted video now ready): `item_added` with its JSON."""
        self._forget(item.id)
        self._publish(ITEM_ADDED, item.id, {"item": item.to_dict()}, self.guests_seeing(item.id))

    @_quietly
    def deleted(self, media_id: str, guests: frozenset[str]) -> None:
        """`guests`: from `guests_seeing`, asked before the item (and its album entries) went."""
        self._forget(media_id)
        self._publish(ITEM_DELETED, media_id, {}, guests)

    @_quietly
    def converting(self, media_id: str, progress: float, item: MediaItem | None = None) -> None:
        """A converting video's progress (0..1); `item`: its JSON, when it is first listed."""
        now = time.monotonic()
        with self._lock:
            last = self._progress_told.get(media_id)
            if item is None and last is not None and now - last < PROGRESS_INTERVAL:
                return
            self._progress_told[media_id] = now
        data: dict[str, object] = {"progress": round(min(max(progress, 0.0), 1.0), 3)}
        if item is not None:
            data["item"] = item.to_dict()
        self._publish(ITEM_CONVERTING, media_id, data, self.guests_seeing(media_id))

    def _forget(self, media_id: str) -> None:
        with self._lock:
            self._progress_told.pop(media_id, None)
