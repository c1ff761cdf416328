"""The Storage tab's Backups group: the backup folder, how often and how long, Back Up Now with its progress,
Verify (and the deep check with the recovery key), and how the backups stand.

The schedule's state arrives as the controller's `backup_changed`; verify runs through the controller on a
pool thread and reports its progress through the controller's `progress`. A backup needs a recovery key, so
without one Back Up Now waits for it, with a pointer to the Security tab.
"""

from __future__ import annotations

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from gui.backups import decrypt_text, verify_text
from gui.controller import VaultController
from gui.recovery import PhraseEntry
from gui.settings_form import SettingsForm
from gui.tabs import when
from vaultserver.backup.verify import VerifyReport
from vaultserver.runtime import BackupState, Progress

FOLDER_SETTING = "backup_dir"
SCHEDULE_SETTINGS = ("backup_every_hours", "backup_keep_days")
BACKUP_SETTINGS = (FOLDER_SETTING, *SCHEDULE_SETTINGS)  # shown here, so not in the generic storage form
NO_FOLDER = "None: choose a folder on another disk (an external drive, a NAS share) to back up to"
NO_RECOVERY_KEY = ("Make a recovery key under Security first: a backup cannot be restored without it, so "
                   "Vault makes none until there is one.")
OK, BAD, WARNING = "color: #15803d", "color: #b91c1c", "color: #b45309"


def _bar() -> QProgressBar:
    bar = QProgressBar()
    bar.setRange(0, 100)
    policy = bar.sizePolicy()
    policy.setRetainSizeWhenHidden(True)  # the buttons beside it keep their size when it goes
    bar.setSizePolicy(policy)
    bar.hide()
    return bar


def _wrapped() -> QLabel:
    label = QLabel()
    label.setWordWrap(True)
    return label


def _row(*widgets: QWidget) -> QHBoxLayout:
    """Buttons, then a progress bar taking the rest of the line."""
    row = QHBoxLayout()
    for widget in widgets:
        row.addWidget(widget, 1 if isinstance(widget, QProgressBar) else 0)
    return row


def _show_progress(bar: QProgressBar, label: QLabel, progress: Progress | None, starting: str) -> None:
    bar.show()
    if progress is None or not (progress.total_bytes or progress.total_files):
        bar.setRange(0, 0)  # busy: nothing to count yet
        label.setText(progress.phase if progress and progress.phase else starting)
        return
    bar.setRange(0, 100)
    bar.setValue(int(progress.fraction * 100))
    files = f", {progress.done_files:,} of {progress.total_files:,} files" if progress.total_files else ""
    label.setText(f"{progress.phase or starting}: {progress.fraction:.0%}{files}")


