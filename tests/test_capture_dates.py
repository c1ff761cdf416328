"""Videos are filed under the day they were filmed: their capture date comes from the file's own metadata
(`creation_time`, or Apple's `com.apple.quicktime.creationdate` with its offset, which wins), read from the
bundled ffmpeg's input report, and travels with the item from the moment it is listed as converting. Files
are made by the real ffmpeg with the tags a camera or phone writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from vaultserver.pipeline.convert import VideoPlanned
from vaultserver.pipeline.probe import parse_probe, probe
from vaultserver.services.events import ITEM_CONVERTING

FILMED_UTC = datetime(2023, 5, 6, 7, 8, 9, tzinfo=UTC)
APPLE_LOCAL = datetime(2024, 7, 4, 18, 30, tzinfo=timezone(timedelta(hours=2)))
SMALL = {"seconds": 1, "size": "160x120", "audio": False, "rate": 10}


@pytest.fixture(scope="module")
def camera_clip(media):
    """An mp4 stamped as a camera stamps it: `creation_time` in UTC."""
    return media.video(**SMALL, extra=("-metadata", "creation_time=2023-05-06T07:08:09Z"))


@pytest.fixture(scope="module")
def iphone_clip(media):
    """A .mov as an iPhone writes it: Apple's local date with its offset, and a UTC creation_time that
    disagrees by a minute (so the test sees which one won)."""
    return media.video(**SMALL, fmt="mov", extra=(
        "-movflags", "use_metadata_tags",
        "-metadata", "com.apple.quicktime.creationdate=2024-07-04T18:30:00+0200",
        "-metadata", "creation_time=2024-07-04T16:31:00Z"))


def test_a_cameras_creation_time_is_when_the_video_was_filmed(ffmpeg_bin, camera_clip):
    assert probe(ffmpeg_bin, camera_clip).taken_at == FILMED_UTC


def test_apples_creation_date_wins_and_keeps_its_offset(ffmpeg_bin, iphone_clip):
    taken = probe(ffmpeg_bin, iphone_clip).taken_at
    assert taken == APPLE_LOCAL
    assert taken is not None and taken.utcoffset() == timedelta(hours=2)


def test_a_video_that_says_nothing_has_no_capture_date(ffmpeg_bin, media):
    assert probe(ffmpeg_bin, media.video(**SMALL)).taken_at is None


def test_a_zero_or_garbled_date_is_no_date(ffmpeg_bin, camera_clip):
    from vaultserver.ffmpeg import run_bounded

    report = run_bounded([ffmpeg_bin, "-hide_banner", "-nostdin", "-i", str(camera_clip)], 30, 1,
                         "probe").stderr
    for written in ("1970-01-01T00:00:00.000000Z", "1904-01-01T00:00:00.000000Z", "yesterday"):
        assert parse_probe(report.replace("2023-05-06T07:08:09.000000Z", written)).taken_at is None


def test_the_plan_a_converting_video_is_listed_from_carries_the_date(ffmpeg_bin, iphone_clip):
    plan = VideoPlanned.of(probe(ffmpeg_bin, iphone_clip))
    assert VideoPlanned.parse(plan.model_dump(mode="json")).taken_at == APPLE_LOCAL  # as a worker sends it


def test_imported_videos_are_dated_from_the_start_and_sort_among_that_days_photos(
        services, imports, run_pipeline, media, camera_clip, iphone_clip, monkeypatch):
    told = []
    monkeypatch.setattr(services.events, "publish", told.append)
    media.copy_into(camera_clip, imports, "camera.mp4")
    media.copy_into(iphone_clip, imports, "iphone.mov")
    media.copy_into(media.video(**SMALL), imports, "undated.mp4")
    imported_at = datetime.now(UTC)
    run_pipeline()

    items = {item.original_name: item for item in services.library.all_items()}
    assert items["camera.mp4"].taken_at == FILMED_UTC
    assert items["iphone.mov"].taken_at == APPLE_LOCAL
    assert items["undated.mp4"].taken_at is None  # shown and sorted by when it was imported, as before
    assert items["undated.mp4"].created_at >= imported_at - timedelta(seconds=5)
    listed = {event.data["item"]["original_name"]: event.data["item"]["taken_at"] for event in told
              if event.kind == ITEM_CONVERTING and "item" in event.data}
    assert datetime.fromisoformat(listed["iphone.mov"]) == APPLE_LOCAL  # while it still converts
    assert listed["undated.mp4"] is None

    page = services.library.list(sort="taken_at", order="asc")
    assert [item.original_name for item in page.items] == ["camera.mp4", "iphone.mov", "undated.mp4"]
