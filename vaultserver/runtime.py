"""Composes the parts of a running Vault (pipeline now; server and discovery join here) for GUI and CLI alike.

Only one runtime may own a data dir at a time: a file lock says who, so a second `serve` or `process` on the
same folder is refused with a clear message instead of two pipelines fighting over the same files.
"""

from __future__ import annotations

import logging
import os

from filelock import FileLock, Timeout

from vaultserver.config import AppPaths
from vaultserver.errors import VaultError
from vaultserver.pipeline import Pipeline
from vaultserver.services import Services, open_services

log = logging.getLogger(__name__)


class AlreadyRunning(VaultError):
    code = "SYSTEM_001"
    status = 409


class VaultRuntime:
    def __init__(self, paths: AppPaths, services: Services | None = None) -> None:
        self.paths = paths.ensure()
        self.services = services or open_services(paths)
        self.pipeline = Pipeline(self.services)
        self._lock = FileLock(str(paths.runtime_lock), timeout=0)
        self.running = False

    def _acquire(self) -> None:
        try:
            self._lock.acquire()
        except Timeout:
            raise AlreadyRunning(f"Vault is already running on {self.paths.root}",
                                 details={"data_dir": str(self.paths.root)}) from None
        (self.paths.root / ".vault.pid").write_text(str(os.getpid()))

    def _release(self) -> None:
        (self.paths.root / ".vault.pid").unlink(missing_ok=True)
        self._lock.release()

    def start(self) -> None:
        if self.running:
            return
        self._acquire()
        try:
            self.pipeline.start()
        except BaseException:
            self._release()
            raise
        self.running = True
        log.info("Vault started on %s", self.paths.root)

    def stop(self) -> None:
        if not self.running:
            return
        self.pipeline.stop()
        self.running = False
        self._release()
        log.info("Vault stopped")

    def process_once(self, timeout: float | None = None) -> bool:
        self._acquire()
        try:
            return self.pipeline.process_once(timeout)
        finally:
            self._release()

    def close(self) -> None:
        self.stop()
        self.services.close()
