"""What becomes of a job and its original once a worker is done with it, whichever worker that was.

The rule that matters: an original leaves the import folder only after its encrypted result is committed (or
its content is already in the library). Bad input (corrupt, not media) goes to `failed/` unchanged with a
sidecar saying why; other errors are retried with backoff up to the configured number of attempts, then go to
`failed/` too. Only Vault's own import folder is emptied into `failed/`: in a folder the owner chose, such
files are reported and left. Every write shows the job's lease token, so a worker that lost its job decides
nothing about it. The server's local pool and the routes remote workers call both end jobs here.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

from vaultserver.db.models import new_id, utcnow
from vaultserver.pipeline.convert import Assignment, VideoPlanned
from vaultserver.pipeline.diskspace import is_disk_full
from vaultserver.pipeline.import_files import SIDECAR_SUFFIX, free_name, move_file, prune_empty_dirs
from vaultserver.services import Services
from vaultserver.services.audit import AuditEvent
from vaultserver.services.jobs import JobView, Lease, LeaseLost

log = logging.getLogger(__name__)

GONE = "The file disappeared before it was processed"
WAIT_FOR_TWIN = 30.0  # seconds before a job whose content is converting as another item asks again


def lease_of(job: JobView) -> Lease:
    """The lease of a claimed job (every claimed job has one)."""
    if job.lease is None:
        raise RuntimeError(f"Job {job.id} is converted without a lease")
    return job.lease


class Outcomes:
    def __init__(self, services: Services) -> None:
        self._services = services
        self.listeners: list[Callable[[str, JobView], None]] = []

    def emit(self, event: str, job_id: str) -> None:
        view = self._services.queue.get(job_id)
        for listener in list(self.listeners):
            if view:
                listener(event, view)

    def assignment(self, job: JobView, sha256: str) -> Assignment:
        """The job as its worker gets it, with data keys made for it alone (the master key stays here)."""
        services, keys = self._services, self._services.keys
        return Assignment(job_id=job.id, media_id=new_id(), original_name=job.original_name, sha256=sha256,
                          size=job.source.stat().st_size,
                          keep_original=services.settings.current.keep_originals,
                          file_key=keys.new_data_key("file"), hls_key=keys.new_data_key("hls", with_iv=True))

    def gone(self, job: JobView) -> None:
        self._services.queue.finish(job.id, "gone", error=GONE, token=lease_of(job).token)

    def duplicate(self, job: JobView, existing_id: str) -> None:
        """Its content is in the library already. Recorded first: a worker that lost the job must not take
        the file from its new holder."""
        self._services.queue.finish(job.id, "duplicate", media_id=existing_id, token=lease_of(job).token)
        self._remove_original(job)
        self._services.audit.record(AuditEvent("ingest_duplicate", resource=job.source_path,
                                               details={"existing_id": existing_id}))
        self.emit("duplicate", job.id)

    def same_content_converting(self, job: JobView) -> None:
        """Its content is being converted as another item right now: ask again once that one is done (or
        gone); not the file's fault, so no attempt is used."""
        self._services.queue.retry_later(job.id, "The same content is being converted now", WAIT_FOR_TWIN,
                                         token=lease_of(job).token, stage="waiting for its twin",
                                         refund_attempt=True)

    def open_converting(self, job: JobView, assignment: Assignment, plan: VideoPlanned) -> None:
        """List a video whose ladder is planned, so it plays while it converts (`ConvertingItems`)."""
        self._services.converting.open(
            job_id=job.id, token=lease_of(job).token, media_id=assignment.media_id,
            original_name=assignment.original_name, sha256=assignment.sha256, size=assignment.size,
            keys=[assignment.file_key, assignment.hls_key], duration=plan.duration,
            source_format=plan.source_format, renditions=[r.model_dump() for r in plan.renditions],
            taken_at=plan.taken_at)

    def added(self, job: JobView) -> None:
        """Its item is committed (the commit ended the job): now, and only now, the original goes."""
        self._remove_original(job)
        self.emit("done", job.id)

    def give_up(self, job: JobView) -> None:
        """A job that was under way every time Vault stopped, `max_attempts` times: quarantined, not run."""
        if not job.source.is_file():
            self.gone(job)
            return
        reason = f"Vault stopped {job.attempts} times while converting this file; it is not tried again"
        self.quarantine(job, reason, {"attempts": job.attempts})

    def retry_or_quarantine(self, job: JobView, message: str) -> None:
        """An error that is not plainly the file's fault: tried again after a backoff, up to the attempts."""
        settings = self._services.settings.current
        if job.attempts < settings.max_attempts:
            delay = settings.retry_backoff_seconds * 2 ** (job.attempts - 1)
            log.warning("Will retry %s in %.0f s: %s", job.source_path, delay, message)
            self._services.queue.retry_later(job.id, message, delay, token=lease_of(job).token)
            return
        self.quarantine(job, "Conversion kept failing", {"error": message})

    def quarantine(self, job: JobView, reason: str, details: dict) -> None:
        """Move the untouched original to failed/ with a sidecar; never delete it.

        Only from the import folder Vault created: a folder the owner chose holds their own files, so there
        a file Vault cannot take is reported (job, log, audit) and left where it is; the queue does not take
        it again unless it changes. If the database refuses to record the failure, the original is put back
        where it was, so that the job, tried again, still finds it.
        """
        services, source, import_root = self._services, job.source, Path(job.import_root)
        if not services.queue.holds(job.id, lease_of(job).token):  # its file is the new holder's to deal with
            raise LeaseLost("The job went to another worker", details={"job_id": job.id})
        moved: Path | None = None
        if import_root.resolve() == services.paths.default_imports.resolve():
            moved = services.paths.failed / self._move_to_failed(job, source, import_root, reason, details)
            where = {"moved_to": moved.name}
            log.warning("Moved %s to failed/: %s", job.source_path, reason)
        else:
            where = {"left_in": str(import_root)}
            log.warning("Left %s in %s: %s", job.source_path, import_root, reason)
        try:
            services.queue.finish(job.id, "failed", error=reason, token=lease_of(job).token)
        except Exception:
            if moved and moved.is_file() and not source.exists():
                source.parent.mkdir(parents=True, exist_ok=True)  # its emptied folder may have been pruned
                move_file(moved, source)
                moved.with_name(moved.name + SIDECAR_SUFFIX).unlink(missing_ok=True)
            raise
        services.audit.record(AuditEvent("ingest_failed", outcome="failed", resource=job.source_path,
                                         details={"reason": reason, **details, **where}))
        self.emit("failed", job.id)

    def _move_to_failed(self, job: JobView, source: Path, import_root: Path, reason: str,
                        details: dict) -> str:
        """The sidecar goes first, so a file in failed/ always says why; neither is left half-written."""
        dest = free_name(self._services.paths.failed / source.name)
        sidecar = dest.with_name(dest.name + SIDECAR_SUFFIX)
        try:
            sidecar.write_text(json.dumps({
                "file": source.name, "from": job.source_path, "reason": reason, "details": details,
                "attempts": job.attempts, "failed_at": utcnow().isoformat()}, indent=2, default=str))
            move_file(source, dest)
        except OSError as exc:  # the original stays where it was; it is still not lost
            sidecar.unlink(missing_ok=True)
            if is_disk_full(exc):
                raise
            log.error("Could not move %s to the failed folder: %s", source, exc)
            return dest.name
        prune_empty_dirs(source.parent, import_root)
        return dest.name

    @staticmethod
    def _remove_original(job: JobView) -> None:
        job.source.unlink(missing_ok=True)
        prune_empty_dirs(job.source.parent, Path(job.import_root))
