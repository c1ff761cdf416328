"""A worker machine: converts for a Vault over HTTPS alone (`vaultserver worker --join STRING`).

It trusts only the CA its join string pins (`pinned.py`), and reaches the Vault through the worker routes
(`api/worker_jobs.py`) with its token: never the database, never a shared folder. One job at a time: lease
it, download the original into its own owner-only folder under the scratch folder, hash it (the server says
whether it is a duplicate, else hands over that job's data keys), convert and encrypt it with the same
converter the Mac's own workers use, upload every output file, commit. A heartbeat thread renews the lease
every third of its length; when the server answers 409 (the lease lapsed and the job went to another
worker) the conversion is stopped and its output dropped. Whatever happens, the job's folder is wiped
afterwards, so no plaintext (the original, ffmpeg's key file) outlives the job on this disk.

The whole process runs at background priority, so the machine stays usable while it converts. Polling backs
off while there is no work or the server cannot be reached, and says so in the log.
"""

from __future__ import annotations

import http.client
import json
import logging
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vaultserver.background import lower_priority
from vaultserver.config import PRIVATE_DIR_MODE
from vaultserver.errors import MediaError, VaultError
from vaultserver.ffmpeg import DEFAULT_LIMITS, FfmpegLimits
from vaultserver.https_client import HttpsClient, Reply
from vaultserver.join_string import JoinString
from vaultserver.pipeline.convert import Assignment, ConvertedItem
from vaultserver.pipeline.local_worker import InlineConverter, hash_file
from vaultserver.remote.pinned import ServerUnreachable, pinned_client

log = logging.getLogger(__name__)

LEASE_HEADER = "X-Vault-Lease"
# What the server may ask about (its required ones, and hardware H.264 where ffmpeg was built with it).
KNOWN_ENCODERS = ("libx264", "libwebp_anim", "libwebp", "aac", "h264_videotoolbox", "h264_nvenc",
                  "hevc_videotoolbox", "hevc_nvenc")
IDLE_WAIT = (1.0, 15.0)  # seconds between polls with nothing to do: first, longest
UNREACHABLE_WAIT = (2.0, 60.0)  # the same while the server cannot be reached
PIECE = 1024 * 1024
BEATS_PER_LEASE = 3
JOB_FOLDER_PREFIX = "job-"  # only folders so named are ever wiped: the scratch folder may be a shared one


class TokenRefused(VaultError):
    """The server does not (or no longer) accept this worker's token: revoked, or another Vault's."""

    code = "AUTH_001"
    status = 401


class JobLost(RuntimeError):
    """The server answered 409: this worker's lease on the job is gone (lapsed, taken over)."""


