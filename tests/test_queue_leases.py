"""A job being converted is leased: an owner, a secret token and an expiry its worker keeps renewing. A lapsed
lease puts the job back in line with its attempt counted; the worker that lost it can no longer change or
commit the job, so a job taken over is committed exactly once; a restart leaves live remote leases alone."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sqlmodel import select

from tests.conftest import wait_for
from tests.test_hardening_ffmpeg import SMALL, assert_all_stopped, fake_ffmpeg, fake_processes
from tests.test_hardening_queue import queue_one
from tests.test_pipeline_queue import staged_photo
from vaultserver.db.models import EncryptionKey, MediaFile, utcnow
from vaultserver.pipeline import Pipeline
from vaultserver.pipeline.convert import KEY_DIR
from vaultserver.pipeline.workers import WorkerPool
from vaultserver.services.jobs import LeaseLost
from vaultserver.services.queue import QueueService

SHORT = 0.5  # seconds a lease lasts in these tests


@pytest.fixture
def queue(services) -> QueueService:
    services.queue.lease_seconds = SHORT
    return services.queue


def waiting_job(services, name: str = "x.jpg") -> str:
    return services.queue.enqueue(services.paths.root / name, services.paths.root, 21, 0.0)


def lapse() -> None:
    time.sleep(SHORT + 0.1)


def rows_of(services, model) -> list:
    with services.db.session() as session:
        return list(session.exec(select(model)).all())


def test_a_claimed_job_is_leased_to_its_worker_with_a_secret_token_and_an_expiry(services, queue):
    job_id = waiting_job(services)
    job = queue.claim(owner="remote:laptop")
    assert (job.id, job.status, job.lease.job_id, job.lease.owner) == (job_id, "processing", job_id,
                                                                        "remote:laptop")
    assert len(job.lease.token) >= 32
    assert timedelta(0) < job.lease.expires_at - utcnow() <= timedelta(seconds=SHORT)
    assert queue.get(job_id).lease == job.lease
    assert "lease" not in job.to_dict() and job.lease.token not in str(job.to_dict())


def test_a_local_worker_is_named_by_its_process_and_thread(services, queue):
    waiting_job(services)
    owner = queue.claim().lease.owner
    assert owner.startswith("local:") and owner.endswith(f":{threading.current_thread().name}")


def test_a_heartbeat_renews_the_lease_and_keeps_the_job_from_anyone_else(services, queue):
    job_id = waiting_job(services)
    lease = queue.claim(owner="remote:laptop").lease
    for _ in range(4):
        time.sleep(SHORT / 3)
        expires = queue.heartbeat(job_id, lease.token)
    assert expires > lease.expires_at and queue.get(job_id).lease.expires_at == expires
    assert queue.claim(owner="remote:desktop") is None
    assert queue.get(job_id).lease.owner == "remote:laptop"


def test_a_lapsed_lease_goes_to_another_worker_and_the_first_is_refused_with_409(services, queue):
    job_id = waiting_job(services)
    first = queue.claim(owner="remote:laptop").lease
    lapse()
    second = queue.claim(owner="remote:desktop")
    assert (second.id, second.attempts, second.lease.owner) == (job_id, 2, "remote:desktop")
    assert second.lease.token != first.token

    refused = [lambda: queue.heartbeat(job_id, first.token),
               lambda: queue.report(job_id, "transcoding", 0.5, token=first.token),
               lambda: queue.set_hash(job_id, "ab" * 32, token=first.token),
               lambda: queue.finish(job_id, "failed", error="from the past", token=first.token),
               lambda: queue.retry_later(job_id, "from the past", 1.0, token=first.token),
               lambda: queue.put_back(job_id, token=first.token)]
    for write in refused:
        with pytest.raises(LeaseLost) as caught:
            write()
        assert (caught.value.status, caught.value.code) == (409, "MEDIA_003")
    job = queue.get(job_id)
    assert (job.status, job.stage, job.attempts, job.error) == ("processing", "starting", 2, None)
    assert job.lease == second.lease


def test_a_lapsed_lease_is_refused_even_before_anyone_takes_the_job(services, queue):
    job_id = waiting_job(services)
    lease = queue.claim(owner="remote:laptop").lease
    lapse()
    with pytest.raises(LeaseLost):
        queue.heartbeat(job_id, lease.token)
    with pytest.raises(LeaseLost):
        queue.heartbeat(job_id, "a guessed token")


def test_a_commit_with_a_stale_token_leaves_nothing_and_the_new_holder_commits_once(services, queue):
    job_id = waiting_job(services)
    stale = queue.claim(owner="remote:laptop").lease
    lapse()
    live = queue.claim(owner="remote:desktop").lease

    late = staged_photo(services, "late.jpg")
    with pytest.raises(LeaseLost):
        services.library.commit(late, stale)
    assert rows_of(services, MediaFile) == [] and rows_of(services, EncryptionKey) == []
    assert services.audit.recent(event="media_added") == []
    assert not services.library.item_dir(late.media_id).exists() and not late.staging_dir.exists()
    assert queue.get(job_id).status == "processing"

    item = services.library.commit(staged_photo(services, "on time.jpg"), live)
    with pytest.raises(LeaseLost):  # and no second time, not even by the holder
        services.library.commit(staged_photo(services, "again.jpg"), live)
    job = queue.get(job_id)
    assert (job.status, job.media_id, job.lease) == ("done", item.id, None)
    assert [row.id for row in rows_of(services, MediaFile)] == [item.id]
    assert {key.media_id for key in rows_of(services, EncryptionKey)} == {item.id}
    assert [entry.resource for entry in services.audit.recent(event="media_added")] == [item.id]


def test_a_worker_that_stops_renewing_loses_its_job_after_the_lease_with_the_attempt_counted(
        media, imports, services, queue, run_pipeline):
    media.copy_into(media.image("a.jpg"), imports, "killed once.jpg")
    job_id = queue_one(services, imports)
    queue.lease_seconds = 2.0  # long enough for the renewals of a busy machine to land
    assert queue.claim(owner="remote:killed").attempts == 1  # then killed: no heartbeat ever comes
    run_pipeline()
    job = queue.get(job_id)
    assert (job.status, job.attempts) == ("done", 2)
    (item,) = services.library.all_items()
    assert item.original_name == "killed once.jpg"


def test_a_file_whose_workers_keep_dying_ends_in_failed_after_max_attempts(media, imports, services, queue,
                                                                            run_pipeline):
    media.copy_into(media.image("a.jpg"), imports, "poison.jpg")
    job_id = queue_one(services, imports)
    limit = services.settings.current.max_attempts
    for _ in range(limit):
        assert queue.claim(limit, owner="remote:dies") is not None
        lapse()
    assert queue.claim(limit) is None
    run_pipeline()
    job = queue.get(job_id)
    assert (job.status, job.attempts) == ("failed", limit)
    assert (services.paths.failed / "poison.jpg").is_file() and services.library.all_items() == []


def test_a_restart_keeps_a_live_remote_lease_and_frees_jobs_of_local_workers_at_once(services, queue):
    remote_id, local_id = waiting_job(services, "remote.jpg"), waiting_job(services, "local.jpg")
    remote = queue.claim(owner="remote:laptop").lease
    assert queue.claim(owner="local:4242:vault-worker-0").id == local_id

    restarted = QueueService(services.db)
    released = restarted.recover_interrupted()

    assert [job.id for job in released] == [local_id]
    local = restarted.get(local_id)
    assert (local.status, local.stage, local.attempts, local.lease) == ("queued", "interrupted", 1, None)
    still = restarted.get(remote_id)
    assert (still.status, still.lease) == ("processing", remote)
    assert restarted.heartbeat(remote_id, remote.token) > remote.expires_at


def test_a_worker_that_loses_its_lease_mid_video_stops_ffmpeg_and_discards_its_output(
        media, ffmpeg_bin, imports, services, queue, tmp_path, monkeypatch):
    source = media.copy_into(media.video(seconds=1, size="320x240"), imports, "long.mp4")
    job_id = queue_one(services, imports)
    pool = WorkerPool(services, lambda: str(fake_ffmpeg(tmp_path, ffmpeg_bin, "advancing")), limits=SMALL)
    queue.lease_seconds = 4.0  # time for the worker process to start and reach ffmpeg
    job = queue.claim()
    monkeypatch.setattr(queue, "heartbeat", lambda *args: None)  # this Mac sleeps: its renewals never land
    outcome: list[BaseException | None] = []

    def work() -> None:
        try:
            pool.process(job)
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=work)
    worker.start()
    pids = fake_processes(tmp_path)
    wait_for(lambda: queue.get(job_id).stage == "transcoding", timeout=10)
    taken = wait_for(lambda: queue.claim(owner="remote:desktop"), timeout=10)
    worker.join(10)
    pool.stop()

    assert not worker.is_alive() and isinstance(outcome[0], LeaseLost)
    assert_all_stopped(pids)
    assert list(services.paths.staging.iterdir()) == []
    assert not list((services.paths.private / KEY_DIR).iterdir())
    after = queue.get(job_id)
    assert (after.status, after.lease, after.attempts) == ("processing", taken.lease, 2)
    assert source.is_file() and services.library.all_items() == []


def test_a_pipeline_start_with_a_live_remote_lease_waits_for_it_and_does_not_run_it(services, imports, media):
    media.copy_into(media.image("a.jpg"), imports, "remote.jpg")
    job_id = queue_one(services, imports)
    lease = services.queue.claim(owner="remote:laptop").lease  # the default, long lease
    Pipeline(services).recover()
    assert services.queue.get(job_id).lease == lease
    assert services.queue.claim() is None
