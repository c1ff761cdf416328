"""Turning one import file into one committed, encrypted library item.

Everything is written encrypted into a staging folder the library hands out, described by one complete
`StagedItem`, then committed by the library service in one step. The HLS key file ffmpeg must read lives in
the owner-only `private/transcode/` folder for the length of the transcode and is removed right after
(ffmpeg re-reads it per variant, so a pipe cannot serve it); this module alone writes and sweeps that folder.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from vaultserver.config import PRIVATE_FILE_MODE, AppPaths
from vaultserver.crypto.container import seal_bytes, seal_file
from vaultserver.db.models import new_id
from vaultserver.errors import MediaError
from vaultserver.ffmpeg import DEFAULT_LIMITS, FfmpegLimits
from vaultserver.hls import KEY_SCHEME, Variant, master_playlist, peak_bandwidth, segments, variants
from vaultserver.pipeline import images, previews
from vaultserver.pipeline.probe import probe
from vaultserver.pipeline.transcode import Rung, transcode
from vaultserver.services import Services
from vaultserver.services.keys import NewDataKey
from vaultserver.services.library import (
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
from vaultserver.services.queue import Lease

log = logging.getLogger(__name__)

Progress = Callable[[str, float], None]
FALLBACK_CODECS = "avc1.640028,mp4a.40.2"  # High@4.0 + AAC-LC: what the ladder's encoder settings produce
KEY_DIR = "transcode"  # under private/: HLS key files, each alive for one transcode


@dataclass(frozen=True)
class Original:
    """The import file being converted, as known before conversion starts."""

    path: Path
    name: str  # as the owner named it
    sha256: str
    size: int


def remove_leftover_key_files(paths: AppPaths) -> None:
    """After a crash: HLS key files of transcodes that never finished."""
    shutil.rmtree(paths.private / KEY_DIR, ignore_errors=True)


def sha256_of(path: Path, on_progress: Callable[[float], None] | None = None) -> str:
    digest = hashlib.sha256()
    total = max(path.stat().st_size, 1)
    done = 0
    with open(path, "rb") as fh:
        while block := fh.read(1024 * 1024):
            digest.update(block)
            done += len(block)
            if on_progress:
                on_progress(done / total)
    return digest.hexdigest()


class Ingestor:
    def __init__(self, services: Services, ffmpeg: Callable[[], str],
                 limits: FfmpegLimits = DEFAULT_LIMITS) -> None:
        self._services = services
        self._ffmpeg = ffmpeg
        self._limits = limits

    def ingest(self, lease: Lease, source: Path, original_name: str, sha256: str, progress: Progress,
               cancel: threading.Event | None = None) -> MediaItem:
        """Convert and commit under `lease`; LeaseLost (nothing committed, outputs gone) if it was lost."""
        original = Original(source, original_name, sha256, source.stat().st_size)
        # Named by the lease, not the job: a worker that lost the job may still be writing its own folder
        # while the job's next holder works in another.
        work_name = f"{lease.job_id}.{hashlib.sha256(lease.token.encode()).hexdigest()[:12]}"
        with self._services.library.staging(work_name) as stage:
            if images.is_image(source):
                staged = self._image(original, stage, progress)
            else:
                staged = self._video(work_name, original, stage, progress, cancel)
            progress("committing", 0.99)
            return self._services.library.commit(staged, lease)

    def _keep_original(self, original: Original, stage: Path, file_key: NewDataKey,
                       progress: Progress) -> bool:
        """Seal the untouched original next to the conversion when the owner keeps originals."""
        if not self._services.settings.current.keep_originals:
            return False
        progress("keeping original", 0.98)
        seal_file(original.path, stage / ORIGINAL_FILE, file_key.key)
        return True

    def _image(self, original: Original, stage: Path, progress: Progress) -> StagedItem:
        progress("converting image", 0.1)
        result = images.convert_image(original.path)
        file_key = self._services.keys.new_data_key("file")
        progress("encrypting", 0.9)
        seal_bytes(result.webp, stage / IMAGE_FILE, file_key.key)
        seal_bytes(result.thumbnail, stage / THUMB_FILE, file_key.key)
        has_original = self._keep_original(original, stage, file_key, progress)
        return StagedItem(media_id=new_id(), staging_dir=stage, media_type="image",
                          original_name=original.name, sha256=original.sha256, size=original.size,
                          mime_type="image/webp", source_format=result.source_format, width=result.width,
                          height=result.height, keys=(file_key,), has_original=has_original,
                          animated=result.animated, taken_at=result.taken_at,
                          camera_make=result.camera_make, camera_model=result.camera_model)

    def _video(self, work_name: str, original: Original, stage: Path, progress: Progress,
               cancel: threading.Event | None) -> StagedItem:
        progress("probing", 0.0)
        ffmpeg = self._ffmpeg()
        source = original.path
        try:
            info = probe(ffmpeg, source, self._limits)
        except MediaError as exc:
            raise MediaError("Not a photo or video Vault can read (corrupt, truncated or unsupported)",
                             details={"reason": exc.message, **exc.details}) from exc
        keys = self._services.keys
        file_key, hls_key = keys.new_data_key("file"), keys.new_data_key("hls", with_iv=True)
        key_dir = self._services.paths.private / KEY_DIR
        key_dir.mkdir(mode=0o700, exist_ok=True)
        key_file, key_info = key_dir / f"{work_name}.key", key_dir / f"{work_name}.keyinfo"
        hls_dir = stage / HLS_DIR
        try:
            _write_private(key_file, hls_key.key)
            _write_private(key_info, f"{KEY_SCHEME}{hls_key.id}\n{key_file}\n{hls_key.iv}\n".encode())
            outputs = transcode(ffmpeg, source, hls_dir, key_info, info,
                                on_progress=lambda f: progress("transcoding", 0.02 + 0.9 * f), cancel=cancel,
                                limits=self._limits)
        finally:
            key_file.unlink(missing_ok=True)
            key_info.unlink(missing_ok=True)
        progress("encrypting", 0.93)
        renditions = self._seal_playlists(hls_dir, outputs.rungs, info.has_audio, file_key.key)
        seal_bytes(outputs.thumbnail_webp, stage / THUMB_FILE, file_key.key)
        seal_bytes(previews.preview_webp(outputs), stage / PREVIEW_FILE, file_key.key)
        seal_bytes(previews.poster_webp(outputs), stage / POSTER_FILE, file_key.key)
        has_original = self._keep_original(original, stage, file_key, progress)
        top = outputs.rungs[0]
        return StagedItem(media_id=new_id(), staging_dir=stage, media_type="video",
                          original_name=original.name, sha256=original.sha256, size=original.size,
                          mime_type="application/vnd.apple.mpegurl",
                          source_format=f"{info.container.split(',')[0]}/{info.video.codec}",
                          width=top.width, height=top.height, keys=(file_key, hls_key),
                          has_original=has_original, duration=round(info.duration, 3),
                          renditions=tuple(renditions))

    @staticmethod
    def _seal_playlists(hls_dir: Path, rungs: Sequence[Rung], has_audio: bool, file_key: bytes) -> list[dict]:
        """Check what ffmpeg wrote (m3u8 parses it, every segment exists), then encrypt the playlists."""
        master_path = hls_dir / "master.m3u8"
        measured = {Path(v.uri).parent.name: v for v in variants(master_path.read_text(encoding="utf-8"))}
        entries, renditions = [], []
        for rung in rungs:
            playlist_path = hls_dir / rung.name / "index.m3u8"
            variant_text = playlist_path.read_text(encoding="utf-8")
            segs = segments(variant_text)
            missing = [s.uri for s in segs if not (playlist_path.parent / s.uri).is_file()]
            if not segs or missing or any(s.key_id is None for s in segs):
                raise RuntimeError(f"ffmpeg left an incomplete rendition {rung.name}: missing {missing}")
            # ffmpeg cannot measure bandwidth on very short clips and then leaves the variant out.
            entry = measured.get(rung.name) or Variant(
                f"{rung.name}/index.m3u8",
                peak_bandwidth([((playlist_path.parent / s.uri).stat().st_size, s.duration) for s in segs]),
                (rung.width, rung.height), FALLBACK_CODECS if has_audio else FALLBACK_CODECS.split(",")[0])
            entries.append(entry)
            renditions.append({"name": rung.name, "width": rung.width, "height": rung.height,
                               "bandwidth": entry.bandwidth, "codecs": entry.codecs, "segments": len(segs)})
            seal_bytes(variant_text.encode(), playlist_path.with_suffix(".m3u8.vlt"), file_key)
            playlist_path.unlink()
        master_text = master_playlist(entries) if len(measured) != len(rungs) else master_path.read_text()
        seal_bytes(master_text.encode(), hls_dir.parent / MASTER_PLAYLIST, file_key)
        master_path.unlink()
        return renditions


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
