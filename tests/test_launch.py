"""`vault`: the menu-bar app where there is a display, else the headless server, with a hint when only a few
X11 libraries are missing. The library lookup and Qt's import are stood in for, so no test here depends on
what the machine happens to have installed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from gui import launch

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def chosen(monkeypatch):
    """Which front end the launcher picked, with which options; neither really runs."""
    picked: list[tuple[str, object]] = []
    monkeypatch.setattr(launch, "qt_importable", lambda: True)
    monkeypatch.setattr(launch, "run_headless", lambda args: picked.append(("headless", args)) or 0)
    monkeypatch.setattr(launch, "run_menu_bar_app", lambda args: picked.append(("app", args)) or 0)
    return picked


def on_a_linux_desktop(monkeypatch) -> None:
    monkeypatch.setattr(launch.sys, "platform", "linux")
    monkeypatch.setenv("DISPLAY", ":99")


def lookup_lacking(*missing: str):
    return lambda library: None if library in missing else f"lib{library}.so.1"


@pytest.mark.parametrize(("missing", "packages"), [
    (["xcb-cursor"], ["libxcb-cursor0"]),
    (list(launch.X11_LIBRARIES), list(launch.X11_LIBRARIES.values())),
])
def test_launch_runs_headless_with_a_hint_when_qt_would_lack_its_x11_libraries(
        chosen, monkeypatch, capsys, paths, missing, packages):
    on_a_linux_desktop(monkeypatch)
    assert launch.main(["--data-dir", str(paths.root)], find_library=lookup_lacking(*missing)) == 0
    assert [front for front, _args in chosen] == ["headless"]
    hint = capsys.readouterr().err
    assert f"apt-get install {' '.join(packages)}\n" in hint and "Running headless meanwhile." in hint


def test_with_a_display_and_every_library_the_menu_bar_app_runs(chosen, monkeypatch, capsys, paths):
    on_a_linux_desktop(monkeypatch)
    assert launch.main(["--data-dir", str(paths.root), "--port", "1028"], find_library=lookup_lacking()) == 0
    (front, args), = chosen
    assert front == "app" and args.data_dir == str(paths.root) and args.port == 1028
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("why", ["no display", "no Qt"])
def test_without_a_display_or_qt_it_runs_headless_without_a_hint(chosen, monkeypatch, capsys, why):
    on_a_linux_desktop(monkeypatch)
    if why == "no display":
        monkeypatch.delenv("DISPLAY")
        monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    else:
        monkeypatch.setattr(launch, "qt_importable", lambda: False)
    assert launch.main([], find_library=lookup_lacking(*launch.X11_LIBRARIES)) == 0
    assert [front for front, _args in chosen] == ["headless"] and capsys.readouterr().err == ""


def test_headless_is_vaultserver_serve_with_this_run_s_options(monkeypatch):
    parser = launch.build_parser()
    args = parser.parse_args(["--data-dir", "/tmp/v", "-v", "--host", "127.0.0.1", "--port", "0"])
    assert launch.headless_command(args) == [sys.executable, "-m", "vaultserver.cli", "--data-dir", "/tmp/v",
                                             "-v", "serve", "--host", "127.0.0.1", "--port", "0"]
    monkeypatch.setattr(sys, "frozen", True, raising=False)  # the packaged app passes commands through
    assert launch.headless_command(parser.parse_args([])) == [sys.executable, "serve"]


@pytest.mark.skipif(sys.platform == "win32", reason="the launcher execs the server on POSIX systems")
@pytest.mark.timeout(120)
def test_vault_without_a_display_becomes_the_headless_server(paths):
    env = {key: value for key, value in os.environ.items() if key not in ("DISPLAY", "WAYLAND_DISPLAY")}
    command = [sys.executable, "-m", "gui", "--data-dir", str(paths.root), "--host", "127.0.0.1",
               "--port", "0"]
    vault = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    try:
        first = vault.stdout.readline()
    finally:
        vault.send_signal(signal.SIGTERM)  # the same process: the launcher became the server
        _out, err = vault.communicate(timeout=60)
    assert first.startswith("Vault is serving https://localhost:"), first + err
    assert vault.returncode == 0, err
