"""The playable benchmark's viewer: an independent HLS client that watches a dropped video become playable.

It sees only what any player sees through the API. It polls, from the moment of the drop: the library until
the file is listed; the master playlist (`GET /api/media/stream/{id}`, 404 while no rung has a segment yet);
every rung's variant playlist until each lists segments covering PLAYABLE_SECONDS; then it downloads the
top rung's first segment and its key (through the key endpoint) and decrypts it (AES-128-CBC with the
playlist's IV), which must give an MPEG-TS stream. Each milestone is kept in seconds since the drop.
`wait_until_ready` then waits for the item's commit (status "ready"), failing early if Vault gave up.
"""

from __future__ import annotations

import json
import re
import time
from typing import Protocol
from urllib.parse import urljoin

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from bench.evening_load import media_playlist

PLAYABLE_SECONDS = 10.0
POLL_SECONDS = 0.25  # while waiting to play: each poll reads the playlists, a player's own pace
READY_POLL_SECONDS = 1.0  # while waiting for the commit: one small request, little of the server's CPU
ROUNDING = 0.05  # seconds: EXTINF durations are rounded, a 10 s clip may list 9.99 s
TS_PACKET, TS_SYNC = 188, 0x47
FAILED = ("failed", "duplicate", "gone")
_STREAM_INF = re.compile(r"#EXT-X-STREAM-INF:.*?BANDWIDTH=(\d+)")
_IV = re.compile(r"#EXT-X-KEY:.*IV=0[xX]([0-9a-fA-F]{32})")
_SEQUENCE = re.compile(r"#EXT-X-MEDIA-SEQUENCE:(\d+)")


class Api(Protocol):
    def request(self, method: str, path: str, body: dict | None = None, token: str | None = None
                ) -> tuple[int, bytes]: ...


def variants(master: str, base: str) -> list[str]:
    """The variant playlist URLs of a master playlist, highest BANDWIDTH first, resolved against `base`."""
    lines = master.splitlines()
    found = [(int(m[1]), urljoin(base, lines[i + 1].strip())) for i, line in enumerate(lines[:-1])
             if (m := _STREAM_INF.match(line))]
    return [url for _, url in sorted(found, key=lambda f: -f[0])]


def covered_seconds(playlist: str) -> float:
    """Seconds of video the segments listed in a media playlist cover."""
    return sum(seconds for _, seconds in media_playlist(playlist, "/")[1])


def first_segment_iv(playlist: str) -> bytes:
    """The IV of a playlist's first segment: the key tag's IV, else its media sequence number (RFC 8216)."""
    if found := _IV.search(playlist):
        return bytes.fromhex(found[1])
    sequence = _SEQUENCE.search(playlist)
    return int(sequence[1] if sequence else 0).to_bytes(16, "big")


def decrypt_segment(data: bytes, key: bytes, iv: bytes) -> bytes:
    """An AES-128 HLS segment's plaintext (CBC, PKCS#7 padding removed)."""
    if not data or len(data) % 16:
        raise ValueError(f"an AES-128 segment is whole 16-byte blocks, not {len(data)} bytes")
    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    plain = decryptor.update(data) + decryptor.finalize()
    pad = plain[-1]
    if not 1 <= pad <= 16 or plain[-pad:] != bytes([pad]) * pad:
        raise ValueError("bad padding: wrong key or IV")
    return plain[:-pad]


def is_transport_stream(data: bytes) -> bool:
    """Whole 188-byte MPEG-TS packets, each starting with the sync byte."""
    return bool(data) and len(data) % TS_PACKET == 0 and all(
        data[i] == TS_SYNC for i in range(0, len(data), TS_PACKET))


def _get(api: Api, path: str, token: str, allowed: tuple[int, ...] = (200,)) -> tuple[int, bytes]:
    status, body = api.request("GET", path, token=token)
    if status not in allowed:
        raise RuntimeError(f"GET {path}: HTTP {status} {body[:300]!r}")
    return status, body


def find_item(api: Api, token: str, name: str) -> dict | None:
    """The library item made from the file `name`, if it is listed yet (newest first, so page 1)."""
    _, body = _get(api, "/api/media/library?type=video&limit=50", token)
    return next((item for item in json.loads(body)["items"] if item["original_name"] == name), None)


def _failure(api: Api, token: str, name: str) -> str | None:
    _, body = _get(api, "/api/admin/queue", token)
    job = next((j for j in json.loads(body)["jobs"] if j["original_name"] == name), None)
    return f"{job['status']}: {job.get('error')}" if job and job["status"] in FAILED else None


def watch_until_playable(api: Api, token: str, name: str, dropped_at: float, timeout: float,
                         need: float = PLAYABLE_SECONDS) -> dict:
    """Poll until the first `need` seconds of the file `name` play through the API (a shorter clip: pass
    its length); the milestones (seconds since `dropped_at`, a time.time() value), the item's id, and its
    status and progress then."""
    marks: dict[str, float] = {}
    item_id = stream = master = None
    deadline = dropped_at + timeout
    while time.time() < deadline:
        if item_id is None and (item := find_item(api, token, name)):
            item_id, stream = item["id"], f"/api/media/stream/{item['id']}"
            marks["listed"] = time.time() - dropped_at
        if stream and master is None:
            status, body = _get(api, stream, token, (200, 404))
            if status == 200:
                master, marks["master_playlist"] = body.decode(), time.time() - dropped_at
        if stream and master is not None:
            playlists = {url: _get(api, url, token)[1].decode() for url in variants(master, stream)}
            if playlists and all(covered_seconds(p) >= need - ROUNDING for p in playlists.values()):
                marks["every_rung_covers"] = time.time() - dropped_at
                top_url, top = next(iter(playlists.items()))
                _check_first_segment(api, token, top_url, top)
                marks["top_segment_decrypted"] = time.time() - dropped_at
                _, body = _get(api, f"/api/media/{item_id}", token)
                details = json.loads(body)
                return {"id": item_id, "milestones": marks, "status": details["status"],
                        "progress": details["progress"], "rungs": len(playlists)}
        if item_id is None and (why := _failure(api, token, name)):
            raise RuntimeError(f"Vault did not convert {name}: {why}")
        time.sleep(POLL_SECONDS)
    raise RuntimeError(f"{name}: not playable within {timeout:g} s of the drop (got so far: {marks})")


def _check_first_segment(api: Api, token: str, playlist_url: str, playlist: str) -> None:
    key_url, segments = media_playlist(playlist, playlist_url)
    _, data = _get(api, segments[0][0], token)
    if key_url is None:
        raise RuntimeError(f"{playlist_url}: segments are not encrypted")
    _, key = _get(api, key_url, token)
    if not is_transport_stream(decrypt_segment(data, key, first_segment_iv(playlist))):
        raise RuntimeError(f"{segments[0][0]}: decrypted with the served key, it is not MPEG-TS")


def wait_until_ready(api: Api, token: str, item_id: str, name: str, dropped_at: float, timeout: float
                     ) -> float:
    """Seconds from `dropped_at` until the item is committed (status "ready"); raises if Vault gave up."""
    deadline = dropped_at + timeout
    while time.time() < deadline:
        status, body = _get(api, f"/api/media/{item_id}", token, (200, 404))
        if status == 200 and json.loads(body)["status"] == "ready":
            return time.time() - dropped_at
        if status == 404 and (why := _failure(api, token, name)):
            raise RuntimeError(f"Vault did not convert {name}: {why}")
        time.sleep(READY_POLL_SECONDS)
    raise RuntimeError(f"{name} was not ready within {timeout:g} s of the drop")
