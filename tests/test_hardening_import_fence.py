"""The import folder is fenced: Vault deletes what it imports there, so it can never be pointed at Vault's own
data, the home folder or the whole disk; a remote admin cannot move it at all; and in a folder the owner
chose, a file Vault cannot take is reported and left where it is."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest

from tests.conftest import OWNER, OWNER_PASSWORD
from vaultserver.config import Settings, save_settings
from vaultserver.errors import ValidationError
from vaultserver.pipeline import Pipeline
from vaultserver.pipeline.watcher import ImportWatcher
from vaultserver.services import open_services


def tree(folder: Path) -> dict[str, str]:
    """Every file under `folder` with a digest of its bytes: what "untouched" is checked against."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.suffix not in (".db-wal", ".db-shm")}


def refused_folders(paths, tmp_path: Path) -> dict[str, str]:
    link = tmp_path / "looks harmless"
    link.symlink_to(paths.root, target_is_directory=True)
    return {"data folder": str(paths.root), "library": str(paths.library), "failed": str(paths.failed),
            "private": str(paths.private), "inside imports": str(paths.default_imports / "sub"),
            "parent of the data folder": str(tmp_path), "link to the data folder": str(link),
            "home": str(Path.home()), "home by tilde": "~", "top of the disk": "/", "relative": "Drop"}


def test_settings_refuse_every_import_folder_that_would_empty_vault_or_the_home_folder(services, paths,
                                                                                       tmp_path):
    before = paths.settings_file.read_bytes()
    for what, folder in refused_folders(paths, tmp_path).items():
        with pytest.raises(ValidationError) as refused:
            services.settings.update(import_dir=folder)
        assert refused.value.code == "VALIDATION_001", what
        assert "import_dir" in refused.value.details["fields"], what
        assert f"The import folder {folder} " in refused.value.message, what
    assert paths.settings_file.read_bytes() == before and services.settings.current.import_dir == ""


def test_the_default_folder_and_a_folder_of_the_owners_are_accepted(services, paths, tmp_path):
    for folder in (str(paths.default_imports), str(tmp_path / "Drop"), ""):
        assert services.settings.update(import_dir=folder).import_dir == folder


def test_a_remote_admin_cannot_move_the_import_folder_and_the_data_folder_stays_untouched(
        make_client, services, paths):
    owner = make_client()
    assert owner.login(OWNER, OWNER_PASSWORD).status == 200
    before = tree(paths.root)
    reply = owner.request("PATCH", "/api/admin/settings", {"import_dir": str(paths.root)})
    assert reply.status == 403 and reply.code == "SEC_003"
    assert "Vault app on the Mac" in reply.json()["error"]["message"]
    error = reply.json()["error"]
    assert error["details"]["field"] == "import_dir" and "timestamp" in error
    assert owner.request("PATCH", "/api/admin/settings", {"import_dir": "/tmp/anywhere"}).code == "SEC_003"
    time.sleep(1.5)  # a watcher that had moved would have started emptying the folder by now
    assert services.settings.current.import_dir == ""
    assert tree(paths.root).keys() >= before.keys() and list(paths.failed.iterdir()) == []
    assert all(tree(paths.root)[name] == digest for name, digest in before.items()
               if not name.startswith(("vault.db", "logs")))
    # Sending the current value back (a client saving the whole form) is not a change.
    unchanged = owner.request("PATCH", "/api/admin/settings", {"import_dir": "", "rescan_seconds": 20})
    assert unchanged.status == 200 and unchanged.json()["settings"]["rescan_seconds"] == 20


def test_a_settings_file_naming_the_data_folder_is_not_obeyed(paths, media):
    save_settings(paths, Settings(import_dir=str(paths.root), stable_seconds=0.0))
    services = open_services(paths)
    try:
        assert services.settings.current.import_path(paths) == paths.default_imports
        media.copy_into(media.image("a.jpg"), paths.default_imports)
        before = tree(paths.root)
        assert Pipeline(services).process_once(timeout=120)
        (item,) = services.library.all_items()
        assert item.original_name == "a.jpg"
        after = tree(paths.root)
        for name in ("settings.toml", "private/master.key"):
            assert name not in before or after.get(name) == before[name], name
        assert list(paths.failed.iterdir()) == []
    finally:
        services.close()


def test_the_watcher_reads_nothing_of_the_data_folder_but_the_import_folder(services, paths, media):
    imports = paths.default_imports
    imports.mkdir(exist_ok=True)
    (paths.failed / "old.jpg.vault-error.json").write_text("{}")
    (imports / "the database.jpg").symlink_to(paths.database)
    (imports / "a sidecar.json").symlink_to(paths.failed / "old.jpg.vault-error.json")
    media.copy_into(media.image("a.jpg"), imports)
    watcher = ImportWatcher(services.settings, services.queue)
    assert watcher.scan(paths.root) == 0  # a refused folder is not read at all
    watcher.scan(imports)
    watcher.check_stable(imports, 0.0)
    watcher.check_stable(imports, 0.0)
    assert [job.original_name for job in services.queue.snapshot()] == ["a.jpg"]


def test_in_the_owners_folder_a_file_vault_cannot_take_is_reported_and_left_where_it_is(
        services, paths, media, tmp_path):
    drop = tmp_path / "Drop"
    services.settings.update(import_dir=str(drop))
    media.copy_into(media.image("a.jpg"), drop / "trip")
    notes = drop / "trip" / "notes.txt"
    notes.write_text("the owner's own notes")
    assert Pipeline(services).process_once(timeout=120)

    assert [item.original_name for item in services.library.all_items()] == ["a.jpg"]
    assert notes.read_text() == "the owner's own notes" and not (drop / "trip" / "a.jpg").exists()
    assert list(paths.failed.iterdir()) == []
    failed = [job for job in services.queue.snapshot() if job.status == "failed"]
    assert [(job.source_path, bool(job.error)) for job in failed] == [("trip/notes.txt", True)]
    (audited,) = services.audit.recent(event="ingest_failed")
    assert audited.resource == "trip/notes.txt" and audited.details["left_in"] == str(drop)

    assert Pipeline(services).process_once(timeout=60)  # seen again, unchanged: not taken again
    assert len(services.queue.snapshot()) == 2 and notes.exists()
