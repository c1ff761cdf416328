"""`Health`: one look at a running Vault, as plain data, for the tray, the dashboard, the API and the tests.

It lives apart from the runtime that fills it in so the look can grow (backups joined it) without the runtime
growing; `vaultserver.runtime` re-exports it, the door the front ends import it through.
"""

from __future__ import annotations

from dataclasses import dataclass

from vaultserver.services.jobs import QueueCounts


@dataclass(frozen=True)
class Health:
    """One look at a runtime: what the tray, the dashboard and the tests read."""

    running: bool
    server: bool  # serving now
    urls: tuple[str, ...]
    paused: bool
    mdns: bool
    queue: QueueCounts
    server_restarts: int
    error: str | None  # why the server is not serving, in words for the owner
    waiting: str | None = None  # why imports wait (a full disk), in words for the owner
    backup_warning: str | None = None  # why the backups need the owner's eye (stale, failing), in words

    @property
    def queue_active(self) -> int:
        return self.queue.active
