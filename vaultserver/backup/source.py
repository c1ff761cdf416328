"""What a backup reads from the data folder: a consistent copy of the database, and the library files of
the items in that copy.

The copy is made with SQLite's online backup API (never a file copy of a live WAL database) and decides what
a snapshot holds; the run removes from it the items it leaves out (not yet final, or deleted since).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from vaultserver.backup.layout import LIBRARY
from vaultserver.db.models import EncryptionKey, MediaFile, PlaybackPosition
from vaultserver.errors import ConfigurationError

READY = "ready"  # the one final status: items in any other state are left out of a snapshot


def snapshot_database(database: Path, dest: Path) -> sqlite3.Connection:
    """A consistent copy of the live database (online backup API: never a file copy of a WAL database),
    standing alone (rollback journal), open for the run to remove what the snapshot leaves out."""
    if not database.is_file():
        raise ConfigurationError(f"Vault's database {database} is missing")
    copy = sqlite3.connect(dest, isolation_level=None)
    try:
        live = sqlite3.connect(database, timeout=30)
        try:
            live.backup(copy)
        finally:
            live.close()
        copy.execute("PRAGMA journal_mode=DELETE")
        copy.execute("PRAGMA secure_delete=ON")
    except BaseException:
        copy.close()
        raise
    return copy


def drop_items(database: sqlite3.Connection, media_ids: list[str]) -> None:
    """Remove items (and their keys and playback positions) from the snapshot's copy of the database."""
    if not media_ids:
        return
    rows = [(media_id,) for media_id in media_ids]
    database.execute("BEGIN")
    for table in (EncryptionKey.__tablename__, PlaybackPosition.__tablename__):
        database.executemany(f"DELETE FROM {table} WHERE media_id = ?", rows)
    database.executemany(f"DELETE FROM {MediaFile.__tablename__} WHERE id = ?", rows)
    database.execute("COMMIT")


def item_files(data_root: str, media_id: str) -> list[tuple[str, int, int]] | None:
    """(path from the data folder, size, mtime_ns) of each file in an item's folder; None once it is gone.
    Plain os.scandir and strings: this runs for every file of the library on every backup."""
    top = f"{LIBRARY}/{media_id}"
    found: list[tuple[str, int, int]] = []
    pending = [top]
    try:
        while pending:
            folder = pending.pop()
            with os.scandir(f"{data_root}/{folder}") as entries:
                for entry in entries:
                    path = f"{folder}/{entry.name}"
                    if entry.is_dir(follow_symlinks=False):
                        pending.append(path)
                    elif entry.is_file(follow_symlinks=False):
                        stat = entry.stat(follow_symlinks=False)
                        found.append((path, stat.st_size, stat.st_mtime_ns))
    except FileNotFoundError:  # deleted while we looked
        return None
    return found


def ready_items(database: sqlite3.Connection) -> list[str]:
    """The ids of the copy's final items; the others are dropped from it here."""
    table = MediaFile.__tablename__
    drop_items(database, [row[0] for row in database.execute(f"SELECT id FROM {table} WHERE status != ?",
                                                               (READY,))])
    return [row[0] for row in database.execute(f"SELECT id FROM {table} WHERE status = ?", (READY,))]


def item_count(database: sqlite3.Connection) -> int:
    return database.execute(f"SELECT count(*) FROM {MediaFile.__tablename__}").fetchone()[0]
