"""The playable benchmark (`python -m bench playable`): how soon a dropped video plays, and what that costs.

One `vaultserver serve` on a fresh data dir (an admin account, default settings: the 2 s wait for copies
to settle included), in its own process. Measured in one run:
1. A 3-minute 1080p clip (bench/inputs.py) is linked into the import folder; an independent HLS client
   (bench/playable_watch.py) times drop -> "first 10 s playable": the master playlist answers 200, every
   rung's variant playlist lists segments covering >= 10 s, and the top rung's first segment downloads
   and decrypts with the served key. Goal: <= 20 s.
2. The same drop -> the item ready (its complete ladder committed), as a ratio to one plain ffmpeg run of
   the same one-pass ladder on the same clip (bench/commands.py's baseline (a) of the ingest bench),
   measured in this run after the server stopped. Goal: the ingest bench's bar, <= 1.10.
3. A phone-style H.264 High 4:2:0 1080p30 clip (keyframe every 2 s): Vault's drop -> ready with its
   current ladder, and, as a measurement only, plain ffmpeg making that ladder with every rung encoded
   next to the same ladder with the top rung stream-copied (`-c:v:0 copy`). Vault's pipeline is unchanged.
CPU is user + sys of the whole process tree (Vault: the server, its workers and their ffmpeg, from /proc).
`--quick` uses a 12 s and a 6 s clip (the 6 s one: its whole length playable). Results go to
bench/results/playable.json.
"""

from __future__ import annotations

import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench import commands
from bench.evening import drop
from bench.inputs import WORK, ensure_video
from bench.loadgen import machine_busy
from bench.playable_watch import PLAYABLE_SECONDS, wait_until_ready, watch_until_playable
from bench.runner import cpu_seconds, measure, publish, tree_cpu_seconds
from bench.serve_process import VaultServer
from bench.serve_setup import PASSWORD, USER, vault
from vaultserver.config import AppPaths, Settings, save_settings
from vaultserver.crypto.tls import ensure_certificate
from vaultserver.ffmpeg import check_ffmpeg, ffmpeg
from vaultserver.pipeline.transcode import Rung, plan_ladder

RESULTS = Path(__file__).resolve().parent / "results" / "playable.json"
HOME = WORK / "playable"
PLAYABLE_GOAL = 20.0  # seconds from the drop
LADDER_BAR = 1.10  # the ingest bench's bar: Vault within 10% of the plain ffmpeg ladder
TIMEOUT = 900.0  # seconds from a drop to the item ready
SHARED_CORES = 0.25  # other processes' average load above which the run is flagged as shared


@dataclass(frozen=True)
class Clips:
    long_seconds: int
    phone_seconds: int


FULL, QUICK = Clips(180, 60), Clips(12, 6)  # quick: about a minute on an idle 2-core machine


def ratio(value: float, base: float) -> float | None:
    return value / base if base > 0 else None


def ingest(server: VaultServer, video: Path, seconds: int, imports: Path, log: Callable[[str], None]) -> dict:
    """Drop the `seconds`-long `video` into the running server's import folder; drop -> playable and
    drop -> ready, Vault's CPU seconds meanwhile, and the cores everything else kept busy."""
    token = server.login()  # a fresh token for each clip: access tokens last 15 minutes
    cpu_before, machine_before = tree_cpu_seconds(server.proc.pid), machine_busy()
    server_before = cpu_seconds(server.proc.pid)
    dropped_at = time.time()
    drop(video, imports)
    playable = watch_until_playable(server, token, video.name, dropped_at, TIMEOUT,
                                    min(PLAYABLE_SECONDS, seconds))
    at = playable["milestones"]["top_segment_decrypted"]
    log(f"    first {min(PLAYABLE_SECONDS, seconds):g} s playable after {at:.1f} s ({playable['status']}, "
        f"{100 * playable['progress']:.0f}%)")
    ready = wait_until_ready(server, token, playable["id"], video.name, dropped_at, TIMEOUT)
    cpu = tree_cpu_seconds(server.proc.pid) - cpu_before
    server_cpu = cpu_seconds(server.proc.pid) - server_before  # its own threads: serving, committing
    others = (machine_busy() - machine_before - cpu) / ready
    log(f"    ready after {ready:.1f} s")
    return {**playable, "ready_seconds": ready, "cpu_seconds": cpu, "server_cpu_seconds": server_cpu,
            "others_cores": max(0.0, others)}


