"""`vault --smoke-test`: the whole menu-bar app started offscreen on a scratch data folder, asked for
`/api/health` over HTTPS (verified against Vault's own CA), then stopped. Needs no display; CI runs it."""

from __future__ import annotations

import json
import ssl
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import TextIO

from gui.app import VaultApp, wait_until
from gui.controller import VaultController
from vaultserver import APP_NAME, __version__
from vaultserver.config import AppPaths


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
            context = ssl.create_default_context(cafile=str(controller.certificate().ca_file))
            with urllib.request.urlopen(url, context=context, timeout=10) as response:
                health = json.loads(response.read())
            print(f"{APP_NAME} {__version__}: {url} answered {response.status} {json.dumps(health)}",
                  file=out)
            ok = response.status == 200 and health.get("status") == "ok"
        finally:
            vault.quit()
    print("smoke test passed" if ok else "smoke test FAILED", file=out)
    return 0 if ok else 1
