"""Project rules that keep the layers apart."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def imported_modules(package: Path):
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                yield path, [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                yield path, [node.module]


def test_the_server_core_never_imports_qt_or_the_gui():
    offenders = [f"{path.relative_to(ROOT)}: {name}" for path, names in imported_modules(ROOT / "vaultserver")
                 for name in names if name.split(".")[0] in {"PySide6", "shiboken6", "gui"}
                 and not (path.name == "cli.py" and name.startswith("gui"))]
    assert offenders == []


def test_services_do_not_depend_on_the_pipeline():
    offenders = [f"{path.name}: {name}" for path, names in imported_modules(ROOT / "vaultserver" / "services")
                 for name in names if name.startswith(("vaultserver.pipeline", "vaultserver.api"))]
    assert offenders == []


def test_every_module_says_what_it_is_for():
    missing = [str(p.relative_to(ROOT)) for p in (ROOT / "vaultserver").rglob("*.py")
               if "versions" not in p.parts and not ast.get_docstring(ast.parse(p.read_text()))]
    assert missing == []
