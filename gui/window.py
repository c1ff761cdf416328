"""The admin window: one tab per area; a tab reloads when it is shown."""

from __future__ import annotations

from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import QApplication, QMainWindow, QMessageBox, QTabWidget

from gui.controller import VaultController
from gui.icons import app_icon
from gui.tabs import Tab
from gui.tabs.activity import ActivityTab
from gui.tabs.dashboard import DashboardTab
from gui.tabs.library import LibraryTab
from gui.tabs.network import NetworkTab
from gui.tabs.security import SecurityTab
from gui.tabs.sessions import SessionsTab
from gui.tabs.storage import StorageTab
from gui.tabs.users import UsersTab
from gui.tabs.workers import WorkersTab

TABS = (DashboardTab, LibraryTab, UsersTab, SessionsTab, WorkersTab, NetworkTab, StorageTab, SecurityTab,
        ActivityTab)


class AdminWindow(QMainWindow):
    def __init__(self, controller: VaultController, quit_on_close: bool = False) -> None:
        super().__init__()
        self.controller = controller
        self.quit_on_close = quit_on_close  # with no menu bar icon, closing the window is quitting
        self.setWindowTitle("Vault")
        self.setWindowIcon(app_icon())
        self.tabs = QTabWidget()
        self.pages: dict[str, Tab] = {}
        for cls in TABS:
            page = cls(controller)
            self.pages[cls.title] = page
            self.tabs.addTab(page, cls.title)
        self.tabs.currentChanged.connect(lambda _index: self.current().refresh())
        self.setCentralWidget(self.tabs)
        self.resize(900, 620)
        controller.failed.connect(self._failed)

    def current(self) -> Tab:
        page = self.tabs.currentWidget()
        if not isinstance(page, Tab):  # every page added above is a Tab; Qt types it as any QWidget
            raise RuntimeError("The admin window has no tab to show")
        return page

    def show_tab(self, title: str) -> Tab:
        page = self.pages[title]
        if self.tabs.currentWidget() is page:
            page.refresh()
        self.tabs.setCurrentWidget(page)
        return page

    def present(self) -> None:
        self.show()
        self.raise_()
        self.activateWindow()
        self.current().refresh()

    def _failed(self, message: str) -> None:
        if self.isVisible():
            self.statusBar().showMessage(message, 10_000)

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.quit_on_close and event.spontaneous():  # the owner clicked the close button
            answer = QMessageBox.question(self, "Quit Vault", "Quit Vault? The gallery stops serving until "
                                          "you open Vault again.")
            if answer != QMessageBox.StandardButton.Yes:
                event.ignore()
                return
            QApplication.quit()
        event.accept()
