"""Animated images are bounded by frames x pixels: a few KB of GIF that asks for gigabytes of frames is
quarantined before it is decoded, and an accepted animation is converted one frame at a time, so memory
does not grow with its frame count."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from PIL import Image

from vaultserver.errors import MediaError
from vaultserver.pipeline.images import ANIMATION_MEMORY, MAX_ANIMATION_WORK, animation_size, convert_image
from vaultserver.pipeline.import_files import SIDECAR_SUFFIX


def tiny_frames_gif(path: Path, frames: int, width: int, height: int) -> Path:
    """A GIF whose frames are single pixels on a big canvas: ~23 bytes a frame, but every frame is decoded
    to the full canvas. The shape of the memory bomb the review found."""
    gif = bytearray(b"GIF89a" + struct.pack("<HHBBB", width, height, 0xF0, 0, 0) + b"\0\0\0\xff\xff\xff")
    gif += b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"  # loop forever
    for i in range(frames):
        lzw = 4 | (i % 2) << 3 | 5 << 6  # clear, one pixel, end: 3-bit codes
        gif += b"\x21\xf9\x04\x04\x05\x00\x00\x00"  # 50 ms, keep the previous frame
        gif += b"\x2c" + struct.pack("<HHHHB", i * 37 % width, i * 53 % height, 1, 1, 0)
        gif += bytes([2, 2, lzw & 0xFF, lzw >> 8, 0])
    path.write_bytes(bytes(gif + b"\x3b"))
    return path


def test_a_tiny_gif_of_a_thousand_4k_frames_is_quarantined_without_being_decoded(imports, run_pipeline,
                                                                                   services):
    bomb = tiny_frames_gif(imports / "bomb.gif", 1000, 3840, 2160)
    assert bomb.stat().st_size < 30_000
    run_pipeline(timeout=60)
    assert services.library.all_items() == []
    assert not bomb.exists()
    sidecar = json.loads((services.paths.failed / f"bomb.gif{SIDECAR_SUFFIX}").read_text())
    assert "too many frames" in sidecar["reason"]
    assert sidecar["details"]["frames"] == 1000 and sidecar["details"]["limit"] == MAX_ANIMATION_WORK
    (job,) = services.queue.snapshot()
    assert job.status == "failed" and job.attempts == 1


def test_an_animation_of_80_megapixel_frames_converts_animated_within_the_memory_budget(tmp_path):
    source = tiny_frames_gif(tmp_path / "eighty.gif", 80, 1000, 1000)
    result = convert_image(source)
    assert result.animated and result.source_format == "GIF"
    assert result.width * result.height * 4 * 80 <= ANIMATION_MEMORY
    assert result.width == result.height > 800  # shrunk only as far as the budget needs
    (tmp_path / "out.webp").write_bytes(result.webp)
    with Image.open(tmp_path / "out.webp") as webp:
        assert webp.n_frames > 1 and webp.size == (result.width, result.height)
        shown_ms = 0
        for index in range(webp.n_frames):  # the encoder merges frames that look alike; time adds up
            webp.seek(index)
            webp.load()
            shown_ms += webp.info["duration"]
        assert shown_ms == 80 * 50


def test_converting_an_animation_does_not_hold_all_its_frames_in_memory(tmp_path):
    source = tiny_frames_gif(tmp_path / "eighty.gif", 80, 1000, 1000)
    probe = textwrap.dedent(f"""
        import resource
        from vaultserver.pipeline.images import convert_image
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        convert_image(__import__("pathlib").Path({str(source)!r}))
        print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
    """)
    grown_mb = int(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                                  timeout=120).stdout)
    # 80 RGBA frames of 1000x1000 held at once would be 320 MB; one at a time is a few tens of MB.
    assert grown_mb < 150, f"peak memory grew by {grown_mb} MB while converting"


def test_the_output_of_long_animations_shrinks_to_the_budget_and_bigger_work_is_refused():
    assert animation_size(480, 270, 10) == (480, 270)
    width, height = animation_size(3840, 2160, 60)
    assert width * height * 4 * 60 <= ANIMATION_MEMORY and abs(width / height - 16 / 9) < 0.01
    with pytest.raises(MediaError) as refused:
        animation_size(3840, 2160, 61)
    assert refused.value.code == "MEDIA_002" and refused.value.details["frames"] == 61
