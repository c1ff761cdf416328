"""Turning one original into an encrypted staging folder: the conversion a worker process does.

A worker is given only what one job needs (an `Assignment`): the item's id and its data keys, made by the
server, which keeps the master key and commits the result. Everything is written encrypted into the staging
folder the worker was handed, described by one `StagedItem`; its wire form (`ConvertedItem`) is what comes
back to the server, which checks it before anything is committed. The HLS key file ffmpeg must read lives in
an owner-only key folder for the length of the transcode and is removed right after (ffmpeg re-reads it per
variant, so a pipe cannot serve it); this module alone writes and sweeps that folder.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import shutil
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vaultserver.config import PRIVATE_FILE_MODE, AppPaths
from vaultserver.crypto.container import seal_bytes, seal_file
from vaultserver.errors import MediaError
from vaultserver.ffmpeg import DEFAULT_LIMITS, FfmpegLimits
from vaultserver.hls import KEY_SCHEME, Variant, master_playlist, peak_bandwidth, segments, variants
from vaultserver.pipeline import images, previews
from vaultserver.pipeline.probe import ProbeResult, probe
from vaultserver.pipeline.transcode import AUDIO_BITRATE, Rung, plan_ladder, transcode
from vaultserver.services.items import (
    HLS_DIR,
    IMAGE_FILE,
    MASTER_PLAYLIST,
    ORIGINAL_FILE,
    POSTER_FILE,
    PREVIEW_FILE,
    THUMB_FILE,
    StagedItem,
)
from vaultserver.services.keys import NewDataKey

log = logging.getLogger(__name__)

Progress = Callable[[str, float], None]
FALLBACK_CODECS = "avc1.640028,mp4a.40.2"  # High@4.0 + AAC-LC: what the ladder's encoder settings produce
KEY_DIR = "transcode"  # under private/: HLS key files, each alive for one transcode
EVENT_TYPE, VOD_TYPE = "#EXT-X-PLAYLIST-TYPE:EVENT", "#EXT-X-PLAYLIST-TYPE:VOD"
HASH_BLOCK = 1024 * 1024


class WireError(ValueError):
    """What a worker sent back is not a well-formed result for its job."""


def _key_to_wire(key: NewDataKey) -> dict[str, Any]:
    return {"id": key.id, "purpose": key.purpose, "key": base64.b64encode(key.key).decode(), "iv": key.iv}


def _key_from_wire(data: dict[str, Any]) -> NewDataKey:
    return NewDataKey(str(data["id"]), str(data["purpose"]), base64.b64decode(data["key"]), data.get("iv"))


@dataclass(frozen=True)
class Assignment:
    """One job as a worker receives it: the original's facts, the id the item will have, and the two data keys
    (a file key for every sealed file, an HLS key + IV for the segments) the server made for it alone."""

    job_id: str
    media_id: str
    original_name: str
    sha256: str
    size: int
    keep_original: bool
    file_key: NewDataKey
    hls_key: NewDataKey

    def to_wire(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "media_id": self.media_id, "original_name": self.original_name,
                "sha256": self.sha256, "size": self.size, "keep_original": self.keep_original,
                "file_key": _key_to_wire(self.file_key), "hls_key": _key_to_wire(self.hls_key)}

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Assignment:
        return cls(job_id=str(data["job_id"]), media_id=str(data["media_id"]),
                   original_name=str(data["original_name"]), sha256=str(data["sha256"]),
                   size=int(data["size"]),
                   keep_original=bool(data["keep_original"]), file_key=_key_from_wire(data["file_key"]),
                   hls_key=_key_from_wire(data["hls_key"]))


class _Wire(BaseModel):
    """What crosses from a worker to the server: exactly these fields, checked, or WireError."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    _what: ClassVar[str] = "message"

    @classmethod
    def parse(cls, data: object) -> Self:
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise WireError(f"Malformed {cls._what}: {exc.errors(include_url=False)[:3]}") from exc


class Rendition(_Wire):

    name: str = Field(pattern=r"^[0-9a-z_]{1,16}$")
    width: int = Field(gt=0, le=16384)
    height: int = Field(gt=0, le=16384)
    bandwidth: int = Field(gt=0)
    codecs: str = Field(max_length=200)
    segments: int = Field(ge=0)  # 0 while the video converts


