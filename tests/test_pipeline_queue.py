"""Each piece of ingest state has one owner: a job keeps the absolute path it was found at, the queue alone
writes job rows (done included, inside the library's commit), and the library audits adds and deletes."""

from __future__ import annotations

import pytest

from vaultserver.db.models import new_id
from vaultserver.pipeline import Pipeline
from vaultserver.pipeline.watcher import ImportWatcher
from vaultserver.services.items import StagedItem


def queue_everything_in(services, folder) -> int:
    """What the watcher does: two looks at each file, then a job for each one that stopped changing."""
    watcher = ImportWatcher(services.settings, services.queue)
    watcher.scan(folder)
    watcher.check_stable(folder, 0.0)
    return watcher.check_stable(folder, 0.0)


def staged_photo(services, name: str = "hand-made.jpg") -> StagedItem:
    media_id = new_id()
    folder = services.paths.staging / media_id
    folder.mkdir(parents=True)
    (folder / "image.vlt").write_bytes(b"sealed bytes stand-in")
    return StagedItem(media_id=media_id, staging_dir=folder, media_type="image", original_name=name,
                      sha256=media_id * 2, size=21, mime_type="image/webp", source_format="JPEG", width=4,
                      height=3, keys=(services.keys.new_data_key("file"),), has_original=False)


def test_a_queued_job_still_imports_its_file_after_the_import_folder_changes(media, imports, services,
                                                                             tmp_path):
    source = media.copy_into(media.image("a.jpg"), imports / "trip", "beach.jpg")
    assert queue_everything_in(services, imports) == 1
    services.settings.update(import_dir=str(tmp_path / "somewhere else"))
    assert Pipeline(services).process_once(timeout=120)
    (item,) = services.library.all_items()
    assert item.original_name == "beach.jpg"
    (job,) = services.queue.snapshot()
    assert (job.status, job.media_id, job.path) == ("done", item.id, str(source))
    assert not source.exists() and list(imports.iterdir()) == []  # the emptied sub-folder is pruned too
    assert imports.is_dir()


def test_jobs_show_their_path_inside_the_folder_they_were_found_in(media, imports, services):
    media.copy_into(media.image("a.jpg"), imports / "Holiday 2024", "Día 1.jpg")
    queue_everything_in(services, imports)
    (job,) = services.queue.snapshot()
    assert job.path == str(imports / "Holiday 2024" / "Día 1.jpg") and job.import_root == str(imports)
    assert job.source_path == job.to_dict()["source_path"] == "Holiday 2024/Día 1.jpg"
    assert "path" not in job.to_dict() and "import_root" not in job.to_dict()


def test_a_file_already_waiting_is_not_queued_twice(media, imports, services):
    media.copy_into(media.image("a.jpg"), imports)
    assert queue_everything_in(services, imports) == 1
    assert queue_everything_in(services, imports) == 0


def test_the_commit_marks_the_job_done_and_audits_the_add_in_one_transaction(services):
    job_id = services.queue.enqueue(services.paths.root / "x.jpg", services.paths.root, 21, 0.0)
    lease = services.queue.claim().lease
    item = services.library.commit(staged_photo(services), lease)
    job = services.queue.get(job_id)
    assert (job.status, job.stage, job.progress) == ("done", "done", 1.0)
    assert (job.media_id, job.error) == (item.id, None)
    (added,) = services.audit.recent(event="media_added")
    assert (added.resource, added.details) == (item.id, {"original_name": "hand-made.jpg", "type": "image"})


def test_a_failed_commit_leaves_no_item_no_audit_entry_and_the_job_still_running(services, monkeypatch):
    job_id = services.queue.enqueue(services.paths.root / "x.jpg", services.paths.root, 21, 0.0)
    lease = services.queue.claim().lease
    monkeypatch.setattr(services.keys, "add_wrapped", lambda *a: (_ for _ in ()).throw(OSError("disk full")))
    staged = staged_photo(services)
    with pytest.raises(OSError):
        services.library.commit(staged, lease)
    assert services.queue.get(job_id).status == "processing"
    assert services.audit.recent(event="media_added") == [] and services.library.all_items() == []
    assert not services.library.item_dir(staged.media_id).exists()


def test_only_the_commit_can_mark_a_job_done(services):
    job_id = services.queue.enqueue(services.paths.root / "x.jpg", services.paths.root, 1, 0.0)
    lease = services.queue.claim().lease
    with pytest.raises(ValueError):
        services.queue.finish(job_id, "done", token=lease.token)
    assert services.queue.get(job_id).status == "processing"


def test_adding_and_deleting_are_audited_by_the_library(media, imports, run_pipeline, services):
    media.copy_into(media.image("a.jpg"), imports, "gone soon.jpg")
    run_pipeline()
    (item,) = services.library.all_items()
    services.library.delete(item.id, actor="owner")
    (added,) = services.audit.recent(event="media_added")
    (deleted,) = services.audit.recent(event="media_deleted")
    assert added.resource == deleted.resource == item.id
    assert added.details == {"original_name": "gone soon.jpg", "type": "image"}
    assert (deleted.username, deleted.details) == ("owner", {"original_name": "gone soon.jpg"})
