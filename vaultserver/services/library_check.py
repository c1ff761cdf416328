"""Proving that every file of a library item decrypts: after a restore, in a backup's deep check, on demand,
and before a worker machine's result is committed (`check_staged`: its own keys, not yet stored).

An item's folder (`library/<id>/`, or the same layout under a backup's `library/`) must hold exactly what its
type calls for. Each at-rest container file is decrypted as a stream (one chunk in memory, plaintext thrown
away): AES-GCM authenticates every chunk, so any damage or a wrong key shows. HLS segments are AES-128-CBC,
which authenticates nothing, so a segment counts as sound when it decrypts with the key and IV its playlist
names (the item's own `hls` key), its PKCS#7 padding is whole and every 188-byte MPEG-TS packet starts with
the sync byte: a wrong key fails that for certain, a damaged byte only where it breaks the framing (a backup's
SHA-256 manifest is what catches every flipped bit there).

The check reads through the key service (data keys unwrapped by the master keys), so it proves the key ring
and the database open the library together, which is what a restore has to show.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from vaultserver import hls
from vaultserver.crypto.container import SealedFile
from vaultserver.errors import VaultError
from vaultserver.progress import Progress, ProgressListener, ignore_progress
from vaultserver.services.items import (
    HLS_DIR,
    IMAGE_FILE,
    MASTER_PLAYLIST,
    ORIGINAL_FILE,
    POSTER_FILE,
    PREVIEW_FILE,
    THUMB_FILE,
    MediaItem,
    StagedItem,
)
from vaultserver.services.keys import KeyService

TS_PACKET = 188
TS_SYNC = 0x47
READ_PIECE = 1024 * 1024  # a multiple of both the AES block and the TS packet, so packets never straddle
PHASE = "Checking that every item decrypts"


class _ItemProblem(Exception):
    """One file of an item is missing or does not decrypt; carries the words for the owner."""


def check_items(library_root: Path, items: Iterable[MediaItem], keys: KeyService,
                progress: ProgressListener = ignore_progress) -> list[str]:
    """Every ready item under `library_root` checked (items still converting are not final yet, so skipped);
    one problem string per damaged file, empty when the whole library decrypts."""
    ready = [item for item in items if item.status == "ready"]
    total = sum(item.stored_size for item in ready)
    problems: list[str] = []
    done = 0
    progress(Progress(PHASE, 0, total, 0, len(ready)))
    for number, item in enumerate(ready, 1):
        problems += check_item(library_root, item, keys)
        done += item.stored_size
        progress(Progress(PHASE, done, total, number, len(ready)))
    return problems


@dataclass(frozen=True)
class _Shape:
    """What an item's folder must hold."""

    type: str
    renditions: list[dict[str, Any]]
    has_original: bool


@dataclass(frozen=True)
class _HlsKey:
    id: str
    key: bytes
    iv: str | None


def check_item(library_root: Path, item: MediaItem, keys: KeyService) -> list[str]:
    """The problems of one item (empty when every file of it decrypts)."""
    folder = library_root / item.id
    label = f"Item {item.id} ({item.original_name})"
    if not folder.is_dir():
        return [f"{label}: its folder is missing"]
    try:
        file_key = keys.data_key(keys.key_id(item.id, "file"))
    except VaultError as exc:
        return [f"{label}: its file key cannot be opened: {exc.message}"]

    def hls_key() -> _HlsKey:
        row = keys.key_row(item.id, "hls")
        return _HlsKey(row.id, keys.data_key(row.id), row.iv)
    shape = _Shape(item.type, item.renditions, item.has_original)
    return _check_folder(folder, label, shape, file_key, hls_key)


def check_staged(staged: StagedItem) -> list[str]:
    """The problems of a converted item before its commit, checked with the keys it was made with."""
    label = f"The result for {staged.original_name}"
    keys = {key.purpose: key for key in staged.keys}
    if not staged.staging_dir.is_dir() or "file" not in keys:
        return [f"{label}: its files or its file key are missing"]

    def hls_key() -> _HlsKey:
        if "hls" not in keys:
            raise VaultError("no HLS key")
        return _HlsKey(keys["hls"].id, keys["hls"].key, keys["hls"].iv)
    shape = _Shape(staged.media_type, list(staged.renditions), staged.has_original)
    return _check_folder(staged.staging_dir, label, shape, keys["file"].key, hls_key)


