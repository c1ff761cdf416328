"""Making or updating a backup folder (layout.py): one new snapshot per run, copying only what is new.

A run, in order:
1. The recovery key's sealed keys are fetched first: without a recovery key nothing is written at all.
2. The target is checked: created only inside a folder that exists (an unplugged disk must never make Vault
   write onto the Mac's own disk), refused if it holds other things than a Vault backup, and locked (one
   backup at a time per folder). What stopped runs left is swept; the library files they finished are
   remembered from their journals, so a re-run does not copy them again.
3. The database is snapshotted with SQLite's online backup API into the new, still hidden snapshot folder.
   That copy decides what the snapshot holds: the library files of exactly its items whose status is final.
   An item deleted since (its folder gone) is removed from the copy, and so are items not yet final.
4. Library files are mirrored into TARGET/library/. A file the newest snapshot already names, with the same
   size and modification time, is reused without being read (library files never change once committed);
   anything else is copied, hashed in the same read (durable.py: temporary name, fsync, rename).
5. settings.toml, keys.json and the CA files are written, then manifest.json, and once everything is on
   disk the snapshot folder is renamed into place. Only then are old snapshots pruned (retention.py).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from vaultserver import __version__
from vaultserver.backup import retention, source
from vaultserver.backup.durable import DurableWriter, barrier, fsync_dir
from vaultserver.backup.layout import (
    CA_CERT,
    DATABASE,
    FORMAT,
    KEYS,
    LIBRARY,
    MANIFEST,
    MARKER,
    PARTIAL_PREFIX,
    README,
    SEALED_CA_KEY,
    SETTINGS,
    BackupFolder,
    FileEntry,
    Manifest,
    file_digest,
    snapshot_stamp,
)
from vaultserver.backup.status import COMPLETED, FAILED, volume_of
from vaultserver.db.models import is_id
from vaultserver.errors import ConfigurationError, ValidationError, VaultError
from vaultserver.progress import Progress, ProgressListener, ignore_progress
from vaultserver.services import Services
from vaultserver.services.audit import AuditEvent

log = logging.getLogger(__name__)

LOCK = ".vault-backup.lock"
JOURNAL = "copied.jsonl"  # in a partial snapshot: library files finished so far, for a run that is stopped
INCOMING = "incoming"  # in a partial snapshot: temporary files
# Folders that removable disks are mounted in: a backup folder is never created directly inside one, where
# a disk that is not mounted would leave Vault writing onto the Mac's own disk.
README_TEXT = """This folder is a backup of Vault, the home media server.

Everything in it is encrypted as it was in Vault's own data folder. Opening it needs the recovery key:
the phrase of words Vault showed once when it was made. Without that phrase this backup cannot be read,
by anyone.

To restore it on a Mac (a new one, or the same after its disk failed): install Vault, then choose
"Restore from a backup..." in its first-run window, or run
    vaultserver --data-dir NEW_FOLDER restore THIS_FOLDER --recovery-key-stdin
and type the phrase. `vaultserver verify-backup THIS_FOLDER` checks every file here.

