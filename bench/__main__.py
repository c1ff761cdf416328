"""`python -m bench [--quick] [--keep] [SUITE]`: measure, print, save. SUITE is one of ingest, serve, backup,
evening, playable, library, upload, download or all.

ingest (the default) measures conversion (bench/results/latest.json); serve measures HTTPS serving next to
nginx (bench/serving.py, bench/results/serve.json); backup measures backups next to `cp -r` (bench/backup.py,
bench/results/backup.json); evening measures viewers and grid scrollers while a video converts
(bench/evening.py, bench/results/evening.json); playable measures how soon a dropped video plays and what
its ladder costs next to plain ffmpeg (bench/playable.py, bench/results/playable.json); library measures the
gallery's listing query for a guest in a 100,000-item library (bench/library.py, bench/results/library.json);
upload measures a 2 GB tus upload over loopback HTTPS and the server's memory meanwhile (bench/upload.py,
bench/results/upload.json); download measures a video downloaded as an MP4 over loopback HTTPS
(bench/download.py, bench/results/download.json); all runs every one.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from bench import commands
from bench.inputs import VIDEO_SIZE, WORK, ensure_inputs
from bench.runner import REPO, Measurement, measure
from vaultserver.ffmpeg import check_ffmpeg, ffmpeg
from vaultserver.pipeline.images import convert_image
from vaultserver.pipeline.transcode import plan_ladder

RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"
MB = 1024 * 1024
PANORAMA_RSS_LIMIT_MB = 500
_PROCESSED = re.compile(r"Processed (\d+) file\(s\): (\d+) added")
PHASES = {"start-up": "(interpreter, imports, database, keys, import check)",
          "conversion": "(hash, probe, ffmpeg, previews, sealing, commit)",
          "shutdown": "(idle poll, workers stop, close)"}
_LOG_EVENT = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \w+ [\w.]+: (Queued|Committed) ", re.M)


class Bench:
    def __init__(self, keep: bool) -> None:
        self.keep = keep
        self.rows: dict[str, tuple[str, Measurement]] = {}
        self.runs = WORK / "runs"
        self.runs.mkdir(parents=True, exist_ok=True)

    def tempdir(self, key: str) -> Path:
        return Path(tempfile.mkdtemp(prefix=f"{key}-", dir=self.runs))

    def run(self, key: str, label: str, cmds: list[list[str]], expect_added: int | None = None
            ) -> Measurement:
        print(f"  {label:<44}", end="", flush=True)
        m = measure(cmds, commands.VAULT_ENV)
        print(f"{m.wall:8.1f} s", flush=True)
        if expect_added is not None:
            found = _PROCESSED.search(m.stdout)
            if not found or int(found[2]) != expect_added:
                raise RuntimeError(f"{label}: expected {expect_added} added, Vault said:\n{m.stdout}")
        self.rows[key] = (label, m)
        return m

    def done(self, workdir: Path) -> None:
        if not self.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    def plain(self, key: str, label: str, build: Callable[[Path], list[list[str]]]) -> Measurement:
        """Run the commands `build(out)` makes for a fresh output folder `out`."""
        out = self.tempdir(key)
        m = self.run(key, label, build(out))
        self.done(out)
        return m

    def vault(self, key: str, label: str, files: list[Path]) -> tuple[Measurement, dict[str, float]]:
        """Run `process --once` on a fresh data dir; also split its wall time by Vault's own log."""
        root = self.tempdir(key)
        m = self.run(key, label, [commands.vault_data_dir(root, files)], expect_added=len(files))
        log = root / "logs" / "vault.log"
        phases = _phases(log.read_text(encoding="utf-8", errors="replace"), m) if log.exists() else {}
        self.done(root)
        return m, phases


def _phases(log_text: str, m: Measurement) -> dict[str, float]:
    """Start-up / conversion / shutdown, from the first `Queued` and last `Committed` lines of vault.log."""
    stamps: dict[str, float] = {}
    for stamp, event in _LOG_EVENT.findall(log_text):
        at = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()  # local time, as logged
        stamps[event] = at if event == "Committed" else stamps.get(event, at)
    if len(stamps) < 2:
        return {}
    return {"start-up": stamps["Queued"] - m.started, "conversion": stamps["Committed"] - stamps["Queued"],
            "shutdown": m.started + m.wall - stamps["Committed"]}


def _git_revision() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True,
                               text=True).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _convert_in_process(photos: list[Path]) -> list[float]:
    convert_image(photos[0])  # warm-up: plugin loading and first-use costs are not per-photo costs
    times = []
    for photo in photos:
        start = time.perf_counter()
        convert_image(photo)
        times.append(time.perf_counter() - start)
    return times


