"""The family-evening data dir: one converted video and a few hundred photos, made once and copied per run.

Everything is made the way a user's library is, by Vault's own pipeline (`process --once`): the 60 s
1080p bench clip as a real HLS ladder (what the viewers play; they loop it), and PHOTOS camera-like
1200x900 photos with their thumbnails (what the grid scrollers page through), plus an admin account.
Converting all that takes a minute or two, so the result is kept in bench/.work/evening/prepared and each
run gets a fresh copy: the library's files are hard-linked (the server only reads them), the database,
settings and keys are copied (the run writes to them). The copy is remade when the schema head changes
or its marker is missing; delete the folder to force it.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.inputs import WORK, ensure_video, synthetic_photo
from bench.serve_setup import PASSWORD, USER, vault
from vaultserver.config import AppPaths, Settings, save_settings
from vaultserver.crypto.tls import TlsFiles, ensure_certificate
from vaultserver.db.engine import SCHEMA_HEAD

HOME = WORK / "evening"
PREPARED = HOME / "prepared"
PHOTOS = 288  # 12 grid pages of 24
PHOTO_SIZE = (1200, 900)
SERVED_SECONDS = 60
_MARKER = "evening.json"


@dataclass(frozen=True)
class EveningData:
    paths: AppPaths
    tls: TlsFiles
    video_id: str  # the video the viewers play
    items: int  # library items before the converting phase

    @property
    def stream_url(self) -> str:
        return f"/api/media/stream/{self.video_id}"


def _photos(log: Callable[[str], None]) -> list[Path]:
    folder = HOME / "photos"
    folder.mkdir(parents=True, exist_ok=True)
    photos = [folder / f"family_{n:03d}.jpg" for n in range(PHOTOS)]
    missing = [p for p in photos if not p.exists()]
    if missing:
        log(f"  generating {len(missing)} photos ({PHOTO_SIZE[0]}x{PHOTO_SIZE[1]})")
    for path in missing:
        tmp = path.with_suffix(".tmp")
        synthetic_photo(PHOTO_SIZE, 1000 + int(path.stem.split("_")[1])).save(tmp, "JPEG", quality=88)
        os.replace(tmp, path)
    return photos


def _prepare(ffmpeg: str, log: Callable[[str], None]) -> None:
    """Build PREPARED from nothing: inputs linked into its import folder, one `process --once`."""
    shutil.rmtree(PREPARED, ignore_errors=True)
    video = ensure_video(ffmpeg, SERVED_SECONDS, log)
    photos = _photos(log)
    paths = AppPaths(PREPARED).ensure()
    save_settings(paths, Settings(stable_seconds=0.0, mdns_enabled=False, keystore="file"))
    imports = paths.default_imports
    imports.mkdir(parents=True, exist_ok=True)
    for source in (video, *photos):
        os.link(source, imports / source.name)  # Vault removes the import once committed: only the link
    log(f"  converting the {SERVED_SECONDS} s video and {len(photos)} photos with Vault's pipeline ...")
    start = time.perf_counter()
    vault(PREPARED, "process", "--once")
    vault(PREPARED, "user", "add", USER, "--admin", "--password-stdin", stdin=PASSWORD + "\n")
    items = json.loads(vault(PREPARED, "library", "list", "--json"))
    videos = [i["id"] for i in items if i["type"] == "video"]
    if len(videos) != 1 or len(items) != len(photos) + 1:
        raise RuntimeError(f"expected 1 video and {len(photos)} photos, Vault has {len(items)} items")
    ensure_certificate(paths)
    (PREPARED / _MARKER).write_text(json.dumps({"schema": SCHEMA_HEAD, "video_id": videos[0],
                                                "items": len(items)}))
    log(f"  prepared in {time.perf_counter() - start:.0f} s (kept in {PREPARED.relative_to(WORK.parent)})")


def _marker() -> dict | None:
    try:
        marker = json.loads((PREPARED / _MARKER).read_text())
    except (OSError, ValueError):
        return None
    return marker if marker.get("schema") == SCHEMA_HEAD else None


def _link_or_copy(source: str, target: str) -> None:
    if Path(source).relative_to(PREPARED).parts[0] == "library":
        os.link(source, target)
    else:
        shutil.copy2(source, target)


def prepare(root: Path, ffmpeg: str, log: Callable[[str], None] = print) -> EveningData:
    """A fresh data dir at `root` (which must not exist), copied from the prepared one."""
    marker = _marker()
    if marker is None:
        _prepare(ffmpeg, log)
        marker = _marker()
        assert marker is not None
    shutil.copytree(PREPARED, root, copy_function=_link_or_copy,
                    ignore=shutil.ignore_patterns(_MARKER, "*.log", ".vault.lock"))
    paths = AppPaths(root)
    return EveningData(paths, ensure_certificate(paths), marker["video_id"], marker["items"])
