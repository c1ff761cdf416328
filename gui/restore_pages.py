"""The first-run wizard's other way in: restoring a library from a Vault backup on a new (or reinstalled) Mac.

Three pages: the backup folder (it must be a Vault backup with a complete snapshot; its snapshots are listed,
the newest chosen), the recovery key (checked as it is typed, then proven to open the chosen snapshot before
Next is offered, so a wrong key is refused before anything is written), and the restore itself with its
progress and result. The restored library brings its accounts and its recovery key: the wizard then finishes
without making either.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWizard,
    QWizardPage,
)

from gui.backups import SnapshotInfo, megabytes
from gui.controller import VaultController
from gui.recovery import MATCH, MISMATCH, PhraseEntry
from vaultserver.backup.restore import RestoreResult
from vaultserver.runtime import Progress

LOOK_DELAY_MS = 400  # a typed path is looked at once typing pauses, not at every key
AFTER_RESTORE = ("Sign in with your usual accounts; your recovery key is the same one. Every device that was "
                 "signed in must sign in again. Click Finish to start Vault.")


class BackupFolderPage(QWizardPage):
    """Where the backup is; complete once it reads as a Vault backup and one of its snapshots is chosen."""

    def __init__(self, controller: VaultController) -> None:
        super().__init__()
        self.controller = controller
        self.setTitle("Restore from a backup")
        self.setSubTitle("Connect the backup disk, then choose the folder of your Vault backup (it holds "
                         "vault-backup.json).")
        self.folder = QLineEdit()
        self.folder.setAccessibleName("Backup folder")
        browse = QPushButton("Choose…")
        browse.clicked.connect(self._browse)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.snapshots = QListWidget()
        self.snapshots.setAccessibleName("Snapshots")
        self.snapshots.currentItemChanged.connect(lambda *_: self.completeChanged.emit())
        row = QHBoxLayout()
        row.addWidget(self.folder, 1)
        row.addWidget(browse)
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(self.status)
        layout.addWidget(QLabel("Restore the backup made on:"))
        layout.addWidget(self.snapshots, 1)
        self._looked_at = ""  # the folder the list shows
        self._asked = 0
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(LOOK_DELAY_MS)
        self._timer.timeout.connect(self.look)
        self.folder.textChanged.connect(self._typed)

    def _browse(self) -> None:
        chosen = QFileDialog.getExistingDirectory(self, "Your Vault backup", self.folder.text())
        if chosen:
            self.folder.setText(chosen)
            self.look()

    def _typed(self) -> None:
        self._looked_at = ""
        self.snapshots.clear()
        self.status.clear()
        self.completeChanged.emit()
        self._timer.start()

    @property
    def target(self) -> Path:
        return Path(self.folder.text().strip()).expanduser()

    def look(self) -> None:
        """Read the folder (off the UI thread); a late answer for a folder typed over is dropped."""
        self._timer.stop()
        folder = self.folder.text().strip()
        if not folder:
            return
        self._asked += 1
        ticket = self._asked
        self.status.setStyleSheet("")
        self.status.setText("Looking at the folder…")

        def shown(snapshots: list[SnapshotInfo]) -> None:
            if ticket == self._asked:
                self._show(folder, snapshots)

        def refused(message: str) -> None:
            if ticket == self._asked:
                self.status.setText(message)
                self.status.setStyleSheet(MISMATCH)

        self.controller.read_backup(Path(folder).expanduser(), shown, refused)

    def _show(self, folder: str, snapshots: list[SnapshotInfo]) -> None:
        self.snapshots.clear()
        for number, snapshot in enumerate(snapshots):
            item = QListWidgetItem(snapshot.describe() + ("  (newest)" if number == 0 else ""))
            item.setData(Qt.ItemDataRole.UserRole, snapshot.name)
            self.snapshots.addItem(item)
        self.snapshots.setCurrentRow(0)
        self._looked_at = folder
        self.status.setText(f"A Vault backup with {len(snapshots)} snapshot(s).")
        self.status.setStyleSheet(MATCH)
        self.completeChanged.emit()

    @property
    def snapshot(self) -> str | None:
        item = self.snapshots.currentItem()
        name = item.data(Qt.ItemDataRole.UserRole) if item else None
        return name if isinstance(name, str) else None

    def isComplete(self) -> bool:
        return bool(self._looked_at) and self._looked_at == self.folder.text().strip() and bool(self.snapshot)


class BackupKeyPage(QWizardPage):
    """The recovery key, checked as it is typed and then against the chosen snapshot; Next ("Restore") only
    once it opens it."""

    def __init__(self, controller: VaultController, folder: BackupFolderPage) -> None:
        super().__init__()
        self.controller, self._folder = controller, folder
        self.setTitle("Your recovery key")
        self.setSubTitle("Type the 24 words of the recovery key you printed or wrote down when you set Vault "
                         "up. Nothing is written until it opens the backup.")
        self.setButtonText(QWizard.WizardButton.NextButton, "Restore")
        self.entry = PhraseEntry()
        layout = QVBoxLayout(self)
        layout.addWidget(self.entry)
        layout.addStretch(1)
        self._opens: tuple[str, str, str | None] | None = None  # (phrase, folder, snapshot) it was proven on
        self._asked = 0
        self.entry.changed.connect(self._check)

    def initializePage(self) -> None:
        self._check()  # another folder or snapshot may have been chosen meanwhile

    def _wanted(self) -> tuple[str, str, str | None]:
        return self.entry.phrase, str(self._folder.target), self._folder.snapshot

    def _check(self) -> None:
        self._asked += 1
        self.completeChanged.emit()
        phrase, folder, snapshot = wanted = self._wanted()
        if not phrase:
            return
        if self._opens == wanted:
            self.entry.say("✓ This recovery key opens the backup.", ok=True)
            return
        ticket = self._asked
        self.entry.say("Checking it against the backup…", ok=True)
        self.entry.status.setStyleSheet("")

        def opened(_name: str) -> None:
            if ticket == self._asked:
                self._opens = wanted
                self.entry.say("✓ This recovery key opens the backup.", ok=True)
                self.completeChanged.emit()

        def refused(message: str) -> None:
            if ticket == self._asked:
                self.entry.say(message, ok=False)

        self.controller.check_backup_key(Path(folder), phrase, snapshot, opened, refused)

    def isComplete(self) -> bool:
        return bool(self.entry.phrase) and self._opens == self._wanted()

    def forget(self) -> None:
        self._opens = None
        self.entry.clear()


class RestorePage(QWizardPage):
    """Runs the restore when entered, with its progress; complete once it succeeded."""

    def __init__(self, controller: VaultController, folder: BackupFolderPage, key: BackupKeyPage) -> None:
        super().__init__()
        self.controller, self._folder, self._key = controller, folder, key
        self.setTitle("Restoring your library")
        self.setSubTitle("Vault copies the library back, checking every file, and proves that every item "
                         "decrypts.")
        self.bar = QProgressBar()
        self.bar.setRange(0, 100)
        self.phase = QLabel()
        self.result = QLabel()
        self.result.setWordWrap(True)
        self.result.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.problems = QPlainTextEdit()
        self.problems.setReadOnly(True)
        self.problems.setAccessibleName("Problems")
        self.problems.hide()
        layout = QVBoxLayout(self)
        layout.addWidget(self.bar)
        layout.addWidget(self.phase)
        layout.addWidget(self.result)
        layout.addWidget(self.problems, 1)
        layout.addStretch(1)
        self.running = False
        self.outcome: RestoreResult | None = None
        controller.progress.connect(self._progress)
        controller.restored.connect(self._restored)
        controller.restore_failed.connect(self._failed)

    def initializePage(self) -> None:
        self.outcome = None
        self.running = True
        self.bar.setRange(0, 0)
        self.bar.show()
        self.phase.setText("Opening the backup…")
        self.result.clear()
        self.result.setStyleSheet("")
        self.problems.hide()
        # The wizard sets its buttons after entering a page: hold them once it has.
        QTimer.singleShot(0, lambda: self._hold_buttons(self.running))
        folder, key = self._folder, self._key
        self.controller.restore_from_backup(folder.target, key.entry.phrase, folder.snapshot)

    def _hold_buttons(self, held: bool) -> None:
        """While the restore runs there is no going back and no cancelling: it finishes either way."""
        wizard = self.wizard()
        if wizard is not None:
            for which in (QWizard.WizardButton.BackButton, QWizard.WizardButton.CancelButton):
                wizard.button(which).setEnabled(not held)

    def _progress(self, operation: str, progress: Progress) -> None:
        if operation != "restore" or not self.running:
            return
        if progress.total_bytes or progress.total_files:
            self.bar.setRange(0, 100)
            self.bar.setValue(int(progress.fraction * 100))
        files = f", {progress.done_files:,} of {progress.total_files:,}" if progress.total_files else ""
        self.phase.setText(f"{progress.phase}{files}")

    def _restored(self, result: RestoreResult) -> None:
        if not self.running:
            return
        self.running, self.outcome = False, result
        self._key.forget()
        self.bar.setRange(0, 100)
        self.bar.setValue(100)
        self.phase.setText("Done.")
        self.result.setText(f"Restored {result.items:,} item(s), {result.files:,} file(s), "
                            f"{megabytes(result.bytes)} in {result.seconds:.1f} s from snapshot "
                            f"{result.snapshot}.\n\n{AFTER_RESTORE}")
        self.result.setStyleSheet(MATCH if not result.problems else "")
        if result.problems:
            self.problems.setPlainText(f"{len(result.problems)} file(s) did not decrypt; the rest of the "
                                       "library is restored:\n" + "\n".join(result.problems))
            self.problems.show()
        wizard = self.wizard()
        if wizard is not None:  # done: the way on is Finish; the folder is restored, there is no going back
            wizard.setOption(QWizard.WizardOption.DisabledBackButtonOnLastPage, True)
            wizard.button(QWizard.WizardButton.CancelButton).setEnabled(False)
        self.completeChanged.emit()

    def _failed(self, message: str) -> None:
        if not self.running:
            return
        self.running = False
        self.bar.hide()
        self.phase.clear()
        self.result.setText(f"The library was not restored: {message}\n\nGo Back to choose another folder, "
                            "snapshot or key and try again.")
        self.result.setStyleSheet(MISMATCH)
        self._hold_buttons(False)
        self.completeChanged.emit()

    def isComplete(self) -> bool:
        return self.outcome is not None

    def nextId(self) -> int:
        return -1
