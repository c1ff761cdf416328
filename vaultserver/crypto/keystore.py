"""Where the master keys live: the OS keychain through `keyring` where one works, else a 0600 file.

The store holds a small JSON document: the current master key id and every key still in use, each with
its creation time. During a rotation two keys coexist until every data key has been re-wrapped, so a
crash half way loses nothing. The keychain entry is named after an install id kept in the data dir, so
two data dirs on one machine never share a key.

The document also carries a few named secrets sealed by the current master key (the key that seals the
local CA's private key): a rotation re-wraps them under the new master key in the same save that adds
it, so retiring the old key never strands them.

Once the owner has made a recovery key, the document keeps its public half and every master key sealed to
it (`crypto.recovery`); each save seals new keys, so a rotation needs no phrase. `recovery_document()` is
what a backup carries: sealed keys and sealed secrets only, never a key in the clear.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from filelock import FileLock

from vaultserver.config import PRIVATE_FILE_MODE, AppPaths, load_settings
from vaultserver.crypto import envelope, recovery
from vaultserver.errors import ConfigurationError, IntegrityError, ValidationError

log = logging.getLogger(__name__)

KEYRING_SERVICE = "Vault media server"
MASTER_KEY_BYTES = 32


@dataclass(frozen=True)
class MasterKey:
    id: str
    key: bytes
    created_at: datetime


@dataclass(frozen=True)
class SealedSecret:
    """A small secret wrapped (envelope.wrap, its name bound as associated data) by one master key."""

    master_key_id: str
    wrapped: bytes


@dataclass
class KeyRing:
    """The decoded key-store document."""

    current_id: str | None = None
    keys: dict[str, MasterKey] = field(default_factory=dict)
    secrets: dict[str, SealedSecret] = field(default_factory=dict)
    recovery_public: bytes | None = None
    recovery_created_at: datetime | None = None
    recovery_sealed: dict[str, bytes] = field(default_factory=dict)  # master key id -> sealed to recovery

    @property
    def current(self) -> MasterKey:
        if self.current_id is None or self.current_id not in self.keys:
            raise ConfigurationError("The key store has no current master key")
        return self.keys[self.current_id]

    def seal_secret(self, name: str, value: bytes) -> None:
        """Keep `value` under `name`, wrapped by the current master key (save the ring to persist it)."""
        master = self.current
        self.secrets[name] = SealedSecret(master.id, envelope.wrap(master.key, name, value))

    def secret(self, name: str) -> bytes | None:
        """The secret, or None if there is none or the master key that sealed it is gone."""
        sealed = self.secrets.get(name)
        if sealed is None or sealed.master_key_id not in self.keys:
            return None
        try:
            return envelope.unwrap(self.keys[sealed.master_key_id].key, name, sealed.wrapped)
        except IntegrityError:
            return None

    def rewrap_secrets(self) -> None:
        """Move every secret under the current master key while the key that sealed it is still here."""
        for name, sealed in list(self.secrets.items()):
            if sealed.master_key_id != self.current_id and (value := self.secret(name)) is not None:
                self.seal_secret(name, value)

    def set_recovery(self, public: bytes) -> None:
        """A new recovery key replaces the old: its seals go, every master key is sealed to the new one."""
        self.recovery_public, self.recovery_created_at = public, datetime.now(UTC)
        self.recovery_sealed = {}
        self.seal_for_recovery()

    def seal_for_recovery(self) -> None:
        """Seal every master key not yet sealed to the recovery key; forget seals of retired keys."""
        if self.recovery_public is None:
            return
        self.recovery_sealed = {kid: seal for kid, seal in self.recovery_sealed.items() if kid in self.keys}
        for key in self.keys.values():
            if key.id not in self.recovery_sealed:
                self.recovery_sealed[key.id] = recovery.seal(self.recovery_public, key.id, key.key)

    def recovery_document(self) -> dict[str, Any]:
        """What a backup keeps of the keys: master keys sealed to the recovery key, secrets sealed by the
        master keys. Nothing in it opens anything without the phrase."""
        if self.recovery_public is None or self.recovery_created_at is None:
            raise ConfigurationError("There is no recovery key yet: make one first (keys recovery-key)")
        self.seal_for_recovery()
        return {
            "format": 1,
            "recovery_public": _b64(self.recovery_public),
            "recovery_fingerprint": recovery.fingerprint(self.recovery_public),
            "recovery_created_at": self.recovery_created_at.isoformat(),
            "current": self.current_id,
            "master_keys": {
                kid: {"sealed": _b64(self.recovery_sealed[kid]), "created_at": key.created_at.isoformat()}
                for kid, key in self.keys.items()},
            "secrets": self._secrets_json(),
        }

    @classmethod
    def from_recovery_document(cls, doc: dict[str, Any], key: recovery.RecoveryKey) -> KeyRing:
        """The key ring a backup's keys open to with the phrase; IntegrityError for another phrase."""
        public = base64.b64decode(doc["recovery_public"])
        if public != key.public:
            raise ValidationError("This recovery key does not open this backup: it was made with the key "
                                  f"whose fingerprint is {doc.get('recovery_fingerprint', '?')}")
        keys = {kid: MasterKey(kid, key.open(kid, base64.b64decode(v["sealed"])),
                               datetime.fromisoformat(v["created_at"]))
                for kid, v in doc["master_keys"].items()}
        ring = cls(current_id=doc["current"], keys=keys, secrets=_secrets_from(doc.get("secrets", {})),
                   recovery_public=public,
                   recovery_created_at=datetime.fromisoformat(doc["recovery_created_at"]))
        ring.seal_for_recovery()
        return ring

    def _secrets_json(self) -> dict[str, dict[str, str]]:
        return {name: {"master_key_id": sealed.master_key_id, "wrapped": _b64(sealed.wrapped)}
                for name, sealed in self.secrets.items()}

    def to_json(self) -> str:
        return json.dumps({
            "current": self.current_id,
            "keys": {k.id: {"key": base64.b64encode(k.key).decode(), "created_at": k.created_at.isoformat()}
                     for k in self.keys.values()},
            "secrets": self._secrets_json(),
            "recovery": None if self.recovery_public is None or self.recovery_created_at is None else {
                "public": _b64(self.recovery_public),
                "created_at": self.recovery_created_at.isoformat(),
                "sealed": {kid: _b64(sealed) for kid, sealed in self.recovery_sealed.items()},
            },
        })

    @classmethod
    def from_json(cls, text: str) -> KeyRing:
        doc = json.loads(text)
        keys = {kid: MasterKey(kid, base64.b64decode(v["key"]), datetime.fromisoformat(v["created_at"]))
                for kid, v in doc.get("keys", {}).items()}
        ring = cls(current_id=doc.get("current"), keys=keys, secrets=_secrets_from(doc.get("secrets", {})))
        if found := doc.get("recovery"):
            ring.recovery_public = base64.b64decode(found["public"])
            ring.recovery_created_at = datetime.fromisoformat(found["created_at"])
            ring.recovery_sealed = {kid: base64.b64decode(v) for kid, v in found["sealed"].items()}
        return ring


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _secrets_from(doc: dict[str, Any]) -> dict[str, SealedSecret]:
    return {name: SealedSecret(v["master_key_id"], base64.b64decode(v["wrapped"])) for name, v in doc.items()}


