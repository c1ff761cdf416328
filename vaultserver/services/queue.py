"""The persistent processing queue: which import files are waiting, being converted, done or failed.

This service is the only writer of job rows. A job keeps the absolute path its file was found at and the
import folder it was found under, so changing the import folder never strands jobs already waiting. Rows
survive crashes. A job being converted is leased to one worker: an owner name, a secret token and an
expiry the worker renews with `heartbeat()`. Every write about a leased job shows its token and is refused
(`LeaseLost`) once the lease lapsed or passed to another worker, so a job taken over is finished exactly
once. A lapsed lease puts the job back in line, its attempt counted (a worker that dies with its file is
that file's fault until proven otherwise). A job becomes "done" only through `mark_committed()`, in the
library's commit transaction. Live progress is kept in memory (no database write per ffmpeg tick).
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, and_, event, or_, update
from sqlmodel import Session, col, func, select

from vaultserver.db import Database
from vaultserver.db.models import ProcessingJob, utcnow
from vaultserver.services.jobs import JobView, Lease, LeaseLost, QueueCounts, aware

log = logging.getLogger(__name__)

ACTIVE = ("queued", "processing")
FINISHED = ("done", "duplicate", "failed", "gone")
UNSUCCESSFUL = ("duplicate", "failed", "gone")  # "done" is only ever written by mark_committed()
# A silent worker loses its job after this; VAULT_LEASE_SECONDS (hidden) shortens it for tests.
LEASE_SECONDS = float(os.environ.get("VAULT_LEASE_SECONDS") or 60.0)
LOCAL_OWNER_PREFIX, REMOTE_OWNER_PREFIX = "local:", "remote:"  # this runtime's workers; worker machines


def local_owner() -> str:
    """The lease owner name of the calling thread as a worker of this process."""
    return f"{LOCAL_OWNER_PREFIX}{os.getpid()}:{threading.current_thread().name}"


def _lapsed(now: datetime) -> ColumnElement[bool]:
    """Jobs being converted whose lease lapsed, or that never had one (left by an older version)."""
    expires = col(ProcessingJob.lease_expires_at)
    return and_(col(ProcessingJob.status) == "processing", or_(expires.is_(None), expires <= now))


def _held(job_id: str, token: str, now: datetime) -> ColumnElement[bool]:
    return and_(col(ProcessingJob.id) == job_id, col(ProcessingJob.status) == "processing",
                col(ProcessingJob.lease_token) == token, col(ProcessingJob.lease_expires_at) > now)


_NO_LEASE: dict[str, Any] = {"lease_owner": None, "lease_token": None, "lease_expires_at": None}


class QueueService:
    def __init__(self, db: Database, lease_seconds: float = LEASE_SECONDS) -> None:
        self._db = db
        self.lease_seconds = lease_seconds
        self._claim_lock = threading.Lock()
        self._live: dict[str, tuple[str, float]] = {}
        self._leases: dict[str, Lease] = {}  # handed out or renewed here: progress is checked without a query
        self._progress_listeners: list[Callable[[str, float | None], None]] = []
        self.changed = threading.Condition()

    def on_progress(self, listener: Callable[[str, float | None], None]) -> None:
        """Hear every job's live progress as it is reported (job id, fraction), and (job id, None) once it
        has ended. Called on the reporting thread; a listener that raises is logged and ignored."""
        self._progress_listeners.append(listener)

    def _tell(self, job_id: str, progress: float | None) -> None:
        for listener in self._progress_listeners:
            try:
                listener(job_id, progress)
            except Exception:
                log.exception("A progress listener failed on job %s", job_id)

    def _notify(self) -> None:
        with self.changed:
            self.changed.notify_all()

    def enqueue(self, path: Path, import_root: Path, size: int, mtime: float,
                uploaded_by: str | None = None) -> str | None:
        """Add a job for the file at `path`, found under `import_root`, unless one for it is already waiting
        or running, or it already failed as it is now. Returns the new job id.

        `uploaded_by`: the account whose browser upload this file is. Should the watcher have queued the
        file first, that job is marked as theirs and its id returned."""
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
                if uploaded_by is None:
                    return None
                session.exec(update(ProcessingJob).where(col(ProcessingJob.id) == existing)
                             .values(uploaded_by=uploaded_by))
                return existing
            job = ProcessingJob(path=str(path), import_root=str(import_root), original_name=path.name,
                                size=size, mtime=mtime, uploaded_by=uploaded_by)
            session.add(job)
        log.info("Queued %s", path)
        self._notify()
        return job.id

    # --- leases -----------------------------------------------------------------------------------------

    def claim(self, max_attempts: int | None = None, *, owner: str | None = None) -> JobView | None:
        """Lease the oldest job that is due to `owner` (default: this thread as a local worker); its
        `lease` says until when. One claim at a time, so two workers never get the same job. A job whose
        lease lapsed is waiting again, its attempt counted.

        A job that already used `max_attempts` is never handed out: it only gets there by being under way
        each time its worker died (retries end in failed/ before that), so running it again would repeat a
        crash. `claim_exhausted()` hands those out to be quarantined instead.
        """
        with self._claim_lock, self._db.session() as session:
            now = utcnow()
            below_limit = [] if max_attempts is None else [col(ProcessingJob.attempts) < max_attempts]
            job = self._oldest_due(session, now, *below_limit)
            if job is None:
                return None
            job.status, job.stage, job.progress = "processing", "starting", 0.0
            job.attempts += 1
            job.started_at = now
            self._grant(session, job, owner, now)
        self._live[job.id] = ("starting", 0.0)
        self._notify()
        return JobView.from_row(job)

    def claim_exhausted(self, max_attempts: int, *, owner: str | None = None) -> JobView | None:
        """Lease a waiting job that used all its attempts, to be quarantined without running it again.

        It is marked "processing" (stage "giving up") so that exactly one worker deals with it; its attempt
        count is left as it is, for the reason shown to the owner.
        """
        with self._claim_lock, self._db.session() as session:
            now = utcnow()
            job = self._oldest_due(session, now, col(ProcessingJob.attempts) >= max_attempts)
            if job is None:
                return None
            job.status, job.stage = "processing", "giving up"
            self._grant(session, job, owner, now)
        return JobView.from_row(job)

    def _oldest_due(self, session: Session, now: datetime,
                    *which: ColumnElement[bool]) -> ProcessingJob | None:
        """The oldest waiting job that is due and matches `which`, once lapsed leases are back in line."""
        self._release(session, _lapsed(now), now)
        return session.exec(select(ProcessingJob).where(
            col(ProcessingJob.status) == "queued", col(ProcessingJob.next_attempt_at) <= now, *which)
            .order_by(col(ProcessingJob.created_at)).limit(1)).first()

    def _grant(self, session: Session, job: ProcessingJob, owner: str | None, now: datetime) -> None:
        job.lease_owner, job.lease_token = owner or local_owner(), secrets.token_urlsafe(32)
        job.lease_expires_at = now + timedelta(seconds=self.lease_seconds)
        job.media_id = None  # a new attempt: the video an earlier one listed is not this one's
        session.add(job)
        self._leases[job.id] = Lease(job.id, job.lease_owner, job.lease_token, job.lease_expires_at)

    def heartbeat(self, job_id: str, token: str) -> datetime:
        """Renew a lease for another `lease_seconds`; returns its new expiry. LeaseLost if it lapsed or
        went to another worker: the caller must stop the job and discard what it made."""
        now = utcnow()
        expires = now + timedelta(seconds=self.lease_seconds)
        with self._db.session() as session:
            self._write_held(session, job_id, token, now, lease_expires_at=expires)
        lease = self._leases.get(job_id)
        if lease and lease.token == token:
            self._leases[job_id] = Lease(job_id, lease.owner, token, expires)
        return expires

    def holds(self, job_id: str, token: str) -> bool:
        """Whether `token` is the job's live lease."""
        lease = self._leases.get(job_id)
        if lease and lease.token == token and lease.expires_at > utcnow():
            return True
        with self._db.session() as session:
            found = session.exec(select(ProcessingJob.id).where(_held(job_id, token, utcnow()))).first()
        return found is not None

    def _write_held(self, session: Session, job_id: str, token: str, now: datetime, **values: Any) -> None:
        """Write to a job only while `token` is its live lease, in one statement (no check-then-write gap)."""
        statement = update(ProcessingJob).where(_held(job_id, token, now)).values(**values)
        result = session.exec(statement.execution_options(synchronize_session=False))
        if result.rowcount != 1:
            raise LeaseLost("This job is no longer leased to this worker: its lease lapsed or another worker "
                            "took it over; its result is discarded", details={"job_id": job_id})

    def _release(self, session: Session, which: ColumnElement[bool], now: datetime) -> list[ProcessingJob]:
        """Put jobs back in line, due now, their attempt counted (see `claim()`)."""
        rows = list(session.exec(select(ProcessingJob).where(which)).all())
        for job in rows:
            log.warning("Re-queued %s: its worker (%s) stopped during attempt %d", job.path, job.lease_owner,
                        job.attempts)
            job.status, job.stage, job.next_attempt_at = "queued", "interrupted", now
            job.lease_owner = job.lease_token = job.lease_expires_at = None
            session.add(job)
            self._ended(job.id)
        return rows

    def recover_interrupted(self) -> list[JobView]:
        """At start, before this runtime's workers run: jobs whose lease lapsed and jobs leased to local
        workers (all gone: one runtime owns a data folder, and its workers end with it) go back in line,
        their attempt counted, so a file that crashes Vault is given up on after `max_attempts` starts.
        A live lease of a remote worker is left alone: that worker may still be converting."""
        local = col(ProcessingJob.lease_owner).startswith(LOCAL_OWNER_PREFIX)
        return self._release_where(lambda now: or_(_lapsed(now), local))

    def release_owner(self, owner: str) -> list[JobView]:
        """Put back every job leased to `owner` (a revoked worker machine), their attempts counted."""
        return self._release_where(lambda _now: col(ProcessingJob.lease_owner) == owner)

    def _release_where(self, which: Callable[[datetime], ColumnElement[bool]]) -> list[JobView]:
        with self._claim_lock, self._db.session() as session:
            now = utcnow()
            rows = self._release(session, and_(col(ProcessingJob.status) == "processing", which(now)), now)
        self._notify()
        return [JobView.from_row(r) for r in rows]

    # --- writes by the lease holder ---------------------------------------------------------------------

    def report(self, job_id: str, stage: str, progress: float, *, token: str) -> None:
        """Record progress; a new stage is also written to the database (visible to other processes)."""
        if not self.holds(job_id, token):
            raise LeaseLost("This job is no longer leased to this worker", details={"job_id": job_id})
        previous = self._live.get(job_id)
        self._live[job_id] = (stage, progress)
        self._tell(job_id, progress)
        if previous is None or previous[0] != stage:
            with self._db.session() as session:
                self._write_held(session, job_id, token, utcnow(), stage=stage, progress=progress)
        self._notify()

    def set_hash(self, job_id: str, sha256: str, media_type: str | None = None, *, token: str) -> None:
        values = {"sha256": sha256} | ({"media_type": media_type} if media_type else {})
        with self._db.session() as session:
            self._write_held(session, job_id, token, utcnow(), **values)

    def finish(self, job_id: str, status: str, error: str | None = None, media_id: str | None = None, *,
               token: str) -> None:
        """End a job that added nothing: duplicate, failed or gone."""
        if status not in UNSUCCESSFUL:
            raise ValueError(f"finish() ends a job as one of {UNSUCCESSFUL}; done is mark_committed()")
        values: dict[str, Any] = {"status": status, "stage": status, "error": error, "finished_at": utcnow(),
                                  **_NO_LEASE}
        values |= ({"media_id": media_id} if media_id else {}) | ({"progress": 1.0} if status == "duplicate"
                                                                   else {})
        with self._db.session() as session:
            self._write_held(session, job_id, token, utcnow(), **values)
        self._ended(job_id)
        self._notify()

    def mark_committed(self, session: Session, job_id: str, media_id: str, *, token: str) -> None:
        """Mark a job done in the caller's transaction (the library's commit: row + keys + job, one commit).
        LeaseLost, and so the whole commit rolls back, unless `token` is still the job's live lease.

        Live progress is dropped and waiters are told only once that transaction has committed.
        """
        now = utcnow()
        self._write_held(session, job_id, token, now, status="done", stage="done", progress=1.0,
                         media_id=media_id, finished_at=now, error=None, **_NO_LEASE)
        event.listen(session, "after_commit", lambda _session: self._committed(job_id), once=True)

    def attach_media(self, session: Session, job_id: str, media_id: str, *, token: str) -> None:
        """The item this attempt made is listed already (a converting video): in the caller's transaction."""
        self._write_held(session, job_id, token, utcnow(), media_id=media_id)

    def _committed(self, job_id: str) -> None:
        self._ended(job_id)
        self._notify()

    def _ended(self, job_id: str) -> None:
        self._live.pop(job_id, None)
        self._leases.pop(job_id, None)
        self._tell(job_id, None)

    def retry_later(self, job_id: str, error: str, delay_seconds: float, *, token: str,
                    stage: str = "waiting to retry", refund_attempt: bool = False) -> None:
        now = utcnow()
        refund = {"attempts": func.max(ProcessingJob.attempts - 1, 0)} if refund_attempt else {}
        with self._db.session() as session:
            self._write_held(session, job_id, token, now, status="queued", stage=stage, error=error,
                             next_attempt_at=now + timedelta(seconds=delay_seconds), **refund, **_NO_LEASE)
        self._ended(job_id)
        self._notify()

    def put_back(self, job_id: str, stage: str = "interrupted", error: str | None = None,
                 refund_attempt: bool = True, *, token: str) -> None:
        """A job stopped for a reason that is not its file's fault (a shutdown, a full disk) before it
        finished: back in line, due now, and its attempt not counted unless `refund_attempt` is False.
        `stage` and `error` say why it waits."""
        now = utcnow()
        values: dict[str, Any] = {"status": "queued", "stage": stage, "next_attempt_at": now,
                                  "finished_at": None, **_NO_LEASE}
        if error:
            values["error"] = error
        if refund_attempt:
            values["attempts"] = func.max(ProcessingJob.attempts - 1, 0)
        with self._db.session() as session:
            self._write_held(session, job_id, token, now, **values)
        self._ended(job_id)
        self._notify()

    # --- reading ----------------------------------------------------------------------------------------

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
        """Seconds until a job is next due (0 if one is due now): a queued one, or one whose lease lapses.
        None if nothing waits or runs."""
        with self._db.session() as session:
            due = session.exec(select(func.min(ProcessingJob.next_attempt_at))
                               .where(ProcessingJob.status == "queued")).one()
            lapses = session.exec(select(func.min(ProcessingJob.lease_expires_at))
                                  .where(ProcessingJob.status == "processing")).one()
        moments = [aware(moment) for moment in (due, lapses) if moment is not None]
        return max(0.0, (min(moments) - utcnow()).total_seconds()) if moments else None