def plain(build: Callable[[Path], list[str]], keep: bool, top: str) -> dict:
    """One plain ffmpeg command in its own runner process: wall, CPU, the top rung's bytes, and the cores
    everything else on the machine kept busy meanwhile."""
    out = Path(tempfile.mkdtemp(prefix="ffmpeg-", dir=HOME))
    try:
        machine_before = machine_busy()
        m = measure([build(out)])
        others = (machine_busy() - machine_before - m.cpu) / m.wall
        top_bytes = sum(p.stat().st_size for p in (out / top).glob("*.ts"))
        return {"wall": m.wall, "cpu": m.cpu, "peak_rss": m.peak_rss, "top_rung_bytes": top_bytes,
                "others_cores": max(0.0, others)}
    finally:
        if not keep:
            shutil.rmtree(out, ignore_errors=True)


def _data_dir(root: Path) -> AppPaths:
    paths = AppPaths(root).ensure()
    save_settings(paths, Settings(mdns_enabled=False, keystore="file"))  # otherwise the owner's defaults
    vault(root, "user", "add", USER, "--admin", "--password-stdin", stdin=PASSWORD + "\n")
    return paths


def run(quick: bool, keep: bool, log: Callable[[str], None] = print) -> dict:
    clips = QUICK if quick else FULL
    binary = ffmpeg()
    HOME.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()[0]
    log(f"Playable benchmark: {os.cpu_count()} CPUs, load average {load_before:.1f} before the run")
    long_clip = ensure_video(binary, clips.long_seconds, log)
    phone_clip = ensure_video(binary, clips.phone_seconds, log, phone=True)
    rungs: list[Rung] = plan_ladder(1920, 1080)
    top = rungs[0].name
    workdir = Path(tempfile.mkdtemp(prefix="run-", dir=HOME))
    try:
        paths = _data_dir(workdir / "vault")
        with VaultServer(paths.root, ensure_certificate(paths).ca, workdir / "vault-serve.log") as server:
            log(f"  dropping {long_clip.name} into a running vaultserver serve ...")
            long_run = ingest(server, long_clip, clips.long_seconds, paths.default_imports, log)
            log(f"  dropping {phone_clip.name} ...")
            phone_run = ingest(server, phone_clip, clips.phone_seconds, paths.default_imports, log)
            peak_rss = server.peak_rss
    finally:
        if keep:
            log(f"  run folder kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    log(f"  plain ffmpeg ladder, {long_clip.name} ...")
    long_base = plain(lambda out: commands.ladder_one_run(binary, long_clip, out, rungs), keep, top)
    log(f"  plain ffmpeg ladder, {phone_clip.name}, every rung encoded ...")
    phone_encoded = plain(lambda out: commands.ladder_one_run(binary, phone_clip, out, rungs), keep, top)
    log(f"  plain ffmpeg ladder, {phone_clip.name}, top rung stream-copied ...")
    phone_copied = plain(lambda out: commands.ladder_top_copied(binary, phone_clip, out, rungs), keep, top)
    return {"meta": {"date": datetime.now(UTC).isoformat(timespec="seconds"), "quick": quick,
                     "cpus": os.cpu_count(), "platform": platform.platform(),
                     "python": platform.python_version(), "ffmpeg": check_ffmpeg(binary).version,
                     "load_average_before": load_before, "load_average_after": os.getloadavg()[0],
                     "rungs": [r.name for r in rungs], "playable_seconds": PLAYABLE_SECONDS,
                     "long_clip": {"file": long_clip.name, "seconds": clips.long_seconds},
                     "phone_clip": {"file": phone_clip.name, "seconds": clips.phone_seconds}},
            "vault": {"long": long_run, "phone": phone_run, "peak_rss_mb": peak_rss / 2**20},
            "ffmpeg": {"long_ladder": long_base, "phone_ladder_encoded": phone_encoded,
                       "phone_ladder_top_copied": phone_copied}}


def checks(r: dict) -> list[dict]:
    long, phone = r["vault"]["long"], r["vault"]["phone"]
    ff = r["ffmpeg"]
    base, enc, cp = ff["long_ladder"], ff["phone_ladder_encoded"], ff["phone_ladder_top_copied"]
    playable = long["milestones"]["top_segment_decrypted"]
    wall, cpu = ratio(long["ready_seconds"], base["wall"]), ratio(long["cpu_seconds"], base["cpu"])
    rows: list[tuple[str, float | None, str, str, bool | None]] = [
        (f"drop -> first {PLAYABLE_SECONDS:g} s playable, s", playable, "{:.1f}", f"<= {PLAYABLE_GOAL:g}",
         playable <= PLAYABLE_GOAL),
        ("drop -> ready / plain ladder, wall", wall, "{:.2f}", f"<= {LADDER_BAR:.2f}",
         wall is not None and wall <= LADDER_BAR),
        ("drop -> ready / plain ladder, CPU", cpu, "{:.2f}", "-", None),
        ("phone: Vault drop -> ready, s", phone["ready_seconds"], "{:.1f}", "-", None),
        ("phone: Vault / plain ladder encoded, wall", ratio(phone["ready_seconds"], enc["wall"]), "{:.2f}",
         "-", None),
        ("phone: top copied / encoded, wall", ratio(cp["wall"], enc["wall"]), "{:.2f}", "-", None),
        ("phone: top copied / encoded, CPU", ratio(cp["cpu"], enc["cpu"]), "{:.2f}", "-", None),
        ("phone: top rung bytes, copied / encoded", ratio(cp["top_rung_bytes"], enc["top_rung_bytes"]),
         "{:.2f}", "-", None)]
    return [{"name": n, "value": None if v is None else round(v, 4),
             "display": "-" if v is None else f.format(v), "target": t, "pass": ok}
            for n, v, f, t, ok in rows]


def _row(m: dict) -> tuple[float, float, float]:
    return m["wall"], m["cpu"], m["others_cores"]


def report(r: dict, rows: list[dict]) -> str:
    m, long, phone = r["meta"], r["vault"]["long"], r["vault"]["phone"]
    lc, pc = m["long_clip"], m["phone_clip"]
    lines = [f"Vault playable benchmark  {m['date']}  git {m['git']}  {m['cpus']} CPUs"
             + ("  (QUICK)" if m["quick"] else ""), m["ffmpeg"],
             f"ladder {', '.join(m['rungs'])}; load average {m['load_average_before']:.1f} before, "
             f"{m['load_average_after']:.1f} after", "",
             f"{'measurement':<58}{'wall s':>9}{'CPU s':>9}{'others':>8}", "-" * 84]
    ff = r["ffmpeg"]
    table = [(f"Vault serve, {lc['seconds']} s 1080p clip: drop -> ready", long["ready_seconds"],
              long["cpu_seconds"], long["others_cores"]),
             (f"plain ffmpeg ladder, one run, {lc['seconds']} s clip", *_row(ff["long_ladder"])),
             (f"Vault serve, {pc['seconds']} s phone clip: drop -> ready", phone["ready_seconds"],
              phone["cpu_seconds"], phone["others_cores"]),
             ("plain ffmpeg ladder, phone clip, every rung encoded", *_row(ff["phone_ladder_encoded"])),
             ("plain ffmpeg ladder, phone clip, top rung stream-copied",
              *_row(ff["phone_ladder_top_copied"]))]
    lines += [f"{label:<58}{wall:>9.1f}{cpu:>9.1f}{others:>8.2f}" for label, wall, cpu, others in table]
    own = f"{long['server_cpu_seconds']:.1f} s and {phone['server_cpu_seconds']:.1f} s"
    lines += ["(others: average cores busy with anything else on the machine meanwhile; Vault's CPU is the",
              f" server and its workers, of which the server process itself {own}: serving, committing)"]
    lines += ["", f"{lc['seconds']} s clip, seconds from the drop (phone clip in brackets, its first "
              f"{min(PLAYABLE_SECONDS, pc['seconds']):g} s):"]
    names = {"listed": "listed in the library (converting)",
             "master_playlist": "master playlist answers 200",
             "every_rung_covers": f"every rung's playlist covers >= {PLAYABLE_SECONDS:g} s",
             "top_segment_decrypted": "top rung's first segment downloaded and decrypted"}
    for key, label in names.items():
        mark, phone_mark = long["milestones"].get(key), phone["milestones"].get(key)
        lines.append(f"  {label:<56}{mark:>7.1f}" + (f"  ({phone_mark:.1f})" if phone_mark else ""))
    lines += [f"  {'item then: ' + long['status'] + ', progress':<56}{100 * long['progress']:>6.0f}%",
              "", f"{'figure':<46}{'value':>9}{'target':>10}  result", "-" * 74]
    for c in rows:
        verdict = "" if c["pass"] is None else ("PASS" if c["pass"] else "FAIL")
        lines.append(f"{c['name']:<46}{c['display']:>9}{c['target']:>10}  {verdict}")
    verdicts = [c["pass"] for c in rows if c["pass"] is not None]
    lines += ["", f"Goals met: {sum(verdicts)}/{len(verdicts)}"]
    if max(others for *_, others in table) > SHARED_CORES:
        lines.append("Other work was running: Vault's runs and the plain ffmpeg runs came one after another "
                     "under different loads, so read the ratios as noisy.")
    return "\n".join(lines)


def main(quick: bool = False, keep: bool = False, revision: str = "unknown") -> int:
    results = run(quick, keep, log=lambda line: print(line, flush=True))
    results["meta"]["git"] = revision
    rows = checks(results)
    return publish(report(results, rows), {**results, "checks": rows}, RESULTS)
