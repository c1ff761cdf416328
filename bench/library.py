"""Library query benchmark (`python -m bench library`): how long a gallery page takes to list when the access
rule filters it, for a guest who sees 1,000 items of a 100,000-item library.

One data folder (the real schema, migrated as Vault opens it) holds ITEMS item rows (no files: the query
reads only rows), 85 % photos and 15 % videos added over five years, four in five with a capture date. A
member owns ALBUMS albums of SHARED / ALBUMS items each, every album a run of neighbouring items (a holiday,
a birthday), added through `AlbumService` and shared with one guest. The member has a heart on 1 % of the
library, the guest on 50 of their items.

Each case is `MediaService.listing` as the library route calls it (the access filter, the count, the page,
the per-person hearts and progress), sorted by capture date like the gallery, timed RUNS times after a
warm-up: the first page and a deep one (page DEEP_PAGE, the guest's last), for the guest and, as the
baseline in the same run, for the member; then the guest's first page of one album, and the member's last
page of the whole library. The session check of a real request is not part of it. Goal: the guest's p95
under GOAL_MS on both pages. Results: bench/results/library.json.
"""

from __future__ import annotations

import os
import platform
import random
import shutil
import sqlite3
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.inputs import WORK
from bench.runner import publish
from vaultserver.config import AppPaths, Settings, save_settings
from vaultserver.db.models import MediaFile, new_id
from vaultserver.services import Services, open_services
from vaultserver.services.items import Page
from vaultserver.services.principal import Principal

RESULTS = Path(__file__).resolve().parent / "results" / "library.json"
ITEMS, QUICK_ITEMS = 100_000, 20_000
SHARED, ALBUMS = 1_000, 10
LIMIT, DEEP_PAGE = 50, SHARED // 50
RUNS, QUICK_RUNS = 300, 60
GOAL_MS = 25.0
PASSWORD = "Bench!pass99"
HEADINGS = ("p50 ms", "p95 ms", "max ms", "CPU p50", "CPU p95")


def _rows(count: int, rng: random.Random) -> list[dict]:
    start = datetime(2021, 1, 1, tzinfo=UTC)
    step = timedelta(days=5 * 365) / count
    rows: list[dict] = []
    for n in range(count):
        added = start + step * n
        video = rng.random() < 0.15
        rows.append({"id": new_id(), "media_type": "video" if video else "image",
                     "original_name": f"{'clip' if video else 'IMG'}_{n:06d}.{'mp4' if video else 'jpg'}",
                     "sha256": f"{n:064x}", "size": 3_000_000, "stored_size": 2_000_000,
                     "mime_type": "application/vnd.apple.mpegurl" if video else "image/webp",
                     "source_format": "mov" if video else "jpeg", "width": 4032, "height": 3024,
                     "duration": 12.0 if video else None, "animated": False,
                     "taken_at": added - timedelta(hours=rng.randint(1, 72)) if rng.random() < 0.8 else None,
                     "camera_make": None, "camera_model": None, "status": "ready", "renditions": [],
                     "has_original": False, "created_at": added, "updated_at": added})
    return rows


