"""Reading and changing settings; listeners (the runtime, the GUI controller) hear about every change.

The import folder is fenced here, the one place the admin API, the CLI and the app all change settings
through: Vault deletes what it imports and moves what it cannot read, so the folder may never be Vault's own
data folder, anything inside it (but the default `imports/`), anything containing it, the home folder or
the top of the disk.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vaultserver.config import AppPaths, Settings, load_settings, save_settings
from vaultserver.crypto.tls import local_addresses
from vaultserver.errors import ValidationError, VaultError

log = logging.getLogger(__name__)

Listener = Callable[[Settings, Settings], None]


def import_folder_refusal(paths: AppPaths, folder: str) -> str | None:
    """Why `folder` cannot be the import folder, or None when it can ("" is the default, always fine).

    `~` and symbolic links are resolved first, so a link to the data folder is seen for what it is.
    """
    if not folder:
        return None
    given = Path(folder).expanduser()
    if not given.is_absolute():
        return "is not a full path (start it with / or ~)"
    chosen, data = given.resolve(), paths.root.resolve()
    if chosen == paths.default_imports.resolve():
        return None
    if chosen == Path(chosen.anchor):
        return "is the top of the disk"
    if chosen == Path.home().resolve():
        return "is your home folder itself (choose a folder inside it)"
    if chosen == data:
        return "is Vault's data folder"
    if chosen.is_relative_to(data):
        return "is inside Vault's data folder (only its imports folder may be used)"
    if data.is_relative_to(chosen):
        return "contains Vault's data folder"
    return None


def check_import_folder(paths: AppPaths, folder: str) -> None:
    """VALIDATION_001 naming the reason when `folder` may not be the import folder."""
    if reason := import_folder_refusal(paths, folder):
        raise ValidationError(f"The import folder {folder} {reason}: Vault removes the files it imports "
                              "from that folder", details={"fields": {"import_dir": reason}})


class SettingsService:
    def __init__(self, paths: AppPaths) -> None:
        self._paths = paths
        self._lock = threading.Lock()
        self._current = self._fenced(load_settings(paths))
        self._listeners: list[Listener] = []

    def _fenced(self, loaded: Settings) -> Settings:
        """A settings file from before the fence, or edited by hand, may name a refused folder."""
        if reason := import_folder_refusal(self._paths, loaded.import_dir):
            log.error("Not watching the import folder %s from %s: it %s. Watching %s instead.",
                      loaded.import_dir, self._paths.settings_file, reason, self._paths.default_imports)
            return loaded.updated(import_dir="")
        return loaded

    @property
    def current(self) -> Settings:
        return self._current

    @property
    def paths(self) -> AppPaths:
        return self._paths

    def update(self, **changes: Any) -> Settings:
        """Validate, persist, then notify. Invalid input raises VALIDATION_001 and changes nothing."""
        unknown = sorted(set(changes) - set(Settings.model_fields))
        if unknown:
            raise ValidationError("Unknown settings: " + ", ".join(unknown), details={"fields": unknown})
        with self._lock:
            old = self._current
            new = old.updated(**changes)
            if new.import_dir != old.import_dir:
                check_import_folder(self._paths, new.import_dir)
            save_settings(self._paths, new)
            self._current = new
        for listener in list(self._listeners):
            listener(old, new)
        return new

    def update_from_network(self, **changes: Any) -> Settings:
        """An admin's change over the HTTP API: `update`, after the checks only a remote change meets.

        Settings declared `local_only` (the import folder, the key store) are for the owner at the Mac: a
        remote admin changing one is refused (SEC_003). A new `host` must be one this machine can listen on,
        or the change would stop the server with no way back through the API. Sending a current value back
        unchanged (a form saving all its fields) is not a change.
        """
        current = self._current.model_dump()
        changed = {name for name, value in changes.items() if name in current and current[name] != value}
        if refused := sorted(name for name in changed if _local_only(name)):
            labels = ", ".join(_label(name) for name in refused)
            raise VaultError(f"{labels}: can be changed only in the Vault app on the Mac itself, not over "
                             "the network", code="SEC_003", status=403,
                             details={"field": refused[0], "fields": refused})
        if "host" in changed and not _can_listen_on(changes["host"]):
            raise ValidationError(
                f"host: this machine cannot listen on {changes['host']!r}; use 0.0.0.0 (every interface), "
                "127.0.0.1 (this Mac only) or one of its own addresses", details={"field": "host"})
        return self.update(**changes)

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)


def _declared(name: str) -> dict[str, Any]:
    extra = Settings.model_fields[name].json_schema_extra
    return extra if isinstance(extra, dict) else {}


def _local_only(name: str) -> bool:
    return _declared(name).get("local_only") is True


def _label(name: str) -> str:
    label = _declared(name).get("label")
    return label if isinstance(label, str) else name


def _can_listen_on(host: Any) -> bool:
    """Whether `host` is an address of this machine (or every address) that a socket can be bound to now."""
    if not isinstance(host, str) or not host:
        return False
    try:
        family, kind, proto, _, sockaddr = socket.getaddrinfo(
            host, 0, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)[0]
        address = ipaddress.ip_address(sockaddr[0])
        if not (address.is_unspecified or address.is_loopback or str(address) in local_addresses()):
            return False
        with socket.socket(family, kind, proto) as probe:  # e.g. the VPN's address while the VPN is down
            probe.bind(sockaddr)
    except (OSError, ValueError):
        return False
    return True
