"""Storage: where Vault keeps things (with buttons to open them), how much it uses, and import settings."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QFormLayout, QGroupBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from gui.controller import Status, VaultController
from gui.settings_form import SettingsForm
from gui.tabs import Tab, size
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
        self.form = SettingsForm(controller, "storage")
        import_box = QGroupBox("Importing")
        QVBoxLayout(import_box).addWidget(self.form)
        layout = QVBoxLayout(self)
        layout.addWidget(folders_box)
        layout.addWidget(self.usage)
        layout.addWidget(import_box)
        layout.addWidget(self.notice)
        layout.addStretch(1)
        self._paths = paths
        self._show_folders()
        controller.settings_changed.connect(lambda _settings: self._show_folders())
        controller.status_changed.connect(self._show_usage)

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
