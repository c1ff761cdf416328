"""One ffmpeg run per video: the whole HLS ladder plus the thumbnail, preview and poster, from ONE decode.

The HLS muxer writes AES-128 encrypted segments straight into the (encrypted-only) staging folder. The
animated thumbnail, the preview's candidate frames and the poster frame leave ffmpeg through pipes and are
encrypted in memory, so no plaintext picture of the video ever touches the disk. The run is bounded by the
video's duration and stopped if its progress report stalls; a disk that fills up mid-run is reported as such
(OSError ENOSPC), not blamed on the video.
"""

from __future__ import annotations

import errno
import logging
import os
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vaultserver.errors import MediaError
from vaultserver.ffmpeg import DEFAULT_LIMITS, FfmpegLimits, FfmpegTimeout, Watchdog, start, untrusted_input
from vaultserver.pipeline.probe import ProbeResult

log = logging.getLogger(__name__)

SEGMENT_SECONDS = 10
KEYFRAME_SECONDS = 2  # every rung gets keyframes at the same instants: aligned, closed GOPs
AUDIO_BITRATE = 128_000
THUMB_WIDTH, THUMB_SECONDS, THUMB_FPS, THUMB_QUALITY = 320, 3, 10, 75
PREVIEW_WIDTH, PREVIEW_FRAMES, SCENE_THRESHOLD, SCENE_SAMPLE_FPS = 480, 20, 0.4, 5
POSTER_MAX = (1920, 1080)


@dataclass(frozen=True)
class Rung:
    name: str
    width: int
    height: int
    maxrate: int  # bits/s, caps CRF so a rung never exceeds what its playlist advertises


# Short side in pixels -> peak video bitrate.
LADDER = ((1080, 6_000_000), (720, 3_000_000), (480, 1_400_000), (360, 800_000))


def _even(value: float) -> int:
    return max(2, int(round(value / 2)) * 2)


def _fit(width: int, height: int, short_side: int) -> tuple[int, int]:
    if width >= height:
        return _even(width * short_side / height), _even(short_side)
    return _even(short_side), _even(height * short_side / width)


def plan_ladder(width: int, height: int) -> list[Rung]:
    """Rungs no larger than the source (by its short side); a small source still gets one rung."""
    short = min(width, height)
    rungs = [Rung(f"{s}p", *_fit(width, height, s), rate) for s, rate in LADDER if s <= short]
    if not rungs:
        rate = LADDER[-1][1]
        rungs = [Rung(f"{_even(short)}p", _even(width), _even(height), rate)]
    return rungs


def _box(width: int, height: int, long_max: int, short_max: int) -> tuple[int, int]:
    """Fit within long_max x short_max, whichever way round the picture is; never upscale."""
    scale = min(1.0, long_max / max(width, height), short_max / min(width, height))
    return _even(width * scale), _even(height * scale)


@dataclass(frozen=True)
class VideoPlan:
    """What one transcode will produce, decided from the probe before ffmpeg starts."""

    rungs: tuple[Rung, ...]
    preview_size: tuple[int, int]
    poster_size: tuple[int, int]


@dataclass(frozen=True)
class VideoOutputs:
    """Everything one finished transcode produced besides the HLS files it wrote. Built once, whole."""

    rungs: tuple[Rung, ...]
    thumbnail_webp: bytes
    scene_frames: tuple[bytes, ...]
    uniform_frames: tuple[bytes, ...]
    poster_rgb: bytes
    preview_size: tuple[int, int]
    poster_size: tuple[int, int]
    log_tail: tuple[str, ...]


class _PipeReader(threading.Thread):
    """Drains one pipe from ffmpeg on its own thread, so no output can block the others."""

    def __init__(self, fd: int, frame_size: int | None = None, keep: int | None = None) -> None:
        super().__init__(daemon=True)
        self.fd, self.frame_size, self.keep = fd, frame_size, keep
        self.data = bytearray()
        self.frames: list[bytes] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with os.fdopen(self.fd, "rb", buffering=0) as pipe:
                while chunk := pipe.read(1 << 20):
                    self.data += chunk
                    if self.frame_size:
                        self._take_frames()
        except BaseException as exc:  # surfaced by the caller after join
            self.error = exc

    def _take_frames(self) -> None:
        size = self.frame_size or 0
        while len(self.data) >= size:
            self.frames.append(bytes(self.data[:size]))
            del self.data[:size]
            if self.keep and len(self.frames) > 2 * self.keep:
                self.frames = self.frames[::2]  # thin evenly: memory stays bounded on scene-heavy videos


