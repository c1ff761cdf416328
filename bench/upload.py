"""Upload benchmark (`python -m bench upload`): a 2 GB file sent to a running `vaultserver serve` over
loopback HTTPS with tus, the way a phone's browser would, with a plain client (http.client, one kept-alive
connection).

Two runs of the same size: in 8 MB PATCHes (a client that sends in pieces, resuming cheaply), and as one
PATCH for the whole file (tus-js-client's default). Each reports MB/s (goal: at least GOAL_MBPS, gigabit
line rate) and the server's CPU seconds, and MB per server CPU second: what one free core could take, the
figure to read when other work shares the machine (the client's TLS runs on the same cores). The server's
peak RSS above its idle RSS (sampled every 100 ms, and the kernel's high-water mark) must stay flat
whatever the size: goal under RSS_GOAL_MB. The body is one
random 8 MB block sent over and over, so the client needs no disk and little memory. The server converts
nothing (`local_workers` 0): what is measured is the upload, up to the file queued in the import folder.
Results: bench/results/upload.json.
"""

from __future__ import annotations

import base64
import http.client
import os
import platform
import shutil
import ssl
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from bench.inputs import WORK
from bench.runner import publish
from bench.serve_process import VaultServer
from bench.serve_setup import PASSWORD, USER, vault
from vaultserver.config import AppPaths, Settings, save_settings
from vaultserver.crypto.tls import ensure_certificate

RESULTS = Path(__file__).resolve().parent / "results" / "upload.json"
SIZE, QUICK_SIZE = 2 * 1024**3, 256 * 1024**2
PIECE = 8 * 1024 * 1024
GOAL_MBPS, RSS_GOAL_MB = 100.0, 100.0
MB = 1024 * 1024
TUS = {"Tus-Resumable": "1.0.0"}


class Uploader:
    """One kept-alive HTTPS connection to the server, signed in."""

    def __init__(self, server: VaultServer, token: str) -> None:
        context = ssl.create_default_context(cafile=str(server.ca))
        context.check_hostname = False
        self.connection = http.client.HTTPSConnection("127.0.0.1", server.port, context=context, timeout=120)
        self.auth = {"Authorization": f"Bearer {token}"}

    def call(self, method: str, path: str, body: object = None, **headers: str) -> http.client.HTTPResponse:
        self.connection.request(method, path, body=body, headers={**TUS, **self.auth, **headers})  # type: ignore[arg-type]
        response = self.connection.getresponse()
        response.read()
        return response

    def create(self, size: int, name: str) -> str:
        described = "filename " + base64.b64encode(name.encode()).decode()
        response = self.call("POST", "/api/uploads",
                             **{"Upload-Length": str(size), "Upload-Metadata": described})
        if response.status != 201:
            raise RuntimeError(f"creating the upload failed: {response.status}")
        return str(response.headers["Location"])

    def patch(self, location: str, offset: int, body: object, length: int) -> int:
        response = self.call("PATCH", location, body, **{"Content-Type": "application/offset+octet-stream",
                                                          "Upload-Offset": str(offset),
                                                          "Content-Length": str(length)})
        if response.status != 204:
            raise RuntimeError(f"PATCH at {offset} failed: {response.status}")
        return int(response.headers["Upload-Offset"])


def _repeated(block: bytes, size: int) -> Iterator[bytes]:
    sent = 0
    while sent < size:
        piece = block[: size - sent]
        sent += len(piece)
        yield piece


def _run(server: VaultServer, uploader: Uploader, size: int, block: bytes, pieces: bool) -> dict:
    location = uploader.create(size, f"bench-{'pieces' if pieces else 'whole'}.bin")
    cpu_before, started = server.cpu(), time.perf_counter()
    if pieces:
        offset = 0
        while offset < size:
            length = min(PIECE, size - offset)
            offset = uploader.patch(location, offset, block[:length], length)
    else:
        offset = uploader.patch(location, 0, _repeated(block, size), size)
    wall = time.perf_counter() - started
    if offset != size:
        raise RuntimeError(f"the upload ended at {offset} of {size} bytes")
    cpu = server.cpu() - cpu_before
    return {"wall_s": round(wall, 2), "mb_per_s": round(size / MB / wall, 1), "server_cpu_s": round(cpu, 2),
            "mb_per_server_cpu_s": round(size / MB / max(cpu, 1e-6), 1)}


def _data_dir(root: Path) -> AppPaths:
    paths = AppPaths(root).ensure()
    save_settings(paths, Settings(mdns_enabled=False, keystore="file", local_workers=0))
    vault(root, "user", "add", USER, "--admin", "--password-stdin", stdin=PASSWORD + "\n")
    return paths


def run(quick: bool, keep: bool) -> dict:
    size = QUICK_SIZE if quick else SIZE
    home = WORK / "upload"
    home.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="run-", dir=home))
    block = os.urandom(PIECE)
    runs: dict[str, dict] = {}
    try:
        paths = _data_dir(workdir / "vault")
        ensure_certificate(paths)
        with VaultServer(paths.root, paths.private / "tls" / "ca.pem", workdir / "vault-serve.log") as server:
            uploader = Uploader(server, server.login())
            time.sleep(1.0)
            idle = server.rss()
            for name, pieces in (("8 MB PATCHes", True), ("one PATCH", False)):
                print(f"  {name:<16} {size // MB} MB ...", end="", flush=True)
                runs[name] = _run(server, uploader, size, block, pieces)
                print(f" {runs[name]['mb_per_s']:.1f} MB/s", flush=True)
                for done in (paths.default_imports / "Uploads").glob("bench-*"):
                    done.unlink()  # the next run needs the disk space, not this file
            peak = server.peak_rss
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return {"meta": {"when": datetime.now(UTC).isoformat(timespec="seconds"), "machine": platform.platform(),
                     "cpus": os.cpu_count(), "size_mb": size // MB, "quick": quick},
            "runs": runs, "idle_rss_mb": round(idle / MB, 1),
            "peak_rss_above_idle_mb": round((peak - idle) / MB, 1)}


def checks(results: dict) -> list[dict]:
    rows = [{"name": f"upload MB/s, {name}", "value": r["mb_per_s"], "target": f">= {GOAL_MBPS:.0f}",
             "pass": r["mb_per_s"] >= GOAL_MBPS} for name, r in results["runs"].items()]
    above = results["peak_rss_above_idle_mb"]
    rows.append({"name": "server peak RSS above idle (MB)", "value": above, "target": f"< {RSS_GOAL_MB:.0f}",
                 "pass": above < RSS_GOAL_MB})
    return rows


def report(results: dict, rows: list[dict]) -> str:
    lines = [f"Upload benchmark: {results['meta']['size_mb']} MB over loopback HTTPS (tus), "
             f"{results['meta']['cpus']} CPUs; server idle RSS {results['idle_rss_mb']} MB", ""]
    for name, r in results["runs"].items():
        lines.append(f"  {name:<16} {r['wall_s']:7.1f} s  {r['mb_per_s']:7.1f} MB/s  "
                     f"server CPU {r['server_cpu_s']:.1f} s ({r['mb_per_server_cpu_s']:.0f} MB per CPU s)")
    lines.append("")
    lines += [f"  {row['name']:<36} {row['value']:>8}  goal {row['target']:<8} "
              f"{'ok' if row['pass'] else 'MISSED'}" for row in rows]
    return "\n".join(lines)


def main(quick: bool = False, keep: bool = False, revision: str = "unknown") -> int:
    results = run(quick, keep)
    results["meta"]["git"] = revision
    rows = checks(results)
    return publish(report(results, rows), {**results, "checks": rows}, RESULTS)
