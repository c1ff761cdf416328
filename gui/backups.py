"""Backups as the app shows them: what a backup folder holds, what a verify found, when the last good backup
was made, in words; and a progress reporter that crosses from a pool thread to the UI thread sparingly.

The work itself is the core's (`vaultserver.backup`: the same functions the command line's backup,
verify-backup and restore run); this module only reads their plain results into sentences, so the Storage
tab, the Dashboard and the first-run wizard say the same things the same way. Nothing here touches a widget.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from vaultserver.backup.layout import BackupFolder
from vaultserver.backup.snapshot import open_snapshot
from vaultserver.backup.verify import VerifyReport
from vaultserver.errors import ValidationError
from vaultserver.progress import Throttle
from vaultserver.runtime import BackupState, Progress

SHOWN_PROBLEMS = 5  # a damaged disk can name thousands of files: the first few say enough
PROGRESS_SECONDS = 0.1  # progress crosses to the UI thread at most this often (the last step always does)


@dataclass(frozen=True)
class SnapshotInfo:
    """One complete snapshot of a backup folder, from its manifest."""

    name: str  # its UTC stamp: what `restore --snapshot` takes
    created_at: datetime
    items: int
    library_bytes: int

    def describe(self) -> str:
        local = self.created_at.astimezone()
        return (f"{local.day} {local:%B %Y, %H:%M}: {self.items:,} item(s), "
                f"{megabytes(self.library_bytes)}")


def megabytes(size: int) -> str:
    """Sizes as the command line prints them (MB); a small sample library in KB rather than "0.0 MB"."""
    return f"{size / 1e6:,.1f} MB" if size >= 100_000 else f"{size / 1e3:,.1f} KB"


def read_backup_folder(target: Path) -> list[SnapshotInfo]:
    """The complete snapshots in `target`, newest first. ValidationError (in words for the owner) when the
    folder is not a Vault backup or holds no complete snapshot yet."""
    folder = BackupFolder(Path(target).expanduser())
    folder.latest()  # says why when there is nothing to restore from
    snapshots = []
    for path in reversed(folder.complete_snapshots()):
        manifest = folder.read_manifest(path)
        snapshots.append(SnapshotInfo(path.name, manifest.created_at, manifest.items, manifest.library_bytes))
    return snapshots


def check_backup_key(target: Path, phrase: str, snapshot: str | None) -> str:
    """Whether `phrase` opens this snapshot's keys (nothing is written); returns the snapshot's name. A typo
    or another backup's key is a ValidationError with the service's own message."""
    if not phrase.strip():
        raise ValidationError("Type the recovery key first")
    return open_snapshot(Path(target).expanduser(), phrase, snapshot).name


def verify_text(report: VerifyReport) -> str:
    """"Intact: 1,234 files, 56.7 MB checked", or what is damaged or missing, by name."""
    if report.ok:
        return (f"Intact: {report.files_checked:,} files, {megabytes(report.bytes_checked)} checked "
                f"(snapshot {report.snapshot}).")
    named = ", ".join(f"{path} ({problem})" for path, problem in report.problems[:SHOWN_PROBLEMS])
    more = len(report.problems) - SHOWN_PROBLEMS
    return (f"Snapshot {report.snapshot} is damaged: {named}" + (f" and {more} more" if more > 0 else "")
            + ". Back up again to replace what is damaged.")


def decrypt_text(report: VerifyReport, problems: list[str]) -> str:
    """The deep check's outcome, after the files were found intact."""
    if not problems:
        return verify_text(report)[:-1] + ", and every item decrypts with the recovery key."
    named = "; ".join(problems[:SHOWN_PROBLEMS])
    more = len(problems) - SHOWN_PROBLEMS
    return (f"{len(problems)} file(s) do not decrypt: {named}" + (f" and {more} more" if more > 0 else "")
            + ".")


def backup_age(moment: datetime, now: datetime | None = None) -> str:
    """When a backup was made, as people say it: "Today 03:12", "Yesterday 22:40", "3 days ago"."""
    local, now = moment.astimezone(), (now or datetime.now(UTC)).astimezone()
    calendar_days = (now.date() - local.date()).days
    if calendar_days <= 0:
        return f"Today {local:%H:%M}"
    if calendar_days == 1:
        return f"Yesterday {local:%H:%M}"
    return f"{max(2, (now - local).days)} days ago"  # whole days, as the stale-backup warning counts them


def backup_line(state: BackupState, now: datetime | None = None) -> str:
    """The Dashboard's Backup line: the last good backup, and what needs the owner's eye."""
    if not state.target:
        return "Not set up: choose a backup folder under Storage"
    if state.running:
        done = f" ({state.progress.fraction:.0%})" if state.progress else ""
        return f"Backing up now{done}"
    last = backup_age(state.last_success_at, now) if state.last_success_at else "None yet"
    return f"{last} — {state.warning}" if state.warning else last


class ThrottledProgress:
    """A ProgressListener for a pool thread that passes progress on to the UI thread sparingly (`Throttle`):
    a check of ten thousand files does not flood it with events."""

    def __init__(self, send: Callable[[Progress], None]) -> None:
        self._send = send
        self._throttle = Throttle(PROGRESS_SECONDS)

    def __call__(self, progress: Progress) -> None:
        if self._throttle.due(progress):
            self._send(progress)
