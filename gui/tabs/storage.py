"""Storage: where Vault keeps things (with buttons to open them), how much it uses, import settings, and
backups (their own group, `gui.tabs.backups`)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from gui.controller import Status, VaultController
from gui.settings_form import SettingsForm
from gui.tabs import Tab, size
from gui.tabs.backups import BACKUP_SETTINGS, BackupsBox
from gui.tray import open_folder


def _folder_row(path: Path) -> QWidget:
    row = QWidget()
    layout = QHBoxLayout(row)
    layout.setContentsMargins(0, 0, 0, 0)
    label = QLabel(str(path))
    label.setWordWrap(True)
    button = QPushButton("Show")
    button.clicked.connect(lambda: open_folder(path))
    layout.addWidget(label, 1)
    layout.addWidget(button)
    return row


class StorageTab(Tab):
    title = "Storage"

    def __init__(self, controller: VaultController) -> None:
        super().__init__(controller)
        paths = controller.paths
        self.folders = QFormLayout()
        folders_box = QGroupBox("Folders")
        folders_box.setLayout(self.folders)
        self.usage = QLabel()
        self.form = SettingsForm(controller, "storage", leave_out=BACKUP_SETTINGS)
        import_box = QGroupBox("Importing")
        QVBoxLayout(import_box).addWidget(self.form)
        self.backups = BackupsBox(controller)
        content = QWidget()
        layout = QVBoxLayout(content)
        layout.addWidget(folders_box)
        layout.addWidget(self.usage)
        layout.addWidget(self.backups)
        layout.addWidget(import_box)
        layout.addWidget(self.notice)
        layout.addStretch(1)
        scroll = QScrollArea()  # more than a small window holds: it scrolls rather than growing the window
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(content)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)
        self._paths = paths
        self._show_folders()
        controller.settings_changed.connect(lambda _settings: self._show_folders())
        controller.status_changed.connect(self._show_usage)

    def refresh(self) -> None:
        """Whether there is a recovery key yet: without one, Back Up Now waits for it."""
        self.load(self.controller.services.keys.status,
                  lambda status: self.backups.show_key_status(status.recovery_fingerprint is not None))

    def _show_folders(self) -> None:
        while self.folders.rowCount():
            self.folders.removeRow(0)
        for label, path in (("Import folder", self.controller.import_folder),
                            ("Failed imports", self._paths.failed),
                            ("Encrypted library", self._paths.library),
                            ("Data folder", self._paths.root)):
            self.folders.addRow(label, _folder_row(path))

    def _show_usage(self, status: Status) -> None:
        if status.usage:
            u = status.usage
            self.usage.setText(f"The library holds {u.items} item(s) in {size(u.stored_bytes)} (encrypted); "
                               f"{size(u.free_bytes)} free on its disk.")
