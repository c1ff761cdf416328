"""The packaged app: its self-check, its login item, its entry point, and the PyInstaller build itself."""

from __future__ import annotations

import importlib.util
import io
import os
import plistlib
import stat
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from vaultserver import login_item, selfcheck
from vaultserver.errors import ConfigurationError

ROOT = Path(__file__).resolve().parents[1]
APP = Path("/Applications/Vault.app/Contents/MacOS/Vault")


def load_script(name: str) -> ModuleType:
    """A module of packaging/ by path: that folder is not a package (it would shadow PyPI's `packaging`)."""
    path = ROOT / "packaging" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"vault_packaging_{name}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"{path} cannot be loaded as a module")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def isolated_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """An environment whose home and data folder are under tmp_path, so a stray write would show there."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {**os.environ, "HOME": str(home), "VAULT_HOME": str(tmp_path / "owner-data"), **extra}
    env.pop("VAULT_DATABASE_URL", None)
    return env


# --- the self-check, unfrozen -------------------------------------------------------------------------------


def test_self_check_passes_from_a_checkout_without_touching_the_owners_data(tmp_path):
    result = subprocess.run([sys.executable, "-m", "vaultserver.cli", "self-check"], capture_output=True,
                            text=True, timeout=300, env=isolated_env(tmp_path, VAULT_KEYSTORE="keychain"))
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    checks = lines[1:-1]
    names = [line.split()[1] for line in checks]
    assert names == ["modules", "ffmpeg", "data", "https", "web", "photo", "video", "sign-in", "backup",
                     "stop"]
    assert all(line.startswith("✓ ") for line in checks), result.stdout
    assert "file key store" in result.stdout and "certificate verified" in result.stdout
    assert "modules of vaultserver imported" in result.stdout
    assert lines[-1].startswith("Self-check passed: 10 checks in ")
    assert not (tmp_path / "owner-data").exists()
    assert list((tmp_path / "home").iterdir()) == []


def test_self_check_names_each_failure_and_still_runs_the_rest(monkeypatch):
    def broken_qt() -> str:
        raise selfcheck.CheckFailed("the cocoa platform plugin is missing")

    monkeypatch.setenv("VAULT_FFMPEG", "/nonexistent/ffmpeg")
    out = io.StringIO()
    assert selfcheck.run(out, extra_checks=[("Qt", broken_qt)]) is False
    report = out.getvalue()
    assert "✗ ffmpeg" in report and "/nonexistent/ffmpeg" in report
    assert "✗ Qt" in report and "cocoa platform plugin is missing" in report
    for name in ("data folder", "https", "web gallery", "photo", "stop"):
        assert f"✓ {name}" in report, report
    assert "✗ video" in report and "– sign-in" in report and "skipped: video did not pass" in report
    assert report.splitlines()[-1].startswith("Self-check FAILED in ")
    assert report.splitlines()[-1].endswith(": ffmpeg, Qt, video")


