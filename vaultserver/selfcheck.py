"""The self-check: proof, in seconds, that this build of Vault works end to end.

A frozen app breaks in ways unit tests never see: a module left out of the bundle, ffmpeg not copied or not
executable, the web front end or the migrations missing, a compiled extension that will not load. So the
packaged app runs this (`Vault --self-check`) in CI after every build, and `vaultserver self-check` runs
the same from a checkout. It imports every module, checks ffmpeg, then runs a real Vault in a throwaway data
folder: HTTPS on 127.0.0.1 (verified against Vault's own CA), the gallery and every file it loads, one photo
and one video through the pipeline, a sign-in that reads both back decrypted, and a clean stop.

Nothing outside the temporary folder is touched: the master key goes to the file key store (never the
keychain), mDNS is off, and the port is one the OS picks.
"""

from __future__ import annotations

import http.client
import importlib
import io
import json
import logging
import os
import pkgutil
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from vaultserver.runtime import VaultRuntime
    from vaultserver.services import Services
    from vaultserver.services.items import MediaItem

log = logging.getLogger(__name__)

PACKAGES = ("vaultserver",)  # this package knows no front end; the packaged app adds its own (see `run`)
# The scratch folder's settings for a check against the clock: a file that fails is not retried, and a missed
# file event is made up for within a second.
TRIAL_SETTINGS = {"rescan_seconds": 1.0, "max_attempts": 1}
# Alembic runs the migration scripts inside its own context; imported bare they fail by design.
NOT_IMPORTED = ("vaultserver.db.migrations",)
TIMEOUT_SECONDS = 120.0
MISSING_LIBRARY = re.compile(r"cannot open shared object|Library not loaded|image not found|DLL load failed")

Check = tuple[str, Callable[[], str]]
"""A named step returning a one-line detail, or raising with the reason it failed."""


class CheckFailed(Exception):
    """A check's plain-words failure (any other exception is reported with its type)."""


@dataclass(frozen=True)
class Result:
    name: str
    ok: bool
    detail: str
    seconds: float
    skipped: bool = False


# --- the checks that need no running Vault ------------------------------------------------------------------


def import_all(packages: Sequence[str] = PACKAGES) -> str:
    """Import every module of the packages; in a frozen app this proves each one was bundled."""
    imported, failures = 0, []
    for name in packages:
        count, failed = _import_tree(name)
        imported += count
        failures += failed
    if failures:
        raise CheckFailed(f"{len(failures)} module(s) failed to import: " + "; ".join(failures))
    return f"{imported} modules of {', '.join(packages)} imported"


def _import_tree(name: str) -> tuple[int, list[str]]:
    try:
        module = importlib.import_module(name)
    except Exception as exc:  # a broken module must be reported, whatever it raises
        return 0, [f"{name}: {_describe_import_error(exc)}"]
    count, failures = 1, []
    for info in pkgutil.iter_modules(getattr(module, "__path__", []), prefix=f"{name}."):
        if info.name.endswith(".__main__") or info.name.startswith(NOT_IMPORTED):
            continue  # __main__ would run the program instead of importing it
        sub_count, sub_failures = _import_tree(info.name)
        count += sub_count
        failures += sub_failures
    return count, failures


def _describe_import_error(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]
    if MISSING_LIBRARY.search(str(exc)):
        text += " (a shared library is missing; on Linux the GUI needs the desktop's display libraries)"
    return text


def check_ffmpeg_binary() -> str:
    """The ffmpeg the pipeline will use: found, runnable, with the encoders and muxer it needs."""
    from vaultserver.ffmpeg import check_ffmpeg, find_ffmpeg

    path = find_ffmpeg()
    check = check_ffmpeg(path)
    if not check.ok:
        raise CheckFailed(f"{path} lacks {', '.join(check.missing)}")
    version = check.version.split(" Copyright")[0].strip()
    return f"{version} at {path}"


# --- the throwaway Vault ------------------------------------------------------------------------------------


