"""What tests share: HLS played with ffmpeg like a player would, a scan for plaintext, API clients, the
first-run wizard's recovery-key pages walked as an owner who kept the words, and a data folder ready to be
backed up.

`ApiClient` talks HTTPS to a real server; `AppClient` is the same client driving the real Quart app in this
process from any peer address, for rules that need no TLS, streaming or player (most of them).
"""

from __future__ import annotations

import asyncio
import http.client
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from quart import Quart
from quart.testing import QuartClient

from vaultserver import hls
from vaultserver.config import AppPaths
from vaultserver.crypto.tls import ensure_certificate
from vaultserver.https_client import HttpsClient, Reply
from vaultserver.pipeline import Pipeline
from vaultserver.services import Services, open_services
from vaultserver.services.items import HLS_DIR, MASTER_PLAYLIST

# Leading bytes of every media format Vault might write in the clear by mistake.
MAGIC = {
    "jpeg": b"\xff\xd8\xff", "png": b"\x89PNG", "gif": b"GIF8", "webp": b"RIFF",
    "mkv/webm": b"\x1a\x45\xdf\xa3", "bmp": b"BM",
    "tiff-le": b"II*\x00", "tiff-be": b"MM\x00*", "playlist": b"#EXTM3U",
}


def plaintext_findings(library: Path) -> list[str]:
    """Every file in library/ that looks like media (magic number, MP4 box, or an MPEG-TS packet train)."""
    findings = []
    for path in library.rglob("*"):
        if not path.is_file():
            continue
        head = path.read_bytes()[:4096]
        for kind, magic in MAGIC.items():
            if head.startswith(magic):
                findings.append(f"{path.name}: {kind}")
        if head[4:8] in (b"ftyp", b"moov", b"mdat"):
            findings.append(f"{path.name}: mp4")
        if len(head) >= 188 * 3 and all(head[i * 188] == 0x47 for i in range(3)):
            findings.append(f"{path.name}: mpeg-ts")
        if b"\x00\x00\x01\xb3" in head or b"\x00\x00\x00\x01\x67" in head:
            findings.append(f"{path.name}: h264/mpeg start code")
    return findings


@dataclass(frozen=True)
class Decoded:
    frames: int
    seconds: float
    width: int
    height: int
    pix_fmt: str
    has_audio: bool


def play_hls(services: Services, media_id: str, workdir: Path, ffmpeg: str,
             rung: str | None = None) -> Decoded:
    """Decode a stored rendition with ffmpeg, fetching the key as a player would (from a key file here)."""
    library = services.library
    variants = hls.variants(library.read(media_id, MASTER_PLAYLIST).decode())
    uri = next(v.uri for v in variants if rung is None or v.uri.startswith(f"{rung}/"))
    rung_name = uri.split("/")[0]
    text = library.read(media_id, f"{HLS_DIR}/{rung_name}/index.m3u8.vlt").decode()
    key_id = hls.segments(text)[0].key_id
    assert key_id, "the rendition is not encrypted"
    workdir.mkdir(parents=True, exist_ok=True)
    key_file = workdir / "key.bin"
    key_file.write_bytes(services.keys.data_key(key_id))
    segment_dir = library.item_dir(media_id) / HLS_DIR / rung_name
    text = text.replace(f"{hls.KEY_SCHEME}{key_id}", key_file.as_uri())
    text = re.sub(r"^(seg_\d+\.ts)$", lambda m: (segment_dir / m[1]).as_uri(), text, flags=re.M)
    playlist = workdir / "play.m3u8"
    playlist.write_text(text)
    result = subprocess.run(
        [ffmpeg, "-hide_banner", "-nostdin", "-allowed_extensions", "ALL", "-protocol_whitelist",
         "file,crypto,data", "-i", str(playlist), "-f", "null", "-"],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    frames = int(re.findall(r"frame=\s*(\d+)", result.stderr)[-1])
    h, m, s = re.findall(r"time=(\d+):(\d+):([\d.]+)", result.stderr)[-1]
    video = re.search(r"Stream #0:\d+.*Video: h264.*?, (yuv[^,(]+).*?, (\d+)x(\d+)", result.stderr)
    assert video, result.stderr
    return Decoded(frames, int(h) * 3600 + int(m) * 60 + float(s), int(video[2]), int(video[3]), video[1],
                   "Audio: aac" in result.stderr)


class ApiClient(HttpsClient):
    """Vault's HTTPS client plus a browser's cookie jar: `use_cookies` sends cookies instead of the token."""

    def __init__(self, port: int, ca: Path | None, source: str | None = None,
                 host: str = "localhost") -> None:
        super().__init__(port, ca, host, source=source)
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, json_body: Any = None, headers: dict | None = None,
                use_cookies: bool = False, token: str | None = None) -> Reply:
        all_headers = dict(headers or {})
        if use_cookies and self.cookies:
            all_headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        reply = super().request(method, path, json_body, headers=all_headers,
                                token="" if use_cookies else token)
        for raw in reply.headers.get_all("Set-Cookie") or []:
            name, _, rest = raw.partition("=")
            self.cookies[name] = rest.split(";")[0]
        return reply