def prepare(root: Path, items: int) -> tuple[Services, Principal, Principal, list[str]]:
    """The data folder described above; returns its services, the member, the guest and the album ids."""
    paths = AppPaths(root).ensure()
    save_settings(paths, Settings(mdns_enabled=False, keystore="file"))
    services = open_services(paths)
    rng = random.Random(16)
    rows = _rows(items, rng)
    with services.db.engine.begin() as connection:
        connection.execute(MediaFile.__table__.insert(), rows)  # type: ignore[attr-defined]
    people = [services.users.create(name, PASSWORD, name) for name in ("member", "guest")]
    member, guest = (Principal(user.id, user.username, user.role, "bench") for user in people)
    per_album, album_ids = SHARED // ALBUMS, []
    starts = sorted(rng.sample(range(0, items - per_album, per_album), ALBUMS))
    for number, first in enumerate(starts):
        album = services.albums.create(member, f"Holiday {number + 1}")
        services.albums.add_items(member, album.id, [row["id"] for row in rows[first:first + per_album]])
        services.albums.share(member, album.id, guest.username)
        album_ids.append(album.id)
    shared = [row["id"] for first in starts for row in rows[first:first + per_album]]
    for media_id in rng.sample([row["id"] for row in rows], items // 100):
        services.media.mark_favorite(member, media_id, True)
    for media_id in rng.sample(shared, 50):
        services.media.mark_favorite(guest, media_id, True)
    return services, member, guest, album_ids


def _timed(fn, runs: int) -> tuple[list[float], list[float]]:
    """Wall and CPU (this thread's) milliseconds per call, each sorted: on a busy machine the CPU time
    says what the query costs, the wall time what a viewer waits."""
    for _ in range(max(5, runs // 10)):  # warm-up: caches, prepared statements
        fn()
    wall, cpu = [], []
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.thread_time()
        fn()
        wall.append((time.perf_counter() - start) * 1000)
        cpu.append((time.thread_time() - start_cpu) * 1000)
    return sorted(wall), sorted(cpu)


def _percentile(sorted_ms: list[float], share: float) -> float:
    return sorted_ms[min(len(sorted_ms) - 1, round(share * (len(sorted_ms) - 1)))]


def query_plans(database: Path, guest_id: str) -> dict[str, list[str]]:
    """SQLite's plan for the guest's page and count, as `EXPLAIN QUERY PLAN` gives it."""
    shared = ("SELECT album_items.media_id FROM album_items JOIN album_shares "
              "ON album_shares.album_id = album_items.album_id WHERE album_shares.user_id = ?")
    key = "coalesce(taken_at, created_at) DESC, id DESC"
    page = (f"SELECT * FROM media_files WHERE id IN (SELECT id FROM media_files WHERE id IN ({shared}) "
            f"ORDER BY {key} LIMIT 50 OFFSET 950) ORDER BY {key}")
    count = ("SELECT count(DISTINCT album_items.media_id) FROM album_items JOIN album_shares "
             "ON album_shares.album_id = album_items.album_id WHERE album_shares.user_id = ?")
    with sqlite3.connect(database) as db:
        return {name: [row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {sql}", (guest_id,))]
                for name, sql in (("page", page), ("count", count))}


def main(quick: bool, keep: bool, git: str) -> int:
    items, runs = (QUICK_ITEMS, QUICK_RUNS) if quick else (ITEMS, RUNS)
    WORK.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="library-", dir=WORK))
    print(f"Building a library of {items:,} items, {SHARED:,} shared with a guest in {ALBUMS} albums…",
          flush=True)
    started = time.perf_counter()
    services, member, guest, albums = prepare(root, items)
    print(f"  built in {time.perf_counter() - started:.1f} s; measuring {runs} runs per case", flush=True)

    def page(who: Principal, number: int, album: str | None = None) -> Page:
        return services.media.listing(who, sort="taken_at", order="desc", page=number, limit=LIMIT,
                                      album=album)

    cases = {
        "guest, first page": lambda: page(guest, 1),
        f"guest, page {DEEP_PAGE} (deep)": lambda: page(guest, DEEP_PAGE),
        "member, first page": lambda: page(member, 1),
        f"member, page {DEEP_PAGE} (deep)": lambda: page(member, DEEP_PAGE),
        "guest, one album, first page": lambda: page(guest, 1, albums[0]),
        "member, last page of all": lambda: page(member, -(-items // LIMIT)),
    }
    checked = page(guest, 1)
    assert checked.total == SHARED and len(checked.items) == LIMIT, "the guest sees the wrong items"
    timings = {name: _timed(case, runs) for name, case in cases.items()}
    plans = query_plans(services.paths.database, guest.user_id)
    services.close()
    if not keep:
        shutil.rmtree(root, ignore_errors=True)
    stats = {name: {"p50_ms": round(_percentile(wall, 0.5), 3), "p95_ms": round(_percentile(wall, 0.95), 3),
                    "max_ms": round(wall[-1], 3), "cpu_p50_ms": round(_percentile(cpu, 0.5), 3),
                    "cpu_p95_ms": round(_percentile(cpu, 0.95), 3)} for name, (wall, cpu) in timings.items()}
    names = list(cases)
    checks = [{"name": f"{name} p95 ms", "value": stats[name]["p95_ms"], "target": f"< {GOAL_MS:g}",
               "pass": stats[name]["p95_ms"] < GOAL_MS} for name in names[:2]]
    checks += [{"name": f"{guest_case.split(',')[1].strip()}: guest / member p95",
                "value": round(stats[guest_case]["p95_ms"] / stats[member_case]["p95_ms"], 2),
                "target": "-", "pass": None}
               for guest_case, member_case in ((names[0], names[2]), (names[1], names[3]))]
    meta = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "git": git, "quick": quick,
            "items": items, "shared": SHARED, "albums": ALBUMS, "limit": LIMIT, "runs": runs,
            "cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version, "load_average": [round(x, 2) for x in os.getloadavg()]}
    return publish(report(meta, stats, checks, plans),
                   {"meta": meta, "cases": stats, "checks": checks, "query_plans": plans}, RESULTS)


def report(meta: dict, stats: dict[str, dict[str, float]], checks: list[dict],
           plans: dict[str, list[str]]) -> str:
    lines = [f"Vault library query benchmark  {meta['date']}  git {meta['git']}  {meta['cpus']} CPUs"
             + ("  (QUICK)" if meta["quick"] else ""),
             f"{meta['items']:,} items; a guest sees {meta['shared']:,} in {meta['albums']} albums; "
             f"{meta['limit']} per page, by capture date; {meta['runs']} runs each; SQLite {meta['sqlite']}",
             f"load average at the end: {' '.join(map(str, meta['load_average']))}", "",
             f"{'MediaService.listing':<36}" + "".join(f"{h:>9}" for h in HEADINGS), "-" * 81]
    for name, row in stats.items():
        lines.append(f"{name:<36}{row['p50_ms']:>9.2f}{row['p95_ms']:>9.2f}{row['max_ms']:>9.2f}"
                     f"{row['cpu_p50_ms']:>9.2f}{row['cpu_p95_ms']:>9.2f}")
    lines += ["", f"{'check':<46}{'value':>9}{'target':>10}  result", "-" * 74]
    for c in checks:
        verdict = "" if c["pass"] is None else ("PASS" if c["pass"] else "FAIL")
        lines.append(f"{c['name']:<46}{c['value']:>9.2f}{c['target']:>10}  {verdict}")
    lines += ["", "SQLite's plan for the guest's page:", *(f"  {step}" for step in plans["page"]),
              "and for its count:", *(f"  {step}" for step in plans["count"])]
    return "\n".join(lines)
