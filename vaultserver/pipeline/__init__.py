"""Watch folder -> persistent queue -> workers -> ffmpeg/Pillow -> encrypted library."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vaultserver.ffmpeg import ffmpeg
from vaultserver.pipeline.convert import remove_leftover_key_files
from vaultserver.pipeline.diskspace import DiskSpaceError
from vaultserver.pipeline.remote_jobs import RemoteJobs
from vaultserver.pipeline.watcher import ImportWatcher
from vaultserver.pipeline.workers import WorkerPool, wait_until_idle
from vaultserver.services import Services

log = logging.getLogger(__name__)


class Pipeline:
    """The ingest pipeline of one data dir. Start it only while holding the runtime lock."""

    def __init__(self, services: Services, disk_usage: Callable[[Path], Any] | None = None,
                 local_workers: int | None = None) -> None:
        self.services = services
        self.watcher = ImportWatcher(services.settings, services.queue)
        self.workers = WorkerPool(services, ffmpeg, disk_usage=disk_usage, count=local_workers)
        self.remote = RemoteJobs(services, self.workers.outcomes, self.workers.disk)  # worker machines' jobs

    def recover(self) -> None:
        """After a crash: finish a half-done key rotation, re-queue interrupted jobs, sweep partial output."""
        self.services.keys.finish_interrupted_rotation()
        self.services.queue.recover_interrupted()
        self.services.converting.sweep()  # videos listed by conversions that never finished
        remove_leftover_key_files(self.services.paths)
        self.services.library.sweep_orphans()

    def start(self) -> None:
        self.recover()
        self.workers.start()
        self.watcher.start(self.services.settings.current.import_path(self.services.paths))

    def stop(self) -> None:
        self.watcher.stop()
        self.workers.stop()

    def process_once(self, timeout: float | None = None) -> bool:
        """Take everything now in the import folder, convert it, and return when the queue is empty.

        DiskSpaceError if work stops for want of free disk space: waiting for it could take forever."""
        self.recover()
        root = self.services.settings.current.import_path(self.services.paths)
        root.mkdir(parents=True, exist_ok=True)
        stable = self.services.settings.current.stable_seconds
        self.watcher.scan(root)
        self.workers.start(minimum=1)  # nobody else converts for a one-off run
        try:
            while self.watcher.pending:  # two looks at each file, then wait out anything still changing
                self.watcher.check_stable(root, stable)
                if self.watcher.pending:
                    time.sleep(0.25)
            finished = wait_until_idle(self.services, timeout, until=self.workers.stalled_for_space)
            if shortage := self.workers.stalled_for_space():
                raise DiskSpaceError(shortage)
            return finished
        finally:
            self.workers.stop()
