"""Backup benchmark (`python -m bench backup`): a full backup next to `cp -r` of the same library folder, and
an unchanged library of 10,000 items backed up again.

The data folder is made the way a user's is, through `process --once`: a 12 s 1080p clip and a 1600x1200
photo (serve_setup's inputs), and a small photo and a 2 s 320x240 clip for the 10,000-item library. Items
past those four are CLONES: each is a copy of one real item's database rows under new ids (its wrapped data
keys copied as they are, so clones do not decrypt: a backup never decrypts) and hard links to its files.
Converting 10,000 real items would take hours and measure the pipeline, not the backup.

1. Full backup: clones of the clip and the photo until the library holds about 1 GB (300 MB with --quick);
   `cp -r` of library/ (what a user would compare with), `cp -r && sync` (the same copy made durable, which
   a backup must be: it fsyncs every file), and `vaultserver backup` into an empty folder. MB/s is the
   library's size over the wall time; the ratio against `cp -r` is the goal (>= 0.8), shown both for the
   whole command (with its start-up of Python, the database and the key store) and for the backup itself
   (the `seconds` of its own result, printed with --progress-json).
2. Unchanged library: small clones until the library holds 10,000 items (9 photos to 1 clip), a backup that
   copies them, then the measured one: nothing new, every file checked by its size and time stamp
   (goal < 3 s).
Every measurement runs in its own runner process (bench/runner.py); the page cache is flushed (sync) before
each, so no copy pays for the previous one's writes. Results go to bench/results/backup.json.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

from bench.inputs import WORK
from bench.runner import Measurement, measure, publish
from bench.serve_setup import VAULT_ENV, vault
from bench.serve_setup import ensure_inputs as serve_inputs
from vaultserver.config import AppPaths, Settings, save_settings
from vaultserver.ffmpeg import ffmpeg

RESULTS = Path(__file__).resolve().parent / "results" / "backup.json"
MB = 1_000_000
FULL_BYTES, QUICK_FULL_BYTES = 1000 * MB, 300 * MB
ITEMS = 10_000
SMALL_CLIP = WORK / "backup_clip_2s_320x240.mp4"
SMALL_PHOTO = WORK / "backup_photo_640x480.jpg"
TARGETS = {"full_vs_cp": 0.8, "unchanged_seconds": 3.0}


def _small_inputs() -> tuple[Path, Path]:
    WORK.mkdir(parents=True, exist_ok=True)
    run = [ffmpeg(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi"]
    if not SMALL_CLIP.exists():
        subprocess.run([*run, "-i", "testsrc2=size=320x240:rate=25", "-t", "2", "-c:v", "libx264",
                        "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(SMALL_CLIP)], check=True)
    if not SMALL_PHOTO.exists():
        subprocess.run([*run, "-i", "testsrc2=size=640x480", "-frames:v", "1", str(SMALL_PHOTO)], check=True)
    return SMALL_CLIP, SMALL_PHOTO


def prepare(root: Path, log=print) -> tuple[AppPaths, dict[str, str]]:
    """A data folder with the four real items and a recovery key; returns its item ids by input name."""
    inputs = [*serve_inputs(log), *_small_inputs()]
    paths = AppPaths(root).ensure()
    save_settings(paths, Settings(stable_seconds=0.0, mdns_enabled=False, keystore="file"))
    paths.default_imports.mkdir(parents=True, exist_ok=True)
    for source in inputs:
        shutil.copy2(source, paths.default_imports / source.name)
    vault(root, "process", "--once")
    vault(root, "keys", "recovery-key")
    items = {i["original_name"]: i["id"] for i in json.loads(vault(root, "library", "list", "--json"))}
    return paths, {source.name: items[source.name] for source in inputs}


def clone(paths: AppPaths, media_id: str, count: int) -> None:
    """`count` clones of an item: rows under new ids (one executemany each), files hard-linked."""
    with closing(sqlite3.connect(paths.database)) as db, db:
        db.row_factory = sqlite3.Row
        item = dict(db.execute("SELECT * FROM media_files WHERE id = ?", (media_id,)).fetchone())
        keys = [dict(r) for r in db.execute("SELECT * FROM encryption_keys WHERE media_id = ?", (media_id,))]
        items = [{**item, "id": secrets.token_hex(16), "sha256": secrets.token_hex(32)} for _ in range(count)]
        _insert(db, "media_files", items)
        _insert(db, "encryption_keys", [{**k, "id": secrets.token_hex(16), "media_id": i["id"]}
                                        for i in items for k in keys])
    source = paths.library / media_id
    files = [p.relative_to(source) for p in source.rglob("*") if p.is_file()]
    for new in items:
        for relative in files:
            dest = paths.library / new["id"] / relative
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.link(source / relative, dest)


def _insert(db: sqlite3.Connection, table: str, rows: list[dict]) -> None:
    if rows:
        names = list(rows[0])
        db.executemany(f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                       [tuple(r[n] for n in names) for r in rows])


def _tree_bytes(folder: Path) -> tuple[int, int]:
    files = [p for p in folder.rglob("*") if p.is_file() and ".staging" not in p.parts]
    return len(files), sum(p.stat().st_size for p in files)


def _backup_cmd(root: Path, target: Path) -> list[str]:
    return [sys.executable, "-m", "vaultserver.cli", "--data-dir", str(root), "backup", str(target),
            "--progress-json"]


def _timed(label: str, cmds: list[list[str]], rows: dict) -> Measurement:
    print(f"  {label:<52}", end="", flush=True)
    os.sync()
    m = measure(cmds, VAULT_ENV)
    print(f"{m.wall:8.2f} s", flush=True)
    rows[label] = m
    return m


def _result(m: Measurement) -> dict:
    return json.loads(m.stdout.strip().splitlines()[-1])["result"]


def run(quick: bool, keep: bool) -> dict:
    runs = WORK / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="backup-", dir=runs))
    rows: dict[str, Measurement] = {}
    try:
        print("Preparing (inputs in bench/.work/, a data folder through process --once):")
        paths, ids = prepare(work / "vault")
        clip, photo, small_clip, small_photo = ids.values()
        full = QUICK_FULL_BYTES if quick else FULL_BYTES
        pair = sum(_tree_bytes(paths.library / i)[1] for i in (clip, photo))
        copies = max(0, -(-(full - _tree_bytes(paths.library)[1]) // pair))
        clone(paths, clip, copies)
        clone(paths, photo, copies)
        files, size = _tree_bytes(paths.library)
        print(f"  full library: {2 * copies + 4} items, {files:,} files, {size / MB:,.0f} MB")

        print("Measuring:")
        cp = _timed("cp -r library/", [["cp", "-r", str(paths.library), str(work / "cp")]], rows)
        cp_sync = _timed("cp -r library/ && sync",
                         [["sh", "-c", f"cp -r '{paths.library}' '{work / 'cp-sync'}' && sync"]], rows)
        target = work / "target"
        backup = _timed("vaultserver backup, full (empty folder)", [_backup_cmd(paths.root, target)], rows)
        full_result = _result(backup)
        assert full_result["bytes_total"] == size, full_result
        for copied in ("cp", "cp-sync"):
            shutil.rmtree(work / copied)

        present = 2 * copies + 4
        small = ITEMS - present
        clone(paths, small_clip, small // 10)
        clone(paths, small_photo, small - small // 10)
        many_files, many_size = _tree_bytes(paths.library)
        print(f"  10,000-item library: {many_files:,} files, {many_size / MB:,.0f} MB")
        grow = _timed("vaultserver backup, 10,000 items (new ones copied)", [_backup_cmd(paths.root, target)],
                      rows)
        unchanged = _timed("vaultserver backup, 10,000 items unchanged", [_backup_cmd(paths.root, target)],
                           rows)
        unchanged_result = _result(unchanged)
        assert unchanged_result["items"] == ITEMS and unchanged_result["files_copied"] == 0, unchanged_result
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    return {"meta": {"date": datetime.now(UTC).isoformat(timespec="seconds"), "quick": quick,
                     "cpus": os.cpu_count(), "full_items": present, "full_files": files, "full_bytes": size,
                     "items": ITEMS, "files": many_files, "bytes": many_size},
            "measurements": {label: m.to_dict() for label, m in rows.items()},
            "cp_wall": cp.wall, "cp_sync_wall": cp_sync.wall, "full_wall": backup.wall,
            "full_seconds": full_result["seconds"], "grow_seconds": _result(grow)["seconds"],
            "unchanged_wall": unchanged.wall, "unchanged_seconds": unchanged_result["seconds"]}


def checks(results: dict) -> list[dict]:
    size = results["meta"]["full_bytes"] / MB
    cp = size / results["cp_wall"]
    figures = [
        ("cp -r MB/s", cp, "-", None),
        ("cp -r && sync MB/s", size / results["cp_sync_wall"], "-", None),
        ("backup MB/s, whole command", size / results["full_wall"], "-", None),
        ("backup MB/s, the backup itself", size / results["full_seconds"], "-", None),
        ("backup / cp -r, whole command", results["cp_wall"] / results["full_wall"], ">= 0.80",
         results["cp_wall"] / results["full_wall"] >= TARGETS["full_vs_cp"]),
        ("backup / cp -r, the backup itself", results["cp_wall"] / results["full_seconds"], ">= 0.80",
         results["cp_wall"] / results["full_seconds"] >= TARGETS["full_vs_cp"]),
        ("backup / (cp -r && sync), the backup itself", results["cp_sync_wall"] / results["full_seconds"],
         "-", None),
        ("unchanged 10,000 items s, whole command", results["unchanged_wall"], "< 3.0",
         results["unchanged_wall"] < TARGETS["unchanged_seconds"]),
        ("unchanged 10,000 items s, the backup itself", results["unchanged_seconds"], "< 3.0",
         results["unchanged_seconds"] < TARGETS["unchanged_seconds"]),
    ]
    return [{"name": n, "value": round(v, 3), "target": t, "pass": p} for n, v, t, p in figures]


def report(results: dict, rows: list[dict]) -> str:
    meta = results["meta"]
    lines = [f"Vault backup benchmark  {meta['date']}  git {meta.get('git', '?')}  {meta['cpus']} CPUs"
             + ("  (QUICK)" if meta["quick"] else ""),
             f"full: {meta['full_items']} items, {meta['full_files']:,} files, "
             f"{meta['full_bytes'] / MB:,.0f} MB; unchanged: {meta['items']:,} items, "
             f"{meta['files']:,} files", "",
             f"{'measurement':<54}{'wall s':>9}{'CPU s':>9}", "-" * 72]
    for label, m in results["measurements"].items():
        lines.append(f"{label:<54}{m['wall']:>9.2f}{m['cpu']:>9.2f}")
    lines += ["", f"{'ratio / figure':<48}{'value':>9}{'target':>10}  result", "-" * 76]
    for c in rows:
        verdict = "" if c["pass"] is None else ("PASS" if c["pass"] else "FAIL")
        lines.append(f"{c['name']:<48}{c['value']:>9.2f}{c['target']:>10}  {verdict}")
    return "\n".join(lines)


def main(quick: bool = False, keep: bool = False, revision: str = "unknown") -> int:
    results = run(quick, keep)
    results["meta"]["git"] = revision
    rows = checks(results)
    return publish(report(results, rows), {**results, "checks": rows}, RESULTS)
