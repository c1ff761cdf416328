"""Serving benchmark: Vault's whole HTTPS stack next to nginx serving the same bytes, in the same run.

Measured with 16 concurrent keep-alive clients on loopback (127.0.0.1 only), each run bounded in time
(default 10 s) and request count:
- an encrypted HLS segment of about 1.5 MB, sent as stored (TLS, network gate, JWT, session check, file);
- a photo's 300 px thumbnail of about 20 KB (the same, plus AES-GCM decryption of the at-rest file);
- `GET /api/media/library?limit=50` with 100,000 items in the database: p95 latency of one client (what a
  user scrolling the gallery waits) and, for information, of 16 clients at once;
- nginx serving the stored segment and the decrypted thumbnail as static files over TLS with the same
  certificate, measured with the same client: the yardstick for the ratios.
Vault runs as `vaultserver serve` in its own process (bench.serve_process), so its RSS and CPU are its own.
"""

from __future__ import annotations

import http.client
import json
import os
import platform
import shutil
import ssl
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench import loadgen, nginx_baseline
from bench.inputs import WORK
from bench.runner import publish
from bench.serve_process import VaultServer
from bench.serve_setup import ServeData, prepare

RESULTS = Path(__file__).resolve().parent / "results" / "serve.json"
CONNECTIONS = 16
LIBRARY_URL = "/api/media/library?limit=50"
LIBRARY_SEQUENTIAL = 300  # requests, one at a time
TARGETS = {"segment_vs_nginx": 0.7, "segment_mb_s": 125.0, "segment_p99_ms": 150.0, "thumb_rps": 1000.0,
           "library_p95_ms": 25.0}


