"""Finding, checking and running ffmpeg: `VAULT_FFMPEG`, else the binary bundled by imageio-ffmpeg, else PATH.

Every run that reads a file Vault did not write opens it through `untrusted_input()`: only real media
containers, only the local file itself. Playlists (HLS, concat, SDP...) and network protocols would let one
dropped file make ffmpeg read other files or wait on the network. Every run is bounded in time: it starts in
its own session so that a run past its bound (or cancelled) is stopped with everything it started, by
SIGTERM, a short grace, then SIGKILL to the whole process group. Conversion runs at the OS's background
priority (`start(background=True)`).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from vaultserver.background import background_child
from vaultserver.errors import ConfigurationError, VaultError

log = logging.getLogger(__name__)

REQUIRED_ENCODERS = ("libx264", "aac", "libwebp_anim")
REQUIRED_MUXERS = ("hls",)


def find_ffmpeg() -> str:
    """The ffmpeg to use. A configured but missing binary is an error, never a silent fallback."""
    if configured := os.environ.get("VAULT_FFMPEG"):
        resolved = shutil.which(configured) or (configured if os.path.isfile(configured) else None)
        if not resolved:
            raise ConfigurationError(f"VAULT_FFMPEG points to {configured!r}, which does not exist")
        return resolved
    try:
        import imageio_ffmpeg
        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError) as exc:
        log.debug("imageio-ffmpeg has no binary here: %s", exc)
    if found := shutil.which("ffmpeg"):
        return found
    raise ConfigurationError("No ffmpeg found: install imageio-ffmpeg or set VAULT_FFMPEG")


@dataclass(frozen=True)
class FfmpegCheck:
    path: str
    version: str
    missing: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.missing


@lru_cache(maxsize=4)
def check_ffmpeg(path: str) -> FfmpegCheck:
    """Run the binary and confirm it has what the pipeline needs; ConfigurationError if it cannot run."""
    def run(*args: str) -> str:
        try:
            result = subprocess.run([path, "-hide_banner", *args], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ConfigurationError(f"ffmpeg at {path} does not run: {exc}") from exc
        if result.returncode != 0:
            raise ConfigurationError(f"ffmpeg at {path} failed: {result.stderr.strip()[:300]}")
        return result.stdout

    version_out = run("-version")
    version_line = version_out.splitlines()[0] if version_out else "unknown"
    encoders, muxers = run("-encoders"), run("-muxers")
    missing = tuple([e for e in REQUIRED_ENCODERS if f" {e} " not in encoders]
                    + [m for m in REQUIRED_MUXERS if f" {m} " not in muxers])
    return FfmpegCheck(path, version_line, missing)


def ffmpeg() -> str:
    """The checked binary, or ConfigurationError explaining what is wrong with it."""
    path = find_ffmpeg()
    check = check_ffmpeg(path)
    if not check.ok:
        raise ConfigurationError(f"ffmpeg at {path} lacks: {', '.join(check.missing)}")
    return path


# Demuxers of file-based media containers (names as `ffmpeg -demuxers` lists them). Left out on purpose:
# hls, dash, concat, sdp, rtsp, image2 and the like, which open further files or connections.
INPUT_FORMATS = ("mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", "avi", "mpegts", "mpeg", "flv", "asf", "ogg",
                 "mxf", "dv")


def untrusted_input(path: Path) -> list[str]:
    """`-i path` for a file Vault did not write, restricted to media containers read from that file alone."""
    return ["-format_whitelist", ",".join(INPUT_FORMATS), "-protocol_whitelist", "file", "-i", str(path)]


@dataclass(frozen=True)
class FfmpegLimits:
    """How long an ffmpeg run may take before it is stopped. Generous: a slow Mac converting a long film must
    finish; only a run that cannot finish (a hang, an endless input) reaches them."""

    probe_seconds: float = 60.0
    transcode_min_seconds: float = 600.0
    transcode_per_media_second: float = 10.0
    stall_seconds: float = 300.0  # no progress reported for this long: ffmpeg is stuck
    grace_seconds: float = 5.0  # between SIGTERM and SIGKILL

    def transcode_seconds(self, duration: float) -> float:
        return max(self.transcode_min_seconds, self.transcode_per_media_second * duration)


DEFAULT_LIMITS = FfmpegLimits()


class FfmpegTimeout(VaultError):
    """An ffmpeg run passed its time bound or stopped making progress, and was stopped."""


def start(cmd: list[str], *, background: bool, **popen_args) -> subprocess.Popen:
    """Start ffmpeg as the leader of a new session, so `stop_group()` reaches everything it started.

    `background`: conversion, which can wait, runs at the OS's background priority (background.py), so
    the people watching and browsing get the CPU first; work someone is waiting for (an export) does not."""
    return subprocess.Popen(cmd, start_new_session=True,
                            preexec_fn=background_child if background else None, **popen_args)


def stop_group(proc: subprocess.Popen, grace: float) -> None:
    """SIGTERM the run's process group, wait up to `grace` for it, then SIGKILL whatever is left."""
    if proc.poll() is None:
        _signal_group(proc, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    _signal_group(proc, signal.SIGKILL)  # children may outlive a leader that obeyed SIGTERM
    proc.wait()


def _signal_group(proc: subprocess.Popen, sig: signal.Signals) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass  # the group is gone already


def run_bounded(cmd: list[str], seconds: float, grace: float, what: str) -> subprocess.CompletedProcess[str]:
    """Run a conversion step (in the background) to completion and capture its output as text;
    FfmpegTimeout (group stopped) after `seconds`."""
    proc = start(cmd, background=True, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                 stderr=subprocess.PIPE, text=True, errors="replace")
    try:
        out, err = proc.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        stop_group(proc, grace)
        proc.communicate()
        raise FfmpegTimeout(f"ffmpeg {what} ran longer than {seconds:.0f} s and was stopped",
                            details={"seconds": seconds}) from None
    except BaseException:
        stop_group(proc, 0)
        raise
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


class Watchdog(threading.Thread):
    """Stops a running ffmpeg (its whole group) when it is cancelled, passes `seconds`, or reports no
    progress for `stall_seconds`; `reason` then says which. Call `progressed()` whenever ffmpeg advances."""

    def __init__(self, proc: subprocess.Popen, seconds: float, grace: float,
                 stall_seconds: float | None = None, cancel: threading.Event | None = None) -> None:
        super().__init__(daemon=True, name="ffmpeg-watchdog")
        self._proc, self._seconds, self._grace, self._stall = proc, seconds, grace, stall_seconds
        self._cancel = cancel or threading.Event()
        self._began = self._last_progress = time.monotonic()
        self._finished = threading.Event()
        self.reason: str | None = None
        self.cancelled = False

    def progressed(self) -> None:
        self._last_progress = time.monotonic()

    def finish(self) -> None:
        """The run ended by itself; stop watching it."""
        self._finished.set()
        self.join()

    def run(self) -> None:
        while not self._finished.wait(0.1) and self._proc.poll() is None:
            now = time.monotonic()
            if self._cancel.is_set():
                self.reason, self.cancelled = "cancelled", True
            elif now - self._began > self._seconds:
                self.reason = f"ran longer than {self._seconds:.0f} s"
            elif self._stall is not None and now - self._last_progress > self._stall:
                self.reason = f"made no progress for {self._stall:.0f} s"
            if self.reason:
                log.warning("Stopping ffmpeg (pid %d): %s", self._proc.pid, self.reason)
                stop_group(self._proc, self._grace)
                return


def remux_ts_to_mp4(binary: str, chunks: Iterable[bytes], seconds: float, dest: Path,
                    limits: FfmpegLimits = DEFAULT_LIMITS) -> None:
    """Stream-copy MPEG-TS that Vault feeds through a pipe (decrypted in memory) into an MP4 at `dest`."""
    cmd = [binary, "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-f", "mpegts",
           "-format_whitelist", "mpegts", "-protocol_whitelist", "pipe", "-i", "pipe:0",
           "-map", "0", "-c", "copy", "-movflags", "+faststart", "-f", "mp4", str(dest)]
    proc = start(cmd, background=False, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                 stderr=subprocess.PIPE)
    stdin, stderr = proc.stdin, proc.stderr
    assert stdin is not None and stderr is not None  # both asked for as pipes
    watchdog = Watchdog(proc, limits.transcode_seconds(seconds), limits.grace_seconds)
    watchdog.start()
    errors: list[bytes] = []
    reader = threading.Thread(target=lambda: errors.append(stderr.read()), daemon=True)
    reader.start()
    try:
        for chunk in chunks:
            stdin.write(chunk)
        stdin.close()
    except BrokenPipeError:
        pass  # ffmpeg stopped early; its exit code and message say why
    except BaseException:
        stop_group(proc, 0)
        raise
    finally:
        code = proc.wait()
        watchdog.finish()
        reader.join()
    if watchdog.reason:
        raise FfmpegTimeout(f"ffmpeg {watchdog.reason} writing the export and was stopped")
    if code != 0:
        raise VaultError("ffmpeg could not write the export",
                         details={"ffmpeg": b"".join(errors).decode(errors="replace")[-500:]})
