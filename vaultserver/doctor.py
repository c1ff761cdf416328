"""`vaultserver doctor`: checks that explain, in plain words, what stops Vault from working.

Each check stands alone: one that fails (a damaged database, say) is reported and the others still run, so
the owner sees everything that is wrong in one go. The data folder is looked at as it was found, before
anything in this run creates or tightens it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import text

from vaultserver.config import PRIVATE_DIR_MODE, AppPaths, load_settings
from vaultserver.crypto.keystore import KeyStore, choose_backend
from vaultserver.db import DatabaseDamaged, open_database
from vaultserver.errors import VaultError
from vaultserver.ffmpeg import check_ffmpeg, find_ffmpeg


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    message: str


def _ffmpeg(paths: AppPaths) -> str:
    check = check_ffmpeg(find_ffmpeg())
    if not check.ok:
        raise VaultError(f"{check.path} lacks {', '.join(check.missing)}")
    return f"{check.path} ({check.version})"


def _open_to_others(path: os.PathLike[str]) -> int | None:
    """The mode, if anyone but the owner may read, write or enter `path`."""
    mode = stat.S_IMODE(os.stat(path).st_mode)
    return mode if mode & 0o077 else None


def _permissions(paths: AppPaths) -> str:
    if not paths.root.exists():
        paths.ensure()  # a new data folder: made owner-only from the start
    if not os.access(paths.root, os.W_OK):
        raise VaultError(f"{paths.root} is not writable")
    if (mode := _open_to_others(paths.root)) is not None:
        raise VaultError(
            f"{paths.root} is open to other users of this Mac (mode {mode:o}): they could read the library "
            f"database, the logs, the settings and the originals in failed/. Run: chmod {PRIVATE_DIR_MODE:o} "
            f"'{paths.root}' (Vault also does this when it starts, if it may).")
    if paths.private.exists() and (mode := _open_to_others(paths.private)) is not None:
        raise VaultError(f"{paths.private} is open to others (mode {mode:o}); run: chmod 700 {paths.private}")
    for secret in paths.private.glob("*"):
        if secret.is_file() and _open_to_others(secret) is not None:
            raise VaultError(f"{secret} is readable by others; run: chmod 600 {secret}")
    return f"{paths.root} (owner-only)"


def _database(paths: AppPaths) -> str:
    paths.ensure()
    db = open_database(paths.database, import_root=load_settings(paths).import_path(paths))
    try:
        with db.engine.connect() as conn:
            integrity = conn.execute(text("PRAGMA integrity_check")).scalar()
        revision, head = db.current_revision(), db.head_revision()
    finally:
        db.dispose()
    message = f"{paths.database}: integrity {integrity}, schema {revision} (newest {head})"
    if integrity != "ok" or revision != head:
        raise VaultError(message)
    return message


def _key_store(paths: AppPaths) -> str:
    from vaultserver.services import open_services

    try:
        services = open_services(paths)
    except DatabaseDamaged:  # the key store does not need the database: still say whether it is sound
        store = KeyStore(choose_backend(paths, load_settings(paths).keystore))
        master = store.ring().current
        return f"{store.backend_name}, master key {master.id[:8]}… (rotation unknown: see the database check)"
    try:
        status = services.keys.status()
        return (f"{status.backend}, master key {status.master_key_id[:8]}…, rotation "
                f"{'OVERDUE' if status.rotation_overdue else 'due'} {status.rotation_due_at:%Y-%m-%d}")
    finally:
        services.close()


def _guard(name: str, check: Callable[[AppPaths], str], paths: AppPaths) -> Check:
    try:
        return Check(name, True, check(paths))
    except (VaultError, OSError) as exc:
        return Check(name, False, getattr(exc, "message", str(exc)))


def run_checks(paths: AppPaths) -> list[Check]:
    """Every check, in order; call it before anything else touches the data folder."""
    checks = [("ffmpeg", _ffmpeg), ("data dir", _permissions), ("database", _database),
              ("key store", _key_store)]
    return [_guard(name, check, paths) for name, check in checks]
