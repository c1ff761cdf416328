"""What a library item is, as every front end sees it, and the files its folder holds.

Kept apart from `library.py` (which commits, lists and deletes items) because the API, the GUI, the
conversion and the backup all pass these values around without needing the library itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from vaultserver.db.models import MediaFile
from vaultserver.services.keys import NewDataKey

# What an item's folder holds. All but the HLS segments are in the at-rest container format.
IMAGE_FILE = "image.vlt"  # the WebP served for a photo
THUMB_FILE = "thumb.vlt"  # 300 px WebP (photo) or 320 px animated WebP (video)
PREVIEW_FILE = "preview.vlt"  # a video's scene preview, animated WebP
POSTER_FILE = "poster.vlt"  # a video's still frame, WebP
ORIGINAL_FILE = "original.vlt"  # the untouched original, when the owner keeps originals
MASTER_PLAYLIST = "master.m3u8.vlt"
HLS_DIR = "hls"  # hls/<rung>/index.m3u8.vlt and hls/<rung>/seg_NNNNN.ts (AES-128, by ffmpeg)


@dataclass(frozen=True)
class MediaItem:
    """A library item as every front end sees it."""

    id: str
    type: str
    original_name: str
    sha256: str
    width: int
    height: int
    duration: float | None
    size: int
    stored_size: int
    mime_type: str
    source_format: str
    animated: bool
    taken_at: datetime | None
    camera_make: str | None
    camera_model: str | None
    created_at: datetime
    status: str
    renditions: list[dict[str, Any]]
    has_original: bool
    progress: float = 1.0  # of a converting video's conversion (0..1); 1.0 once ready
    favorite: bool = False  # marked by the person asking (MediaService fills it in per person)

    @classmethod
    def from_row(cls, row: MediaFile) -> MediaItem:
        return cls(row.id, row.media_type, row.original_name, row.sha256, row.width, row.height,
                   row.duration, row.size, row.stored_size, row.mime_type, row.source_format, row.animated,
                   row.taken_at, row.camera_make, row.camera_model, row.created_at, row.status,
                   list(row.renditions), row.has_original, 1.0 if row.status == "ready" else 0.0)

    @classmethod
    def from_mapping(cls, row: Mapping[Any, Any]) -> MediaItem:
        """From a `media_files` row read without the ORM (a page of the library: no objects to build)."""
        return cls(row["id"], row["media_type"], row["original_name"], row["sha256"], row["width"],
                   row["height"], row["duration"], row["size"], row["stored_size"], row["mime_type"],
                   row["source_format"], row["animated"], row["taken_at"], row["camera_make"],
                   row["camera_model"], row["created_at"], row["status"], list(row["renditions"]),
                   row["has_original"], 1.0 if row["status"] == "ready" else 0.0)

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        for name in ("taken_at", "created_at"):
            data[name] = data[name].isoformat() if data[name] else None
        return data


@dataclass(frozen=True)
class StagedItem:
    """A converted item sitting in its staging folder, with the keys that encrypted it. Built once, whole."""

    media_id: str
    staging_dir: Path
    media_type: str
    original_name: str
    sha256: str
    size: int  # of the original
    mime_type: str
    source_format: str
    width: int
    height: int
    keys: tuple[NewDataKey, ...]
    has_original: bool
    duration: float | None = None  # videos only
    animated: bool = False  # images only
    taken_at: datetime | None = None
    camera_make: str | None = None
    camera_model: str | None = None
    renditions: tuple[dict[str, Any], ...] = ()  # videos only


@dataclass(frozen=True)
class Page:
    items: list[MediaItem]
    total: int
    page: int
    limit: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.limit))


@dataclass(frozen=True)
class Usage:
    items: int
    stored_bytes: int  # the encrypted library as stored
    free_bytes: int  # left on the disk that holds it
