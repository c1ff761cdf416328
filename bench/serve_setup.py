"""The data dir the serving benchmark reads, built the way a user's would be: through `process --once`.

- a 12 s 1080p30 clip (testsrc2, lightly blurred so Vault's 720p rung makes a first 10 s segment of about
  1.5 MB); the segment closest to 1.5 MB over all rungs is the one measured, served as stored (AES-128);
- a 1600x1200 camera-like photo with fine detail at thumbnail scale, so its 300 px WebP thumbnail is about
  20 KB (a flat test image gives < 1 KB and measures only per-request overhead);
- an owner account, and 100,000 synthetic `media_files` rows (one sqlite3 executemany; they need no
  files) so that the library listing pages through a large table.

The clip and photo are generated once into bench/.work/; the data dir is made fresh for every run.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import shutil
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from PIL import Image
from sqlmodel import SQLModel

from bench.inputs import WORK, synthetic_photo
from vaultserver.config import AppPaths, Settings, save_settings
from vaultserver.crypto.tls import TlsFiles, ensure_certificate
from vaultserver.db.models import MediaFile, utcnow
from vaultserver.ffmpeg import ffmpeg

USER, PASSWORD = "bench", "Bench!pass1"
SEGMENT_TARGET = 1_500_000  # bytes
EXTRA_ROWS = 100_000
CLIP = WORK / "serve_clip_12s_1080p30.mp4"
PHOTO = WORK / "serve_photo_1600x1200.jpg"
VAULT_ENV = {"VAULT_KEYSTORE": "file"}


@dataclass(frozen=True)
class ServeData:
    paths: AppPaths
    tls: TlsFiles
    video_id: str
    photo_id: str
    segment: Path  # the stored (encrypted) file, e.g. library/<id>/hls/720p/seg_00000.ts
    thumbnail: bytes  # the photo's thumbnail, decrypted: what nginx serves
    rows: int  # library items in total

    @property
    def segment_url(self) -> str:
        return f"/api/media/hls/{self.video_id}/{self.segment.parent.name}/{self.segment.name}"

    @property
    def thumbnail_url(self) -> str:
        return f"/api/media/thumbnail/{self.photo_id}"


def vault(data: Path, *args: str, stdin: str | None = None) -> str:
    cmd = [sys.executable, "-m", "vaultserver.cli", "--data-dir", str(data), *args]
    done = subprocess.run(cmd, input=stdin, capture_output=True, text=True, env={**os.environ, **VAULT_ENV})
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def ensure_inputs(log=print) -> tuple[Path, Path]:
    WORK.mkdir(parents=True, exist_ok=True)
    if not CLIP.exists():
        log(f"  generating {CLIP.name}")
        tmp = CLIP.with_suffix(".tmp.mp4")
        subprocess.run([ffmpeg(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
                        "-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=30,gblur=sigma=0.45",
                        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "12",
                        "-c:v", "libx264", "-preset", "ultrafast", "-crf", "20", "-pix_fmt", "yuv420p",
                        "-c:a", "aac", str(tmp)], check=True)
        os.replace(tmp, CLIP)
    if not PHOTO.exists():
        log(f"  generating {PHOTO.name}")
        rng = random.Random(3)
        detail = Image.frombytes("RGB", (400, 300), rng.randbytes(400 * 300 * 3))
        detail = detail.resize((1600, 1200), Image.Resampling.BICUBIC)
        photo = Image.blend(synthetic_photo((1600, 1200), 7), detail, 0.35)
        tmp = PHOTO.with_suffix(".tmp")
        photo.save(tmp, "JPEG", quality=90)
        os.replace(tmp, PHOTO)
    return CLIP, PHOTO


def add_rows(database: Path, count: int) -> None:
    """`count` ready photo rows, one a second back from now, a third of them with a capture date.

    Values are given in SQLAlchemy's own SQLite storage format (naive UTC `YYYY-MM-DD HH:MM:SS.ffffff`,
    JSON text) and inserted by sqlite3's executemany in one transaction: SQLAlchemy's per-row type
    processing would take most of the time, for nothing measured.
    """
    now = utcnow().replace(tzinfo=None)

    def stamp(at: datetime) -> str:
        return at.isoformat(" ", "microseconds")

    def row(n: int) -> dict:
        created = stamp(now - timedelta(seconds=n))
        return {"id": secrets.token_hex(16), "media_type": "image", "original_name": f"IMG_{n:06d}.jpg",
                "sha256": secrets.token_hex(32), "size": 3_000_000, "stored_size": 400_000,
                "mime_type": "image/webp", "source_format": "JPEG", "width": 4000, "height": 3000,
                "duration": None, "animated": 0,
                "taken_at": stamp(now - timedelta(days=n % 900)) if n % 3 == 0 else None,
                "camera_make": "VaultBench", "camera_model": "Synthetic", "status": "ready",
                "renditions": "[]", "has_original": 0, "created_at": created, "updated_at": created}

    columns = [c.name for c in SQLModel.metadata.tables[MediaFile.__tablename__].columns]
    names = [c for c in columns if c in row(0)]
    sql = f"INSERT INTO {MediaFile.__tablename__} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
    with closing(sqlite3.connect(database)) as db, db:
        db.executemany(sql, (tuple(r[c] for c in names) for r in map(row, range(count))))


def prepare(root: Path, log=print) -> ServeData:
    clip, photo = ensure_inputs(log)
    paths = AppPaths(root).ensure()
    save_settings(paths, Settings(stable_seconds=0.0, mdns_enabled=False, keystore="file"))
    imports = paths.default_imports
    imports.mkdir(parents=True, exist_ok=True)
    for source in (clip, photo):
        shutil.copy2(source, imports / source.name)  # Vault deletes the import once committed
    start = time.perf_counter()
    vault(root, "process", "--once")
    log(f"  ingested the clip and the photo ({time.perf_counter() - start:.0f} s)")
    vault(root, "user", "add", USER, "--admin", "--password-stdin", stdin=PASSWORD + "\n")
    items = {i["type"]: i["id"] for i in json.loads(vault(root, "library", "list", "--json"))}
    video_id, photo_id = items["video"], items["image"]
    segments = sorted(paths.library.glob(f"{video_id}/hls/*/seg_00000.ts"),
                      key=lambda p: abs(p.stat().st_size - SEGMENT_TARGET))
    start = time.perf_counter()
    add_rows(paths.database, EXTRA_ROWS)
    log(f"  inserted {EXTRA_ROWS:,} library rows ({time.perf_counter() - start:.1f} s)")

    from vaultserver.services import open_services
    from vaultserver.services.items import THUMB_FILE

    services = open_services(paths)
    try:
        thumbnail = services.library.read(photo_id, THUMB_FILE)
    finally:
        services.close()
    return ServeData(paths, ensure_certificate(paths), video_id, photo_id, segments[0], thumbnail,
                     EXTRA_ROWS + len(items))
