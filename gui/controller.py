"""The GUI's one link to the running Vault: owns the runtime and turns what happens in it into Qt signals.

Widgets never touch the database or the runtime: they call the controller, which does the work on a pool
thread (`Tasks`) and answers on the UI thread, and they listen to its signals. Pipeline events arrive on
worker threads and cross to the UI thread through one queued signal (`_job_event`). The controller itself
reaches the core only through the runtime, the services and the backup operations, like the command line
does. Restoring a backup (the first-run wizard's other way in) swaps in new services and a new runtime on the
restored folder, before anything has started: everyone reads them through the controller, never keeps them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal, Slot

from gui.backups import ThrottledProgress, check_backup_key, read_backup_folder
from gui.tasks import Done, Failed, Tasks, describe_error
from vaultserver.backup.deep_check import check_backup_items
from vaultserver.backup.restore import RestoreResult, restore
from vaultserver.backup.status import record_verification
from vaultserver.backup.verify import VerifyReport, verify_files
from vaultserver.config import AppPaths, Settings
from vaultserver.errors import ValidationError, VaultError
from vaultserver.runtime import BackupState, CertificateDetails, Progress, VaultRuntime
from vaultserver.services import Services, open_services
from vaultserver.services.items import Usage
from vaultserver.services.jobs import JobView, QueueCounts

log = logging.getLogger(__name__)

ONLINE_MINUTES = 5  # a device that made a request this recently counts as watching now
STATES = ("running", "processing", "paused", "stopped", "error")


@dataclass(frozen=True)
class Status:
    """One look at everything the tray and the dashboard show."""

    state: str = "stopped"  # one of STATES
    server: bool = False
    paused: bool = False
    urls: list[str] = field(default_factory=list)
    error: str | None = None
    counts: QueueCounts = field(default_factory=QueueCounts)
    jobs: list[JobView] = field(default_factory=list)
    devices_signed_in: int = 0
    viewers_online: list[str] = field(default_factory=list)
    usage: Usage | None = None
    waiting: str | None = None  # why imports wait (a full disk)
    backup_warning: str | None = None  # why the backups need the owner's eye (stale, failing)

    @property
    def pause_label(self) -> str:
        """What the pause button or menu item does now (the controller's toggle_pause)."""
        return "Resume Processing" if self.paused else "Pause Processing"

    @property
    def server_label(self) -> str:
        return "Stop Server" if self.server else "Start Server"

    @property
    def summary(self) -> str:
        """The tray's status line. A stale or failing backup turns the dot red, so it is said here when
        nothing more urgent is (a server problem, imports waiting for room)."""
        if self.state == "error" or not self.backup_warning or self.waiting:
            return self.state_line
        return self.backup_warning

    @property
    def state_line(self) -> str:
        """What Vault is doing (the Dashboard's headline; it shows backups on a line of their own)."""
        if self.state == "error":
            return f"Problem: {self.error}" if self.error else "Problem: the server is not running"
        if self.state == "stopped":
            return "Server stopped"
        active = self.counts.active
        if self.state == "paused":
            return f"Processing paused ({active} waiting)" if active else "Processing paused"
        if self.waiting:  # nothing is taken until there is room: say so instead of "processing"
            return self.waiting
        if self.state == "processing":
            return f"Processing {active} file{'s' if active != 1 else ''}"
        return "Running"


def state_of(running: bool, server: bool, paused: bool, active: int, error: str | None) -> str:
    if error:
        return "error"
    if not running or not server:
        return "stopped"
    if paused:
        return "paused"
    return "processing" if active else "running"


class VaultController(QObject):
    status_changed = Signal(object)  # Status
    notify = Signal(str, str)  # title, message: a batch finished, a file failed
    message = Signal(str)  # something the owner should read now (e.g. "restarting on port 1028")
    failed = Signal(str)  # an action failed; the text is the service's own message
    started = Signal()
    start_failed = Signal(str)
    stopped = Signal()
    settings_changed = Signal(object)  # Settings
    library_changed = Signal()
    backup_changed = Signal(object)  # BackupState: a scheduled backup started, made progress or ended
    progress = Signal(str, object)  # (operation, Progress) of a "verify", "deep check" or "restore"
    restored = Signal(object)  # RestoreResult: the controller now runs on the restored data folder
    restore_failed = Signal(str)  # the restore's own message; the data folder holds no restored library
    _job_event = Signal(str, object)  # from worker threads; queued to the UI thread
    _settings_event = Signal(object, object)
    _backup_event = Signal(object)  # from the backup schedule's thread
    _progress_event = Signal(str, object)  # from pool threads

    def __init__(self, paths: AppPaths, services: Services | None = None, *, host: str | None = None,
                 port: int | None = None, mdns_interfaces: list[str] | None = None, poll_ms: int = 1000,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.paths = paths
        self.tasks = Tasks(self)
        self._mdns_interfaces = mdns_interfaces
        self._listen = (host, port)
        self.status = Status()
        self._polling = False
        self._batch_done = self._batch_failed = self._batch_duplicates = 0
        self._job_event.connect(self._on_job_event)
        self._settings_event.connect(self._on_settings_event)
        self._backup_event.connect(self._on_backup_event)
        self._progress_event.connect(self._on_progress_event)
        self._attach(services or open_services(paths))
        self._timer = QTimer(self)
        self._timer.setInterval(poll_ms)
        self._timer.timeout.connect(self.refresh)

    # --- background work ---------------------------------------------------------------------------------

    def run(self, fn: Callable[[], Any], done: Done | None = None, failed: Failed | None = None) -> None:
        """Do `fn` off the UI thread; `done(result)` or `failed(message)` (default: the `failed` signal)."""
        self.tasks.run(fn, done, failed or self.failed.emit)

    def _attach(self, services: Services) -> None:
        """Run on `services`, with a runtime of their own, and hear what happens in both."""
        self.services = services
        self.runtime = VaultRuntime(self.paths, services, mdns_interfaces=self._mdns_interfaces)
        self.runtime.on_job_event(lambda event, job: self._job_event.emit(event, job))
        self.runtime.on_backup_event(self._backup_event.emit)
        services.settings.subscribe(lambda old, new: self._settings_event.emit(old, new))

    @property
    def settings(self) -> Settings:
        """The settings in force (in memory: cheap on the UI thread)."""
        return self.services.settings.current

    # --- life cycle --------------------------------------------------------------------------------------

    @property
    def needs_setup(self) -> bool:
        """True until an owner (admin) account exists: the first-run wizard then comes first."""
        return not any(u.role == "admin" for u in self.services.users.list())

    def start(self) -> None:
        host, port = self._listen

        def begin() -> None:
            self.runtime.start(serve=True, host=host, port=port, keep_going=True)

        def started(_: Any) -> None:
            self._timer.start()
            self.started.emit()
            self.refresh()

        def not_started(message: str) -> None:
            self.status = Status(state="error", error=message)
            self.status_changed.emit(self.status)
            self.start_failed.emit(message)

        self.run(begin, started, not_started)

    def shutdown(self) -> None:
        """Stop everything (blocking: used on Quit, when the UI has nothing more to draw)."""
        self._timer.stop()
        self.tasks.wait()
        self.runtime.close()
        self.stopped.emit()

    def start_server(self) -> None:
        self.run(self.runtime.start_server, lambda _: self.refresh())

    def stop_server(self) -> None:
        self.run(self.runtime.stop_server, lambda _: self.refresh())

    def pause(self) -> None:
        self.runtime.pause()
        self.refresh()

    def resume(self) -> None:
        self.runtime.resume()
        self.refresh()

    def toggle_pause(self) -> None:
        (self.resume if self.status.paused else self.pause)()

    def toggle_server(self) -> None:
        (self.stop_server if self.status.server else self.start_server)()

    @property
    def import_folder(self) -> Path:
        return self.runtime.import_folder

    def import_files(self, files: list[Path], done: Done | None = None) -> None:
        self.run(lambda: self.runtime.import_files(files), done)

    # --- backups: the schedule's state, Back Up Now, verify, and restoring (the first-run wizard) ----------

    def backup_state(self) -> BackupState:
        return self.runtime.backup_state()

    def back_up_now(self) -> bool:
        """Start a backup to the settings' folder now; False when one runs already, no folder is set or
        Vault is not running. Its progress and outcome arrive as `backup_changed`."""
        return self.runtime.back_up_now()

    @Slot(object)
    def _on_backup_event(self, state: BackupState) -> None:
        self.backup_changed.emit(state)
        self.refresh()  # the tray's dot and status line follow at once

    @Slot(str, object)
    def _on_progress_event(self, operation: str, progress: Progress) -> None:
        self.progress.emit(operation, progress)

    def _reporter(self, operation: str) -> ThrottledProgress:
        return ThrottledProgress(lambda progress: self._progress_event.emit(operation, progress))

    def verify_backup(self, done: Done, failed: Failed | None = None, phrase: str | None = None) -> None:
        """Check every file of the newest snapshot in the backup folder against its manifest (`progress`
        "verify"); with the recovery key's `phrase`, then decrypt every item ("deep check"). `done` gets
        (VerifyReport, problems: list[str] | None); the outcome is audited as backup_verified."""
        folder, audit = self.settings.backup_dir.strip(), self.services.audit

        def work() -> tuple[VerifyReport, list[str] | None]:
            if not folder:
                raise ValidationError("Choose a backup folder first")
            target = Path(folder).expanduser()
            report = verify_files(target, None, self._reporter("verify"))
            problems = None
            if report.ok and phrase is not None:
                problems = check_backup_items(target, phrase, report.snapshot, self._reporter("deep check"))
            record_verification(audit, target, report.snapshot, len(report.problems), problems)
            return report, problems

        self.run(work, done, failed)

    def read_backup(self, target: Path, done: Done, failed: Failed) -> None:
        """The complete snapshots in `target`, newest first (list[SnapshotInfo]), or why it is no backup."""
        self.run(lambda: read_backup_folder(target), done, failed)

    def check_backup_key(self, target: Path, phrase: str, snapshot: str | None, done: Done,
                         failed: Failed) -> None:
        """Whether the phrase opens that snapshot's keys; nothing is written."""
        self.run(lambda: check_backup_key(target, phrase, snapshot), done, failed)

    def restore_from_backup(self, target: Path, phrase: str, snapshot: str | None = None) -> None:
        """Rebuild this data folder from a backup, before Vault has started on it (the first-run wizard).
        The services let go of the folder, the restore runs on a pool thread (`progress` "restore"), then
        new services and a new runtime open on the folder, restored or as it was; `settings_changed` and
        `library_changed` follow, then `restored(RestoreResult)` or `restore_failed(message)`."""
        if self.runtime.running:
            self.restore_failed.emit("Vault is already running on this data folder: restore into a new one")
            return
        paths, report = self.paths, self._reporter("restore")
        self.services.close()  # the restore replaces vault.db: no connection may stay open on the old one

        def work() -> tuple[RestoreResult | None, str, Services]:
            try:
                result, error = restore(Path(target).expanduser(), paths, phrase, report, snapshot), ""
            except Exception as exc:  # told to the owner, and the folder is opened again as it is
                if not isinstance(exc, VaultError):
                    log.exception("The restore failed")
                result, error = None, describe_error(exc)
            return result, error, open_services(paths)

        def reopened(outcome: tuple[RestoreResult | None, str, Services]) -> None:
            result, error, services = outcome
            self._attach(services)
            self.settings_changed.emit(services.settings.current)
            self.library_changed.emit()
            self.backup_changed.emit(self.runtime.backup_state())
            if result is None:
                self.restore_failed.emit(error)
            else:
                self.restored.emit(result)

        self.run(work, reopened, self.restore_failed.emit)

    # --- the certificate (blocking: run them through `run` or a tab's `load`) -----------------------------

    def certificate(self) -> CertificateDetails:
        return self.runtime.certificate()

    def reissue_certificate(self) -> CertificateDetails:
        """A new certificate; the server restarts with it at once (as after `vaultserver cert regenerate`)."""
        return self.runtime.reissue_certificate()

    # --- settings ----------------------------------------------------------------------------------------

    def update_settings(self, changes: dict[str, Any], done: Done | None = None,
                        failed: Failed | None = None) -> None:
        self.run(lambda: self.services.settings.update(**changes), done, failed)

    @Slot(object, object)
    def _on_settings_event(self, old: Settings, new: Settings) -> None:
        if self.runtime.restarts_listener(old, new):
            self.message.emit(f"Restarting the server on port {new.port}; open pages reconnect by "
                              "themselves.")
        self.settings_changed.emit(new)

    # --- status ------------------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Take a fresh look (on a pool thread); skipped while the previous look is still under way."""
        if self._polling:
            return
        self._polling = True
        self.run(self._look, self._looked, self._look_failed)

    def _look(self) -> Status:
        runtime, services = self.runtime, self.services
        health = runtime.health()
        jobs = services.queue.snapshot(recent=20)
        sessions = services.sessions.list()
        since = datetime.now(UTC) - timedelta(minutes=ONLINE_MINUTES)
        online = sorted({s.username for s in sessions if _aware(s.last_activity_at) >= since})
        state = state_of(health.running, health.server, health.paused, health.queue_active, health.error)
        return Status(state, health.server, health.paused, list(health.urls), health.error, health.queue,
                      jobs, len(sessions), online, services.library.usage(), health.waiting,
                      health.backup_warning)

    def _looked(self, status: Status) -> None:
        self._polling = False
        self.status = status
        self.status_changed.emit(status)
        self._batch_finished(status.counts)

    def _look_failed(self, message: str) -> None:
        self._polling = False
        log.warning("Status check failed: %s", message)

    @Slot(str, object)
    def _on_job_event(self, event: str, job: JobView) -> None:
        if event == "failed":
            self._batch_failed += 1
            self.notify.emit("A file could not be imported",
                             f"{job.original_name}: {job.error or 'unknown error'}. It was moved to the "
                             "failed folder, unchanged.")
        elif event == "done":
            self._batch_done += 1
            self.library_changed.emit()
        elif event == "duplicate":
            self._batch_duplicates += 1
        self.refresh()

    def _batch_finished(self, counts: QueueCounts) -> None:
        """One notification per batch: when the queue runs empty after files were handled."""
        done, failed, duplicates = self._batch_done, self._batch_failed, self._batch_duplicates
        if counts.active or not (done or failed or duplicates):
            return
        self._batch_done = self._batch_failed = self._batch_duplicates = 0
        parts = [f"{done} file{'s' if done != 1 else ''} added to the library"]
        parts += [f"{duplicates} already there"] if duplicates else []
        parts += [f"{failed} failed"] if failed else []
        self.notify.emit("Import finished", ", ".join(parts) + ".")


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
