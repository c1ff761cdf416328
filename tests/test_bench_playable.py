"""The playable bench's client rules and its stream-copy baseline.

The bench itself runs for minutes (`python -m bench playable`); these are what its verdicts rest on: how the
viewer reads playlists and decrypts a segment, how the figures are judged, and that the top-rung-copied
ladder really copies the top rung while encoding the others (a real ffmpeg run on a tiny clip).
"""

from __future__ import annotations

import subprocess

import pytest
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from bench import commands
from bench.playable import checks
from bench.playable_watch import (
    covered_seconds,
    decrypt_segment,
    first_segment_iv,
    is_transport_stream,
    variants,
)
from vaultserver.ffmpeg import ffmpeg
from vaultserver.pipeline.transcode import Rung

MASTER = """#EXTM3U
#EXT-X-VERSION:6
#EXT-X-STREAM-INF:BANDWIDTH=1400000,RESOLUTION=854x480,CODECS="avc1.64001f,mp4a.40.2"
../hls/abc/480p/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=6000000,RESOLUTION=1920x1080,CODECS="avc1.640028,mp4a.40.2"
../hls/abc/1080p/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=3000000,RESOLUTION=1280x720,CODECS="avc1.64001f,mp4a.40.2"
../hls/abc/720p/index.m3u8
"""
GROWING = """#EXTM3U
#EXT-X-VERSION:6
#EXT-X-TARGETDURATION:10
#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-PLAYLIST-TYPE:EVENT
#EXT-X-KEY:METHOD=AES-128,URI="../../../keys/k1",IV=0x000102030405060708090a0b0c0d0e0f
#EXTINF:6.000000,
seg_00000.ts
#EXTINF:3.960000,
seg_00001.ts
"""


def _encrypt(plain: bytes, key: bytes, iv: bytes) -> bytes:
    padder = padding.PKCS7(128).padder()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return encryptor.update(padder.update(plain) + padder.finalize()) + encryptor.finalize()


def test_variants_are_resolved_against_the_stream_url_top_rung_first():
    assert variants(MASTER, "/api/media/stream/abc") == [
        "/api/media/hls/abc/1080p/index.m3u8", "/api/media/hls/abc/720p/index.m3u8",
        "/api/media/hls/abc/480p/index.m3u8"]
    assert variants("#EXTM3U\n", "/api/media/stream/abc") == []


def test_a_growing_playlist_covers_the_sum_of_its_listed_segments():
    assert covered_seconds(GROWING) == pytest.approx(9.96)
    assert covered_seconds("#EXTM3U\n#EXT-X-PLAYLIST-TYPE:EVENT\n") == 0.0


def test_the_first_segment_iv_is_the_key_tags_else_the_media_sequence_number():
    assert first_segment_iv(GROWING) == bytes(range(16))
    no_iv = GROWING.replace(",IV=0x000102030405060708090a0b0c0d0e0f", "").replace("SEQUENCE:0", "SEQUENCE:7")
    assert first_segment_iv(no_iv) == (7).to_bytes(16, "big")


def test_a_segment_decrypts_to_transport_stream_only_with_the_right_key():
    key, iv = bytes(range(16, 32)), bytes(range(16))
    plain = b"".join(bytes([0x47]) + bytes([n]) * 187 for n in range(5))
    sealed = _encrypt(plain, key, iv)
    assert decrypt_segment(sealed, key, iv) == plain
    assert is_transport_stream(plain)
    assert not is_transport_stream(plain[:-1])
    assert not is_transport_stream(b"\x00" + plain[1:])
    with pytest.raises(ValueError):
        decrypt_segment(sealed[:-1], key, iv)


def _results(playable: float, ready: float, base: float) -> dict:
    vault = {"milestones": {"top_segment_decrypted": playable}, "ready_seconds": ready,
             "cpu_seconds": 2 * ready}
    plain = {"wall": base, "cpu": 2 * base, "top_rung_bytes": 100}
    return {"vault": {"long": vault, "phone": vault},
            "ffmpeg": {"long_ladder": plain, "phone_ladder_encoded": plain,
                       "phone_ladder_top_copied": {**plain, "wall": base / 2, "top_rung_bytes": 300}}}


def test_the_goals_are_twenty_seconds_to_play_and_the_ingest_benchs_ladder_bar():
    passed = {c["name"]: c["pass"] for c in checks(_results(19.9, 109.0, 100.0))}
    assert passed["drop -> first 10 s playable, s"] is True
    assert passed["drop -> ready / plain ladder, wall"] is True
    failed = {c["name"]: c for c in checks(_results(20.1, 111.0, 100.0))}
    assert failed["drop -> first 10 s playable, s"]["pass"] is False
    assert failed["drop -> ready / plain ladder, wall"]["pass"] is False
    assert failed["phone: top copied / encoded, wall"]["value"] == 0.5
    assert failed["phone: top rung bytes, copied / encoded"]["value"] == 3.0
    assert failed["phone: top copied / encoded, wall"]["pass"] is None  # a measurement, not a goal


def _codec(binary: str, path, stream: str) -> str:
    probe = subprocess.run([binary, "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr
    return next(line for line in probe.splitlines() if f"Stream #0:{stream}" in line)


def test_the_top_copied_ladder_copies_the_top_rung_and_encodes_the_others(tmp_path):
    binary = ffmpeg()
    source = tmp_path / "phone.mp4"
    subprocess.run([binary, "-hide_banner", "-nostdin", "-loglevel", "error",
                    "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30", "-f", "lavfi", "-i", "sine",
                    "-t", "2", "-c:v", "libx264", "-preset", "ultrafast", "-profile:v", "baseline",
                    "-pix_fmt", "yuv420p", "-g", "30", "-c:a", "aac", str(source)], check=True)
    rungs = [Rung("240p", 320, 240, 800_000), Rung("120p", 160, 120, 400_000)]
    subprocess.run(commands.ladder_top_copied(binary, source, tmp_path / "out", rungs), check=True)
    top, lower = tmp_path / "out" / "240p" / "seg_00000.ts", tmp_path / "out" / "120p" / "seg_00000.ts"
    assert "Constrained Baseline" in _codec(binary, top, "0")  # the source's own stream, copied
    assert "High" in _codec(binary, lower, "0") and "160x120" in _codec(binary, lower, "0")
