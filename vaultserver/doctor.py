"""`vaultserver doctor`: checks that explain, in plain words, what stops Vault from working."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import text

from vaultserver.config import AppPaths
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


def _permissions(paths: AppPaths) -> str:
    if not os.access(paths.root, os.W_OK):
        raise VaultError(f"{paths.root} is not writable")
    mode = stat.S_IMODE(paths.private.stat().st_mode)
    if mode & 0o077:
        raise VaultError(f"{paths.private} is open to others (mode {mode:o}); run: chmod 700 {paths.private}")
    for secret in paths.private.glob("*"):
        if secret.is_file() and stat.S_IMODE(secret.stat().st_mode) & 0o077:
            raise VaultError(f"{secret} is readable by others; run: chmod 600 {secret}")
    return f"{paths.root} (private/ is owner-only)"


def _keystore_and_db(paths: AppPaths) -> list[Check]:
    from vaultserver.services import open_services

    services = open_services(paths)
    try:
        status = services.keys.status()
        keys = Check("key store", True, f"{status.backend}, master key {status.master_key_id[:8]}…, rotation "
                     f"{'OVERDUE' if status.rotation_overdue else 'due'} {status.rotation_due_at:%Y-%m-%d}")
        with services.db.engine.connect() as conn:
            integrity = conn.execute(text("PRAGMA integrity_check")).scalar()
        revision, head = services.db.current_revision(), services.db.head_revision()
        ok = integrity == "ok" and revision == head
        db = Check("database", ok,
                   f"{paths.database}: integrity {integrity}, schema {revision} (newest {head})")
        return [keys, db]
    finally:
        services.close()


def _guard(name: str, check: Callable[[AppPaths], str], paths: AppPaths) -> Check:
    try:
        return Check(name, True, check(paths))
    except (VaultError, OSError) as exc:
        return Check(name, False, getattr(exc, "message", str(exc)))


def run_checks(paths: AppPaths) -> list[Check]:
    results = [_guard("ffmpeg", _ffmpeg, paths), _guard("data dir", _permissions, paths)]
    try:
        results += _keystore_and_db(paths)
    except (VaultError, OSError) as exc:
        results.append(Check("key store / database", False, getattr(exc, "message", str(exc))))
    return results
