"""Scheduled backups: the runtime runs the backup command as a background-priority child process when one is
due, shows its progress and outcome, waits quietly for an unplugged disk, warns when backups fail or go stale,
and kills a running backup when Vault stops.

The child here is a real process standing in for `vaultserver backup --progress-json`: it speaks the same
lines (progress objects, then a result; or `error [CODE]: …` on stderr and exit 1).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import wait_for
from vaultserver.background import BACKGROUND_NICE, lower_priority
from vaultserver.backup.schedule import BackupSchedule, backup_command
from vaultserver.backup.status import failure_reason, missing_reason, volume_of
from vaultserver.db.models import AccessLog, utcnow
from vaultserver.runtime import BackupState, VaultRuntime

STAND_IN = r'''
import json, os, subprocess, sys, time
root, target, mode, marks = sys.argv[1:5]

def mark(name, value):
    with open(os.path.join(marks, name + ".tmp"), "w") as fh:
        fh.write(str(value))
    os.replace(os.path.join(marks, name + ".tmp"), os.path.join(marks, name))

def say(**message):
    print(json.dumps(message), flush=True)

mark("child.pid", os.getpid())
if mode == "fail":
    print("Backing up...", file=sys.stderr)
    print("error [SYSTEM_001]: The backup disk is full", file=sys.stderr)
    sys.exit(1)
if mode == "fail-recorded":  # as the real command does: it records its own failure
    from pathlib import Path
    from vaultserver.config import AppPaths
    from vaultserver.services import open_services
    from vaultserver.services.audit import AuditEvent
    services = open_services(AppPaths(Path(root)))
    services.audit.record(AuditEvent("backup_failed", outcome="failed",
                                     details={"target": target, "reason": "the writer's own words"}))
    print("error [SYSTEM_001]: the writer's own words", file=sys.stderr)
    sys.exit(1)
if mode == "slow":
    grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    mark("grandchild.pid", grandchild.pid)
    say(progress=dict(phase="Copying library files", done_bytes=0, total_bytes=100, done_files=0,
                      total_files=1))
    time.sleep(120)
    sys.exit(0)
for i in range(1, 4):
    say(progress=dict(phase="Copying library files", done_bytes=i * 100, total_bytes=300, done_files=i,
                      total_files=3))
    time.sleep(0.05)
print("Copied 3 files", flush=True)
say(result=dict(target=target, snapshot="20250101T000000Z", items=3, files_copied=3, bytes_copied=300,
                files_total=3, bytes_total=300, seconds=0.2))
'''


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    try:  # a zombie nobody has reaped yet has ended all the same
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return not sys.platform.startswith("linux")


def nice_of(pid: int) -> int:
    """Field 19 of /proc/<pid>/stat (fields counted from 1; the name in parentheses may hold spaces)."""
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19 - 3])


class StandIn:
    """The stand-in backup command and the marks it leaves (its pid, its child's pid) in `marks`."""

    def __init__(self, folder: Path, mode: str = "ok") -> None:
        self.marks = folder / "marks"
        self.marks.mkdir(parents=True, exist_ok=True)
        self.script = folder / "stand_in_backup.py"
        self.script.write_text(STAND_IN)
        self.mode = mode

    def __call__(self, root: Path, target: str) -> list[str]:
        return [sys.executable, str(self.script), str(root), target, self.mode, str(self.marks)]

    def pid(self, name: str = "child.pid") -> int:
        path = self.marks / name
        return int(wait_for(lambda: path.exists() and path.read_text()))

    @property
    def ran(self) -> bool:
        return (self.marks / "child.pid").exists()


@pytest.fixture
def target(tmp_path: Path) -> Path:
    folder = tmp_path / "backup-disk" / "Vault Backups"
    folder.mkdir(parents=True)
    return folder


@pytest.fixture
def make_schedule(services, tmp_path):
    made: list[BackupSchedule] = []

    def make(mode: str = "ok", **settings) -> tuple[BackupSchedule, StandIn]:
        services.settings.update(**settings)
        stand_in = StandIn(tmp_path / mode, mode)
        schedule = BackupSchedule(services, command=stand_in)
        schedule.check_seconds, schedule.event_seconds = 0.2, 0.0
        made.append(schedule)
        return schedule, stand_in
    yield make
    for schedule in made:
        schedule.stop()


def audit_rows(services, event: str):
    return services.audit.recent(event=event)


def backed_up(services, target: Path, days_ago: float, event: str = "backup_completed", **details) -> None:
    """An audit row from the past, as a backup `days_ago` would have left it."""
    with services.db.session() as session:
        session.add(AccessLog(event=event, timestamp=utcnow() - timedelta(days=days_ago),
                              details={"target": str(target), "snapshot": "20240101T000000Z", **details}))


def test_a_due_backup_runs_and_its_progress_then_its_success_are_shown(make_schedule, services, target):
    schedule, _ = make_schedule(backup_dir=str(target))
    heard: list[BackupState] = []
    schedule.subscribe(heard.append)
    schedule.start()
    state = wait_for(lambda: schedule.state().last_success_at and schedule.state())
    assert not state.running and state.last_snapshot == "20250101T000000Z"
    assert state.warning is None and state.last_error is None
    assert state.next_due_at == state.last_success_at + timedelta(hours=24)
    progress = [s.progress for s in heard if s.running and s.progress]
    assert [p.done_files for p in progress] == [1, 2, 3] and progress[-1].fraction == 1.0
    assert heard[-1] == state
    rows = audit_rows(services, "backup_completed")
    assert len(rows) == 1 and rows[0].details["target"] == str(target)
    assert rows[0].details["bytes_copied"] == 300


def test_a_backup_made_recently_is_not_run_again_until_it_is_due(make_schedule, services, target):
    backed_up(services, target, days_ago=0.5)
    schedule, stand_in = make_schedule(backup_dir=str(target))
    schedule.start()
    state = wait_for(lambda: schedule.state().last_success_at and schedule.state())
    time.sleep(0.5)
    assert not stand_in.ran and state.next_due_at > datetime.now(UTC) + timedelta(hours=11)


def test_a_missing_backup_disk_is_waited_for_quietly_then_backed_up_to_once_it_is_back(
        make_schedule, services, tmp_path):
    target = tmp_path / "unplugged" / "Vault Backups"
    schedule, stand_in = make_schedule(backup_dir=str(target))
    schedule.start()
    state = wait_for(lambda: schedule.state().waiting_reason and schedule.state())
    assert "not found" in state.waiting_reason and not state.running
    assert state.warning.startswith("No backup has been made yet")
    assert schedule.back_up_now()  # asked while the disk is away: the state says why nothing happens
    time.sleep(1.0)
    assert not stand_in.ran and audit_rows(services, "backup_failed") == []
    target.mkdir(parents=True)  # the disk is plugged back in
    state = wait_for(lambda: schedule.state().last_success_at and schedule.state())
    assert state.waiting_reason is None and state.warning is None


def test_a_folder_on_an_absent_volume_reads_as_a_disk_not_connected(tmp_path):
    assert missing_reason(Path("/Volumes/Vault-Test-Disk-That-Is-Not-There/Backups")) == \
        "Backup disk not connected (Vault-Test-Disk-That-Is-Not-There)"
    assert missing_reason(tmp_path / "gone").startswith("Backup folder not found")
    assert missing_reason(tmp_path) is None
    # The same disks the backup writer refuses to create a folder on unless they are mounted.
    assert volume_of(Path("/Volumes/Disk/Vault Backups/x")) == Path("/Volumes/Disk")
    assert volume_of(Path("/media/ann/Disk/Vault")) == Path("/media/ann/Disk")
    assert volume_of(tmp_path / "Volumes" / "Disk") is None


def test_a_failed_backup_warns_with_its_reason_and_is_retried_later(make_schedule, services, target):
    schedule, _ = make_schedule("fail", backup_dir=str(target))
    schedule.start()
    state = wait_for(lambda: schedule.state().last_error and schedule.state())
    assert state.last_error == "The backup disk is full" and not state.running
    assert state.warning == "The last backup failed: The backup disk is full"
    assert state.next_due_at == state.last_error_at + timedelta(seconds=schedule.first_retry_seconds)
    [row] = audit_rows(services, "backup_failed")
    assert row.outcome == "failed"
    assert row.details == {"target": str(target), "reason": "The backup disk is full"}


def test_a_failure_the_backup_command_recorded_itself_is_not_recorded_twice(make_schedule, services, target):
    schedule, _ = make_schedule("fail-recorded", backup_dir=str(target))
    schedule.start()
    state = wait_for(lambda: schedule.state().last_error and schedule.state(), timeout=60)
    assert state.last_error == "the writer's own words"
    assert len(audit_rows(services, "backup_failed")) == 1


def test_a_success_after_a_failure_clears_the_warning(make_schedule, services, target):
    backed_up(services, target, days_ago=2, event="backup_failed", reason="disk unplugged during the backup")
    schedule, _ = make_schedule(backup_dir=str(target))
    schedule.start()
    state = wait_for(lambda: schedule.state().last_success_at and schedule.state())
    assert state.warning is None and state.last_error is None


def test_the_reason_is_the_commands_error_line_else_its_last_words():
    details = "error [SYSTEM_001]: Make a recovery key first\n{\n  \"target\": \"/x\"\n}\n"
    assert failure_reason(details, 1) == "Make a recovery key first"
    assert failure_reason("Traceback ...\nMemoryError\n", 1) == "MemoryError"
    assert failure_reason("", -9) == "the backup process was stopped by signal 9"


@pytest.fixture
def runtime(paths, services):
    services.settings.update(rescan_seconds=3600)
    runtime = VaultRuntime(paths, services)
    runtime.backups.check_seconds, runtime.backups.event_seconds = 0.2, 0.0
    yield runtime
    runtime.stop()


def test_a_backup_older_than_three_days_turns_the_health_warning_on(runtime, services, target):
    backed_up(services, target, days_ago=4)
    services.settings.update(backup_dir=str(target), backup_every_hours=168)  # so not due yet
    runtime.start(serve=False)
    warning = wait_for(lambda: runtime.health().backup_warning)
    assert warning == "The last good backup is 4 days old"
    assert runtime.backup_state().last_snapshot == "20240101T000000Z"


def test_a_backup_two_days_old_or_no_backup_folder_gives_no_warning(runtime, services, target):
    backed_up(services, target, days_ago=2)
    runtime.start(serve=False)
    time.sleep(0.5)
    assert runtime.health().backup_warning is None and runtime.backup_state() == BackupState()
    services.settings.update(backup_dir=str(target), backup_every_hours=168)
    state = wait_for(lambda: runtime.backup_state().last_success_at and runtime.backup_state())
    assert state.warning is None and runtime.health().backup_warning is None


def test_back_up_now_while_a_backup_runs_returns_false(runtime, services, target, tmp_path):
    backed_up(services, target, days_ago=0.1)
    runtime.backups.command = stand_in = StandIn(tmp_path, "slow")
    services.settings.update(backup_dir=str(target))
    assert not runtime.back_up_now()  # not started: nothing runs backups
    runtime.start(serve=False)
    wait_for(lambda: runtime.backup_state().last_success_at)
    assert not stand_in.ran
    assert runtime.back_up_now()
    state = wait_for(lambda: runtime.backup_state().progress and runtime.backup_state())
    assert state.running and state.progress.phase == "Copying library files"
    assert not runtime.back_up_now()


def test_stopping_vault_kills_the_running_backup_and_what_it_started(runtime, services, target, tmp_path):
    runtime.backups.command = stand_in = StandIn(tmp_path, "slow")
    heard: list[BackupState] = []
    runtime.on_backup_event(heard.append)
    services.settings.update(backup_dir=str(target))
    runtime.start(serve=False)
    child, grandchild = stand_in.pid(), stand_in.pid("grandchild.pid")
    wait_for(lambda: runtime.backup_state().running)
    started = time.monotonic()
    runtime.stop()
    assert time.monotonic() - started < 10
    wait_for(lambda: not alive(child) and not alive(grandchild), timeout=10)
    assert audit_rows(services, "backup_failed") == [] and audit_rows(services, "backup_completed") == []
    assert any(s.running for s in heard)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_the_backup_runs_at_the_lowest_cpu_priority(runtime, services, target, tmp_path):
    runtime.backups.command = stand_in = StandIn(tmp_path, "slow")
    services.settings.update(backup_dir=str(target))
    runtime.start(serve=False)
    assert nice_of(stand_in.pid()) == BACKGROUND_NICE
    assert nice_of(stand_in.pid("grandchild.pid")) == BACKGROUND_NICE  # what it starts inherits it
    assert os.getpriority(os.PRIO_PROCESS, 0) != BACKGROUND_NICE  # Vault itself is untouched


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_lower_priority_puts_a_child_at_nice_19_and_idle_disk_priority():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], preexec_fn=lower_priority)
    try:
        assert nice_of(child.pid) == BACKGROUND_NICE
        if ionice := shutil.which("ionice"):  # util-linux; not everywhere
            shown = subprocess.run([ionice, "-p", str(child.pid)], capture_output=True, text=True).stdout
            assert shown.strip() == "idle"
    finally:
        child.kill()
        child.wait()