def _get(url: str) -> tuple[int, bytes]:
    parts = urlsplit(url)
    conn = http.client.HTTPSConnection(parts.hostname or "", parts.port, timeout=30,
                                       context=ssl._create_unverified_context())  # a copied certificate
    try:
        conn.request("GET", parts.path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _start_vault(stack: ExitStack, data: ServeData, tmp: Path) -> tuple[VaultServer, str]:
    """Start Vault, sign in, and check (and so warm up) every route measured."""
    server = stack.enter_context(VaultServer(data.paths.root, data.tls.ca, tmp / "vault-serve.log"))
    token = server.login()
    for path, expected, what in ((data.segment_url, data.segment.read_bytes(), "segment"),
                                 (data.thumbnail_url, data.thumbnail, "thumbnail")):
        status, body = server.request("GET", path, token=token)
        if status != 200 or body != expected:  # the same bytes as nginx's, or the comparison means nothing
            raise RuntimeError(f"{what}: Vault answered {status}, {len(body)} bytes, not {len(expected)}")
    status, body = server.request("GET", LIBRARY_URL, token=token)
    total = json.loads(body)["pagination"]["total"] if status == 200 else None
    if total != data.rows:
        raise RuntimeError(f"library: {status}, total {total}, expected {data.rows}")
    return server, token


def _start_nginx(stack: ExitStack, data: ServeData) -> nginx_baseline.Nginx:
    files: dict[str, bytes | Path] = {"seg.ts": data.segment, "thumb.webp": data.thumbnail}
    root = Path(tempfile.mkdtemp(prefix="nginx-", dir=WORK))  # WORK is world-searchable
    stack.callback(shutil.rmtree, root, ignore_errors=True)
    nginx = stack.enter_context(nginx_baseline.Nginx(root, data.tls, files))
    for name, content in files.items():
        expected = content.read_bytes() if isinstance(content, Path) else content
        status, body = _get(nginx.url(name))
        if status != 200 or body != expected:
            raise RuntimeError(f"nginx answered {status}, {len(body)} bytes for {name}")
    return nginx


def _measure(data: ServeData, tmp: Path, client: str, seconds: float, processes: int, with_nginx: bool
             ) -> tuple[dict, dict | None]:
    """Both servers run side by side (an idle one costs nothing), so that each Vault run is followed at
    once by the same nginx run: on a shared machine, the pairs see the same background load."""
    vault: dict = {}
    nginx_out: dict | None = {} if with_nginx else None
    with ExitStack() as stack:
        server, token = _start_vault(stack, data, tmp)
        nginx = _start_nginx(stack, data) if with_nginx else None
        load: dict[str, Any] = {"connections": CONNECTIONS, "seconds": seconds, "client": client,
                                "processes": processes}
        on_vault: dict[str, Any] = {"token": token, "cafile": str(data.tls.ca), "cpu": server.cpu}
        for key, vault_path, nginx_name, size in (
                ("segment", data.segment_url, "seg.ts", data.segment.stat().st_size),
                ("thumbnail", data.thumbnail_url, "thumb.webp", len(data.thumbnail))):
            print(f"  Vault: {key} ...", flush=True)
            vault[key] = loadgen.measure(server.base + vault_path, **on_vault, **load, body_bytes=size)
            if nginx and nginx_out is not None:
                print(f"  nginx: {key} ...", flush=True)
                nginx_out[key] = loadgen.measure(nginx.url(nginx_name), **load, body_bytes=size,
                                                 cpu=nginx.cpu)
        print(f"  Vault: library, 1 client, {LIBRARY_SEQUENTIAL} requests ...", flush=True)
        vault["library_1"] = loadgen.sequential(server.base + LIBRARY_URL, **on_vault,
                                                requests=LIBRARY_SEQUENTIAL, seconds=seconds)
        print(f"  Vault: library, {CONNECTIONS} clients ...", flush=True)
        vault["library_16"] = loadgen.measure(server.base + LIBRARY_URL, **on_vault,
                                              **{**load, "client": "python"})
    vault["peak_rss_mb"] = server.peak_rss / 2**20
    return vault, nginx_out


def run(client: str = "auto", seconds: float = 10.0) -> dict:
    if client == "wrk" and not loadgen.has_wrk():
        raise SystemExit("wrk is not installed (apt-get install -y wrk); use --client python")
    used = "wrk" if client == "wrk" or (client == "auto" and loadgen.has_wrk()) else "python"
    processes = min(4, max(2, os.cpu_count() or 2))
    have_nginx = nginx_baseline.binary() is not None
    load_before = os.getloadavg()[0]
    print(f"Serving benchmark: {CONNECTIONS} clients ({used}), {seconds:g} s per run, 127.0.0.1, "
          f"{os.cpu_count()} CPUs, load average {load_before:.1f} before the run")
    if not have_nginx:
        print("  nginx is not installed, so there is no baseline (apt-get install -y nginx-light or nginx);"
              " measuring Vault alone")
    WORK.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="serve-", dir=WORK) as tmp_name:
        tmp = Path(tmp_name)
        print("  preparing: ingesting a 1080p clip and a photo, adding 100,000 library rows ...", flush=True)
        data = prepare(tmp / "vault", log=lambda line: print(line, flush=True))
        vault, nginx = _measure(data, tmp, client, seconds, processes, have_nginx)
        segment_rung, segment_bytes = data.segment.parent.name, data.segment.stat().st_size
    return {"meta": {"date": datetime.now(UTC).isoformat(timespec="seconds"),
                     "client": used, "connections": CONNECTIONS, "seconds": seconds, "cpus": os.cpu_count(),
                     "load_average_before": load_before, "load_average_after": os.getloadavg()[0],
                     "platform": platform.platform(),
                     "python": platform.python_version(), "wall_seconds": time.perf_counter() - started},
            "segment": {"rung": segment_rung, "bytes": segment_bytes},
            "thumbnail_bytes": len(data.thumbnail), "library_items": data.rows,
            "vault": vault, "nginx": nginx}


def _ratio(a: float, b: float | None) -> float | None:
    return a / b if b else None


