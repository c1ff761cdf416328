"""The encrypted library: committing converted items atomically, listing, reading back, exporting, deleting.

On disk every item is one folder `library/<id>/`; nothing there is plaintext (HLS segments are AES-128
encrypted by ffmpeg, everything else is in the at-rest container format). An item exists only once its
folder has been renamed into place AND its row committed; a folder without a row is swept on start.
One transaction adds an item: its row, its wrapped keys, its job marked done (by the queue service) and its
`media_added` audit entry. Deleting is the mirror image, audited here too as `media_deleted`.
"""

from __future__ import annotations

import builtins
import logging
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, asc, desc
from sqlalchemy.exc import IntegrityError as DBIntegrityError
from sqlmodel import col, func, select

from vaultserver import hls
from vaultserver.config import AppPaths
from vaultserver.crypto.container import SealedFile
from vaultserver.db import Database
from vaultserver.db.models import MediaFile, PlaybackPosition, ProcessingJob, is_id, utcnow
from vaultserver.errors import NotFoundError, ValidationError
from vaultserver.ffmpeg import ffmpeg, remux_ts_to_mp4
from vaultserver.services.albums import items_of
from vaultserver.services.audit import AuditEvent, AuditService
from vaultserver.services.favorites import favorites_of
from vaultserver.services.item_events import ItemEvents
from vaultserver.services.items import (
    HLS_DIR,
    IMAGE_FILE,
    MASTER_PLAYLIST,
    MediaItem,
    Page,
    StagedItem,
    Usage,
)
from vaultserver.services.jobs import Lease
from vaultserver.services.keys import KeyService
from vaultserver.services.queue import QueueService

log = logging.getLogger(__name__)

ITEM_CACHE = 10_000
SORTABLE = {"created_at", "taken_at", "original_name", "size", "duration"}
MAX_PAGE = 1_000_000  # far past any home library; far beyond it the offset overflows SQL integers

_SEALED_NAME = re.compile(r"^(?:(?:image|thumb|preview|poster|original)\.vlt|master\.m3u8\.vlt"
                          r"|hls/[0-9]{2,4}p/index\.m3u8\.vlt)$")
_SEGMENT_NAME = re.compile(r"^[0-9]{2,4}p/seg_[0-9]{5}\.ts$")


class DuplicateContent(Exception):
    def __init__(self, existing_id: str) -> None:
        super().__init__(existing_id)
        self.existing_id = existing_id


