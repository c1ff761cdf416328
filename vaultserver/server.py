"""The HTTPS server on its own thread and asyncio loop, stoppable from any thread within a bounded time.

Hypercorn's graceful shutdown waits for open connections (a paused video keeps one open), so `stop()`
asks politely first and cancels the serving task when the grace period is over. Open gallery pages' event
streams hear the same shutdown signal and end at once, so they never make it wait.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hypercorn.asyncio import serve
from hypercorn.config import Config

from vaultserver.api import create_app
from vaultserver.api.events import CLOSING
from vaultserver.crypto.tls import TlsFiles
from vaultserver.errors import VaultError
from vaultserver.services import Services

if TYPE_CHECKING:
    from vaultserver.pipeline.remote_jobs import RemoteJobs

log = logging.getLogger(__name__)

GRACE_SECONDS = 2.0


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int

    @property
    def url(self) -> str:
        host = "localhost" if self.host in ("0.0.0.0", "127.0.0.1", "::", "::1") else self.host
        return f"https://{host}:{self.port}/"


def _loop_factory():
    """uvloop where installed (macOS/Linux wheels): measured faster TLS and socket handling than asyncio's."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise VaultError(
            f"Cannot listen on {host}:{port}: {exc.strerror}. Is another program using the port?",
            details={"host": host, "port": port},
        ) from exc
    sock.listen(512)
    sock.setblocking(False)
    return sock


class HttpsServer:
    def __init__(self, services: Services, tls: TlsFiles, remote_jobs: RemoteJobs | None = None) -> None:
        self._services = services
        self._remote_jobs = remote_jobs
        self._tls = tls
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._shutdown: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._fd: int | None = None
        self.endpoint: Endpoint | None = None
        self.error: BaseException | None = None

    def _config(self) -> Config:
        config = Config()
        config.bind = [f"fd://{self._fd}"]
        config.certfile, config.keyfile = str(self._tls.cert), str(self._tls.key)
        # HTTP/1.1 only: measured here, Hypercorn's HTTP/2 moved large segments at a fraction of HTTP/1.1.
        config.alpn_protocols = ["http/1.1"]
        config.graceful_timeout = GRACE_SECONDS
        config.keep_alive_timeout = 30
        config.accesslog = None
        config.errorlog = logging.getLogger("hypercorn.error")
        return config

    def start(self, host: str, port: int) -> Endpoint:
        sock = _bind(host, port)
        self.endpoint = Endpoint(host, sock.getsockname()[1])
        self._fd = sock.detach()  # Hypercorn owns (and closes) the listening socket from here on
        config = self._config()
        ready = threading.Event()
        app = create_app(self._services, self._remote_jobs)

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._shutdown = asyncio.Event()
            app.config[CLOSING] = self._shutdown
            self._task = asyncio.current_task()
            ready.set()
            await serve(app, config, shutdown_trigger=self._shutdown.wait)

        def run() -> None:
            try:
                with asyncio.Runner(loop_factory=_loop_factory()) as runner:
                    runner.run(main())
            except asyncio.CancelledError:
                log.info("HTTPS server stopped (forced after %.0f s grace)", GRACE_SECONDS)
            except BaseException as exc:  # reported to the runtime, which restarts or shows the error
                self.error = exc
                log.exception("HTTPS server crashed")
            finally:
                ready.set()

        self._thread = threading.Thread(target=run, name="vault-https", daemon=True)
        self._thread.start()
        ready.wait(10)
        log.info("Serving on %s", self.endpoint.url)
        return self.endpoint

    @property
    def alive(self) -> bool:
        return bool(self._thread and self._thread.is_alive())

    def stop(self, timeout: float = GRACE_SECONDS + 2.0) -> None:
        if not self._thread:
            return
        if self._loop and self._shutdown and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._shutdown.set)
        self._thread.join(GRACE_SECONDS + 0.5)
        if self._thread.is_alive() and self._loop and self._task and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._task.cancel)
            self._thread.join(timeout)
        self._thread = None


def client_context(ca_file: str) -> ssl.SSLContext:
    """An SSL context trusting Vault's own CA (for tests, the GUI's health check and the self-check)."""
    return ssl.create_default_context(cafile=ca_file)
