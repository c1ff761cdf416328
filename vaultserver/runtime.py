"""Composes the parts of a running Vault (HTTPS server, pipeline; discovery joins here) for GUI and CLI alike.

The runtime is the front ends' one door to what runs: start/stop, pause/resume, job events, importing files,
the certificate, scheduled backups, and a `Health` look. Neither the GUI nor the CLI reaches into the pipeline
or the server.

Only one runtime may own a data dir at a time: a file lock says who, so a second `serve` or `process` on the
same folder is refused with a clear message instead of two pipelines fighting over the same files.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from filelock import FileLock, Timeout

from vaultserver.backup.schedule import BackupListener, BackupSchedule
from vaultserver.backup.status import BackupState
from vaultserver.certificate import CertificateDetails  # the front ends import it from here
from vaultserver.config import AppPaths
from vaultserver.crypto.tls import TlsFiles, ensure_certificate, host_names, local_addresses
from vaultserver.discovery import Advertiser
from vaultserver.errors import VaultError
from vaultserver.health import Health  # the front ends import it from here
from vaultserver.pipeline import Pipeline
from vaultserver.pipeline.watcher import copy_into
from vaultserver.progress import Progress as Progress  # the front ends import these from here
from vaultserver.server import Endpoint, HttpsServer
from vaultserver.services import Services, open_services
from vaultserver.services.jobs import JobView

log = logging.getLogger(__name__)

JobListener = Callable[[str, JobView], None]
"""Hears `(event, job)` as each job ends: event is "done", "duplicate" or "failed" (on a worker thread)."""


class AlreadyRunning(VaultError):
    code = "SYSTEM_001"
    status = 409


def urls_for(host: str, port: int) -> list[str]:
    """Where viewers can reach a Vault listening on host:port: by name on the LAN first, then by address."""
    if host not in ("0.0.0.0", "::"):
        return [Endpoint(host, port).url]
    names = [n for n in host_names() if n.endswith(".local")]
    addresses = [a for a in local_addresses() if ":" not in a and not a.startswith("127.")]
    return [f"https://{h}:{port}/" for h in [*names, *addresses]] + [f"https://localhost:{port}/"]


def _stamp(files: TlsFiles) -> tuple:
    """What changes when either file of the served certificate is rewritten."""
    def one(path: Path) -> tuple:
        try:
            stat = path.stat()
        except OSError:
            return ()
        return stat.st_mtime_ns, stat.st_size, stat.st_ino
    return one(files.cert), one(files.key)


class VaultRuntime:
    """Start/stop/health for everything that runs. The server is optional (`process --once` has none)."""

    WATCHDOG_SECONDS = 2.0
    KEY_CHECK_SECONDS = 3600.0
    PRUNE_SECONDS = 24 * 3600.0
    UPLOAD_SWEEP_SECONDS = 3600.0  # uploads silent for a day go within the hour after

    def __init__(self, paths: AppPaths, services: Services | None = None,
                 mdns_interfaces: list[str] | None = None, local_workers: int | None = None) -> None:
        self.paths = paths.ensure()
        self.services = services or open_services(paths)
        self.pipeline = Pipeline(self.services, local_workers=local_workers)
        self.backups = BackupSchedule(self.services)
        self.server: HttpsServer | None = None
        self._lock = FileLock(str(paths.runtime_lock), timeout=0)
        self._watchdog_stop = threading.Event()
        self._restart_requested = threading.Event()
        self._server_lock = threading.RLock()  # one start/stop/restart of the listener at a time
        self._watchdog: threading.Thread | None = None
        self._listen: tuple[str, int] | None = None
        self.advertiser: Advertiser | None = None
        self._mdns_interfaces = mdns_interfaces  # None: every interface (tests pin it to loopback)
        self.running = False
        self.restarts = 0
        self.last_error: str | None = None  # why the server is not serving, in words for the owner
        self._tls: TlsFiles | None = None  # the certificate the listener serves
        self._served_tls: tuple = ()  # its files as the listener loaded them (_stamp)
        self._seen_tls: tuple = ()  # as the supervisor last saw them: a change is acted on once settled
        self.services.settings.subscribe(self._settings_changed)

    @staticmethod
    def in_use(paths: AppPaths) -> bool:
        """Whether a Vault (another process, or this one) is working on this data dir now."""
        probe = FileLock(str(paths.runtime_lock), timeout=0)
        try:
            probe.acquire()
        except Timeout:
            return True
        probe.release()
        return False

    def _acquire(self) -> None:
        try:
            self._lock.acquire()
        except Timeout:
            raise AlreadyRunning(f"Vault is already running on {self.paths.root}",
                                 details={"data_dir": str(self.paths.root)}) from None
        (self.paths.root / ".vault.pid").write_text(str(os.getpid()))

    def _release(self) -> None:
        (self.paths.root / ".vault.pid").unlink(missing_ok=True)
        self._lock.release()

    @property
    def endpoint(self) -> Endpoint | None:
        return self.server.endpoint if self.server else None

    def start(self, serve: bool = True, host: str | None = None, port: int | None = None,
              keep_going: bool = False) -> None:
        """Start the pipeline and (with `serve`) the server. With `keep_going`, a server that cannot listen
        (a port in use) leaves Vault running without it, `last_error` saying why, so the owner can pick
        another port in the app; without, the error is raised (the headless `serve` exits on it).
        """
        if self.running:
            return
        self._acquire()
        try:
            self.pipeline.start()
            if serve:
                settings = self.services.settings.current
                self._listen = (host or settings.host, settings.port if port is None else port)
                try:
                    self._start_server()
                    self._advertise(settings.mdns_enabled)
                except Exception:
                    if not keep_going:
                        raise
                    log.exception("Vault runs without its server: %s", self.last_error)
            self._watchdog_stop.clear()
            self._watchdog = threading.Thread(target=self._supervise, name="vault-supervisor", daemon=True)
            self._watchdog.start()
            self.backups.start()
        except BaseException:
            self.pipeline.stop()
            self._release()
            raise
        self.running = True
        log.info("Vault started on %s", self.paths.root)

    def _start_server(self) -> None:
        with self._server_lock:
            if self._listen is None:  # `start` and `start_server` choose the address before coming here
                raise RuntimeError("The HTTPS server was started before its address was chosen")
            host, port = self._listen
            try:
                files = ensure_certificate(self.paths)
                self._tls, self._served_tls = files, _stamp(files)
                self._seen_tls = self._served_tls
                self.server = HttpsServer(self.services, files, remote_jobs=self.pipeline.remote)
                endpoint = self.server.start(host, port)
            except Exception as exc:
                self.server = None
                self.last_error = f"Could not serve on {host}:{port}: {exc}"
                raise
            self.last_error = None
            self._listen = (host, endpoint.port)  # a restart keeps the port, even one chosen by the OS

    def start_server(self) -> None:
        """Serve again after `stop_server`, on the address it last had (the settings' if none yet)."""
        with self._server_lock:
            if not self.running or (self.server and self.server.alive):
                return
            if self._listen is None:
                settings = self.services.settings.current
                self._listen = (settings.host, settings.port)
            self._start_server()
            self._advertise(self.services.settings.current.mdns_enabled)

    def stop_server(self) -> None:
        """Stop serving (and advertising) while the pipeline goes on importing."""
        with self._server_lock:
            self._advertise(False)
            self.last_error = None
            if self.server:
                self.server.stop()
                self.server = None

    def _supervise(self) -> None:
        """Restart the server thread if it dies or its certificate is re-issued on disk (by `vaultserver cert
        regenerate` from a terminal, say); rotate the master key when it is due (checked hourly); prune old
        audit and session records (on start, then daily); sweep expired uploads (on start, then hourly)."""
        next_key_check = next_prune = next_upload_sweep = 0.0
        while not self._watchdog_stop.wait(0 if next_key_check == 0 else self.WATCHDOG_SECONDS):
            if self._restart_requested.is_set():
                self._restart_requested.clear()
                try:
                    self.restart_server()
                except Exception:
                    log.exception("Restarting the HTTPS server on the new address failed")
            with self._server_lock:
                server = self.server
                if server is not None and not server.alive and self.running:
                    log.error("The HTTPS server stopped unexpectedly (%s); restarting", server.error)
                    self.restarts += 1
                    try:
                        self._start_server()
                    except Exception:
                        log.exception("Restarting the HTTPS server failed")
            self._follow_certificate()
            if time.monotonic() >= next_key_check:
                next_key_check = time.monotonic() + self.KEY_CHECK_SECONDS
                self._rotate_if_due()
            if time.monotonic() >= next_prune:
                next_prune = time.monotonic() + self.PRUNE_SECONDS
                self._prune_old_records()
            if time.monotonic() >= next_upload_sweep:
                next_upload_sweep = time.monotonic() + self.UPLOAD_SWEEP_SECONDS
                self._sweep_uploads()

    def _follow_certificate(self) -> None:
        """Serve a certificate re-issued on disk. The files are written one after the other, so a change is
        acted on only when a second look finds it settled (a few seconds after the new files appear)."""
        with self._server_lock:
            if not (self.server or self.last_error) or self._tls is None:
                return
            seen, self._seen_tls = self._seen_tls, _stamp(self._tls)
            if self._seen_tls == self._served_tls or self._seen_tls != seen:
                return
            log.info("The HTTPS certificate changed on disk; serving the new one")
            try:
                self.restart_server()
            except Exception:
                self._served_tls = self._seen_tls  # tried once; the next change of the files tries again
                log.exception("Serving the new certificate failed")

    def _rotate_if_due(self) -> None:
        try:
            if self.services.keys.status().rotation_overdue:
                log.info("The master key is due for rotation; rotating now")
                self.services.keys.rotate()
        except Exception:  # the key stays valid; retried at the next check
            log.exception("Scheduled master-key rotation failed")

    def _prune_old_records(self) -> None:
        try:
            self.services.prune_old_records()
        except Exception:  # nothing is lost by waiting: tried again the next day
            log.exception("Pruning old audit and session records failed")

    def _sweep_uploads(self) -> None:
        try:
            self.services.uploads.sweep()
        except Exception:  # an upload left a little longer harms no one: tried again within the hour
            log.exception("Sweeping expired uploads failed")

    def _advertise(self, enabled: bool) -> None:
        """Start or stop the mDNS record; a failure here never stops Vault serving."""
        if self.advertiser:
            self.advertiser.stop()
            self.advertiser = None
        if enabled and self.endpoint:
            try:
                self.advertiser = Advertiser(self.endpoint.port, interfaces=self._mdns_interfaces)
                self.advertiser.start()
            except Exception:
                log.exception("Could not advertise Vault on the network (mDNS)")
                self.advertiser = None

    def restarts_listener(self, old, new) -> bool:
        """Whether this settings change moves the server (one serving, or one that failed to listen)."""
        return bool(self.server or self.last_error) and (old.host, old.port) != (new.host, new.port)

    def _settings_changed(self, old, new) -> None:
        """Apply a change live where it can be; a new port or address restarts the listener.

        The restart is left to the supervisor thread: the change may come from a request the server itself
        is answering (PATCH /api/admin/settings), which must not wait for its own server to stop.
        """
        if not self.running:
            return
        if self.restarts_listener(old, new):
            self._listen = (new.host, new.port)
            self._restart_requested.set()
        elif self.server and old.mdns_enabled != new.mdns_enabled:
            self._advertise(new.mdns_enabled)
        if old.import_path(self.paths) != new.import_path(self.paths):
            self.pipeline.watcher.stop()
            self.pipeline.watcher.start(new.import_path(self.paths))
        if old.local_workers != new.local_workers:
            self.pipeline.workers.resize()

    def urls(self) -> list[str]:
        return urls_for(self.endpoint.host, self.endpoint.port) if self.endpoint else []

    def health(self) -> Health:
        shortage = self.pipeline.workers.waiting_for_space
        return Health(self.running, bool(self.server and self.server.alive), tuple(self.urls()), self.paused,
                      self.advertiser is not None, self.services.queue.counts(), self.restarts,
                      self.last_error, shortage.message if shortage else None, self.backups.state().warning)

    # --- the pipeline, for the front ends ---------------------------------------------------------------

    @property
    def paused(self) -> bool:
        return self.pipeline.workers.paused

    def pause(self) -> None:
        """Hold conversions (files keep being queued); a job under way finishes first."""
        self.pipeline.workers.pause()

    def resume(self) -> None:
        self.pipeline.workers.resume()

    def on_job_event(self, listener: JobListener) -> Callable[[], None]:
        """Call `listener` as each job finishes (on the worker's thread); returns what unsubscribes it."""
        listeners = self.pipeline.workers.listeners
        listeners.append(listener)

        def unsubscribe() -> None:
            if listener in listeners:
                listeners.remove(listener)
        return unsubscribe

    @property
    def import_folder(self) -> Path:
        return self.services.settings.current.import_path(self.paths)

    def import_files(self, files: Sequence[Path]) -> list[Path]:
        """Copy the owner's files into the import folder (never seen half-copied); the originals stay put."""
        return copy_into(list(files), self.import_folder)

    # --- backups (all safe from any thread) ---------------------------------------------------------------

    def back_up_now(self) -> bool:
        """Back up to the settings' folder now; False if a backup is already running (or none is set)."""
        return self.backups.back_up_now()

    def backup_state(self) -> BackupState:
        return self.backups.state()

    def on_backup_event(self, listener: BackupListener) -> Callable[[], None]:
        """Call `listener` with the new BackupState as a backup starts, progresses (throttled) and ends."""
        return self.backups.subscribe(listener)

    # --- the certificate ---------------------------------------------------------------------------------

    def certificate(self) -> CertificateDetails:
        """The server certificate (issued first if missing, expiring, or not naming this Mac's addresses)."""
        return CertificateDetails.of(ensure_certificate(self.paths))

    def reissue_certificate(self) -> CertificateDetails:
        """A new server certificate under the same CA, served at once if Vault is serving."""
        with self._server_lock:
            files = ensure_certificate(self.paths, force=True)
            self.restart_server()
        return CertificateDetails.of(files)

    def restart_server(self) -> None:
        """A new listener on the current address: after a port change or a new certificate."""
        with self._server_lock:
            if not self.server and not self.last_error:
                return  # stopped on purpose: it stays stopped
            if self.server:
                self.server.stop()
            self._start_server()
            self._advertise(self.services.settings.current.mdns_enabled)

    def stop(self) -> None:
        if not self.running:
            return
        self.running = False
        self._watchdog_stop.set()
        if self._watchdog:
            self._watchdog.join(5)
        self.backups.stop()
        self.stop_server()
        self.pipeline.stop()
        self._release()
        log.info("Vault stopped")

    def process_once(self, timeout: float | None = None) -> bool:
        self._acquire()
        try:
            return self.pipeline.process_once(timeout)
        finally:
            self._release()

    def close(self) -> None:
        self.stop()
        self.services.close()
