"""The family-evening benchmark (`python -m bench evening`): does converting a video slow anyone down?

One run, one `vaultserver serve` in its own process on a data dir holding a converted 60 s 1080p video
and 288 photos (bench/evening_setup.py). VIEWERS people play the video like hls.js and SCROLLERS people
scroll the photo grid (bench/evening_load.py), and the run has two phases under exactly that load:
- idle: nothing converting, for IDLE_SECONDS (after a warm-up, so both phases see players in their steady
  state, not filling their first 30 s of buffer);
- converting: a 2-minute 1080p video (bench/inputs.py) is linked into the import folder; the phase ends
  when the admin queue says its item is committed. The queue is polled once a second in both phases.
Printed: segment time-to-first-byte p99 and grid page p95 in each phase and as ratios to idle, grid pages
kept up (done within the second), stalls, errors, the conversion's time, and the CPU of Vault (the server
and everything it started), of the load generator and of everything else. Goals while converting: both
ratios <= 1.5, every grid page kept up, no stall, no error. Results: bench/results/evening.json.
`--local-workers N` is passed to `vaultserver serve` when given (and only then).
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench.evening_load import PAGE_ITEMS, Load, Samples, Site
from bench.evening_setup import HOME, PHOTOS, SERVED_SECONDS, prepare
from bench.inputs import ensure_video
from bench.loadgen import machine_busy
from bench.runner import cpu_seconds, publish, tree_cpu_seconds
from bench.serve_process import VaultServer
from vaultserver.ffmpeg import ffmpeg

RESULTS = Path(__file__).resolve().parent / "results" / "evening.json"
VIEWERS, SCROLLERS = 16, 4
PAGE_SECONDS = 1.0  # a page is kept up when it is done before the next one is due
MAX_RATIO = 1.5
SHARED_CORES = 0.25  # other processes' average load above which a run is flagged as shared
CONVERT_TIMEOUT = 720.0  # seconds; access tokens last 15 minutes
FAILED = ("failed", "duplicate", "gone")


@dataclass(frozen=True)
class Timing:
    warmup: float
    idle: float
    dropped_seconds: int  # length of the video converted in the second phase


FULL, QUICK = Timing(15.0, 120.0, 120), Timing(10.0, 20.0, 10)  # idle long enough for a p99


def percentile(values: list[float], p: float) -> float | None:
    """The nearest-rank percentile: the smallest value with at least p% of the values at or below it."""
    if not values:
        return None
    ranked = sorted(values)
    return ranked[max(0, math.ceil(p / 100 * len(ranked)) - 1)]


def kept_up(seconds: float, errors: int) -> bool:
    """A grid page keeps up when all of it (listing and thumbnails) arrived, within its second."""
    return errors == 0 and seconds <= PAGE_SECONDS


def ratio(value: float | None, idle: float | None) -> float | None:
    return value / idle if value is not None and idle else None


def summarise(samples: Samples, start: float, end: float) -> dict:
    """The figures of one phase: the samples that began in [start, end)."""
    def inside(at: float) -> bool:
        return start <= at < end

    ttfb = [t * 1000 for at, t in samples.segments if inside(at)]
    pages = [(s, e) for at, s, e in samples.pages if inside(at)]
    stalls = [s for at, s in samples.stalls if inside(at)]
    return {"seconds": end - start, "segments": len(ttfb),
            "segment_ttfb_p50_ms": percentile(ttfb, 50), "segment_ttfb_p99_ms": percentile(ttfb, 99),
            "segment_ttfb_max_ms": max(ttfb, default=None),
            "pages": len(pages), "pages_kept_up": sum(kept_up(s, e) for s, e in pages),
            "page_p50_ms": percentile([s * 1000 for s, _ in pages], 50),
            "page_p95_ms": percentile([s * 1000 for s, _ in pages], 95),
            "stalls": len(stalls), "stalled_seconds": sum(stalls),
            "errors": sum(inside(at) for at, _ in samples.errors),
            "error_kinds": sorted({what for at, what in samples.errors if inside(at)})}


class Marks:
    """Wall time and CPU counters at each phase boundary."""

    def __init__(self, server_pid: int, load_pids: list[int]) -> None:
        self.server_pid, self.load_pids = server_pid, load_pids
        self.at: dict[str, dict[str, float]] = {}

    def mark(self, name: str) -> float:
        now = time.time()
        self.at[name] = {"time": now, "vault": tree_cpu_seconds(self.server_pid),
                         "load": sum(cpu_seconds(pid) for pid in self.load_pids), "machine": machine_busy()}
        return now

    def cores(self, first: str, last: str) -> dict[str, float]:
        """Average cores busy between two marks: Vault, the load generator, everything else."""
        a, b = self.at[first], self.at[last]
        wall = b["time"] - a["time"]
        used = {k: (b[k] - a[k]) / wall for k in ("vault", "load", "machine")}
        return {"vault": used["vault"], "load_generator": used["load"],
                "others": max(0.0, used["machine"] - used["vault"] - used["load"])}


def _job(server: VaultServer, token: str, name: str) -> dict | None:
    """The admin queue's job for the file `name`, if there is one; raises if Vault gave up on it."""
    status, body = server.request("GET", "/api/admin/queue", token=token)
    if status != 200:
        raise RuntimeError(f"admin queue: HTTP {status} {body[:200]!r}")
    job = next((j for j in json.loads(body)["jobs"] if j["original_name"] == name), None)
    if job and job["status"] in FAILED:
        raise RuntimeError(f"Vault did not convert {name}: {job['status']} {job.get('error')}")
    return job