def detect_encoders(ffmpeg: str) -> list[str]:
    """The encoders of KNOWN_ENCODERS this ffmpeg lists (`ffmpeg -hide_banner -encoders`)."""
    try:
        listing = subprocess.run([ffmpeg, "-hide_banner", "-encoders"], capture_output=True, text=True,
                                 timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("Could not list ffmpeg's encoders: %s", exc)
        return []
    # Lines look like " V....D libx264              libx264 H.264 / AVC ..." after a legend.
    listed = {fields[1] for line in listing.splitlines()
              if len(fields := line.split()) >= 2 and len(fields[0]) == 6 and fields[0][0] in "VAS"}
    return [name for name in KNOWN_ENCODERS if name in listed]


def make_private_dir(path: Path) -> Path:
    path.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    path.chmod(PRIVATE_DIR_MODE)  # an existing folder too: mkdir's mode is not applied to it
    return path


@dataclass
class Backoff:
    """Waits that double from `first` up to `longest`; `reset` after a success."""

    first: float
    longest: float
    current: float = 0.0

    def next(self) -> float:
        self.current = self.first if not self.current else min(self.current * 2, self.longest)
        return self.current

    def reset(self) -> None:
        self.current = 0.0


class VaultConnection:
    """The worker routes of one Vault, over a pinned HTTPS client; non-2xx answers become exceptions."""

    def __init__(self, client: HttpsClient) -> None:
        self.client = client

    def call(self, method: str, path: str, body: Any = None, lease: str | None = None) -> Reply:
        reply = self.client.request(method, path, body, headers={LEASE_HEADER: lease} if lease else None)
        return self._checked(reply, path)

    @staticmethod
    def _checked(reply: Reply, path: str) -> Reply:
        if reply.status == 401:
            raise TokenRefused(_message(reply) or "The Vault refused this worker's token")
        if reply.status == 409:
            raise JobLost(_message(reply) or "The job is no longer this worker's")
        if reply.status >= 400:
            raise VaultError(f"{path}: HTTP {reply.status} {_message(reply)}",
                             code=reply.code or "SYSTEM_001")
        return reply

    def _connection(self) -> http.client.HTTPSConnection:
        c = self.client
        return http.client.HTTPSConnection(c.host, c.port, context=c.context, timeout=c.timeout)

    def _headers(self, lease: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.client.token}", LEASE_HEADER: lease}

    def download(self, path: str, lease: str, dest: Path, cancel: threading.Event) -> int:
        """Stream `path` into `dest`; returns its size."""
        connection = self._connection()
        try:
            connection.request("GET", path, headers=self._headers(lease))
            response = connection.getresponse()
            if response.status != 200:
                self._checked(Reply(response.status, response.headers, response.read()), path)
            size = 0
            with open(dest, "xb") as fh:
                while piece := response.read(PIECE):
                    if cancel.is_set():
                        raise InterruptedError("Stopped while downloading")
                    fh.write(piece)
                    size += len(piece)
            return size
        finally:
            connection.close()

    def upload(self, path: str, lease: str, source: Path) -> None:
        """PUT one file's bytes, streamed from disk."""
        connection = self._connection()
        headers = {**self._headers(lease), "Content-Type": "application/octet-stream",
                   "Content-Length": str(source.stat().st_size)}
        try:
            with open(source, "rb") as fh:
                connection.request("PUT", path, body=fh, headers=headers)
                response = connection.getresponse()
                self._checked(Reply(response.status, response.headers, response.read()), path)
        finally:
            connection.close()


def _message(reply: Reply) -> str:
    try:
        parsed = reply.json()
    except ValueError:
        return ""
    error = parsed.get("error") if isinstance(parsed, dict) else None
    return str(error.get("message", "")) if isinstance(error, dict) else ""


class JobHold:
    """One leased job's heartbeat: renews the lease, carries the latest progress, and fires `cancel` when
    the lease is lost or the worker is stopped."""

    def __init__(self, vault: VaultConnection, job_id: str, lease: str, lease_seconds: float,
                 stop: threading.Event) -> None:
        self.cancel = threading.Event()
        self.lost = threading.Event()
        self.refused: TokenRefused | None = None  # the server refused the token itself (revoked)
        self._vault, self._job_id, self._lease = vault, job_id, lease
        self._interval = max(lease_seconds / BEATS_PER_LEASE, 0.2)
        self._stop = stop
        self._progress = ("leased", 0.0)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"vault-heartbeat-{job_id[:8]}", daemon=True)

    def __enter__(self) -> JobHold:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._done.set()
        self._thread.join()

    def report(self, stage: str, fraction: float) -> None:
        self._progress = (stage, fraction)

    def _beat(self) -> None:
        due = time.monotonic() + self._interval
        while not self._done.wait(0.2):
            if self._stop.is_set():
                self.cancel.set()
            if time.monotonic() < due:
                continue
            due = time.monotonic() + self._interval
            stage, fraction = self._progress
            try:
                self._vault.call("POST", f"/api/workers/jobs/{self._job_id}/heartbeat",
                                 {"stage": stage[:64], "progress": round(min(max(fraction, 0.0), 1.0), 4)},
                                 lease=self._lease)
            except (JobLost, TokenRefused) as exc:
                log.warning("Job %s is no longer this worker's (%s); stopping it", self._job_id, exc)
                if isinstance(exc, TokenRefused):
                    self.refused = exc
                self.lost.set()
                self.cancel.set()
                return
            except (OSError, http.client.HTTPException, VaultError) as exc:  # two more beats before it lapses
                log.warning("Could not renew the lease on job %s: %s", self._job_id, exc)


