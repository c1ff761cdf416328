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
from collections.abc import Iterable, Iterator
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


DOWNLOAD_LIMITS = FfmpegLimits(transcode_min_seconds=24 * 3600.0)  # paced by the viewer's line, not the CPU
REMUX_PIECE = 256 * 1024


def _remux_command(binary: str, output: list[str]) -> list[str]:
    return [binary, "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-f", "mpegts",
            "-format_whitelist", "mpegts", "-protocol_whitelist", "pipe", "-i", "pipe:0",
            # Vault's AAC from ADTS to MP4 framing, asked for up front: an MP4 written to a pipe needs the
            # audio's header before the first packet, too late for ffmpeg to add this filter by itself.
            "-map", "0", "-c", "copy", "-bsf:a", "aac_adtstoasc", *output]


class Remux:
    """One stream copy of MPEG-TS that Vault decrypts in memory and feeds through ffmpeg's stdin.

    The chunks are written from a thread of its own, one at a time, so that the output can be read while
    it is fed (a download) and no more than one decrypted chunk is held at once. `stop()` may come from any
    thread: it kills the whole run at once (a viewer who went away), and the feeding thread then ends."""

    def __init__(self, binary: str, chunks: Iterable[bytes], seconds: float, output: list[str],
                 limits: FfmpegLimits, what: str) -> None:
        self._what = what
        self._stopped = threading.Event()
        self._fed: BaseException | None = None  # what went wrong producing the chunks, if anything
        self._errors: list[bytes] = []
        self.proc = start(_remux_command(binary, output), background=False, stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE if output[-1] == "pipe:1" else subprocess.DEVNULL,
                          stderr=subprocess.PIPE)
        self._watchdog = Watchdog(self.proc, limits.transcode_seconds(seconds), limits.grace_seconds)
        self._watchdog.start()
        stderr = self.proc.stderr
        assert stderr is not None  # asked for as a pipe
        self._reader = threading.Thread(target=lambda: self._errors.append(stderr.read()), daemon=True)
        self._reader.start()
        self._feeder = threading.Thread(target=self._feed, args=(iter(chunks),), daemon=True,
                                        name="remux-feeder")
        self._feeder.start()

    def _feed(self, chunks: Iterator[bytes]) -> None:
        stdin = self.proc.stdin
        assert stdin is not None  # asked for as a pipe
        try:
            for chunk in chunks:
                if self._stopped.is_set():
                    return
                stdin.write(chunk)
        except (BrokenPipeError, ValueError):
            pass  # ffmpeg stopped early (or was stopped); its exit code and message say why
        except BaseException as exc:  # noqa: B036 - reported by finish(), in the caller's thread
            self._fed = exc
            stop_group(self.proc, 0)  # a half-fed run must not look like a whole one
        finally:
            close = getattr(chunks, "close", None)
            if close:
                close()
            try:
                stdin.close()
            except OSError:
                pass

    def read(self, size: int = REMUX_PIECE) -> bytes:
        """Up to `size` bytes of the output as ffmpeg writes it (b"" at its end, or once stopped)."""
        stdout = self.proc.stdout
        assert stdout is not None  # only a run writing to pipe:1 is read
        return os.read(stdout.fileno(), size)

    def stop(self) -> None:
        """Kill the run now (from any thread); the feeding thread ends at its next write."""
        self._stopped.set()
        if self.proc.poll() is None:  # once reaped, its id may be another process's
            stop_group(self.proc, 0)

    def finish(self) -> None:
        """Wait for the run's end; raise what went wrong with it."""
        code = self.proc.wait()
        self._feeder.join()
        self._watchdog.finish()
        self._reader.join()
        if self.proc.stdout:
            self.proc.stdout.close()
        if self._fed is not None:
            raise self._fed
        if self._watchdog.reason:
            raise FfmpegTimeout(f"ffmpeg {self._watchdog.reason} writing {self._what} and was stopped")
        if code != 0:
            raise VaultError(f"ffmpeg could not write {self._what}",
                             details={"ffmpeg": b"".join(self._errors).decode(errors="replace")[-500:]})


def remux_ts_to_mp4(binary: str, chunks: Iterable[bytes], seconds: float, dest: Path,
                    limits: FfmpegLimits = DEFAULT_LIMITS) -> None:
    """Stream-copy MPEG-TS that Vault feeds through a pipe (decrypted in memory) into an MP4 at `dest`."""
    run = Remux(binary, chunks, seconds, ["-movflags", "+faststart", "-f", "mp4", str(dest)], limits,
                "the export")
    try:
        run.finish()
    except BaseException:
        run.stop()
        raise


class RemuxedMp4:
    """A fragmented MP4 (`frag_keyframe+empty_moov`: a pipe cannot be rewound to write the index first),
    read piece by piece as ffmpeg writes it: a download in constant memory. ffmpeg starts with the first
    piece asked for (a HEAD starts nothing); `close()`, from any thread, kills it (a viewer who went away)."""

    def __init__(self, binary: str, chunks: Iterable[bytes], seconds: float,
                 limits: FfmpegLimits = DOWNLOAD_LIMITS) -> None:
        self._start = lambda: Remux(binary, chunks, seconds, ["-movflags", "frag_keyframe+empty_moov",
                                                              "-f", "mp4", "pipe:1"], limits, "the download")
        self._lock = threading.Lock()
        self._run: Remux | None = None
        self._ended = False

    def __iter__(self) -> RemuxedMp4:
        return self

    def __next__(self) -> bytes:
        with self._lock:
            if self._ended:
                raise StopIteration
            if self._run is None:
                self._run = self._start()
            run = self._run
        if piece := run.read():
            return piece
        with self._lock:
            ended, self._ended = self._ended, True
        if not ended:
            run.finish()  # raises if ffmpeg failed: the viewer's download breaks off rather than ends short
        raise StopIteration

    def close(self) -> None:
        with self._lock:
            self._ended, run = True, self._run
        if run is not None:
            run.stop()
