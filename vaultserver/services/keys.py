"""Data keys per media item, wrapped by the master key; master-key status and crash-safe rotation.

Wrapping a new key and committing it, and rotating, happen under one inter-process lock (a file lock in
private/), so a rotation in the CLI can never retire a master key that a running server is about to use.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, func, select

from vaultserver.config import AppPaths
from vaultserver.crypto import envelope, recovery
from vaultserver.crypto.keystore import KeyRing, KeyStore, key_lock, new_master_key
from vaultserver.db import Database
from vaultserver.db.models import EncryptionKey, new_id, utcnow
from vaultserver.errors import NotFoundError
from vaultserver.services.audit import AuditEvent, AuditService
from vaultserver.services.settings import SettingsService

log = logging.getLogger(__name__)

REWRAP_BATCH = 500
# The front ends show, check and read back recovery phrases through the services, never the crypto itself.
PHRASE_WORDS = recovery.PHRASE_WORDS
check_phrase = recovery.check_phrase


@dataclass(frozen=True)
class NewDataKey:
    """A freshly generated data key, not yet stored: the pipeline encrypts with it, then commits it."""

    id: str
    purpose: str
    key: bytes
    iv: str | None = None


@dataclass(frozen=True)
class KeyStatus:
    backend: str
    master_key_id: str
    created_at: datetime
    rotation_due_at: datetime
    rotation_overdue: bool
    data_keys: int
    master_keys_in_use: int  # more than 1 means a rotation was interrupted and will be finished
    recovery_fingerprint: str | None  # None: no recovery key yet, so no backup can be restored elsewhere
    recovery_created_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.__dict__,
            "created_at": self.created_at.isoformat(),
            "rotation_due_at": self.rotation_due_at.isoformat(),
            "recovery_created_at": self.recovery_created_at.isoformat() if self.recovery_created_at else None,
        }


@dataclass(frozen=True)
class RotationResult:
    old_master_key_ids: list[str]
    new_master_key_id: str
    rewrapped: int


class KeyService:
    def __init__(
        self, paths: AppPaths, db: Database, store: KeyStore, settings: SettingsService, audit: AuditService
    ) -> None:
        self._db = db
        self._store = store
        self._settings = settings
        self._audit = audit
        self._thread_lock = threading.RLock()
        self._file_lock = key_lock(paths)
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self._key_ids: dict[str, str] = {}

    @contextmanager
    def exclusive(self) -> Iterator[KeyRing]:
        """Hold the key lock and a freshly read key ring (another process may have rotated)."""
        with self._thread_lock, self._file_lock:
            yield self._store.reload()

    def new_data_key(self, purpose: str, with_iv: bool = False) -> NewDataKey:
        iv = envelope.new_data_key().hex() if with_iv else None
        return NewDataKey(new_id(), purpose, envelope.new_data_key(), iv)

    def add_wrapped(self, session: Session, ring: KeyRing, media_id: str, keys: list[NewDataKey]) -> None:
        """Store keys wrapped by the current master key; call in `exclusive()`, in the commit's session.
        Keys stored already (a video's, listed while it converted) are left as they are."""
        master = ring.current
        stored = set(session.exec(select(EncryptionKey.id).where(col(EncryptionKey.media_id) == media_id)))
        for k in (k for k in keys if k.id not in stored):
            session.add(
                EncryptionKey(
                    id=k.id,
                    media_id=media_id,
                    purpose=k.purpose,
                    iv=k.iv,
                    wrapped_key=envelope.wrap(master.key, k.id, k.key),
                    master_key_id=master.id,
                )
            )

    def data_key(self, key_id: str) -> bytes:
        """The plaintext data key; unwrapped keys are cached (bounded) because segments are fetched often."""
        with self._thread_lock:
            if key_id in self._cache:
                self._cache.move_to_end(key_id)
                return self._cache[key_id]
        with self._db.session() as session:
            row = session.get(EncryptionKey, key_id)
        if row is None:
            raise NotFoundError("Unknown key", details={"key_id": key_id})
        key = self._unwrap(row)
        with self._thread_lock:
            self._cache[key_id] = key
            while len(self._cache) > 4096:
                self._cache.popitem(last=False)
        return key

    def hls_key(self, key_id: str) -> tuple[str, bytes]:
        """A video's HLS key and the item it belongs to (whose access rule decides who gets it); the only
        kind handed to a player: file keys are refused like unknown ids."""
        with self._db.session() as session:
            row = session.get(EncryptionKey, key_id)
        if row is None or row.purpose != "hls":
            raise NotFoundError("Unknown key", details={"key_id": key_id})
        return row.media_id, self.data_key(key_id)

    def key_id(self, media_id: str, purpose: str) -> str:
        """Which key protects an item's files or stream; cached, since an item's keys never change."""
        cache_key = f"{media_id}:{purpose}"
        with self._thread_lock:
            if found := self._key_ids.get(cache_key):
                return found
        key_id = self.key_row(media_id, purpose).id
        with self._thread_lock:
            if len(self._key_ids) > 20_000:
                self._key_ids.clear()
            self._key_ids[cache_key] = key_id
        return key_id

    def key_row(self, media_id: str, purpose: str) -> EncryptionKey:
        with self._db.session() as session:
            row = session.exec(
                select(EncryptionKey).where(
                    EncryptionKey.media_id == media_id, EncryptionKey.purpose == purpose
                )
            ).first()
        if row is None:
            raise NotFoundError("This item has no key of that kind", details={"media_id": media_id})
        return row

    def _unwrap(self, row: EncryptionKey) -> bytes:
        if row.master_key_id not in self._store.ring().keys:  # another process rotated since we loaded
            self._store.reload()
        return envelope.unwrap(self._store.get(row.master_key_id).key, row.id, row.wrapped_key)

    def forget(self, key_ids: list[str]) -> None:
        with self._thread_lock:
            for key_id in key_ids:
                self._cache.pop(key_id, None)

    def status(self) -> KeyStatus:
        ring = self._store.ring()
        master = ring.current
        with self._db.session() as session:
            count = session.exec(select(func.count()).select_from(EncryptionKey)).one()
        due = master.created_at + timedelta(days=self._settings.current.key_rotation_days)
        return KeyStatus(
            self._store.backend_name,
            master.id,
            master.created_at,
            due,
            utcnow() >= due,
            count,
            len(ring.keys),
            recovery.fingerprint(ring.recovery_public) if ring.recovery_public else None,
            ring.recovery_created_at,
        )

    def new_recovery_key(self, actor: str | None = None) -> str:
        """Make a recovery key, replacing any before it; the phrase is returned once and kept nowhere."""
        phrase = recovery.new_phrase()
        with self.exclusive() as ring:
            ring.set_recovery(recovery.RecoveryKey.from_phrase(phrase).public)
            self._store.save(ring)
            fingerprint = recovery.fingerprint(ring.recovery_public or b"")
        self._audit.record(AuditEvent("recovery_key_created", username=actor,
                                      details={"fingerprint": fingerprint}))
        log.info("Made a new recovery key (fingerprint %s); the previous one no longer opens new backups",
                 fingerprint)
        return phrase

    def recovery_document(self) -> dict[str, Any]:
        """The sealed keys a backup carries (ConfigurationError when there is no recovery key yet)."""
        with self.exclusive() as ring:
            return ring.recovery_document()

    def rotate(self) -> RotationResult:
        """New master key; re-wrap every data key under it; only then retire the old ones."""
        with self.exclusive() as ring:
            old_ids = sorted(ring.keys)
            new = new_master_key()
            ring.keys[new.id] = new
            ring.current_id = new.id
            self._store.save(ring)  # both keys persisted before any row changes
            rewrapped = self._rewrap_and_retire(ring)
        self._audit.record(
            AuditEvent("keys_rotated", details={"new_master_key_id": new.id, "rewrapped": rewrapped})
        )
        log.info("Rotated master key: %d data keys re-wrapped", rewrapped)
        return RotationResult(old_ids, new.id, rewrapped)

    def finish_interrupted_rotation(self) -> int:
        """Called on start: a ring holding old keys means a rotation stopped half way; finish it."""
        with self.exclusive() as ring:
            if len(ring.keys) <= 1:
                return 0
            log.warning("Finishing an interrupted master-key rotation")
            return self._rewrap_and_retire(ring)

    def _rewrap_and_retire(self, ring: KeyRing) -> int:
        master = ring.current
        total = 0
        while True:
            with self._db.session() as session:
                rows = session.exec(
                    select(EncryptionKey).where(EncryptionKey.master_key_id != master.id).limit(REWRAP_BATCH)
                ).all()
                for row in rows:
                    plain = envelope.unwrap(ring.keys[row.master_key_id].key, row.id, row.wrapped_key)
                    row.wrapped_key = envelope.wrap(master.key, row.id, plain)
                    row.master_key_id = master.id
                    row.rotated_at = utcnow()
                    session.add(row)
            total += len(rows)
            if len(rows) < REWRAP_BATCH:
                break
        with self._db.session() as session:
            in_use = set(session.exec(select(EncryptionKey.master_key_id).distinct()).all())
        for key_id in [k for k in ring.keys if k != master.id and k not in in_use]:
            del ring.keys[key_id]
        self._store.save(ring)
        return total

    def delete_for_media(self, session: Session, media_id: str) -> list[str]:
        """Shred an item's keys (secure_delete overwrites the freed pages). Its ciphertext is then noise."""
        rows = session.exec(select(EncryptionKey).where(col(EncryptionKey.media_id) == media_id)).all()
        for row in rows:
            session.delete(row)
        ids = [r.id for r in rows]
        self.forget(ids)
        with self._thread_lock:
            for purpose in ("file", "hls"):
                self._key_ids.pop(f"{media_id}:{purpose}", None)
        return ids
