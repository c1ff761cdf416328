"""The running service: the watch folder, stability before taking a file, pause/resume, job events, importing
files, visible progress: all through the runtime, the one door the GUI and the CLI use."""

from __future__ import annotations

import time

import pytest

from tests.conftest import wait_for
from vaultserver.runtime import VaultRuntime


@pytest.fixture
def runtime(paths, services):
    services.settings.update(stable_seconds=0.8, rescan_seconds=3600)  # events, not rescans, must do it
    runtime = VaultRuntime(paths, services)
    runtime.start(serve=False)
    yield runtime
    runtime.stop()


def test_a_photo_dropped_in_while_running_appears_in_the_library(runtime, media, services):
    media.copy_into(media.image("live.jpg"), services.settings.current.import_path(services.paths))
    item = wait_for(lambda: services.library.all_items())[0]
    assert item.original_name == "live.jpg"


def test_a_file_still_being_copied_is_not_taken_until_it_stops_changing(runtime, media, services):
    data = media.image("slow.jpg", size=(1600, 1200)).read_bytes()
    target = services.settings.current.import_path(services.paths) / "slow.jpg"
    with open(target, "wb") as fh:
        for start in range(0, len(data), len(data) // 8):
            fh.write(data[start:start + len(data) // 8])
            fh.flush()
            time.sleep(0.3)
            assert services.queue.counts().queued + services.queue.counts().processing == 0
    wait_for(lambda: services.library.all_items())
    assert list(services.paths.failed.iterdir()) == []


def test_pause_holds_imports_and_resume_converts_them_with_one_event_each(runtime, media, services):
    events: list[tuple[str, str]] = []
    unsubscribe = runtime.on_job_event(lambda event, job: events.append((event, job.original_name)))
    runtime.pause()
    assert runtime.paused and runtime.health().paused
    photo = media.image("held.jpg")
    copied = runtime.import_files([photo])
    assert copied == [runtime.import_folder / "held.jpg"] and photo.exists()  # the owner's file stays put
    wait_for(lambda: services.queue.counts().queued == 1)
    time.sleep(0.5)
    assert services.queue.counts().processing == 0 and services.library.all_items() == []
    runtime.resume()
    assert not runtime.health().paused
    wait_for(lambda: events == [("done", "held.jpg")])
    unsubscribe()
    runtime.import_files([media.image("unheard.jpg", size=(320, 240))])
    wait_for(lambda: len(services.library.all_items()) == 2)
    assert events == [("done", "held.jpg")]


def test_importing_a_name_already_waiting_keeps_both(runtime, media):
    runtime.pause()
    photo = media.image("twice.jpg")
    first, second = runtime.import_files([photo]), runtime.import_files([photo])
    assert [p.name for p in first + second] == ["twice.jpg", "twice (1).jpg"]
    assert all(p.read_bytes() == photo.read_bytes() for p in first + second)
    assert not list(runtime.import_folder.glob(".*.part"))


@pytest.mark.slow
def test_progress_is_visible_and_pause_holds_work(runtime, media, services):
    runtime.pause()
    imports = services.settings.current.import_path(services.paths)
    media.copy_into(media.video(seconds=12, size="854x480"), imports, "progress.mp4")
    wait_for(lambda: services.queue.counts().queued == 1)
    time.sleep(0.5)
    assert services.queue.counts().processing == 0
    seen = set()
    runtime.resume()

    def finished():
        for job in services.queue.snapshot():
            seen.add((job.stage, round(job.progress, 1)))
        return services.queue.counts().done == 1
    wait_for(finished, timeout=120, interval=0.02)
    finished()  # one more look: the job may have finished between the last snapshot and the count
    transcoding = sorted(p for stage, p in seen if stage == "transcoding")
    assert len(transcoding) >= 2 and 0 < transcoding[-1] <= 1
    assert "done" in {stage for stage, _ in seen}


def test_a_full_disk_shows_in_health_and_the_apps_status_line(runtime, media, services, monkeypatch):
    import shutil
    from types import SimpleNamespace

    from gui.controller import Status

    monkeypatch.setattr(shutil, "disk_usage", lambda _path: SimpleNamespace(free=10 * 1000 ** 2))
    media.copy_into(media.image("full.jpg"), services.settings.current.import_path(services.paths))
    waiting = wait_for(lambda: runtime.health().waiting)
    assert waiting.startswith("Waiting for free disk space: need ") and "have 10.0 MB" in waiting
    assert services.library.all_items() == []
    status = Status(state="processing", server=True, waiting=waiting)
    assert status.summary == waiting  # the tray and the Dashboard say why nothing is converting
