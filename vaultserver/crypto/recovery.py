"""The recovery key: a 24-word phrase that, with a backup, is all it takes to open the library elsewhere.

The phrase is BIP-39 (the `mnemonic` library): 256 bits of entropy plus a checksum, so a mistyped word is
caught before any work starts. It derives an X25519 key pair (HKDF over the entropy). Vault keeps only the
public half; every master key is sealed to it (an ephemeral X25519 exchange, HKDF-SHA256, AES-256-GCM with
the master key's id bound as associated data: the ECIES shape of HPKE, from `cryptography`'s primitives).
So rotation seals each new master key without the phrase, and nothing Vault stores opens a master key by
itself. The phrase is never stored or logged.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from mnemonic import Mnemonic

from vaultserver.errors import IntegrityError, ValidationError

PHRASE_WORDS = 24
_ENTROPY_BITS = 256
_KEY_INFO = b"vault recovery key pair v1"
_SEAL_INFO = b"vault recovery seal v1"
_NONCE = 12
_PUBLIC = 32
_RAW = serialization.Encoding.Raw, serialization.PublicFormat.Raw


def _words() -> Mnemonic:
    return Mnemonic("english")


def new_phrase() -> str:
    return str(_words().generate(_ENTROPY_BITS))


def normalise(phrase: str) -> str:
    """The phrase as the library expects it: lower case, single spaces (people paste it in many shapes)."""
    return " ".join(phrase.lower().split())


def check_phrase(phrase: str) -> str:
    """The normalised phrase, or a clear VALIDATION_001 naming what is wrong (count, unknown word, typo)."""
    words = normalise(phrase).split()
    if len(words) != PHRASE_WORDS:
        raise ValidationError(f"A recovery key has {PHRASE_WORDS} words; this one has {len(words)}",
                              details={"words": len(words)})
    known = set(_words().wordlist)
    unknown = [f"word {i} ({w!r})" for i, w in enumerate(words, 1) if w not in known]
    if unknown:
        raise ValidationError("Not a recovery-key word: " + ", ".join(unknown),
                              details={"unknown": len(unknown)})
    joined = " ".join(words)
    if not _words().check(joined):
        raise ValidationError("The recovery key's checksum does not match: a word is wrong or out of order")
    return joined


@dataclass(frozen=True)
class RecoveryKey:
    """The key pair a checked phrase derives; only `public` is ever kept."""

    private: X25519PrivateKey

    @classmethod
    def from_phrase(cls, phrase: str) -> RecoveryKey:
        entropy = bytes(_words().to_entropy(check_phrase(phrase)))
        seed = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_KEY_INFO).derive(entropy)
        return cls(X25519PrivateKey.from_private_bytes(seed))

    @property
    def public(self) -> bytes:
        return self.private.public_key().public_bytes(*_RAW)

    def open(self, master_key_id: str, sealed: bytes) -> bytes:
        """A master key sealed to this key pair; IntegrityError if it was sealed to another phrase."""
        ephemeral, nonce, body = sealed[:_PUBLIC], sealed[_PUBLIC:_PUBLIC + _NONCE], sealed[_PUBLIC + _NONCE:]
        try:
            shared = self.private.exchange(X25519PublicKey.from_public_bytes(ephemeral))
            return _aead(shared, ephemeral, self.public).decrypt(nonce, body, master_key_id.encode())
        except (InvalidTag, ValueError) as exc:
            raise IntegrityError("This recovery key does not open these keys (another phrase made them)",
                                 details={"master_key_id": master_key_id}) from exc


def seal(public: bytes, master_key_id: str, master_key: bytes) -> bytes:
    """`master_key` sealed to the recovery key whose public half is `public`: ephemeral | nonce | sealed."""
    ephemeral = X25519PrivateKey.generate()
    ephemeral_public = ephemeral.public_key().public_bytes(*_RAW)
    shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(public))
    nonce = os.urandom(_NONCE)
    body = _aead(shared, ephemeral_public, public).encrypt(nonce, master_key, master_key_id.encode())
    return ephemeral_public + nonce + body


def fingerprint(public: bytes) -> str:
    """A short name for a recovery key, so the owner can tell which phrase a backup needs."""
    digest = hashes.Hash(hashes.SHA256())
    digest.update(public)
    return digest.finalize()[:6].hex(" ").upper()


def _aead(shared: bytes, ephemeral_public: bytes, recipient_public: bytes) -> AESGCM:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=ephemeral_public + recipient_public,
               info=_SEAL_INFO).derive(shared)
    return AESGCM(key)
