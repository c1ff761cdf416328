"""The video's animated preview and poster, built in memory from raw frames ffmpeg handed over a pipe."""

from __future__ import annotations

import io
from collections.abc import Sequence

from PIL import Image

from vaultserver.pipeline.transcode import PREVIEW_FRAMES, VideoOutputs

PREVIEW_FPS, PREVIEW_QUALITY, POSTER_QUALITY = 5, 80, 85
MIN_SCENES = 5  # fewer scene changes than this and the preview samples the video uniformly instead


def _pick_evenly(frames: Sequence[bytes], count: int) -> list[bytes]:
    if len(frames) <= count:
        return list(frames)
    step = len(frames) / count
    return [frames[int(i * step)] for i in range(count)]


def preview_frames(outputs: VideoOutputs) -> list[bytes]:
    scenes = outputs.scene_frames
    chosen = scenes if len(scenes) >= MIN_SCENES else outputs.uniform_frames or scenes
    return _pick_evenly(chosen, PREVIEW_FRAMES)


def preview_webp(outputs: VideoOutputs) -> bytes:
    """Up to 20 frames at 5 fps, 480 px wide, WebP q80, looping."""
    frames = [Image.frombytes("RGB", outputs.preview_size, raw) for raw in preview_frames(outputs)]
    if not frames:
        raise ValueError("ffmpeg produced no preview frames")
    buffer = io.BytesIO()
    frames[0].save(buffer, "WEBP", save_all=True, append_images=frames[1:], duration=1000 // PREVIEW_FPS,
                   loop=0, quality=PREVIEW_QUALITY, method=4)
    return buffer.getvalue()


def poster_webp(outputs: VideoOutputs) -> bytes:
    if not outputs.poster_rgb:
        raise ValueError("ffmpeg produced no poster frame")
    buffer = io.BytesIO()
    Image.frombytes("RGB", outputs.poster_size, outputs.poster_rgb).save(buffer, "WEBP",
                                                                         quality=POSTER_QUALITY, method=4)
    return buffer.getvalue()
