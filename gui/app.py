"""The menu-bar app: first run shows the wizard, then Vault runs from the tray (or the admin window alone).

`gui.launch` decides whether it runs at all (`vault`, `python -m gui`) and owns the offscreen modes, which
build on `VaultApp` and `wait_until` here.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable

from PySide6.QtCore import QCoreApplication, QEventLoop, QObject, QTimer
from PySide6.QtWidgets import QApplication, QMessageBox, QSystemTrayIcon, QWidget

from gui.controller import VaultController
from gui.icons import app_icon
from gui.tray import TrayMenu
from gui.window import AdminWindow
from gui.wizard import FirstRunWizard
from vaultserver import APP_NAME, __version__
from vaultserver.config import AppPaths, resolve_data_dir
from vaultserver.errors import VaultError
from vaultserver.logs import setup_logging

log = logging.getLogger(__name__)


class VaultApp(QObject):
    """Wires the controller to its faces: the wizard on first run, then the tray (or the window alone)."""

    def __init__(self, controller: VaultController, use_tray: bool | None = None) -> None:
        super().__init__()
        self.controller = controller
        self.use_tray = QSystemTrayIcon.isSystemTrayAvailable() if use_tray is None else use_tray
        self.window = AdminWindow(controller, quit_on_close=not self.use_tray)
        self.tray = TrayMenu(controller, self.window.present, self.quit, self) if self.use_tray else None
        self.wizard: FirstRunWizard | None = None
        controller.started.connect(self._started)
        controller.start_failed.connect(self._start_failed)
        controller.notify.connect(self._notify_without_tray)

    def begin(self) -> None:
        if self.controller.needs_setup:
            self.wizard = FirstRunWizard(self.controller)
            self.wizard.accepted.connect(self.controller.start)
            self.wizard.rejected.connect(self.quit)
            self.wizard.show()
        else:
            self.controller.start()

    def _started(self) -> None:
        if self.tray:
            self.tray.show()
            if self.wizard:  # right after setup, show where things are
                self.window.present()
        else:
            self.window.present()

    def _start_failed(self, message: str) -> None:
        QMessageBox.critical(None, f"{APP_NAME} could not start", message)
        self.quit()

    def _notify_without_tray(self, title: str, text: str) -> None:
        if not self.tray:
            self.window.statusBar().showMessage(f"{title}: {text}", 15_000)

    def quit(self) -> None:
        self.window.hide()
        if self.tray:
            self.tray.icon.hide()
        self.controller.shutdown()
        QCoreApplication.quit()


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> object:
    """Let Qt run until `condition()` is truthy; offscreen modes and tests use it instead of sleeping."""
    deadline = time.monotonic() + timeout
    loop = QEventLoop()
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"Timed out after {timeout:.0f} s waiting for {what}")
        QTimer.singleShot(50, loop.quit)
        loop.exec()
    return result


def qt_application() -> QApplication:
    """The one QApplication, named, with Vault's icon, outliving its windows (Vault stays in the tray)."""
    existing = QApplication.instance()
    if existing is None:
        app = QApplication(sys.argv[:1])
    elif isinstance(existing, QApplication):
        app = existing
    else:  # a QCoreApplication cannot show windows, and Qt allows only one application object
        raise RuntimeError(f"Vault needs a QApplication, but a {type(existing).__name__} is already running")
    app.setApplicationName(APP_NAME)
    app.setApplicationVersion(__version__)
    app.setWindowIcon(app_icon())
    app.setQuitOnLastWindowClosed(False)  # closing the admin window leaves Vault in the menu bar
    return app


def run_app(data_dir: str | None, host: str | None = None, port: int | None = None,
            verbose: bool = False) -> int:
    """Run the menu-bar app on the owner's data folder until Quit."""
    app = qt_application()
    paths = AppPaths(resolve_data_dir(data_dir))
    try:
        paths.ensure()
        setup_logging(paths, verbose)
        controller = VaultController(paths, host=host, port=port)
    except VaultError as exc:
        QMessageBox.critical(QWidget(), f"{APP_NAME} could not start", exc.message)
        return 1
    vault = VaultApp(controller)
    vault.begin()
    return app.exec()
