"""Checking a backup snapshot's files against its manifest: every file there, of its size, with its SHA-256.

This reads only the backup folder (no data folder, no key, no phrase), so it can run anywhere the backup
disk is attached. It is the building block of the deep check, which also decrypts every item.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

from vaultserver.backup.layout import SNAPSHOTS, BackupFolder, FileEntry, file_digest
from vaultserver.progress import Progress, ProgressListener, ignore_progress

Problem = Literal["missing", "damaged", "wrong size"]


@dataclass(frozen=True)
class VerifyReport:
    snapshot: str
    files_checked: int
    bytes_checked: int
    problems: tuple[tuple[str, Problem], ...]  # (path from the backup folder, what is wrong), in path order

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        checked = (f"Checked {self.files_checked:,} file(s), {self.bytes_checked / 1e6:,.1f} MB, of snapshot "
                   f"{self.snapshot}")
        if self.ok:
            return f"{checked}: every file is intact."
        return f"{checked}: {len(self.problems)} file(s) missing or damaged."


def verify_files(target: Path, snapshot: str | None = None,
                 progress: ProgressListener = ignore_progress) -> VerifyReport:
    """Check every file the snapshot (its stamp, or the newest) names: library files and its own. Raises
    ValidationError when `target` is not a backup, holds no such snapshot or its manifest is unreadable."""
    folder = BackupFolder(Path(target).expanduser())
    found = folder.snapshot(snapshot)
    manifest = folder.read_manifest(found)
    own = f"{SNAPSHOTS}/{found.name}"
    files = [(entry.path, entry) for entry in manifest.library]
    files += [(f"{own}/{entry.path}", entry) for entry in manifest.snapshot]
    total = sum(entry.size for _, entry in files)
    problems: list[tuple[str, Problem]] = []
    done = 0
    for number, (path, entry) in enumerate(files):
        progress(Progress("Checking files", done, total, number, len(files)))
        if (problem := _check(folder.root, path, entry)) is not None:
            problems.append((path, problem))
        done += entry.size
    progress(Progress("Checking files", done, total, len(files), len(files)))
    return VerifyReport(found.name, len(files), done, tuple(sorted(problems)))


def _check(root: Path, path: str, entry: FileEntry) -> Problem | None:
    relative = PurePosixPath(path)
    if relative.is_absolute() or ".." in relative.parts:
        return "damaged"  # a manifest naming a file outside the backup is itself damaged
    file = root / relative
    try:
        size = os.stat(file).st_size
    except OSError:  # not there (or not reachable: a folder in its path replaced by a file)
        return "missing"
    if size != entry.size:
        return "wrong size"
    try:
        return None if file_digest(file) == (entry.size, entry.sha256) else "damaged"
    except OSError:
        return "damaged"  # unreadable (a bad sector)