def _check(name: str, value: float, target: str, ok: bool | None, fmt: str = "{:.2f}") -> dict:
    return {"name": name, "value": round(value, 4), "display": fmt.format(value), "target": target,
            "pass": ok}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="10 s clip and 2 photos: a smoke test")
    parser.add_argument("--keep", action="store_true", help=f"keep the run folders in {WORK / 'runs'}")
    parser.add_argument("suite", nargs="?",
                        choices=["ingest", "serve", "backup", "evening", "playable", "library", "upload",
                                 "download",
                                 "all"],
                        default="ingest",
                        help="ingest (default): conversion; serve: HTTPS serving next to nginx; backup: "
                             "backups next to cp -r; evening: viewers and grid scrollers while a video "
                             "converts; playable: drop to first 10 s playable, ladder cost, stream copy; "
                             "library: the gallery's listing query for a guest at 100k items; upload: a 2 GB "
                             "tus upload's MB/s and the server's memory;"
                             " download: a video downloaded as an MP4 over HTTPS; all: every one")
    parser.add_argument("--client", choices=["auto", "wrk", "python"], default="auto",
                        help="serve: load generator (auto: wrk if installed, else the Python client)")
    parser.add_argument("--seconds", type=float, default=10.0, help="serve: length of each load run")
    parser.add_argument("--local-workers", type=int, metavar="N",
                        help="evening: passed on to `vaultserver serve` (not passed when not given)")
    args = parser.parse_args(argv)
    if args.suite in ("evening", "all"):
        from bench import evening

        evening.main(args.quick, args.local_workers, args.keep, _git_revision())
        if args.suite == "evening":
            return 0
    if args.suite in ("upload", "all"):
        from bench import upload

        upload.main(args.quick, args.keep, _git_revision())
        if args.suite == "upload":
            return 0
    if args.suite in ("library", "all"):
        from bench import library

        library.main(args.quick, args.keep, _git_revision())
        if args.suite == "library":
            return 0
    if args.suite in ("download", "all"):
        from bench import download

        download.main(args.quick, args.keep, _git_revision())
        if args.suite == "download":
            return 0
    if args.suite in ("playable", "all"):
        from bench import playable

        playable.main(args.quick, args.keep, _git_revision())
        if args.suite == "playable":
            return 0
    if args.suite in ("serve", "all"):
        from bench import serving

        serving.main(args.client, args.seconds, _git_revision())
        if args.suite == "serve":
            return 0
    if args.suite in ("backup", "all"):
        from bench import backup

        backup.main(args.quick, args.keep, _git_revision())
        if args.suite == "backup":
            return 0

    binary = ffmpeg()
    print("Inputs (generated once into bench/.work/):")
    inputs = ensure_inputs(binary, args.quick)
    rungs = plan_ladder(*VIDEO_SIZE)
    clip = f"{inputs.video_seconds} s {VIDEO_SIZE[1]}p30 clip"
    print(f"Measuring ({clip}; ladder {', '.join(r.name for r in rungs)}; {os.cpu_count()} CPUs):")
    bench = Bench(args.keep)

    # Video: start-up alone, baseline (a), Vault, Vault's conversion alone, baseline (b).
    startup, _ = bench.vault("startup", "Vault start-up (empty import folder)", [])
    base_a = bench.plain("baseline_a", "(a) plain ffmpeg ladder, one run",
                         lambda out: [commands.ladder_one_run(binary, inputs.video, out, rungs)])
    vault, video_phases = bench.vault("vault_video", "Vault process --once, video", [inputs.video])
    only = bench.plain("transcode_only", "Vault probe+transcode()+previews only",
                       lambda out: [commands.transcode_only(inputs.video, out)])
    base_b = bench.plain("baseline_b", f"(b) plain ffmpeg, {len(rungs)} runs (one per rung)",
                         lambda out: commands.ladder_per_rung(binary, inputs.video, out, rungs))

    # Photos: the batch through Vault, the panorama alone, the pure conversion in-process.
    n = len(inputs.photos)
    photos, photo_phases = bench.vault("vault_photos", f"Vault process --once, {n} photos 12 MP",
                                       inputs.photos)
    pano, _ = bench.vault("vault_panorama", "Vault process --once, panorama 12000x2000", [inputs.panorama])
    pano_only = bench.plain("panorama_convert", "convert_image(panorama) only, own process",
                            lambda out: [commands.convert_image_only(inputs.panorama)])
    print(f"  {f'convert_image in-process, {n} photos':<44}", end="", flush=True)
    per_photo = _convert_in_process(inputs.photos)
    print(f"{sum(per_photo):8.1f} s")

    converting = photo_phases.get("conversion")
    conversion_rate = [_check("photos/s, conversion phase only (Vault log)", n / converting, "-", None)
                       ] if converting else []
    pano_mb = pano.peak_rss / MB
    checks = [
        _check("Vault / (a) wall", vault.wall / base_a.wall, "<= 1.10", vault.wall / base_a.wall <= 1.10),
        _check("Vault / (a) CPU", vault.cpu / base_a.cpu, "<= 1.10", vault.cpu / base_a.cpu <= 1.10),
        _check("Vault / (b) wall", vault.wall / base_b.wall, "< 1.00", vault.wall < base_b.wall),
        _check("Vault / (b) CPU", vault.cpu / base_b.cpu, "-", None),
        _check("transcode-only / (a) wall", only.wall / base_a.wall, "-", None),
        _check("transcode-only / (a) CPU", only.cpu / base_a.cpu, "-", None),
        _check("video speed, Vault (x real time)", inputs.video_seconds / vault.wall, "-", None),
        _check("photos/s, process --once (whole run)", n / photos.wall, "-", None),
        *conversion_rate,
        _check("convert_image s/photo (in-process, serial)", sum(per_photo) / n, "-", None, "{:.3f}"),
        _check("panorama peak RSS MB (process --once)", pano_mb, f"< {PANORAMA_RSS_LIMIT_MB}",
               pano_mb < PANORAMA_RSS_LIMIT_MB, "{:.0f}"),
        _check("panorama wall s (process --once)", pano.wall, "-", None),
        _check("panorama peak RSS MB (convert_image only)", pano_only.peak_rss / MB, "-", None, "{:.0f}"),
    ]
    steps = json.loads(only.stdout.splitlines()[-1])

    meta = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "git": _git_revision(),
            "quick": args.quick, "cpus": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "ffmpeg": check_ffmpeg(binary).version,
            "video": {"file": inputs.video.name, "seconds": inputs.video_seconds,
                      "rungs": [r.name for r in rungs]},
            "photos": [p.name for p in inputs.photos], "panorama": inputs.panorama.name}
    print()
    print(report(meta, bench.rows, checks, video_phases, steps))
    results = {"meta": meta,
               "measurements": {k: {"label": label, **m.to_dict()} for k, (label, m) in bench.rows.items()},
               "convert_image_seconds": per_photo, "checks": checks,
               "video_phases_seconds": video_phases, "photo_phases_seconds": photo_phases,
               "transcode_only_steps_seconds": steps}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nResults written to {RESULTS.relative_to(REPO)}"
          + (f"; run folders kept in {bench.runs.relative_to(REPO)}" if args.keep else ""))
    return 0


