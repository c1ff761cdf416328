"""Security: where the master key lives, when it is due for rotation, rotating it now; sign-in settings."""

from __future__ import annotations

from PySide6.QtWidgets import QFormLayout, QGroupBox, QLabel, QPushButton, QVBoxLayout

from gui.controller import VaultController
from gui.settings_form import SettingsForm
from gui.tabs import Tab, confirm, when
from vaultserver.services.keys import KeyStatus, RotationResult

BACKENDS = {"keychain": "the system keychain", "file": "a protected file in the data folder"}


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
        sign_in = QGroupBox("Signing in and keys")
        QVBoxLayout(sign_in).addWidget(SettingsForm(controller, "security"))
        layout = QVBoxLayout(self)
        layout.addWidget(keys_box)
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
