"""A full disk pauses ingest instead of failing files, hanging, or leaving partial files behind.

Free space is read through an injected `disk_usage`; a disk that fills up mid-job is a write (or rename) that
raises ENOSPC, or SQLite saying the database is full. Everything else is the real pipeline on real SQLite.
"""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy.exc import OperationalError

from tests.conftest import wait_for
from vaultserver import cli
from vaultserver.pipeline import Pipeline, import_files
from vaultserver.pipeline.diskspace import SPACE_MARGIN, WAITING_STAGE, DiskSpaceError
from vaultserver.pipeline.import_files import SIDECAR_SUFFIX
from vaultserver.pipeline.local_worker import ProcessConverter
from vaultserver.pipeline.watcher import ImportWatcher
from vaultserver.pipeline.workers import WorkerPool

GB = 1000 ** 3


class Disk:
    """A disk whose free space the test sets."""

    def __init__(self, free: int) -> None:
        self.free = free

    def __call__(self, path: Path) -> SimpleNamespace:
        return SimpleNamespace(free=self.free)


def enospc(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def queue_all(services, folder: Path) -> None:
    watcher = ImportWatcher(services.settings, services.queue)
    watcher.scan(folder)
    watcher.check_stable(folder, 0.0)
    watcher.check_stable(folder, 0.0)


def only_job(services):
    (job,) = services.queue.snapshot()
    return job


def assert_waiting_for_space(job) -> None:
    assert job.status == "queued" and job.stage == WAITING_STAGE and job.attempts == 0
    assert job.error.startswith("Waiting for free disk space: need ") and ", have " in job.error


def assert_nothing_partial(services) -> None:
    paths = services.paths
    assert list(paths.staging.iterdir()) == []
    assert [p.name for p in paths.library.iterdir() if not p.name.startswith(".")] == []
    assert list(paths.failed.iterdir()) == []


def test_a_job_without_room_waits_unharmed_and_process_once_says_so_instead_of_hanging(
        media, services, imports):
    source = media.copy_into(media.image("room.jpg"), imports)
    disk = Disk(free=SPACE_MARGIN // 2)

    with pytest.raises(DiskSpaceError) as raised:
        Pipeline(services, disk_usage=disk).process_once(timeout=60)

    job = only_job(services)
    assert_waiting_for_space(job)
    assert raised.value.message == job.error and "have 268.4 MB" in job.error
    assert source.is_file() and services.library.all_items() == []
    assert_nothing_partial(services)

    disk.free = 100 * GB
    assert Pipeline(services, disk_usage=disk).process_once(timeout=60)
    assert services.queue.get(job.id).status == "done" and not source.exists()


def test_running_workers_take_nothing_while_short_of_space_and_resume_by_themselves(media, services, imports):
    media.copy_into(media.image("first.jpg"), imports)
    disk = Disk(free=0)
    pool = WorkerPool(services, lambda: "unused", disk_usage=disk, recheck_seconds=0.2)
    queue_all(services, imports)
    pool.start()
    try:
        wait_for(lambda: pool.stalled_for_space())
        assert_waiting_for_space(only_job(services))
        media.copy_into(media.image("second.jpg", size=(320, 240)), imports)
        queue_all(services, imports)
        assert services.queue.counts().queued == 2 and services.queue.counts().processing == 0

        disk.free = 100 * GB
        wait_for(lambda: services.queue.counts().done == 2, timeout=60)
        assert pool.waiting_for_space is None
    finally:
        pool.stop()


@pytest.mark.parametrize("where", ["staging", "commit"])
def test_a_disk_that_fills_up_mid_job_pauses_it_and_leaves_no_partial_file(
        media, services, imports, monkeypatch, where):
    source = media.copy_into(media.image("fills.jpg"), imports)
    if where == "staging":
        def write_half_then_fail(self, source, job, stage, progress, cancel, planned=None):
            (stage / "image.webp.vlt").write_bytes(b"half a file")  # as a worker process leaves it
            enospc()
        monkeypatch.setattr(ProcessConverter, "convert", write_half_then_fail)
    else:
        real_replace, library = os.replace, services.paths.library

        def replace(src, dst):
            if Path(dst).parent == library:
                enospc()
            real_replace(src, dst)
        monkeypatch.setattr("vaultserver.services.library.os.replace", replace)
    disk = Disk(free=100 * GB)

    with pytest.raises(DiskSpaceError):
        Pipeline(services, disk_usage=disk).process_once(timeout=60)

    assert_waiting_for_space(only_job(services))
    assert source.is_file()
    assert_nothing_partial(services)
    monkeypatch.undo()
    disk.free += SPACE_MARGIN
    assert Pipeline(services, disk_usage=disk).process_once(timeout=60)
    assert only_job(services).status == "done"


def test_a_disk_full_while_quarantining_leaves_no_partial_copy_in_failed_and_pauses(
        services, imports, monkeypatch):
    source = imports / "broken.mp4"
    source.write_bytes(b"not a video at all " * 50_000)
    real_replace, real_copy, failed = import_files.os.replace, shutil.copy2, services.paths.failed

    def cross_device(src, dst):
        if Path(dst).parent == failed:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        real_replace(src, dst)

    def copy_half_then_fail(src, dst, **_kwargs):
        Path(dst).write_bytes(Path(src).read_bytes()[:1000])
        enospc()
    monkeypatch.setattr(import_files.os, "replace", cross_device)
    monkeypatch.setattr(import_files.shutil, "copy2", copy_half_then_fail)
    disk = Disk(free=100 * GB)

    with pytest.raises(DiskSpaceError):
        Pipeline(services, disk_usage=disk).process_once(timeout=60)

    assert_waiting_for_space(only_job(services))
    assert list(failed.iterdir()) == []
    assert source.stat().st_size == len(b"not a video at all ") * 50_000
    monkeypatch.setattr(import_files.shutil, "copy2", real_copy)
    disk.free += SPACE_MARGIN
    assert Pipeline(services, disk_usage=disk).process_once(timeout=60)
    job = only_job(services)
    assert job.status == "failed" and job.attempts == 1
    assert sorted(p.name for p in failed.iterdir()) == ["broken.mp4", f"broken.mp4{SIDECAR_SUFFIX}"]


def test_a_database_error_while_recording_a_failure_never_leaves_the_job_processing(
        services, imports, monkeypatch):
    (imports / "trip").mkdir()
    (imports / "trip" / "notes.mp4").write_text("not media")
    real_finish, calls = services.queue.finish, []

    def finish_fails_once(*args, **kwargs):
        calls.append(args)
        if len(calls) == 1:
            raise OperationalError("UPDATE", {}, sqlite3.OperationalError("database is locked"))
        real_finish(*args, **kwargs)
    monkeypatch.setattr(services.queue, "finish", finish_fails_once)

    assert Pipeline(services).process_once(timeout=60)

    job = only_job(services)
    assert job.status == "failed" and job.attempts == 2 and len(calls) == 2
    assert (services.paths.failed / "notes.mp4").read_text() == "not media"
    assert (services.paths.failed / f"notes.mp4{SIDECAR_SUFFIX}").is_file()
    assert list(imports.iterdir()) == []


def test_a_full_database_while_recording_a_failure_is_a_pause_not_a_hang(services, imports, monkeypatch):
    (imports / "notes.mp4").write_text("not media")
    full = OperationalError("UPDATE", {}, sqlite3.OperationalError("database or disk is full"))
    monkeypatch.setattr(services.queue, "finish", lambda *a, **kw: (_ for _ in ()).throw(full))

    with pytest.raises(DiskSpaceError):
        Pipeline(services, disk_usage=Disk(free=100 * GB)).process_once(timeout=60)

    assert_waiting_for_space(only_job(services))


def test_process_once_on_a_full_disk_exits_non_zero_with_the_reason(
        media, paths, monkeypatch, capsys):
    imports = paths.default_imports
    media.copy_into(media.image("cli.jpg"), imports)
    monkeypatch.setattr(shutil, "disk_usage", Disk(free=10 * 1000 ** 2))

    assert cli.main(["--data-dir", str(paths.root), "process", "--once"]) == 1

    err = capsys.readouterr().err
    assert "Waiting for free disk space: need " in err and "have 10.0 MB" in err
    assert (imports / "cli.jpg").is_file()
