"""ffmpeg only ever reads the one import file it is given, and never runs unbounded.

A playlist or concat list in the import folder is refused as not media instead of pulling other files into the
library. Every ffmpeg run has a time bound; when it is passed, or the run stops making progress, or Vault
cancels it, the whole process group is stopped (SIGTERM, a short grace, then SIGKILL), even an ffmpeg that
ignores SIGTERM and has children of its own. The hung ffmpeg here is a stand-in script, given small bounds.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import wait_for
from vaultserver.ffmpeg import FfmpegLimits, FfmpegTimeout
from vaultserver.pipeline import Pipeline
from vaultserver.pipeline.convert import KEY_DIR
from vaultserver.pipeline.import_files import SIDECAR_SUFFIX
from vaultserver.pipeline.probe import probe
from vaultserver.pipeline.transcode import transcode
from vaultserver.pipeline.watcher import ImportWatcher
from vaultserver.pipeline.workers import WorkerPool

FAKE_FFMPEG = """#!{python}
# Probing is done by the real ffmpeg; a conversion run hangs the way a stuck ffmpeg does.
import os, signal, subprocess, sys, time
args = sys.argv[1:]
if "-progress" not in args and {probe_too!r} is False:
    os.execv({real!r}, [{real!r}, *args])
signal.signal(signal.SIGTERM, signal.SIG_IGN)  # inherited by the child below
child = subprocess.Popen(["sleep", "300"])
with open({pids!r}, "w") as fh:
    fh.write(f"{{os.getpid()}} {{child.pid}}")
progress = None
if "-progress" in args:
    progress = os.fdopen(int(args[args.index("-progress") + 1].split(":")[1]), "w")
for tick in range(1, 100000):
    if progress and ({mode!r} == "advancing" or tick <= 3):
        progress.write(f"frame={{tick}}\\nout_time_us={{tick * 40000}}\\nprogress=continue\\n")
        progress.flush()
    time.sleep(0.1)
