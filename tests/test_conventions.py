"""Project rules that keep the layers apart."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# What the menu-bar app may use of the core: the same doors the command line uses. The runtime (start/stop,
# pause, job events, imports, the certificate, health), the services and their plain value types, the
# settings declaration and data-dir paths, the error family, the log set-up both front ends share, and the
# package's own constants (name, version). Four more, each with its reason:
# - vaultserver.login_item: the tray's "Open at Login" writes the macOS LaunchAgent that starts the packaged
#   app. It is OS integration of the desktop app itself, holds no Vault state, and no service or runtime
#   could own it better (the headless command line has no use for it).
# - vaultserver.https_client: the smoke test asks the running app for /api/health. It is the one HTTPS client,
#   shared by the self-check, the benchmark and the tests, so the GUI uses it rather than a client of its own.
# - vaultserver.backup: Back Up Now, Verify and the wizard's restore are the same doors the command line's
#   backup, verify-backup and restore commands use, so both front ends back up and restore alike.
# - vaultserver.progress: the value those doors report progress in, and the throttle both front ends pass it
#   through (the terminal's line, the app's progress bars).
# Everything else (pipeline, crypto, api, cli, server, db, selfcheck, ...) is reached through those doors.
GUI_MAY_IMPORT = ("vaultserver.runtime", "vaultserver.services", "vaultserver.config", "vaultserver.errors",
                  "vaultserver.logs", "vaultserver.login_item", "vaultserver.https_client",
                  "vaultserver.backup", "vaultserver.progress")
PACKAGE_CONSTANTS = "vaultserver"  # `from vaultserver import APP_NAME, __version__`


def _module_of(module: str, name: str) -> str:
    """`from a import b` imports the module a.b when b is one of a's modules, else a name defined in a."""
    candidate = ROOT.joinpath(*module.split("."), name)
    is_module = candidate.with_suffix(".py").exists() or (candidate / "__init__.py").exists()
    return f"{module}.{name}" if is_module else module


def imported_modules(package: Path):
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                yield path, [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                yield path, [_module_of(node.module, alias.name) for alias in node.names]


def test_the_server_core_never_imports_qt_or_the_gui():
    offenders = [f"{path.relative_to(ROOT)}: {name}" for path, names in imported_modules(ROOT / "vaultserver")
                 for name in names if name.split(".")[0] in {"PySide6", "shiboken6", "gui"}]
    assert offenders == []


def test_the_gui_reaches_the_core_only_through_the_runtime_and_the_services():
    def allowed(name: str) -> bool:
        return name == PACKAGE_CONSTANTS or any(name == door or name.startswith(door + ".")
                                                for door in GUI_MAY_IMPORT)

    offenders = [f"{path.relative_to(ROOT)}: {name}" for path, names in imported_modules(ROOT / "gui")
                 for name in names if name.split(".")[0] == "vaultserver" and not allowed(name)]
    assert offenders == []


def test_the_import_rule_sees_modules_imported_by_name_from_their_package():
    assert _module_of("vaultserver", "cli") == "vaultserver.cli"
    assert _module_of("vaultserver", "pipeline") == "vaultserver.pipeline"
    assert _module_of("vaultserver", "APP_NAME") == "vaultserver"


def test_services_do_not_depend_on_the_pipeline():
    offenders = [f"{path.name}: {name}" for path, names in imported_modules(ROOT / "vaultserver" / "services")
                 for name in names if name.startswith(("vaultserver.pipeline", "vaultserver.api"))]
    assert offenders == []


def test_every_module_says_what_it_is_for():
    modules = [*(ROOT / "vaultserver").rglob("*.py"), *(ROOT / "gui").rglob("*.py")]
    missing = [str(p.relative_to(ROOT)) for p in modules
               if "versions" not in p.parts and not ast.get_docstring(ast.parse(p.read_text()))]
    assert missing == []