class VideoPlanned(_Wire):
    """A video's ladder as decided from its probe, before ffmpeg starts: what the server lists and serves
    (a master playlist) while the segments appear. Bandwidths are the rungs' caps."""

    _what: ClassVar[str] = "plan"
    duration: float = Field(ge=0)
    source_format: str = Field(max_length=200)
    renditions: list[Rendition] = Field(min_length=1, max_length=16)
    taken_at: datetime | None = None  # when it was filmed, if the file says: where it sorts while it converts

    @classmethod
    def of(cls, info: ProbeResult) -> VideoPlanned:
        audio = AUDIO_BITRATE if info.has_audio else 0
        codecs = FALLBACK_CODECS if info.has_audio else FALLBACK_CODECS.split(",")[0]
        rungs = plan_ladder(info.video.width, info.video.height)
        return cls(duration=round(info.duration, 3), source_format=_source_format(info),
                   renditions=[Rendition(name=r.name, width=r.width, height=r.height,
                                         bandwidth=r.maxrate + audio, codecs=codecs, segments=0)
                               for r in rungs], taken_at=info.taken_at)


Planned = Callable[[VideoPlanned], None]


def _source_format(info: ProbeResult) -> str:
    return f"{info.container.split(',')[0]}/{info.video.codec}"


class ConvertedItem(_Wire):
    """A `StagedItem` on the wire: every field but the folder (the receiver's own) and the keys (named by id;
    the receiver holds them)."""

    _what: ClassVar[str] = "result"
    media_id: str
    media_type: Literal["image", "video"]
    original_name: str = Field(max_length=1024)
    sha256: str
    size: int = Field(ge=0)
    mime_type: Literal["image/webp", "application/vnd.apple.mpegurl"]
    source_format: str = Field(max_length=200)
    width: int = Field(gt=0, le=1_000_000)
    height: int = Field(gt=0, le=1_000_000)
    key_ids: list[str] = Field(min_length=1, max_length=2)
    has_original: bool
    duration: float | None = Field(default=None, ge=0)
    animated: bool = False
    taken_at: datetime | None = None
    camera_make: str | None = Field(default=None, max_length=200)
    camera_model: str | None = Field(default=None, max_length=200)
    renditions: list[Rendition] = Field(default_factory=list, max_length=16)

    @classmethod
    def of(cls, staged: StagedItem) -> ConvertedItem:
        return cls(media_id=staged.media_id, media_type=staged.media_type,  # type: ignore[arg-type]
                   original_name=staged.original_name, sha256=staged.sha256, size=staged.size,
                   mime_type=staged.mime_type, source_format=staged.source_format,  # type: ignore[arg-type]
                   width=staged.width, height=staged.height, key_ids=[k.id for k in staged.keys],
                   has_original=staged.has_original, duration=staged.duration, animated=staged.animated,
                   taken_at=staged.taken_at, camera_make=staged.camera_make, camera_model=staged.camera_model,
                   renditions=[Rendition(**r) for r in staged.renditions])

    def staged(self, stage: Path, job: Assignment) -> StagedItem:
        """The item to commit from `stage`, with the job's own keys; WireError if it is not this job's."""
        keys = {job.file_key.id: job.file_key, job.hls_key.id: job.hls_key}
        wanted = {job.file_key.id} if self.media_type == "image" else set(keys)
        mismatched = [name for name, theirs, ours in (
            ("media_id", self.media_id, job.media_id), ("sha256", self.sha256, job.sha256),
            ("size", self.size, job.size), ("original_name", self.original_name, job.original_name),
            ("key_ids", set(self.key_ids), wanted)) if theirs != ours]
        if mismatched:
            raise WireError(f"The result does not belong to its job ({', '.join(mismatched)} differ)")
        if (self.media_type == "video") != bool(self.renditions) or self.has_original != job.keep_original:
            raise WireError("The result's renditions or original do not match what was asked")
        return StagedItem(
            media_id=self.media_id, staging_dir=stage, media_type=self.media_type,
            original_name=self.original_name, sha256=self.sha256, size=self.size, mime_type=self.mime_type,
            source_format=self.source_format, width=self.width, height=self.height,
            keys=tuple(keys[k] for k in self.key_ids), has_original=self.has_original, duration=self.duration,
            animated=self.animated, taken_at=self.taken_at, camera_make=self.camera_make,
            camera_model=self.camera_model, renditions=tuple(r.model_dump() for r in self.renditions))


def remove_leftover_key_files(paths: AppPaths) -> None:
    """After a crash: HLS key files of transcodes that never finished."""
    shutil.rmtree(paths.private / KEY_DIR, ignore_errors=True)


def sha256_of(path: Path, on_progress: Callable[[float], None] | None = None) -> str:
    digest = hashlib.sha256()
    total = max(path.stat().st_size, 1)
    done = 0
    with open(path, "rb") as fh:
        while block := fh.read(HASH_BLOCK):
            digest.update(block)
            done += len(block)
            if on_progress:
                on_progress(done / total)
    return digest.hexdigest()