class PhraseDialog(QDialog):
    """Asks for the recovery key for a deep check; OK once it is a well-formed key."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Verify with Recovery Key")
        intro = QLabel("With your recovery key, Verify also decrypts every item in the backup. The key is "
                       "used for this check only and kept nowhere.")
        intro.setWordWrap(True)
        self.entry = PhraseEntry()
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                        | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self.entry.changed.connect(self._update)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(self.entry)
        layout.addWidget(self.buttons)
        self.setMinimumWidth(520)
        self._update()

    def _update(self) -> None:
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(bool(self.entry.phrase))


class BackupsBox(QGroupBox):
    def __init__(self, controller: VaultController, parent: QWidget | None = None) -> None:
        super().__init__("Backups", parent)
        self.controller = controller
        self.has_recovery_key: bool | None = None  # not known until the Storage tab has looked
        self.verifying = False
        self.folder = QLabel()
        self.folder.setWordWrap(True)
        self.folder.setAccessibleName("Backup folder")
        self.choose_button = QPushButton("Choose…")
        self.choose_button.clicked.connect(self.choose_folder)
        self.clear_button = QPushButton("Clear")
        self.clear_button.clicked.connect(lambda: self.set_folder(""))
        folder_row = QHBoxLayout()
        folder_row.addWidget(self.folder, 1)
        folder_row.addWidget(self.choose_button)
        folder_row.addWidget(self.clear_button)
        self.form = SettingsForm(controller, "storage", only=SCHEDULE_SETTINGS)
        self.last_good, self.last_failure, self.next_due, self.warning = (_wrapped() for _ in range(4))
        self.last_failure.setStyleSheet(BAD)
        self.warning.setStyleSheet(WARNING)
        self.facts = QFormLayout()
        self.facts.addRow("Folder", folder_row)
        self.facts.addRow("Last good backup", self.last_good)
        self.facts.addRow("Last failure", self.last_failure)
        self.facts.addRow("Next backup", self.next_due)
        self.key_notice = QLabel(NO_RECOVERY_KEY)
        self.key_notice.setWordWrap(True)
        self.key_notice.setStyleSheet(WARNING)
        self.key_notice.hide()
        self.back_up_button = QPushButton("Back Up Now")
        self.back_up_button.clicked.connect(self.back_up_now)
        self.backup_bar, self.backup_phase = _bar(), QLabel()
        self.verify_button = QPushButton("Verify")
        self.verify_button.clicked.connect(lambda: self.verify(None))
        self.deep_button = QPushButton("Verify with Recovery Key…")
        self.deep_button.clicked.connect(self.ask_and_verify)
        self.verify_bar, self.verify_result = _bar(), QLabel()
        self.verify_result.setWordWrap(True)
        self.verify_result.setAccessibleName("Verify result")
        layout = QVBoxLayout(self)
        layout.addLayout(self.facts)
        layout.addWidget(self.warning)
        layout.addWidget(self.form)
        layout.addWidget(self.key_notice)
        layout.addLayout(_row(self.back_up_button, self.backup_bar))
        layout.addWidget(self.backup_phase)
        layout.addLayout(_row(self.verify_button, self.deep_button, self.verify_bar))
        layout.addWidget(self.verify_result)
        controller.backup_changed.connect(self.show_state)
        controller.settings_changed.connect(lambda _settings: self.show_state(controller.backup_state()))
        controller.progress.connect(self._progress)
        self.show_state(controller.backup_state())

    # --- what is shown --------------------------------------------------------------------------------

    def show_key_status(self, has_recovery_key: bool) -> None:
        self.has_recovery_key = has_recovery_key
        self.show_state(self.controller.backup_state())

    def show_state(self, state: BackupState) -> None:
        folder = self.controller.settings.backup_dir.strip()
        self.folder.setText(folder or NO_FOLDER)
        self.clear_button.setEnabled(bool(folder))
        no_key = self.has_recovery_key is False
        self.key_notice.setVisible(no_key)
        self.back_up_button.setEnabled(bool(folder) and not no_key and not state.running)
        for button in (self.verify_button, self.deep_button):
            button.setEnabled(bool(folder) and not self.verifying)
        same_folder = bool(folder) and state.target == folder
        if not same_folder:  # the schedule has not looked at a new folder yet
            state = BackupState()
        self.last_good.setText(f"{when(state.last_success_at)} (snapshot {state.last_snapshot})"
                               if state.last_success_at else "None yet")
        self.facts.setRowVisible(self.last_failure, bool(state.last_error))
        self.last_failure.setText(f"{when(state.last_error_at)}: {state.last_error}" if state.last_error
                                  else "")
        self.next_due.setText(self._next(state, folder))
        self.next_due.setStyleSheet(WARNING if state.waiting_reason else "")
        self.warning.setText(state.warning or "")
        self.warning.setVisible(bool(state.warning))
        if state.running:
            _show_progress(self.backup_bar, self.backup_phase, state.progress, "Backing up")
        elif self.backup_bar.isVisible():
            self.backup_bar.hide()
            self.backup_phase.setText("Backup finished." if not state.last_error else "")

    @staticmethod
    def _next(state: BackupState, folder: str) -> str:
        if not folder:
            return "No scheduled backups"
        if state.running:
            return "Backing up now"
        if state.waiting_reason:
            return f"Waiting: {state.waiting_reason}"
        return when(state.next_due_at) if state.next_due_at else "Soon"

    # --- actions --------------------------------------------------------------------------------------

    def choose_folder(self) -> None:
        start = self.controller.settings.backup_dir or ""
        chosen = QFileDialog.getExistingDirectory(self, "Back up to this folder", start)
        if chosen:
            self.set_folder(chosen)

    def set_folder(self, folder: str) -> None:
        self.controller.update_settings({FOLDER_SETTING: folder}, failed=self._refused)

    def _refused(self, message: str) -> None:
        self.backup_phase.setText(message)
        self.backup_phase.setStyleSheet(BAD)

    def back_up_now(self) -> None:
        self.backup_phase.setStyleSheet("")
        if self.controller.back_up_now():
            _show_progress(self.backup_bar, self.backup_phase, None, "Starting the backup…")
            self.back_up_button.setEnabled(False)
        elif self.controller.backup_state().running:
            self.backup_phase.setText("A backup is already under way.")
        else:
            self.backup_phase.setText("Backups start once Vault is running.")

    def ask_and_verify(self) -> None:
        dialog = PhraseDialog(self)
        try:
            if dialog.exec() == QDialog.DialogCode.Accepted:
                self.verify(dialog.entry.phrase)
        finally:
            dialog.entry.clear()

    def verify(self, phrase: str | None) -> None:
        self.verifying = True
        self.verify_result.setStyleSheet("")
        _show_progress(self.verify_bar, self.verify_result, None, "Checking the backup…")
        self.show_state(self.controller.backup_state())
        self.controller.verify_backup(self._verified, self._verify_failed, phrase)

    def _progress(self, operation: str, progress: Progress) -> None:
        if self.verifying and operation in ("verify", "deep check"):
            _show_progress(self.verify_bar, self.verify_result, progress, "Checking")

    def _verified(self, outcome: tuple[VerifyReport, list[str] | None]) -> None:
        report, problems = outcome
        intact = report.ok and not problems
        text = verify_text(report) if problems is None or not report.ok else decrypt_text(report, problems)
        self._verify_finished(text, OK if intact else BAD)

    def _verify_failed(self, message: str) -> None:
        self._verify_finished(f"Could not verify: {message}", BAD)

    def _verify_finished(self, text: str, style: str) -> None:
        self.verifying = False
        self.verify_bar.hide()
        self.verify_result.setText(text)
        self.verify_result.setStyleSheet(style)
        self.show_state(self.controller.backup_state())
