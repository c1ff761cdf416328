"""The name a downloaded item is saved under: its original's name, with the extension of what is sent.

Original names come from whoever dropped or uploaded the file, so only their last path part is kept, without
control characters or leading dots (a download must not become a hidden file), and capped in length.
"""

from __future__ import annotations

import re

MAX_NAME = 200  # characters; file systems allow 255 bytes, and a browser may add " (1)"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
FALLBACK_STEM = "vault-item"


def saved_name(original_name: str, extension: str | None = None) -> str:
    """`original_name` made safe to save; with `extension` (".mp4"), that replaces the original's own."""
    name = re.split(r"[/\\]", _CONTROL.sub("", original_name or ""))[-1].strip().lstrip(".").strip()
    if extension is not None:
        stem, dot, _ = name.rpartition(".")
        name = (stem if dot and stem else name) + extension
    if not name or name == extension:
        name = FALLBACK_STEM + (extension or "")
    if len(name) > MAX_NAME:
        stem, dot, suffix = name.rpartition(".")
        keep = dot + suffix if dot and len(suffix) < 16 else ""
        name = name[: MAX_NAME - len(keep)] + keep
    return name
