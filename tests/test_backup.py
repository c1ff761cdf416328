"""Backups to a folder and their shallow verification, on real data folders: a photo and a video converted by
the real pipeline, the real key store and certificate authority, and the command line as its own process
where the contract matters (exit codes, what it prints, kill -9).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import make_paths, wait_for
from tests.support import Seed, plaintext_findings, seed_data_folder
from vaultserver.backup import source
from vaultserver.backup.layout import DATABASE, PARTIAL_PREFIX, BackupFolder, snapshot_stamp
from vaultserver.backup.restore import restore
from vaultserver.backup.retention import snapshots_to_prune
from vaultserver.backup.verify import verify_files
from vaultserver.backup.writer import back_up
from vaultserver.config import AppPaths
from vaultserver.crypto.keystore import KeyRing
from vaultserver.errors import ConfigurationError, ValidationError, VaultError
from vaultserver.services import Services


@pytest.fixture(scope="module")
def seed(tmp_path_factory: pytest.TempPathFactory, media) -> Seed:
    """A photo and a 2 s video, a recovery key and a certificate authority."""
    paths = make_paths(tmp_path_factory.mktemp("backup-seed"))
    return seed_data_folder(paths, [(media.image("backup.jpg", size=(800, 600)), "backup.jpg"),
                                    (media.video(seconds=2, size="320x240"), "clip.mp4")])


@pytest.fixture
def vault(seed: Seed, tmp_path: Path) -> Iterator[Services]:
    services = seed.open_copy(tmp_path / "vault")
    yield services
    services.close()


def cli(*args: str, data_dir: Path | None = None, stdin: str = "") -> subprocess.CompletedProcess[str]:
    prefix = ["--data-dir", str(data_dir)] if data_dir else []
    return subprocess.run([sys.executable, "-m", "vaultserver.cli", *prefix, *args], input=stdin,
                          capture_output=True, text=True, timeout=300)


def library_files(services: Services) -> set[str]:
    root = services.paths.root
    return {p.relative_to(root).as_posix() for p in services.paths.library.rglob("*")
            if p.is_file() and ".staging" not in p.parts}


def clone_items(services: Services, media_id: str, count: int) -> None:
    """`count` copies of an item under new ids: rows and files (enough work for a backup to be caught)."""
    database = services.paths.database
    with sqlite3.connect(database) as db:
        db.row_factory = sqlite3.Row
        row = dict(db.execute("SELECT * FROM media_files WHERE id = ?", (media_id,)).fetchone())
        clones = [{**row, "id": secrets.token_hex(16), "sha256": secrets.token_hex(32)} for _ in range(count)]
        names = ", ".join(row)
        db.executemany(f"INSERT INTO media_files ({names}) VALUES ({', '.join('?' * len(row))})",
                       [tuple(c.values()) for c in clones])
    for clone in clones:
        shutil.copytree(services.paths.library / media_id, services.paths.library / clone["id"])


def test_a_backup_holds_every_file_of_the_library_and_verifies_without_a_data_folder(vault, tmp_path):
    target = tmp_path / "disk" / "Vault Backup"
    target.parent.mkdir()
    done = cli("backup", str(target), data_dir=vault.paths.root)
    assert done.returncode == 0, done.stderr
    assert "Backed up 2 item(s)" in done.stdout and " MB" in done.stdout and " s" in done.stdout

    folder = BackupFolder(target)
    snapshot = folder.latest()
    manifest = folder.read_manifest(snapshot)
    assert {e.path for e in manifest.library} == library_files(vault)
    assert {e.path for e in manifest.snapshot} == {"vault.db", "settings.toml", "keys.json", "tls/ca.pem",
                                                  "tls/ca.key.vlt"}
    assert manifest.items == 2 and manifest.recovery_fingerprint == vault.keys.status().recovery_fingerprint
    assert (target / "README.txt").read_text().startswith("This folder is a backup of Vault")
    with sqlite3.connect(snapshot / DATABASE) as db:
        assert {r[0] for r in db.execute("SELECT id FROM media_files")} == {
            i.id for i in vault.library.all_items()}
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # stands alone, no -wal beside it
    assert not list(snapshot.glob("*-wal"))

    home = tmp_path / "home"  # verify-backup must not make a data folder where the default one would go
    env = {**os.environ, "HOME": str(home), "XDG_DATA_HOME": str(home / "data")}
    env.pop("VAULT_HOME", None)
    checked = subprocess.run([sys.executable, "-m", "vaultserver.cli", "verify-backup", str(target)],
                             capture_output=True, text=True, timeout=300, env=env)
    assert checked.returncode == 0, checked.stderr
    assert "every file is intact" in checked.stdout
    assert not home.exists()
    entry = vault.audit.recent(1, event="backup_completed")[0]
    assert entry.details["target"] == str(target) and entry.details["snapshot"] == snapshot.name


def test_a_second_backup_copies_only_the_new_item_and_reports_progress_as_json(vault, tmp_path, media,
                                                                                  run_pipeline):
    target = tmp_path / "backup"
    first = back_up(vault, target)
    before = library_files(vault)
    imports = vault.settings.current.import_path(vault.paths)
    media.copy_into(media.image("second.png", size=(300, 200)), imports)
    run_pipeline()
    new = library_files(vault) - before
    assert new

    done = cli("backup", str(target), "--progress-json", data_dir=vault.paths.root)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert all(set(line["progress"]) == {"phase", "done_bytes", "total_bytes", "done_files", "total_files"}
               for line in lines[:-1])
    result = lines[-1]["result"]
    assert result["files_copied"] == len(new)
    assert result["bytes_copied"] == sum((vault.paths.root / p).stat().st_size for p in new)
    assert result["files_total"] == first.files_total + len(new) and result["items"] == 3
    assert set(result) == {"target", "snapshot", "items", "files_copied", "bytes_copied", "files_total",
                           "bytes_total", "seconds", "snapshots_pruned", "files_pruned"}

    unchanged = back_up(vault, target)
    assert (unchanged.files_copied, unchanged.bytes_copied) == (0, 0)
    assert len(BackupFolder(target).complete_snapshots()) == 3
    assert verify_files(target).ok


def test_while_a_backup_runs_a_second_is_refused_and_killing_it_leaves_the_previous_snapshot_whole(
        vault, seed, tmp_path):
    target = tmp_path / "backup"
    previous = back_up(vault, target)
    photo = next(i.id for i in vault.library.all_items() if i.type == "image")
    clone_items(vault, photo, 1500)
    new_files = len(library_files(vault)) - previous.files_total

    running = subprocess.Popen([sys.executable, "-m", "vaultserver.cli", "--data-dir", str(vault.paths.root),
                                "backup", str(target)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        def copying() -> bool:
            journals = list((target / "snapshots").glob(f"{PARTIAL_PREFIX}*/copied.jsonl"))
            return bool(journals) and journals[0].stat().st_size > 0
        wait_for(lambda: copying() or running.poll() is not None, timeout=120)
        assert running.poll() is None, "the backup finished before it could be interrupted"
        with pytest.raises(VaultError, match="Another backup into .* is running"):
            back_up(vault, target)
        os.kill(running.pid, signal.SIGKILL)
    finally:
        running.kill()
        running.wait()

    folder = BackupFolder(target)
    assert [p.name for p in folder.complete_snapshots()] == [previous.snapshot]
    assert list(folder.snapshots.glob(f"{PARTIAL_PREFIX}*"))
    assert verify_files(target).ok
    restored = restore(target, AppPaths(tmp_path / "restored").ensure(), seed.phrase)
    assert (restored.snapshot, restored.items, restored.problems) == (previous.snapshot, previous.items, ())

    rerun = back_up(vault, target)
    assert rerun.items == previous.items + 1500
    assert 0 < rerun.files_copied < new_files  # what the killed run finished is not copied again
    assert not list(folder.snapshots.glob(f"{PARTIAL_PREFIX}*"))
    report = verify_files(target)
    assert report.ok and report.snapshot == rerun.snapshot


def test_verify_backup_names_a_flipped_byte_in_a_library_file_and_in_the_database(vault, tmp_path):
    target = tmp_path / "backup"
    result = back_up(vault, target)
    library_file = sorted((target / "library").rglob("*.vlt"))[0]
    database = target / "snapshots" / result.snapshot / DATABASE
    for path in (library_file, database):
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))

    checked = cli("verify-backup", str(target))
    assert checked.returncode == 1
    for path in (library_file, database):
        name = path.relative_to(target).as_posix()
        assert f"damaged: {name}" in checked.stdout
        assert name in checked.stderr
    assert checked.stderr.startswith("error [SYSTEM_002]:")


def test_verify_backup_names_a_missing_and_a_truncated_file(vault, tmp_path):
    target = tmp_path / "backup"
    back_up(vault, target)
    missing, short = sorted((target / "library").rglob("*.vlt"))[:2]
    missing.unlink()
    short.write_bytes(short.read_bytes()[:-1])

    report = verify_files(target)
    assert not report.ok
    assert report.problems == tuple(sorted([(missing.relative_to(target).as_posix(), "missing"),
                                            (short.relative_to(target).as_posix(), "wrong size")]))
    checked = cli("verify-backup", str(target), "--snapshot", report.snapshot)
    assert checked.returncode == 1 and f"missing: {missing.relative_to(target).as_posix()}" in checked.stdout


def test_a_backup_holds_no_plaintext_media_no_phrase_and_no_raw_key_material(vault, seed, tmp_path):
    target = tmp_path / "backup"
    back_up(vault, target)
    assert plaintext_findings(target) == []

    private = vault.paths.private
    ring = KeyRing.from_json((private / "master-keys.json").read_text())
    secrets_in_clear = [seed.phrase.encode(), (private / "jwt.secret").read_bytes(),
                        (private / "tls" / "server.key").read_bytes()]
    pem_body = b"".join((private / "tls" / "server.key").read_bytes().splitlines()[1:-1])
    secrets_in_clear.append(pem_body[:40])
    for key in ring.keys.values():
        secrets_in_clear += [key.key, base64.b64encode(key.key), key.key.hex().encode()]
    words = seed.phrase.split()
    secrets_in_clear += [" ".join(words[i:i + 3]).encode() for i in range(len(words) - 2)]  # nor part of it
    for path in target.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            leaked = [s[:8] for s in secrets_in_clear if s in data]
            assert not leaked, f"{path.relative_to(target)} holds secret material"


def test_a_backup_without_a_recovery_key_is_refused_before_anything_is_written(paths, services, tmp_path):
    target = tmp_path / "backup"
    done = cli("backup", str(target), data_dir=paths.root)
    assert done.returncode == 1
    assert "error [SYSTEM_001]:" in done.stderr and "make a recovery key first" in done.stderr
    assert not target.exists()
    failure = services.audit.recent(1, event="backup_failed")[0]
    assert failure.outcome == "failed" and failure.details["target"] == str(target)
    with pytest.raises(ConfigurationError):
        back_up(services, target)


def test_a_backup_folder_is_made_only_where_its_disk_is_and_never_over_other_files(vault, tmp_path):
    unplugged = tmp_path / "Volumes" / "Backup Disk" / "Vault"
    with pytest.raises(ValidationError, match="is not there: is its disk connected"):
        back_up(vault, unplugged)
    assert not (tmp_path / "Volumes").exists()

    documents = tmp_path / "Documents"
    documents.mkdir()
    (documents / "taxes.pdf").write_bytes(b"%PDF")
    with pytest.raises(ValidationError, match="not a Vault backup"):
        back_up(vault, documents)
    assert sorted(p.name for p in documents.iterdir()) == ["taxes.pdf"]


def test_an_item_deleted_after_the_database_snapshot_is_left_out_of_it(vault, tmp_path, monkeypatch):
    video = next(i.id for i in vault.library.all_items() if i.type == "video")
    taken = source.snapshot_database

    def snapshot_then_delete(database: Path, dest: Path) -> sqlite3.Connection:
        copy = taken(database, dest)
        vault.library.delete(video)  # between the snapshot and the listing of the library
        return copy
    monkeypatch.setattr(source, "snapshot_database", snapshot_then_delete)

    target = tmp_path / "backup"
    result = back_up(vault, target)
    snapshot = target / "snapshots" / result.snapshot
    with sqlite3.connect(snapshot / DATABASE) as db:
        assert [r[0] for r in db.execute("SELECT id FROM media_files")] == [
            i.id for i in vault.library.all_items()]
        keys = db.execute("SELECT count(*) FROM encryption_keys WHERE media_id = ?", (video,)).fetchone()[0]
        assert keys == 0
    manifest = BackupFolder(target).read_manifest(snapshot)
    assert result.items == manifest.items == 1
    assert not [e for e in manifest.library if video in e.path]
    assert verify_files(target).ok


def test_retention_prunes_old_snapshots_and_the_library_files_only_they_named(vault, tmp_path):
    target = tmp_path / "backup"
    old = back_up(vault, target)
    video = next(i.id for i in vault.library.all_items() if i.type == "video")
    video_files = {p for p in library_files(vault) if video in p}
    snapshots = target / "snapshots"
    month_ago = snapshot_stamp(datetime.now(UTC) - timedelta(days=40))
    (snapshots / old.snapshot).rename(snapshots / month_ago)
    vault.library.delete(video)
    stray = target / "library" / ("0" * 32) / "image.vlt"  # copied by a stopped run; its item deleted since
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"sealed bytes no snapshot names")

    kept = back_up(vault, target)  # 30 days by default
    assert (kept.snapshots_pruned, kept.files_pruned) == (1, len(video_files) + 1)
    assert not stray.parent.exists()
    assert [p.name for p in BackupFolder(target).complete_snapshots()] == [kept.snapshot]
    assert not (target / "library" / video).exists()
    assert verify_files(target).ok
    assert not list(snapshots.glob(f"{PARTIAL_PREFIX}*"))


def test_the_retention_rule_keeps_the_newest_its_day_and_one_a_day_within_the_setting():
    now = datetime(2026, 6, 30, 12, tzinfo=UTC)
    names = [snapshot_stamp(now - timedelta(days=d, hours=h)) for d, h in
             ((45, 0), (20, 1), (20, 0), (3, 5), (3, 2), (0, 3), (0, 1))]
    assert snapshots_to_prune(names, now, keep_days=30) == sorted([names[0], names[1], names[3]])
    assert snapshots_to_prune([names[0]], now, keep_days=1) == []  # the newest is kept, however old
    assert snapshots_to_prune([*names, "not-a-stamp"], now, keep_days=1) == sorted(names[:5])

