"""`vault --smoke-test`: the whole menu-bar app started offscreen on a scratch data folder, asked for
`/api/health` over HTTPS (verified against Vault's own CA), then stopped. Needs no display; CI runs it."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import TextIO
from urllib.parse import urlsplit

from gui.app import VaultApp, wait_until
from gui.controller import VaultController
from vaultserver import APP_NAME, __version__
from vaultserver.config import AppPaths
from vaultserver.https_client import HttpsClient

TIMEOUT_SECONDS = 10.0


def smoke_test(out: TextIO = sys.stdout) -> int:
    with tempfile.TemporaryDirectory(prefix="vault-smoke-") as tmp:
        paths = AppPaths.scratch(Path(tmp))
        controller = VaultController(paths, host="127.0.0.1", port=0)
        controller.services.users.create("owner", "Smoke!test1", "admin")
        vault = VaultApp(controller, use_tray=False)
        vault.begin()
        try:
            wait_until(lambda: controller.status.server, 60, "the server to start")
            url = controller.status.urls[0] + "api/health"
            # The address the app shows the owner, so the check also proves that address is right.
            address = urlsplit(url)
            if address.hostname is None or address.port is None:
                raise ValueError(f"The app shows {url!r}, which names no host and port")
            client = HttpsClient(address.port, controller.certificate().ca_file, address.hostname,
                                 timeout=TIMEOUT_SECONDS)
            reply = client.request("GET", address.path)
            health = reply.json()
            print(f"{APP_NAME} {__version__}: {url} answered {reply.status} {json.dumps(health)}", file=out)
            ok = reply.status == 200 and isinstance(health, dict) and health.get("status") == "ok"
        finally:
            vault.quit()
    print("smoke test passed" if ok else "smoke test FAILED", file=out)
    return 0 if ok else 1
