"""Download benchmark (`python -m bench download`): how fast a viewer gets a video to keep, over loopback
HTTPS.

The data folder is made the way a user's is, through `process --once`, from serve_setup's 12 s 1080p30 clip.
`vaultserver serve` runs in its own process (bench/serve_process.py); a plain client (http.client, bearer
token) then downloads the video RUNS times from `GET /api/media/{id}/download`: the top rung's segments
decrypted in memory and remuxed by ffmpeg into a fragmented MP4 while it is sent. Each run reports the bytes,
the time to the first byte (the session check, the playlist reads and ffmpeg's start) and the MB/s over the
whole download and from its first byte on. The first download is decoded whole by ffmpeg (it must be a
playable file, not just bytes). Also reported: the server's peak RSS and CPU seconds. Results:
bench/results/download.json.
"""

from __future__ import annotations

import http.client
import json
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.inputs import WORK
from bench.runner import publish
from bench.serve_process import VaultServer
from bench.serve_setup import PASSWORD, USER, ensure_inputs, vault
from vaultserver.config import AppPaths, Settings, save_settings
from vaultserver.crypto.tls import ensure_certificate
from vaultserver.ffmpeg import ffmpeg

RESULTS = Path(__file__).resolve().parent / "results" / "download.json"
RUNS, QUICK_RUNS = 7, 3
PIECE = 1024 * 1024
MB = 1_000_000


def _prepare(root: Path) -> tuple[AppPaths, str]:
    clip, _photo = ensure_inputs()
    paths = AppPaths(root).ensure()
    save_settings(paths, Settings(stable_seconds=0.0, mdns_enabled=False, keystore="file"))
    paths.default_imports.mkdir(parents=True, exist_ok=True)
    shutil.copy2(clip, paths.default_imports / clip.name)
    start = time.perf_counter()
    vault(root, "process", "--once")
    print(f"  ingested the clip ({time.perf_counter() - start:.0f} s)")
    vault(root, "user", "add", USER, "--admin", "--password-stdin", stdin=PASSWORD + "\n")
    items = json.loads(vault(root, "library", "list", "--json"))
    ensure_certificate(paths)
    return paths, next(item["id"] for item in items if item["type"] == "video")


def _download(server: VaultServer, token: str, media_id: str, dest: Path | None) -> dict[str, float]:
    """One download on its own connection: bytes, seconds to the first byte, seconds in all."""
    connection = http.client.HTTPSConnection("127.0.0.1", server.port, context=server.client.context,
                                             timeout=120)
    size, first = 0, 0.0
    start = time.perf_counter()
    try:
        connection.request("GET", f"/api/media/{media_id}/download",
                           headers={"Authorization": f"Bearer {token}"})
        response = connection.getresponse()
        if response.status != 200:
            raise RuntimeError(f"download failed: {response.status} {response.read()[:300]!r}")
        with open(dest or os.devnull, "wb") as sink:
            while piece := response.read1(PIECE):
                first = first or time.perf_counter() - start
                size += len(piece)
                sink.write(piece)
    finally:
        connection.close()
    return {"bytes": size, "first_byte_seconds": first, "seconds": time.perf_counter() - start}


def _decodes_whole(path: Path) -> bool:
    checked = subprocess.run([ffmpeg(), "-v", "error", "-i", str(path), "-f", "null", "-"],
                             capture_output=True, text=True, timeout=300)
    return checked.returncode == 0 and not checked.stderr.strip()


def main(quick: bool, keep: bool, revision: str) -> int:
    runs = QUICK_RUNS if quick else RUNS
    WORK.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="download-", dir=WORK))
    try:
        print("Preparing (serve_setup's 12 s 1080p30 clip through `process --once`):")
        paths, video_id = _prepare(work / "data")
        print(f"Measuring {runs} downloads of the video over loopback HTTPS:")
        with VaultServer(paths.root, paths.private / "tls" / "ca.pem", work / "serve.log") as server:
            token = server.login()
            first_file = work / "first.mp4"
            samples = [_download(server, token, video_id, first_file if n == 0 else None)
                       for n in range(runs)]
            cpu = server.cpu()
        peak_rss = server.peak_rss
        decodes = _decodes_whole(first_file)
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    rates = [s["bytes"] / MB / s["seconds"] for s in samples]
    flowing = [s["bytes"] / MB / max(s["seconds"] - s["first_byte_seconds"], 1e-6) for s in samples]
    results = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"), "revision": revision,
        "machine": {"system": platform.platform(), "cpus": os.cpu_count()},
        "video": "12 s 1080p30 clip, top rung", "runs": samples,
        "bytes": samples[0]["bytes"], "mb_per_s_median": statistics.median(rates),
        "mb_per_s_best": max(rates), "mb_per_s_after_first_byte_median": statistics.median(flowing),
        "first_byte_ms_median": statistics.median(s["first_byte_seconds"] for s in samples) * 1000,
        "first_download_decodes_whole": decodes, "server_peak_rss_mb": peak_rss / 1024 / 1024,
        "server_cpu_seconds": cpu,
    }
    text = "\n".join([
        f"Video download (GET /api/media/{{id}}/download, {samples[0]['bytes'] / MB:.1f} MB MP4, "
        f"{runs} runs):",
        f"  MB/s            median {results['mb_per_s_median']:.1f}, best {results['mb_per_s_best']:.1f}",
        f"  after 1st byte  median {results['mb_per_s_after_first_byte_median']:.1f} MB/s",
        f"  first byte      median {results['first_byte_ms_median']:.0f} ms",
        f"  decodes whole   {'yes' if decodes else 'NO'} (ffmpeg -v error, first download)",
        f"  server          peak RSS {results['server_peak_rss_mb']:.0f} MB, CPU {cpu:.1f} s",
    ])
    return publish(text, results, RESULTS)
