"""One load measurement: N keep-alive clients GET one URL, bounded in time (and, by the Python client, in
request count too).

wrk (Debian's `wrk`, written in C) drives the throughput runs when installed: it cannot be the bottleneck
of a Python server. Without wrk, bench.pyload (multi-process asyncio) does it. wrk prints p50/p75/p90/p99
only, so p95 comes from the Python client. Throughput counts body bytes (MB = 10^6 bytes), so Vault's
longer security headers do not count as work. The server's CPU time over the run is read from /proc and
divided by the requests served: CPU ms per request is what caps throughput on a small machine. The
client's CPU (getrusage of the reaped wrk or worker processes) and the whole machine's busy time
(/proc/stat) are recorded too: on a shared machine, what everything else used shows how far to trust a run.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import statistics
import subprocess
from collections.abc import Callable
from dataclasses import asdict, dataclass

from bench import pyload

MB = 1_000_000


@dataclass
class Load:
    client: str  # "wrk" or "python"
    connections: int
    seconds: float
    requests: int
    errors: int  # non-2xx answers, socket errors, timeouts
    rps: float
    mb_s: float
    p50_ms: float | None  # None: no request completed
    p95_ms: float | None  # None also from wrk, which does not print it
    p99_ms: float | None
    server_cpu_s: float | None = None  # CPU (user + sys) the server used during the run
    client_cpu_s: float | None = None  # CPU the load generator's processes used
    machine_cpu_s: float | None = None  # busy CPU time of the whole machine (all processes)

    @property
    def cpu_ms_per_request(self) -> float | None:
        if self.server_cpu_s is None or not self.requests:
            return None
        return 1000 * self.server_cpu_s / self.requests

    def cores(self, cpu_s: float | None) -> float | None:
        """CPU seconds as the average number of cores busy over the run."""
        return None if cpu_s is None or not self.seconds else cpu_s / self.seconds

    def to_dict(self) -> dict:
        return {**asdict(self), "cpu_ms_per_request": self.cpu_ms_per_request}


def machine_busy() -> float:
    """CPU seconds the whole machine has been busy (all CPUs) since boot; 0 where /proc is missing."""
    try:
        with open("/proc/stat") as fh:
            ticks = [int(v) for v in fh.readline().split()[1:]]
    except OSError:
        return 0.0
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def has_wrk() -> bool:
    return shutil.which("wrk") is not None


def _wrk(url: str, headers: dict[str, str], connections: int, seconds: float, body_bytes: int) -> Load:
    cmd = ["wrk", f"-t{min(2, connections)}", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "10s",
           "--latency", *[a for k, v in headers.items() for a in ("-H", f"{k}: {v}")], url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout

    def ms(label: str) -> float:
        found = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)\b", out, re.M)
        assert found, f"wrk printed no {label} latency"
        value, unit = found.groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    done = re.search(r"(\d+) requests in ([\d.]+)(m?s)", out)
    per_second = re.search(r"Requests/sec:\s+([\d.]+)", out)
    assert done and per_second, f"wrk printed no totals: {out[-500:]}"
    requests, elapsed = int(done[1]), float(done[2]) * (60 if done[3] == "m" else 1)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(non_2xx[1]) if non_2xx else 0) + (sum(int(n) for n in sock.groups()) if sock else 0)
    rps = float(per_second[1])
    return Load("wrk", connections, elapsed, requests, errors, rps, rps * body_bytes / MB, ms("50%"), None,
                ms("99%"))


def _python(url: str, headers: dict[str, str], cafile: str | None, connections: int, seconds: float,
            max_requests: int, processes: int, on_start: Callable[[], None] | None) -> Load:
    shards = pyload.run(url, headers, cafile, connections, seconds, max_requests, processes, on_start)
    start = min(s.start for s in shards)
    elapsed = max(max(s.end for s in shards) - start, 1e-9)
    latencies = sorted(t * 1000 for s in shards for t in s.latencies)
    requests = sum(s.count for s in shards)

    def pct(p: float) -> float | None:
        return latencies[min(len(latencies) - 1, int(len(latencies) * p))] if latencies else None

    return Load("python", connections, round(elapsed, 3), requests, sum(s.errors for s in shards),
                requests / elapsed, sum(s.body_bytes for s in shards) / elapsed / MB,
                statistics.median(latencies) if latencies else None, pct(0.95), pct(0.99))


def measure(url: str, *, token: str | None = None, cafile: str | None = None, connections: int = 16,
            seconds: float = 10.0, max_requests: int = 1_000_000, body_bytes: int = 0, client: str = "auto",
            processes: int = 2, cpu: Callable[[], float] | None = None) -> Load:
    """Load `url`; `cpu()` (the server's CPU seconds so far) is read as loading starts and ends."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    use_wrk = client == "wrk" or (client == "auto" and has_wrk())
    marks: list[tuple[float, float, float]] = []

    def mark() -> None:
        marks.append((cpu() if cpu else 0.0, _children_cpu(), machine_busy()))

    if use_wrk:
        mark()
        load = _wrk(url, headers, connections, seconds, body_bytes)
    else:
        load = _python(url, headers, cafile, connections, seconds, max_requests, processes, mark)
    mark()
    (server0, client0, machine0), (server1, client1, machine1) = marks
    load.server_cpu_s = server1 - server0 if cpu else None
    load.client_cpu_s, load.machine_cpu_s = client1 - client0, (machine1 - machine0) or None
    return load


def sequential(url: str, *, token: str, cafile: str, requests: int, seconds: float,
               cpu: Callable[[], float] | None = None) -> Load:
    """One client, one request at a time: the latency a single user sees, without queueing behind others."""
    return measure(url, token=token, cafile=cafile, connections=1, seconds=seconds, max_requests=requests,
                   client="python", processes=1, cpu=cpu)