def _check_folder(folder: Path, label: str, item: _Shape, file_key: bytes,
                  hls_key: Callable[[], _HlsKey]) -> list[str]:
    problems: list[str] = []
    seen: set[Path] = set()
    for name in _expected_sealed(item):
        seen.add(folder / name)
        problems += _report(label, name, _check_sealed, folder / name, file_key)
    if item.type == "video":
        problems += _check_video(label, folder, item, hls_key, file_key, seen)
    # Names starting with "." are temporary ones (a copy under way), never a file of the item.
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p not in seen
                       and not p.name.startswith(".")):
        relative = path.relative_to(folder).as_posix()
        if path.name.endswith(".vlt"):
            problems += _report(label, relative, _check_sealed, path, file_key)
        else:
            problems.append(f"{label}: {relative} is not a file Vault writes (not named by any playlist)")
    return problems


def _expected_sealed(item: _Shape) -> list[str]:
    if item.type == "image":
        names = [IMAGE_FILE, THUMB_FILE]
    else:
        names = [MASTER_PLAYLIST, THUMB_FILE, PREVIEW_FILE, POSTER_FILE]
        names += [f"{HLS_DIR}/{rendition['name']}/index.m3u8.vlt" for rendition in item.renditions]
    return names + ([ORIGINAL_FILE] if item.has_original else [])


def _report(label: str, name: str, check: Callable[..., object], *args: object) -> list[str]:
    try:
        check(*args)
    except _ItemProblem as exc:
        return [f"{label}: {name} {exc}"]
    except VaultError as exc:
        return [f"{label}: {name} does not decrypt: {exc.message}"]
    except OSError as exc:
        return [f"{label}: {name} cannot be read: {exc.strerror or exc}"]
    return []


def _check_sealed(path: Path, file_key: bytes) -> None:
    if not path.is_file():
        raise _ItemProblem("is missing")
    for _plaintext in SealedFile(path, file_key).iter_range():
        pass  # authenticated chunk by chunk; the plaintext is not kept


def _check_video(label: str, folder: Path, item: _Shape, open_hls_key: Callable[[], _HlsKey],
                 file_key: bytes, seen: set[Path]) -> list[str]:
    """Every segment each variant playlist names: present, and decrypting with the item's HLS key."""
    try:
        hls_row = open_hls_key()
        hls_key = hls_row.key
    except VaultError as exc:
        return [f"{label}: its HLS key cannot be opened: {exc.message}"]
    problems: list[str] = []
    for rendition in item.renditions:
        rung = rendition["name"]
        playlist = folder / HLS_DIR / rung / "index.m3u8.vlt"
        try:
            segments = hls.segments(SealedFile(playlist, file_key).read_all().decode())
        except (VaultError, OSError, UnicodeDecodeError):
            continue  # already reported as a sealed file
        if not segments:
            problems.append(f"{label}: {HLS_DIR}/{rung}/index.m3u8.vlt names no segments")
        for segment in segments:
            path = folder / HLS_DIR / rung / segment.uri
            seen.add(path)
            name = f"{HLS_DIR}/{rung}/{segment.uri}"
            if segment.key_id != hls_row.id or segment.iv is None or (
                    hls_row.iv and segment.iv != bytes.fromhex(hls_row.iv)):
                problems.append(f"{label}: {name} is not encrypted with this item's HLS key and IV")
                continue
            problems += _report(label, name,
                                _check_segment, path, hls_key, segment.iv)
    return problems


def _check_segment(path: Path, key: bytes, iv: bytes) -> None:
    """Decrypt as a player does, piece by piece, and check the padding and the transport stream's framing."""
    if not path.is_file():
        raise _ItemProblem("is missing")
    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    unpadder = padding.PKCS7(128).unpadder()
    size = 0
    with path.open("rb") as fh:
        while piece := fh.read(READ_PIECE):
            size += _check_packets(unpadder.update(decryptor.update(piece)), size)
    try:
        size += _check_packets(unpadder.update(decryptor.finalize()) + unpadder.finalize(), size)
    except ValueError as exc:  # a partial last block, or padding that is not PKCS#7
        raise _ItemProblem("does not decrypt: its padding is damaged (or the key is wrong)") from exc
    if size == 0 or size % TS_PACKET:
        raise _ItemProblem(f"does not decrypt to whole MPEG-TS packets ({size} bytes)")


def _check_packets(plaintext: bytes, offset: int) -> int:
    """Every packet start in `plaintext` (`offset` bytes into the segment) holds the sync byte."""
    starts = plaintext[-offset % TS_PACKET::TS_PACKET]
    if starts.count(TS_SYNC) != len(starts):
        raise _ItemProblem("does not decrypt to an MPEG-TS stream (damaged, or the key is wrong)")
    return len(plaintext)