def test_the_scheduled_command_is_the_command_line_run_by_this_interpreter(tmp_path):
    command = backup_command(tmp_path, "/Volumes/Disk/Vault Backups")
    assert command == [sys.executable, "-m", "vaultserver", "--data-dir", str(tmp_path), "backup",
                       "/Volumes/Disk/Vault Backups", "--progress-json"]
    shown = subprocess.run([sys.executable, "-m", "vaultserver", "--version"], capture_output=True, text=True,
                           check=True)
    assert shown.stdout.strip()


def test_the_real_backup_command_runs_on_schedule_and_its_snapshot_verifies(services, media, target):
    """No stand-in: the schedule runs `vaultserver backup --progress-json` as a background child."""
    from vaultserver.backup.layout import BackupFolder
    from vaultserver.backup.verify import verify_files
    from vaultserver.pipeline import Pipeline

    imports = services.settings.current.import_path(services.paths)
    imports.mkdir(parents=True, exist_ok=True)
    media.copy_into(media.image("scheduled.png", size=(96, 64)), imports)
    assert Pipeline(services).process_once(timeout=120)
    services.keys.new_recovery_key("owner")
    services.settings.update(backup_dir=str(target))
    schedule = BackupSchedule(services)
    schedule.check_seconds, schedule.event_seconds = 0.2, 0.0
    heard: list[BackupState] = []
    schedule.subscribe(heard.append)
    try:
        schedule.start()
        state = wait_for(lambda: (s := schedule.state()).last_success_at and not s.running and s, timeout=120)
    finally:
        schedule.stop()
    assert state.warning is None and state.last_error is None
    assert [p.name for p in BackupFolder(target).complete_snapshots()] == [state.last_snapshot]
    assert verify_files(target).ok
    assert any(s.progress and s.progress.total_files for s in heard)
    completed = audit_rows(services, "backup_completed")
    assert len(completed) == 1 and completed[0].details["items"] == 1