def _tonemap_prefix(info: ProbeResult) -> str:
    if not info.video.is_hdr:
        return ""
    return ("zscale=t=linear:npl=100,format=gbrpf32le,zscale=p=bt709,tonemap=tonemap=hable:desat=0,"
            "zscale=t=bt709:m=bt709:r=tv,")


def build_command(ffmpeg: str, source: Path, out_dir: Path, key_info: Path, info: ProbeResult,
                  fds: dict[str, int]) -> tuple[list[str], VideoPlan]:
    v = info.video
    rungs = tuple(plan_ladder(v.width, v.height))
    duration = max(info.duration, 0.04)
    start = 0.0 if duration < THUMB_SECONDS * 2 else duration * 0.10
    preview_size = (PREVIEW_WIDTH, _even(PREVIEW_WIDTH * v.height / v.width))
    poster_size = _box(v.width, v.height, *POSTER_MAX)
    branches = len(rungs) + 4
    labels = [f"[s{i}]" for i in range(branches)]
    graph = [f"[0:v]{_tonemap_prefix(info)}split={branches}{''.join(labels)}"]
    for i, r in enumerate(rungs):
        graph.append(f"[s{i}]scale={r.width}:{r.height}:flags=bicubic,setsar=1,format=yuv420p[v{i}]")
    t, p, u, k = (len(rungs) + n for n in range(4))
    graph += [
        f"[s{t}]trim=start={start:.3f}:duration={THUMB_SECONDS},setpts=PTS-STARTPTS,fps={THUMB_FPS},"
        f"scale={THUMB_WIDTH}:-2,setsar=1,format=yuv420p[thumb]",
        f"[s{p}]fps={SCENE_SAMPLE_FPS},scale={preview_size[0]}:{preview_size[1]},setsar=1,"
        f"select='eq(n\\,0)+gt(scene\\,{SCENE_THRESHOLD})',format=rgb24[scene]",
        f"[s{u}]fps=fps={PREVIEW_FRAMES}/{duration:.3f},scale={preview_size[0]}:{preview_size[1]},"
        f"setsar=1,format=rgb24[uniform]",
        f"[s{k}]trim=start={start:.3f},setpts=PTS-STARTPTS,trim=end_frame=1,"
        f"scale={poster_size[0]}:{poster_size[1]},setsar=1,format=rgb24[poster]",
    ]
    cmd = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "warning", "-nostats",
           "-progress", f"pipe:{fds['progress']}", *untrusted_input(source),
           "-filter_complex", ";".join(graph)]
    stream_map = []
    for i, r in enumerate(rungs):
        cmd += ["-map", f"[v{i}]"]
        if info.has_audio:
            cmd += ["-map", "0:a:0"]
        stream_map.append(f"v:{i},a:{i},name:{r.name}" if info.has_audio else f"v:{i},name:{r.name}")
        cmd += [f"-maxrate:v:{i}", str(r.maxrate), f"-bufsize:v:{i}", str(r.maxrate * 2)]
    cmd += ["-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-profile:v", "high",
            "-force_key_frames", f"expr:gte(t,n_forced*{KEYFRAME_SECONDS})", "-sc_threshold", "0",
            "-flags", "+cgop"]
    if info.has_audio:
        cmd += ["-c:a", "aac", "-b:a", str(AUDIO_BITRATE), "-ac", "2"]
    # EVENT playlists, rewritten after each segment, so the video plays while it converts; a segment appears
    # under its name only once whole (temp_file). Sealing turns the finished playlists into VOD ones.
    cmd += ["-f", "hls", "-hls_time", str(SEGMENT_SECONDS), "-hls_playlist_type", "event",
            "-hls_flags", "independent_segments+temp_file", "-hls_segment_type", "mpegts",
            "-hls_key_info_file", str(key_info), "-master_pl_name", "master.m3u8",
            "-hls_segment_filename", str(out_dir / "%v" / "seg_%05d.ts"),
            "-var_stream_map", " ".join(stream_map), str(out_dir / "%v" / "index.m3u8")]
    cmd += ["-map", "[thumb]", "-c:v", "libwebp_anim", "-quality", str(THUMB_QUALITY), "-loop", "0",
            "-f", "webp", f"pipe:{fds['thumb']}"]
    for label in ("scene", "uniform"):
        cmd += ["-map", f"[{label}]", "-c:v", "rawvideo", "-fps_mode", "passthrough", "-f", "rawvideo",
                f"pipe:{fds[label]}"]
    cmd += ["-map", "[poster]", "-frames:v", "1", "-c:v", "rawvideo", "-f", "rawvideo",
            f"pipe:{fds['poster']}"]
    return cmd, VideoPlan(rungs, preview_size, poster_size)


