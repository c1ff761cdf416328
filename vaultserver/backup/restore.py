"""Restoring a data folder from a backup with the recovery key (a new Mac, a reinstalled one).

The order is what makes it safe. Nothing is written until the phrase has opened the snapshot's keys and the
data folder is known to hold no library. Then the library files (each checked against the manifest as it is
copied), settings and the certificate authority go in, the key ring goes into this machine's key store, and
the database goes in LAST, through a temporary name: a data folder without vault.db is plainly not restored,
and running restore again finishes it. Finally the restored library is opened: every session of the old
Mac is ended, the restore is audited, and every item is proven to decrypt.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from vaultserver.backup.layout import CA_CERT, DATABASE, SEALED_CA_KEY, SETTINGS
from vaultserver.backup.snapshot import (
    OpenedSnapshot,
    checked_copy,
    library_destination,
    make_private_dirs,
    open_snapshot,
)
from vaultserver.config import AppPaths, load_settings, save_settings
from vaultserver.crypto.keystore import KeyStore, choose_backend, keychain_usable
from vaultserver.db.engine import database_url
from vaultserver.errors import ConfigurationError, ValidationError
from vaultserver.progress import Progress, ProgressListener, ignore_progress
from vaultserver.services import open_services
from vaultserver.services.audit import AuditEvent
from vaultserver.services.library_check import check_items

log = logging.getLogger(__name__)

COPY_PHASE = "Copying library files"
# What a first start may have made in private/ that the restored keys would not open, or that must be made
# again for this Mac: the server certificate (re-issued for this Mac's names by the restored CA on first
# start), the signing secret (every old token is void), a first-start CA's leftovers.
STALE_PRIVATE = ("jwt.secret", "tls/server.pem", "tls/server.key", "tls/ca-replaced", "tls/ca.key")


@dataclass(frozen=True)
class RestoreResult:
    snapshot: str
    items: int
    files: int
    bytes: int
    seconds: float
    problems: tuple[str, ...]

    def summary(self) -> str:
        return (f"Restored backup {self.snapshot}: {self.items:,} item(s), {self.files:,} file(s), "
                f"{self.bytes / 1e6:,.1f} MB in {self.seconds:.1f} s")


def restore(target: Path, paths: AppPaths, phrase: str, progress: ProgressListener = ignore_progress,
            snapshot: str | None = None) -> RestoreResult:
    """Rebuild the data folder `paths` from the backup in `target` (its newest snapshot unless named).

    Refused before anything is written: a typo or another phrase (ValidationError), a data folder holding a
    library or in use by a running Vault. Damage in the backup fails the restore (IntegrityError naming the
    file) and leaves no vault.db. An item that does not decrypt is reported in `problems`; the rest stays.
    """
    started = time.monotonic()
    opened = open_snapshot(target, phrase, snapshot)
    _refuse_unless_empty(paths)
    paths.ensure()
    lock = FileLock(str(paths.runtime_lock), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise ValidationError(f"Vault is running on {paths.root}: quit it before restoring into it") from None
    try:
        _refuse_unless_empty(paths)  # again, now that no Vault can start on it underneath
        _remove_database(paths)
        files, size = _copy_library(opened, paths, progress)
        _copy_private_files(opened, paths)
        KeyStore(choose_backend(paths, _keystore_preference(paths))).save(opened.ring)
        _copy_database(opened, paths)
    finally:
        lock.release()
    problems = _open_restored(paths, opened, files, size, progress)
    result = RestoreResult(opened.name, opened.manifest.items, files, size, time.monotonic() - started,
                           tuple(problems))
    log.info("%s; %d problem(s)", result.summary(), len(problems))
    return result


def _refuse_unless_empty(paths: AppPaths) -> None:
    """A data folder may be restored into when it holds no account and no item (new, or just made by a first
    start); anything else would be overwritten, so it is refused."""
    if database_url(paths.database) != f"sqlite:///{paths.database}":
        raise ConfigurationError("Restore writes the SQLite database in the data folder; unset "
                                 "VAULT_DATABASE_URL to restore")
    if not paths.database.exists():
        return
    try:
        with sqlite3.connect(f"file:{paths.database}?mode=ro", uri=True) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            held = sum(db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]  # fixed names
                       for table in ("users", "media_files") if table in tables)
    except sqlite3.DatabaseError as exc:
        raise ValidationError(f"{paths.database} is not an empty library ({exc}); restore into a new data "
                              "folder") from exc
    if held:
        raise ValidationError(f"{paths.root} already holds a library (accounts or items): restore into "
                              "a new, empty data folder", details={"data_dir": str(paths.root)})


def _remove_database(paths: AppPaths) -> None:
    """An empty first-start database goes first, so a restore that fails half way leaves no vault.db."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        paths.database.with_name(paths.database.name + suffix).unlink(missing_ok=True)


def _copy_library(opened: OpenedSnapshot, paths: AppPaths, progress: ProgressListener) -> tuple[int, int]:
    entries = opened.manifest.library
    total, done = opened.manifest.library_bytes, 0
    progress(Progress(COPY_PHASE, 0, total, 0, len(entries)))
    for number, entry in enumerate(entries, 1):
        checked_copy(opened.folder.root / entry.path, library_destination(paths.root, entry), entry)
        done += entry.size
        progress(Progress(COPY_PHASE, done, total, number, len(entries)))
    return len(entries), done


def _copy_private_files(opened: OpenedSnapshot, paths: AppPaths) -> None:
    """settings.toml, and the CA into private/tls/ (its key stays sealed, opened by the restored keys)."""
    for name in STALE_PRIVATE:
        (paths.private / name).unlink(missing_ok=True)
    checked_copy(opened.path / SETTINGS, paths.settings_file, opened.required(SETTINGS))
    tls = paths.private / "tls"
    make_private_dirs(tls)
    for name in (CA_CERT, SEALED_CA_KEY):
        if (entry := opened.entry(name)) is not None:
            checked_copy(opened.path / name, tls / Path(name).name, entry)


def _keystore_preference(paths: AppPaths) -> str:
    """The restored setting, unless it names a keychain this Mac does not have: then the key file, and the
    setting says so (else every start would refuse)."""
    settings = load_settings(paths)
    if settings.keystore == "keychain" and not keychain_usable():
        log.warning("No usable keychain on this Mac: the restored master keys go into the key file")
        save_settings(paths, settings.updated(keystore="auto"))
        return "auto"
    return settings.keystore


def _copy_database(opened: OpenedSnapshot, paths: AppPaths) -> None:
    """Copied beside its final name, checked, then renamed: the one step that makes the folder restored."""
    entry = opened.required(DATABASE)
    staged = paths.root / f".{DATABASE}.restored"
    checked_copy(opened.path / DATABASE, staged, entry)
    _remove_database(paths)
    staged.replace(paths.database)


def _open_restored(paths: AppPaths, opened: OpenedSnapshot, files: int, size: int,
                   progress: ProgressListener) -> list[str]:
    """End the old Mac's sessions, audit the restore, and prove every item decrypts."""
    services = open_services(paths)
    try:
        ended = sum(services.sessions.revoke_all_for_user(user.id, "restored_from_backup")
                    for user in services.users.list())
        services.audit.record(AuditEvent("restored_from_backup", details={
            "target": str(opened.folder.root), "snapshot": opened.name, "items": opened.manifest.items,
            "files": files, "bytes": size, "sessions_ended": ended}))
        problems = check_items(paths.library, services.library.all_items(), services.keys, progress)
    finally:
        services.close()
    if problems:
        log.error("After the restore, %d file(s) do not decrypt: %s", len(problems), "; ".join(problems))
    return problems
