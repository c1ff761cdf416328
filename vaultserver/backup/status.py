"""Where the backups stand, as plain data the front ends show: `BackupState`, and how it is read.

The last good backup and the last failure are read from the audit log (`backup_completed`, `backup_failed`),
the one record of them: so the state survives a restart, and a backup made from the command line counts the
same as a scheduled one. Only backups to the folder in the settings count: a new backup disk starts with
none.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from vaultserver.progress import Progress
from vaultserver.services.audit import AuditEntry, AuditEvent, AuditService

COMPLETED = "backup_completed"
FAILED = "backup_failed"
VERIFIED = "backup_verified"
STALE_AFTER = timedelta(days=3)  # past this the tray's dot turns red: long enough for a weekend away
ERROR_LINE = re.compile(r"^error \[(?P<code>[A-Z0-9_]+)\]: (?P<message>.+)$")
REASON_CHARS = 500
# Where removable disks are mounted: a target under one of these whose volume is gone is a disk unplugged.
VOLUME_ROOTS = (("Volumes",), ("mnt",), ("media", "*"), ("run", "media", "*"))


@dataclass(frozen=True)
class BackupState:
    """One look at the scheduled backups. Times are aware (UTC)."""

    target: str = ""  # the backup folder in the settings; "" when there are no scheduled backups
    running: bool = False
    progress: Progress | None = None  # of the backup under way
    last_success_at: datetime | None = None
    last_snapshot: str | None = None  # the snapshot the last good backup wrote
    last_error: str | None = None  # why the last run failed; None once a later run succeeded
    last_error_at: datetime | None = None
    next_due_at: datetime | None = None
    waiting_reason: str | None = None  # why a due backup does not run ("Backup disk not connected")

    @property
    def warning(self) -> str | None:
        """What the owner should know now, in words (the tray's red dot and its tooltip), or None."""
        if not self.target:
            return None
        if self.last_error:
            return f"The last backup failed: {self.last_error}"
        waiting = f" ({self.waiting_reason})" if self.waiting_reason else ""
        if self.last_success_at is None:
            return "No backup has been made yet" + waiting
        age = datetime.now(UTC) - self.last_success_at
        if age > STALE_AFTER:
            return f"The last good backup is {age.days} days old" + waiting
        return None


@dataclass(frozen=True)
class BackupHistory:
    """What the audit log says about backups to one folder."""

    success: AuditEntry | None = None
    failure: AuditEntry | None = None  # only when it came after the last success

    @property
    def last_success_at(self) -> datetime | None:
        return aware(self.success.timestamp) if self.success else None

    @property
    def last_snapshot(self) -> str | None:
        snapshot = self.success.details.get("snapshot") if self.success else None
        return str(snapshot) if snapshot else None

    @property
    def last_error(self) -> str | None:
        if self.failure is None:
            return None
        return str(self.failure.details.get("reason") or "no reason was given")

    @property
    def last_error_at(self) -> datetime | None:
        return aware(self.failure.timestamp) if self.failure else None


def aware(moment: datetime) -> datetime:
    """SQLite hands back naive times; Vault writes them in UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def folder_key(path: str | Path) -> Path:
    return Path(path).expanduser().resolve(strict=False)


def read_history(audit: AuditService, target: str) -> BackupHistory:
    """The last good backup to `target`, and the last failure if it came after it."""
    if not target:
        return BackupHistory()
    key = folder_key(target)

    def to_target(entry: AuditEntry) -> bool:
        named = entry.details.get("target")
        return bool(named) and folder_key(str(named)) == key

    success = audit.latest(COMPLETED, to_target)
    failure = audit.latest(FAILED, to_target)
    if failure is not None and success is not None and failure.id < success.id:
        failure = None
    return BackupHistory(success, failure)


def missing_reason(target: Path) -> str | None:
    """Why a backup to `target` cannot start now because the folder is not there (None when it is): its disk
    is unplugged or its network share not mounted. Waiting for it is normal, not a failure."""
    target = target.expanduser()
    if target.exists():
        return None
    volume = volume_of(target)
    if volume is not None and not volume.exists():
        return f"Backup disk not connected ({volume.name})"
    return f"Backup folder not found: {target}"


def volume_of(target: Path) -> Path | None:
    """The removable disk or share `target` lives on (its mount point under VOLUME_ROOTS), if any."""
    parts = target.absolute().parts[1:]
    for root in VOLUME_ROOTS:
        depth = len(root) + 1
        if len(parts) >= depth and all(p == "*" or p == part for p, part in zip(root, parts, strict=False)):
            return Path("/", *parts[:depth])
    return None


def failure_reason(stderr: str, returncode: int) -> str:
    """Why a backup run failed, in the command's own words: its `error [CODE]: message` line, else the last
    thing it said, else how it ended."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in reversed(lines):
        if match := ERROR_LINE.match(line):
            return match["message"][:REASON_CHARS]
    if lines:
        return lines[-1][:REASON_CHARS]
    if returncode < 0:
        return f"the backup process was stopped by signal {-returncode}"
    return f"the backup process ended with exit code {returncode}"


def record_verification(audit: AuditService, target: Path, snapshot: str, damaged_files: int,
                        undecryptable: list[str] | None) -> None:
    """Audit a verify of the backup in `target`: `damaged_files` found against the manifest, and what did
    not decrypt when the items were decrypted too (None: they were not)."""
    intact = not damaged_files and not undecryptable
    audit.record(AuditEvent(VERIFIED, outcome="ok" if intact else "failed", details={
        "target": str(target), "snapshot": snapshot, "ok": intact,
        "damaged": damaged_files + len(undecryptable or []), "deep": undecryptable is not None}))
