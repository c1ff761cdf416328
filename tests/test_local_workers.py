"""This Mac's conversion runs in worker processes at background priority, never in the server process: a
worker that dies (kill -9, a crashing decoder) costs one attempt and the server carries on; a worker whose
server went away stops its ffmpeg and exits; what a worker hands back is checked against its job."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from tests.conftest import wait_for
from tests.support import play_hls
from tests.test_hardening_ffmpeg import SMALL, assert_all_stopped, fake_ffmpeg, fake_processes
from tests.test_hardening_queue import queue_one
from vaultserver.pipeline import Pipeline
from vaultserver.pipeline.convert import KEY_DIR, Assignment, ConvertedItem, WireError
from vaultserver.pipeline.local_worker import ProcessConverter
from vaultserver.pipeline.workers import WorkerPool
from vaultserver.services.keys import NewDataKey


def parent_of(pid: int) -> int:
    return int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])


def test_conversion_runs_in_a_worker_process_at_background_priority_not_in_the_server(
        media, ffmpeg_bin, services, imports, tmp_path):
    media.copy_into(media.video(seconds=1, size="320x240"), imports, "slow.mp4")
    queue_one(services, imports)
    pool = WorkerPool(services, lambda: str(fake_ffmpeg(tmp_path, ffmpeg_bin, "advancing")), limits=SMALL,
                      count=1)
    pool.start()
    try:
        ffmpeg_pid = fake_processes(tmp_path)[0]
        (worker,) = pool.worker_pids()
        assert worker != os.getpid() and parent_of(ffmpeg_pid) == worker
        assert os.getpriority(os.PRIO_PROCESS, worker) == 19
        assert os.getpriority(os.PRIO_PROCESS, ffmpeg_pid) == 19
        assert os.getpriority(os.PRIO_PROCESS, 0) < 19  # the server keeps its own priority
    finally:
        pool.stop()
    assert_all_stopped(fake_processes(tmp_path))
    assert pool.worker_pids() == []


@pytest.mark.slow
def test_a_worker_killed_mid_video_costs_one_attempt_and_the_retry_commits_one_playable_item(
        media, ffmpeg_bin, services, imports, tmp_path):
    source = media.copy_into(media.video(seconds=12, size="640x360"), imports, "killed.mp4")
    job_id = queue_one(services, imports)
    pipeline = Pipeline(services, local_workers=1)
    pipeline.workers.start()
    try:
        wait_for(lambda: services.queue.get(job_id).stage == "transcoding", timeout=60)
        (worker,) = pipeline.workers.worker_pids()
        os.kill(worker, signal.SIGKILL)
        wait_for(lambda: services.queue.get(job_id).status == "done", timeout=180)
    finally:
        pipeline.workers.stop()

    job = services.queue.get(job_id)
    assert job.attempts == 2
    (item,) = services.library.all_items()
    assert item.id == job.media_id and not source.exists()
    assert play_hls(services, item.id, tmp_path / "play", ffmpeg_bin).seconds == pytest.approx(12, abs=0.5)
    assert list(services.paths.staging.iterdir()) == []
    assert not list((services.paths.private / KEY_DIR).iterdir())


def test_a_worker_whose_server_goes_away_stops_its_ffmpeg_and_exits(media, ffmpeg_bin, tmp_path):
    fake = fake_ffmpeg(tmp_path, ffmpeg_bin, "advancing")
    converter = ProcessConverter(lambda: str(fake), tmp_path / "keys", SMALL)
    stage = tmp_path / "stage"
    stage.mkdir()
    job = assignment("slow.mp4")
    outcome: list[BaseException] = []

    def convert() -> None:
        try:
            converter.convert(media.video(seconds=1), job, stage, lambda *a: None, threading.Event())
        except BaseException as exc:
            outcome.append(exc)
    threading.Thread(target=convert, daemon=True).start()
    pids = fake_processes(tmp_path)
    proc = converter._proc
    assert proc is not None
    proc.stdin.close()  # what the worker sees when the server is killed
    assert proc.wait(15) == 0
    assert_all_stopped(pids)
    assert isinstance(wait_for(lambda: outcome, timeout=10)[0], OSError | ValueError)  # its pipe closed


def test_with_no_local_workers_nothing_is_converted_on_this_mac(media, services, imports):
    media.copy_into(media.image("waits.jpg"), imports)
    pipeline = Pipeline(services, local_workers=0)
    pipeline.start()
    try:
        job_id = wait_for(lambda: [j.id for j in services.queue.snapshot()], timeout=10)[0]
        time.sleep(1.0)
        assert services.queue.get(job_id).status == "queued" and pipeline.workers.worker_pids() == []
    finally:
        pipeline.stop()


def key(purpose: str) -> NewDataKey:
    return NewDataKey(os.urandom(8).hex(), purpose, os.urandom(16), os.urandom(16).hex())


def assignment(name: str) -> Assignment:
    return Assignment(job_id="job", media_id="m" * 32, original_name=name, sha256="ab" * 32, size=10,
                      keep_original=False, file_key=key("file"), hls_key=key("hls"))


def photo_result(job: Assignment, **changes) -> dict:
    result = {"media_id": job.media_id, "media_type": "image", "original_name": job.original_name,
              "sha256": job.sha256, "size": job.size, "mime_type": "image/webp", "source_format": "JPEG",
              "width": 64, "height": 48, "key_ids": [job.file_key.id], "has_original": False}
    return {**result, **changes}


def test_a_workers_result_becomes_an_item_with_the_jobs_own_keys(tmp_path):
    job = assignment("a.jpg")
    staged = ConvertedItem.parse(photo_result(job)).staged(tmp_path, job)
    assert (staged.keys, staged.staging_dir, staged.media_id) == ((job.file_key,), tmp_path, job.media_id)


@pytest.mark.parametrize("changes", [
    {"media_id": "f" * 32}, {"sha256": "cd" * 32}, {"size": 11}, {"original_name": "other.jpg"},
    {"key_ids": ["a key the server never made"]}, {"has_original": True},
    {"media_type": "video"}, {"media_type": "../../etc"}, {"width": -1}, {"extra": "field"},
    {"renditions": [{"name": "../x", "width": 1, "height": 1, "bandwidth": 1, "codecs": "", "segments": 1}]},
])
def test_a_result_that_is_not_its_jobs_or_is_malformed_is_refused(tmp_path, changes):
    job = assignment("a.jpg")
    with pytest.raises(WireError):
        ConvertedItem.parse(photo_result(job, **changes)).staged(tmp_path, job)


def alive() -> list[str]:
    return sorted(t.name for t in threading.enumerate() if t.name.startswith("vault-worker-"))


def test_a_new_number_of_local_workers_applies_without_a_restart(services):
    pipeline = Pipeline(services)
    services.settings.update(local_workers=1)
    pipeline.workers.start()
    try:
        assert wait_for(lambda: alive() == ["vault-worker-0"], timeout=5)
        services.settings.update(local_workers=3)
        pipeline.workers.resize()
        assert wait_for(lambda: alive() == ["vault-worker-0", "vault-worker-1", "vault-worker-2"], timeout=5)
        services.settings.update(local_workers=0)
        pipeline.workers.resize()
        assert wait_for(lambda: alive() == [], timeout=15)
    finally:
        pipeline.workers.stop()
