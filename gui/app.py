"""The menu-bar app: `python -m gui` (or `vault`). First run shows the wizard, then Vault runs from the tray.

Also two offscreen modes that need no display: `--smoke-test` (start the whole app on a temp data dir, check
`/api/health` over HTTPS, stop) and `--screenshot DIR` (render every admin tab and the wizard to PNG).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QEventLoop, QObject, QTimer
from PySide6.QtWidgets import QApplication, QMessageBox, QSystemTrayIcon, QWidget

from gui.controller import VaultController
from gui.icons import app_icon
from gui.tray import TrayMenu
from gui.window import AdminWindow
from gui.wizard import FirstRunWizard
from vaultserver import APP_NAME, __version__
from vaultserver.cli import setup_logging
from vaultserver.config import AppPaths, resolve_data_dir
from vaultserver.errors import VaultError
from vaultserver.selfcheck import throwaway_paths

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


def smoke_test(out=sys.stdout) -> int:
    from vaultserver.server import client_context

    with tempfile.TemporaryDirectory(prefix="vault-smoke-") as tmp:
        paths = throwaway_paths(Path(tmp))
        controller = VaultController(paths, host="127.0.0.1", port=0)
        controller.services.users.create("owner", "Smoke!test1", "admin")
        vault = VaultApp(controller, use_tray=False)
        vault.begin()
        try:
            wait_until(lambda: controller.status.server, 60, "the server to start")
            url = controller.runtime.endpoint.url + "api/health"
            context = client_context(str(paths.private / "tls" / "ca.pem"))
            with urllib.request.urlopen(url, context=context, timeout=10) as response:
                health = json.loads(response.read())
            print(f"{APP_NAME} {__version__}: {url} answered {response.status} {json.dumps(health)}",
                  file=out)
            ok = response.status == 200 and health.get("status") == "ok"
        finally:
            vault.quit()
    print("smoke test passed" if ok else "smoke test FAILED", file=out)
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vault", description="Vault, the private home media server.")
    parser.add_argument("--data-dir", help="data folder (default: $VAULT_HOME, else application support)")
    parser.add_argument("--host", help="listen address for this run (default: the setting)")
    parser.add_argument("--port", type=int, help="port for this run (default: the setting, 1027)")
    parser.add_argument("--screenshot", metavar="DIR", help="render each admin tab and the wizard to PNG")
    parser.add_argument("--smoke-test", action="store_true", help="start offscreen, check the server, exit")
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument("--version", action="version", version=f"vault {__version__}")
    args = parser.parse_args(argv)
    if args.smoke_test or args.screenshot:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName(APP_NAME)
    app.setApplicationVersion(__version__)
    app.setWindowIcon(app_icon())
    app.setQuitOnLastWindowClosed(False)  # closing the admin window leaves Vault in the menu bar
    if args.smoke_test:
        return smoke_test()
    if args.screenshot:
        from gui.screenshots import render_all

        return render_all(Path(args.screenshot))
    paths = AppPaths(resolve_data_dir(args.data_dir))
    try:
        paths.ensure()
        setup_logging(paths, args.verbose)
        controller = VaultController(paths, host=args.host, port=args.port)
    except VaultError as exc:
        QMessageBox.critical(QWidget(), f"{APP_NAME} could not start", exc.message)
        return 1
    vault = VaultApp(controller)
    vault.begin()
    return app.exec()
