"""What is in a video file, read from ffmpeg's own input report (no ffprobe is bundled).

ffmpeg prints a stable, line-oriented description of each input on stderr (`ffmpeg -i FILE`); this module
reads the parts the pipeline needs: duration, the first real video stream (size, pixel format, colour
transfer, display rotation, frame rate), whether there is audio, and when it was filmed (the container's
`creation_time`, or Apple's `com.apple.quicktime.creationdate`, which keeps the phone's local offset and so
is preferred). A file that is not a media container
(a playlist, a concat list) is not even opened by ffmpeg, and so reads as "not a readable video file".
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from vaultserver.errors import MediaError
from vaultserver.ffmpeg import DEFAULT_LIMITS, FfmpegLimits, run_bounded, untrusted_input

log = logging.getLogger(__name__)

_DURATION = re.compile(r"^\s*Duration: (?:(\d+):(\d+):(\d+(?:\.\d+)?)|N/A)", re.M)
_INPUT = re.compile(r"^Input #0, ([^,\n]+(?:,[^ ,\n]+)*), from", re.M)
_STREAM = re.compile(r"^\s*Stream #0:(\d+)[^:]*: (Video|Audio|Subtitle|Data|Attachment): (.*)$", re.M)
_SIZE = re.compile(r"^(\d{1,5})x(\d{1,5})")
_FPS = re.compile(r"([\d.]+)(k?) (?:fps|tbr)")
_ROTATION = re.compile(r"rotation of (-?[\d.]+) degrees")
_TIME = re.compile(r"time=(\d+):(\d+):(\d+(?:\.\d+)?)")
_HDR_TRANSFERS = {"smpte2084", "arib-std-b67"}
# The first match is the container's own tag (its Metadata block comes before the streams').
_APPLE_DATE = re.compile(r"^\s+com\.apple\.quicktime\.creationdate\s*: (\S+)", re.M)
_CREATION_TIME = re.compile(r"^\s+creation_time\s*: ([^;\s]+)", re.M)
_EARLIEST_YEAR = 1971  # a zero date (1904 or 1970, by container) means the camera wrote none


@dataclass(frozen=True)
class VideoStream:
    codec: str
    coded_width: int
    coded_height: int
    pix_fmt: str
    color_transfer: str
    rotation: int  # degrees, a multiple of 90
    fps: float | None

    @property
    def width(self) -> int:
        """Width as displayed, after rotation."""
        return self.coded_height if self.rotation % 180 else self.coded_width

    @property
    def height(self) -> int:
        return self.coded_width if self.rotation % 180 else self.coded_height

    @property
    def is_hdr(self) -> bool:
        return self.color_transfer in _HDR_TRANSFERS


@dataclass(frozen=True)
class ProbeResult:
    container: str
    duration: float
    video: VideoStream
    has_audio: bool
    taken_at: datetime | None = None


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside parentheses or brackets."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for ch in text:
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
    parts.append("".join(current).strip())
    return parts


def _seconds(h: str, m: str, s: str) -> float:
    return int(h) * 3600 + int(m) * 60 + float(s)


def _parse_video(description: str, side_data: str) -> VideoStream | None:
    fields = _split_top_level(description)
    codec = fields[0].split()[0] if fields and fields[0] else "unknown"
    pix_fmt, transfer, width, height = "", "", 0, 0
    for f in fields[1:]:
        if not width and (m := _SIZE.match(f)):
            width, height = int(m[1]), int(m[2])
        elif not pix_fmt and not width and re.match(r"^[a-z0-9_]+(\(|$)", f):
            pix_fmt = f.split("(")[0]
            if "(" in f:
                transfer = _transfer(f[f.index("(") + 1: f.rindex(")")])
    if not width or not height:
        return None
    fps = None
    if m := _FPS.search(description):
        fps = float(m[1]) * (1000 if m[2] else 1)
    rotation = 0
    if m := _ROTATION.search(side_data):
        rotation = round(float(m[1]) / 90) * 90 % 360
    return VideoStream(codec, width, height, pix_fmt, transfer, rotation, fps)


def _transfer(colour_info: str) -> str:
    """ffmpeg prints `range, space/primaries/transfer` or a single name when all three agree."""
    for item in colour_info.split(","):
        item = item.strip()
        if "/" in item:
            return item.split("/")[-1]
        if item in _HDR_TRANSFERS or item.startswith("bt"):
            return item
    return ""


def parse_probe(report: str) -> ProbeResult:
    """Turn ffmpeg's input report into a ProbeResult, or MediaError if there is no playable video."""
    found = _INPUT.search(report)
    if "Invalid data found" in report or "moov atom not found" in report or not found:
        raise MediaError("Not a readable video file", details={"ffmpeg": _last_line(report)})
    container = found[1]
    video: VideoStream | None = None
    has_audio = False
    streams = list(_STREAM.finditer(report))
    for i, m in enumerate(streams):
        kind, description = m[2], m[3]
        if kind == "Audio":
            has_audio = True
        elif kind == "Video" and video is None and "(attached pic)" not in description:
            end = streams[i + 1].start() if i + 1 < len(streams) else len(report)
            video = _parse_video(description, report[m.end(): end])
    if video is None:
        raise MediaError("The file has no video stream", details={"container": container})
    duration = 0.0
    if (span := _DURATION.search(report)) and span[1] is not None:
        duration = _seconds(span[1], span[2], span[3])
    return ProbeResult(container, duration, video, has_audio, _filmed_at(report))


def _filmed_at(report: str) -> datetime | None:
    """When the video was filmed, as an aware time; None when the file does not say (or says nonsense)."""
    for pattern in (_APPLE_DATE, _CREATION_TIME):
        if (found := pattern.search(report)) is None:
            continue
        try:
            when = datetime.fromisoformat(found[1])
        except ValueError:
            log.debug("Unparseable video date %r", found[1])
            continue
        if when.tzinfo is None:  # no zone given: the camera's clock was on this Mac's
            when = when.astimezone()
        if when.year >= _EARLIEST_YEAR:
            return when
    return None


def _last_line(report: str) -> str:
    lines = [line for line in report.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


MEASURE_BYTES_PER_SECOND = 20_000_000  # the slowest disk read we allow for when measuring a duration


def probe(ffmpeg: str, path: Path, limits: FfmpegLimits = DEFAULT_LIMITS) -> ProbeResult:
    """Probe `path`; where the container states no duration (some mkv/webm), measure it by demuxing."""
    result = run_bounded([ffmpeg, "-hide_banner", "-nostdin", *untrusted_input(path)],
                         limits.probe_seconds, limits.grace_seconds, "probe")
    info = parse_probe(result.stderr)
    if info.duration > 0:
        return info
    bound = limits.probe_seconds + path.stat().st_size / MEASURE_BYTES_PER_SECOND
    measured = run_bounded([ffmpeg, "-hide_banner", "-nostdin", *untrusted_input(path), "-map", "0:v:0",
                            "-c", "copy", "-f", "null", "-"], bound, limits.grace_seconds, "measuring")
    times = _TIME.findall(measured.stderr)
    duration = _seconds(*times[-1]) if times else 0.0
    if duration <= 0:
        raise MediaError("The video has no frames", details={"ffmpeg": _last_line(measured.stderr)})
    return ProbeResult(info.container, duration, info.video, info.has_audio, info.taken_at)
