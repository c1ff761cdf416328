"""Photos to web-ready WebP in memory: orientation applied, colour made display-ready, metadata read.

Everything stays in memory (the caller encrypts it), so no plaintext derivative reaches the disk. Large
JPEGs are decoded at reduced scale (`draft`) when they will be shrunk anyway, keeping memory and time low.
Animations are bounded by frames x pixels before decoding and encoded one frame at a time. A memory ceiling
enforced by the OS needs conversion in a child process; until then these budgets are the bound.
"""

from __future__ import annotations

import io
import logging
import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from PIL import ExifTags, Image, ImageCms, ImageOps, UnidentifiedImageError

from vaultserver.errors import MediaError

log = logging.getLogger(__name__)

try:  # HEIC/HEIF from iPhones
    from pillow_heif import register_heif_opener

    register_heif_opener()
except ImportError:  # pragma: no cover - declared dependency; a missing wheel only loses HEIC support
    log.warning("pillow-heif is not available: HEIC/HEIF photos will be rejected")

MAX_SIZE = (3840, 2160)  # long side x short side
# Decoding work allowed for one animation, in source pixels x frames: e.g. 240 frames of 1080p, 60 of 4K.
MAX_ANIMATION_WORK = 500_000_000
ANIMATION_MEMORY = 256 * 1024 * 1024  # bytes: all output frames as RGBA (see animation_size)
THUMB_SIZE = 300
QUALITY, THUMB_QUALITY = 85, 75
_EXIF_IFD = 0x8769
_SRGB = ImageCms.createProfile("sRGB")


@dataclass(frozen=True)
class ImageResult:
    webp: bytes
    thumbnail: bytes
    width: int
    height: int
    animated: bool
    source_format: str
    taken_at: datetime | None
    camera_make: str | None
    camera_model: str | None


def is_image(path: Path) -> bool:
    """Sniff by content, not extension: a mislabeled file goes down the right path."""
    try:
        with Image.open(path) as im:
            return im.format is not None
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return False