def _tree_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LibraryService:
    def __init__(self, paths: AppPaths, db: Database, keys: KeyService, audit: AuditService,
                 queue: QueueService, events: ItemEvents) -> None:
        self._paths = paths
        self._db = db
        self._keys = keys
        self._audit = audit
        self._queue = queue
        self._events = events  # what open gallery pages are told once a change is committed
        self._items: dict[str, MediaItem] = {}

    # --- writing -------------------------------------------------------------------------------------

    def item_dir(self, media_id: str) -> Path:
        if not is_id(media_id):  # anything else is a traversal attempt
            raise NotFoundError("No such media item", details={"id": media_id})
        return self._paths.library / media_id

    @contextmanager
    def staging(self, name: str) -> Iterator[Path]:
        """A fresh, empty staging folder for one item's encrypted output; gone afterwards unless committed."""
        folder = self._paths.staging / name
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def commit(self, staged: StagedItem, lease: Lease | None = None) -> MediaItem:
        """Rename the staged folder into place, then commit row + wrapped keys + job done + `media_added`
        audit entry in one transaction. With the `lease` of the job that made it: LeaseLost if that lease
        is no longer live, and then nothing of the item remains (the job's new holder commits it). A video
        listed while it converted (`ConvertingItems.open`) becomes ready here: same row, same keys."""
        final = self.item_dir(staged.media_id)
        row = MediaFile(id=staged.media_id, media_type=staged.media_type, original_name=staged.original_name,
                        sha256=staged.sha256, size=staged.size, stored_size=_tree_size(staged.staging_dir),
                        mime_type=staged.mime_type, source_format=staged.source_format, width=staged.width,
                        height=staged.height, duration=staged.duration, animated=staged.animated,
                        taken_at=staged.taken_at, camera_make=staged.camera_make,
                        camera_model=staged.camera_model, renditions=list(staged.renditions),
                        has_original=staged.has_original)
        added = AuditEvent("media_added", resource=staged.media_id,
                           details={"original_name": staged.original_name, "type": staged.media_type})
        with self._keys.exclusive() as ring:
            existing = self.find_by_sha256(staged.sha256)
            if existing and existing.id != staged.media_id:
                raise DuplicateContent(existing.id)
            os.replace(staged.staging_dir, final)
            _fsync_dir(self._paths.library)
            try:
                with self._db.session() as session:
                    if lease and (job := session.get(ProcessingJob, lease.job_id)) is not None:
                        row.uploaded_by = job.uploaded_by  # a browser upload: who sent it
                    listed = session.get(MediaFile, staged.media_id)
                    if listed is not None:  # converting until now: keeps its place in the gallery
                        row.created_at = listed.created_at
                        session.merge(row)
                    else:
                        session.add(row)
                    session.flush()
                    self._keys.add_wrapped(session, ring, staged.media_id, list(staged.keys))
                    if lease:
                        self._queue.mark_committed(session, lease.job_id, staged.media_id, token=lease.token)
                    self._audit.record_in(session, added)
            except DBIntegrityError:
                shutil.rmtree(final, ignore_errors=True)
                existing = self.find_by_sha256(staged.sha256)
                if existing:
                    raise DuplicateContent(existing.id) from None
                raise
            except BaseException:
                shutil.rmtree(final, ignore_errors=True)
                raise
        self._items.pop(staged.media_id, None)
        log.info("Committed %s %s (%s)", staged.media_type, staged.media_id, staged.original_name)
        self._events.added(item := MediaItem.from_row(row))
        return item

    def sweep_orphans(self) -> int:
        """Remove staging leftovers and folders whose commit never finished; only under the runtime lock."""
        removed = 0
        if self._paths.staging.exists():
            for entry in self._paths.staging.iterdir():
                shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
                removed += 1
        with self._db.session() as session:
            known = set(session.exec(select(MediaFile.id)).all())
        for entry in self._paths.library.iterdir():
            if entry.name.startswith(".") or entry.name in known:
                continue
            log.warning("Removing uncommitted library folder %s", entry.name)
            shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
            removed += 1
        return removed

    def delete(self, media_id: str, actor: str | None = None) -> None:
        """Shred the item's keys first (its files become noise), then remove the files.

        Row, keys, playback positions and the `media_deleted` audit entry go in one transaction.
        """
        guests = self._events.guests_seeing(media_id)  # asked first: its album entries go with it
        with self._db.session() as session:
            row = session.get(MediaFile, media_id)
            if row is None:
                raise NotFoundError("No such media item", details={"id": media_id})
            if row.status != "ready":
                raise ValidationError("This video is still converting; delete it once it is ready",
                                      details={"id": media_id, "status": row.status})
            self._keys.delete_for_media(session, media_id)
            # The keys go first: the unit of work does not order deletes of unrelated mappers, and the
            # item's row would cascade to them underneath it. Playback positions go by the schema's cascade.
            session.flush()
            session.delete(row)
            self._audit.record_in(session, AuditEvent("media_deleted", username=actor, resource=media_id,
                                                      details={"original_name": row.original_name}))
        self._items.pop(media_id, None)
        shutil.rmtree(self.item_dir(media_id), ignore_errors=True)
        self._events.deleted(media_id, guests)

    def save_position(self, user_id: str, media_id: str, seconds: float) -> float:
        """Remember where this user stopped in this video (clamped to its length)."""
        item = self.get(media_id)
        if item.type != "video":
            raise ValidationError("Only videos have a playback position")
        seconds = max(0.0, min(float(seconds), item.duration or 0.0))
        with self._db.session() as session:
            row = session.get(PlaybackPosition, (user_id, media_id)) or PlaybackPosition(
                user_id=user_id, media_id=media_id)
            row.position, row.updated_at = seconds, utcnow()
            session.add(row)
        return seconds

    def position(self, user_id: str, media_id: str) -> float:
        with self._db.session() as session:
            row = session.get(PlaybackPosition, (user_id, media_id))
        return row.position if row else 0.0

    # --- reading -------------------------------------------------------------------------------------

    def get(self, media_id: str) -> MediaItem:
        """Committed items never change (only deletion), so reads are served from a bounded cache."""
        if cached := self._items.get(media_id):
            return cached
        with self._db.session() as session:
            row = session.get(MediaFile, media_id) if is_id(media_id) else None
        if row is None:
            raise NotFoundError("No such media item", details={"id": media_id})
        item = MediaItem.from_row(row)
        if item.status != "ready":  # a converting video changes once more, at its commit
            return item
        if len(self._items) >= ITEM_CACHE:
            self._items.pop(next(iter(self._items)))
        self._items[media_id] = item
        return item

    def find_by_sha256(self, sha256: str) -> MediaItem | None:
        with self._db.session() as session:
            row = session.exec(select(MediaFile).where(MediaFile.sha256 == sha256)).first()
        return MediaItem.from_row(row) if row else None

    def list(self, *, media_type: str | None = None, q: str | None = None, sort: str = "created_at",
             order: str = "desc", page: int = 1, limit: int = 50, album: str | None = None,
             favorite_of: str | None = None, visible: ColumnElement[bool] | None = None) -> Page:
        """A page of items; `visible`: the access rule's filter for the person asking (None: everything);
        `album`: that album's items only; `favorite_of`: only the items this account has marked."""
        if media_type not in (None, "", "all", "image", "video"):
            raise ValidationError("type must be image, video or all", details={"type": media_type})
        bad_paging = not (1 <= page <= MAX_PAGE and 1 <= limit <= 500)
        if sort not in SORTABLE or order not in ("asc", "desc") or bad_paging:
            raise ValidationError("Bad sort, order, page or limit",
                                  details={"sort": sorted(SORTABLE), "order": ["asc", "desc"],
                                           "limit": "1..500", "page": f"1..{MAX_PAGE}"})
        filters: builtins.list[ColumnElement[bool]] = [] if visible is None else [visible]
        if media_type in ("image", "video"):
            filters.append(col(MediaFile.media_type) == media_type)
        if q:
            filters.append(col(MediaFile.original_name).icontains(q))
        if album:
            filters.append(col(MediaFile.id).in_(items_of(album)))
        if favorite_of:
            filters.append(col(MediaFile.id).in_(favorites_of(favorite_of)))
        column: ColumnElement[Any] = getattr(MediaFile, sort).expression
        if sort == "taken_at":  # undated items sort by when they were added (an indexed expression)
            column = func.coalesce(col(MediaFile.taken_at), col(MediaFile.created_at))
        direction = desc if order == "desc" else asc
        with self._db.session() as session:
            total = session.exec(select(func.count()).select_from(MediaFile).where(*filters)).one()
            rows = session.exec(select(MediaFile).where(*filters)
                                .order_by(direction(column), direction(col(MediaFile.id)))
                                .offset((page - 1) * limit).limit(limit)).all()
        return Page([MediaItem.from_row(r) for r in rows], total, page, limit)

    def usage(self) -> Usage:
        with self._db.session() as session:
            total = func.coalesce(func.sum(MediaFile.stored_size), 0)
            count, stored = session.exec(select(func.count(), total)).one()
        return Usage(count, stored, shutil.disk_usage(self._paths.library).free)

    def all_items(self) -> builtins.list[MediaItem]:  # `list` here is the method above
        with self._db.session() as session:
            rows = session.exec(select(MediaFile).order_by(col(MediaFile.created_at))).all()
        return [MediaItem.from_row(r) for r in rows]

    def sealed(self, media_id: str, name: str) -> SealedFile:
        """One at-rest file of an item (e.g. THUMB_FILE), ready to stream decrypted. Names are whitelisted."""
        path = self.item_dir(media_id) / name
        if not _SEALED_NAME.match(name) or not path.is_file():
            raise NotFoundError("No such rendition", details={"id": media_id, "name": name})
        return SealedFile(path, self._keys.data_key(self._keys.key_id(media_id, "file")))

    def read(self, media_id: str, name: str) -> bytes:
        return self.sealed(media_id, name).read_all()

    def export(self, media_id: str, dest: Path) -> Path:
        """Decrypt an item for its owner: a photo as its WebP, a video as an MP4 of its best rung. Segments
        are decrypted in memory and piped into ffmpeg (stream copy), so no key touches the disk."""
        item = self.get(media_id)
        if item.status != "ready":
            raise ValidationError("This video is still converting; export it once it is ready",
                                  details={"id": media_id})
        dest = Path(dest)
        partial = dest.with_name(dest.name + ".partial")
        try:
            if item.type == "image":
                with open(partial, "wb") as fh:
                    for piece in self.sealed(media_id, IMAGE_FILE).iter_range():
                        fh.write(piece)
            else:
                self._export_video(media_id, partial)
            os.replace(partial, dest)
        finally:
            partial.unlink(missing_ok=True)
        self._audit.record(AuditEvent("media_exported", resource=media_id, details={"dest": str(dest)}))
        return dest

    def _export_video(self, media_id: str, dest: Path) -> None:
        best = hls.variants(self.read(media_id, MASTER_PLAYLIST).decode())[0]
        rung = Path(best.uri).parent.name
        segs = hls.segments(self.read(media_id, f"{HLS_DIR}/{rung}/index.m3u8.vlt").decode())

        def decrypted() -> Iterator[bytes]:
            for seg in segs:
                key = self._keys.data_key(seg.key_id) if seg.key_id else None
                data = self.segment_path(media_id, f"{rung}/{seg.uri}").read_bytes()
                yield hls.decrypt_segment(key, seg.iv, data) if key and seg.iv else data
        remux_ts_to_mp4(ffmpeg(), decrypted(), sum(seg.duration for seg in segs), dest)

    def segment_path(self, media_id: str, name: str) -> Path:
        """An HLS segment (already AES-128 encrypted; served as is). `name` is "<rung>/seg_NNNNN.ts"."""
        path = self.item_dir(media_id) / HLS_DIR / name
        if not _SEGMENT_NAME.match(name) or not path.is_file():
            raise NotFoundError("No such segment", details={"id": media_id, "name": name})
        return path
