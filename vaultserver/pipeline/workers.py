"""The worker pool: takes due jobs from the queue, converts them, and disposes of originals safely.

The rule that matters: an original leaves the import folder only after its encrypted result is committed.
A job's file is where it was found (its absolute path), whatever the import folder setting says by now.
Bad input (corrupt, not media) goes to `failed/` unchanged with a sidecar saying why; other errors are
retried with backoff up to the configured number of attempts, then go to `failed/` too. Only Vault's own
import folder is emptied into `failed/`: in a folder the owner chose, such files are reported and left.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

from vaultserver.db.models import utcnow
from vaultserver.errors import MediaError
from vaultserver.ffmpeg import DEFAULT_LIMITS, FfmpegLimits
from vaultserver.pipeline.ingest import Ingestor, sha256_of
from vaultserver.services import Services
from vaultserver.services.audit import AuditEvent
from vaultserver.services.library import DuplicateContent
from vaultserver.services.queue import JobView

log = logging.getLogger(__name__)

SIDECAR_SUFFIX = ".vault-error.json"
GONE = "The file disappeared before it was processed"


class WorkerPool:
    def __init__(self, services: Services, ffmpeg: Callable[[], str], *,
                 limits: FfmpegLimits = DEFAULT_LIMITS) -> None:
        self._services = services
        self._ingestor = Ingestor(services, ffmpeg, limits)
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()
        self.cancel = threading.Event()  # kills in-flight ffmpeg on shutdown
        self.listeners: list[Callable[[str, JobView], None]] = []

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

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
        queue = self._services.queue
        while not self._stop.is_set():
            self._running.wait()
            if self._stop.is_set():
                break
            max_attempts = self._services.settings.current.max_attempts
            if exhausted := queue.claim_exhausted(max_attempts):
                self._give_up(exhausted)
                continue
            job = queue.claim(max_attempts)
            if job is None:
                wait = queue.next_due_in()
                with queue.changed:  # _stop is checked under the lock stop() notifies with: no lost wake-up
                    if not self._stop.is_set():
                        queue.changed.wait(timeout=min(wait if wait is not None else 5.0, 5.0) or 0.05)
                continue
            try:
                self.process(job)
            except Exception:  # never let one job kill a worker
                log.exception("Unexpected error processing %s", job.source_path)

    # --- one job ----------------------------------------------------------------------------------------

    def _emit(self, event: str, job_id: str) -> None:
        view = self._services.queue.get(job_id)
        for listener in list(self.listeners):
            if view:
                listener(event, view)

    def process(self, job: JobView) -> None:
        services = self._services
        import_root, source = Path(job.import_root), job.source
        report = lambda stage, fraction: services.queue.report(job.id, stage, fraction)  # noqa: E731
        if not source.is_file():
            services.queue.finish(job.id, "gone", error=GONE)
            return
        try:
            report("hashing", 0.0)
            sha256 = sha256_of(source)
            services.queue.set_hash(job.id, sha256)
            if existing := services.library.find_by_sha256(sha256):
                raise DuplicateContent(existing.id)
            self._ingestor.ingest(job.id, source, job.original_name, sha256, report, self.cancel)
        except DuplicateContent as dup:
            self._remove_original(source, import_root)
            services.queue.finish(job.id, "duplicate", media_id=dup.existing_id)
            services.audit.record(AuditEvent("ingest_duplicate", resource=job.source_path,
                                             details={"existing_id": dup.existing_id}))
            self._emit("duplicate", job.id)
            return
        except MediaError as exc:
            self._quarantine(job, source, import_root, exc.message, exc.details)
            return
        except InterruptedError:
            services.queue.put_back(job.id)  # a shutdown is not the file's fault: no attempt used
            return
        except Exception as exc:
            log.exception("Processing %s failed", job.source_path)
            self._retry_or_quarantine(job, source, import_root, exc)
            return
        self._remove_original(source, import_root)
        self._emit("done", job.id)

    def _give_up(self, job: JobView) -> None:
        """A job that was under way every time Vault stopped, `max_attempts` times: quarantined, not run."""
        try:
            if not job.source.is_file():
                self._services.queue.finish(job.id, "gone", error=GONE)
                return
            reason = f"Vault stopped {job.attempts} times while converting this file; it is not tried again"
            self._quarantine(job, job.source, Path(job.import_root), reason, {"attempts": job.attempts})
        except Exception:  # never let one job kill a worker
            log.exception("Could not give up on %s", job.source_path)

    def _retry_or_quarantine(self, job: JobView, source: Path, import_root: Path, exc: Exception) -> None:
        settings = self._services.settings.current
        message = f"{type(exc).__name__}: {exc}"
        if job.attempts < settings.max_attempts:
            delay = settings.retry_backoff_seconds * 2 ** (job.attempts - 1)
            log.warning("Will retry %s in %.0f s: %s", job.source_path, delay, message)
            self._services.queue.retry_later(job.id, message, delay)
            return
        self._quarantine(job, source, import_root, "Conversion kept failing", {"error": message})

    def _quarantine(self, job: JobView, source: Path, import_root: Path, reason: str, details: dict) -> None:
        """Move the untouched original to failed/ with a sidecar; never delete it.

        Only from the import folder Vault created: a folder the owner chose holds their own files, so there
        a file Vault cannot take is reported (job, log, audit) and left where it is; the queue does not take
        it again unless it changes.
        """
        services = self._services
        if import_root.resolve() == services.paths.default_imports.resolve():
            where = {"moved_to": self._move_to_failed(job, source, import_root, reason, details)}
            log.warning("Moved %s to failed/: %s", job.source_path, reason)
        else:
            where = {"left_in": str(import_root)}
            log.warning("Left %s in %s: %s", job.source_path, import_root, reason)
        services.queue.finish(job.id, "failed", error=reason)
        services.audit.record(AuditEvent("ingest_failed", outcome="failed", resource=job.source_path,
                                         details={"reason": reason, **details, **where}))
        self._emit("failed", job.id)

    def _move_to_failed(self, job: JobView, source: Path, import_root: Path, reason: str,
                        details: dict) -> str:
        dest = _free_name(self._services.paths.failed / source.name)
        try:
            _move(source, dest)
            sidecar = dest.with_name(dest.name + SIDECAR_SUFFIX)
            sidecar.write_text(json.dumps({
                "file": source.name, "from": job.source_path, "reason": reason, "details": details,
                "attempts": job.attempts, "failed_at": utcnow().isoformat()}, indent=2, default=str))
            _prune_empty_dirs(source.parent, import_root)
        except OSError as exc:  # the original stays where it was; it is still not lost
            log.error("Could not move %s to the failed folder: %s", source, exc)
        return dest.name

    @staticmethod
    def _remove_original(source: Path, import_root: Path) -> None:
        source.unlink(missing_ok=True)
        _prune_empty_dirs(source.parent, import_root)


def _free_name(path: Path) -> Path:
    candidate, n = path, 2
    while candidate.exists() or candidate.with_name(candidate.name + SIDECAR_SUFFIX).exists():
        candidate = path.with_name(f"{path.stem} ({n}){path.suffix}")
        n += 1
    return candidate


def _move(source: Path, dest: Path) -> None:
    """Rename where possible; across file systems copy, fsync, then remove the source."""
    try:
        os.replace(source, dest)
    except OSError:
        shutil.copy2(source, dest)
        with open(dest, "rb") as fh:
            os.fsync(fh.fileno())
        source.unlink()


def _prune_empty_dirs(folder: Path, root: Path) -> None:
    """Remove subfolders the import left empty, never the import folder itself."""
    folder, root = folder.resolve(), root.resolve()
    while folder != root and root in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


def wait_until_idle(services: Services, timeout: float | None = None, poll: float = 0.2) -> bool:
    """Block until no job is queued or processing (retries included). False on timeout."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while services.queue.counts().active:
        if deadline is not None and time.monotonic() > deadline:
            return False
        with services.queue.changed:
            services.queue.changed.wait(poll)
    return True