def _fit_box(width: int, height: int, long_max: int, short_max: int) -> tuple[int, int]:
    scale = min(1.0, long_max / max(width, height), short_max / min(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _exif_text(value: object) -> str | None:
    if value is None:
        return None
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    text = text.strip("\x00 ").strip()
    return text or None


def _metadata(im: Image.Image) -> tuple[datetime | None, str | None, str | None]:
    exif = im.getexif()
    make, model = _exif_text(exif.get(ExifTags.Base.Make)), _exif_text(exif.get(ExifTags.Base.Model))
    exif_ifd = exif.get_ifd(_EXIF_IFD)
    raw = exif_ifd.get(ExifTags.Base.DateTimeOriginal) or exif.get(ExifTags.Base.DateTime)
    offset = _exif_text(exif_ifd.get(ExifTags.Base.OffsetTimeOriginal))
    taken = None
    if text := _exif_text(raw):
        try:
            if offset:
                taken = datetime.strptime(text[:19] + offset, "%Y:%m:%d %H:%M:%S%z")
            else:  # a camera without a zone was set to home time: read it in this Mac's zone
                taken = datetime.strptime(text[:19], "%Y:%m:%d %H:%M:%S").astimezone()
        except ValueError:
            log.debug("Unparseable EXIF date %r %r", text, offset)
    return taken, make, model


def _to_display_mode(im: Image.Image) -> Image.Image:
    """Convert any mode (CMYK, 16-bit, palette, LAB...) to RGB or RGBA, through the ICC profile if any."""
    icc = im.info.get("icc_profile")
    if im.mode == "CMYK" and icc:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            converted = ImageCms.profileToProfile(im, source, _SRGB, outputMode="RGB")
            if converted is not None:
                return converted
        except (ImageCms.PyCMSError, OSError):
            log.debug("Ignoring a broken CMYK ICC profile")
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        # 16-bit or float grey: scale to 8 bits instead of clipping to white.
        im = im.convert("I") if im.mode != "F" else im
        hi = im.getextrema()[1]  # one band: (low, high)
        hi = hi if isinstance(hi, int | float) else 0
        scale = 255.0 / hi if hi and hi > 255 else 1.0
        return im.point(lambda v: v * scale).convert("L").convert("RGB")
    has_alpha = im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info)
    return im.convert("RGBA" if has_alpha else "RGB")


def _encode(im: Image.Image, quality: int, icc: bytes | None) -> bytes:
    buffer = io.BytesIO()
    # method 2: measured at half the encode time of the default (4) for ~1 % larger files.
    im.save(buffer, "WEBP", quality=quality, method=2, icc_profile=icc or None)
    return buffer.getvalue()


def _thumbnail(im: Image.Image) -> bytes:
    thumb = im.copy()
    thumb.thumbnail((THUMB_SIZE, THUMB_SIZE), Image.Resampling.LANCZOS, reducing_gap=2.0)
    return _encode(thumb, THUMB_QUALITY, None)


def animation_size(width: int, height: int, frames: int) -> tuple[int, int]:
    """The output frame size for an animation, or MediaError when decoding it is more work than allowed.

    Pillow composes every frame onto the full canvas, so a few KB of GIF (1x1 frames on a 4K canvas) can ask
    for frames x width x height of decoding: that product is what is bounded, before anything is decoded.
    The output is then shrunk until all its frames as RGBA would fit in ANIMATION_MEMORY, which bounds the
    encoder's work and the result's size whatever the frame count.
    """
    work = frames * width * height
    if work > MAX_ANIMATION_WORK:
        raise MediaError("The animation has too many frames for its size to convert safely",
                         details={"frames": frames, "width": width, "height": height,
                                  "pixels_x_frames": work, "limit": MAX_ANIMATION_WORK})
    fitted = _fit_box(width, height, *MAX_SIZE)
    per_frame = ANIMATION_MEMORY // (4 * frames)
    if fitted[0] * fitted[1] <= per_frame:
        return fitted
    scale = math.sqrt(per_frame / (fitted[0] * fitted[1]))
    return max(1, math.floor(fitted[0] * scale)), max(1, math.floor(fitted[1] * scale))


class _FittedFrames(Image.Image):
    """An animation seen through its fitted RGBA frames, each made only when the encoder seeks to it.

    The WebP encoder reads a multi-frame image frame by frame (`n_frames`, `seek`), so only the frame being
    encoded exists, never a list of all of them: memory does not grow with the frame count. Each frame's
    duration is known only once it is decoded (WebP sources), so `durations` fills in as frames are read;
    the encoder reads a frame's duration after adding that frame.
    """

    def __init__(self, source: Image.Image, size: tuple[int, int]) -> None:
        super().__init__()
        self._source, self._fitted = source, size
        self.n_frames: int = getattr(source, "n_frames", 1)
        self.durations: list[int] = []
        self._current = -1
        self.seek(0)

    def seek(self, frame: int) -> None:
        if frame == self._current:
            return
        self._source.seek(frame)
        picture = self._source.convert("RGBA")
        if picture.size != self._fitted:
            picture = picture.resize(self._fitted, Image.Resampling.LANCZOS)
        self.im, self._mode, self._size = picture.im, picture.mode, picture.size
        if frame == len(self.durations):
            self.durations.append(int(self._source.info.get("duration", 100)) or 100)
        self._current = frame

    def tell(self) -> int:
        return self._current


def _animated(im: Image.Image) -> tuple[bytes, Image.Image, tuple[int, int]]:
    """Animated GIF/WebP/PNG -> animated WebP, frames fitted, timing kept, one frame in memory at a time."""
    frames = _FittedFrames(im, animation_size(im.width, im.height, getattr(im, "n_frames", 1)))
    first = frames.copy()
    buffer = io.BytesIO()
    frames.save(buffer, "WEBP", save_all=True, duration=frames.durations, loop=int(im.info.get("loop", 0)),
                quality=QUALITY, method=4)
    return buffer.getvalue(), first, first.size


def convert_image(path: Path) -> ImageResult:
    """Decode, orient, fit in 3840x2160, encode WebP q85 and a 300 px thumbnail; MediaError if unreadable."""
    try:
        with Image.open(path) as im:
            source_format = im.format or "unknown"
            taken, make, model = _metadata(im)
            if getattr(im, "is_animated", False) and getattr(im, "n_frames", 1) > 1:
                webp, first, (width, height) = _animated(im)
                return ImageResult(webp, _thumbnail(first), width, height, True, source_format, taken, make,
                                   model)
            icc = im.info.get("icc_profile") if im.mode not in ("CMYK",) else None
            if im.format == "JPEG":  # decode at 1/2, 1/4 or 1/8 scale when the result is smaller anyway
                im.draft("RGB", _fit_box(im.width, im.height, *MAX_SIZE))
            im.load()
            oriented = ImageOps.exif_transpose(im)
            picture = _to_display_mode(oriented)
            size = _fit_box(picture.width, picture.height, *MAX_SIZE)
            if size != picture.size:
                picture = picture.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
            return ImageResult(_encode(picture, QUALITY, icc), _thumbnail(picture), picture.width,
                               picture.height, False, source_format, taken, make, model)
    except MediaError:
        raise
    except Image.DecompressionBombError as exc:
        raise MediaError("The image is too large to convert safely", details={"reason": str(exc)}) from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as exc:
        raise MediaError("The image is corrupt or truncated", details={"reason": str(exc)}) from exc