def convert(source: Path, job: Assignment, stage: Path, key_dir: Path, ffmpeg: Callable[[], str],
            progress: Progress, cancel: threading.Event | None = None, limits: FfmpegLimits = DEFAULT_LIMITS,
            planned: Planned | None = None) -> StagedItem:
    """Convert `source` into the empty folder `stage`, encrypted with the job's keys. MediaError for input
    that is not a photo or video Vault can read; InterruptedError if `cancel` stopped it. `ffmpeg` is asked
    for only when a video needs it: photos convert without one. `planned` hears a video's `VideoPlanned`
    before ffmpeg starts, so the server can list the item and serve it while its segments appear."""
    if images.is_image(source):
        return _image(source, job, stage, progress)
    return _video(source, job, stage, key_dir, ffmpeg(), progress, cancel, limits, planned)


def _keep_original(source: Path, job: Assignment, stage: Path, progress: Progress) -> bool:
    """Seal the untouched original next to the conversion when the owner keeps originals."""
    if not job.keep_original:
        return False
    progress("keeping original", 0.98)
    seal_file(source, stage / ORIGINAL_FILE, job.file_key.key)
    return True


def _image(source: Path, job: Assignment, stage: Path, progress: Progress) -> StagedItem:
    progress("converting image", 0.1)
    result = images.convert_image(source)
    progress("encrypting", 0.9)
    seal_bytes(result.webp, stage / IMAGE_FILE, job.file_key.key)
    seal_bytes(result.thumbnail, stage / THUMB_FILE, job.file_key.key)
    has_original = _keep_original(source, job, stage, progress)
    return StagedItem(media_id=job.media_id, staging_dir=stage, media_type="image",
                      original_name=job.original_name, sha256=job.sha256, size=job.size,
                      mime_type="image/webp", source_format=result.source_format, width=result.width,
                      height=result.height, keys=(job.file_key,), has_original=has_original,
                      animated=result.animated, taken_at=result.taken_at,
                      camera_make=result.camera_make, camera_model=result.camera_model)


def _video(source: Path, job: Assignment, stage: Path, key_dir: Path, ffmpeg: str, progress: Progress,
           cancel: threading.Event | None, limits: FfmpegLimits, planned: Planned | None) -> StagedItem:
    progress("probing", 0.0)
    try:
        info = probe(ffmpeg, source, limits)
    except MediaError as exc:
        raise MediaError("Not a photo or video Vault can read (corrupt, truncated or unsupported)",
                         details={"reason": exc.message, **exc.details}) from exc
    if planned is not None:
        planned(VideoPlanned.of(info))
    file_key, hls_key = job.file_key, job.hls_key
    key_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    work_name = f"{job.media_id}.{os.getpid()}"
    key_file, key_info = key_dir / f"{work_name}.key", key_dir / f"{work_name}.keyinfo"
    hls_dir = stage / HLS_DIR
    try:
        _write_private(key_file, hls_key.key)
        _write_private(key_info, f"{KEY_SCHEME}{hls_key.id}\n{key_file}\n{hls_key.iv}\n".encode())
        outputs = transcode(ffmpeg, source, hls_dir, key_info, info,
                            on_progress=lambda f: progress("transcoding", 0.02 + 0.9 * f), cancel=cancel,
                            limits=limits)
    finally:
        key_file.unlink(missing_ok=True)
        key_info.unlink(missing_ok=True)
    progress("encrypting", 0.93)
    renditions = _seal_playlists(hls_dir, outputs.rungs, info.has_audio, file_key.key)
    seal_bytes(outputs.thumbnail_webp, stage / THUMB_FILE, file_key.key)
    seal_bytes(previews.preview_webp(outputs), stage / PREVIEW_FILE, file_key.key)
    seal_bytes(previews.poster_webp(outputs), stage / POSTER_FILE, file_key.key)
    has_original = _keep_original(source, job, stage, progress)
    top = outputs.rungs[0]
    return StagedItem(media_id=job.media_id, staging_dir=stage, media_type="video",
                      original_name=job.original_name, sha256=job.sha256, size=job.size,
                      mime_type="application/vnd.apple.mpegurl",
                      source_format=_source_format(info),
                      width=top.width, height=top.height, keys=(file_key, hls_key),
                      has_original=has_original, duration=round(info.duration, 3),
                      taken_at=info.taken_at, renditions=tuple(renditions))


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
        vod_text = variant_text.replace(EVENT_TYPE, VOD_TYPE)  # finished: the VOD it now is
        seal_bytes(vod_text.encode(), playlist_path.with_suffix(".m3u8.vlt"), file_key)
        playlist_path.unlink()
    master_text = master_playlist(entries) if len(measured) != len(rungs) else master_path.read_text()
    seal_bytes(master_text.encode(), hls_dir.parent / MASTER_PLAYLIST, file_key)
    master_path.unlink()
    return renditions



def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
