"""The deep check of a backup: with the recovery key, every item in a snapshot is proven to decrypt.

The backup itself is only read. Its database is copied into a private (0700) temporary folder and opened
there (brought to the current schema if the snapshot is older); the key ring the phrase opens stays in this
process's memory, never on a disk, not even in a temporary file. The items are checked by the same code that
checks a data folder's library (services.library_check), against the backup's own library/ folder, which has
the data folder's layout.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from vaultserver.backup.layout import DATABASE
from vaultserver.backup.snapshot import checked_copy, open_snapshot
from vaultserver.config import AppPaths
from vaultserver.crypto.keystore import KeyStore, MemoryBackend
from vaultserver.progress import ProgressListener, ignore_progress
from vaultserver.services import open_services
from vaultserver.services.library_check import check_items


def check_backup_items(target: Path, phrase: str, snapshot: str | None = None,
                       progress: ProgressListener = ignore_progress) -> list[str]:
    """Problems found decrypting the items of a snapshot (the newest when None); empty when every item
    decrypts. A typo or another phrase is a ValidationError, a damaged keys file or database an
    IntegrityError, as for a restore."""
    opened = open_snapshot(target, phrase, snapshot)
    with tempfile.TemporaryDirectory(prefix="vault-deep-check-") as scratch:  # mkdtemp: 0700
        paths = AppPaths(Path(scratch))
        paths.private.mkdir(mode=0o700)
        checked_copy(opened.path / DATABASE, paths.database, opened.required(DATABASE))
        services = open_services(paths, KeyStore(MemoryBackend(opened.ring)))
        try:
            return check_items(opened.folder.library, services.library.all_items(), services.keys, progress)
        finally:
            services.close()
