"""`python -m bench.transcode_only SOURCE OUT_DIR`: Vault's probe, transcode() and preview/poster encoding
alone, with a throwaway key; prints the seconds each step took as one JSON line.

No database, key store, hashing, sealing or commit: the difference to the full `process --once` run is
Vault's own overhead around the conversion; the difference to baseline (a) is encryption plus the extra
outputs (thumbnail, scene/uniform preview frames, poster) of the one ffmpeg run.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from vaultserver.ffmpeg import ffmpeg
from vaultserver.pipeline import previews
from vaultserver.pipeline.probe import probe
from vaultserver.pipeline.transcode import transcode


def main(source: Path, out: Path) -> None:
    steps, t = {}, time.perf_counter()

    def step(name: str) -> None:
        nonlocal t
        now = time.perf_counter()
        steps[name], t = now - t, now

    binary = ffmpeg()
    info = probe(binary, source)
    step("probe")
    out.mkdir(parents=True, exist_ok=True)
    key, key_info = out / "bench.key", out / "bench.keyinfo"
    key.write_bytes(os.urandom(16))
    key_info.write_text(f"vault-key:bench\n{key}\n{os.urandom(16).hex()}\n")
    outputs = transcode(binary, source, out / "hls", key_info, info)
    step("transcode")
    previews.preview_webp(outputs)
    previews.poster_webp(outputs)
    step("previews")
    print(json.dumps(steps))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