library/     the encrypted photos and videos, shared by every snapshot
snapshots/   one folder per backup run: the database, settings and keys sealed to the recovery key
Do not change or delete files here by hand: Vault removes old snapshots itself.
"""


@dataclass(frozen=True)
class BackupResult:
    target: Path
    snapshot: str
    items: int
    files_copied: int
    bytes_copied: int
    files_total: int
    bytes_total: int
    seconds: float
    snapshots_pruned: int
    files_pruned: int

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "target": str(self.target), "seconds": round(self.seconds, 3)}

    def summary(self) -> str:
        pruned = (f"; removed {self.snapshots_pruned} old snapshot(s) and {self.files_pruned:,} file(s) only "
                  f"they needed" if self.snapshots_pruned else "")
        return (f"Backed up {self.items:,} item(s) to {self.target} (snapshot {self.snapshot}): copied "
                f"{self.files_copied:,} new file(s), {_mb(self.bytes_copied)}, of {self.files_total:,} "
                f"({_mb(self.bytes_total)}) in {self.seconds:.1f} s{pruned}")


def _mb(size: int) -> str:
    return f"{size / 1e6:,.1f} MB"


def back_up(services: Services, target: Path, progress: ProgressListener = ignore_progress, *,
            keep_days: int | None = None) -> BackupResult:
    """Make a new snapshot of this Vault in the backup folder `target`; audited as backup_completed or
    backup_failed. Raises VaultError (ValidationError for a target that cannot be used)."""
    target = Path(target).expanduser().absolute()
    days = keep_days if keep_days is not None else services.settings.current.backup_keep_days
    try:
        result = _Run(services, target, progress).run(days)
    except VaultError as exc:
        _record_failure(services, target, exc.message)
        raise
    except OSError as exc:
        failure = VaultError(f"The backup to {target} failed: {exc.strerror or exc}"
                             + (f" ({exc.filename})" if exc.filename else ""))
        _record_failure(services, target, failure.message)
        raise failure from exc
    services.audit.record(AuditEvent(COMPLETED, details=result.to_dict()))
    log.info("%s", result.summary())
    return result


def _record_failure(services: Services, target: Path, reason: str) -> None:
    log.info("Backup to %s failed: %s", target, reason)
    services.audit.record(AuditEvent(FAILED, outcome="failed",
                                     details={"target": str(target), "reason": reason}))


class _Run:
    def __init__(self, services: Services, target: Path, progress: ProgressListener) -> None:
        self.services = services
        self.folder = BackupFolder(target)
        self.progress = progress
        self.started = time.monotonic()
        self.data_root = str(services.paths.root)
        self.target_root = str(target)
        self._journal_lock = threading.Lock()

    def run(self, keep_days: int) -> BackupResult:
        keys = _recovery_document(self.services)
        _check_database(self.services)
        _prepare_target(self.folder.root)
        with _exclusive(self.folder.root):
            _mark(self.folder)
            finished = _sweep(self.folder)
            known = _known_files(self.folder, finished)
            taken_at = datetime.now(UTC)
            partial = self.folder.snapshots / f"{PARTIAL_PREFIX}{snapshot_stamp(taken_at)}"
            partial.mkdir(parents=True)
            with DurableWriter(self.folder.root, partial / INCOMING) as writer, \
                    open(partial / JOURNAL, "a", encoding="utf-8") as journal:
                database = source.snapshot_database(self.services.paths.database, partial / DATABASE)
                try:
                    library, copied = self._library(database, known, writer, journal)
                    items = source.item_count(database)
                finally:
                    database.close()
                own = self._snapshot_files(writer, partial, keys)
                manifest = Manifest(taken_at, __version__, keys["recovery_fingerprint"], items,
                                    tuple(sorted(library, key=lambda e: e.path)), tuple(own))
                writer.write(manifest.to_json().encode(), str(partial / MANIFEST))
                writer.settle()
            name = self._commit(partial, taken_at)
            self.progress(Progress("Removing old snapshots"))
            pruned = retention.prune(self.folder, keep_days)
        files_copied, bytes_copied = copied
        return BackupResult(self.folder.root, name, items, files_copied, bytes_copied, len(library),
                            sum(e.size for e in library), time.monotonic() - self.started, *pruned)

    def _library(self, database: sqlite3.Connection, known: dict[str, FileEntry], writer: DurableWriter,
                 journal: Any) -> tuple[list[FileEntry], tuple[int, int]]:
        """The library files of the snapshot's items, copying those the backup does not have yet."""
        ready = source.ready_items(database)
        reused: list[FileEntry] = []
        plan: dict[str, list[tuple[str, int, int]]] = {}
        gone: list[str] = []
        for number, media_id in enumerate(ready):
            files = source.item_files(self.data_root, media_id) if is_id(media_id) else None
            if files is None:
                gone.append(media_id)
                continue
            for path, size, mtime_ns in files:
                entry = known.get(path)
                if entry is not None and entry.size == size and entry.mtime_ns == mtime_ns:
                    reused.append(entry)
                else:
                    plan.setdefault(media_id, []).append((path, size, mtime_ns))
            if number % 500 == 0:
                self.progress(Progress("Reading the library", done_files=number, total_files=len(ready)))
        copied, gone_while_copying = self._copy(plan, known, writer, journal)
        source.drop_items(database, gone + gone_while_copying)
        new = [e for entries in copied.values() for e in entries]
        return reused + new, (len(new), sum(e.size for e in new))

    def _copy(self, plan: dict[str, list[tuple[str, int, int]]], known: dict[str, FileEntry],
              writer: DurableWriter, journal: Any) -> tuple[dict[str, list[FileEntry]], list[str]]:
        total_bytes = sum(size for files in plan.values() for _, size, _ in files)
        total_files = sum(len(files) for files in plan.values())
        done = [0, 0]

        def moved(count: int) -> None:
            done[0] += count
            self.progress(Progress("Copying library files", done[0], total_bytes, done[1], total_files))

        copied: dict[str, list[FileEntry]] = {}
        gone: list[str] = []
        for media_id, files in plan.items():
            try:
                copied[media_id] = [self._copy_one(path, size, mtime_ns, known.get(path), writer, journal,
                                                   moved) for path, size, mtime_ns in files]
            except FileNotFoundError:
                if os.path.isdir(f"{self.data_root}/{LIBRARY}/{media_id}"):
                    raise
                gone.append(media_id)  # deleted while it was being copied: not in this snapshot
            done[1] += len(files)
        return copied, gone

    def _copy_one(self, path: str, size: int, mtime_ns: int, previous: FileEntry | None,
                  writer: DurableWriter, journal: Any, moved: Any) -> FileEntry:
        original = f"{self.data_root}/{path}"
        if previous is not None and previous.size == size:
            # Same name and size but touched since (a restored data folder, say): read it once to compare;
            # library files never change, so the copy already here is almost always still the one.
            if file_digest(Path(original))[1] == previous.sha256:
                moved(size)
                return FileEntry(path, size, previous.sha256, mtime_ns)
            log.warning("%s differs from the copy in the backup; replacing that copy", path)
        def finished(sha256: str) -> None:
            self._journal(journal, FileEntry(path, size, sha256, mtime_ns))
        digest = writer.copy(original, f"{self.target_root}/{path}", moved, after=finished)
        return FileEntry(path, size, digest, mtime_ns)

    def _journal(self, journal: Any, entry: FileEntry) -> None:
        """Note a library file that is whole at its final name (called from the writer's threads)."""
        with self._journal_lock:
            journal.write(json.dumps(asdict(entry)) + "\n")
            journal.flush()

    def _snapshot_files(self, writer: DurableWriter, partial: Path, keys: dict[str, Any]) -> list[FileEntry]:
        """The snapshot's own files besides the manifest: database, settings, sealed keys, the CA."""
        self.progress(Progress("Writing the snapshot"))
        database = partial / DATABASE
        with open(database, "rb") as fh:
            os.fsync(fh.fileno())
        entries = [FileEntry(DATABASE, *file_digest(database))]
        tls = self.services.paths.private / "tls"
        sources = {SETTINGS: self.services.paths.settings_file,
                   CA_CERT: tls / Path(CA_CERT).name, SEALED_CA_KEY: tls / Path(SEALED_CA_KEY).name}
        contents = {name: path.read_bytes() for name, path in sources.items() if path.is_file()}
        if CA_CERT not in contents or SEALED_CA_KEY not in contents:  # a CA is backed up whole or not at all
            for name in (CA_CERT, SEALED_CA_KEY):
                contents.pop(name, None)
        contents[KEYS] = json.dumps(keys, indent=2).encode()
        for name, data in contents.items():
            dest = partial / name
            entries.append(FileEntry(name, len(data), writer.write(data, str(dest))))
        return entries

    def _commit(self, partial: Path, taken_at: datetime) -> str:
        """Rename the finished snapshot into place (its stamp, one second later while that name is taken)."""
        shutil.rmtree(partial / INCOMING, ignore_errors=True)
        (partial / JOURNAL).unlink(missing_ok=True)
        fsync_dir(partial)
        barrier(partial)
        stamp = taken_at
        while (self.folder.snapshots / snapshot_stamp(stamp)).exists():
            stamp += timedelta(seconds=1)
        name = snapshot_stamp(stamp)
        os.replace(partial, self.folder.snapshots / name)
        fsync_dir(self.folder.snapshots)
        return name


