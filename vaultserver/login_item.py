"""Start Vault at login (macOS): a per-user LaunchAgent rendered from the template in packaging/.

A LaunchAgent plist in ~/Library/LaunchAgents is the login item that needs no helper app and no
entitlement; launchd reads it at the next login. Nothing here talks to launchd: loading the agent now would
start a second Vault beside the running one. So installing, removing and asking are plain file operations,
which is also what lets the tests run them on Linux against a temporary home folder. Off macOS the real
home folder is left alone: `install` refuses, `installed` is False and `remove` has nothing to do.
"""

from __future__ import annotations

import os
import plistlib
import string
import sys
from pathlib import Path
from xml.sax.saxutils import escape

from vaultserver.config import bundled_path
from vaultserver.errors import ConfigurationError

LABEL = "home.vault.server"
"""The LaunchAgent's label, which is also Vault.app's bundle identifier (packaging/bundle_info.py)."""

TEMPLATE_NAME = "launch-agent.plist.template"


def template_path() -> Path:
    """packaging/ in a checkout, or the copy inside the frozen app (build_app.spec puts it there)."""
    return bundled_path("packaging", TEMPLATE_NAME)


def supported() -> bool:
    """Whether the setting means anything here (the GUI hides its checkbox elsewhere)."""
    return sys.platform == "darwin"


def agent_path(home: Path | None = None) -> Path:
    return (home or Path.home()) / "Library" / "LaunchAgents" / f"{LABEL}.plist"


def render(executable: Path) -> str:
    """The agent's XML for this executable; checked to parse as a property list before anyone writes it."""
    if not executable.is_absolute():
        raise ConfigurationError(f"launchd needs an absolute path to start Vault, not {executable}")
    template = string.Template(template_path().read_text(encoding="utf-8"))
    text = template.substitute(label=escape(LABEL), executable=escape(str(executable)))
    plistlib.loads(text.encode("utf-8"))
    return text


def install(executable: Path, home: Path | None = None) -> Path:
    """Write (or rewrite, e.g. after the app moved) the agent that starts `executable` at login."""
    if home is None and not supported():
        raise ConfigurationError("Starting Vault at login is only available on macOS")
    path = agent_path(home)
    text = render(executable)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    os.chmod(partial, 0o644)  # launchd ignores agents that others can write
    os.replace(partial, path)
    return path


def remove(home: Path | None = None) -> bool:
    """Delete the agent; False if there was none."""
    if home is None and not supported():
        return False
    path = agent_path(home)
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def installed(home: Path | None = None) -> bool:
    if home is None and not supported():
        return False
    return agent_path(home).is_file()
