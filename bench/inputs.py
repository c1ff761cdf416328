"""The fixed input set, generated once into bench/.work/ and reused (delete the folder to regenerate).

Photos are synthetic but camera-like: smooth colour fields, mid-scale texture, fine grain, hard edges and
EXIF, so JPEG decoding, resizing and WebP encoding do real work. The video is a slow camera pan over such a
texture with testsrc2 (moving objects, running clock) overlaid, plus a sine tone: global and local motion.
"""

from __future__ import annotations

import os
import random
import subprocess
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

WORK = Path(__file__).resolve().parent / ".work"
PHOTO_SIZE, PANORAMA_SIZE = (4000, 3000), (12000, 2000)
VIDEO_SIZE, VIDEO_FPS = (1920, 1080), 30


@dataclass(frozen=True)
class Inputs:
    video: Path
    video_seconds: int
    photos: list[Path]
    panorama: Path


def _noise(size: tuple[int, int], rng: random.Random, mode: str = "RGB") -> Image.Image:
    bands = len(mode)
    return Image.frombytes(mode, size, rng.randbytes(size[0] * size[1] * bands))


def synthetic_photo(size: tuple[int, int], seed: int) -> Image.Image:
    rng = random.Random(seed)
    w, h = size
    picture = _noise((max(2, w // 250), max(2, h // 250)), rng).resize(size, Image.Resampling.BICUBIC)
    texture = _noise((w // 12, h // 12), rng).resize(size, Image.Resampling.BICUBIC)
    picture = Image.blend(picture, texture, 0.25)
    draw = ImageDraw.Draw(picture)
    for _ in range(40):
        x, y = rng.randrange(w), rng.randrange(h)
        r = rng.randrange(h // 40, h // 6)
        fill = tuple(rng.randrange(256) for _ in range(3))
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape((x - r, y - r, x + r, y + r), fill=fill, outline=(0, 0, 0), width=max(1, r // 30))
    grain = _noise(size, rng, "L").convert("RGB")
    return Image.blend(picture, grain, 0.07)


def _save_jpeg(image: Image.Image, path: Path, seed: int) -> None:
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "VaultBench", "Synthetic 12MP"  # Make, Model
    exif.get_ifd(0x8769)[0x9003] = f"2024:06:{1 + seed % 28:02d} 12:00:00"  # DateTimeOriginal
    tmp = path.with_suffix(".tmp")
    image.save(tmp, "JPEG", quality=90, exif=exif)
    os.replace(tmp, path)


# The bench clip's own encoding: fast to make, a keyframe every 2 s.
CLIP_ENCODER = ["-c:v", "libx264", "-preset", "superfast", "-crf", "20", "-g", str(VIDEO_FPS * 2)]
# What a phone records: H.264 High 4:2:0 8-bit at a steady bitrate, a keyframe exactly every 2 s.
PHONE_ENCODER = ["-vf", "scale=out_range=tv,format=yuv420p", "-c:v", "libx264", "-preset", "superfast",
                 "-profile:v", "high", "-pix_fmt", "yuv420p",
                 "-b:v", "12M", "-maxrate", "16M", "-bufsize", "24M", "-g", str(VIDEO_FPS * 2),
                 "-keyint_min", str(VIDEO_FPS * 2), "-sc_threshold", "0"]


def _make_video(ffmpeg: str, texture: Path, seconds: int, path: Path, encoder: list[str]) -> None:
    w, h = VIDEO_SIZE
    graph = (f"movie={texture},loop=loop=-1:size=1,setpts=N/{VIDEO_FPS}/TB,"
             f"crop={w}:{h}:x='(iw-ow)*(0.5-0.5*cos(t/5))':y='(ih-oh)*(0.5-0.5*sin(t/7))'[bg];"
             f"testsrc2=size=640x360:rate={VIDEO_FPS}[fg];"
             f"[bg][fg]overlay=x='(W-w)*(0.5+0.4*sin(t/3))':y='(H-h)*(0.5+0.4*cos(t/4))',"
             f"format=yuv420p")
    tmp = path.with_name(path.stem + ".tmp.mp4")
    subprocess.run([ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
                    "-f", "lavfi", "-i", graph,
                    "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
                    "-t", str(seconds), "-r", str(VIDEO_FPS),
                    *encoder,
                    "-c:a", "aac", "-b:a", "160k", "-ac", "2", "-movflags", "+faststart", str(tmp)],
                   check=True)
    os.replace(tmp, path)


def ensure_inputs(ffmpeg: str, quick: bool, log=print) -> Inputs:
    """Generate whatever is missing; quick mode uses a 10 s clip and the first 2 photos."""
    WORK.mkdir(parents=True, exist_ok=True)
    photos = [WORK / f"photo_{i}.jpg" for i in range(1, 3 if quick else 5)]
    for seed, path in enumerate(photos, start=1):
        if not path.exists():
            log(f"  generating {path.name} ({PHOTO_SIZE[0]}x{PHOTO_SIZE[1]})")
            _save_jpeg(synthetic_photo(PHOTO_SIZE, seed), path, seed)
    panorama = WORK / "panorama.jpg"
    if not panorama.exists():
        log(f"  generating {panorama.name} ({PANORAMA_SIZE[0]}x{PANORAMA_SIZE[1]})")
        _save_jpeg(synthetic_photo(PANORAMA_SIZE, 99), panorama, 99)
    seconds = 10 if quick else 60
    return Inputs(ensure_video(ffmpeg, seconds, log), seconds, photos, panorama)


def ensure_video(ffmpeg: str, seconds: int, log=print, phone: bool = False) -> Path:
    """The `seconds`-long 1080p30 clip; clips of different lengths are different files (never duplicates).

    `phone`: the same picture encoded the way a phone records (PHONE_ENCODER), a file of its own."""
    WORK.mkdir(parents=True, exist_ok=True)
    texture = WORK / "photo_1.jpg"
    if not texture.exists():
        log(f"  generating {texture.name} ({PHOTO_SIZE[0]}x{PHOTO_SIZE[1]})")
        _save_jpeg(synthetic_photo(PHOTO_SIZE, 1), texture, 1)
    video = WORK / (f"phone_{seconds}s_1080p30_h264.mp4" if phone else f"clip_{seconds}s_1080p30.mp4")
    if not video.exists():
        log(f"  generating {video.name} (H.264 + AAC, {seconds} s) ...")
        _make_video(ffmpeg, texture, seconds, video, PHONE_ENCODER if phone else CLIP_ENCODER)
    return video