def transcode(ffmpeg: str, source: Path, out_dir: Path, key_info: Path, info: ProbeResult,
              on_progress: Callable[[float], None] | None = None,
              cancel: threading.Event | None = None, limits: FfmpegLimits = DEFAULT_LIMITS) -> VideoOutputs:
    """Run the one-pass transcode. Bad input raises MediaError with ffmpeg's own words; a run past its bounds
    FfmpegTimeout; a cancelled one InterruptedError."""
    pipes = {name: os.pipe() for name in ("progress", "thumb", "scene", "uniform", "poster")}
    child_fds = {name: w for name, (_r, w) in pipes.items()}
    cmd, plan = build_command(ffmpeg, source, out_dir, key_info, info, child_fds)
    for rung in plan.rungs:
        (out_dir / rung.name).mkdir(parents=True, exist_ok=True)
    preview_frame = plan.preview_size[0] * plan.preview_size[1] * 3
    poster_frame = plan.poster_size[0] * plan.poster_size[1] * 3
    readers = {
        "thumb": _PipeReader(pipes["thumb"][0]),
        "scene": _PipeReader(pipes["scene"][0], preview_frame, keep=PREVIEW_FRAMES * 4),
        "uniform": _PipeReader(pipes["uniform"][0], preview_frame, keep=PREVIEW_FRAMES * 2),
        "poster": _PipeReader(pipes["poster"][0], poster_frame, keep=1),
    }
    log.debug("ffmpeg: %s", " ".join(cmd))
    try:
        proc = start(cmd, background=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                     stderr=subprocess.PIPE, pass_fds=tuple(child_fds.values()))
    finally:
        for fd in child_fds.values():
            os.close(fd)
    watchdog = Watchdog(proc, limits.transcode_seconds(info.duration), limits.grace_seconds,
                        limits.stall_seconds, cancel)
    watchdog.start()
    for reader in readers.values():
        reader.start()
    stderr_lines: list[str] = []
    stderr_thread = threading.Thread(target=_collect_lines, args=(proc.stderr, stderr_lines), daemon=True)
    stderr_thread.start()
    _follow_progress(pipes["progress"][0], info.duration, on_progress, watchdog)
    code = proc.wait()
    watchdog.finish()
    stderr_thread.join()
    for reader in readers.values():
        reader.join()
    if watchdog.cancelled:
        raise InterruptedError("transcode cancelled")
    if watchdog.reason:
        raise FfmpegTimeout(f"ffmpeg {watchdog.reason} converting this video and was stopped",
                            details={"ffmpeg": stderr_lines[-5:]})
    if code != 0:
        if any("No space left on device" in line for line in stderr_lines):
            raise OSError(errno.ENOSPC, "No space left on device (ffmpeg writing the conversion)")
        raise MediaError("ffmpeg could not convert this video",
                         details={"ffmpeg": stderr_lines[-5:], "exit_code": code})
    for name, reader in readers.items():
        if reader.error:
            raise RuntimeError(f"reading the {name} output failed: {reader.error}")
    poster = readers["poster"].frames
    return VideoOutputs(plan.rungs, thumbnail_webp=bytes(readers["thumb"].data),
                        scene_frames=tuple(readers["scene"].frames),
                        uniform_frames=tuple(readers["uniform"].frames),
                        poster_rgb=poster[0] if poster else b"", preview_size=plan.preview_size,
                        poster_size=plan.poster_size, log_tail=tuple(stderr_lines[-20:]))


def _collect_lines(stream, into: list[str]) -> None:
    for raw in stream:
        into.append(raw.decode("utf-8", "replace").rstrip())
        if len(into) > 200:
            del into[:100]


def _follow_progress(fd: int, duration: float, on_progress: Callable[[float], None] | None,
                     watchdog: Watchdog) -> None:
    """Read ffmpeg's `-progress` key=value stream; report a 0..1 fraction; tell the watchdog of each advance.

    Progress is a frame or output time that moved on: ffmpeg repeats its last report while it waits."""
    seen: dict[str, str] = {}
    with os.fdopen(fd, "r", encoding="utf-8", errors="replace") as stream:
        for line in stream:
            key, _, value = line.strip().partition("=")
            if key in ("frame", "out_time_us") and seen.get(key) != value:
                seen[key] = value
                watchdog.progressed()
            if key == "out_time_us" and on_progress and duration > 0 and value.isdigit():
                on_progress(min(1.0, int(value) / 1e6 / duration))
