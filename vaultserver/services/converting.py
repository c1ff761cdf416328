"""Videos that are still converting: already library items, listed and playable while their segments appear.

When a video's worker has probed it and planned its ladder, `open()` makes it an item with status
"converting": its row (renditions from the plan), its two wrapped data keys (so a signed-in viewer can fetch
the HLS key like any other) and the job's `media_id`, in one transaction. Its files grow in the staging
folder named by its id, where the worker writes (ffmpeg's EVENT playlists and AES-128 segments; nothing in
the clear). The library's commit then turns it into a ready item in one step, exactly as for a photo.

A converting item lives only as long as the job attempt that opened it: `sweep()` deletes every converting
item whose job no longer points at it while it is processing (a worker that died, a job put back or
failed, everything after a restart), with its keys and folder. The job is then converted again from the
start, as a new item.

Open gallery pages hear of it as it happens (`ItemEvents`): listed, how far it is (from its job's progress
reports), and gone when swept.
"""

from __future__ import annotations

import logging
import shutil
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlmodel import col, select

from vaultserver.config import AppPaths
from vaultserver.db import Database
from vaultserver.db.models import MediaFile, PlaybackPosition, ProcessingJob
from vaultserver.services.item_events import ItemEvents
from vaultserver.services.items import MediaItem
from vaultserver.services.keys import KeyService, NewDataKey
from vaultserver.services.queue import QueueService

log = logging.getLogger(__name__)

CONVERTING, READY = "converting", "ready"
VIDEO_MIME = "application/vnd.apple.mpegurl"


class ConvertingItems:
    def __init__(self, paths: AppPaths, db: Database, keys: KeyService, queue: QueueService,
                 events: ItemEvents) -> None:
        self._paths = paths
        self._db = db
        self._keys = keys
        self._queue = queue
        self._events = events
        self._listed: dict[str, str] = {}  # job id -> the converting item it listed, while the job runs
        self._lock = threading.Lock()
        queue.on_progress(self._progressed)

    def folder(self, media_id: str) -> Path:
        """Where a converting item's files grow (the staging folder its worker writes)."""
        return self._paths.staging / media_id

    def open(self, *, job_id: str, token: str, media_id: str, original_name: str, sha256: str, size: int,
             keys: list[NewDataKey], duration: float, source_format: str,
             renditions: list[dict[str, Any]], taken_at: datetime | None = None) -> None:
        """List the video now, under the job's live lease (LeaseLost otherwise: nothing is written).
        `taken_at`: when it was filmed, if its file says, so that it sorts by that day from the start."""
        top = renditions[0]
        row = MediaFile(id=media_id, media_type="video", original_name=original_name, sha256=sha256,
                        size=size, stored_size=0, mime_type=VIDEO_MIME, source_format=source_format,
                        width=top["width"], height=top["height"], duration=duration, status=CONVERTING,
                        renditions=renditions, taken_at=taken_at)
        with self._keys.exclusive() as ring, self._db.session() as session:
            session.add(row)
            session.flush()
            self._keys.add_wrapped(session, ring, media_id, keys)
            self._queue.attach_media(session, job_id, media_id, token=token)
        log.info("%s is converting as item %s; it plays while it converts", original_name, media_id)
        with self._lock:
            self._listed[job_id] = media_id
        self._events.converting(media_id, 0.0, MediaItem.from_row(row))

    def _progressed(self, job_id: str, progress: float | None) -> None:
        """A job's progress report (None: it ended): told as its converting item's, if it listed one."""
        with self._lock:
            media_id = self._listed.get(job_id) if progress is not None else self._listed.pop(job_id, None)
        if media_id is not None and progress is not None:
            self._events.converting(media_id, progress)

    def progress(self, media_ids: list[str]) -> dict[str, float]:
        """How far each of these converting items is (their jobs' live progress)."""
        if not media_ids:
            return {}
        with self._db.session() as session:
            jobs = session.exec(select(ProcessingJob.id, ProcessingJob.media_id)
                                .where(col(ProcessingJob.media_id).in_(media_ids),
                                       col(ProcessingJob.status) == "processing")).all()
        found = {media_id: view.progress for job_id, media_id in jobs
                 if media_id and (view := self._queue.get(job_id)) is not None}
        return {media_id: found.get(media_id, 0.0) for media_id in media_ids}

    def sweep(self) -> int:
        """Delete converting items no processing job points at any more; how many went."""
        with self._db.session() as session:
            live = select(ProcessingJob.media_id).where(col(ProcessingJob.status) == "processing",
                                                        col(ProcessingJob.media_id).is_not(None))
            rows = session.exec(select(MediaFile).where(col(MediaFile.status) == CONVERTING,
                                                        col(MediaFile.id).not_in(live))).all()
            guests = {row.id: self._events.guests_seeing(row.id) for row in rows}  # before albums lose it
            for row in rows:
                self._keys.delete_for_media(session, row.id)
                for position in session.exec(select(PlaybackPosition)
                                             .where(col(PlaybackPosition.media_id) == row.id)).all():
                    session.delete(position)
                session.flush()
                session.delete(row)
            gone = [row.id for row in rows]
        for media_id in gone:
            log.info("Removed item %s: its conversion did not finish (it is converted again)", media_id)
            shutil.rmtree(self.folder(media_id), ignore_errors=True)
            self._events.deleted(media_id, guests[media_id])
        return len(gone)
