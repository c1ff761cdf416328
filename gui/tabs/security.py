"""Security: where the master key lives, when it is due for rotation, rotating it now; the recovery key
(which one is in use, making a new one); sign-in settings."""

from __future__ import annotations

from PySide6.QtWidgets import QDialog, QFormLayout, QGroupBox, QLabel, QPushButton, QVBoxLayout

from gui.controller import VaultController
from gui.recovery import RecoveryKeyDialog
from gui.settings_form import SettingsForm
from gui.tabs import ACTOR, Tab, confirm, when
from vaultserver.services.keys import KeyStatus, RotationResult

BACKENDS = {"keychain": "the system keychain", "file": "a protected file in the data folder"}
NO_RECOVERY_KEY = "None yet: make one so a backup can be restored on another Mac"
WARNING = "color: #b45309"


class SecurityTab(Tab):
    title = "Security"

    def __init__(self, controller: VaultController) -> None:
        super().__init__(controller)
        self.backend = QLabel()
        self.key_id = QLabel()
        self.created = QLabel()
        self.due = QLabel()
        self.data_keys = QLabel()
        self.rotate_button = QPushButton("Rotate Now…")
        self.rotate_button.clicked.connect(self.rotate)
        keys_box = QGroupBox("Master key")
        keys = QFormLayout(keys_box)
        keys.addRow("Kept in", self.backend)
        keys.addRow("Key id", self.key_id)
        keys.addRow("Created", self.created)
        keys.addRow("Rotation due", self.due)
        keys.addRow("Keys it protects", self.data_keys)
        keys.addRow("", self.rotate_button)
        self.recovery_fingerprint = QLabel()
        self.recovery_created = QLabel()
        self.recovery_button = QPushButton("Make a New Recovery Key…")
        self.recovery_button.clicked.connect(self.new_recovery_key)
        self.recovery_dialog: RecoveryKeyDialog | None = None
        self._has_recovery_key = False
        recovery_box = QGroupBox("Recovery key")
        recovery = QFormLayout(recovery_box)
        recovery.addRow("Fingerprint", self.recovery_fingerprint)
        recovery.addRow("Made", self.recovery_created)
        recovery.addRow("", self.recovery_button)
        sign_in = QGroupBox("Signing in and keys")
        QVBoxLayout(sign_in).addWidget(SettingsForm(controller, "security"))
        layout = QVBoxLayout(self)
        layout.addWidget(keys_box)
        layout.addWidget(recovery_box)
        layout.addWidget(sign_in)
        layout.addWidget(self.notice)
        layout.addStretch(1)

    def refresh(self) -> None:
        self.load(self.controller.services.keys.status, self._show)

    def _show(self, status: KeyStatus) -> None:
        self.backend.setText(BACKENDS.get(status.backend, status.backend))
        self.key_id.setText(status.master_key_id)
        self.created.setText(when(status.created_at))
        self.due.setText(when(status.rotation_due_at) + ("  (overdue: rotating soon)"
                                                          if status.rotation_overdue else ""))
        self.data_keys.setText(str(status.data_keys))
        self._has_recovery_key = status.recovery_fingerprint is not None
        self.recovery_fingerprint.setText(status.recovery_fingerprint or NO_RECOVERY_KEY)
        self.recovery_fingerprint.setStyleSheet("" if self._has_recovery_key else WARNING)
        self.recovery_created.setText(when(status.recovery_created_at))

    def rotate(self) -> None:
        if not confirm(self, "Rotate the master key", "Make a new master key and re-wrap every item's keys "
                       "under it? Nothing is re-encrypted and viewers notice nothing.", "Rotate"):
            return
        self.rotate_button.setEnabled(False)
        self.say("Rotating…")
        self.controller.run(self.controller.services.keys.rotate, self._rotated, self._rotate_failed)

    def _rotated(self, result: RotationResult) -> None:
        self.rotate_button.setEnabled(True)
        self.say(f"New master key {result.new_master_key_id}; {result.rewrapped} key(s) re-wrapped.")
        self.refresh()

    def _rotate_failed(self, message: str) -> None:
        self.rotate_button.setEnabled(True)
        self.fail(f"Rotation failed, the current key stays in use: {message}")

    def new_recovery_key(self) -> None:
        if self._has_recovery_key and not confirm(
                self, "Make a new recovery key", "Make a new recovery key? The old key stops opening new "
                "backups; backups already made still need the old one, so keep it until the next backup.",
                "Make New Key"):
            return
        self.recovery_button.setEnabled(False)
        self.say("Making a new recovery key…")
        keys = self.controller.services.keys
        self.controller.run(lambda: keys.new_recovery_key(ACTOR), self._show_recovery_key,
                            self._recovery_key_failed)

    def _show_recovery_key(self, phrase: str) -> None:
        self.recovery_button.setEnabled(True)
        self.say("A new recovery key is in use: keep its words.")
        self.refresh()
        self.recovery_dialog = RecoveryKeyDialog(phrase, self)
        self.recovery_dialog.finished.connect(self._recovery_dialog_closed)
        self.recovery_dialog.open()

    def _recovery_dialog_closed(self, result: int) -> None:
        if self.recovery_dialog is not None:
            self.recovery_dialog.deleteLater()
        self.recovery_dialog = None
        if result == QDialog.DialogCode.Accepted:
            self.say("New recovery key in use and checked. Backups from now on need it.")
        else:
            self.fail("The new recovery key is in use, but its words were not checked: if you did not keep "
                      "them, make another one.")

    def _recovery_key_failed(self, message: str) -> None:
        self.recovery_button.setEnabled(True)
        self.fail(f"Could not make a recovery key; the old one stays in use: {message}")
