"""The at-rest file format: chunked AES-GCM, streamable in constant memory, with random access for Range.

Layout: a 32-byte header (magic, version, chunk size, 20-byte salt), then chunks of `chunk_size` plaintext
bytes, each sealed with its 16-byte GCM tag. A per-file subkey is derived from the item's data key with
HKDF over the salt, so one data key can protect many files. Each chunk's nonce is its index plus a
"last chunk" flag (the STREAM construction used by age and Tink): reordering, dropping or truncating
chunks fails authentication, as does any flipped bit. The header is authenticated as associated data.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from vaultserver.errors import IntegrityError

MAGIC = b"VLTC"
VERSION = 1
DEFAULT_CHUNK = 256 * 1024
TAG = 16
SALT = 20
HEADER = struct.Struct(">4sBxxxI")  # magic, version, padding, chunk size
HEADER_SIZE = HEADER.size + SALT
MAX_CHUNKS = 2**32  # nonce counter space; 2^32 * 256 KiB = 1 PiB per file


def _subkey(data_key: bytes, salt: bytes) -> AESGCM:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=len(data_key), salt=salt, info=b"vault at-rest v1")
    return AESGCM(hkdf.derive(data_key))


def _nonce(index: int, last: bool) -> bytes:
    return struct.pack(">7xIB", index, 1 if last else 0)


def _layout(header: bytes, file_size: int, name: str, data_key: bytes) -> tuple[int, AESGCM, int, int]:
    """(chunk size, the file's AEAD, chunk count, plaintext size) from a sealed file's header and size."""
    if len(header) < HEADER_SIZE:
        raise IntegrityError("Encrypted file is truncated", details={"file": name})
    magic, version, chunk_size = HEADER.unpack(header[: HEADER.size])
    if magic != MAGIC or version != VERSION or chunk_size <= 0:
        raise IntegrityError("Not a Vault encrypted file", details={"file": name})
    body = file_size - HEADER_SIZE
    chunks = max(1, -(-body // (chunk_size + TAG)))
    size = body - chunks * TAG
    if size < 0:
        raise IntegrityError("Encrypted file is truncated", details={"file": name})
    return chunk_size, _subkey(data_key, header[HEADER.size:]), chunks, size


def _open(aead: AESGCM, header: bytes, index: int, chunks: int, data: bytes | memoryview, name: str) -> bytes:
    try:
        return aead.decrypt(_nonce(index, index == chunks - 1), data, header)
    except InvalidTag as exc:
        raise IntegrityError("Encrypted file failed its integrity check (tampered or truncated)",
                             details={"file": name, "chunk": index}) from exc


def unseal(sealed: bytes, data_key: bytes, name: str = "") -> bytes:
    """A whole sealed file, already read into memory, decrypted (small files: one read, no re-opening)."""
    header = sealed[:HEADER_SIZE]
    chunk_size, aead, chunks, _size = _layout(header, len(sealed), name, data_key)
    step = chunk_size + TAG
    view = memoryview(sealed)
    return b"".join(_open(aead, header, index, chunks, view[HEADER_SIZE + index * step:][:step], name)
                    for index in range(chunks))


class EncryptingWriter:
    """A write-only file object: plaintext in, sealed chunks out. Call `close()` to seal the last chunk."""

    def __init__(self, sink: BinaryIO, data_key: bytes, chunk_size: int = DEFAULT_CHUNK) -> None:
        self._sink = sink
        self._chunk_size = chunk_size
        salt = os.urandom(SALT)
        self._header = HEADER.pack(MAGIC, VERSION, chunk_size) + salt
        self._aead = _subkey(data_key, salt)
        self._buffer = bytearray()
        self._index = 0
        self._closed = False
        self.plaintext_size = 0
        sink.write(self._header)

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self._buffer += data
        self.plaintext_size += len(data)
        # Keep at least one byte back: the final chunk must be sealed with the "last" flag.
        while len(self._buffer) > self._chunk_size:
            self._seal(bytes(self._buffer[: self._chunk_size]), last=False)
            del self._buffer[: self._chunk_size]
        return len(data)

    def _seal(self, chunk: bytes, last: bool) -> None:
        if self._index >= MAX_CHUNKS:
            raise ValueError("file too large for the at-rest format")
        self._sink.write(self._aead.encrypt(_nonce(self._index, last), chunk, self._header))
        self._index += 1

    def close(self) -> None:
        if self._closed:
            return
        self._seal(bytes(self._buffer), last=True)
        self._buffer.clear()
        self._closed = True

    def __enter__(self) -> EncryptingWriter:
        return self

    def __exit__(self, exc_type, *_exc) -> None:
        if exc_type is None:
            self.close()


class SealedFile:
    """Read access to one sealed file: its plaintext size, and any byte range decrypted as a stream."""

    def __init__(self, path: Path, data_key: bytes) -> None:
        self.path = path
        self._file_size = path.stat().st_size
        with open(path, "rb") as fh:
            header = fh.read(HEADER_SIZE)
        self._header = header
        self._chunk_size, self._aead, self._chunks, self.size = _layout(header, self._file_size, path.name,
                                                                         data_key)

    def _open_chunk(self, fh: BinaryIO, index: int) -> bytes:
        sealed = self._chunk_size + TAG
        fh.seek(HEADER_SIZE + index * sealed)
        return _open(self._aead, self._header, index, self._chunks, fh.read(sealed), self.path.name)

    def iter_range(self, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Plaintext bytes [start, end) in chunk-sized pieces; memory use is one chunk whatever the size."""
        end = self.size if end is None else min(end, self.size)
        if start >= end:
            if self.size == 0:  # still authenticate an empty file
                with open(self.path, "rb") as fh:
                    self._open_chunk(fh, 0)
            return
        first, last = start // self._chunk_size, (end - 1) // self._chunk_size
        with open(self.path, "rb") as fh:
            for index in range(first, last + 1):
                chunk = self._open_chunk(fh, index)
                base = index * self._chunk_size
                yield chunk[max(start - base, 0): end - base]

    def read_all(self) -> bytes:
        return b"".join(self.iter_range())


def seal_stream(chunks: Iterable[bytes], dest: Path, data_key: bytes) -> int:
    """Encrypt an iterable of plaintext pieces into `dest`; returns the plaintext size."""
    with open(dest, "wb") as fh:
        writer = EncryptingWriter(fh, data_key)
        for piece in chunks:
            writer.write(piece)
        writer.close()
        fh.flush()
        os.fsync(fh.fileno())
    return writer.plaintext_size


def seal_bytes(data: bytes, dest: Path, data_key: bytes) -> int:
    return seal_stream([data], dest, data_key)


def seal_file(source: Path, dest: Path, data_key: bytes, piece: int = 1024 * 1024) -> int:
    """Encrypt a whole file in constant memory."""
    def pieces() -> Iterator[bytes]:
        with open(source, "rb") as fh:
            while block := fh.read(piece):
                yield block
    return seal_stream(pieces(), dest, data_key)
