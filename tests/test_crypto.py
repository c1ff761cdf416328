"""The at-rest format and envelope keys: round trips, random access, and loud failure on any tampering."""

from __future__ import annotations

import os
import stat
import tracemalloc

import pytest

from vaultserver.crypto import container, envelope
from vaultserver.crypto.keystore import FileBackend, KeychainBackend, KeyStore, choose_backend
from vaultserver.errors import ConfigurationError, IntegrityError

KEY = bytes(range(16))


def sealed(tmp_path, data: bytes, chunk: int = 1000):
    path = tmp_path / "f.vlt"
    with open(path, "wb") as fh:
        with container.EncryptingWriter(fh, KEY, chunk_size=chunk) as writer:
            writer.write(data)
    return path


@pytest.mark.parametrize("size", [0, 1, 999, 1000, 1001, 5000, 12345])
def test_round_trip_and_any_range(tmp_path, size):
    data = os.urandom(size)
    reader = container.SealedFile(sealed(tmp_path, data), KEY)
    assert reader.size == size and reader.read_all() == data
    for start, end in [(0, size), (size // 3, size // 2), (max(size - 7, 0), size), (999, 2001)]:
        assert b"".join(reader.iter_range(start, end)) == data[start:end]


def test_ciphertext_reveals_nothing_and_each_file_differs(tmp_path):
    data = b"A" * 5000
    one, two = sealed(tmp_path, data).read_bytes(), sealed(tmp_path / ".." / tmp_path.name, data).read_bytes()
    assert b"AAAA" not in one and one != two


@pytest.mark.parametrize("damage", ["flip_bit", "truncate_chunk_boundary", "truncate_mid", "swap_chunks",
                                    "drop_chunk", "header"])
def test_tampering_is_an_error_never_garbage(tmp_path, damage):
    path = sealed(tmp_path, os.urandom(4500))
    raw = bytearray(path.read_bytes())
    head, sealed_chunk = container.HEADER_SIZE, 1000 + container.TAG
    chunks = [raw[head + i: head + i + sealed_chunk] for i in range(0, len(raw) - head, sealed_chunk)]
    if damage == "flip_bit":
        raw[head + 1500] ^= 0x01
    elif damage == "truncate_chunk_boundary":
        raw = raw[: head + 3 * sealed_chunk]
    elif damage == "truncate_mid":
        raw = raw[:-10]
    elif damage == "swap_chunks":
        raw = raw[:head] + chunks[1] + chunks[0] + b"".join(chunks[2:])
    elif damage == "drop_chunk":
        raw = raw[:head] + b"".join(chunks[:1] + chunks[2:])
    else:
        raw[10] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(IntegrityError):
        container.SealedFile(path, KEY).read_all()


def test_wrong_key_is_an_error(tmp_path):
    path = sealed(tmp_path, b"secret")
    with pytest.raises(IntegrityError):
        container.SealedFile(path, bytes(16)).read_all()


def test_large_files_stream_in_constant_memory(tmp_path):
    block = os.urandom(1 << 20)
    tracemalloc.start()
    size = container.seal_stream((block for _ in range(64)), tmp_path / "big.vlt", KEY)
    total = sum(len(piece) for piece in container.SealedFile(tmp_path / "big.vlt", KEY).iter_range())
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert size == total == 64 << 20
    assert peak < 8 << 20  # 64 MiB through, a few chunks in memory


def test_wrapped_keys_are_bound_to_their_id():
    master, data_key = os.urandom(32), envelope.new_data_key()
    wrapped = envelope.wrap(master, "key-a", data_key)
    assert envelope.unwrap(master, "key-a", wrapped) == data_key
    with pytest.raises(IntegrityError):
        envelope.unwrap(master, "key-b", wrapped)
    with pytest.raises(IntegrityError):
        envelope.unwrap(os.urandom(32), "key-a", wrapped)


def test_file_key_store_is_owner_only_and_persistent(paths):
    store = KeyStore(FileBackend(paths.private / "master-keys.json"))
    key = store.ring().current
    assert stat.S_IMODE((paths.private / "master-keys.json").stat().st_mode) == 0o600
    assert stat.S_IMODE(paths.private.stat().st_mode) == 0o700
    assert KeyStore(FileBackend(paths.private / "master-keys.json")).ring().current == key


class FakeKeychain:
    """Stands in for the macOS Keychain: the one outer boundary these tests mock."""

    priority = 5

    def __init__(self):
        self.items = {}

    def get_password(self, service, account):
        return self.items.get((service, account))

    def set_password(self, service, account, secret):
        self.items[(service, account)] = secret


def test_keychain_is_preferred_where_one_works_and_each_data_dir_has_its_own_entry(paths, tmp_path,
                                                                                   monkeypatch):
    import keyring

    from vaultserver.config import AppPaths

    fake = FakeKeychain()
    monkeypatch.delenv("VAULT_KEYSTORE")
    monkeypatch.setattr(keyring, "get_keyring", lambda: fake)
    monkeypatch.setattr(keyring, "get_password", fake.get_password)
    monkeypatch.setattr(keyring, "set_password", fake.set_password)
    other = AppPaths(tmp_path / "other").ensure()
    first, second = choose_backend(paths), choose_backend(other)
    assert isinstance(first, KeychainBackend) and isinstance(second, KeychainBackend)
    assert KeyStore(first).ring().current != KeyStore(second).ring().current
    assert len(fake.items) == 2 and not (paths.private / "master-keys.json").exists()


def test_asking_for_a_keychain_where_none_works_is_a_clear_error(paths, monkeypatch):
    monkeypatch.delenv("VAULT_KEYSTORE")
    with pytest.raises(ConfigurationError, match="keychain"):
        choose_backend(paths, "keychain")