def _recovery_document(services: Services) -> dict[str, Any]:
    if services.keys.status().recovery_fingerprint is None:
        raise ConfigurationError("There is no recovery key yet: make a recovery key first (vaultserver keys "
                                 "recovery-key). A backup without one could not be opened on another Mac.")
    return services.keys.recovery_document()


def _check_database(services: Services) -> None:
    if services.db.url != f"sqlite:///{services.paths.database}":
        raise ConfigurationError("Backups cover Vault's own SQLite database only; this Vault uses another "
                                 "database (VAULT_DATABASE_URL): back that one up with its own tools")


def _prepare_target(root: Path) -> None:
    """Create the backup folder if its parent is there; refuse a folder that holds something else."""
    if not root.exists():
        volume = volume_of(root)
        if not root.parent.is_dir() or (volume is not None and not os.path.ismount(volume)):
            raise ValidationError(f"The backup folder {root} is not there: is its disk connected? Vault "
                                  "creates a backup folder only inside a folder that exists on the disk")
        root.mkdir(exist_ok=True)
    elif not root.is_dir():
        raise ValidationError(f"{root} is a file, not a folder: choose a folder for the backup")
    folder = BackupFolder(root)
    if not folder.is_backup() and any(p.name not in (LOCK, ".DS_Store") for p in root.iterdir()):
        raise ValidationError(f"{root} holds other files and is not a Vault backup: choose an empty folder "
                              "or one that already holds a Vault backup")