def _poll_until(deadline: float, server: VaultServer, token: str, name: str, log) -> bool:
    """Poll the queue once a second until `deadline`, or until the file `name` is committed (True)."""
    start = shown = time.time()
    while (tick := time.time()) < deadline:
        job = _job(server, token, name)
        if job and job["status"] == "done":
            return True
        if tick - shown >= 15:
            shown = tick
            log(f"    ... {tick - start:.0f} s" + (f" ({job['stage']}, {100 * job['progress']:.0f}%)"
                                                   if job else ""))
        time.sleep(max(0.0, tick + 1.0 - time.time()))
    return False


def drop(video: Path, imports: Path) -> None:
    """Put `video` into the import folder the way a finished copy lands there: whole, at once."""
    imports.mkdir(parents=True, exist_ok=True)
    try:
        os.link(video, imports / video.name)  # appears whole at once; Vault removes only the link
    except OSError:
        shutil.copy2(video, imports / f".{video.name}.part")
        os.replace(imports / f".{video.name}.part", imports / video.name)


def run(quick: bool, local_workers: int | None, keep: bool, log=print) -> dict:
    timing = QUICK if quick else FULL
    binary = ffmpeg()
    HOME.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()[0]
    log(f"Family-evening benchmark: {VIEWERS} viewers + {SCROLLERS} grid scrollers on 127.0.0.1, "
        f"{os.cpu_count()} CPUs, load average {load_before:.1f} before the run")
    dropped = ensure_video(binary, timing.dropped_seconds, log)
    workdir = Path(tempfile.mkdtemp(prefix="run-", dir=HOME))
    try:
        data = prepare(workdir / "vault", binary, log)
        extra = ["--local-workers", str(local_workers)] if local_workers is not None else []
        with VaultServer(data.paths.root, data.tls.ca, workdir / "vault-serve.log", extra) as server:
            token = server.login()
            load = Load(Site("127.0.0.1", server.port, token, str(data.tls.ca), data.stream_url),
                        VIEWERS, SCROLLERS)
            load.start()
            marks = Marks(server.proc.pid, load.pids)
            try:
                log(f"  warm-up {timing.warmup:g} s (players fill their buffers) ...")
                _poll_until(marks.mark("warmup") + timing.warmup, server, token, dropped.name, log)
                log(f"  idle {timing.idle:g} s ...")
                _poll_until(marks.mark("idle") + timing.idle, server, token, dropped.name, log)
                log(f"  converting {dropped.name} ...")
                dropped_at = marks.mark("converting")
                drop(dropped, data.paths.default_imports)
                if not _poll_until(dropped_at + CONVERT_TIMEOUT, server, token, dropped.name, log):
                    raise RuntimeError(f"{dropped.name} was not committed within {CONVERT_TIMEOUT:g} s")
                marks.mark("end")
            finally:
                samples = load.stop()
            peak_rss = server.peak_rss
    finally:
        if keep:
            log(f"  run folder kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    at = {name: m["time"] for name, m in marks.at.items()}
    return {"meta": {"date": datetime.now(UTC).isoformat(timespec="seconds"), "quick": quick,
                     "cpus": os.cpu_count(), "platform": platform.platform(),
                     "python": platform.python_version(), "local_workers": local_workers,
                     "load_average_before": load_before, "load_average_after": os.getloadavg()[0],
                     "viewers": VIEWERS, "scrollers": SCROLLERS, "page_items": PAGE_ITEMS,
                     "served_video_seconds": SERVED_SECONDS, "photos": PHOTOS,
                     "converted": {"file": dropped.name, "seconds": timing.dropped_seconds}},
            "phases": {"idle": summarise(samples, at["idle"], at["converting"]),
                       "converting": summarise(samples, at["converting"], at["end"])},
            "cpu_cores": {"idle": marks.cores("idle", "converting"),
                          "converting": marks.cores("converting", "end")},
            "conversion_seconds": at["end"] - at["converting"], "vault_peak_rss_mb": peak_rss / 2**20}


def checks(r: dict) -> list[dict]:
    idle, conv = r["phases"]["idle"], r["phases"]["converting"]
    ttfb = ratio(conv["segment_ttfb_p99_ms"], idle["segment_ttfb_p99_ms"])
    page = ratio(conv["page_p95_ms"], idle["page_p95_ms"])
    goal = f"<= {MAX_RATIO:g}"
    rows: list[tuple[str, float | str | None, str, bool]] = [
        ("segment TTFB p99, converting / idle", ttfb, goal, ttfb is not None and ttfb <= MAX_RATIO),
        ("grid page p95, converting / idle", page, goal, page is not None and page <= MAX_RATIO)]
    for name, phase in (("idle", idle), ("converting", conv)):
        rows += [(f"grid pages kept up, {name}", f"{phase['pages_kept_up']} of {phase['pages']}", "all",
                  phase["pages"] > 0 and phase["pages_kept_up"] == phase["pages"]),
                 (f"stalls, {name}", phase["stalls"], "0", phase["stalls"] == 0),
                 (f"errors, {name}", phase["errors"], "0", phase["errors"] == 0)]
    return [{"name": n, "value": v, "target": t, "pass": ok} for n, v, t, ok in rows]


def _fmt(value: float | str | None, digits: int = 0) -> str:
    if value is None or isinstance(value, str):
        return value or "-"
    return f"{value:,.{0 if isinstance(value, int) else digits}f}"


def report(r: dict, rows: list[dict]) -> str:
    m, idle, conv = r["meta"], r["phases"]["idle"], r["phases"]["converting"]
    workers = "server default" if m["local_workers"] is None else str(m["local_workers"])
    lines = [f"Vault family-evening benchmark  {m['date']}  git {m['git']}  {m['cpus']} CPUs"
             + ("  (QUICK)" if m["quick"] else ""),
             f"{m['viewers']} viewers (top rendition, 30 s buffered, real time) + {m['scrollers']} grid "
             f"scrollers ({m['page_items']} items + thumbnails a second)",
             f"converting {m['converted']['file']}; local workers: {workers}", "",
             f"{'':30}{'idle':>14}{'converting':>14}{'ratio':>8}", "-" * 66]
    table = [("segment TTFB p50 ms", "segment_ttfb_p50_ms"), ("segment TTFB p99 ms", "segment_ttfb_p99_ms"),
             ("segment TTFB max ms", "segment_ttfb_max_ms"), ("grid page p50 ms", "page_p50_ms"),
             ("grid page p95 ms", "page_p95_ms")]
    for label, key in table:
        lines.append(f"{label:30}{_fmt(idle[key]):>14}{_fmt(conv[key]):>14}"
                     f"{_fmt(ratio(conv[key], idle[key]), 2):>8}")
    for label, text in (("segments fetched", lambda p: str(p["segments"])),
                        ("grid pages kept up", lambda p: f"{p['pages_kept_up']} of {p['pages']}"),
                        ("stalls (seconds stalled)", lambda p: f"{p['stalls']} ({p['stalled_seconds']:.1f})"),
                        ("errors", lambda p: str(p["errors"])),
                        ("phase length s", lambda p: f"{p['seconds']:.0f}")):
        lines.append(f"{label:30}{text(idle):>14}{text(conv):>14}")
    lines += ["", f"conversion of {m['converted']['seconds']} s of 1080p: {r['conversion_seconds']:.0f} s "
              f"(file dropped to item committed); Vault peak RSS {r['vault_peak_rss_mb']:.0f} MB", "",
              "CPU, average cores busy:", f"{'':30}{'Vault':>14}{'load gen':>14}{'others':>8}"]
    for name, cores in r["cpu_cores"].items():
        lines.append(f"{name:30}{cores['vault']:>14.2f}{cores['load_generator']:>14.2f}{cores['others']:>8.2f}")
    lines += ["(Vault: the server process and every process it started, e.g. ffmpeg)", "",
              f"{'goal':<40}{'value':>12}  {'target':<8} result", "-" * 70]
    for c in rows:
        verdict = "PASS" if c["pass"] else "FAIL"
        lines.append(f"{c['name']:<40}{_fmt(c['value'], 2):>12}  {c['target']:<8} {verdict}")
    lines.append(f"\nGoals met: {sum(c['pass'] for c in rows)}/{len(rows)}")
    kinds = sorted(set(idle["error_kinds"]) | set(conv["error_kinds"]))
    if kinds:
        lines.append(f"Errors: {'; '.join(kinds)}")
    others = [c["others"] for c in r["cpu_cores"].values()]
    if max(others) - min(others) > SHARED_CORES:
        shown = " -> ".join(f"{o:.2f}" for o in others)
        lines.append(f"Other processes' load changed between the phases ({shown} cores): the ratios compare "
                     "unlike conditions; run again on a quiet machine.")
    elif max(others) > SHARED_CORES:
        lines.append("Other processes used CPU during the run: the machine was shared, so the figures are "
                     "noisier than on an idle machine.")
    return "\n".join(lines)


def main(quick: bool = False, local_workers: int | None = None, keep: bool = False,
         revision: str = "unknown") -> int:
    results = run(quick, local_workers, keep, log=lambda line: print(line, flush=True))
    results["meta"]["git"] = revision
    rows = checks(results)
    return publish(report(results, rows), {**results, "checks": rows}, RESULTS)