class Trial:
    """A real Vault on a temporary data folder, and the checks that drive it, in order."""

    def __init__(self, root: Path, timeout: float = TIMEOUT_SECONDS) -> None:
        self.root = root
        self.timeout = timeout
        self.services: Services | None = None
        self.runtime: VaultRuntime | None = None
        self.ca: Path | None = None
        self.port = 0
        self.token: str | None = None
        self.items: dict[str, str] = {}  # media type -> id

    def checks(self) -> list[Check]:
        return [("data folder", self.open_data_folder), ("https", self.start_server),
                ("web gallery", self.fetch_gallery), ("photo", self.ingest_photo),
                ("video", self.ingest_video), ("sign-in", self.read_back), ("backup", self.back_up)]

    def open_data_folder(self) -> str:
        from vaultserver.config import AppPaths
        from vaultserver.services import open_services

        # Opening creates the database and runs every migration.
        self.services = services = open_services(AppPaths.scratch(self.root, **TRIAL_SETTINGS))
        revision = services.db.current_revision()
        if revision != services.db.head_revision():
            raise CheckFailed(f"the database is at revision {revision}, not the newest")
        status = services.keys.status()
        return f"database at revision {revision}, master key in the {status.backend} key store"

    def start_server(self) -> str:
        from vaultserver.crypto.tls import ensure_certificate
        from vaultserver.runtime import VaultRuntime

        services = self.opened
        self.ca = ensure_certificate(services.paths).ca  # the CA a phone would be told to trust
        self.runtime = runtime = VaultRuntime(services.paths, services)
        runtime.start(serve=True, host="127.0.0.1", port=0)
        if runtime.endpoint is None:
            raise CheckFailed("Vault started without an HTTPS server")
        self.port = runtime.endpoint.port
        status, _headers, body = self.request("GET", "/api/health")
        health = json.loads(body)
        if status != 200 or health.get("status") != "ok":
            raise CheckFailed(f"/api/health answered {status}: {body[:200]!r}")
        return f"https://127.0.0.1:{self.port}/api/health ok (version {health.get('version')}), " \
               "certificate verified against Vault's CA"

    def fetch_gallery(self) -> str:
        """The page and everything it loads: stylesheet, icons, every ES module, the vendored hls.js."""
        status, _headers, body = self.request("GET", "/")
        page = body.decode("utf-8", "replace")
        if status != 200 or "<title>Vault</title>" not in page:
            raise CheckFailed(f"/ answered {status} without the gallery page")
        pending = [f"/{ref.lstrip('/')}" for ref in re.findall(r'(?:src|href)="(/[^"#?]+)"', page)]
        fetched: dict[str, int] = {}
        while pending:
            path = pending.pop()
            if path in fetched:
                continue
            status, _headers, body = self.request("GET", path)
            if status != 200 or not body:
                raise CheckFailed(f"{path} answered {status} ({len(body)} bytes)")
            fetched[path] = len(body)
            if path.endswith((".js", ".css", ".webmanifest")):
                pending += _references(path, body.decode("utf-8", "replace"))
        scripts = sum(path.endswith(".js") for path in fetched)
        if "/assets/vendor/hls.min.js" not in fetched:
            raise CheckFailed("the gallery no longer refers to /assets/vendor/hls.min.js")
        kib = sum(fetched.values()) // 1024
        return f"index.html and {len(fetched)} files it loads ({scripts} scripts incl. hls.js, {kib} KiB)"

    def ingest_photo(self) -> str:
        from PIL import Image

        picture = Image.linear_gradient("L").resize((96, 64)).convert("RGB")
        data = io.BytesIO()
        picture.save(data, "PNG")
        made = self.root / "work" / "self-check.png"
        made.parent.mkdir(exist_ok=True)
        made.write_bytes(data.getvalue())
        self._drop(made)
        item = self._wait_for_item("image")
        return f"{item.original_name} -> {item.width}x{item.height} WebP, {item.stored_size} bytes encrypted"

    def ingest_video(self) -> str:
        from vaultserver.ffmpeg import ffmpeg

        clip = self.root / "work" / "self-check.mp4"
        clip.parent.mkdir(exist_ok=True)
        command = [ffmpeg(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
                   "-f", "lavfi", "-i", "testsrc=size=160x120:rate=10",
                   "-f", "lavfi", "-i", "sine=frequency=440", "-t", "1",
                   "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", str(clip)]
        made = subprocess.run(command, capture_output=True, text=True, timeout=60)
        if made.returncode != 0:
            raise CheckFailed(f"ffmpeg could not make the test clip: {made.stderr.strip()[-300:]}")
        self._drop(clip)
        item = self._wait_for_item("video")
        rungs = ", ".join(r.get("name", "?") for r in item.renditions) or "no renditions"
        return f"1 s clip made by ffmpeg -> HLS ({rungs}), {item.duration:.1f} s, encrypted"

    def read_back(self) -> str:
        """Sign in as a browser would and read both items back through the API, decrypted."""
        password = f"Sc-{secrets.token_urlsafe(12)}9a!"
        self.opened.users.create("selfcheck", password, "admin", "self-check")
        status, _headers, body = self.request("POST", "/api/auth/login", {"username": "selfcheck",
                                                                          "password": password})
        if status != 200:
            raise CheckFailed(f"sign-in answered {status}: {body[:200]!r}")
        self.token = json.loads(body)["access_token"]
        status, _headers, body = self.request("GET", "/api/media/library")
        listed = {item["type"]: item["id"] for item in json.loads(body).get("items", [])}
        if status != 200 or listed != self.items:
            raise CheckFailed(f"the library lists {sorted(listed)}, expected a photo and a video")
        status, headers, photo = self.request("GET", f"/api/media/stream/{self.items['image']}")
        if status != 200 or not (photo[:4] == b"RIFF" and photo[8:12] == b"WEBP"):
            raise CheckFailed(f"the photo came back as {status} {headers.get('Content-Type')}")
        status, _headers, playlist = self.request("GET", f"/api/media/stream/{self.items['video']}")
        if status != 200 or not playlist.startswith(b"#EXTM3U"):
            raise CheckFailed(f"the video's playlist came back as {status}: {playlist[:80]!r}")
        return "signed in; the library lists both; the photo (WebP) and the video's HLS playlist read back"

    def back_up(self) -> str:
        """A recovery key, then a backup the way the app makes one (the runtime's background child: in the
        packaged app, the app's own executable), then every item decrypted from it with the phrase."""
        from vaultserver.backup.deep_check import check_backup_items

        services, runtime = self.opened, self.runtime
        if runtime is None:
            raise CheckFailed("Vault is not running")
        phrase = services.keys.new_recovery_key("self-check")
        target = self.root / "backup"
        target.mkdir()  # as the owner picks it: a folder that is missing is a disk not plugged in, waited for
        services.settings.update(backup_dir=str(target))
        runtime.back_up_now()
        deadline = time.monotonic() + self.timeout
        while (state := runtime.backup_state()).last_success_at is None:
            if state.last_error or state.waiting_reason:
                raise CheckFailed(f"the backup failed: {state.last_error or state.waiting_reason}")
            if time.monotonic() > deadline:
                raise CheckFailed(f"no backup finished within {self.timeout:.0f} s")
            time.sleep(0.1)
        problems = check_backup_items(target, phrase, state.last_snapshot)
        if problems:
            raise CheckFailed(f"the backup does not decrypt: {problems[0]}")
        return f"recovery key made; backup {state.last_snapshot} made in the background; every item decrypts"

    def close(self) -> str:
        started = self.runtime is not None and self.runtime.running
        if self.runtime is not None:
            self.runtime.stop()
        if self.services is not None:
            self.services.close()
        return "server and pipeline stopped" if started else "nothing was running"

    # -- helpers --

    @property
    def opened(self) -> Services:
        """The scratch data folder's services: every check after the first works on them."""
        if self.services is None:
            raise CheckFailed("the data folder is not open")
        return self.services

    def request(self, method: str, path: str, body: dict | None = None,
                ) -> tuple[int, http.client.HTTPMessage, bytes]:
        from vaultserver.https_client import HttpsClient

        reply = HttpsClient(self.port, self.ca).request(method, path, body, token=self.token or "")
        return reply.status, reply.headers, reply.body

    def _drop(self, made: Path) -> None:
        """Into the import folder the way Import Files… does it: never seen half-copied."""
        from vaultserver.pipeline.watcher import copy_into

        services = self.opened
        copy_into([made], services.settings.current.import_path(services.paths))

    def _wait_for_item(self, media_type: str) -> MediaItem:
        services = self.opened
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            for item in services.library.all_items():
                if item.type == media_type:
                    self.items[media_type] = item.id
                    return item
            failed = [job for job in services.queue.snapshot() if job.status == "failed"]
            if failed:
                raise CheckFailed(f"{failed[0].original_name} failed: {failed[0].error}")
            time.sleep(0.1)
        raise CheckFailed(f"no {media_type} reached the library within {self.timeout:.0f} s")


def _references(path: str, text: str) -> list[str]:
    """Files a script, stylesheet or manifest loads: relative ES-module imports, absolute /assets/ paths."""
    folder = path.rsplit("/", 1)[0]
    modules = re.findall(r"""(?:from|import)\s*\(?\s*["'](\./[^"']+)["']""", text)
    found = [f"{folder}/{ref[2:]}" for ref in modules]
    found += re.findall(r"""["'(](/assets/[^"')?#\s]+)""", text)
    return found


# --- running it ---------------------------------------------------------------------------------------------


@contextmanager
def _isolated_environment() -> Iterator[None]:
    """The file key store, and no override that could point the check at the owner's real database."""
    saved = {name: os.environ.get(name) for name in ("VAULT_KEYSTORE", "VAULT_DATABASE_URL", "VAULT_HOME")}
    os.environ["VAULT_KEYSTORE"] = "file"
    os.environ.pop("VAULT_DATABASE_URL", None)
    os.environ.pop("VAULT_HOME", None)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _timed(name: str, check: Callable[[], str]) -> Result:
    started = time.perf_counter()
    try:
        detail, ok = check(), True
    except CheckFailed as exc:
        detail, ok = str(exc), False
    except Exception as exc:  # the report must name every failure, not stop at the first traceback
        log.debug("Self-check %r failed", name, exc_info=True)
        detail, ok = f"{type(exc).__name__}: {exc}", False
    return Result(name, ok, detail, time.perf_counter() - started)


def _marks(out: TextIO) -> tuple[str, str, str]:
    try:
        "✓✗–".encode(getattr(out, "encoding", None) or "utf-8")
    except (UnicodeEncodeError, LookupError):
        return "ok", "FAIL", "skip"
    return "✓", "✗", "–"


def run(out: TextIO, extra_checks: Sequence[Check] = (), timeout: float = TIMEOUT_SECONDS,
        packages: Sequence[str] = PACKAGES) -> bool:
    """Run every check, writing one line each to `out` as it finishes; True if all passed.

    `packages` are the ones whose every module is imported, and `extra_checks` run after ffmpeg's: the
    packaged app passes its GUI package and its Qt check in, since this package never names either. A
    failure in the running Vault skips the checks that build on it; the stop always runs.
    """
    good, bad, skip = _marks(out)
    results: list[Result] = []

    def report(result: Result) -> None:
        results.append(result)
        mark = skip if result.skipped else (good if result.ok else bad)
        out.write(f"{mark} {result.name:<12} {result.seconds:6.2f} s  {result.detail}\n")
        out.flush()

    started = time.perf_counter()
    build = "frozen app" if getattr(sys, "frozen", False) else f"Python {sys.version.split()[0]}"
    out.write(f"Vault self-check ({build}, {sys.platform})\n")
    modules = ("modules", lambda: import_all(packages))
    for name, check in [modules, ("ffmpeg", check_ffmpeg_binary), *extra_checks]:
        report(_timed(name, check))
    root = Path(tempfile.mkdtemp(prefix="vault-self-check-")).resolve()  # resolved: on macOS /var is a link
    trial = Trial(root, timeout)
    try:
        with _isolated_environment():
            broken: str | None = None
            for name, check in trial.checks():
                if broken:
                    report(Result(name, False, f"skipped: {broken} did not pass", 0.0, skipped=True))
                    continue
                report(_timed(name, check))
                broken = None if results[-1].ok else name
            report(_timed("stop", trial.close))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    failed = [r for r in results if not r.ok]
    total = time.perf_counter() - started
    if failed:
        names = ", ".join(r.name for r in failed if not r.skipped)
        out.write(f"Self-check FAILED in {total:.1f} s: {names}\n")
    else:
        out.write(f"Self-check passed: {len(results)} checks in {total:.1f} s\n")
    out.flush()
    return not failed
