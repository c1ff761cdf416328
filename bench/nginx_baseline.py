"""nginx as the reference: the same bytes, the same certificate, the same loopback, the same client.

Debian's nginx is started with its own temporary config (one worker process, like Vault's one serving
process; HTTP/1.1 over TLS 1.2/1.3; keep-alive without a request limit; no access log) on an ephemeral
127.0.0.1 port, serving static copies of what Vault serves: the stored (already AES-128) segment and the
decrypted thumbnail. What Vault adds on top (network gate, JWT, session check, routing, decryption, Python)
is what the ratios show.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from bench.runner import cpu_seconds, stop
from vaultserver.crypto.tls import TlsFiles

CONF = """\
worker_processes 1;
daemon off;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 256; }}
http {{
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  keepalive_timeout 60s;
  client_body_temp_path {root}/tmp/body;
  proxy_temp_path {root}/tmp/proxy;
  fastcgi_temp_path {root}/tmp/fastcgi;
  uwsgi_temp_path {root}/tmp/uwsgi;
  scgi_temp_path {root}/tmp/scgi;
  types {{ video/mp2t ts; image/webp webp; }}
  server {{
    listen 127.0.0.1:{port} ssl;
    ssl_certificate {root}/server.pem;
    ssl_certificate_key {root}/server.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    root {root}/www;
  }}
}}
"""


def binary() -> str | None:
    return shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Nginx:
    """`with Nginx(root, tls, files) as n:` serves `files` ({url name: bytes or Path}) at n.url(name).

    `root` is made here; its parents must be world-searchable (not inside a 0700 temporary folder).
    """

    def __init__(self, root: Path, tls: TlsFiles, files: dict[str, bytes | Path]) -> None:
        self.root, self.tls, self.files = root, tls, files
        self.port = 0
        self.proc: subprocess.Popen[bytes]

    def url(self, name: str) -> str:
        return f"https://127.0.0.1:{self.port}/{name}"

    def __enter__(self) -> Nginx:
        www = self.root / "www"
        (self.root / "tmp").mkdir(parents=True)
        www.mkdir()
        for folder in (self.root, www):  # started as root, nginx's worker runs as an unprivileged user
            folder.chmod(0o755)
        if os.geteuid() == 0 and not all(os.stat(d).st_mode & 0o001 for d in self.root.parents):
            raise RuntimeError(f"nginx's worker could not reach {self.root}: its parents must be searchable")
        for name, content in self.files.items():
            if isinstance(content, Path):
                shutil.copyfile(content, www / name)
            else:
                (www / name).write_bytes(content)
            (www / name).chmod(0o644)
        shutil.copyfile(self.tls.cert, self.root / "server.pem")
        shutil.copyfile(self.tls.key, self.root / "server.key")
        (self.root / "server.key").chmod(0o600)  # read by the master only
        self.port = _free_port()
        conf = self.root / "nginx.conf"
        conf.write_text(CONF.format(root=self.root, port=self.port))
        self.proc = subprocess.Popen([binary() or "nginx", "-c", str(conf), "-p", str(self.root), "-e",
                                      str(self.root / "error.log")], stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited: {(self.root / 'error.log').read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.__exit__(None, None, None)
        raise RuntimeError("nginx did not start listening within 10 s")

    def cpu(self) -> float:
        """CPU seconds of the master and its worker so far."""
        pids = [self.proc.pid]
        try:
            with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as fh:
                pids += [int(p) for p in fh.read().split()]
            return sum(cpu_seconds(p) for p in pids)
        except OSError:
            return 0.0

    def __exit__(self, *exc) -> None:
        stop(self.proc, 10)