def new_master_key() -> MasterKey:
    return MasterKey(uuid.uuid4().hex, os.urandom(MASTER_KEY_BYTES), datetime.now(UTC))


class KeyBackend(Protocol):
    name: str

    def load(self) -> str | None: ...

    def save(self, document: str) -> None: ...


class FileBackend:
    """A 0600 file under the 0700 private/ folder: the fallback where no OS keychain works."""

    name = "file"

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> str | None:
        return self.path.read_text(encoding="utf-8") if self.path.exists() else None

    def save(self, document: str) -> None:
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(document)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)


class KeychainBackend:
    """The OS keychain (macOS Keychain, Secret Service, Windows Credential Locker) via `keyring`."""

    name = "keychain"

    def __init__(self, account: str) -> None:
        self.account = account

    def load(self) -> str | None:
        import keyring
        return keyring.get_password(KEYRING_SERVICE, self.account)

    def save(self, document: str) -> None:
        import keyring
        keyring.set_password(KEYRING_SERVICE, self.account, document)


class MemoryBackend:
    """A key ring held only by this process (a backup's keys opened with the phrase for a deep check):
    raw master keys must never reach a disk that is not the owner's key store, not even a temporary file."""

    name = "memory"

    def __init__(self, ring: KeyRing | None = None) -> None:
        self._document = ring.to_json() if ring is not None else None

    def load(self) -> str | None:
        return self._document

    def save(self, document: str) -> None:
        self._document = document


