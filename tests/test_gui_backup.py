"""Backups in the menu-bar app (pytest-qt, offscreen): the Storage tab's Backups group, the Dashboard's Backup
line, the tray's red dot and status line, and the first-run wizard's restore.

All on real parts: a small library converted by the real pipeline, real backups written by the backup writer
(and, for Back Up Now, by the backup command the runtime runs), the real verify, deep check and restore.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

pytest.importorskip("PySide6.QtWidgets", reason="PySide6 is a dependency: `make test` installs it")

from PySide6.QtWidgets import QWizard  # noqa: E402

from gui.app import VaultApp  # noqa: E402
from gui.backups import backup_age, backup_line  # noqa: E402
from gui.controller import Status, VaultController  # noqa: E402
from gui.icons import state_pixmap  # noqa: E402
from gui.restore_pages import AFTER_RESTORE  # noqa: E402
from gui.tabs.backups import NO_RECOVERY_KEY  # noqa: E402
from gui.tray import TrayMenu  # noqa: E402
from gui.window import AdminWindow  # noqa: E402
from gui.wizard import PAGES  # noqa: E402
from tests.conftest import OWNER, OWNER_PASSWORD, VIEWER, make_paths  # noqa: E402
from tests.support import Seed, seed_data_folder  # noqa: E402
from vaultserver.backup.layout import BackupFolder  # noqa: E402
from vaultserver.backup.writer import back_up  # noqa: E402
from vaultserver.config import AppPaths  # noqa: E402
from vaultserver.crypto.recovery import new_phrase  # noqa: E402
from vaultserver.db.models import AccessLog, utcnow  # noqa: E402
from vaultserver.runtime import BackupState  # noqa: E402
from vaultserver.services import Services  # noqa: E402

PHOTOS = ("beach.jpg", "garden.jpg")


@pytest.fixture(scope="module")
def seed(tmp_path_factory: pytest.TempPathFactory, media) -> Seed:
    """Two photos, an owner and a viewer, a recovery key and a certificate authority."""
    paths = make_paths(tmp_path_factory.mktemp("gui-backup-seed"))
    photos = [(media.image(name, size=(400 + number, 300)), name) for number, name in enumerate(PHOTOS)]
    accounts = [(OWNER, OWNER_PASSWORD, "admin"), (VIEWER, "View3r!pass", "member")]
    return seed_data_folder(paths, photos, accounts)


@pytest.fixture
def vault(seed: Seed, tmp_path: Path) -> Iterator[Services]:
    services = seed.open_copy(tmp_path / "old-mac" / "vault")
    yield services
    services.close()


@pytest.fixture
def target(tmp_path: Path) -> Path:
    folder = tmp_path / "backup-disk" / "Vault Backup"
    folder.parent.mkdir()
    return folder


def started(qtbot, services: Services) -> VaultController:
    controller = VaultController(services.paths, services, host="127.0.0.1", port=0, poll_ms=100)
    controller.runtime.backups.event_seconds = 0.0  # every progress line reaches the app
    with qtbot.waitSignal(controller.started, timeout=30_000):
        controller.start()
    return controller


@pytest.fixture
def controller(qtbot, vault) -> Iterator[VaultController]:
    controller = started(qtbot, vault)
    yield controller
    controller.shutdown()


@pytest.fixture
def window(qtbot, controller) -> AdminWindow:
    win = AdminWindow(controller)
    qtbot.addWidget(win)
    win.show()
    return win


def backed_up(services: Services, target: Path, days_ago: float) -> None:
    """An audit row from the past, as a backup `days_ago` would have left it."""
    with services.db.session() as session:
        session.add(AccessLog(event="backup_completed", timestamp=utcnow() - timedelta(days=days_ago),
                              details={"target": str(target), "snapshot": "20240101T000000Z"}))


def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


# --- the Storage tab's Backups group ------------------------------------------------------------------------


def test_back_up_now_shows_its_progress_then_the_last_good_backup(qtbot, vault, target):
    first = back_up(vault, target).snapshot
    vault.settings.update(backup_dir=str(target))  # backed up just now: the next one is due tomorrow
    controller = started(qtbot, vault)
    try:
        window = AdminWindow(controller)
        qtbot.addWidget(window)
        window.show()
        box = window.show_tab("Storage").backups
        qtbot.waitUntil(lambda: f"snapshot {first}" in box.last_good.text(), timeout=30_000)
        qtbot.waitUntil(box.back_up_button.isEnabled, timeout=30_000)
        assert box.folder.text() == str(target) and not box.key_notice.isVisible()
        seen: list[tuple[bool, str]] = []
        controller.backup_changed.connect(
            lambda state: seen.append((box.backup_bar.isVisible(), box.backup_phase.text())))
        box.back_up_button.click()
        assert not box.back_up_button.isEnabled() and box.backup_bar.isVisible()
        second = BackupFolder(target)
        qtbot.waitUntil(lambda: len(second.complete_snapshots()) == 2
                        and f"snapshot {second.latest().name}" in box.last_good.text(), timeout=120_000)
        assert any(visible and "%" in phase for visible, phase in seen), seen
        assert not box.backup_bar.isVisible() and box.backup_phase.text() == "Backup finished."
        assert box.back_up_button.isEnabled() and not box.warning.isVisible()
    finally:
        controller.shutdown()


def test_verify_says_the_backup_is_intact_then_names_a_damaged_file(qtbot, controller, window, vault, seed,
                                                                     target):
    back_up(vault, target)
    box = window.show_tab("Storage").backups
    box.set_folder(str(target))
    qtbot.waitUntil(box.verify_button.isEnabled, timeout=30_000)
    box.verify_button.click()
    qtbot.waitUntil(lambda: not box.verifying, timeout=60_000)
    assert box.verify_result.text().startswith("Intact:")
    manifest = BackupFolder(target).read_manifest(BackupFolder(target).latest())
    assert f"{len(manifest.library) + len(manifest.snapshot)} files" in box.verify_result.text()
    assert not box.verify_bar.isVisible() and box.verify_button.isEnabled()

    box.verify(seed.phrase)  # what Verify with Recovery Key… does once the key is typed
    qtbot.waitUntil(lambda: not box.verifying, timeout=60_000)
    assert box.verify_result.text().endswith("and every item decrypts with the recovery key.")

    damaged = sorted(p for p in (target / "library").rglob("*") if p.is_file())[0]
    flip_a_byte(damaged)
    box.verify_button.click()
    qtbot.waitUntil(lambda: not box.verifying and "damaged" in box.verify_result.text(), timeout=60_000)
    assert f"{damaged.relative_to(target).as_posix()} (damaged)" in box.verify_result.text()
    assert "#b91c1c" in box.verify_result.styleSheet()
    outcomes = [entry.details["ok"] for entry in vault.audit.recent(event="backup_verified")]
    assert outcomes == [False, True, True]  # newest first


def test_the_deep_check_asks_for_a_well_formed_recovery_key(qtbot):
    from PySide6.QtWidgets import QDialogButtonBox

    from gui.tabs.backups import PhraseDialog

    dialog = PhraseDialog()
    qtbot.addWidget(dialog)
    ok = dialog.buttons.button(QDialogButtonBox.StandardButton.Ok)
    dialog.entry.text.setPlainText("abandon ability")
    assert not ok.isEnabled() and "24 words" in dialog.entry.status.text()
    dialog.entry.text.setPlainText("abandon ability " * 11 + "able zzzz")
    assert not ok.isEnabled() and "zzzz" in dialog.entry.status.text()
    phrase = new_phrase()
    dialog.entry.text.setPlainText(phrase.upper())
    assert ok.isEnabled() and dialog.entry.phrase == phrase


def test_without_a_recovery_key_back_up_now_waits_with_a_pointer_to_security(qtbot, paths, services, target):
    services.settings.update(backup_dir=str(target))
    controller = VaultController(paths, services)
    window = AdminWindow(controller)
    qtbot.addWidget(window)
    window.show()
    box = window.show_tab("Storage").backups
    qtbot.waitUntil(box.key_notice.isVisible, timeout=30_000)
    assert box.key_notice.text() == NO_RECOVERY_KEY and "Security" in NO_RECOVERY_KEY
    assert not box.back_up_button.isEnabled()


def test_the_backup_settings_are_in_the_backups_group_only(qtbot, controller, window, target, monkeypatch):
    from gui.tabs import backups as backups_box

    page = window.show_tab("Storage")
    assert not set(backups_box.BACKUP_SETTINGS) & set(page.form.editors)
    assert set(page.backups.form.editors) == {"backup_every_hours", "backup_keep_days"}
    monkeypatch.setattr(backups_box.QFileDialog, "getExistingDirectory", lambda *args: str(target))
    page.backups.choose_button.click()
    qtbot.waitUntil(lambda: controller.settings.backup_dir == str(target), timeout=30_000)
    qtbot.waitUntil(lambda: page.backups.folder.text() == str(target))
    page.backups.clear_button.click()
    qtbot.waitUntil(lambda: controller.settings.backup_dir == "", timeout=30_000)
    qtbot.waitUntil(lambda: page.backups.folder.text().startswith("None"))  # the page hears of it next
    assert not page.backups.clear_button.isEnabled()


# --- the Dashboard and the tray -----------------------------------------------------------------------------


def test_a_backup_older_than_three_days_shows_on_the_dashboard_and_turns_the_tray_red(qtbot, vault, target):
    target.mkdir()
    backed_up(vault, target, days_ago=4)
    vault.settings.update(backup_dir=str(target), backup_every_hours=168)  # so it is not due yet
    controller = started(qtbot, vault)
    try:
        window = AdminWindow(controller)
        qtbot.addWidget(window)
        tray = TrayMenu(controller, lambda: None, lambda: None)
        dashboard = window.show_tab("Dashboard")
        warning = "The last good backup is 4 days old"
        qtbot.waitUntil(lambda: tray.status_action.text() == warning, timeout=30_000)
        assert tray.icon.icon().pixmap(64).toImage() == state_pixmap("error").scaled(64, 64).toImage()
        assert warning in tray.icon.toolTip() and not tray.backup_action.isVisible()
        qtbot.waitUntil(lambda: dashboard.backup.text() == f"4 days ago — {warning}")
        assert "#b45309" in dashboard.backup.styleSheet() and dashboard.state.text() == "Running"
        controller.pause()  # not a problem: the first line still says what is
        qtbot.waitUntil(lambda: tray.pause_action.text() == "Resume Processing")
        assert tray.status_action.text() == warning and dashboard.state.text() == "Processing paused"
        controller._timer.stop()  # a server problem takes the first line: the warning moves to the second
        tray.update_status(Status("error", error="Cannot listen on 0.0.0.0:1027", backup_warning=warning))
        assert tray.status_action.text() == "Problem: Cannot listen on 0.0.0.0:1027"
        assert tray.backup_action.isVisible() and tray.backup_action.text() == warning
    finally:
        controller.shutdown()


def test_without_a_backup_folder_there_is_no_red_dot_and_the_dashboard_says_how_to_start(qtbot, controller,
                                                                                       window):
    tray = TrayMenu(controller, lambda: None, lambda: None)
    qtbot.waitUntil(lambda: tray.status_action.text() == "Running", timeout=30_000)
    assert tray.icon.icon().pixmap(64).toImage() == state_pixmap("running").scaled(64, 64).toImage()
    assert not tray.backup_action.isVisible()
    dashboard = window.show_tab("Dashboard")
    assert dashboard.backup.text() == "Not set up: choose a backup folder under Storage"
    assert dashboard.backup.styleSheet() == ""


def test_the_status_line_names_a_stale_backup_only_when_nothing_more_urgent_is_wrong():
    stale = "The last good backup is 5 days old"
    assert Status("running", True, backup_warning=stale).summary == stale
    assert Status("running", True, backup_warning=stale).state_line == "Running"
    assert Status("error", error="Cannot listen", backup_warning=stale).summary == "Problem: Cannot listen"
    assert Status("running", True, waiting="Disk full", backup_warning=stale).summary == "Disk full"


def test_the_last_good_backup_reads_as_people_say_it():
    from datetime import UTC, datetime

    now = datetime(2025, 3, 14, 12, 0).astimezone()
    assert backup_age(now.replace(hour=3, minute=12), now) == "Today 03:12"
    assert backup_age(now - timedelta(hours=20), now) == "Yesterday 16:00"
    assert backup_age(now - timedelta(days=3, hours=1), now) == "3 days ago"
    assert backup_line(BackupState(), now) == "Not set up: choose a backup folder under Storage"
    recent = datetime.now(UTC) - timedelta(minutes=5)
    assert backup_line(BackupState("/Volumes/Backup", last_success_at=recent)) == backup_age(recent)
    failed = BackupState("/Volumes/Backup", last_success_at=recent, last_error="The backup disk is full")
    assert backup_line(failed) == f"{backup_age(recent)} — The last backup failed: The backup disk is full"


# --- the first-run wizard's restore -------------------------------------------------------------------------


@pytest.fixture
def backup(vault, target) -> Path:
    """Two snapshots of the seed library (the older one identical), on the backup disk."""
    back_up(vault, target)
    back_up(vault, target)
    return target


def data_folder_state(paths: AppPaths) -> dict[str, bytes]:
    """Every file of the data folder and what it holds, but the database (compared by what it holds)."""
    return {p.relative_to(paths.root).as_posix(): p.read_bytes() for p in paths.root.rglob("*")
            if p.is_file() and "logs" not in p.parts and not p.name.startswith("vault.db")}


def choose_the_backup(qtbot, wizard, folder: Path) -> None:
    if wizard.currentId() == -1:
        wizard.restart()
    wizard.account.restore.setChecked(True)
    assert wizard.button(QWizard.WizardButton.NextButton).isEnabled()
    wizard.next()
    assert wizard.currentId() == PAGES["restore_folder"]
    wizard.restore_folder.folder.setText(str(folder))
    wizard.restore_folder.look()


def test_the_wizard_refuses_a_folder_that_is_no_backup_and_a_key_that_does_not_open_it(
        qtbot, paths, services, backup, tmp_path):
    controller = VaultController(paths, services)
    from gui.wizard import FirstRunWizard

    wizard = FirstRunWizard(controller)
    qtbot.addWidget(wizard)
    wizard.show()
    before = data_folder_state(paths)
    choose_the_backup(qtbot, wizard, tmp_path)
    folder_page = wizard.restore_folder
    qtbot.waitUntil(lambda: "is not a Vault backup" in folder_page.status.text(), timeout=30_000)
    assert not folder_page.isComplete()
    folder_page.folder.setText(str(backup))
    folder_page.look()
    qtbot.waitUntil(folder_page.isComplete, timeout=30_000)
    names = [p.name for p in reversed(BackupFolder(backup).complete_snapshots())]
    assert folder_page.snapshots.count() == 2 and folder_page.snapshot == names[0]
    assert "2 item(s)" in folder_page.snapshots.item(0).text()
    wizard.next()
    key_page = wizard.restore_key
    assert wizard.currentId() == PAGES["restore_key"]
    key_page.entry.text.setPlainText("abandon " * 24)
    assert "checksum" in key_page.entry.status.text() and not key_page.isComplete()
    key_page.entry.text.setPlainText(new_phrase())  # a well-formed key, but another one
    qtbot.waitUntil(lambda: "does not open" in key_page.entry.status.text(), timeout=30_000)
    assert not wizard.button(QWizard.WizardButton.NextButton).isEnabled()

    with qtbot.waitSignal(controller.restore_failed, timeout=60_000) as refused:  # and if it were tried
        controller.restore_from_backup(backup, new_phrase())
    assert "does not open" in refused.args[0]
    wizard.reject()  # Cancel
    assert data_folder_state(paths) == before
    assert controller.services.users.list() == [] and controller.services.library.all_items() == []
    controller.services.close()


def test_the_wizard_restores_the_library_and_vault_starts_with_its_accounts(qtbot, paths, services, seed,
                                                                             backup):
    controller = VaultController(paths, services, host="127.0.0.1", port=0, poll_ms=100)
    vault = VaultApp(controller, use_tray=False)
    qtbot.addWidget(vault.window)
    vault.begin()
    wizard = vault.wizard
    assert wizard is not None
    qtbot.addWidget(wizard)
    choose_the_backup(qtbot, wizard, backup)
    qtbot.waitUntil(wizard.restore_folder.isComplete, timeout=30_000)
    wizard.next()
    key_page = wizard.restore_key
    key_page.entry.text.setPlainText("  " + seed.phrase.upper().replace(" ", "\n", 3) + " ")
    qtbot.waitUntil(key_page.isComplete, timeout=30_000)
    assert "opens the backup" in key_page.entry.status.text()
    assert wizard.button(QWizard.WizardButton.NextButton).text() == "Restore"
    progress: list[str] = []
    controller.progress.connect(lambda operation, now: progress.append(f"{operation}: {now.phase}"))
    wizard.next()
    page = wizard.restore
    assert wizard.currentId() == PAGES["restore"]
    qtbot.waitUntil(lambda: page.running and not wizard.button(QWizard.WizardButton.CancelButton).isEnabled())
    qtbot.waitUntil(page.isComplete, timeout=120_000)
    assert "restore: Copying library files" in progress
    assert "Restored 2 item(s)" in page.result.text() and AFTER_RESTORE in page.result.text()
    assert page.bar.value() == 100 and not page.problems.isVisible()
    assert wizard.button(QWizard.WizardButton.FinishButton).isEnabled()
    assert not wizard.button(QWizard.WizardButton.BackButton).isEnabled()
    assert key_page.entry.phrase == ""  # the key is kept nowhere once it has been used
    with qtbot.waitSignal(controller.started, timeout=60_000):
        wizard.accept()
    try:
        assert wizard.result() == QWizard.DialogCode.Accepted
        assert sorted(u.username for u in controller.services.users.list()) == sorted([OWNER, VIEWER])
        assert controller.services.users.authenticate(OWNER, OWNER_PASSWORD, "127.0.0.1")
        assert controller.services.audit.recent(event="recovery_key_created")[0].username == "test"
        library = vault.window.show_tab("Library")
        qtbot.waitUntil(lambda: library.items.count() == len(PHOTOS), timeout=30_000)
        assert {library.items.item(i).data(256).original_name for i in range(2)} == set(PHOTOS)
        assert controller.runtime.services is controller.services and controller.runtime.running
    finally:
        controller.shutdown()
