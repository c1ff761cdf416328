"""The persistent processing queue: which import files are waiting, being converted, done or failed.

This service is the only writer of job rows. A job keeps the absolute path its file was found at and the
import folder it was found under, so changing the import folder never strands jobs already waiting. Rows
survive crashes; `recover_interrupted()` puts jobs that were mid-conversion back in line. A job becomes
"done" only through `mark_committed()`, inside the library's commit transaction. Live progress (percent
within a stage) is kept in memory and merged into snapshots, so a progress bar does not cost a database
write per ffmpeg tick.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path, PurePath
from typing import Any

from sqlalchemy import and_, event, or_
from sqlmodel import Session, col, func, select

from vaultserver.db import Database
from vaultserver.db.models import ProcessingJob, utcnow

log = logging.getLogger(__name__)

ACTIVE = ("queued", "processing")
FINISHED = ("done", "duplicate", "failed", "gone")
UNSUCCESSFUL = ("duplicate", "failed", "gone")  # "done" is only ever written by mark_committed()


@dataclass(frozen=True)
class JobView:
    id: str
    path: str  # absolute: where the file was found
    import_root: str  # the import folder it was found under
    original_name: str
    status: str
    stage: str
    progress: float
    attempts: int
    error: str | None
    media_id: str | None
    next_attempt_at: datetime
    created_at: datetime
    finished_at: datetime | None

    @classmethod
    def from_row(cls, row: ProcessingJob, live: tuple[str, float] | None = None) -> JobView:
        stage, progress = live if live and row.status == "processing" else (row.stage, row.progress)
        return cls(row.id, row.path, row.import_root, row.original_name, row.status, stage, progress,
                   row.attempts, row.error, row.media_id, row.next_attempt_at, row.created_at,
                   row.finished_at)

    @property
    def source(self) -> Path:
        return Path(self.path)

    @property
    def source_path(self) -> str:
        """The file's place inside the import folder it was found in: what people are shown."""
        found = PurePath(self.path)
        if not found.is_relative_to(self.import_root):
            return self.path
        return found.relative_to(self.import_root).as_posix()

    def to_dict(self) -> dict[str, Any]:
        """The admin API's shape: `source_path` relative to the import folder, as it always was."""
        data: dict[str, Any] = {"id": self.id, "source_path": self.source_path}
        data.update((k, v) for k, v in self.__dict__.items() if k not in ("id", "path", "import_root"))
        for name in ("next_attempt_at", "created_at", "finished_at"):
            moment = data[name]
            data[name] = moment.isoformat() if moment else None
        return data


@dataclass(frozen=True)
class QueueCounts:
    queued: int = 0
    processing: int = 0
    done: int = 0
    duplicate: int = 0
    failed: int = 0
    gone: int = 0

    @property
    def active(self) -> int:
        return self.queued + self.processing


