"""The audit log: typed events in, rows in `access_logs` out. Every security-relevant action lands here.

Refusals a stranger can cause at will (the network gate, throttled sign-ins) are folded: at most one row per
kind, address and reason a minute, counting the refusals it stands for, so a flood cannot grow the log
without bound. Rows older than the retention setting are pruned (see `Services.prune_old_records`).
"""

from __future__ import annotations

import csv
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete
from sqlmodel import Session, col, select

from vaultserver.db import Database
from vaultserver.db.models import AccessLog
from vaultserver.errors import ValidationError

log = logging.getLogger(__name__)

FOLD_SECONDS = 60.0
# Addresses per kind of refusal that get rows of their own within a minute; past this (someone cycling
# through addresses) the rest share one row without an address.
FOLD_SOURCES = 100
MAX_ROW_ID = 2**63 - 1  # the database's integer range: a cursor past it is not a row, it is an error
# A spreadsheet runs a cell that starts with one of these (OWASP "CSV injection"); a leading ' disarms it.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


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


@dataclass
class _Fold:
    """The row that stands for one kind of refusal from one address in the current minute."""

    row_id: int
    until: float  # time.monotonic() when the minute is over
    count: int = 1


def spreadsheet_safe(cell: str) -> str:
    """`cell` as text a spreadsheet shows rather than runs (a quote in front of a formula-like start)."""
    return "'" + cell if cell.startswith(FORMULA_STARTS) else cell


class AuditService:
    def __init__(self, db: Database) -> None:
        self._db = db
        self.fold_seconds = FOLD_SECONDS
        self.fold_sources = FOLD_SOURCES
        self._folds: dict[tuple[str, str, str | None, Any], _Fold] = {}
        self._fold_lock = threading.Lock()

    def record(self, event: AuditEvent) -> None:
        with self._db.session() as session:
            self.record_in(session, event)

    def record_in(self, session: Session, event: AuditEvent) -> None:
        """Record as part of the caller's transaction: the entry commits, or not, with what it describes."""
        session.add(AccessLog(**event.__dict__))
        log.info("audit %s %s %s %s", event.event, event.outcome, event.username or "-", event.resource or "")

    def record_refusal(self, event: AuditEvent) -> None:
        """Record a refusal anyone can cause without credentials: folded into the row of the same kind,
        address and reason from the last minute (its details' `count` says how many it stands for)."""
        kind = (event.event, event.outcome)
        reason = event.details.get("reason")
        with self._fold_lock:
            now = time.monotonic()
            self._folds = {k: f for k, f in self._folds.items() if f.until > now}
            key = (*kind, event.ip_address, reason)
            if key not in self._folds and event.ip_address is not None:
                sources = sum(1 for k in self._folds if k[:2] == kind and k[2] is not None)
                if sources >= self.fold_sources:
                    key = (*kind, None, reason)
                    event = replace(event, ip_address=None, username=None, resource=None, user_agent=None,
                                    details={**event.details, "addresses": "many"})
            fold = self._folds.get(key)
            if fold is not None and self._count_into(fold):
                return
            with self._db.session() as session:
                row = AccessLog(**{**event.__dict__, "details": {**event.details, "count": 1}})
                session.add(row)
                session.flush()
                self._folds[key] = _Fold(row.id or 0, now + self.fold_seconds)
        log.info("audit %s %s %s %s (further ones this minute are counted, not logged)", event.event,
                 event.outcome, event.ip_address or "-", event.resource or "")

    def _count_into(self, fold: _Fold) -> bool:
        """Add one to a folded row; False if the row is gone (pruned), so a new one is started."""
        with self._db.session() as session:
            row = session.get(AccessLog, fold.row_id)
            if row is None:
                return False
            fold.count += 1
            row.details = {**row.details, "count": fold.count}
            session.add(row)
        return True

    def prune(self, older_than: datetime) -> int:
        """Delete the entries from before `older_than`; returns how many went."""
        with self._db.session() as session:
            result = session.exec(delete(AccessLog).where(col(AccessLog.timestamp) < older_than))
            return int(result.rowcount or 0)

    def recent(self, limit: int = 100, event: str | None = None) -> list[AuditEntry]:
        return self.page(limit=limit, event=event)

    def page(self, limit: int = 100, before_id: int | None = None, event: str | None = None,
             username: str | None = None) -> list[AuditEntry]:
        """Newest first; pass the last entry's id as `before_id` for the next page (a stable cursor)."""
        if before_id is not None and not 1 <= before_id <= MAX_ROW_ID:
            raise ValidationError("'cursor' must be an entry id from a previous page",
                                  details={"field": "cursor"})
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

    def latest(self, event: str, matching: Callable[[AuditEntry], bool] | None = None,
               scan: int = 1000) -> AuditEntry | None:
        """The newest entry of `event` (that `matching` accepts, among the newest `scan` of them), or None.
        What happened last is read from here rather than kept twice (the last backup, for one)."""
        before = None
        while scan > 0 and (batch := self.page(limit=min(scan, 100), before_id=before, event=event)):
            found = next((e for e in batch if matching is None or matching(e)), None)
            if found is not None:
                return found
            scan -= len(batch)
            before = batch[-1].id
        return None

    def event_names(self) -> list[str]:
        with self._db.session() as session:
            return sorted(session.exec(select(AccessLog.event).distinct()).all())

    def export_csv(self, dest: Path, event: str | None = None, username: str | None = None) -> int:
        """Write the whole (filtered) log, newest first, as CSV; returns the number of entries written.

        Text cells a spreadsheet would run as a formula (a failed sign-in's username is anyone's text) are
        prefixed with a quote, as OWASP advises."""
        written, before = 0, None
        with dest.open("w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            writer.writerow(["id", "timestamp", "event", "outcome", "username", "ip_address", "resource",
                             "details"])
            while batch := self.page(limit=1000, before_id=before, event=event, username=username):
                for e in batch:
                    text = (e.event, e.outcome, e.username or "", e.ip_address or "", e.resource or "",
                            json.dumps(e.details))
                    writer.writerow([e.id, e.timestamp.isoformat(), *map(spreadsheet_safe, text)])
                written += len(batch)
                before = batch[-1].id
        return written
