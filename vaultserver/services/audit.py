"""The audit log: typed events in, rows in `access_logs` out. Every security-relevant action lands here."""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlmodel import Session, col, select

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

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "timestamp": self.timestamp.isoformat()}


class AuditService:
    def __init__(self, db: Database) -> None:
        self._db = db

    def record(self, event: AuditEvent) -> None:
        with self._db.session() as session:
            session.add(AccessLog(**event.__dict__))
        log.info("audit %s %s %s %s", event.event, event.outcome, event.username or "-", event.resource or "")

    def record_in(self, session: Session, event: AuditEvent) -> None:
        """Record as part of the caller's transaction: the entry commits, or not, with what it describes."""
        session.add(AccessLog(**event.__dict__))
        log.info("audit %s %s %s %s", event.event, event.outcome, event.username or "-", event.resource or "")

    def recent(self, limit: int = 100, event: str | None = None) -> list[AuditEntry]:
        return self.page(limit=limit, event=event)

    def page(self, limit: int = 100, before_id: int | None = None, event: str | None = None,
             username: str | None = None) -> list[AuditEntry]:
        """Newest first; pass the last entry's id as `before_id` for the next page (a stable cursor)."""
        query = select(AccessLog).order_by(col(AccessLog.id).desc()).limit(limit)
        if before_id is not None:
            query = query.where(col(AccessLog.id) < before_id)
        if event:
            query = query.where(AccessLog.event == event)
        if username:
            query = query.where(AccessLog.username == username)
        with self._db.session() as session:
            return [AuditEntry(r.id or 0, r.timestamp, r.event, r.outcome, r.username, r.ip_address,
                               r.resource, dict(r.details)) for r in session.exec(query)]

    def event_names(self) -> list[str]:
        with self._db.session() as session:
            return sorted(session.exec(select(AccessLog.event).distinct()).all())

    def export_csv(self, dest: Path, event: str | None = None, username: str | None = None) -> int:
        """Write the whole (filtered) log, newest first, as CSV; returns the number of entries written."""
        written, before = 0, None
        with dest.open("w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            writer.writerow(["id", "timestamp", "event", "outcome", "username", "ip_address", "resource",
                             "details"])
            while batch := self.page(limit=1000, before_id=before, event=event, username=username):
                for e in batch:
                    writer.writerow([e.id, e.timestamp.isoformat(), e.event, e.outcome, e.username or "",
                                     e.ip_address or "", e.resource or "", json.dumps(e.details)])
                written += len(batch)
                before = batch[-1].id
        return written
