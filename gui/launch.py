"""`vault` (and `python -m gui`): the menu-bar app where there is a display, else Vault headless.

Vault has two front ends over one core: the menu-bar app and the `vaultserver` command line. This launcher,
which lives with the GUI because the core never names it, picks one. With a display (a Mac, a Linux desktop)
and a Qt that can use it, the menu-bar app runs; otherwise this process becomes `vaultserver serve` on the
same data folder, and says why when all that is missing is a few X11 libraries Qt needs.

It also runs the app's two offscreen modes, which need no display: `--smoke-test` and `--screenshot DIR`.
No Qt is imported before the choice is made, so a missing or broken Qt can still be worked around.
"""

from __future__ import annotations

import argparse
import ctypes.util
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from vaultserver import __version__

# What Qt's X11 plugin loads beyond a desktop's usual libraries; without them Qt aborts the process.
X11_LIBRARIES = {"xcb-cursor": "libxcb-cursor0", "xcb-icccm": "libxcb-icccm4",
                 "xcb-keysyms": "libxcb-keysyms1", "xkbcommon-x11": "libxkbcommon-x11-0"}

LibraryLookup = Callable[[str], str | None]
"""Finds a shared library by its short name (as ctypes.util.find_library does), None when absent."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vault", description="Vault, the private home media server.")
    parser.add_argument("--data-dir", help="data folder (default: $VAULT_HOME, else application support)")
    parser.add_argument("--host", help="listen address for this run (default: the setting)")
    parser.add_argument("--port", type=int, help="port for this run (default: the setting, 1027)")
    parser.add_argument("--screenshot", metavar="DIR", help="render each admin tab and the wizard to PNG")
    parser.add_argument("--smoke-test", action="store_true", help="start offscreen, check the server, exit")
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument("--version", action="version", version=f"vault {__version__}")
    return parser


def missing_x11_packages(find_library: LibraryLookup | None = None) -> list[str]:
    """The Debian packages of the X11 libraries Qt needs that the lookup cannot find."""
    lookup = find_library or ctypes.util.find_library
    return [package for library, package in X11_LIBRARIES.items() if not lookup(library)]


def qt_importable() -> bool:
    """Whether Qt's widgets load (its own libraries; the display plugin's are only loaded at start-up)."""
    try:
        import PySide6.QtWidgets  # noqa: F401
    except ImportError:
        return False
    return True


def headless_reason(find_library: LibraryLookup | None = None) -> str | None:
    """None if the menu-bar app can run here; else why not, for the owner ("" when there is nothing to fix:
    no display at all, or no Qt installed)."""
    if not (sys.platform == "darwin" or os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return ""
    if not qt_importable():
        return ""
    if sys.platform.startswith("linux") and (missing := missing_x11_packages(find_library)):
        return ("The menu-bar app needs a few X11 libraries: apt-get install " + " ".join(missing)
                + "\nRunning headless meanwhile.")
    return None


def headless_command(args: argparse.Namespace) -> list[str]:
    """`vaultserver serve` for this run's data folder, address and port, as this install runs it: the
    packaged app passes commands through to the command line; a checkout runs the module."""
    frozen = getattr(sys, "frozen", False)
    program = [sys.executable] if frozen else [sys.executable, "-m", "vaultserver.cli"]
    options = (["--data-dir", args.data_dir] if args.data_dir else []) + (["-v"] if args.verbose else [])
    listen = (["--host", args.host] if args.host else []) + (["--port", str(args.port)]
                                                             if args.port is not None else [])
    return [*program, *options, "serve", *listen]


def run_headless(args: argparse.Namespace) -> int:
    """Become the headless server, so that Ctrl-C, launchd's SIGTERM and the exit code are the server's."""
    command = headless_command(args)
    sys.stdout.flush()
    sys.stderr.flush()
    if sys.platform == "win32":  # no exec that keeps the console there
        return subprocess.call(command)
    os.execv(command[0], command)
    return 1  # not reached: exec replaces this process


def run_offscreen(args: argparse.Namespace) -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from gui.app import qt_application

    qt_application()
    if args.smoke_test:
        from gui.smoke import smoke_test

        return smoke_test()
    from gui.screenshots import render_all

    return render_all(Path(args.screenshot))


def run_menu_bar_app(args: argparse.Namespace) -> int:
    from gui.app import run_app

    return run_app(args.data_dir, host=args.host, port=args.port, verbose=args.verbose)


def main(argv: list[str] | None = None, find_library: LibraryLookup | None = None) -> int:
    """`find_library` looks up the X11 libraries (ctypes' lookup unless given): tests pass their own."""
    args = build_parser().parse_args(argv)
    if args.smoke_test or args.screenshot:
        return run_offscreen(args)
    reason = headless_reason(find_library)
    if reason is None:
        return run_menu_bar_app(args)
    if reason:
        print(reason, file=sys.stderr, flush=True)
    return run_headless(args)
