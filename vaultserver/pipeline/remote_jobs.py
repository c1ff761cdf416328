"""The server's side of a worker machine's jobs: what the worker routes call, one method per route.

A worker machine never touches the database or the data folder: it leases a job, fetches the original over
HTTPS, reports its hash (a duplicate ends there), receives the job's `Assignment` (the item's id and its two
data keys, made here; the master key never leaves this Mac), uploads the encrypted outputs into the job's
staging folder, and commits. Every call shows the lease token, so a worker whose lease lapsed or whose job
went elsewhere is refused (409) and what it sends is discarded.

Nothing a worker sends is trusted: upload names must be ones Vault writes, sizes are capped, and before the
commit the result must describe its own job (`ConvertedItem.staged`) and every file must decrypt with the
job's keys (`check_staged`: playlists well-formed, every segment present and decrypting to MPEG-TS). A worker
that sends garbage gets its job failed (retried, then quarantined), never a broken item.

The assignments live in memory: after a restart the server cannot check or commit what a worker made before
it, so such a job is put back in line at that worker's next call (409) instead of waiting out its lease.
"""

from __future__ import annotations

import logging
import re
import shutil
import threading
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from vaultserver.errors import ValidationError, VaultError
from vaultserver.pipeline.convert import Assignment, ConvertedItem, WireError
from vaultserver.pipeline.diskspace import DiskRoom
from vaultserver.pipeline.outcomes import Outcomes, lease_of
from vaultserver.services import Services
from vaultserver.services.items import (
    HLS_DIR,
    IMAGE_FILE,
    MASTER_PLAYLIST,
    ORIGINAL_FILE,
    POSTER_FILE,
    PREVIEW_FILE,
    THUMB_FILE,
)
from vaultserver.services.jobs import JobView, Lease, LeaseLost
from vaultserver.services.library import DuplicateContent
from vaultserver.services.library_check import check_staged
from vaultserver.services.queue import REMOTE_OWNER_PREFIX

log = logging.getLogger(__name__)

_UPLOAD_NAME = re.compile(
    "^(?:" + "|".join(re.escape(n) for n in (IMAGE_FILE, THUMB_FILE, PREVIEW_FILE, POSTER_FILE, ORIGINAL_FILE,
                                            MASTER_PLAYLIST))
    + rf"|{HLS_DIR}/[0-9a-z_]{{1,16}}/(?:index\.m3u8\.vlt|seg_\d{{5,6}}\.ts))$")
UPLOAD_SLACK = 64 * 1024 * 1024  # what encryption and a small original's outputs may add to its size
STAGE_MAX = 40  # characters of a worker's stage name kept


class ResultRefused(VaultError):
    """What a worker sent is not a sound result for its job; the job is failed (and retried)."""

    code = "MEDIA_005"
    status = 422


@dataclass(frozen=True)
class RemoteLease:
    job_id: str
    token: str
    lease_seconds: float
    original_name: str
    size: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Job:
    view: JobView
    lease: Lease
    worker: str
    assignment: Assignment | None = None
    stage: Path | None = None  # the item's staging folder, once it has an id


