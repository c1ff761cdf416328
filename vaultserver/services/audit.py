"""The audit log: typed events in, rows in `access_logs` out. Every security-relevant action lands here."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel import col, select

from vaultserver.db import Database
from vaultserver.db.models import AccessLog

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AuditEvent:
    event: str  # e.g. "login", "key_fetch", "network_denied", "ingest_failed", "keys_rotated"
    outcome: str = "ok"
    user_id: str | None = None
    username: str | None = None
    session_id: str | None = None
    ip_address: str | None = None
    user_agent: str | None = None
    resource: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AuditEntry:
    id: int
    timestamp: datetime
    event: str
    outcome: str
    username: str | None
    ip_address: str | None
    resource: str | None
    details: dict[str, Any]


class AuditService:
    def __init__(self, db: Database) -> None:
        self._db = db

    def record(self, event: AuditEvent) -> None:
        with self._db.session() as session:
            session.add(AccessLog(**event.__dict__))
        log.info("audit %s %s %s %s", event.event, event.outcome, event.username or "-", event.resource or "")

    def recent(self, limit: int = 100, event: str | None = None) -> list[AuditEntry]:
        query = select(AccessLog).order_by(col(AccessLog.id).desc()).limit(limit)
        if event:
            query = query.where(AccessLog.event == event)
        with self._db.session() as session:
            return [AuditEntry(r.id or 0, r.timestamp, r.event, r.outcome, r.username, r.ip_address,
                               r.resource, dict(r.details)) for r in session.exec(query)]
