"""A local worker's hold on the job it converts: the lease is renewed while the work goes on, and the work is
stopped when the lease is lost.

A heartbeat thread renews the lease every third of its length, so a slow step (hashing a large file, an
ffmpeg pass) never lets it lapse. If a renewal is refused (the lease lapsed, say this Mac slept, and the job
went to another worker), `lost` is set and `cancel` fires, which stops a running ffmpeg; the queue refuses
this worker's later writes and its commit, so whatever it made is discarded. A renewal the database fails
to make is tried again at the next beat: only the queue's refusal means the lease is gone.
"""

from __future__ import annotations

import logging
import threading
from types import TracebackType

from vaultserver.services.jobs import Lease, LeaseLost
from vaultserver.services.queue import QueueService

log = logging.getLogger(__name__)

BEATS_PER_LEASE = 3


class LeaseKeeper:
    """Use as a context manager around one job's work; `report` is the work's progress callback."""

    def __init__(self, queue: QueueService, lease: Lease) -> None:
        self.lease = lease
        self.cancel = threading.Event()  # stops this job's ffmpeg: set when the lease is lost or on shutdown
        self.lost = threading.Event()
        self._queue = queue
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"vault-lease-{lease.job_id[:8]}",
                                        daemon=True)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._done.set()
        self._thread.join()

    def _beat(self) -> None:
        interval = self._queue.lease_seconds / BEATS_PER_LEASE
        while not self._done.wait(interval):
            try:
                self._queue.heartbeat(self.lease.job_id, self.lease.token)
            except LeaseLost:
                self._give_up()
                return
            except Exception:  # a busy or failing database: the lease still has two beats to go
                log.exception("Could not renew the lease on job %s; trying again", self.lease.job_id)

    def report(self, stage: str, fraction: float) -> None:
        """Progress of the work. Never raises (ffmpeg's progress reader calls it): a refusal stops it."""
        if self.lost.is_set():
            return
        try:
            self._queue.report(self.lease.job_id, stage, fraction, token=self.lease.token)
        except LeaseLost:
            self._give_up()

    def _give_up(self) -> None:
        if not self.lost.is_set():
            log.warning("Lost the lease on job %s; stopping it and discarding its output", self.lease.job_id)
        self.lost.set()
        self.cancel.set()
