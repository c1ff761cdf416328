"""The backup schedule the runtime owns: backs up to the settings' `backup_dir` every `backup_every_hours`.

Each backup is the command line's own `backup` run as a child process at background priority
(`vaultserver.background`), one at a time, its `--progress-json` lines read as it goes: a backup never
shares the server's interpreter, its memory or its GIL, a crash in it costs the server nothing, and stopping
Vault kills its whole process group (the backup format keeps the previous backup whole). The child records
its outcome in the audit log; when it could not (it crashed, or never started), the schedule records it.

A target that is not there (disk unplugged, share not mounted) is waited for quietly: nothing is recorded,
and the folder is looked at again every minute or so. A failed run is retried later, waiting longer after
each failure in a row. The state is one frozen `BackupState`, kept in memory, so reading it is cheap from
any thread; listeners hear it on the schedule's thread as it changes (progress at most a few times a second).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import fields, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from vaultserver.background import lower_priority, own_command
from vaultserver.backup.status import (
    COMPLETED,
    FAILED,
    BackupHistory,
    BackupState,
    failure_reason,
    missing_reason,
    read_history,
)
from vaultserver.progress import Progress
from vaultserver.services import Services
from vaultserver.services.audit import AuditEvent

log = logging.getLogger(__name__)

BackupListener = Callable[[BackupState], None]
"""Hears the new `BackupState` as a backup starts, makes progress and ends (on the schedule's thread)."""

BackupCommand = Callable[[Path, str], list[str]]
"""The command line that backs data folder `root` up to folder `target`."""

CHECK_SECONDS = 60.0  # how often the schedule looks: whether a backup is due, whether the disk is back
FIRST_RETRY_SECONDS = 600.0  # after a failure; doubled for each further failure in a row
KILL_GRACE_SECONDS = 3.0
PROGRESS_FIELDS = {f.name for f in fields(Progress)}


def backup_command(root: Path, target: str) -> list[str]:
    """`vaultserver --data-dir ROOT backup TARGET --progress-json` with the interpreter (or the packaged app)
    that runs this Vault, so the child runs the same code."""
    return own_command("--data-dir", str(root), "backup", target, "--progress-json")


class BackupSchedule:
    """Runs due backups on a thread of its own between `start()` and `stop()`."""

    def __init__(self, services: Services, command: BackupCommand = backup_command) -> None:
        self.services = services
        self.command = command
        self.check_seconds = CHECK_SECONDS
        self.first_retry_seconds = FIRST_RETRY_SECONDS
        self.event_seconds = 0.25  # progress is passed on at most this often
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._process: subprocess.Popen[str] | None = None
        self._requested = False
        self._failures = 0  # in a row, for the wait before the next try
        self._state = BackupState()
        self._listeners: list[BackupListener] = []
        self._last_event = 0.0
        services.settings.subscribe(self._settings_changed)

    # --- the front ends' side (any thread) --------------------------------------------------------------

    def start(self) -> None:
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stopping.clear()
            self._thread = threading.Thread(target=self._run, name="vault-backups", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop looking, and kill a backup under way (its whole process group)."""
        with self._lock:
            self._stopping.set()
            process, thread = self._process, self._thread
        self._wake.set()
        if process is not None:
            _kill_group(process)
        if thread is not None:
            thread.join(KILL_GRACE_SECONDS * 3)

    def state(self) -> BackupState:
        with self._lock:
            return self._state

    def back_up_now(self) -> bool:
        """Start a backup now rather than when due. False when one is already running or asked for, when
        there is no backup folder set, or when the schedule is not running."""
        with self._lock:
            alive = self._thread is not None and self._thread.is_alive() and not self._stopping.is_set()
            if not alive or self._process is not None or self._requested or not self._target():
                return False
            self._requested = True
        self._wake.set()
        return True

    def subscribe(self, listener: BackupListener) -> Callable[[], None]:
        """Call `listener` with each new state; returns what unsubscribes it."""
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)
        return unsubscribe

    def _settings_changed(self, old: Any, new: Any) -> None:
        if (old.backup_dir, old.backup_every_hours) != (new.backup_dir, new.backup_every_hours):
            self._failures = 0  # a new folder or interval starts a fresh count
            self._wake.set()

    def _target(self) -> str:
        return self.services.settings.current.backup_dir.strip()

    # --- the schedule's thread -------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                self._look()
            except Exception:  # the schedule must outlive any one bad look (a locked database, say)
                log.exception("Checking the backup schedule failed")
            self._wake.wait(self.check_seconds)

    def _look(self) -> None:
        target = self._target()
        history = read_history(self.services.audit, target)
        if not target:
            with self._lock:
                self._requested = False
            self._publish(BackupState())
            return
        waiting = missing_reason(Path(target))
        due_at = self._due_at(history)
        with self._lock:
            requested = self._requested
            if waiting:
                self._requested = False  # the state says why; the schedule runs it once the disk is back
        self._publish(self._state_of(target, history, due_at, waiting))
        if waiting or not (requested or datetime.now(UTC) >= due_at):
            return
        self._back_up(target)

    def _due_at(self, history: BackupHistory) -> datetime:
        now = datetime.now(UTC)
        every = timedelta(hours=self.services.settings.current.backup_every_hours)
        due = history.last_success_at + every if history.last_success_at else now
        if history.last_error_at is not None:
            tries = max(self._failures, 1)  # a failure from before a restart counts as one
            wait = min(self.first_retry_seconds * 2 ** (tries - 1), every.total_seconds())
            due = max(due, history.last_error_at + timedelta(seconds=wait))
        return due

    @staticmethod
    def _state_of(target: str, history: BackupHistory, due_at: datetime | None,
                  waiting: str | None = None) -> BackupState:
        return BackupState(target, False, None, history.last_success_at, history.last_snapshot,
                           history.last_error, history.last_error_at, due_at, waiting)

    def _back_up(self, target: str) -> None:
        """One backup run, start to end, on this thread."""
        recorded = (self._latest_id(COMPLETED), self._latest_id(FAILED))
        with tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace") as errors:
            with self._lock:
                if self._stopping.is_set():
                    return
                self._requested = False
                try:
                    self._process = self._spawn(target, errors)
                except OSError as exc:
                    self._process = None
                    start_error = f"the backup could not start: {exc}"
                process = self._process
            if process is None:
                self._finish(target, None, 127, start_error, recorded)
                return
            log.info("Backing up to %s (pid %d)", target, process.pid)
            self._publish(replace(self.state(), running=True, progress=None, waiting_reason=None), force=True)
            result = self._follow(process)
            returncode = process.wait()
            with self._lock:
                self._process = None
                if self._stopping.is_set():  # stopped on purpose: not a failure, and the next start goes on
                    log.info("Backup to %s stopped with Vault", target)
                    return
            errors.seek(0)
            reason = failure_reason(errors.read(), returncode) if returncode else None
        self._finish(target, result, returncode, reason, recorded)

    def _spawn(self, target: str, errors: Any) -> subprocess.Popen[str]:
        # A child Python writing into a pipe buffers its lines unless told not to: progress would come late.
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        return subprocess.Popen(self.command(self.services.paths.root, target), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=errors, text=True, encoding="utf-8",
                                errors="replace", env=env, preexec_fn=lower_priority,
                                start_new_session=True)

    def _follow(self, process: subprocess.Popen[str]) -> dict[str, Any] | None:
        """Read the child's progress lines until it ends; returns its result object, if it printed one."""
        result = None
        assert process.stdout is not None
        for line in process.stdout:
            try:
                message = json.loads(line)
            except ValueError:
                continue  # anything else it prints is for people, not for the schedule
            if not isinstance(message, dict):
                continue
            if isinstance(message.get("progress"), dict):
                values = {k: v for k, v in message["progress"].items() if k in PROGRESS_FIELDS}
                progress = Progress(**{"phase": "", **values})
                self._publish(replace(self.state(), running=True, progress=progress))
            elif isinstance(message.get("result"), dict):
                result = message["result"]
        return result

    def _finish(self, target: str, result: dict[str, Any] | None, returncode: int, reason: str | None,
                recorded: tuple[int | None, int | None]) -> None:
        """Record what the child could not, and read the outcome back from the audit log."""
        audit = self.services.audit
        if returncode == 0:
            self._failures = 0
            if self._latest_id(COMPLETED) == recorded[0]:
                audit.record(AuditEvent(COMPLETED, details={**(result or {}), "target": target}))
            log.info("Backup to %s done", target)
        else:
            self._failures += 1
            if self._latest_id(FAILED) == recorded[1]:
                audit.record(AuditEvent(FAILED, outcome="failed",
                                        details={"target": target, "reason": reason}))
            log.warning("Backup to %s failed: %s", target, reason)
        history = read_history(audit, target)
        self._publish(self._state_of(target, history, self._due_at(history)), force=True)

    def _latest_id(self, event: str) -> int | None:
        entry = self.services.audit.latest(event)
        return entry.id if entry else None

    def _publish(self, state: BackupState, force: bool = False) -> None:
        """Keep `state` as the current one and tell the listeners: progress at most every `event_seconds`,
        anything else whenever it changes."""
        with self._lock:
            changed = state != self._state
            self._state = state
            now = time.monotonic()
            if not changed or (not force and state.running and now - self._last_event < self.event_seconds):
                return
            self._last_event = now
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(state)
            except Exception:
                log.exception("A backup listener failed")


def _kill_group(process: subprocess.Popen[str]) -> None:
    """End the child and anything it started: politely, then for certain."""
    for sig, grace in ((signal.SIGTERM, KILL_GRACE_SECONDS), (signal.SIGKILL, None)):
        try:
            os.killpg(process.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        try:
            process.wait(grace)
            return
        except subprocess.TimeoutExpired:
            continue