class RemoteJobs:
    REQUIRED_ENCODERS = ("libx264", "libwebp_anim")  # what the ladder and the previews are made with

    def __init__(self, services: Services, outcomes: Outcomes, disk: DiskRoom) -> None:
        self._services = services
        self._outcomes = outcomes
        self._disk = disk
        self._jobs: dict[str, _Job] = {}
        self._lock = threading.Lock()

    # --- leasing ---------------------------------------------------------------------------------------

    def lease(self, worker: str, encoders: list[str]) -> RemoteLease | None:
        """The next due job for `worker`, leased to it; None when there is none it can do."""
        if missing := [e for e in self.REQUIRED_ENCODERS if e not in encoders]:
            log.warning("Worker %s cannot convert for Vault: its ffmpeg lacks %s", worker, ", ".join(missing))
            return None
        self._forget_lost()
        queue, owner = self._services.queue, REMOTE_OWNER_PREFIX + worker
        max_attempts = self._services.settings.current.max_attempts
        while exhausted := queue.claim_exhausted(max_attempts, owner=owner):
            self._outcomes.give_up(exhausted)
        while job := queue.claim(max_attempts, owner=owner):
            lease = lease_of(job)
            if not job.source.is_file():
                self._outcomes.gone(job)
                continue
            size = job.source.stat().st_size
            if shortage := self._disk.shortage_for(size):
                queue.put_back(job.id, stage="waiting for disk space", error=shortage.message,
                               token=lease.token)
                return None
            with self._lock:
                self._jobs[job.id] = _Job(job, lease, worker)
            log.info("Leased %s to worker %s", job.source_path, worker)
            return RemoteLease(job.id, lease.token, queue.lease_seconds, job.original_name, size)
        return None

    # --- a leased job ----------------------------------------------------------------------------------

    def source(self, job_id: str, token: str) -> Path:
        return self._held(job_id, token).view.source

    def hashed(self, job_id: str, token: str, sha256: str) -> Assignment | None:
        """The job's assignment, or None when the library holds this content already (the job ended)."""
        job = self._held(job_id, token)
        if not re.fullmatch(r"[0-9a-f]{64}", sha256):
            raise ValidationError("sha256 must be 64 lowercase hex digits")
        services = self._services
        services.queue.set_hash(job_id, sha256, token=token)
        if existing := services.library.find_by_sha256(sha256):
            if existing.status == "ready":
                self._outcomes.duplicate(job.view, existing.id)
            else:
                self._outcomes.same_content_converting(job.view)
            self._drop(job_id)
            return None
        if job.assignment is None or job.assignment.sha256 != sha256:
            job.assignment = self._outcomes.assignment(job.view, sha256)
            job.stage = services.paths.staging / job.assignment.media_id
            job.stage.mkdir(parents=True, mode=0o700)
        return job.assignment

    def heartbeat(self, job_id: str, token: str, stage: str, progress: float) -> datetime:
        self._held(job_id, token)
        queue = self._services.queue
        expires = queue.heartbeat(job_id, token)
        fraction = min(max(float(progress), 0.0), 1.0)
        queue.report(job_id, stage[:STAGE_MAX] or "converting", fraction, token=token)
        return expires

    def upload_path(self, job_id: str, token: str, relative: str) -> tuple[Path, int]:
        """Where an uploaded output goes, and the most bytes it may have."""
        job, _, stage = self._assigned(job_id, token)
        if not _UPLOAD_NAME.fullmatch(relative):
            raise ValidationError(f"{relative!r} is not a file Vault writes", details={"file": relative})
        path = stage / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        return path, 2 * job.view.source.stat().st_size + UPLOAD_SLACK

    def commit(self, job_id: str, token: str, result: object) -> str:
        """Check the uploaded result against its job and commit it; its id."""
        job, assignment, stage = self._assigned(job_id, token)
        try:
            staged = ConvertedItem.parse(result).staged(stage, assignment)
        except WireError as exc:
            self._refuse(job, str(exc))
        if problems := check_staged(staged):
            self._refuse(job, "; ".join(problems[:5]))
        try:
            item = self._services.library.commit(staged, job.lease)
        except DuplicateContent as dup:
            self._outcomes.duplicate(job.view, dup.existing_id)
            self._drop(job_id)
            return dup.existing_id
        except LeaseLost:
            self._drop(job_id)
            raise
        self._outcomes.added(job.view)
        self._drop(job_id)
        log.info("Committed %s converted by worker %s", job.view.source_path, job.worker)
        return item.id

    def fail(self, job_id: str, token: str, kind: str, message: str, details: dict[str, Any]) -> None:
        """The worker could not convert it: bad input is quarantined, anything else retried."""
        job = self._held(job_id, token)
        message = message[:500] or "unknown error"
        if kind == "media":
            self._outcomes.quarantine(job.view, message, {**details, "worker": job.worker})
        else:
            self._outcomes.retry_or_quarantine(job.view, f"{message} (on worker {job.worker})")
        self._drop(job_id)

    # --- bookkeeping -----------------------------------------------------------------------------------

    def _held(self, job_id: str, token: str) -> _Job:
        """The job's state while `token` is its live lease; LeaseLost otherwise."""
        with self._lock:
            job = self._jobs.get(job_id)
        queue = self._services.queue
        if job is None or job.lease.token != token:
            if queue.holds(job_id, token):  # leased before a restart: this server never made its keys
                queue.put_back(job_id, stage="interrupted", error="Vault restarted during the conversion",
                               token=token)
            raise LeaseLost("This job is not leased to this worker (any more)", details={"job_id": job_id})
        if not queue.holds(job_id, token):
            self._drop(job_id)
            raise LeaseLost("This job's lease lapsed or another worker took it over",
                            details={"job_id": job_id})
        return job

    def _assigned(self, job_id: str, token: str) -> tuple[_Job, Assignment, Path]:
        """The job with its assignment and staging folder, which its hash brought."""
        job = self._held(job_id, token)
        if job.assignment is None or job.stage is None:
            raise ValidationError("Report the original's hash first (POST …/hash)")
        return job, job.assignment, job.stage

    def _refuse(self, job: _Job, reason: str) -> Any:
        log.warning("Refused the result of worker %s for %s: %s", job.worker, job.view.source_path, reason)
        self._outcomes.retry_or_quarantine(job.view, f"Worker {job.worker} sent an unusable result: {reason}")
        self._drop(job.view.id)
        raise ResultRefused("The result was refused; the job will be converted again",
                            details={"reason": reason})

    def _drop(self, job_id: str) -> None:
        with self._lock:
            job = self._jobs.pop(job_id, None)
        if job and job.stage:
            shutil.rmtree(job.stage, ignore_errors=True)
        self._services.converting.sweep()  # the video it listed, unless it was committed

    def _forget_lost(self) -> None:
        """Jobs whose lease lapsed (a worker that died): their uploads go."""
        with self._lock:
            jobs = list(self._jobs.values())
        for job in jobs:
            if not self._services.queue.holds(job.view.id, job.lease.token):
                log.info("Worker %s lost its lease on %s; its uploads are removed", job.worker,
                         job.view.source_path)
                self._drop(job.view.id)
