"""Finding and checking ffmpeg: `VAULT_FFMPEG`, else the binary bundled by imageio-ffmpeg, else PATH."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from dataclasses import dataclass
from functools import lru_cache

from vaultserver.errors import ConfigurationError

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