def report(meta: dict, rows: dict[str, tuple[str, Measurement]], checks: list[dict],
           phases: dict[str, float], steps: dict[str, float]) -> str:
    lines = [f"Vault ingest benchmark  {meta['date']}  git {meta['git']}  {meta['cpus']} CPUs"
             + ("  (QUICK)" if meta["quick"] else ""), meta["ffmpeg"], "",
             f"{'measurement':<46}{'wall s':>9}{'CPU s':>9}{'CPU/wall':>10}{'peak RSS MB':>13}",
             "-" * 87]
    for label, m in rows.values():
        lines.append(f"{label:<46}{m.wall:>9.2f}{m.cpu:>9.2f}{m.cpu / m.wall:>10.2f}{m.peak_rss / MB:>13.0f}")
    lines += ["", f"{'ratio / figure':<46}{'value':>9}{'target':>10}  result", "-" * 74]
    for c in checks:
        verdict = "" if c["pass"] is None else ("PASS" if c["pass"] else "FAIL")
        lines.append(f"{c['name']:<46}{c['display']:>9}{c['target']:>10}  {verdict}")
    lines += ["", "Where Vault's video time goes (wall s):"]
    if phases:
        total = sum(phases.values())
        lines += ["  the measured `process --once` run, split by the timestamps in its own log:"]
        lines += [f"    {name + ' ' + PHASES[name]:<62}{sec:>7.2f} {100 * sec / total:5.1f}%"
                  for name, sec in phases.items()]
    lines += ["  the conversion's parts, measured alone (transcode-only row):"]
    lines += [f"    {name:<62}{sec:>7.2f}" for name, sec in steps.items()]
    verdicts = [c["pass"] for c in checks if c["pass"] is not None]
    lines += ["", f"Targets met: {sum(verdicts)}/{len(verdicts)}"]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
