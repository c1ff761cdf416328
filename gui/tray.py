"""The menu-bar icon and its menu: what the owner sees every day."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, QUrl
from PySide6.QtGui import QAction, QDesktopServices
from PySide6.QtWidgets import QFileDialog, QMenu, QSystemTrayIcon, QWidget

from gui.controller import Status, VaultController
from gui.icons import state_icon
from vaultserver import login_item

MEDIA_FILTER = ("Photos and videos (*.jpg *.jpeg *.png *.heic *.heif *.webp *.gif *.tif *.tiff *.bmp *.mp4 "
                "*.mov *.m4v *.mkv *.webm *.avi *.mts *.3gp);;All files (*)")


def open_url(url: str) -> None:
    QDesktopServices.openUrl(QUrl(url))


def login_item_available() -> bool:
    """Only the packaged app has one executable that launchd can start (see vaultserver.login_item)."""
    return login_item.supported() and bool(getattr(sys, "frozen", False))


def gallery_url(urls: list[str]) -> str:
    """This Mac's own browser: localhost where offered (the certificate names it), else the first URL."""
    return next((u for u in urls if "//localhost:" in u), urls[0] if urls else "")


def open_folder(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    QDesktopServices.openUrl(QUrl.fromLocalFile(str(path)))


def choose_and_import(controller: VaultController, parent: QWidget | None = None) -> None:
    files, _ = QFileDialog.getOpenFileNames(parent, "Import photos and videos", str(Path.home()),
                                            MEDIA_FILTER)
    if files:
        controller.import_files([Path(f) for f in files],
                                lambda copied: controller.message.emit(f"Importing {len(copied)} file(s)…"))


class TrayMenu(QObject):
    """The QSystemTrayIcon and its menu, kept in step with the controller's status."""

    def __init__(self, controller: VaultController, show_admin: Callable[[], None],
                 quit_app: Callable[[], None], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.icon = QSystemTrayIcon(state_icon("stopped"), self)
        self.menu = QMenu()
        self.status_action = self._action("Starting…", enabled=False)
        self.backup_action = self._action("", enabled=False)  # a backup warning the first line leaves out
        self.backup_action.setVisible(False)
        self.url_action = self._action("", enabled=False)
        self.menu.addSeparator()
        self.gallery_action = self._action("Open Gallery", self._open_gallery)
        self._action("Open Admin…", show_admin)
        self.menu.addSeparator()
        self._action("Import Files…", lambda: choose_and_import(controller))
        self._action("Open Import Folder", lambda: open_folder(controller.import_folder))
        self.pause_action = self._action("Pause Processing", controller.toggle_pause)
        self.server_action = self._action("Stop Server", controller.toggle_server)
        self.menu.addSeparator()
        self.login_action = self._action("Open at Login", self._toggle_login_item)
        self.login_action.setCheckable(True)
        self.login_action.setVisible(login_item_available())
        self.login_action.setChecked(login_item.installed())
        self._action("Quit Vault", quit_app)
        self.icon.setContextMenu(self.menu)
        self.icon.activated.connect(self._activated)
        self._show_admin = show_admin
        controller.status_changed.connect(self.update_status)
        controller.notify.connect(lambda title, text: self.icon.showMessage(title, text))
        self.update_status(controller.status)

    def _action(self, text: str, slot: Callable[[], None] | None = None, enabled: bool = True) -> QAction:
        action = self.menu.addAction(text)
        action.setEnabled(enabled)
        if slot:
            action.triggered.connect(lambda _checked=False: slot())
        return action

    def update_status(self, status: Status) -> None:
        backup_warning = self.controller.backup_state().warning  # in memory: cheap on the UI thread
        self.icon.setIcon(state_icon("error" if backup_warning else status.state))
        url = status.urls[0] if status.urls else ""
        self.status_action.setText(status.summary)
        second_line = backup_warning if backup_warning and backup_warning != status.summary else ""
        self.backup_action.setText(second_line)
        self.backup_action.setVisible(bool(second_line))
        self.url_action.setText(url or "Not serving")
        self.icon.setToolTip(f"Vault — {status.summary}" + (f"\n{url}" if url else "")
                             + (f"\n{second_line}" if second_line else ""))
        self.gallery_action.setEnabled(bool(url))
        self.pause_action.setText(status.pause_label)
        self.server_action.setText(status.server_label)

    def _open_gallery(self) -> None:
        open_url(gallery_url(self.controller.status.urls))

    def _toggle_login_item(self) -> None:
        try:
            if self.login_action.isChecked():
                login_item.install(Path(sys.executable))
            else:
                login_item.remove()
        except Exception as exc:  # e.g. a read-only LaunchAgents folder: say so, leave the tick as it is
            self.controller.failed.emit(f"Could not change Open at Login: {exc}")
        self.login_action.setChecked(login_item.installed())

    def _activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason == QSystemTrayIcon.ActivationReason.DoubleClick:
            self._show_admin()

    def show(self) -> None:
        self.icon.show()
