"""The server's side of a worker machine's jobs: a job is leased, its original fetched, its keys handed out
for it alone, its encrypted outputs uploaded under names Vault writes, and the result committed only when it
is this job's and every file decrypts. Garbage fails the job (retried), a stale lease is refused, a revoked
worker's job goes back in line, and a job leased before a restart is put back at its worker's next call."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest

from tests.support import play_hls
from tests.test_hardening_ffmpeg import queue_all
from vaultserver.errors import ValidationError
from vaultserver.ffmpeg import ffmpeg
from vaultserver.pipeline import Pipeline
from vaultserver.pipeline.convert import ConvertedItem, sha256_of
from vaultserver.pipeline.local_worker import InlineConverter
from vaultserver.pipeline.remote_jobs import RemoteJobs, ResultRefused
from vaultserver.services.jobs import LeaseLost

ENCODERS = ["libx264", "libwebp_anim", "aac"]


@pytest.fixture
def remote(services) -> RemoteJobs:
    return Pipeline(services, local_workers=0).remote


def leased(remote, services, imports, media, name="far.jpg", source=None):
    media.copy_into(source or media.image("a.jpg"), imports, name)
    queue_all(services, imports)
    return remote.lease("laptop", ENCODERS)


def convert_elsewhere(remote, lease, scratch: Path) -> tuple[dict, Path]:
    """What a worker machine does between its lease and its commit: fetch, hash, convert, upload."""
    original = scratch / "original"
    scratch.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(remote.source(lease.job_id, lease.token), original)
    converter = InlineConverter(ffmpeg, scratch / "keys")
    sha256 = converter.hash(original, lambda *a: None, threading.Event())
    job = remote.hashed(lease.job_id, lease.token, sha256)
    stage = scratch / "stage"
    stage.mkdir()
    staged = converter.convert(original, job, stage, lambda *a: None, threading.Event())
    for path in sorted(p for p in stage.rglob("*") if p.is_file()):
        target, most = remote.upload_path(lease.job_id, lease.token, path.relative_to(stage).as_posix())
        assert path.stat().st_size <= most
        shutil.copyfile(path, target)
    return ConvertedItem.of(staged).model_dump(mode="json"), stage


def test_a_photo_converted_elsewhere_is_committed_with_keys_made_here(remote, services, imports, media,
                                                                      tmp_path):
    lease = leased(remote, services, imports, media)
    assert (lease.original_name, services.queue.get(lease.job_id).lease.owner) == ("far.jpg", "remote:laptop")
    result, _ = convert_elsewhere(remote, lease, tmp_path / "worker")
    media_id = remote.commit(lease.job_id, lease.token, result)
    (item,) = services.library.all_items()
    assert item.id == media_id and services.library.read(item.id, "image.vlt")[:4] == b"RIFF"
    assert services.queue.get(lease.job_id).status == "done" and not (imports / "far.jpg").exists()
    assert list(services.paths.staging.iterdir()) == []


@pytest.mark.slow
def test_a_video_converted_elsewhere_plays_on_every_rung(remote, services, imports, media, tmp_path,
                                                         ffmpeg_bin):
    lease = leased(remote, services, imports, media, "clip.mp4", media.video(seconds=3, size="640x360"))
    result, _ = convert_elsewhere(remote, lease, tmp_path / "worker")
    media_id = remote.commit(lease.job_id, lease.token, result)
    item = services.library.get(media_id)
    for rendition in item.renditions:
        decoded = play_hls(services, media_id, tmp_path / rendition["name"], ffmpeg_bin, rendition["name"])
        assert decoded.seconds == pytest.approx(3, abs=0.3)


def test_a_worker_without_the_encoders_vault_needs_gets_no_job(remote, services, imports, media):
    media.copy_into(media.image("a.jpg"), imports)
    queue_all(services, imports)
    assert remote.lease("old-box", ["mpeg4"]) is None
    assert services.queue.counts().queued == 1


@pytest.mark.parametrize("name", ["../escape.vlt", "hls/720p/../../x.ts", "hls/720p/evil.sh", "notes.txt",
                                  "/etc/passwd", "hls/../image.vlt", "image.vlt/x"])
def test_uploads_only_go_to_names_vault_writes(remote, services, imports, media, tmp_path, name):
    lease = leased(remote, services, imports, media)
    remote.hashed(lease.job_id, lease.token, "ab" * 32)
    with pytest.raises(ValidationError) as refused:
        remote.upload_path(lease.job_id, lease.token, name)
    assert refused.value.status == 400


@pytest.mark.parametrize("damage", ["flip a byte", "leave a file out", "claim another id"])
def test_a_result_that_does_not_decrypt_or_is_not_its_jobs_fails_the_job_and_adds_nothing(
        remote, services, imports, media, tmp_path, damage):
    lease = leased(remote, services, imports, media)
    result, _ = convert_elsewhere(remote, lease, tmp_path / "worker")
    stored = services.paths.staging.glob("*/image.vlt")
    image = next(stored)
    if damage == "flip a byte":
        data = bytearray(image.read_bytes())
        data[len(data) // 2] ^= 0xFF
        image.write_bytes(bytes(data))
    elif damage == "leave a file out":
        image.unlink()
    else:
        result["media_id"] = "f" * 32
    with pytest.raises(ResultRefused) as refused:
        remote.commit(lease.job_id, lease.token, result)
    assert (refused.value.status, refused.value.code) == (422, "MEDIA_005")
    job = services.queue.get(lease.job_id)
    assert (job.status, job.stage) == ("queued", "waiting to retry") and "unusable result" in job.error
    assert services.library.all_items() == [] and (imports / "far.jpg").exists()
    assert list(services.paths.staging.iterdir()) == []


def test_a_stale_lease_is_refused_and_the_new_holder_commits_once(remote, services, imports, media, tmp_path):
    services.queue.lease_seconds = 0.5
    stale = leased(remote, services, imports, media)
    result, _ = convert_elsewhere(remote, stale, tmp_path / "first")
    time.sleep(0.6)
    live = remote.lease("desktop", ENCODERS)
    assert live.job_id == stale.job_id
    for call in (lambda: remote.commit(stale.job_id, stale.token, result),
                 lambda: remote.heartbeat(stale.job_id, stale.token, "transcoding", 0.5),
                 lambda: remote.source(stale.job_id, stale.token)):
        with pytest.raises(LeaseLost) as refused:
            call()
        assert refused.value.status == 409
    services.queue.lease_seconds = 60
    remote.heartbeat(live.job_id, live.token, "transcoding", 0.5)
    result, _ = convert_elsewhere(remote, live, tmp_path / "second")
    remote.commit(live.job_id, live.token, result)
    assert len(services.library.all_items()) == 1


def test_content_already_in_the_library_ends_the_job_as_a_duplicate(remote, services, imports, media,
                                                                    tmp_path):
    first = leased(remote, services, imports, media)
    remote.commit(first.job_id, first.token, convert_elsewhere(remote, first, tmp_path / "a")[0])
    again = leased(remote, services, imports, media, "again.jpg")
    source = remote.source(again.job_id, again.token)
    assert remote.hashed(again.job_id, again.token, sha256_of(source)) is None
    assert services.queue.get(again.job_id).status == "duplicate" and not source.exists()


def test_a_revoked_workers_job_goes_back_in_line(remote, services, imports, media):
    services.add_worker("laptop", actor="owner")
    lease = leased(remote, services, imports, media)
    services.revoke_worker("LAPTOP", actor="owner")  # names are case-insensitive
    assert services.queue.get(lease.job_id).status == "queued"
    with pytest.raises(LeaseLost):
        remote.heartbeat(lease.job_id, lease.token, "transcoding", 0.1)


def test_a_job_leased_before_a_restart_goes_back_at_its_workers_next_call(services, imports, media):
    lease = leased(Pipeline(services, local_workers=0).remote, services, imports, media)
    restarted = Pipeline(services, local_workers=0)
    restarted.recover()
    assert services.queue.get(lease.job_id).status == "processing"  # a live remote lease survives a restart
    with pytest.raises(LeaseLost):
        restarted.remote.heartbeat(lease.job_id, lease.token, "transcoding", 0.5)
    assert services.queue.get(lease.job_id).status == "queued"


def test_bad_input_reported_by_a_worker_is_quarantined_with_its_reason(remote, services, imports, media):
    lease = leased(remote, services, imports, media)
    remote.fail(lease.job_id, lease.token, "media", "Not a photo or video Vault can read", {"reason": "x"})
    job = services.queue.get(lease.job_id)
    assert job.status == "failed" and (services.paths.failed / "far.jpg").exists()
