"""One snapshot of a backup opened with the recovery key: the key ring its keys.json opens to, and copies of
its files checked against the manifest.

Restore and the deep check both start here, so a typo, a wrong phrase or a damaged keys file is refused the
same way and before either of them writes anything. The opened ring lives in memory only.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from vaultserver.backup.layout import HASH_CHUNK, KEYS, LIBRARY, BackupFolder, FileEntry, Manifest
from vaultserver.config import PRIVATE_DIR_MODE, PRIVATE_FILE_MODE
from vaultserver.crypto.keystore import KeyRing
from vaultserver.crypto.recovery import RecoveryKey
from vaultserver.db.models import is_id
from vaultserver.errors import IntegrityError, ValidationError


@dataclass(frozen=True)
class OpenedSnapshot:
    folder: BackupFolder
    path: Path  # snapshots/<stamp>/
    manifest: Manifest
    ring: KeyRing

    @property
    def name(self) -> str:
        return self.path.name

    def entry(self, name: str) -> FileEntry | None:
        """The manifest's entry for one of the snapshot's own files (vault.db, settings.toml, ...)."""
        return next((e for e in self.manifest.snapshot if e.path == name), None)

    def required(self, name: str) -> FileEntry:
        if (found := self.entry(name)) is None:
            raise IntegrityError(f"Backup {self.name} is incomplete: its manifest names no {name}",
                                 details={"snapshot": self.name})
        return found


def open_snapshot(target: Path, phrase: str, snapshot: str | None = None) -> OpenedSnapshot:
    """The snapshot (the newest when None) with its key ring; ValidationError for a typo, a folder that is
    not a backup, or a phrase that is not this backup's; IntegrityError for a damaged keys file."""
    key = RecoveryKey.from_phrase(phrase)  # a mistyped word is caught before the backup is even read
    folder = BackupFolder(Path(target))
    path = folder.snapshot(snapshot)
    manifest = folder.read_manifest(path)
    opened = OpenedSnapshot(folder, path, manifest, KeyRing())
    entry = opened.required(KEYS)
    data = (path / KEYS).read_bytes()
    if (len(data), hashlib.sha256(data).hexdigest()) != (entry.size, entry.sha256):
        raise IntegrityError(f"{KEYS} of backup {path.name} is damaged (it does not match the manifest)",
                             details={"file": str(path / KEYS)})
    try:
        document = json.loads(data)
        ring = KeyRing.from_recovery_document(document, key)
    except (ValueError, KeyError, TypeError) as exc:
        raise ValidationError(f"{KEYS} of backup {path.name} is unreadable: {exc}") from exc
    return OpenedSnapshot(folder, path, manifest, ring)


def library_destination(root: Path, entry: FileEntry) -> Path:
    """Where a library file of the manifest goes under `root` (a data folder): the same relative path, which
    must stay inside library/<item id>/ (the manifest comes from a folder anyone could have written to)."""
    parts = PurePosixPath(entry.path).parts
    if len(parts) < 3 or parts[0] != LIBRARY or not is_id(parts[1]) or any(p in ("", ".", "..")
                                                                              for p in parts):
        raise IntegrityError(f"The backup's manifest names a file outside the library: {entry.path}")
    return root.joinpath(*parts)


def make_private_dirs(folder: Path) -> None:
    """Create `folder` and any missing parents owner-only (os.makedirs sets the mode of the last one only)."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for path in reversed(missing):
        path.mkdir(mode=PRIVATE_DIR_MODE)


def checked_copy(source: Path, dest: Path, entry: FileEntry) -> None:
    """Copy `source` to `dest` (owner-only) through a temporary name beside it, hashing on the way; it is
    renamed into place only when its size and SHA-256 are the manifest's, else IntegrityError names it."""
    make_private_dirs(dest.parent)
    partial = dest.with_name(f".{dest.name}.restoring")
    digest, size = hashlib.sha256(), 0
    try:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE)
        with os.fdopen(fd, "wb") as out, source.open("rb") as src:
            while chunk := src.read(HASH_CHUNK):
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if (size, digest.hexdigest()) != (entry.size, entry.sha256):
            raise IntegrityError(f"{source} is damaged: it does not match the backup's manifest "
                                 f"({size} bytes, expected {entry.size}, or its SHA-256 differs)",
                                 details={"file": str(source)})
        os.replace(partial, dest)
    except FileNotFoundError as exc:
        if exc.filename == str(source):
            raise IntegrityError(f"{source} is missing from the backup", details={"file": str(source)}) \
                from exc
        raise
    finally:
        partial.unlink(missing_ok=True)
