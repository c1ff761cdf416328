"""Restoring a data folder from a backup with the recovery key, and the proof that every item decrypts.

All on real parts: SQLite, media converted by the real pipeline, the file key store, the real certificate
authority, and the real command line for the restore itself.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from mnemonic import Mnemonic

from tests.conftest import OWNER, OWNER_PASSWORD, MediaFactory, make_paths
from vaultserver.backup import commands
from vaultserver.backup.deep_check import check_backup_items
from vaultserver.backup.layout import (
    BackupFolder,
)
from vaultserver.backup.restore import restore
from vaultserver.backup.writer import back_up
from vaultserver.config import AppPaths
from vaultserver.crypto import recovery
from vaultserver.crypto.tls import ensure_certificate
from vaultserver.errors import IntegrityError, ValidationError
from vaultserver.pipeline import Pipeline
from vaultserver.services import Services, open_services
from vaultserver.services.items import HLS_DIR, POSTER_FILE, THUMB_FILE
from vaultserver.services.library_check import check_item, check_items


def write_backup(services: Services, target: Path) -> str:
    """A backup of `services`' data folder into `target` by the real writer; returns the snapshot's stamp."""
    return back_up(services, target).snapshot


# --- helpers ------------------------------------------------------------------------------------------------


def vault(data_dir: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    """`vaultserver --data-dir DATA_DIR ARGS…` as its own process."""
    return subprocess.run([sys.executable, "-m", "vaultserver.cli", "--data-dir", str(data_dir), *args],
                          input=stdin, capture_output=True, text=True, timeout=600, env=dict(os.environ))


def import_and_convert(services: Services, *sources: Path) -> None:
    imports = services.settings.current.import_path(services.paths)
    imports.mkdir(parents=True, exist_ok=True)
    for source in sources:
        shutil.copyfile(source, imports / source.name)
    assert Pipeline(services).process_once(timeout=300), "pipeline did not finish in time"


@contextmanager
def flipped(path: Path, offset: int) -> Iterator[None]:
    """One byte of `path` flipped for the length of the block, then put back."""
    original = path.read_bytes()
    damaged = bytearray(original)
    damaged[offset] ^= 0xFF
    path.write_bytes(bytes(damaged))
    try:
        yield
    finally:
        path.write_bytes(original)


def mistyped(phrase: str) -> str:
    """The phrase with its last word swapped for another real word that breaks the checksum."""
    words = phrase.split()
    for candidate in Mnemonic("english").wordlist:
        attempt = " ".join([*words[:-1], candidate])
        if candidate != words[-1] and not Mnemonic("english").check(attempt):
            return attempt
    raise AssertionError("no mistyped phrase found")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@dataclass
class Source:
    paths: AppPaths
    services: Services
    phrase: str
    target: Path
    stamp: str

    def item(self, kind: str):
        return next(i for i in self.services.library.all_items() if i.type == kind)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory, media: MediaFactory) -> Iterator[Source]:
    """A data folder with a photo and a video, an owner signed in on one device, a recovery key, and one
    backup. Tests may flip bytes in it for a while but put them back."""
    paths = make_paths(tmp_path_factory.mktemp("source"))
    services = open_services(paths)
    import_and_convert(services, media.image("restore.jpg", size=(320, 240)),
                       media.video(seconds=2, size="320x240"))
    ensure_certificate(paths)
    phrase = services.keys.new_recovery_key("owner")
    target = tmp_path_factory.mktemp("backups") / "backup"
    stamp = write_backup(services, target)
    yield Source(paths, services, phrase, target, stamp)
    services.close()


# --- tests --------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_new_folder_restored_with_the_phrase_lists_and_exports_exactly_the_library_backed_up(
        tmp_path: Path, media: MediaFactory) -> None:
    old = make_paths(tmp_path / "old")
    services = open_services(old)
    import_and_convert(services, media.image("first.jpg", size=(320, 240)),
                       media.video(seconds=2, size="320x240"))
    ensure_certificate(old)
    owner = services.users.create(OWNER, OWNER_PASSWORD, "admin")
    services.sessions.create(owner, device_name="the old Mac's browser")
    made = vault(old.root, "keys", "recovery-key")
    assert made.returncode == 0, made.stderr
    phrase = made.stdout.strip().splitlines()[-1]
    target = tmp_path / "backup"
    first = vault(old.root, "backup", str(target))
    assert first.returncode == 0, first.stderr
    import_and_convert(services, media.image("second.png", size=(200, 150)))
    assert vault(old.root, "keys", "rotate").returncode == 0
    second = vault(old.root, "backup", str(target))
    assert second.returncode == 0, second.stderr
    assert len(BackupFolder(target).complete_snapshots()) == 2

    listed = vault(old.root, "library", "list", "--json")
    items = json.loads(listed.stdout)
    assert len(items) == 3
    before = {}
    for item in items:
        out = tmp_path / f"before-{item['id']}"
        assert vault(old.root, "library", "export", item["id"], str(out)).returncode == 0
        before[item["id"]] = out.read_bytes()
    ca_pem = (old.private / "tls" / "ca.pem").read_bytes()
    services.close()
    shutil.rmtree(old.root)  # the data folder and, with it, its key store (the key file in private/)

    new = AppPaths(tmp_path / "new")
    done = vault(new.root, "restore", str(target), "--recovery-key-stdin", stdin=phrase + "\n")
    assert done.returncode == 0, done.stderr
    assert "3 item(s)" in done.stdout and "Every item decrypts" in done.stdout
    assert phrase not in done.stdout + done.stderr
    assert not any(phrase in p.read_text(errors="replace") for p in new.logs.rglob("*") if p.is_file())

    after = vault(new.root, "library", "list", "--json")
    assert json.loads(after.stdout) == items
    for item in items:
        out = tmp_path / f"after-{item['id']}"
        assert vault(new.root, "library", "export", item["id"], str(out)).returncode == 0
        assert out.read_bytes() == before[item["id"]], item["original_name"]

    assert mode(new.root) == mode(new.private) == mode(new.private / "tls") == 0o700
    assert mode(new.database) == mode(new.private / "master-keys.json") == mode(new.settings_file) == 0o600
    restored = open_services(new)
    try:
        assert restored.sessions.list() == []  # the old Mac's devices sign in again
        audited = restored.audit.recent(event="restored_from_backup")
        assert len(audited) == 1 and audited[0].details["snapshot"] in done.stdout
        assert check_items(new.library, restored.library.all_items(), restored.keys) == []
    finally:
        restored.close()
    # The restored CA issues this Mac's certificate: devices that trusted it keep trusting Vault.
    tls = ensure_certificate(new)
    assert tls.cert.exists() and (new.private / "tls" / "ca.pem").read_bytes() == ca_pem
    assert not (new.private / "tls" / "ca-replaced").exists()


def test_a_phrase_of_another_recovery_key_is_refused_before_anything_is_written(source: Source,
                                                                                tmp_path: Path) -> None:
    other = recovery.new_phrase()  # a valid phrase, checksum and all, that made no key of this backup
    new = AppPaths(tmp_path / "new")
    with pytest.raises(ValidationError, match="does not open this backup"):
        restore(source.target, new, other)
    assert not new.root.exists()
    with pytest.raises(ValidationError, match="does not open this backup"):
        check_backup_items(source.target, other)

    refused = vault(new.root, "restore", str(source.target), "--recovery-key-stdin", stdin=other + "\n")
    assert refused.returncode == 1 and "error [VALIDATION_001]" in refused.stderr
    assert other not in refused.stdout + refused.stderr
    assert not new.database.exists() and not (new.private / "master-keys.json").exists()
    assert not any(new.library.iterdir()) or [p.name for p in new.library.iterdir()] == [".staging"]


def test_a_mistyped_phrase_is_refused_naming_the_mistake(source: Source, tmp_path: Path) -> None:
    new = AppPaths(tmp_path / "new")
    with pytest.raises(ValidationError, match="checksum"):
        restore(source.target, new, mistyped(source.phrase))
    words = source.phrase.split()
    with pytest.raises(ValidationError, match="word 3"):
        restore(source.target, new, " ".join([*words[:2], "vaultt", *words[3:]]))
    assert not new.root.exists()


def test_restoring_into_a_data_folder_that_holds_a_library_is_refused(source: Source) -> None:
    items = len(source.services.library.all_items())
    with pytest.raises(ValidationError, match="already holds a library"):
        restore(source.target, source.paths, source.phrase)
    assert len(source.services.library.all_items()) == items


def test_an_older_snapshot_brings_back_a_deleted_item_into_a_folder_made_by_a_first_start(
        services: Services, media: MediaFactory, tmp_path: Path) -> None:
    import_and_convert(services, media.image("kept.jpg", size=(240, 180)),
                       media.image("deleted.png", size=(200, 150)))
    ensure_certificate(services.paths)
    phrase = services.keys.new_recovery_key("owner")
    target = tmp_path / "backup"
    first = write_backup(services, target)
    gone = next(i for i in services.library.all_items() if i.original_name == "deleted.png")
    services.library.delete(gone.id)
    write_backup(services, target)

    older = make_paths(tmp_path / "older")
    open_services(older).close()  # a first start: an empty DB and a fresh key store, both replaced
    result = restore(target, older, phrase, snapshot=first)
    assert (result.snapshot, result.items, result.problems) == (first, 2, ())
    assert "2 item(s)" in result.summary()
    newest = AppPaths(tmp_path / "newest")
    assert restore(target, newest, phrase).items == 1
    for paths, names in ((older, {"kept.jpg", "deleted.png"}), (newest, {"kept.jpg"})):
        restored = open_services(paths)
        try:
            assert {i.original_name for i in restored.library.all_items()} == names
        finally:
            restored.close()


def test_the_deep_check_names_a_damaged_library_file_and_a_restore_of_it_leaves_no_database(
        source: Source, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert check_backup_items(source.target, source.phrase) == []
    video = source.item("video")
    damaged = source.target / "library" / video.id / POSTER_FILE
    with flipped(damaged, 100):
        problems = check_backup_items(source.target, source.phrase, source.stamp)
        assert len(problems) == 1 and video.id in problems[0] and POSTER_FILE in problems[0]
        assert commands.deep_check_command(source.target, None, source.phrase) == 1
        assert POSTER_FILE in capsys.readouterr().out

        new = AppPaths(tmp_path / "new")
        with pytest.raises(IntegrityError, match=POSTER_FILE):
            restore(source.target, new, source.phrase)
        assert not new.database.exists()  # plainly not restored
    assert commands.deep_check_command(source.target, source.stamp, source.phrase) == 0
    out = capsys.readouterr().out
    assert "Decrypted 2 item(s)" in out and "Every item decrypts" in out


def test_the_item_check_finds_a_flipped_byte_in_a_segment_and_in_a_sealed_file(source: Source) -> None:
    services, root = source.services, source.paths.library
    video, photo = source.item("video"), source.item("image")
    assert check_item(root, video, services.keys) == check_item(root, photo, services.keys) == []

    segment = sorted((source.paths.library / video.id / HLS_DIR).rglob("seg_*.ts"))[0]
    # CBC authenticates nothing: a flipped ciphertext byte flips the same byte one block on. Aimed at the
    # sync byte of the fourth packet, the damage is one the framing check must see.
    with flipped(segment, 3 * 188 - 16):
        problems = check_item(root, video, services.keys)
    assert len(problems) == 1 and segment.name in problems[0] and video.id in problems[0]
    with flipped(source.paths.library / photo.id / THUMB_FILE, 60):
        problems = check_item(root, photo, services.keys)
    assert len(problems) == 1 and THUMB_FILE in problems[0] and "does not decrypt" in problems[0]
    assert check_items(root, services.library.all_items(), services.keys) == []
