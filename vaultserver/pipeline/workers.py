"""The local worker pool: takes due jobs from the queue, has this Mac's worker processes convert them, and
commits the results; `outcomes.py` decides what becomes of each job and its original.

A pool thread holds the job and its lease; the conversion itself (hashing, Pillow, ffmpeg, previews,
encryption) runs in the thread's worker process at background priority (`local_worker.py`), so the server
process does none of it. A job's file is where it was found (its absolute path), whatever the import folder
setting says by now. A worker process that dies costs only that attempt.

Each job is worked on under its lease (see `leases.py`), renewed while the work goes on; every write about
the job shows the lease's token. A worker whose lease was lost stops, discards what it made and leaves the
job (and its file) to the job's new holder.

A full disk is nobody's file's fault: a job without room (checked before it starts), or one that hits
ENOSPC or a full database anywhere, goes back in line without using an attempt, and the pool takes no new
work until space returns. Whatever goes wrong, a job never stays "processing" once its worker let go of it:
the outcome is written, or the job is put back; a write the database refuses is kept and tried again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vaultserver.errors import MediaError
from vaultserver.ffmpeg import DEFAULT_LIMITS, FfmpegLimits
from vaultserver.pipeline import diskspace
from vaultserver.pipeline.convert import KEY_DIR
from vaultserver.pipeline.diskspace import WAITING_STAGE, DiskRoom, SpaceShortage, is_disk_full
from vaultserver.pipeline.leases import LeaseKeeper
from vaultserver.pipeline.local_worker import Converter, ProcessConverter
from vaultserver.pipeline.outcomes import Outcomes, lease_of
from vaultserver.services import Services
from vaultserver.services.jobs import JobView, LeaseLost
from vaultserver.services.library import DuplicateContent

log = logging.getLogger(__name__)



class WorkerPool:
    """`count` local workers (None: the `local_workers` setting), each a thread here that holds the job's
    lease and records its outcome, and a worker process (`converter`) that does the conversion."""

    def __init__(self, services: Services, ffmpeg: Callable[[], str], *,
                 limits: FfmpegLimits = DEFAULT_LIMITS, disk_usage: Callable[[Path], Any] | None = None,
                 recheck_seconds: float = diskspace.RECHECK_SECONDS, count: int | None = None,
                 converter: Callable[[], Converter] | None = None) -> None:
        self._services = services
        self._count = count
        key_dir = services.paths.private / KEY_DIR
        self._new_converter = converter or (lambda: ProcessConverter(ffmpeg, key_dir, limits))
        self._converters = threading.local()  # each worker thread's own
        self._all_converters: list[Converter] = []
        self.disk = DiskRoom(services.paths.library, disk_usage)
        self._recheck_seconds = recheck_seconds
        self._state = threading.Lock()  # guards the three below
        self._shortage: SpaceShortage | None = None
        self._busy = 0  # workers between claiming a job and letting go of it
        self._unwritten: dict[str, Callable[[], None]] = {}  # job id -> queue write the database refused
        self._keepers: set[LeaseKeeper] = set()  # of the jobs under way: stop() cancels them
        self._threads: list[threading.Thread] = []
        self._minimum = 0  # workers however few the setting asks for (a one-off run needs one)
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()
        self.cancel = threading.Event()  # kills in-flight ffmpeg on shutdown
        self.outcomes = Outcomes(services)
        self.listeners = self.outcomes.listeners

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

    @property
    def size(self) -> int:
        return self._count if self._count is not None else self._services.settings.current.local_workers

    def start(self, minimum: int = 0) -> None:
        self._stop.clear()
        self.cancel.clear()
        self._minimum = minimum
        self._threads = []
        self.resize()

    def resize(self) -> None:
        """Follow a changed `local_workers` setting: new workers start now; surplus ones end after their
        current job (nothing under way is interrupted)."""
        with self._state:
            self._threads = [t for t in self._threads if t.is_alive()]
            running = {t.name for t in self._threads}
            for index in range(max(self._minimum, self.size)):
                if f"vault-worker-{index}" in running:
                    continue
                thread = threading.Thread(target=self._loop, args=(index,), name=f"vault-worker-{index}",
                                          daemon=True)
                self._threads.append(thread)
                thread.start()
        self._wake()

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
        with self._state:
            converters, self._all_converters = self._all_converters, []
        for converter in converters:
            converter.close()

    def worker_pids(self) -> list[int]:
        """The worker processes alive now."""
        with self._state:
            converters = list(self._all_converters)
        return [pid for c in converters if (pid := getattr(c, "pid", None))]

    def _converter(self) -> Converter:
        """This thread's worker process (started on first use)."""
        converter: Converter | None = getattr(self._converters, "current", None)
        if converter is None:
            converter = self._converters.current = self._new_converter()
            with self._state:
                self._all_converters.append(converter)
        return converter

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()
        self._wake()

    def _wake(self) -> None:
        with self._services.queue.changed:
            self._services.queue.changed.notify_all()

    def _loop(self, index: int) -> None:
        try:
            while not self._stop.is_set() and index < max(self._minimum, self.size):
                self._running.wait()
                if self._stop.is_set():
                    break
                try:
                    self._step()
                except Exception:  # a failing database or disk must not end the worker: try again shortly
                    log.exception("A worker step failed")
                    self._stop.wait(1.0)
        finally:
            converter: Converter | None = getattr(self._converters, "current", None)
            if converter is not None:  # this thread's worker process ends with it
                with self._state:
                    if converter in self._all_converters:
                        self._all_converters.remove(converter)
                converter.close()

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
        keeper = LeaseKeeper(self._services.queue, lease_of(job))
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
        if current is None or current.lease is None or current.lease.token != lease_of(job).token:
            return
        reason = f"{type(error).__name__}: {error}" if error else "The worker let go of it unfinished"
        delay = self._services.settings.current.retry_backoff_seconds * 2 ** max(0, current.attempts - 1)
        self._services.queue.retry_later(job.id, reason, delay, token=lease_of(job).token)

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
            token=lease_of(job).token))

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

    def process(self, job: JobView, keeper: LeaseKeeper | None = None) -> None:
        """Convert one claimed job under its lease (`keeper`: renewing it already, else renewed here)."""
        if keeper is None:
            with LeaseKeeper(self._services.queue, lease_of(job)) as keeper:
                return self.process(job, keeper)
        try:
            self._process(job, keeper)
        finally:
            try:
                self._services.converting.sweep()  # a video this attempt listed, unless it committed
            except Exception:
                log.exception("Could not sweep unfinished conversions; the next job tries again")

    def _process(self, job: JobView, keeper: LeaseKeeper) -> None:
        services, outcomes, lease = self._services, self.outcomes, lease_of(job)
        source = job.source
        if not source.is_file():
            outcomes.gone(job)
            return
        if shortage := self.disk.shortage_for(_size_of(source)):
            self._pause_for_space(job, shortage, refund_attempt=True)
            return
        converter = self._converter()
        try:
            keeper.report("hashing", 0.0)
            sha256 = converter.hash(source, keeper.report, keeper.cancel)
            services.queue.set_hash(job.id, sha256, token=lease.token)
            if existing := services.library.find_by_sha256(sha256):
                if existing.status != "ready":
                    outcomes.same_content_converting(job)
                    return
                raise DuplicateContent(existing.id)
            assignment = outcomes.assignment(job, sha256)
            with services.library.staging(assignment.media_id) as stage:
                staged = converter.convert(source, assignment, stage, keeper.report, keeper.cancel,
                                           lambda plan: outcomes.open_converting(job, assignment, plan))
                keeper.report("committing", 0.99)
                services.library.commit(staged, lease)
        except DuplicateContent as dup:
            outcomes.duplicate(job, dup.existing_id)
            return
        except MediaError as exc:
            outcomes.quarantine(job, exc.message, exc.details)
            return
        except InterruptedError:
            if keeper.lost.is_set():
                raise LeaseLost("Stopped: the job went to another worker") from None
            # A shutdown is not the file's fault: no attempt is used.
            services.queue.put_back(job.id, token=lease.token)
            return
        except LeaseLost:
            raise  # the job is another worker's now: nothing of this attempt is recorded
        except Exception as exc:
            if is_disk_full(exc):
                raise  # not the file's fault: the job waits for space (see _run)
            log.exception("Processing %s failed", job.source_path)
            outcomes.retry_or_quarantine(job, f"{type(exc).__name__}: {exc}")
            return
        outcomes.added(job)

    def _give_up(self, job: JobView, keeper: LeaseKeeper) -> None:
        self.outcomes.give_up(job)


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
