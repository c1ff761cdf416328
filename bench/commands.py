"""The commands being measured: Vault's own ingest, and plain-ffmpeg baselines built from Vault's ladder."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from vaultserver.config import AppPaths, Settings, save_settings
from vaultserver.pipeline.transcode import AUDIO_BITRATE, KEYFRAME_SECONDS, SEGMENT_SECONDS, Rung

# Exactly the encoder and muxer settings of vaultserver.pipeline.transcode.build_command, minus encryption.
X264 = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-profile:v", "high",
        "-force_key_frames", f"expr:gte(t,n_forced*{KEYFRAME_SECONDS})", "-sc_threshold", "0",
        "-flags", "+cgop"]
AAC = ["-c:a", "aac", "-b:a", str(AUDIO_BITRATE), "-ac", "2"]
HLS = ["-f", "hls", "-hls_time", str(SEGMENT_SECONDS), "-hls_playlist_type", "vod",
       "-hls_flags", "independent_segments", "-hls_segment_type", "mpegts"]
VAULT_ENV = {"VAULT_KEYSTORE": "file"}


def vault_data_dir(root: Path, files: list[Path]) -> list[str]:
    """A fresh data dir holding only `files` in imports/; returns the `process --once` command for it.

    stable_seconds=0: the inputs are complete files, so the wait for copies to settle is not measured.
    """
    save_settings(AppPaths(root), Settings(stable_seconds=0.0))
    imports = root / "imports"
    imports.mkdir(parents=True, exist_ok=True)
    for f in files:
        try:
            os.link(f, imports / f.name)  # Vault deletes the import after committing: only the link goes
        except OSError:
            shutil.copy2(f, imports / f.name)
    return [sys.executable, "-m", "vaultserver.cli", "--data-dir", str(root), "process", "--once"]


def _head(ffmpeg: str, source: Path) -> list[str]:
    return [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-i", str(source)]


def ladder_one_run(ffmpeg: str, source: Path, out: Path, rungs: list[Rung]) -> list[str]:
    """Baseline (a): one decode, split + scale per rung, one HLS muxer with var_stream_map, no extras."""
    n = len(rungs)
    graph = [f"[0:v]split={n}" + "".join(f"[s{i}]" for i in range(n))]
    graph += [f"[s{i}]scale={r.width}:{r.height}:flags=bicubic,setsar=1,format=yuv420p[v{i}]"
              for i, r in enumerate(rungs)]
    cmd = [*_head(ffmpeg, source), "-filter_complex", ";".join(graph)]
    for i, r in enumerate(rungs):
        cmd += ["-map", f"[v{i}]", "-map", "0:a:0",
                f"-maxrate:v:{i}", str(r.maxrate), f"-bufsize:v:{i}", str(r.maxrate * 2)]
        (out / r.name).mkdir(parents=True, exist_ok=True)
    stream_map = " ".join(f"v:{i},a:{i},name:{r.name}" for i, r in enumerate(rungs))
    return cmd + X264 + AAC + HLS + [
        "-master_pl_name", "master.m3u8", "-hls_segment_filename", str(out / "%v" / "seg_%05d.ts"),
        "-var_stream_map", stream_map, str(out / "%v" / "index.m3u8")]


def ladder_top_copied(ffmpeg: str, source: Path, out: Path, rungs: list[Rung]) -> list[str]:
    """Baseline (a) with the top rung stream-copied from the source (`-c:v:0 copy`): the other rungs are
    scaled and encoded from one decode, as before. Only meaningful for an H.264 source at the top rung's
    size with keyframes the segmenter can cut on; a measurement, not what Vault does."""
    encoded = range(1, len(rungs))
    graph = [f"[0:v]split={len(encoded)}" + "".join(f"[s{i}]" for i in encoded)] if encoded else []
    graph += [f"[s{i}]scale={rungs[i].width}:{rungs[i].height}:flags=bicubic,setsar=1,format=yuv420p[v{i}]"
              for i in encoded]
    cmd = [*_head(ffmpeg, source), *(["-filter_complex", ";".join(graph)] if graph else []),
           "-map", "0:v:0", "-map", "0:a:0"]
    for i, r in enumerate(rungs):
        if i > 0:
            cmd += ["-map", f"[v{i}]", "-map", "0:a:0",
                    f"-maxrate:v:{i}", str(r.maxrate), f"-bufsize:v:{i}", str(r.maxrate * 2)]
        (out / r.name).mkdir(parents=True, exist_ok=True)
    stream_map = " ".join(f"v:{i},a:{i},name:{r.name}" for i, r in enumerate(rungs))
    for i in encoded:  # encoder options only where there is an encoder (a copy refuses `-profile`)
        for option, value in zip(X264[::2], X264[1::2], strict=True):
            cmd += [f"{option.split(':')[0]}:v:{i}", value]
    return cmd + ["-c:v:0", "copy"] + AAC + HLS + [
        "-master_pl_name", "master.m3u8", "-hls_segment_filename", str(out / "%v" / "seg_%05d.ts"),
        "-var_stream_map", stream_map, str(out / "%v" / "index.m3u8")]


def ladder_per_rung(ffmpeg: str, source: Path, out: Path, rungs: list[Rung]) -> list[list[str]]:
    """Baseline (b): one ffmpeg run per rung, run one after another; each decodes the source again."""
    cmds = []
    for r in rungs:
        (out / r.name).mkdir(parents=True, exist_ok=True)
        cmds.append([*_head(ffmpeg, source), "-map", "0:v:0", "-map", "0:a:0",
                     "-vf", f"scale={r.width}:{r.height}:flags=bicubic,setsar=1,format=yuv420p",
                     "-maxrate:v", str(r.maxrate), "-bufsize:v", str(r.maxrate * 2), *X264, *AAC, *HLS,
                     "-hls_segment_filename", str(out / r.name / "seg_%05d.ts"),
                     str(out / r.name / "index.m3u8")])
    return cmds


def transcode_only(source: Path, out: Path) -> list[str]:
    """Vault's transcode() alone: probe + the one ffmpeg run with its pipe outputs, nothing else."""
    return [sys.executable, "-m", "bench.transcode_only", str(source), str(out)]


def convert_image_only(source: Path) -> list[str]:
    code = ("import sys; from pathlib import Path; from vaultserver.pipeline.images import convert_image; "
            "convert_image(Path(sys.argv[1]))")
    return [sys.executable, "-c", code, str(source)]
