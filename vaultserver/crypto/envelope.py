"""Envelope encryption: random per-item data keys, stored only wrapped (AES-256-GCM) by a master key.

The data key's id is bound as associated data, so a wrapped key copied onto another row fails to unwrap.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from vaultserver.errors import IntegrityError

DATA_KEY_BYTES = 16  # AES-128: what HLS requires, and what the at-rest format uses per item
NONCE_BYTES = 12


def new_data_key() -> bytes:
    return os.urandom(DATA_KEY_BYTES)


def wrap(master_key: bytes, key_id: str, data_key: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(master_key).encrypt(nonce, data_key, key_id.encode())


def unwrap(master_key: bytes, key_id: str, wrapped: bytes) -> bytes:
    try:
        return AESGCM(master_key).decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], key_id.encode())
    except InvalidTag as exc:
        raise IntegrityError("A data key failed to unwrap (wrong master key or tampered row)",
                             details={"key_id": key_id}) from exc