"""


def fake_ffmpeg(tmp_path: Path, real: str, mode: str = "stalls", probe_too: bool = False) -> Path:
    script = tmp_path / "fake-ffmpeg"
    script.write_text(FAKE_FFMPEG.format(python=sys.executable, real=real, pids=str(tmp_path / "pids"),
                                         mode=mode, probe_too=probe_too))
    script.chmod(0o755)
    return script


def fake_processes(tmp_path: Path) -> list[int]:
    return [int(p) for p in wait_for(lambda: (tmp_path / "pids").exists() and
                                     (tmp_path / "pids").read_text()).split()]


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def assert_all_stopped(pids: list[int]) -> None:
    wait_for(lambda: not any(alive(pid) for pid in pids), timeout=5)


SMALL = FfmpegLimits(probe_seconds=1.0, transcode_min_seconds=30.0, transcode_per_media_second=1.0,
                     stall_seconds=1.5, grace_seconds=0.5)


# --- input restrictions ---------------------------------------------------------------------------------


def queue_all(services, folder: Path) -> None:
    watcher = ImportWatcher(services.settings, services.queue)
    watcher.scan(folder)
    watcher.check_stable(folder, 0.0)
    watcher.check_stable(folder, 0.0)


def test_a_playlist_that_points_outside_the_import_folder_is_quarantined_and_adds_nothing(
        media, services, imports, tmp_path):
    outside = media.copy_into(media.video(seconds=2, size="320x240", fmt="mpegts"), tmp_path / "elsewhere",
                              "private.ts")
    (imports / "holiday.m3u8").write_text(
        f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:2,\n{outside}\n#EXT-X-ENDLIST\n")

    assert Pipeline(services).process_once(timeout=120)

    assert services.library.all_items() == []
    (job,) = services.queue.snapshot()
    assert job.status == "failed" and "Not a photo or video" in job.error
    assert (services.paths.failed / "holiday.m3u8").is_file()
    sidecar = json.loads((services.paths.failed / f"holiday.m3u8{SIDECAR_SUFFIX}").read_text())
    assert "Not a photo or video" in sidecar["reason"]
    assert outside.read_bytes() == media.video(seconds=2, size="320x240", fmt="mpegts").read_bytes()


def test_a_concat_list_is_refused_as_not_media_while_the_real_video_beside_it_is_imported(
        media, services, imports):
    media.copy_into(media.video(seconds=2, size="320x240"), imports / "trip", "clip.mp4")
    (imports / "trip" / "both.ffconcat").write_text("ffconcat version 1.0\nfile clip.mp4\nfile clip.mp4\n")

    assert Pipeline(services).process_once(timeout=120)

    (item,) = services.library.all_items()
    assert item.original_name == "clip.mp4"
    failed = {job.original_name: job for job in services.queue.snapshot() if job.status == "failed"}
    assert set(failed) == {"both.ffconcat"} and "Not a photo or video" in failed["both.ffconcat"].error


@pytest.mark.parametrize("fmt, codec, audio", [
    ("mp4", "libx264", True), ("mov", "libx264", True), ("mkv", "libx264", True),
    ("webm", "libvpx-vp9", True), ("avi", "mpeg4", True), ("mpegts", "libx264", True),
    ("mpeg", "mpeg2video", False), ("flv", "libx264", True), ("asf", "wmv2", False),
    ("ogg", "libtheora", False),
])
def test_every_real_container_still_probes_through_the_restricted_input(media, ffmpeg_bin, fmt, codec, audio):
    info = probe(ffmpeg_bin, media.video(seconds=1, size="320x240", fmt=fmt, codec=codec, audio=audio))
    assert info.video.width == 320 and info.duration > 0 and info.has_audio == audio


# --- bounds and process groups ------------------------------------------------------------------------


def test_a_probe_that_hangs_and_ignores_sigterm_is_killed_with_its_children_within_its_bound(
        media, ffmpeg_bin, tmp_path):
    fake = fake_ffmpeg(tmp_path, ffmpeg_bin, probe_too=True)
    started = time.monotonic()
    with pytest.raises(FfmpegTimeout) as raised:
        probe(str(fake), media.video(seconds=1, size="320x240"), limits=SMALL)
    assert time.monotonic() - started < SMALL.probe_seconds + SMALL.grace_seconds + 3
    assert "probe" in raised.value.message
    assert_all_stopped(fake_processes(tmp_path))


def run_fake_transcode(media, ffmpeg_bin, tmp_path, mode, limits, cancel=None):
    source = media.video(seconds=1, size="320x240")
    info = probe(ffmpeg_bin, source)
    key_info = tmp_path / "key.info"
    key_info.write_text("unused\n")
    return transcode(str(fake_ffmpeg(tmp_path, ffmpeg_bin, mode)), source, tmp_path / "out", key_info, info,
                     cancel=cancel, limits=limits)


def test_a_transcode_that_stops_making_progress_is_killed_after_the_stall_bound(media, ffmpeg_bin, tmp_path):
    started = time.monotonic()
    with pytest.raises(FfmpegTimeout) as raised:
        run_fake_transcode(media, ffmpeg_bin, tmp_path, "stalls", SMALL)
    assert time.monotonic() - started < SMALL.stall_seconds + SMALL.grace_seconds + 4
    assert "no progress" in raised.value.message
    assert_all_stopped(fake_processes(tmp_path))


def test_a_transcode_that_keeps_going_is_killed_at_its_overall_bound(media, ffmpeg_bin, tmp_path):
    limits = FfmpegLimits(transcode_min_seconds=2.0, transcode_per_media_second=1.0, stall_seconds=60.0,
                          grace_seconds=0.5)
    started = time.monotonic()
    with pytest.raises(FfmpegTimeout) as raised:
        run_fake_transcode(media, ffmpeg_bin, tmp_path, "advancing", limits)
    assert 2.0 <= time.monotonic() - started < 2.0 + limits.grace_seconds + 4
    assert "longer than" in raised.value.message
    assert_all_stopped(fake_processes(tmp_path))


def test_cancelling_a_silent_transcode_stops_it_at_once(media, ffmpeg_bin, tmp_path):
    cancel = threading.Event()
    threading.Timer(1.0, cancel.set).start()
    started = time.monotonic()
    limits = FfmpegLimits(stall_seconds=60.0, grace_seconds=0.5)
    with pytest.raises(InterruptedError):
        run_fake_transcode(media, ffmpeg_bin, tmp_path, "stalls", limits, cancel=cancel)
    assert time.monotonic() - started < 1.0 + limits.grace_seconds + 4
    assert_all_stopped(fake_processes(tmp_path))


def test_conversion_runs_at_background_priority_and_everything_it_starts_does_too(media, ffmpeg_bin,
                                                                                   tmp_path):
    cancel = threading.Event()
    seen: list[list[int]] = []

    def look_then_cancel() -> None:
        pids = fake_processes(tmp_path)
        seen.append([os.getpriority(os.PRIO_PROCESS, pid) for pid in pids])
        cancel.set()
    threading.Thread(target=look_then_cancel, daemon=True).start()
    with pytest.raises(InterruptedError):
        run_fake_transcode(media, ffmpeg_bin, tmp_path, "stalls", FfmpegLimits(stall_seconds=60.0),
                           cancel=cancel)
    assert seen == [[19, 19]]  # ffmpeg itself, and the child it started
    assert os.getpriority(os.PRIO_PROCESS, 0) < 19  # Vault's own process keeps its priority


def test_a_hung_conversion_fails_the_attempt_cleanly_and_the_job_waits_to_retry(
        media, ffmpeg_bin, services, imports, tmp_path):
    source = media.copy_into(media.video(seconds=1, size="320x240"), imports, "stuck.mp4")
    queue_all(services, imports)
    fake = fake_ffmpeg(tmp_path, ffmpeg_bin)
    pool = WorkerPool(services, lambda: str(fake), limits=SMALL)
    job = services.queue.claim()

    pool.process(job)
    pool.stop()

    after = services.queue.get(job.id)
    assert after.status == "queued" and after.stage == "waiting to retry" and after.attempts == 1
    assert "FfmpegTimeout" in after.error and "no progress" in after.error
    assert source.is_file() and services.library.all_items() == []
    assert list(services.paths.staging.iterdir()) == []
    assert not list((services.paths.private / KEY_DIR).iterdir())
    assert_all_stopped(fake_processes(tmp_path))
    assert os.listdir(services.paths.failed) == []
