"""Checks shared by tests: playing stored HLS with ffmpeg like a player would, and scanning for plaintext."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from vaultserver import hls
from vaultserver.services import Services
from vaultserver.services.library import HLS_DIR, MASTER_PLAYLIST

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


class ApiClient:
    """A tiny HTTPS client for tests: trusts Vault's CA, keeps cookies if asked, returns parsed JSON."""

    def __init__(self, port: int, ca: Path, source: str | None = None, host: str = "localhost") -> None:
        import ssl
        self.port, self.host = port, host
        self.context = ssl.create_default_context(cafile=str(ca))
        self.source = source
        self.token: str | None = None
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, json_body=None, headers: dict | None = None,
                use_cookies: bool = False, token: str | None = None):
        import http.client
        import json as jsonlib
        conn = http.client.HTTPSConnection(self.host, self.port, context=self.context, timeout=30,
                                           source_address=(self.source, 0) if self.source else None)
        all_headers = dict(headers or {})
        bearer = token or self.token
        if bearer and not use_cookies:
            all_headers["Authorization"] = f"Bearer {bearer}"
        if use_cookies and self.cookies:
            all_headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if json_body is not None:
            body = jsonlib.dumps(json_body)
            all_headers["Content-Type"] = "application/json"
        conn.request(method, path, body=body, headers=all_headers)
        response = conn.getresponse()
        data = response.read()
        for raw in response.headers.get_all("Set-Cookie") or []:
            name, _, rest = raw.partition("=")
            self.cookies[name] = rest.split(";")[0]
        conn.close()
        parsed = None
        if response.headers.get("Content-Type", "").startswith("application/json"):
            parsed = jsonlib.loads(data)
        return Reply(response.status, response.headers, data, parsed)

    def login(self, username: str, password: str, device: str = "test"):
        reply = self.request("POST", "/api/auth/login", {"username": username, "password": password,
                                                         "device_name": device})
        if reply.status == 200:
            self.token = reply.json["access_token"]
        return reply


@dataclass
class Reply:
    status: int
    headers: object
    body: bytes
    json: dict | None

    @property
    def code(self) -> str | None:
        return (self.json or {}).get("error", {}).get("code")