def keychain_usable() -> bool:
    """A keyring backend counts only if it is a real, secure one (not the fail or plaintext backends)."""
    try:
        import keyring
        from keyring.backends import fail
    except ImportError:
        return False
    backend = keyring.get_keyring()
    if isinstance(backend, fail.Keyring):
        return False
    return "plaintext" not in type(backend).__module__.lower() and backend.priority > 0


def install_id(paths: AppPaths) -> str:
    path = paths.private / "install-id"
    if not path.exists():
        FileBackend(path).save(uuid.uuid4().hex)
    return path.read_text(encoding="utf-8").strip()


def key_lock(paths: AppPaths) -> FileLock:
    """The inter-process lock held while the key ring is read, changed and saved (rotation, sealing)."""
    return FileLock(str(paths.private / "keys.lock"), mode=PRIVATE_FILE_MODE)


def open_key_store(paths: AppPaths) -> KeyStore:
    """The key store the settings name, for code that needs it without the services (the TLS CA)."""
    return KeyStore(choose_backend(paths, load_settings(paths).keystore))


def choose_backend(paths: AppPaths, preference: str = "auto") -> KeyBackend:
    """Pick by preference; an existing key file always wins so a key is never orphaned by a new backend."""
    preference = os.environ.get("VAULT_KEYSTORE", preference)
    file_backend = FileBackend(paths.private / "master-keys.json")
    if preference == "file" or (preference == "auto" and file_backend.path.exists()):
        return file_backend
    if keychain_usable():
        return KeychainBackend(f"master-keys:{install_id(paths)}")
    if preference == "keychain":
        raise ConfigurationError("No usable OS keychain was found; set keystore = 'file' to use a key file")
    return file_backend


class KeyStore:
    """Loads and saves the key ring through one backend; creates the first master key on demand."""

    def __init__(self, backend: KeyBackend) -> None:
        self.backend = backend
        self._ring: KeyRing | None = None

    @property
    def backend_name(self) -> str:
        return self.backend.name

    def ring(self) -> KeyRing:
        if self._ring is None:
            document = self.backend.load()
            if document is None:
                key = new_master_key()
                ring = KeyRing(current_id=key.id, keys={key.id: key})
                self.backend.save(ring.to_json())
                log.info("Created a new master key in the %s key store", self.backend.name)
            else:
                try:
                    ring = KeyRing.from_json(document)
                except (ValueError, KeyError, TypeError) as exc:
                    raise ConfigurationError(f"The {self.backend.name} key store is unreadable: {exc}") \
                        from exc
            self._ring = ring
        return self._ring

    def reload(self) -> KeyRing:
        """Drop the cached ring: another process may have rotated since it was read."""
        self._ring = None
        return self.ring()

    def save(self, ring: KeyRing) -> None:
        if ring.current_id in ring.keys:
            ring.rewrap_secrets()
        ring.seal_for_recovery()
        self.backend.save(ring.to_json())
        self._ring = ring

    def get(self, key_id: str) -> MasterKey:
        try:
            return self.ring().keys[key_id]
        except KeyError:
            raise ConfigurationError(f"Master key {key_id} is missing from the key store") from None