@contextmanager
def _exclusive(root: Path) -> Iterator[None]:
    lock = FileLock(str(root / LOCK), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise VaultError(f"Another backup into {root} is running: try again once it has finished") from None
    try:
        yield
    finally:
        lock.release()


def _mark(folder: BackupFolder) -> None:
    """A new backup folder gets its README and, last, its marker."""
    if folder.is_backup():
        return
    for name, text in ((README, README_TEXT),
                       (MARKER, json.dumps({"format": FORMAT, "vault_version": __version__,
                                            "created_at": datetime.now(UTC).isoformat()}))):
        with open(folder.root / name, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
    fsync_dir(folder.root)


def _sweep(folder: BackupFolder) -> dict[str, FileEntry]:
    """Remove what stopped runs left behind; returns the library files their journals say they finished."""
    finished: dict[str, FileEntry] = {}
    if not folder.snapshots.is_dir():
        return finished
    for leftover in folder.snapshots.iterdir():
        if not leftover.name.startswith(PARTIAL_PREFIX):
            continue
        try:
            lines = (leftover / JOURNAL).read_text(encoding="utf-8").splitlines()
        except OSError:
            lines = []
        for line in lines:
            try:
                entry = FileEntry(**json.loads(line))
            except (ValueError, TypeError):
                continue  # the line being written when the run was stopped
            finished[entry.path] = entry
        log.info("Removing %s, left by a backup run that did not finish", leftover.name)
        shutil.rmtree(leftover, ignore_errors=True)
    return finished


def _known_files(folder: BackupFolder, finished: dict[str, FileEntry]) -> dict[str, FileEntry]:
    """Library files already in the backup: the newest snapshot's, and those stopped runs finished (checked
    to be there: their journal may have outlived the files after a power cut)."""
    snapshots = folder.complete_snapshots()
    known = {e.path: e for e in folder.read_manifest(snapshots[-1]).library} if snapshots else {}
    for path, entry in finished.items():
        if path not in known and entry.path.startswith(LIBRARY + "/"):
            try:
                if (folder.root / path).stat().st_size == entry.size:
                    known[path] = entry
            except OSError:
                continue
    return known
