"""Vault's server as the user runs it (`vaultserver serve`), in its own process: memory and CPU are its own.

Peak RSS is the larger of VmRSS sampled every 100 ms from /proc/<pid>/status and the kernel's own high-water
mark (VmHWM). CPU seconds (user + sys, all threads) come from /proc/<pid>/stat.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

from bench.runner import cpu_seconds, stop
from bench.serve_setup import PASSWORD, USER, VAULT_ENV
from vaultserver.https_client import HttpsClient

_SERVING = re.compile(r"https://localhost:(\d+)/")


class VaultServer:
    def __init__(self, data: Path, ca: Path, log: Path, extra_args: list[str] | None = None) -> None:
        self.data, self.ca, self.log = data, ca, log
        self.extra_args = extra_args or []  # more `serve` options, e.g. --local-workers N
        self.port = 0
        self.peak_rss = 0  # bytes
        self._stop = threading.Event()
        self.proc: subprocess.Popen[str]
        self.client: HttpsClient

    def __enter__(self) -> VaultServer:
        cmd = [sys.executable, "-m", "vaultserver.cli", "--data-dir", str(self.data), "serve",
               "--host", "127.0.0.1", "--port", "0", *self.extra_args]
        with open(self.log, "ab") as err:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err,
                                         text=True, env={**os.environ, **VAULT_ENV})
        output = self.proc.stdout
        assert output is not None  # stdout=PIPE
        for line in output:  # "Vault is serving https://localhost:PORT/ ..."
            if found := _SERVING.search(line):
                self.port = int(found[1])
                break
        if not self.port:
            self.proc.wait(10)
            raise RuntimeError(f"vaultserver serve did not start:\n{self.log.read_text()[-3000:]}")
        # The name is not checked: we connect by address (127.0.0.1).
        self.client = HttpsClient(self.port, self.ca, check_hostname=False)
        threading.Thread(target=output.read, daemon=True).start()  # keep the pipe drained
        threading.Thread(target=self._sample, daemon=True).start()
        return self

    def _status(self) -> dict[str, int]:
        text = Path(f"/proc/{self.proc.pid}/status").read_text()
        return {k: int(v) * 1024 for k, v in re.findall(r"^(VmRSS|VmHWM):\s+(\d+) kB", text, re.M)}

    def _sample(self) -> None:
        while not self._stop.wait(0.1):
            try:
                self.peak_rss = max(self.peak_rss, *self._status().values())
            except (OSError, TypeError):
                return

    def rss(self) -> int:
        """The server's resident memory now, in bytes."""
        return self._status()["VmRSS"]

    def cpu(self) -> float:
        return cpu_seconds(self.proc.pid)

    @property
    def base(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def request(self, method: str, path: str, body: dict | None = None, token: str | None = None
                ) -> tuple[int, bytes]:
        reply = self.client.request(method, path, body, token=token or "")
        return reply.status, reply.body

    def login(self) -> str:
        status, body = self.request("POST", "/api/auth/login", {"username": USER, "password": PASSWORD,
                                                                "device_name": "serving benchmark"})
        if status != 200:
            raise RuntimeError(f"login failed: {status} {body[:300]!r}")
        return json.loads(body)["access_token"]

    def __exit__(self, *exc) -> None:
        try:
            self.peak_rss = max(self.peak_rss, *self._status().values())
        except (OSError, TypeError):
            pass
        self._stop.set()
        stop(self.proc, 15)
