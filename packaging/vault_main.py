"""The packaged Vault's entry point (the script build_app.spec freezes): one executable, three ways in.

- `Vault` alone (or with `vault`'s own options: --data-dir, --smoke-test, --screenshot DIR …) is the GUI's
  launcher, `vault`: the menu-bar app where there is a display, else the headless server. That is how
  Finder, the Dock and the login item start it.
- `Vault serve`, `Vault doctor`, `Vault user add …`: any `vaultserver` command, unchanged.
- `Vault --self-check`: vaultserver.selfcheck over both packages, plus a Qt check that only the bundle can
  make, since the server core never names Qt or the GUI. CI runs it on every build; an owner can run it
  on a new Mac.
The script runs unfrozen too (`python packaging/vault_main.py --self-check`), which is how the tests try it.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from gui import launch
from vaultserver import cli, selfcheck

PACKAGES = ("vaultserver", "gui")  # what the self-check imports, module by module: all of the bundle's code


def check_qt() -> str:
    """Qt's plugins are what a frozen build loses most easily: start a QApplication and draw the SVG icon."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # a check never opens a window or needs a display
    from PySide6 import QtCore, QtGui, QtSvg, QtWidgets

    from vaultserver.api.web import web_root

    existing = QtWidgets.QApplication.instance()
    app = existing if isinstance(existing, QtWidgets.QApplication) else QtWidgets.QApplication([sys.argv[0]])
    icon = web_root() / "assets" / "icon.svg"
    renderer = QtSvg.QSvgRenderer(str(icon))
    if not renderer.isValid():
        raise selfcheck.CheckFailed(f"QtSvg cannot read {icon}")
    image = QtGui.QImage(64, 64, QtGui.QImage.Format.Format_ARGB32)
    image.fill(0)
    painter = QtGui.QPainter(image)
    renderer.render(painter)
    painter.end()
    if image.pixelColor(32, 32).alpha() == 0:
        raise selfcheck.CheckFailed("the SVG icon rendered empty")
    if QtGui.QIcon(str(icon)).pixmap(32, 32).isNull():  # needs the iconengines/qsvgicon plugin
        raise selfcheck.CheckFailed("QIcon cannot load the SVG icon: the SVG icon engine plugin is missing")
    native = {"darwin": "cocoa", "win32": "windows"}.get(sys.platform, "xcb")
    plugins = Path(QtCore.QLibraryInfo.path(QtCore.QLibraryInfo.LibraryPath.PluginsPath)) / "platforms"
    if not any(native in path.name for path in plugins.glob("*")):
        raise selfcheck.CheckFailed(f"the {native} platform plugin is missing from {plugins}")
    return f"Qt {QtCore.qVersion()} on {app.platformName()} ({native} plugin present), SVG icon drawn"


def commands() -> set[str]:
    """The `vaultserver` subcommand names, read from its parser so a new command needs no change here."""
    parser = cli.build_parser()
    return {name for action in parser._actions if isinstance(action, argparse._SubParsersAction)
            for name in action.choices}


def main(argv: list[str] | None = None) -> int:
    # Finder on old macOS versions adds a process serial number argument; it means nothing to Vault.
    args = [a for a in (sys.argv[1:] if argv is None else argv) if not a.startswith("-psn_")]
    if "--self-check" in args:
        logging.basicConfig(level=logging.DEBUG if "-v" in args else logging.WARNING,
                            format="%(levelname)s %(name)s: %(message)s")
        return 0 if selfcheck.run(sys.stdout, extra_checks=[("Qt", check_qt)], packages=PACKAGES) else 1
    if commands() & set(args):
        return cli.main(args)
    return launch.main(args)


if __name__ == "__main__":
    sys.exit(main())
