"""HLS playlists and segments as Vault stores them: reading (with the m3u8 library), and segment decryption.

ffmpeg writes the key URI as `vault-key:<key id>`; whoever serves or exports a playlist resolves it.
"""

from __future__ import annotations

from dataclasses import dataclass

import m3u8
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

KEY_SCHEME = "vault-key:"


@dataclass(frozen=True)
class Variant:
    uri: str
    bandwidth: int
    resolution: tuple[int, int] | None
    codecs: str | None


def variants(master_text: str) -> list[Variant]:
    """The master playlist's variants, best first."""
    master = m3u8.loads(master_text)
    found = [Variant(p.uri, p.stream_info.bandwidth or 0, p.stream_info.resolution, p.stream_info.codecs)
             for p in master.playlists]
    return sorted(found, key=lambda v: v.bandwidth, reverse=True)


@dataclass(frozen=True)
class Segment:
    uri: str
    duration: float
    key_id: str | None
    iv: bytes | None


def segments(variant_text: str) -> list[Segment]:
    playlist = m3u8.loads(variant_text)
    result = []
    for seg in playlist.segments:
        key = seg.key
        key_id = key.uri[len(KEY_SCHEME):] if key and key.uri and key.uri.startswith(KEY_SCHEME) else None
        iv = bytes.fromhex(key.iv[2:]) if key and key.iv else None
        result.append(Segment(seg.uri, seg.duration, key_id, iv))
    return result


def master_playlist(entries: list[Variant]) -> str:
    """A master playlist for `entries`: used when ffmpeg could not measure bandwidth (very short clips)."""
    master = m3u8.M3U8()
    master.version = 6
    for entry in entries:
        info = {"bandwidth": entry.bandwidth, "codecs": entry.codecs}
        if entry.resolution:
            info["resolution"] = f"{entry.resolution[0]}x{entry.resolution[1]}"
        master.add_playlist(m3u8.Playlist(entry.uri, stream_info=info, media=[], base_uri=None))
    return master.dumps()


def peak_bandwidth(segment_sizes: list[tuple[int, float]]) -> int:
    """Bits per second of the densest segment, as BANDWIDTH requires."""
    return max((int(size * 8 / max(duration, 0.001)) for size, duration in segment_sizes), default=0)


def with_key_url(variant_text: str, key_url: str) -> str:
    """The playlist as a player should see it: the key URI pointing at `key_url` (relative or same-origin)."""
    return variant_text.replace(f'URI="{KEY_SCHEME}', f'URI="{key_url}')


def decrypt_segment(key: bytes, iv: bytes, data: bytes) -> bytes:
    """AES-128-CBC with PKCS#7 padding, exactly as HLS players do it."""
    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    unpadder = padding.PKCS7(128).unpadder()
    return unpadder.update(decryptor.update(data) + decryptor.finalize()) + unpadder.finalize()

