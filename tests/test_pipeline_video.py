"""Videos of every awkward kind become a playable, encrypted HLS ladder with previews."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from tests.support import play_hls
from vaultserver import hls
from vaultserver.pipeline.transcode import plan_ladder
from vaultserver.services.items import HLS_DIR, MASTER_PLAYLIST, POSTER_FILE, PREVIEW_FILE, THUMB_FILE

pytestmark = pytest.mark.slow


def ingest_one(media, imports, run_pipeline, services, source, name=None):
    media.copy_into(source, imports, name)
    run_pipeline()
    items = services.library.all_items()
    assert len(items) == 1, services.queue.snapshot()
    return items[0]


def test_ladder_never_exceeds_the_source_and_always_has_a_rung():
    assert [r.name for r in plan_ladder(1920, 1080)] == ["1080p", "720p", "480p", "360p"]
    assert [(r.width, r.height) for r in plan_ladder(1280, 720)] == [(1280, 720), (854, 480), (640, 360)]
    assert [(r.width, r.height) for r in plan_ladder(1080, 1920)][0] == (1080, 1920)  # portrait: short side
    tiny = plan_ladder(175, 143)
    assert len(tiny) == 1 and tiny[0].width % 2 == 0 and tiny[0].height % 2 == 0


def test_video_with_audio_plays_back_fully_from_the_encrypted_ladder(media, imports, run_pipeline, services,
                                                                     tmp_path, ffmpeg_bin):
    item = ingest_one(media, imports, run_pipeline, services, media.video(seconds=4, size="1280x720"))
    assert item.type == "video" and item.duration == pytest.approx(4, abs=0.1)
    assert (item.width, item.height) == (1280, 720)
    master = services.library.read(item.id, MASTER_PLAYLIST).decode()
    variants = hls.variants(master)
    assert [v.resolution for v in variants] == [(1280, 720), (854, 480), (640, 360)]
    assert all(v.bandwidth > 0 and v.codecs and "avc1" in v.codecs and "mp4a" in v.codecs for v in variants)
    for rung in ("720p", "360p"):
        decoded = play_hls(services, item.id, tmp_path / rung, ffmpeg_bin, rung)
        assert decoded.frames == 100 and decoded.seconds == pytest.approx(4, abs=0.1)
        assert decoded.pix_fmt.startswith("yuv420p") and decoded.has_audio


def test_each_video_has_its_own_key_and_iv(media, imports, run_pipeline, services):
    media.copy_into(media.video(seconds=1), imports, "a.mp4")
    media.copy_into(media.video(seconds=1, rate=30), imports, "b.mp4")
    run_pipeline()
    keys = set()
    for item in services.library.all_items():
        text = services.library.read(item.id, f"{HLS_DIR}/{item.renditions[0]['name']}/index.m3u8.vlt")
        segs = hls.segments(text.decode())
        assert len({(s.key_id, s.iv) for s in segs}) == 1
        keys.add((segs[0].key_id, segs[0].iv))
    assert len(keys) == 2


def test_keyframes_are_aligned_across_rungs(media, imports, run_pipeline, services):
    item = ingest_one(media, imports, run_pipeline, services, media.video(seconds=25, size="854x480",
                                                                          audio=False))
    durations = []
    for rendition in item.renditions:
        text = services.library.read(item.id, f"{HLS_DIR}/{rendition['name']}/index.m3u8.vlt").decode()
        durations.append([round(s.duration, 2) for s in hls.segments(text)])
    assert len(durations) == 2 and durations[0] == durations[1]
    assert durations[0][0] == pytest.approx(10, abs=0.1) and len(durations[0]) == 3


@pytest.mark.parametrize("kind", ["rotated", "no_audio", "odd_size", "hdr_10bit", "vfr", "very_short",
                                  "mkv", "webm", "mov", "avi", "m4v"])
def test_awkward_sources_give_playable_8bit_results(kind, media, imports, run_pipeline, services, tmp_path,
                                                    ffmpeg_bin):
    source = {
        "rotated": lambda: media.rotated_video(90),
        "no_audio": lambda: media.video(seconds=2, audio=False),
        "odd_size": lambda: media.video(seconds=2, size="641x359"),
        "hdr_10bit": media.hdr_video,
        "vfr": media.vfr_video,
        "very_short": lambda: media.video(seconds=0.2, size="320x240"),
        "mkv": lambda: media.video(seconds=2, fmt="mkv"),
        "webm": lambda: media.video(seconds=2, fmt="webm", codec="libvpx-vp9"),
        "mov": lambda: media.video(seconds=2, fmt="mov"),
        "avi": lambda: media.video(seconds=2, fmt="avi", codec="mpeg4"),
        "m4v": lambda: media.video(seconds=2, fmt="m4v"),
    }[kind]()
    item = ingest_one(media, imports, run_pipeline, services, source)
    decoded = play_hls(services, item.id, tmp_path / "play", ffmpeg_bin)
    assert decoded.pix_fmt == "yuv420p" and decoded.frames >= 1
    assert decoded.width % 2 == 0 and decoded.height % 2 == 0
    if kind == "rotated":
        assert (item.width, item.height) == (360, 640) and decoded.height > decoded.width
    if kind == "no_audio":
        assert not decoded.has_audio
    if kind != "very_short":
        assert decoded.seconds == pytest.approx(item.duration, abs=0.5)


def test_thumbnail_preview_and_poster_are_webp_of_the_documented_sizes(media, imports, run_pipeline,
                                                                       services):
    item = ingest_one(media, imports, run_pipeline, services, media.video(seconds=8, size="1280x720"))
    thumb = Image.open(io.BytesIO(services.library.read(item.id, THUMB_FILE)))
    assert thumb.format == "WEBP" and thumb.width == 320 and thumb.n_frames == 30  # 3 s at 10 fps
    preview = Image.open(io.BytesIO(services.library.read(item.id, PREVIEW_FILE)))
    assert preview.format == "WEBP" and preview.width == 480 and 1 < preview.n_frames <= 20
    preview.seek(1)
    preview.load()
    assert preview.info["duration"] == 200  # 5 fps
    poster = Image.open(io.BytesIO(services.library.read(item.id, POSTER_FILE)))
    assert poster.format == "WEBP" and poster.size == (1280, 720)
