"""Resumable uploads from the browser (tus 1.0.0): who may upload, how large, where the bytes wait, and the
hand-off of a whole file to the conversion queue.

The HTTP side (`api/uploads.py`) speaks the protocol and streams bodies; this service owns the rules. An
upload's bytes so far live in `private/uploads/<id>` (0700, never served). The row's `offset` is the truth
about how much of them counts: a body cut off mid-way records what reached the disk, and the next PATCH
starts by cutting the file back to that offset (a tail written just before a crash was never confirmed to
the client), or by lowering the offset to the file's size if a power cut lost its end. Once whole, the file
is fsynced, moved into the import folder's `Uploads/` and queued like a dropped file, with the uploader's id
on the job, so it meets the same checks, quarantine and duplicate detection, and the original leaves the
import folder once the item is committed. Uploads silent for
`EXPIRE_AFTER` are swept with their bytes; finished rows are kept a while so a phone can ask how it ended.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import shutil
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlmodel import col, func, select

from vaultserver.config import PRIVATE_DIR_MODE, PRIVATE_FILE_MODE, AppPaths
from vaultserver.db import Database
from vaultserver.db.models import Upload, User, utcnow
from vaultserver.errors import NotFoundError, VaultError
from vaultserver.services.audit import AuditEvent, AuditService
from vaultserver.services.jobs import aware
from vaultserver.services.principal import Principal
from vaultserver.services.queue import QueueService
from vaultserver.services.settings import SettingsService

log = logging.getLogger(__name__)

EXPIRE_AFTER = timedelta(hours=24)  # no byte for this long: the upload is swept
KEEP_FINISHED = timedelta(days=7)  # how long a finished upload can still be asked how it ended
DISK_MARGIN = 1024**3  # free space an upload must leave, so conversion and the database still have room
GB = 1024**3
OPEN_PER_ACCOUNT = 100  # unfinished uploads one account may hold (a phone's whole camera roll at once fits)
NAME_LIMIT = 200  # characters of a display name (file systems allow 255 bytes; "(2)" and UTF-8 need room)
UPLOADS_FOLDER = "Uploads"  # inside the import folder, so the owner sees where browser uploads land
# What the browser is told, by the queue's status (a waiting job that had a try is still "queued").
STATUS_OF_JOB = {"queued": "queued", "processing": "converting", "done": "added", "duplicate": "duplicate",
                 "failed": "failed", "gone": "failed"}
_UNSAFE = re.compile(r"[\x00-\x1f\x7f]")


def display_name(raw: str) -> str:
    """A file name from the client, made safe to show and to store under: its last path part only, no
    control or format characters (bidirectional overrides), no leading dots (a hidden file), capped."""
    name = raw.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if unicodedata.category(c) not in ("Cc", "Cf", "Cs", "Zl", "Zp"))
    name = _UNSAFE.sub("", name).strip().lstrip(".").strip()
    if len(name) > NAME_LIMIT:
        stem, dot, suffix = name.rpartition(".")
        keep = dot + suffix if dot and 0 < len(suffix) <= 16 else ""
        name = (stem if keep else name)[: NAME_LIMIT - len(keep)].rstrip() + keep
    return name or "upload"


def _unused(path: Path) -> Path:
    candidate, n = path, 2
    while candidate.exists():
        candidate = path.with_name(f"{path.stem} ({n}){path.suffix}")
        n += 1
    return candidate


@dataclass(frozen=True)
class UploadView:
    """One upload as the protocol and the status route see it."""

    id: str
    user_id: str
    filename: str
    length: int
    offset: int
    updated_at: datetime
    job_id: str | None

    @classmethod
    def from_row(cls, row: Upload) -> UploadView:
        return cls(row.id, row.user_id, row.filename, row.length, row.offset, aware(row.updated_at),
                   row.job_id)

    @property
    def complete(self) -> bool:
        return self.offset >= self.length

    @property
    def expires_at(self) -> datetime:
        return self.updated_at + EXPIRE_AFTER


class UploadService:
    def __init__(self, paths: AppPaths, db: Database, settings: SettingsService, queue: QueueService,
                 audit: AuditService) -> None:
        self._paths, self._db, self._settings, self._queue, self._audit = paths, db, settings, queue, audit

    @property
    def folder(self) -> Path:
        folder = self._paths.private / "uploads"
        folder.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
        return folder

    def file_of(self, upload_id: str) -> Path:
        return self.folder / upload_id

    @property
    def max_size(self) -> int:
        return self._settings.current.max_upload_gb * GB

    # --- who may -----------------------------------------------------------------------------------------

    def check_right(self, who: Principal) -> None:
        """Members and admins whose account may upload; guests never (403 AUTH_004)."""
        with self._db.session() as session:
            user = session.get(User, who.user_id)
        if user is None or user.role == "guest" or not user.can_upload:
            raise VaultError("This account cannot upload", code="AUTH_004", status=403)

    def _own(self, who: Principal, upload_id: str) -> Upload:
        """The caller's upload row; anyone else's is as missing as one that never was."""
        with self._db.session() as session:
            row = session.get(Upload, upload_id)
        if row is None or row.user_id != who.user_id:
            raise NotFoundError("No such upload", details={"id": upload_id})
        if row.job_id is None and aware(row.updated_at) + EXPIRE_AFTER <= utcnow():
            raise VaultError("This upload expired", code="MEDIA_001", status=410, details={"id": upload_id})
        return row

    # --- the protocol ------------------------------------------------------------------------------------

    def create(self, who: Principal, length: int, metadata: dict[str, str]) -> UploadView:
        """A new, empty upload of `length` bytes; 413 before any byte when it could not fit."""
        self.check_right(who)
        if length > self.max_size:
            raise VaultError(f"Files up to {self._settings.current.max_upload_gb} GB can be uploaded",
                             code="VALIDATION_001", status=413, details={"limit": self.max_size})
        room = shutil.disk_usage(self.folder).free - DISK_MARGIN - self._still_coming()
        if length > room:
            raise VaultError("There is not enough free disk space for this file", code="VALIDATION_001",
                             status=413, details={"available": max(room, 0)})
        if self._open_of(who) >= OPEN_PER_ACCOUNT:
            raise VaultError(f"{OPEN_PER_ACCOUNT} uploads are under way already: let some finish first",
                             code="AUTH_005", status=429, details={"limit": OPEN_PER_ACCOUNT})
        row = Upload(user_id=who.user_id, filename=display_name(metadata.get("filename", "")), length=length)
        fd = os.open(self.file_of(row.id), os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
        os.close(fd)
        with self._db.session() as session:
            session.add(row)
        log.info("Upload %s of %d bytes started by %s", row.id, length, who.username)
        view = UploadView.from_row(row)
        return self._finish(who, view) if view.complete else view

    def _still_coming(self) -> int:
        """Bytes that uploads under way have announced but not sent yet: their room is spoken for."""
        with self._db.session() as session:
            owed = session.exec(select(func.sum(Upload.length - Upload.offset))
                                .where(col(Upload.job_id).is_(None))).one()
        return int(owed or 0)

    def _open_of(self, who: Principal) -> int:
        with self._db.session() as session:
            return int(session.exec(select(func.count()).select_from(Upload).where(
                Upload.user_id == who.user_id, col(Upload.job_id).is_(None))).one())

    def get(self, who: Principal, upload_id: str) -> UploadView:
        self.check_right(who)
        return UploadView.from_row(self._own(who, upload_id))

    def begin_write(self, who: Principal, upload_id: str, offset: int, declared: int | None) -> UploadView:
        """Before a PATCH body is read: the offset must be the upload's (409), the body must fit (413).
        The file is cut back to the offset, dropping a tail no PATCH confirmed."""
        self.check_right(who)
        view = UploadView.from_row(self._own(who, upload_id))
        path = self.file_of(upload_id)
        if not path.exists():  # swept or lost underneath a live row: nothing can resume it
            raise NotFoundError("No such upload", details={"id": upload_id})
        if (size := path.stat().st_size) < view.offset:  # a tail lost to a power cut: resume before it
            view = self.record_offset(who, upload_id, size)
        if offset != view.offset:
            raise VaultError("The upload is at another offset; ask for it with HEAD and resume from there",
                             code="VALIDATION_001", status=409, details={"offset": view.offset})
        if declared is not None and offset + declared > view.length:
            raise VaultError("The body goes past the upload's length", code="VALIDATION_001", status=413,
                             details={"length": view.length})
        if path.stat().st_size != offset:
            os.truncate(path, offset)
        return view

    def record_offset(self, who: Principal, upload_id: str, offset: int) -> UploadView:
        """What reached the disk; the whole file goes to the queue once the last byte is in."""
        with self._db.session() as session:
            row = session.get(Upload, upload_id)
            if row is None:
                raise NotFoundError("No such upload", details={"id": upload_id})
            row.offset, row.updated_at = offset, utcnow()
            session.add(row)
        view = UploadView.from_row(row)
        return self._finish(who, view) if view.complete and view.job_id is None else view

    def _finish(self, who: Principal, view: UploadView) -> UploadView:
        """fsync the file, move it into the import folder, queue it with its uploader."""
        source = self.file_of(view.id)
        with open(source, "rb") as fh:
            os.fsync(fh.fileno())
        folder = self._settings.current.import_path(self._paths) / UPLOADS_FOLDER
        folder.mkdir(parents=True, exist_ok=True)
        dest = _unused(folder / view.filename)
        _move(source, dest)
        stat = dest.stat()
        job_id = self._queue.enqueue(dest, folder.parent, stat.st_size, stat.st_mtime,
                                     uploaded_by=who.user_id)
        with self._db.session() as session:
            row = session.get(Upload, view.id)
            if row is not None:
                row.job_id = job_id
                session.add(row)
        self._audit.record(AuditEvent("upload_completed", user_id=who.user_id, username=who.username,
                                      session_id=who.session_id, resource=job_id,
                                      details={"name": view.filename, "size": view.length}))
        log.info("Upload %s is whole (%d bytes): queued as %s", view.id, view.length, dest.name)
        return UploadView(view.id, view.user_id, view.filename, view.length, view.offset, view.updated_at,
                          job_id)

    def delete(self, who: Principal, upload_id: str) -> None:
        """Termination: the row and the bytes go; a finished upload's file is the queue's by now."""
        self.check_right(who)
        self._own(who, upload_id)
        self._remove(upload_id)

    def _remove(self, upload_id: str) -> None:
        with self._db.session() as session:
            row = session.get(Upload, upload_id)
            if row is not None:
                session.delete(row)
        self.file_of(upload_id).unlink(missing_ok=True)

    def status(self, who: Principal, upload_id: str) -> dict[str, Any]:
        """How the upload is doing, in the pipeline's words: uploading, queued, converting, added,
        duplicate or failed, with the item's id and why it failed."""
        view = self.get(who, upload_id)
        answer: dict[str, Any] = {"id": view.id, "status": "uploading", "media_id": None, "error": None,
                                  "offset": view.offset, "length": view.length, "filename": view.filename}
        if view.job_id is None:
            return answer
        job = self._queue.get(view.job_id)
        if job is None:
            return answer | {"status": "failed", "error": "The file left the queue before it was converted"}
        answer["status"] = STATUS_OF_JOB.get(job.status, "queued")
        answer["media_id"] = job.media_id if job.status in ("done", "duplicate") else None
        if job.status in ("failed", "gone"):
            answer["error"] = job.error or "The file was removed before it was converted"
        return answer

    # --- the runtime's sweep -----------------------------------------------------------------------------

    def sweep(self, now: datetime | None = None) -> int:
        """Remove uploads silent for `EXPIRE_AFTER` (row and bytes), finished rows past `KEEP_FINISHED`, and
        files no row claims. Returns how many uploads went."""
        now = now or utcnow()
        with self._db.session() as session:
            stale = session.exec(select(Upload.id).where(
                (col(Upload.job_id).is_(None) & (col(Upload.updated_at) <= now - EXPIRE_AFTER))
                | (col(Upload.job_id).is_not(None) & (col(Upload.updated_at) <= now - KEEP_FINISHED)))).all()
            known = set(session.exec(select(Upload.id)).all())
        for upload_id in stale:
            self._remove(upload_id)
        quiet_since = (now - EXPIRE_AFTER).timestamp()  # a file made a moment ago may precede its row
        for leftover in self.folder.iterdir():
            if leftover.name not in known and leftover.stat().st_mtime <= quiet_since:
                leftover.unlink(missing_ok=True)
        if stale:
            log.info("Swept %d expired upload(s)", len(stale))
        return len(stale)


def _move(source: Path, dest: Path) -> None:
    """Rename; across file systems copy under a hidden name (the watcher skips it), fsync, then rename,
    so the import folder never shows a half-copied file."""
    try:
        os.replace(source, dest)
        return
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    hidden = dest.with_name(f".{dest.name}.uploading")
    try:
        shutil.copyfile(source, hidden)
        with open(hidden, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(hidden, dest)
    except BaseException:
        hidden.unlink(missing_ok=True)
        raise
    source.unlink()
