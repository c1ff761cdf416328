"""Watch folder -> persistent queue -> workers -> ffmpeg/Pillow -> encrypted library."""

from __future__ import annotations

import logging
import time

from vaultserver.ffmpeg import ffmpeg
from vaultserver.pipeline.ingest import remove_leftover_key_files
from vaultserver.pipeline.watcher import ImportWatcher
from vaultserver.pipeline.workers import WorkerPool, wait_until_idle
from vaultserver.services import Services

log = logging.getLogger(__name__)


class Pipeline:
    """The ingest pipeline of one data dir. Start it only while holding the runtime lock."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.watcher = ImportWatcher(services.settings, services.queue)
        self.workers = WorkerPool(services, ffmpeg)

    def recover(self) -> None:
        """After a crash: finish a half-done key rotation, re-queue interrupted jobs, sweep partial output."""
        self.services.keys.finish_interrupted_rotation()
        self.services.queue.recover_interrupted()
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
        """Take everything now in the import folder, convert it, and return when the queue is empty."""
        self.recover()
        root = self.services.settings.current.import_path(self.services.paths)
        root.mkdir(parents=True, exist_ok=True)
        stable = self.services.settings.current.stable_seconds
        self.watcher.scan(root)
        self.workers.start()
        try:
            while self.watcher.pending:  # two looks at each file, then wait out anything still changing
                self.watcher.check_stable(root, stable)
                if self.watcher.pending:
                    time.sleep(0.25)
            return wait_until_idle(self.services, timeout)
        finally:
            self.workers.stop()