class InProcessApp:
    """The real Quart app, driven in this process through Quart's test client: no TLS, no server, no pipeline.

    One event loop serves every request (its thread pool runs the services, as under Hypercorn). Paths are
    percent-decoded here because Hypercorn decodes them before the app sees them.
    """

    def __init__(self, app: Quart) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()

    def send(self, method: str, path: str, body: bytes | None, headers: dict[str, str], peer: str) -> Reply:
        return self.loop.run_until_complete(self._send(method, path, body, headers, peer))

    async def _send(self, method: str, path: str, body: bytes | None, headers: dict[str, str],
                    peer: str) -> Reply:
        route, mark, query = path.partition("?")
        response = await QuartClient(self.app).open(
            unquote(route) + mark + query, method=method, headers=headers, data=body, scheme="https",
            scope_base={"client": (peer, 50000)})
        message = http.client.HTTPMessage()
        for name, value in response.headers.items():
            message[name] = value  # adds, so repeated headers (Set-Cookie) all stay
        return Reply(response.status_code, message, await response.get_data(as_text=False))

    def close(self) -> None:
        self.loop.run_until_complete(self.loop.shutdown_default_executor())
        self.loop.close()


class AppClient(ApiClient):
    """The same client as `ApiClient`, talking to an `InProcessApp` as if from the address `peer`."""

    def __init__(self, app: InProcessApp, peer: str = "127.0.0.1", host: str = "localhost") -> None:
        super().__init__(0, None, host=host)
        self.app, self.peer = app, peer

    def send(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> Reply:
        return self.app.send(method, path, body, {"Host": self.host, **headers}, self.peer)


@dataclass(frozen=True)
class Account:
    """A user made for a test, with the password to sign in with."""

    id: str
    username: str
    password: str
    role: str


def keep_the_recovery_key(qtbot: Any, wizard: Any) -> list[str]:
    """From the wizard's account page past its recovery-key pages: wait for the words, type three back.
    Returns the words the page showed."""
    if wizard.currentId() == -1:  # a wizard never shown has not entered its first page yet
        wizard.restart()
    wizard.next()
    qtbot.waitUntil(lambda: len(wizard.recovery_key.words.shown_words()) == 24, timeout=30_000)
    words = wizard.recovery_key.words.shown_words()
    wizard.next()
    check = wizard.recovery_check.check
    for entry, position in zip(check.entries, check.positions, strict=True):
        entry.setText(words[position - 1])
    wizard.next()
    return words


@dataclass(frozen=True)
class Seed:
    """A data folder made once and copied by each test that backs it up: converted media, accounts, a
    recovery key (`phrase`) and a certificate authority."""

    root: Path
    phrase: str

    def open_copy(self, root: Path) -> Services:
        """A copy of the seed at `root`, opened: each test may change its own freely."""
        shutil.copytree(self.root, root)
        return open_services(AppPaths(root))


def seed_data_folder(paths: AppPaths, sources: Sequence[tuple[Path, str]],
                     accounts: Sequence[tuple[str, str, str]] = ()) -> Seed:
    """Convert `sources` (file, name in the import folder) into `paths`' library, add `accounts`
    (name, password, role), make a recovery key and the certificate authority."""
    services = open_services(paths)
    try:
        for name, password, role in accounts:
            services.users.create(name, password, role)
        imports = services.settings.current.import_path(paths)
        imports.mkdir(parents=True, exist_ok=True)
        for source, name in sources:
            shutil.copyfile(source, imports / name)
        assert Pipeline(services).process_once(timeout=300), "the pipeline did not finish in time"
        phrase = services.keys.new_recovery_key(actor="test")
    finally:
        services.close()
    ensure_certificate(paths)
    return Seed(paths.root, phrase)