def checks(r: dict) -> list[dict]:
    """The targets; a figure from a run that had errors fails, since errors can make a server look fast."""
    v, n = r["vault"], r["nginx"]
    seg, thumb, lib1, lib16 = v["segment"], v["thumbnail"], v["library_1"], v["library_16"]
    nseg, nthumb = (n["segment"], n["thumbnail"]) if n else (None, None)
    rows = [
        ("segments MB/s, Vault / nginx", _ratio(seg.mb_s, nseg and nseg.mb_s), ">=",
         TARGETS["segment_vs_nginx"], [seg, nseg]),
        ("segments MB/s", seg.mb_s, ">=", TARGETS["segment_mb_s"], [seg]),
        ("segments p99 ms", seg.p99_ms, "<", TARGETS["segment_p99_ms"], [seg]),
        ("thumbnails req/s", thumb.rps, ">=", TARGETS["thumb_rps"], [thumb]),
        ("thumbnails req/s, Vault / nginx", _ratio(thumb.rps, nthumb and nthumb.rps), "", None,
         [thumb, nthumb]),
        ("library p95 ms, 1 client", lib1.p95_ms, "<", TARGETS["library_p95_ms"], [lib1]),
        (f"library p95 ms, {CONNECTIONS} clients", lib16.p95_ms, "", None, [lib16]),
        ("Vault server peak RSS MB", v["peak_rss_mb"], "", None, []),
    ]
    out = []
    for name, value, op, target, sources in rows:
        ok = None if target is None or value is None else (value >= target if op == ">=" else value < target)
        if ok and any(load.errors for load in sources if load is not None):
            ok = False
        out.append({"name": name, "value": value, "target": f"{op} {target:g}" if target else "", "pass": ok})
    return out


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def report(r: dict, rows: list[dict]) -> str:
    m, v, n = r["meta"], r["vault"], r["nginx"]
    lines = [f"Vault serving benchmark  {m['date']}  git {m['git']}  {m['cpus']} CPUs  client {m['client']}, "
             f"{m['connections']} connections, {m['seconds']:g} s per run",
             f"segment: {r['segment']['rung']}/seg_00000.ts, {r['segment']['bytes'] / 1e6:.2f} MB as stored; "
             f"thumbnail: {r['thumbnail_bytes'] / 1e3:.1f} KB; library: {r['library_items']:,} items", "",
             f"{'':34}{'req/s':>9}{'MB/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'errors':>8}"
             f"{'CPU ms/req':>12}", "-" * 99]
    table = [("Vault segment", v["segment"]), ("nginx segment", n and n["segment"]),
             ("Vault thumbnail", v["thumbnail"]), ("nginx thumbnail", n and n["thumbnail"]),
             ("Vault library, 1 client", v["library_1"]),
             (f"Vault library, {CONNECTIONS} clients", v["library_16"])]
    for label, load in table:
        if load is None:
            lines.append(f"{label:34}{'(nginx not installed)':>20}")
            continue
        lines.append(f"{label:34}{load.rps:>9.0f}{load.mb_s:>9.1f}{_fmt(load.p50_ms):>9}{_fmt(load.p95_ms):>9}"
                     f"{_fmt(load.p99_ms):>9}{load.errors:>8}{_fmt(load.cpu_ms_per_request, 2):>12}")
    lines += ["(MB = 10^6 bytes of body; CPU ms/req = the server's user+sys CPU over the run / requests"
              + ("; wrk prints no p95)" if m["client"] == "wrk" else ")"), "",
              f"CPU during each run, average cores busy ({m['cpus']} on this machine):",
              f"{'':34}{'server':>9}{'client':>9}{'others':>9}", "-" * 61]
    shared = 0.0
    for label, load in table:
        if load is None:
            continue
        server, client = load.cores(load.server_cpu_s), load.cores(load.client_cpu_s)
        machine = load.cores(load.machine_cpu_s)
        others = None if machine is None else max(0.0, machine - (server or 0) - (client or 0))
        shared = max(shared, others or 0.0)
        lines.append(f"{label:34}{_fmt(server, 2):>9}{_fmt(client, 2):>9}{_fmt(others, 2):>9}")
    if shared > 0.25:
        lines.append(f"Other processes used up to {shared:.1f} cores during a run: the machine was shared, "
                     "so Vault's and nginx's figures are lower than on an idle machine.")
    lines += ["", f"{'figure':<40}{'value':>10}  {'target':<9} result", "-" * 68]
    for c in rows:
        verdict = "" if c["pass"] is None else ("PASS" if c["pass"] else "FAIL")
        lines.append(f"{c['name']:<40}{_fmt(c['value'], 2):>10}  {c['target']:<9} {verdict}")
    verdicts = [c["pass"] for c in rows if c["pass"] is not None]
    lines += ["", f"Targets met: {sum(verdicts)}/{len(verdicts)}"]
    failed = [label for label, load in table if load is not None and load.errors]
    if failed:
        lines.append(f"Errors (non-2xx answers, broken connections or timeouts) in: {', '.join(failed)}")
    if n and v["thumbnail"].rps > 0.9 * n["thumbnail"].rps:
        lines.append("Note: Vault is within 10% of nginx on thumbnails: the client may be the bottleneck.")
    return "\n".join(lines)


def main(client: str = "auto", seconds: float = 10.0, revision: str = "unknown") -> int:
    results = run(client, seconds)
    results["meta"]["git"] = revision
    rows = checks(results)
    serialisable = {**results, "checks": rows,
                    "vault": {k: (x.to_dict() if isinstance(x, loadgen.Load) else x)
                              for k, x in results["vault"].items()},
                    "nginx": results["nginx"] and {k: x.to_dict() for k, x in results["nginx"].items()}}
    return publish(report(results, rows), serialisable, RESULTS)
