"""Serving benchmark: Vault's full HTTPS stack next to nginx serving the same bytes, in the same run.

What is measured, with 16 concurrent keep-alive clients (wrk) on loopback:
- an encrypted HLS segment of about 1.5 MB (TLS, network gate, JWT, session check, file streaming);
- a video's animated thumbnail (TLS ... plus AES-GCM decryption of the at-rest file);
- `GET /api/media/library?limit=50` latency with 100,000 items in the database (one sequential client).
nginx (Debian's) serves the stored segment and the decrypted thumbnail as static files over TLS with the
same certificate. Vault runs as its own `vaultserver serve` process so its peak RSS is its own.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import sqlite3
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from vaultserver.config import AppPaths, Settings, save_settings
from vaultserver.ffmpeg import ffmpeg

WORK = Path(__file__).resolve().parent / ".work"
CONNECTIONS, THREADS, SECONDS = 16, 2, 8
USER, PASSWORD = "bench", "Bench!pass1"
TARGETS = {
    "segment_vs_nginx": 0.7,
    "segment_mb_s": 125.0,
    "segment_p99_ms": 150.0,
    "thumb_rps": 1000.0,
    "library_p95_ms": 25.0,
}


def _vault(data: Path, *args: str, stdin: str | None = None) -> str:
    cmd = [sys.executable, "-m", "vaultserver.cli", "--data-dir", str(data), *args]
    return subprocess.run(
        cmd,
        input=stdin,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "VAULT_KEYSTORE": "file"},
    ).stdout


CLIP = ["-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=30", "-f", "lavfi", "-i", "sine", "-t", "12",
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac"]


def prepare(data: Path) -> dict:
    """A data dir with a 1080p clip and a 12 MP photo ingested, an owner, and 100,000 extra library rows."""
    from PIL import Image

    paths = AppPaths(data).ensure()
    save_settings(paths, Settings(stable_seconds=0, mdns_enabled=False))
    paths.default_imports.mkdir(exist_ok=True)
    subprocess.run([ffmpeg(), "-loglevel", "error", "-y", *CLIP, str(paths.default_imports / "clip.mp4")],
                   check=True)
    photo = Image.radial_gradient("L").resize((4000, 3000)).convert("RGB")
    photo.effect_spread(40).save(paths.default_imports / "photo.jpg", quality=90)
    _vault(data, "process", "--once")
    _vault(data, "user", "add", USER, "--admin", "--password-stdin", stdin=PASSWORD + "\n")
    items = {i["type"]: i for i in json.loads(_vault(data, "library", "list", "--json"))}
    video = items["video"]["id"]
    segments = sorted(paths.library.glob(f"{video}/hls/*/seg_*.ts"),
                      key=lambda p: abs(p.stat().st_size - 1_500_000))
    _add_rows(paths.database, 100_000)
    return {"id": video, "photo": items["image"]["id"], "segment": segments[0], "paths": paths}


def _add_rows(database: Path, count: int) -> None:
    now = time.strftime("%Y-%m-%d %H:%M:%S")
    rows = [
        (
            uuid.uuid4().hex,
            "image",
            f"IMG_{n:06d}.jpg",
            uuid.uuid4().hex + uuid.uuid4().hex,
            3_000_000,
            200_000,
            "image/webp",
            "JPEG",
            4000,
            3000,
            None,
            0,
            now,
            None,
            None,
            "ready",
            "[]",
            0,
            now,
            now,
        )
        for n in range(count)
    ]
    with sqlite3.connect(database) as db:
        db.executemany(
            "INSERT INTO media_files (id, media_type, original_name, sha256, size, stored_size, "
            "mime_type, source_format, width, height, duration, animated, taken_at, camera_make, "
            "camera_model, status, renditions, has_original, created_at, updated_at) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            rows,
        )


class Server:
    """`vaultserver serve` in its own process; peak RSS sampled from /proc."""

    def __init__(self, data: Path) -> None:
        cmd = [
            sys.executable,
            "-m",
            "vaultserver.cli",
            "--data-dir",
            str(data),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
        ]
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, text=True, env={**os.environ, "VAULT_KEYSTORE": "file"}
        )
        self.port = int(re.search(r"localhost:(\d+)", self.proc.stdout.readline())[1])
        self.peak_rss_mb = 0.0

    def sample_rss(self) -> None:
        status = Path(f"/proc/{self.proc.pid}/status")
        if status.exists():
            kb = int(re.search(r"VmRSS:\s+(\d+)", status.read_text())[1])
            self.peak_rss_mb = max(self.peak_rss_mb, kb / 1024)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def _token(port: int) -> str:
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ssl._create_unverified_context())
    conn.request(
        "POST",
        "/api/auth/login",
        json.dumps({"username": USER, "password": PASSWORD}),
        {"Content-Type": "application/json"},
    )
    return json.loads(conn.getresponse().read())["access_token"]


def wrk(url: str, token: str | None = None, on_tick=None) -> dict:
    """Throughput and latency percentiles from wrk (16 connections, 2 threads, 8 s)."""
    cmd = ["wrk", f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{SECONDS}s", "--latency", url]
    if token:
        cmd[1:1] = ["-H", f"Authorization: Bearer {token}"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    while proc.poll() is None:
        if on_tick:
            on_tick()
        time.sleep(0.2)
    out = proc.stdout.read()

    def ms(label: str) -> float:
        value, unit = re.search(rf"{label}\s+([\d.]+)(us|ms|s)", out).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    transfer, unit = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", out).groups()
    mb_s = float(transfer) * {"B": 1e-6, "KB": 1.024e-3, "MB": 1.048576, "GB": 1073.741824}[unit]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1]),
        "mb_s": mb_s,
        "p50_ms": ms("50%"),
        "p99_ms": ms("99%"),
        "non_2xx": int(errors[1]) if errors else 0,
    }


def library_latency(port: int, token: str, requests: int = 200) -> dict:
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ssl._create_unverified_context())
    timings = []
    for n in range(requests):
        start = time.perf_counter()
        conn.request(
            "GET",
            f"/api/media/library?limit=50&page={1 + n % 50}",
            headers={"Authorization": f"Bearer {token}"},
        )
        body = conn.getresponse().read()
        timings.append((time.perf_counter() - start) * 1000)
    assert json.loads(body)["pagination"]["total"] == 100_002
    timings.sort()
    return {"p50_ms": statistics.median(timings), "p95_ms": timings[int(len(timings) * 0.95)]}


NGINX_CONF = """
worker_processes 1; daemon off; pid {root}/nginx.pid; error_log {root}/error.log;
events {{ worker_connections 256; }}
http {{
  access_log off; sendfile on; tcp_nopush on; keepalive_requests 100000;
  types {{ video/mp2t ts; image/webp webp; }}
  server {{
    listen 127.0.0.1:{port} ssl; ssl_certificate {cert}; ssl_certificate_key {key};
    ssl_protocols TLSv1.2 TLSv1.3; root {root}/www;
  }}
}}
"""


def nginx(root: Path, tls, segment: Path, thumb: bytes) -> tuple[subprocess.Popen, int]:
    (root / "www").mkdir(parents=True)
    for folder in (root.parent, root, root / "www"):  # nginx's workers run as an unprivileged user
        folder.chmod(0o755)
    shutil.copyfile(segment, root / "www" / "seg.ts")
    (root / "www" / "thumb.webp").write_bytes(thumb)
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (root / "nginx.conf").write_text(NGINX_CONF.format(root=root, port=port, cert=tls.cert, key=tls.key))
    proc = subprocess.Popen(["nginx", "-c", str(root / "nginx.conf"), "-p", str(root)])
    time.sleep(0.5)
    return proc, port


def run() -> dict:
    if not shutil.which("wrk") or not Path("/usr/sbin/nginx").exists():
        print("The serving benchmark needs wrk and nginx: apt-get install wrk nginx-light")
        return {}
    with tempfile.TemporaryDirectory(dir=WORK if WORK.exists() else None) as tmp:
        tmp_path = Path(tmp)
        print("Preparing: ingesting a 1080p clip and adding 100,000 library rows ...", flush=True)
        setup = prepare(tmp_path / "vault")
        paths, media_id = setup["paths"], setup["id"]
        server = Server(paths.root)
        try:
            token = _token(server.port)
            rung, name = setup["segment"].parent.name, setup["segment"].name
            base = f"https://127.0.0.1:{server.port}/api/media"
            from vaultserver.crypto.tls import ensure_certificate
            from vaultserver.services import open_services

            services = open_services(paths)
            thumb = services.library.read(setup["photo"], "thumb.vlt")
            services.close()
            results = {"segment_bytes": setup["segment"].stat().st_size, "thumb_bytes": len(thumb)}
            print("Vault: segment ...", flush=True)
            results["vault_segment"] = wrk(f"{base}/hls/{media_id}/{rung}/{name}", token, server.sample_rss)
            print("Vault: thumbnail ...", flush=True)
            results["vault_thumb"] = wrk(f"{base}/thumbnail/{setup['photo']}", token, server.sample_rss)
            print("Vault: library with 100,000 items ...", flush=True)
            results["library"] = library_latency(server.port, token)
            server.sample_rss()
            results["vault_peak_rss_mb"] = server.peak_rss_mb
        finally:
            server.stop()
        proc, port = nginx(tmp_path / "nginx", ensure_certificate(paths), setup["segment"], thumb)
        try:
            print("nginx: segment and thumbnail ...", flush=True)
            results["nginx_segment"] = wrk(f"https://127.0.0.1:{port}/seg.ts")
            results["nginx_thumb"] = wrk(f"https://127.0.0.1:{port}/thumb.webp")
        finally:
            proc.terminate()
            proc.wait(10)
    return results


def report(r: dict) -> list[dict]:
    seg, nseg, thumb, nthumb, lib = (
        r["vault_segment"],
        r["nginx_segment"],
        r["vault_thumb"],
        r["nginx_thumb"],
        r["library"],
    )
    print(
        f"\nServing benchmark ({CONNECTIONS} connections, {SECONDS} s each, loopback, {os.cpu_count()} CPUs)"
    )
    print(f"segment {r['segment_bytes'] / 1e6:.2f} MB, thumbnail {r['thumb_bytes'] / 1e3:.1f} KB\n")
    print(f"{'':28}{'req/s':>10}{'MB/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'non-2xx':>9}")
    for label, row in (
        ("Vault segment", seg),
        ("nginx segment", nseg),
        ("Vault thumbnail", thumb),
        ("nginx thumbnail", nthumb),
    ):
        print(
            f"{label:28}{row['rps']:>10.0f}{row['mb_s']:>10.1f}{row['p50_ms']:>10.1f}"
            f"{row['p99_ms']:>10.1f}{row['non_2xx']:>9}"
        )
    print(f"{'Vault library (100k items)':28}{'':>20}{lib['p50_ms']:>10.1f}   p95 {lib['p95_ms']:.1f} ms")
    print(f"Vault server peak RSS: {r['vault_peak_rss_mb']:.0f} MB\n")
    checks = [
        ("segments Vault/nginx MB/s", seg["mb_s"] / nseg["mb_s"], ">=", TARGETS["segment_vs_nginx"]),
        ("segments MB/s", seg["mb_s"], ">=", TARGETS["segment_mb_s"]),
        ("segments p99 ms", seg["p99_ms"], "<", TARGETS["segment_p99_ms"]),
        ("thumbnails req/s", thumb["rps"], ">=", TARGETS["thumb_rps"]),
        ("thumbnails Vault/nginx req/s", thumb["rps"] / nthumb["rps"], "", None),
        ("library p95 ms", lib["p95_ms"], "<", TARGETS["library_p95_ms"]),
    ]
    rows = []
    for name, value, op, target in checks:
        ok = None if target is None else (value >= target if op == ">=" else value < target)
        verdict = "" if ok is None else ("PASS" if ok else "FAIL")
        print(f"{name:32}{value:>10.2f}  {op} {target if target is not None else '':<6} {verdict}")
        rows.append({"name": name, "value": value, "target": target, "pass": ok})
    return rows