class RemoteWorker:
    """Converts for the Vault a join string names, one job at a time, until `stop` is set."""

    def __init__(self, join: JoinString, scratch: Path, *, ffmpeg: Callable[[], str] | None = None,
                 limits: FfmpegLimits = DEFAULT_LIMITS,
                 connect: Callable[[JoinString], HttpsClient] = pinned_client) -> None:
        from vaultserver.ffmpeg import ffmpeg as bundled_ffmpeg

        self.join, self.scratch = join, scratch
        self._ffmpeg = ffmpeg or bundled_ffmpeg
        self._limits, self._connect = limits, connect
        self.jobs_done = 0

    def run(self, stop: threading.Event) -> None:
        """Work until `stop`. Raises PinMismatch (not the pinned Vault) and TokenRefused (revoked token)."""
        lower_priority()
        make_private_dir(self.scratch)
        self.wipe_leftovers()
        vault = self._connected(stop)
        if vault is None:
            return
        ffmpeg = self._ffmpeg()
        encoders = detect_encoders(ffmpeg)
        log.info("Converting for %s with encoders %s; scratch folder %s", self.join.url,
                 ", ".join(encoders) or "(none found)", self.scratch)
        idle, unreachable = Backoff(*IDLE_WAIT), Backoff(*UNREACHABLE_WAIT)
        while not stop.is_set():
            try:
                reply = vault.call("POST", "/api/workers/lease", {"encoders": encoders})
            except (OSError, http.client.HTTPException) as exc:
                wait = unreachable.next()
                log.warning("Cannot reach the Vault at %s (%s); trying again in %.0f s", self.join.url, exc,
                            wait)
                stop.wait(wait)
                continue
            except TokenRefused:
                raise
            except VaultError as exc:  # 503: its conversion is not running (yet); 403: the network gate
                wait = unreachable.next()
                log.warning("The Vault cannot hand out work now (%s); asking again in %.0f s", exc.message,
                            wait)
                stop.wait(wait)
                continue
            unreachable.reset()
            if reply.status == 204:
                stop.wait(idle.next())
                continue
            idle.reset()
            self.work(vault, reply.json(), stop, ffmpeg)

    def wipe_leftovers(self) -> None:
        """Job folders a previous run could not wipe (it was killed, the machine lost power)."""
        for leftover in self.scratch.glob(f"{JOB_FOLDER_PREFIX}*"):
            if leftover.is_dir() and not leftover.is_symlink():
                log.info("Wiping %s, left by a worker that did not finish", leftover)
                shutil.rmtree(leftover, ignore_errors=True)

    def _connected(self, stop: threading.Event) -> VaultConnection | None:
        wait = Backoff(*UNREACHABLE_WAIT)
        while not stop.is_set():
            try:
                return VaultConnection(self._connect(self.join))
            except ServerUnreachable as exc:
                seconds = wait.next()
                log.warning("%s; trying again in %.0f s", exc.message, seconds)
                stop.wait(seconds)
        return None

    def work(self, vault: VaultConnection, lease: dict[str, Any], stop: threading.Event, ffmpeg: str) -> None:
        """One leased job, start to end; its folder is wiped whatever happens."""
        job_id, token = str(lease["job_id"]), str(lease["token"])
        folder = make_private_dir(self.scratch / f"{JOB_FOLDER_PREFIX}{job_id}")
        log.info("Leased job %s (%s, %d bytes)", job_id, lease.get("original_name"),
                 int(lease.get("size", 0)))
        hold = JobHold(vault, job_id, token, float(lease["lease_seconds"]), stop)
        try:
            with hold:
                self._convert(vault, lease, folder, hold, ffmpeg)
        except JobLost as exc:
            log.warning("Dropped job %s: %s", job_id, exc)
        except TokenRefused:
            raise
        except MediaError as exc:
            log.warning("Job %s is not media Vault can read: %s", job_id, exc.message)
            self._fail(vault, job_id, token, "media", exc.message, exc.details)
        except InterruptedError:
            if hold.refused is not None:
                raise hold.refused from None
            if not stop.is_set():  # stopped by a lost lease: the job is another worker's
                log.warning("Dropped job %s: its lease was lost", job_id)
            else:
                self._fail(vault, job_id, token, "error", "The worker machine was stopped", {})
        except Exception as exc:
            log.exception("Job %s failed", job_id)
            self._fail(vault, job_id, token, "error", f"{type(exc).__name__}: {exc}"[:2000], {})
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def _convert(self, vault: VaultConnection, lease: dict[str, Any], folder: Path, hold: JobHold,
                 ffmpeg: str) -> None:
        job_id, token = str(lease["job_id"]), str(lease["token"])
        jobs = f"/api/workers/jobs/{job_id}"
        source = folder / ("original" + Path(str(lease.get("original_name", ""))).suffix[:16])
        hold.report("downloading", 0.0)
        size = vault.download(str(lease.get("source") or f"{jobs}/source"), token, source, hold.cancel)
        if size != int(lease["size"]):
            raise RuntimeError(f"Downloaded {size} bytes of {lease['size']}")
        sha256 = hash_file(source, hold.report, hold.cancel)
        answer = vault.call("POST", f"{jobs}/hash", {"sha256": sha256}, lease=token).json()
        if answer["duplicate"]:
            log.info("Job %s is already in the library", job_id)
            return
        assignment = Assignment.from_wire(answer["assignment"])
        stage = make_private_dir(folder / "stage")
        converter = InlineConverter(lambda: ffmpeg, make_private_dir(folder / "keys"), self._limits)
        staged = converter.convert(source, assignment, stage, hold.report, hold.cancel)
        if hold.lost.is_set():
            raise JobLost("The lease was lost during the conversion")
        files = sorted(p for p in stage.rglob("*") if p.is_file())
        for number, path in enumerate(files):
            hold.report("uploading", number / max(len(files), 1))
            vault.upload(f"{jobs}/files/{path.relative_to(stage).as_posix()}", token, path)
        hold.report("committing", 1.0)
        result = ConvertedItem.of(staged).model_dump(mode="json")
        media_id = vault.call("POST", f"{jobs}/commit", {"result": result}, lease=token).json()["media_id"]
        self.jobs_done += 1
        log.info("Job %s committed as item %s", job_id, media_id)

    @staticmethod
    def _fail(vault: VaultConnection, job_id: str, token: str, kind: str, message: str,
              details: dict[str, Any]) -> None:
        plain = json.loads(json.dumps(details, default=str))  # a MediaError's details may hold paths, times
        try:
            vault.call("POST", f"/api/workers/jobs/{job_id}/fail",
                       {"kind": kind, "message": message or "failed", "details": plain}, lease=token)
        except (JobLost, TokenRefused):
            pass
        except (OSError, http.client.HTTPException, VaultError) as exc:  # its lease lapses instead
            log.warning("Could not report job %s as failed (%s); its lease will lapse", job_id, exc)