class QueueService:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._claim_lock = threading.Lock()
        self._live: dict[str, tuple[str, float]] = {}
        self.changed = threading.Condition()

    def _notify(self) -> None:
        with self.changed:
            self.changed.notify_all()

    def enqueue(self, path: Path, import_root: Path, size: int, mtime: float) -> str | None:
        """Add a job for the file at `path`, found under `import_root`, unless one for it is already waiting
        or running, or it already failed as it is now. Returns the new job id."""
        path, import_root = path.absolute(), import_root.absolute()
        with self._db.session() as session:
            # A file that failed and was left in place (a folder the owner chose) is not taken again until
            # it changes.
            existing = session.exec(select(ProcessingJob.id).where(
                ProcessingJob.path == str(path),
                or_(col(ProcessingJob.status).in_(ACTIVE),
                    and_(col(ProcessingJob.status) == "failed", col(ProcessingJob.size) == size,
                         col(ProcessingJob.mtime) == mtime)))).first()
            if existing:
                return None
            job = ProcessingJob(path=str(path), import_root=str(import_root), original_name=path.name,
                                size=size, mtime=mtime)
            session.add(job)
        log.info("Queued %s", path)
        self._notify()
        return job.id

    def claim(self, max_attempts: int | None = None) -> JobView | None:
        """Take the oldest job that is due. One claim at a time, so two workers never get the same job.

        A job that already used `max_attempts` is never handed out: it only gets there by being under way
        each time Vault stopped (retries end in failed/ before that), so running it again would repeat a
        crash. `claim_exhausted()` hands those out to be quarantined instead.
        """
        with self._claim_lock, self._db.session() as session:
            query = select(ProcessingJob).where(
                ProcessingJob.status == "queued", col(ProcessingJob.next_attempt_at) <= utcnow())
            if max_attempts is not None:
                query = query.where(col(ProcessingJob.attempts) < max_attempts)
            job = session.exec(query.order_by(col(ProcessingJob.created_at)).limit(1)).first()
            if job is None:
                return None
            job.status, job.stage, job.progress = "processing", "starting", 0.0
            job.attempts += 1
            job.started_at = utcnow()
            session.add(job)
        self._live[job.id] = ("starting", 0.0)
        self._notify()
        return JobView.from_row(job)

    def claim_exhausted(self, max_attempts: int) -> JobView | None:
        """Take a waiting job that used all its attempts, to be quarantined without running it again.

        It is marked "processing" (stage "giving up") so that exactly one worker deals with it; its attempt
        count is left as it is, for the reason shown to the owner.
        """
        with self._claim_lock, self._db.session() as session:
            job = session.exec(select(ProcessingJob).where(
                ProcessingJob.status == "queued", col(ProcessingJob.attempts) >= max_attempts,
                col(ProcessingJob.next_attempt_at) <= utcnow())
                .order_by(col(ProcessingJob.created_at)).limit(1)).first()
            if job is None:
                return None
            job.status, job.stage = "processing", "giving up"
            session.add(job)
        return JobView.from_row(job)

    def report(self, job_id: str, stage: str, progress: float) -> None:
        """Record progress; a new stage is also written to the database (visible to other processes)."""
        previous = self._live.get(job_id)
        self._live[job_id] = (stage, progress)
        if previous is None or previous[0] != stage:
            with self._db.session() as session:
                job = session.get(ProcessingJob, job_id)
                if job:
                    job.stage, job.progress = stage, progress
                    session.add(job)
        self._notify()

    def set_hash(self, job_id: str, sha256: str, media_type: str | None = None) -> None:
        with self._db.session() as session:
            job = session.get(ProcessingJob, job_id)
            if job:
                job.sha256 = sha256
                job.media_type = media_type or job.media_type
                session.add(job)

    def finish(self, job_id: str, status: str, error: str | None = None, media_id: str | None = None) -> None:
        """End a job that added nothing: duplicate, failed or gone."""
        if status not in UNSUCCESSFUL:
            raise ValueError(f"finish() ends a job as one of {UNSUCCESSFUL}; done is mark_committed()")
        with self._db.session() as session:
            job = session.get(ProcessingJob, job_id)
            if job:
                job.status, job.stage, job.error, job.finished_at = status, status, error, utcnow()
                job.media_id = media_id or job.media_id
                job.progress = 1.0 if status in ("done", "duplicate") else job.progress
                session.add(job)
        self._live.pop(job_id, None)
        self._notify()

    def mark_committed(self, session: Session, job_id: str, media_id: str) -> None:
        """Mark a job done in the caller's transaction (the library's commit: row + keys + job, one commit).

        Live progress is dropped and waiters are told only once that transaction has committed.
        """
        job = session.get(ProcessingJob, job_id)
        if job is None:
            return
        job.status, job.stage, job.progress = "done", "done", 1.0
        job.media_id, job.finished_at, job.error = media_id, utcnow(), None
        session.add(job)
        event.listen(session, "after_commit", lambda _session: self._committed(job_id), once=True)

    def _committed(self, job_id: str) -> None:
        self._live.pop(job_id, None)
        self._notify()

    def retry_later(self, job_id: str, error: str, delay_seconds: float) -> None:
        with self._db.session() as session:
            job = session.get(ProcessingJob, job_id)
            if job:
                job.status, job.stage, job.error = "queued", "waiting to retry", error
                job.next_attempt_at = utcnow() + timedelta(seconds=delay_seconds)
                session.add(job)
        self._live.pop(job_id, None)
        self._notify()

    def put_back(self, job_id: str, stage: str = "interrupted", error: str | None = None,
                 refund_attempt: bool = True) -> None:
        """A job stopped for a reason that is not its file's fault (a shutdown, a full disk) before it
        finished: back in line, due now, and its attempt not counted unless `refund_attempt` is False.
        `stage` and `error` say why it waits."""
        with self._db.session() as session:
            job = session.get(ProcessingJob, job_id)
            if job:
                job.status, job.stage, job.next_attempt_at = "queued", stage, utcnow()
                job.error, job.finished_at = error or job.error, None
                if refund_attempt:
                    job.attempts = max(0, job.attempts - 1)
                session.add(job)
        self._live.pop(job_id, None)
        self._notify()

    def recover_interrupted(self) -> list[JobView]:
        """Jobs left 'processing' by a crash go back in line; their attempt still counts, so a file that
        crashes Vault is given up on after `max_attempts` starts (see `claim()`)."""
        with self._db.session() as session:
            rows = session.exec(select(ProcessingJob).where(ProcessingJob.status == "processing")).all()
            for job in rows:
                job.status, job.stage, job.next_attempt_at = "queued", "interrupted", utcnow()
                session.add(job)
        for job in rows:
            log.warning("Re-queued %s, interrupted during processing (attempt %d)", job.path, job.attempts)
        return [JobView.from_row(r) for r in rows]

    def get(self, job_id: str) -> JobView | None:
        with self._db.session() as session:
            row = session.get(ProcessingJob, job_id)
        return JobView.from_row(row, self._live.get(job_id)) if row else None

    def snapshot(self, recent: int = 50) -> list[JobView]:
        """Active jobs first (oldest first), then the most recently finished ones."""
        with self._db.session() as session:
            active = session.exec(select(ProcessingJob).where(col(ProcessingJob.status).in_(ACTIVE))
                                  .order_by(col(ProcessingJob.created_at))).all()
            done = session.exec(select(ProcessingJob).where(col(ProcessingJob.status).in_(FINISHED))
                                .order_by(col(ProcessingJob.finished_at).desc()).limit(recent)).all()
        return [JobView.from_row(r, self._live.get(r.id)) for r in [*active, *done]]

    def counts(self) -> QueueCounts:
        with self._db.session() as session:
            rows = session.exec(select(ProcessingJob.status, func.count())
                                .group_by(ProcessingJob.status)).all()
        return QueueCounts(**{status: n for status, n in rows if status in QueueCounts.__dataclass_fields__})

    def next_due_in(self) -> float | None:
        """Seconds until the next queued job is due (0 if one is due now), None if nothing is queued."""
        with self._db.session() as session:
            due = session.exec(select(func.min(ProcessingJob.next_attempt_at))
                               .where(ProcessingJob.status == "queued")).one()
        if due is None:
            return None
        if due.tzinfo is None:
            due = due.replace(tzinfo=utcnow().tzinfo)
        return max(0.0, (due - utcnow()).total_seconds())
