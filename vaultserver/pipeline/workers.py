"""The worker pool: takes due jobs from the queue, converts them, and disposes of originals safely.

The rule that matters: an original leaves the import folder only after its encrypted result is committed.
A job's file is where it was found (its absolute path), whatever the import folder setting says by now.
Bad input (corrupt, not media) goes to `failed/` unchanged with a sidecar saying why; other errors are
retried with backoff up to the configured number of attempts, then go to `failed/` too. Only Vault's own
import folder is emptied into `failed/`: in a folder the owner chose, such files are reported and left.

Each job is worked on under its lease (see `leases.py`), renewed while the work goes on; every write about
the job shows the lease's token. A worker whose lease was lost stops, discards what it made and leaves the
job (and its file) to the job's new holder.

A full disk is nobody's file's fault: a job without room (checked before it starts), or one that hits
ENOSPC or a full database anywhere, goes back in line without using an attempt, and the pool takes no new
work until space returns. Whatever goes wrong, a job never stays "processing" once its worker let go of it:
the outcome is written, or the job is put back; a write the database refuses is kept and tried again.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vaultserver.db.models import utcnow
from vaultserver.errors import MediaError
from vaultserver.ffmpeg import DEFAULT_LIMITS, FfmpegLimits
from vaultserver.pipeline import diskspace
from vaultserver.pipeline.diskspace import WAITING_STAGE, DiskRoom, SpaceShortage, is_disk_full
from vaultserver.pipeline.import_files import SIDECAR_SUFFIX, free_name, move_file, prune_empty_dirs
from vaultserver.pipeline.ingest import Ingestor, sha256_of
from vaultserver.pipeline.leases import LeaseKeeper
from vaultserver.services import Services
from vaultserver.services.audit import AuditEvent
from vaultserver.services.library import DuplicateContent
from vaultserver.services.queue import JobView, Lease, LeaseLost

log = logging.getLogger(__name__)

GONE = "The file disappeared before it was processed"


class WorkerPool:
    def __init__(self, services: Services, ffmpeg: Callable[[], str], *,
                 limits: FfmpegLimits = DEFAULT_LIMITS, disk_usage: Callable[[Path], Any] | None = None,
                 recheck_seconds: float = diskspace.RECHECK_SECONDS) -> None:
        self._services = services
        self._ingestor = Ingestor(services, ffmpeg, limits)
        self.disk = DiskRoom(services.paths.library, disk_usage)
        self._recheck_seconds = recheck_seconds
        self._state = threading.Lock()  # guards the three below
        self._shortage: SpaceShortage | None = None
        self._busy = 0  # workers between claiming a job and letting go of it
        self._unwritten: dict[str, Callable[[], None]] = {}  # job id -> queue write the database refused
        self._keepers: set[LeaseKeeper] = set()  # of the jobs under way: stop() cancels them
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()
        self.cancel = threading.Event()  # kills in-flight ffmpeg on shutdown
        self.listeners: list[Callable[[str, JobView], None]] = []

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    @property
    def waiting_for_space(self) -> SpaceShortage | None:
        """Why no new job is taken, if the library's disk is too full."""
        return self._shortage

    def stalled_for_space(self) -> SpaceShortage | None:
        """The shortage, once it holds up all work: nothing is being converted and nothing new is taken."""
        with self._state:
            return self._shortage if self._busy == 0 else None

    def start(self) -> None:
        self._stop.clear()
        self.cancel.clear()
        count = self._services.settings.current.workers
        self._threads = [threading.Thread(target=self._loop, name=f"vault-worker-{i}", daemon=True)
                         for i in range(count)]
        for t in self._threads:
            t.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self.cancel.set()
        with self._state:
            for keeper in self._keepers:
                keeper.cancel.set()
        self._running.set()
        self._wake()
        for t in self._threads:
            t.join(timeout)
        self._threads = []

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()
        self._wake()

    def _wake(self) -> None:
        with self._services.queue.changed:
            self._services.queue.changed.notify_all()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._running.wait()
            if self._stop.is_set():
                break
            try:
                self._step()
            except Exception:  # a failing database or disk must not end the worker: try again shortly
                log.exception("A worker step failed")
                self._stop.wait(1.0)

    def _step(self) -> None:
        queue = self._services.queue
        self._write_unwritten()
        if self._still_short_of_space():
            self._idle(self._recheck_seconds)
            return
        max_attempts = self._services.settings.current.max_attempts
        with self._state:
            self._busy += 1
        try:
            if exhausted := queue.claim_exhausted(max_attempts):
                self._run(exhausted, self._give_up, refund_attempt=False)
            elif job := queue.claim(max_attempts):
                self._run(job, self.process, refund_attempt=True)
            else:
                wait = queue.next_due_in()
                self._idle(min(wait if wait is not None else 5.0, 5.0) or 0.05)
        finally:
            with self._state:
                self._busy -= 1

    def _idle(self, seconds: float) -> None:
        queue = self._services.queue
        with queue.changed:  # _stop is checked under the lock stop() notifies with: no lost wake-up
            if not self._stop.is_set():
                queue.changed.wait(timeout=seconds)

    def _run(self, job: JobView, work: Callable[[JobView, LeaseKeeper], None], refund_attempt: bool) -> None:
        """Do one job's work under its lease; whatever happens, the job does not stay "processing" with
        this worker afterwards."""
        error: Exception | None = None
        keeper = LeaseKeeper(self._services.queue, _lease(job))
        with self._state:
            self._keepers.add(keeper)
            if self.cancel.is_set():
                keeper.cancel.set()
        try:
            with keeper:
                work(job, keeper)
        except LeaseLost:
            log.warning("%s was taken over by another worker; this worker's result is discarded",
                        job.source_path)
        except Exception as exc:  # never let one job kill a worker
            error = exc
            if is_disk_full(exc):
                shortage = self.disk.shortage_after_full(_size_of(job.source))
                self._pause_for_space(job, shortage, refund_attempt)
            else:
                log.exception("Unexpected error processing %s", job.source_path)
        finally:
            with self._state:
                self._keepers.discard(keeper)
        self._record(job.id, lambda: self._put_back_if_processing(job, error))

    def _put_back_if_processing(self, job: JobView, error: Exception | None) -> None:
        """Its outcome could not be written (the error came while recording it): retry it later, the attempt
        counted, so an error that repeats ends in failed/ like any other. Not if it is no longer this
        worker's job (ended, or taken over)."""
        current = self._services.queue.get(job.id)
        if current is None or current.lease is None or current.lease.token != _lease(job).token:
            return
        reason = f"{type(error).__name__}: {error}" if error else "The worker let go of it unfinished"
        delay = self._services.settings.current.retry_backoff_seconds * 2 ** max(0, current.attempts - 1)
        self._services.queue.retry_later(job.id, reason, delay, token=_lease(job).token)

    def _record(self, job_id: str, write: Callable[[], None]) -> None:
        """A queue write for a job; if the database refuses it, keep it and try again before new work. A
        write refused because the job is no longer this worker's is dropped: it is the new holder's now."""
        try:
            write()
        except LeaseLost:
            log.info("Job %s is no longer this worker's; its state is left to its new holder", job_id)
        except Exception:
            log.exception("Could not record the state of job %s; will try again", job_id)
            with self._state:
                self._unwritten[job_id] = write
            return
        with self._state:
            self._unwritten.pop(job_id, None)

    def _write_unwritten(self) -> None:
        with self._state:
            pending = list(self._unwritten.items())
        for job_id, write in pending:
            self._record(job_id, write)

    def _pause_for_space(self, job: JobView, shortage: SpaceShortage, refund_attempt: bool) -> None:
        with self._state:
            if self._shortage is None or shortage.need > self._shortage.need:
                self._shortage = shortage
        log.warning("%s: %s; no new work is taken until there is", job.source_path, shortage.message)
        self._record(job.id, lambda: self._services.queue.put_back(
            job.id, stage=WAITING_STAGE, error=shortage.message, refund_attempt=refund_attempt,
            token=_lease(job).token))

    def _still_short_of_space(self) -> bool:
        with self._state:
            shortage = self._shortage
        if shortage is None:
            return False
        if (have := self.disk.free()) < shortage.need:
            return True
        with self._state:
            if self._shortage is shortage:
                self._shortage = None
        log.info("Free disk space is back (%d bytes free); converting again", have)
        return False

    # --- one job ----------------------------------------------------------------------------------------

    def _emit(self, event: str, job_id: str) -> None:
        view = self._services.queue.get(job_id)
        for listener in list(self.listeners):
            if view:
                listener(event, view)

    def process(self, job: JobView, keeper: LeaseKeeper | None = None) -> None:
        """Convert one claimed job under its lease (`keeper`: renewing it already, else renewed here)."""
        if keeper is None:
            with LeaseKeeper(self._services.queue, _lease(job)) as keeper:
                return self.process(job, keeper)
        services, lease = self._services, _lease(job)
        token = lease.token
        import_root, source = Path(job.import_root), job.source
        if not source.is_file():
            services.queue.finish(job.id, "gone", error=GONE, token=token)
            return
        if shortage := self.disk.shortage_for(_size_of(source)):
            self._pause_for_space(job, shortage, refund_attempt=True)
            return
        try:
            keeper.report("hashing", 0.0)
            sha256 = sha256_of(source)
            services.queue.set_hash(job.id, sha256, token=token)
            if existing := services.library.find_by_sha256(sha256):
                raise DuplicateContent(existing.id)
            self._ingestor.ingest(lease, source, job.original_name, sha256, keeper.report, keeper.cancel)
        except DuplicateContent as dup:
            # Recorded first: a worker that lost the job must not take the file from its new holder.
            services.queue.finish(job.id, "duplicate", media_id=dup.existing_id, token=token)
            self._remove_original(source, import_root)
            services.audit.record(AuditEvent("ingest_duplicate", resource=job.source_path,
                                             details={"existing_id": dup.existing_id}))
            self._emit("duplicate", job.id)
            return
        except MediaError as exc:
            self._quarantine(job, source, import_root, exc.message, exc.details)
            return
        except InterruptedError:
            if keeper.lost.is_set():
                raise LeaseLost("Stopped: the job went to another worker") from None
            services.queue.put_back(job.id, token=token)  # a shutdown is not the file's fault: no attempt
            return
        except LeaseLost:
            raise  # the job is another worker's now: nothing of this attempt is recorded
        except Exception as exc:
            if is_disk_full(exc):
                raise  # not the file's fault: the job waits for space (see _run)
            log.exception("Processing %s failed", job.source_path)
            self._retry_or_quarantine(job, source, import_root, exc)
            return
        self._remove_original(source, import_root)
        self._emit("done", job.id)

    def _give_up(self, job: JobView, keeper: LeaseKeeper) -> None:
        """A job that was under way every time Vault stopped, `max_attempts` times: quarantined, not run."""
        if not job.source.is_file():
            self._services.queue.finish(job.id, "gone", error=GONE, token=_lease(job).token)
            return
        reason = f"Vault stopped {job.attempts} times while converting this file; it is not tried again"
        self._quarantine(job, job.source, Path(job.import_root), reason, {"attempts": job.attempts})

    def _retry_or_quarantine(self, job: JobView, source: Path, import_root: Path, exc: Exception) -> None:
        settings = self._services.settings.current
        message = f"{type(exc).__name__}: {exc}"
        if job.attempts < settings.max_attempts:
            delay = settings.retry_backoff_seconds * 2 ** (job.attempts - 1)
            log.warning("Will retry %s in %.0f s: %s", job.source_path, delay, message)
            self._services.queue.retry_later(job.id, message, delay, token=_lease(job).token)
            return
        self._quarantine(job, source, import_root, "Conversion kept failing", {"error": message})

    def _quarantine(self, job: JobView, source: Path, import_root: Path, reason: str, details: dict) -> None:
        """Move the untouched original to failed/ with a sidecar; never delete it.

        Only from the import folder Vault created: a folder the owner chose holds their own files, so there
        a file Vault cannot take is reported (job, log, audit) and left where it is; the queue does not take
        it again unless it changes. If the database refuses to record the failure, the original is put back
        where it was, so that the job, tried again, still finds it.
        """
        services = self._services
        if not services.queue.holds(job.id, _lease(job).token):  # its file is the new holder's to deal with
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
            services.queue.finish(job.id, "failed", error=reason, token=_lease(job).token)
        except Exception:
            if moved and moved.is_file() and not source.exists():
                source.parent.mkdir(parents=True, exist_ok=True)  # its emptied folder may have been pruned
                move_file(moved, source)
                moved.with_name(moved.name + SIDECAR_SUFFIX).unlink(missing_ok=True)
            raise
        services.audit.record(AuditEvent("ingest_failed", outcome="failed", resource=job.source_path,
                                         details={"reason": reason, **details, **where}))
        self._emit("failed", job.id)

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
    def _remove_original(source: Path, import_root: Path) -> None:
        source.unlink(missing_ok=True)
        prune_empty_dirs(source.parent, import_root)


def _size_of(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def wait_until_idle(services: Services, timeout: float | None = None, poll: float = 0.2,
                    until: Callable[[], object] | None = None) -> bool:
    """Block until no job is queued or processing (retries included), or `until()` is true. False on
    timeout."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while services.queue.counts().active and not (until and until()):
        if deadline is not None and time.monotonic() > deadline:
            return False
        with services.queue.changed:
            services.queue.changed.wait(poll)
    return True


def _lease(job: JobView) -> Lease:
    """The lease of a job this pool claimed (every claimed job has one)."""
    if job.lease is None:
        raise RuntimeError(f"Job {job.id} is converted without a lease")
    return job.lease
