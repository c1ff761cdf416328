"""What a backup folder holds, and its manifest: the one description that backup, verify and restore share.

```
TARGET/
  vault-backup.json            marks the folder as a Vault backup (format version)
  README.txt                   what this folder is and how to restore it, for a person finding it later
  library/<item id>/...        the library's files exactly as they are in the data folder (already encrypted)
  snapshots/<UTC stamp>/       one complete backup: renamed into place only once everything it names is here
    manifest.json              every file the snapshot needs: path, size, SHA-256
    vault.db                   SQLite's online backup of the database (never a copy of a live WAL file)
    settings.toml
    keys.json                  master keys sealed to the recovery key, secrets sealed by the master keys
    tls/ca.pem, tls/ca.key.vlt the certificate authority; its private key only ever sealed
  snapshots/.partial-<stamp>/  a snapshot being written; a later run sweeps it
```
Library files never change once committed (an item's folder is written once), so snapshots share them: a
backup copies only what no earlier snapshot has, and a library file stays while any kept snapshot names it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vaultserver.errors import ValidationError

FORMAT = 1
MARKER = "vault-backup.json"
README = "README.txt"
LIBRARY = "library"
SNAPSHOTS = "snapshots"
PARTIAL_PREFIX = ".partial-"
MANIFEST = "manifest.json"
DATABASE = "vault.db"
SETTINGS = "settings.toml"
KEYS = "keys.json"
CA_CERT, SEALED_CA_KEY = "tls/ca.pem", "tls/ca.key.vlt"
STAMP = "%Y%m%dT%H%M%SZ"
HASH_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class FileEntry:
    """One file a snapshot needs. `path` is relative to the backup folder for library files, and to the
    snapshot's own folder for its snapshot files. `mtime_ns` is the source file's, so an unchanged library
    file is recognised by its stat alone and never read again."""

    path: str
    size: int
    sha256: str
    mtime_ns: int = 0


@dataclass(frozen=True)
class Manifest:
    created_at: datetime
    vault_version: str
    recovery_fingerprint: str
    items: int
    library: tuple[FileEntry, ...] = ()
    snapshot: tuple[FileEntry, ...] = ()  # vault.db, settings.toml, keys.json, the CA files
    format: int = FORMAT
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def library_bytes(self) -> int:
        return sum(entry.size for entry in self.library)

    def to_json(self) -> str:
        # The fields by hand: dataclasses.asdict deep-copies every entry, which took about a third of an
        # unchanged 10,000-item library's backup.
        doc = {**vars(self), "created_at": self.created_at.isoformat(),
               "library": [vars(entry) for entry in self.library],
               "snapshot": [vars(entry) for entry in self.snapshot]}
        return json.dumps(doc, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        try:
            doc = json.loads(text)
            if doc.get("format") != FORMAT:
                raise ValidationError(f"This backup's format ({doc.get('format')}) is not one Vault reads")
            return cls(
                created_at=datetime.fromisoformat(doc["created_at"]),
                vault_version=doc["vault_version"],
                recovery_fingerprint=doc["recovery_fingerprint"],
                items=int(doc["items"]),
                library=tuple(FileEntry(**e) for e in doc["library"]),
                snapshot=tuple(FileEntry(**e) for e in doc["snapshot"]),
                extra=doc.get("extra", {}),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ValidationError(f"The backup's manifest is unreadable: {exc}") from exc


@dataclass(frozen=True)
class BackupFolder:
    """A backup target folder and the paths inside it."""

    root: Path

    @property
    def marker(self) -> Path:
        return self.root / MARKER

    @property
    def library(self) -> Path:
        return self.root / LIBRARY

    @property
    def snapshots(self) -> Path:
        return self.root / SNAPSHOTS

    def is_backup(self) -> bool:
        return self.marker.is_file()

    def complete_snapshots(self) -> list[Path]:
        """Every finished snapshot, oldest first (their names are UTC stamps, so they sort by time)."""
        if not self.snapshots.is_dir():
            return []
        return sorted(p for p in self.snapshots.iterdir()
                      if p.is_dir() and not p.name.startswith(".") and (p / MANIFEST).is_file())

    def latest(self) -> Path:
        """The newest complete snapshot; a clear error when the folder holds none."""
        if not self.is_backup():
            raise ValidationError(f"{self.root} is not a Vault backup (it has no {MARKER})")
        snapshots = self.complete_snapshots()
        if not snapshots:
            raise ValidationError(f"{self.root} holds no complete backup yet")
        return snapshots[-1]

    def snapshot(self, name: str | None) -> Path:
        """A snapshot by its stamp, or the newest when `name` is None."""
        if name is None:
            return self.latest()
        found = self.snapshots / name
        if found not in self.complete_snapshots():
            raise ValidationError(f"No complete backup named {name} in {self.root}",
                                  details={"snapshots": [p.name for p in self.complete_snapshots()]})
        return found

    def read_manifest(self, snapshot: Path) -> Manifest:
        return Manifest.from_json((snapshot / MANIFEST).read_text(encoding="utf-8"))


def snapshot_stamp(when: datetime | None = None) -> str:
    return (when or datetime.now(UTC)).strftime(STAMP)


def file_digest(path: Path) -> tuple[int, str]:
    """(size, SHA-256 hex) of a file, read in constant memory."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while chunk := fh.read(HASH_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()
