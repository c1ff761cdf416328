"""Which snapshots a backup keeps, and pruning the rest with the library files only they named.

The rule (setting `backup_keep_days`): the newest snapshot is always kept; snapshots older than the setting
go; within it, every snapshot of the newest one's day is kept and at most one (the latest) of each earlier
day. A library file stays while any kept snapshot names it, so a deleted item can be restored from an
older snapshot for as long as that snapshot is kept.
"""

from __future__ import annotations

import logging
import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

from vaultserver.backup.layout import PARTIAL_PREFIX, STAMP, BackupFolder
from vaultserver.errors import ValidationError

log = logging.getLogger(__name__)


def stamp_time(name: str) -> datetime | None:
    try:
        return datetime.strptime(name, STAMP).replace(tzinfo=UTC)
    except ValueError:
        return None


def snapshots_to_prune(names: list[str], now: datetime, keep_days: int) -> list[str]:
    """The snapshots (by name) the rule drops. Names that are not stamps are never dropped."""
    dated = sorted((when, name) for name in names if (when := stamp_time(name)) is not None)
    if len(dated) <= 1:
        return []
    newest_day = dated[-1][0].date()
    oldest_kept = now - timedelta(days=keep_days)
    doomed, days_seen = [], set()
    for when, name in reversed(dated[:-1]):  # newest first, so the latest of each day is met first
        if when < oldest_kept or (when.date() != newest_day and when.date() in days_seen):
            doomed.append(name)
        days_seen.add(when.date())
    return sorted(doomed)


def prune(folder: BackupFolder, keep_days: int, now: datetime | None = None) -> tuple[int, int]:
    """Drop the snapshots the rule drops, then every library file no kept snapshot names: those only the
    dropped snapshots named, and those a stopped run copied for an item deleted before the next run.
    Returns (snapshots pruned, files pruned). Runs under the target's lock, after this run's snapshot is in
    place, so no file it sees is on its way into a snapshot."""
    snapshots = folder.complete_snapshots()
    doomed = set(snapshots_to_prune([p.name for p in snapshots], now or datetime.now(UTC), keep_days))
    if not doomed:
        return 0, 0
    kept: set[str] = set()
    readable = True
    for snapshot in snapshots:
        try:
            named = {entry.path for entry in folder.read_manifest(snapshot).library}
        except (OSError, ValidationError) as exc:
            log.warning("Cannot read the manifest of backup snapshot %s (%s): no library file is pruned",
                        snapshot.name, exc)
            readable = readable and snapshot.name in doomed
            continue
        if snapshot.name not in doomed:
            kept.update(named)
    for name in sorted(doomed):
        # Renamed out of the complete snapshots first, so a run stopped half way never leaves one that
        # looks whole; the next run sweeps what is left of it.
        gone = folder.snapshots / f"{PARTIAL_PREFIX}pruned-{name}"
        os.replace(folder.snapshots / name, gone)
        shutil.rmtree(gone, ignore_errors=True)
    if not readable:
        return len(doomed), 0
    removed = 0
    files = (found for found in folder.library.rglob("*") if found.is_file())
    on_disk = {found.relative_to(folder.root).as_posix() for found in files}
    for path in sorted(on_disk - kept):
        file = folder.root / path
        try:
            file.unlink()
        except FileNotFoundError:
            continue
        removed += 1
        _remove_empty_parents(file.parent, folder.library)
    return len(doomed), removed


def _remove_empty_parents(folder: Path, stop: Path) -> None:
    while folder != stop and stop in folder.parents:
        try:
            folder.rmdir()
        except OSError:  # not empty
            return
        folder = folder.parent
