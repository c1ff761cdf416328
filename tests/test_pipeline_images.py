"""Photos in every common format become oriented, bounded WebP with a thumbnail; private EXIF is dropped."""

from __future__ import annotations

import io
import time
from datetime import UTC, datetime

import pytest
from PIL import Image

from vaultserver.pipeline import images
from vaultserver.services.items import IMAGE_FILE, THUMB_FILE


def ingest(media, imports, run_pipeline, services, source, name=None):
    media.copy_into(source, imports, name)
    run_pipeline()
    items = services.library.all_items()
    assert len(items) == 1, services.queue.snapshot()
    return items[0], Image.open(io.BytesIO(services.library.read(items[0].id, IMAGE_FILE)))


def exif_jpeg(path, orientation=1, size=(400, 200)):
    im = Image.new("RGB", size, "orange")
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "Canon"
    exif[0x0110] = "EOS R6"
    exif.get_ifd(0x8769)[0x9003] = "2021:07:04 18:30:00"
    exif.get_ifd(0x8825)[2] = (48.0, 51.0, 30.0)  # GPS latitude: must never reach a viewer
    im.save(path, "JPEG", exif=exif)
    return path


@pytest.mark.parametrize("name,kwargs", [
    ("photo.jpg", {}), ("photo.png", {}), ("photo.webp", {}), ("photo.tiff", {}), ("photo.bmp", {}),
    ("alpha.png", {"mode": "RGBA"}), ("cmyk.jpg", {"mode": "CMYK"}), ("grey16.png", {"mode": "I;16"}),
    ("palette.gif", {"mode": "P"}), ("photo.heic", {"fmt": "HEIF"}),
])
def test_common_formats_become_webp_with_a_thumbnail(name, kwargs, media, imports, run_pipeline, services):
    item, picture = ingest(media, imports, run_pipeline, services, media.image(name, **kwargs))
    assert picture.format == "WEBP" and picture.size == (640, 480) == (item.width, item.height)
    assert item.type == "image" and item.mime_type == "image/webp"
    thumb = Image.open(io.BytesIO(services.library.read(item.id, THUMB_FILE)))
    assert thumb.format == "WEBP" and max(thumb.size) == 300
    if kwargs.get("mode") == "RGBA":
        assert picture.mode == "RGBA"
    if kwargs.get("mode") == "I;16":  # scaled to 8 bits, not clipped to white
        assert picture.convert("L").getextrema()[0] < 40


def test_exif_orientation_is_applied_and_metadata_kept_but_gps_stripped(media, imports, run_pipeline,
                                                                        services, tmp_path, monkeypatch):
    monkeypatch.setenv("TZ", "Europe/Paris")  # where the Mac is; the camera's clock gives no zone
    time.tzset()
    source = exif_jpeg(tmp_path / "rotated.jpg", orientation=6)
    try:
        item, picture = ingest(media, imports, run_pipeline, services, source)
    finally:
        monkeypatch.undo()
        time.tzset()
    assert picture.size == (200, 400) == (item.width, item.height)
    # 18:30 on the camera's clock is 18:30 in Paris (summer time, UTC+2): 16:30 UTC, shown as 18:30 there.
    assert item.taken_at == datetime(2021, 7, 4, 16, 30, tzinfo=UTC)
    assert (item.camera_make, item.camera_model) == ("Canon", "EOS R6")
    served = services.library.read(item.id, IMAGE_FILE)
    assert not picture.getexif() and b"GPS" not in served and b"Canon" not in served


def test_large_photos_fit_within_3840x2160_either_way_round(media, imports, run_pipeline, services):
    pano = media.image("pano.jpg", size=(12000, 2000))
    item, picture = ingest(media, imports, run_pipeline, services, pano)
    assert picture.size == (3840, 640)
    assert images._fit_box(3000, 4000, 3840, 2160) == (2160, 2880)  # portrait: short side <= 2160


def test_animated_gif_stays_animated(media, imports, run_pipeline, services):
    item, picture = ingest(media, imports, run_pipeline, services, media.animated_gif(frames=5))
    assert item.animated and picture.n_frames == 5


def test_content_decides_not_the_extension(media, imports, run_pipeline, services):
    item, picture = ingest(media, imports, run_pipeline, services, media.image("real.png"), "mislabeled.jpg")
    assert item.source_format == "PNG" and item.original_name == "mislabeled.jpg"
