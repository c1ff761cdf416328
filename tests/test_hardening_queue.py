"""A file that takes Vault down with it is not retried forever: after `max_attempts` starts it is quarantined
without being run again. A shutdown on purpose does not use up an attempt."""

from __future__ import annotations

import json

from vaultserver.pipeline import Pipeline
from vaultserver.pipeline.import_files import SIDECAR_SUFFIX
from vaultserver.pipeline.watcher import ImportWatcher
from vaultserver.pipeline.workers import WorkerPool


def queue_one(services, folder) -> str:
    watcher = ImportWatcher(services.settings, services.queue)
    watcher.scan(folder)
    watcher.check_stable(folder, 0.0)
    watcher.check_stable(folder, 0.0)
    (job,) = services.queue.snapshot()
    return job.id


def crash_during(services, times: int) -> None:
    """What a crash of the whole process leaves behind, then a restart: the job was 'processing'."""
    for _ in range(times):
        assert services.queue.claim() is not None
        services.queue.recover_interrupted()


def test_a_job_under_way_at_every_crash_is_never_run_again_and_ends_in_failed_with_a_reason(
        media, imports, services, monkeypatch):
    source = media.copy_into(media.image("a.jpg"), imports, "kills vault.jpg")
    job_id = queue_one(services, imports)
    limit = services.settings.current.max_attempts
    crash_during(services, limit)
    assert services.queue.get(job_id).attempts == limit
    assert services.queue.claim(limit) is None

    runs = []
    monkeypatch.setattr(WorkerPool, "process", lambda self, *args, **kw: runs.append(args))
    assert Pipeline(services).process_once(timeout=60)

    assert runs == []
    job = services.queue.get(job_id)
    assert job.status == "failed" and job.attempts == limit
    assert f"Vault stopped {limit} times" in job.error
    assert not source.exists()
    assert (services.paths.failed / "kills vault.jpg").read_bytes() == media.image("a.jpg").read_bytes()
    sidecar = json.loads((services.paths.failed / f"kills vault.jpg{SIDECAR_SUFFIX}").read_text())
    assert sidecar["attempts"] == limit and f"Vault stopped {limit} times" in sidecar["reason"]
    (audited,) = services.audit.recent(event="ingest_failed")
    assert audited.resource == "kills vault.jpg" and audited.details["attempts"] == limit


def test_a_job_past_the_limit_from_an_older_version_is_quarantined_too(media, imports, services, monkeypatch):
    media.copy_into(media.image("a.jpg"), imports, "seven.jpg")
    job_id = queue_one(services, imports)
    crash_during(services, 7)
    monkeypatch.setattr(WorkerPool, "process", lambda *a, **kw: (_ for _ in ()).throw(AssertionError("ran")))
    assert Pipeline(services).process_once(timeout=60)
    job = services.queue.get(job_id)
    assert (job.status, job.attempts) == ("failed", 7)


def test_a_job_with_attempts_left_after_a_crash_is_run_again(media, imports, services, run_pipeline):
    media.copy_into(media.image("a.jpg"), imports, "unlucky once.jpg")
    job_id = queue_one(services, imports)
    crash_during(services, services.settings.current.max_attempts - 1)
    run_pipeline()
    assert services.queue.get(job_id).status == "done"
    (item,) = services.library.all_items()
    assert item.original_name == "unlucky once.jpg"


def test_a_job_stopped_by_a_shutdown_keeps_its_attempt(services):
    job_id = services.queue.enqueue(services.paths.root / "x.jpg", services.paths.root, 1, 0.0)
    lease = services.queue.claim().lease
    services.queue.put_back(job_id, token=lease.token)
    job = services.queue.get(job_id)
    assert (job.status, job.attempts) == ("queued", 0)
    assert services.queue.claim(1).id == job_id