def test_a_module_that_cannot_load_a_display_library_is_reported_by_name(tmp_path, monkeypatch):
    package = tmp_path / "fakegui"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "__main__.py").write_text("raise SystemExit('never imported')\n")
    (package / "fine.py").write_text("VALUE = 1\n")
    (package / "app.py").write_text(
        "raise ImportError('libEGL.so.1: cannot open shared object file: No such file or directory')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(selfcheck.CheckFailed) as failure:
        selfcheck.import_all(("fakegui",))
    message = str(failure.value)
    assert message.startswith("1 module(s) failed to import: fakegui.app: ImportError: libEGL.so.1")
    assert "display libraries" in message and "fakegui.fine" not in message


def test_a_package_missing_from_the_build_is_reported():
    with pytest.raises(selfcheck.CheckFailed, match="vault_no_such_package: ModuleNotFoundError"):
        selfcheck.import_all(("vault_no_such_package",))


# --- the entry point ----------------------------------------------------------------------------------------


@pytest.fixture
def entry(monkeypatch):
    """packaging/vault_main.py with the command line's and the launcher's main replaced by recorders."""
    module = load_script("vault_main")
    calls: list[tuple[str, list[str]]] = []
    monkeypatch.setattr(module.cli, "main", lambda argv: calls.append(("vaultserver", argv)) or 0)
    monkeypatch.setattr(module.launch, "main", lambda argv: calls.append(("vault", argv)) or 0)
    return module, calls


@pytest.mark.parametrize(("argv", "expected"), [
    ([], ("vault", [])),
    (["-psn_0_12345"], ("vault", [])),
    (["--data-dir", "/tmp/v"], ("vault", ["--data-dir", "/tmp/v"])),
    (["--smoke-test"], ("vault", ["--smoke-test"])),
    (["--screenshot", "/tmp/shots"], ("vault", ["--screenshot", "/tmp/shots"])),
    (["--screenshot=/tmp/s"], ("vault", ["--screenshot=/tmp/s"])),
    (["serve", "--port", "0"], ("vaultserver", ["serve", "--port", "0"])),
    (["--data-dir", "/tmp/v", "user", "list"], ("vaultserver", ["--data-dir", "/tmp/v", "user", "list"])),
    (["doctor"], ("vaultserver", ["doctor"])),
])
def test_the_app_launches_by_default_and_passes_commands_through(entry, argv, expected):
    module, calls = entry
    assert module.main(argv) == 0
    assert calls == [expected]


def test_the_entry_point_knows_every_cli_command(entry):
    module, _calls = entry
    assert {"serve", "process", "doctor", "self-check", "user", "library"} <= module.commands()
    assert "launch" not in module.commands()  # the launcher is the GUI's (gui/launch.py), not the core's


def test_the_app_s_self_check_imports_the_gui_too(entry, monkeypatch):
    module, calls = entry
    asked: list[tuple[str, ...]] = []
    monkeypatch.setattr(module.selfcheck, "run", lambda out, extra_checks, packages: asked.append(packages))
    assert module.main(["--self-check"]) == 1  # the recorder reports nothing passed
    assert asked == [("vaultserver", "gui")] and calls == []
    assert selfcheck.PACKAGES == ("vaultserver",)  # the core, run alone, never names the GUI


def test_the_qt_check_draws_the_svg_icon(entry):
    module, _calls = entry
    detail = module.check_qt()
    assert detail.startswith("Qt 6.") and "SVG icon drawn" in detail


# --- start at login -----------------------------------------------------------------------------------------


def test_start_at_login_writes_a_launch_agent_for_the_app(tmp_path):
    assert not login_item.installed(home=tmp_path)
    path = login_item.install(APP, home=tmp_path)
    assert path == tmp_path / "Library" / "LaunchAgents" / "home.vault.server.plist"
    assert login_item.installed(home=tmp_path)
    agent = plistlib.loads(path.read_bytes())
    assert agent == {"Label": "home.vault.server", "ProgramArguments": [str(APP)], "RunAtLoad": True,
                     "ProcessType": "Interactive", "LimitLoadToSessionType": "Aqua"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_installing_again_follows_the_app_to_its_new_place(tmp_path):
    login_item.install(APP, home=tmp_path)
    moved = Path("/Users/owner/Applications/Vault & Co <beta>.app/Contents/MacOS/Vault")
    path = login_item.install(moved, home=tmp_path)
    assert plistlib.loads(path.read_bytes())["ProgramArguments"] == [str(moved)]


def test_removing_the_login_item(tmp_path):
    login_item.install(APP, home=tmp_path)
    assert login_item.remove(home=tmp_path) is True
    assert not login_item.installed(home=tmp_path)
    assert login_item.remove(home=tmp_path) is False


def test_a_relative_executable_is_refused(tmp_path):
    with pytest.raises(ConfigurationError, match="absolute path"):
        login_item.install(Path("Vault"), home=tmp_path)
    assert not (tmp_path / "Library").exists()


@pytest.mark.skipif(sys.platform == "darwin", reason="off macOS only")
def test_off_macos_the_real_home_is_left_alone(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert login_item.supported() is False
    assert login_item.installed() is False and login_item.remove() is False
    with pytest.raises(ConfigurationError, match="only available on macOS"):
        login_item.install(APP)
    assert list(tmp_path.iterdir()) == []


# --- the frozen app -----------------------------------------------------------------------------------------

# Names that must not appear anywhere in the bundle: Qt modules Vault does not use (and what their plugins
# drag in), and Tk.
UNUSED_IN_BUNDLE = ("webengine", "quick", "qml", "qt3d", "multimedia", "charts", "pdf", "designer",
                    "virtualkeyboard", "wayland", "gtk", "tkinter", "libtk", "libtcl", "qt/translations/")


def bundled_files(app: Path) -> Path:
    """Where the bundle keeps data files: Contents/Resources in Vault.app, _internal/ in a one-folder app."""
    return app / "Contents" / "Resources" if app.suffix == ".app" else app / "_internal"


@pytest.mark.slow
def test_the_frozen_app_builds_lean_and_passes_its_self_check(frozen_app, tmp_path, capsys):
    build = load_script("build")
    assert frozen_app.returncode == 0, frozen_app.stdout + frozen_app.stderr[-5000:]
    built = frozen_app.stdout.splitlines()[-1]
    with capsys.disabled():
        print(f"\n{built}")
    dist = frozen_app.dist
    app = build.app_path(dist)
    assert built.startswith(f"Built {app} in ") and " MB (largest: " in built

    # The two runs of the built app share nothing, so they run side by side while the bundle is inspected.
    checking, smoking = tmp_path / "self-check", tmp_path / "smoke-test"
    checking.mkdir()
    smoking.mkdir()
    runs = {
        "self-check": subprocess.Popen([str(build.executable(dist)), "--self-check"], stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, text=True,
                                       env=isolated_env(checking, VAULT_KEYSTORE="keychain")),
        "smoke-test": subprocess.Popen([str(build.executable(dist)), "--smoke-test"], stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, text=True,
                                       env=isolated_env(smoking, QT_QPA_PLATFORM="offscreen")),
    }

    try:
        files = [path.relative_to(app).as_posix() for path in app.rglob("*")]
        unused = [name for name in files if any(word in name.lower() for word in UNUSED_IN_BUNDLE)]
        assert unused == []
        for module in ("QtCore", "QtGui", "QtWidgets", "QtSvg"):
            assert any(f"PySide6/{module}." in name for name in files), module
        data = bundled_files(app)
        web = ROOT / "resources" / "web"
        for source in (path for path in web.rglob("*") if path.is_file()):
            copy = data / "resources" / "web" / source.relative_to(web)
            assert copy.read_bytes() == source.read_bytes(), copy
        versions = Path("vaultserver", "db", "migrations", "versions")
        for script in (ROOT / versions).glob("*.py"):
            assert (data / versions / script.name).is_file(), script.name
        assert (data / "packaging" / login_item.TEMPLATE_NAME).is_file()

        outputs = {name: run.communicate(timeout=300) for name, run in runs.items()}
    finally:
        for run in runs.values():  # a failed look at the bundle leaves no app running
            if run.poll() is None:
                run.kill()
                run.wait()

    stdout, stderr = outputs["self-check"]
    assert runs["self-check"].returncode == 0, stdout + stderr
    lines = stdout.splitlines()
    assert lines[0].startswith("Vault self-check (frozen app, ")
    assert all(line.startswith("✓ ") for line in lines[1:-1]) and len(lines[1:-1]) == 11, stdout
    assert any(line.startswith("✓ backup") and "made in the background" in line for line in lines), stdout
    assert lines[-1].startswith("Self-check passed: 11 checks in ")
    ffmpeg_line = next(line for line in lines if line.startswith("✓ ffmpeg"))
    assert f" at {app.resolve()}" in ffmpeg_line or f" at {app}" in ffmpeg_line  # the bundled one
    assert not (checking / "owner-data").exists()

    stdout, stderr = outputs["smoke-test"]
    assert runs["smoke-test"].returncode == 0 and "smoke test passed" in stdout, stdout + stderr
