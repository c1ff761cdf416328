"""Where Vault's log goes: the console and a rotating `logs/vault.log` in the data folder.

Both front ends (the `vaultserver` command line and the menu-bar app) call `setup_logging` once at start, so
a problem reads the same in the log whichever way Vault was started.
"""

from __future__ import annotations

import io
import logging
import logging.handlers
import os
import sys

from vaultserver.config import PRIVATE_FILE_MODE, AppPaths

LOG_FILE = "vault.log"
LOG_BYTES = 5_000_000
LOG_BACKUPS = 3


class OwnerOnlyLogFile(logging.handlers.RotatingFileHandler):
    """The rotating log, each file created 0600 whatever the umask: log lines name users, files and
    addresses."""

    def _open(self) -> io.TextIOWrapper:
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND, PRIVATE_FILE_MODE)
        os.fchmod(fd, PRIVATE_FILE_MODE)
        stream = os.fdopen(fd, self.mode, encoding=self.encoding, errors=self.errors)
        assert isinstance(stream, io.TextIOWrapper)  # a text mode ("a"), as the base class opens it
        return stream


def setup_logging(paths: AppPaths, verbose: bool, quiet: bool = True) -> None:
    """Console (warnings unless verbose) plus a rotating file in logs/; once per process."""
    root = logging.getLogger()
    if any(getattr(h, "vault_log", False) for h in root.handlers):
        return
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.DEBUG if verbose else (logging.WARNING if quiet else logging.INFO))
    console.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root.addHandler(console)
    paths.logs.mkdir(parents=True, exist_ok=True)
    file_handler = OwnerOnlyLogFile(
        paths.logs / LOG_FILE, maxBytes=LOG_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8"
    )
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    file_handler.vault_log = True  # type: ignore[attr-defined]
    root.addHandler(file_handler)
