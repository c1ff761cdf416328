"""Nothing is ever lost: bad input is quarantined byte-identical, originals go only after a commit, crashes
recover, and nothing in library/ is readable without the keys."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import plaintext_findings
from vaultserver.pipeline import Pipeline
from vaultserver.pipeline.local_worker import ConversionFailed, ProcessConverter
from vaultserver.services import open_services
from vaultserver.services.items import ORIGINAL_FILE


def failed_files(services) -> dict[str, dict]:
    return {p.name: json.loads(p.with_name(p.name + ".vault-error.json").read_text())
            for p in services.paths.failed.iterdir() if not p.name.endswith(".vault-error.json")}


def bad_inputs(media, folder: Path) -> dict[str, bytes]:
    jpeg = media.image("whole.jpg").read_bytes()
    mp4 = media.video(seconds=2).read_bytes()
    files = {
        "empty.jpg": b"",
        "notes.mp4": b"this is a shopping list, not a video\n" * 20,
        "truncated.jpg": jpeg[: len(jpeg) // 3],
        "truncated.mp4": mp4[: len(mp4) // 4],
        "garbage.mov": os.urandom(50_000),
        "corrupt.png": b"\x89PNG\r\n\x1a\n" + os.urandom(4000),
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return files


def test_bad_files_go_to_failed_unchanged_with_a_reason_and_an_audit_entry(media, imports, run_pipeline,
                                                                           services):
    originals = bad_inputs(media, imports)
    run_pipeline()
    quarantined = failed_files(services)
    assert set(quarantined) == set(originals)
    for name, data in originals.items():
        assert (services.paths.failed / name).read_bytes() == data, name
        assert quarantined[name]["reason"]
    assert services.library.all_items() == [] and list(imports.iterdir()) == []
    audited = {e.resource for e in services.audit.recent(event="ingest_failed")}
    assert audited == set(originals)


def test_a_failed_name_that_exists_already_gets_a_new_name(imports, run_pipeline, services):
    (imports / "x.jpg").write_bytes(b"bad one")
    run_pipeline()
    (imports / "x.jpg").write_bytes(b"bad two")
    run_pipeline()
    assert (services.paths.failed / "x.jpg").read_bytes() == b"bad one"
    assert (services.paths.failed / "x (2).jpg").read_bytes() == b"bad two"


def test_identical_content_is_stored_once_and_the_copy_is_removed(media, imports, run_pipeline, services):
    photo = media.image("dup.jpg")
    media.copy_into(photo, imports, "first.jpg")
    run_pipeline()
    media.copy_into(photo, imports / "again", "second copy.jpg")
    run_pipeline()
    assert len(services.library.all_items()) == 1
    assert list(imports.iterdir()) == []
    assert [j.status for j in services.queue.snapshot()].count("duplicate") == 1


def test_spaces_unicode_and_subfolders_work_and_leave_no_empty_folders(media, imports, run_pipeline,
                                                                       services):
    media.copy_into(media.image("a.jpg"), imports / "Holiday 2024" / "Día 1", "Playa de las Américas.jpg")
    run_pipeline()
    (item,) = services.library.all_items()
    assert item.original_name == "Playa de las Américas.jpg"
    assert list(imports.iterdir()) == []


def test_hidden_temporary_and_partial_files_are_left_alone(media, imports, run_pipeline, services):
    for name in (".hidden.jpg", "download.jpg.crdownload", "movie.mp4.part", "copy.tmp", "Thumbs.db"):
        media.copy_into(media.image("a.jpg"), imports, name)
    media.copy_into(media.image("a.jpg"), imports / ".Trashes", "x.jpg")
    run_pipeline()
    assert services.library.all_items() == [] and services.queue.counts().done == 0
    assert len(list(imports.iterdir())) == 6


@pytest.mark.slow
def test_library_holds_no_plaintext_media(media, imports, run_pipeline, services):
    services.settings.update(keep_originals=True)
    for source in (media.image("p.jpg"), media.image("p.png"), media.animated_gif(), media.video(seconds=3)):
        media.copy_into(source, imports)
    run_pipeline()
    assert len(services.library.all_items()) == 4
    assert plaintext_findings(services.paths.library) == []
    assert plaintext_findings(media.root)  # the scanner does recognise the same media in the clear


def test_kept_originals_are_encrypted_and_decrypt_to_the_same_bytes(media, imports, run_pipeline, services):
    services.settings.update(keep_originals=True)
    source = media.image("keep.jpg")
    media.copy_into(source, imports)
    run_pipeline()
    (item,) = services.library.all_items()
    assert item.has_original
    assert services.library.read(item.id, ORIGINAL_FILE) == source.read_bytes()
    assert source.read_bytes() not in (services.library.item_dir(item.id) / ORIGINAL_FILE).read_bytes()


def test_transient_errors_are_retried_then_quarantined(media, imports, run_pipeline, services, monkeypatch):
    calls = []

    def flaky(self, *args, **kwargs):
        calls.append(time.monotonic())
        raise ConversionFailed("OSError: disk hiccup")  # as a worker process reports it

    monkeypatch.setattr(ProcessConverter, "convert", flaky)
    media.copy_into(media.image("a.jpg"), imports, "flaky.jpg")
    run_pipeline()
    assert len(calls) == 3  # max_attempts
    # Backoff doubles: each retry waits at least its delay (0.05 s, then 0.1 s); a busy machine may add more.
    assert calls[1] - calls[0] >= 0.05 and calls[2] - calls[1] >= 0.1
    assert "disk hiccup" in failed_files(services)["flaky.jpg"]["details"]["error"]


def test_a_commit_failure_keeps_the_original_in_place_and_cleans_staging(media, imports, services,
                                                                         monkeypatch):
    services.settings.update(max_attempts=1)
    monkeypatch.setattr(services.library, "commit", lambda *a, **k: (_ for _ in ()).throw(OSError("full")))
    source = media.copy_into(media.image("a.jpg"), imports)
    Pipeline(services).process_once(timeout=60)
    assert not source.exists() and (services.paths.failed / "a.jpg").exists()
    assert list(services.paths.staging.iterdir()) == []
    assert services.library.all_items() == []


@pytest.mark.slow
def test_kill_9_during_processing_loses_nothing(media, paths, tmp_path):
    imports = paths.default_imports
    imports.mkdir(exist_ok=True)
    # Longer than one 10 s segment, so one is written while the rest is still being converted.
    video = media.copy_into(media.video(seconds=12, size="854x480"), imports, "long.mp4")
    photo = media.copy_into(media.image("k.jpg"), imports)
    original = video.read_bytes()
    cmd = [sys.executable, "-m", "vaultserver.cli", "--data-dir", str(paths.root), "process", "--once"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not any(paths.library.glob(".staging/*/hls/*/seg_*.ts")):  # mid-transcode
        assert time.monotonic() < deadline and proc.poll() is None, "never reached the transcode"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert video.read_bytes() == original
    assert any(paths.staging.iterdir()), "the kill came after the commit: nothing was left half done"
    time.sleep(1.0)  # ffmpeg dies of SIGPIPE once its parent is gone
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    services = open_services(paths)
    try:
        items = services.library.all_items()
    finally:
        services.close()
    assert sorted(item.original_name for item in items) == ["k.jpg", "long.mp4"]
    assert not video.exists() and not photo.exists()
    assert list(paths.staging.iterdir()) == [] and list((paths.private / "transcode").glob("*")) == []
    stored = {p.name for p in paths.library.iterdir() if not p.name.startswith(".")}
    assert stored == {item.id for item in items}


def test_interrupted_jobs_are_requeued_and_orphans_swept(services, imports, media, run_pipeline):
    job_id = services.queue.enqueue(imports / "a.jpg", imports, 1, 0.0)
    media.copy_into(media.image("a.jpg"), imports)
    assert services.queue.claim().id == job_id  # a crash leaves it "processing"
    orphan = services.paths.library / "deadbeef"
    orphan.mkdir()
    (services.paths.staging / job_id).mkdir()
    run_pipeline()
    assert not orphan.exists() and list(services.paths.staging.iterdir()) == []
    job = services.queue.get(job_id)
    assert job.status == "done" and job.attempts == 2
