"""Moving an import file safely: into failed/ under a name not yet taken, across file systems without ever
losing it, and pruning the sub-folders an import left empty (never the import folder itself).
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

SIDECAR_SUFFIX = ".vault-error.json"


def free_name(path: Path) -> Path:
    candidate, n = path, 2
    while candidate.exists() or candidate.with_name(candidate.name + SIDECAR_SUFFIX).exists():
        candidate = path.with_name(f"{path.stem} ({n}){path.suffix}")
        n += 1
    return candidate


def move_file(source: Path, dest: Path) -> None:
    """Rename where possible; across file systems copy, fsync, then remove the source. A copy that fails
    (a full disk) is removed: the original is still where it was."""
    try:
        os.replace(source, dest)
        return
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    try:
        shutil.copy2(source, dest)
        with open(dest, "rb") as fh:
            os.fsync(fh.fileno())
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    source.unlink()


def prune_empty_dirs(folder: Path, root: Path) -> None:
    """Remove subfolders the import left empty, never the import folder itself."""
    folder, root = folder.resolve(), root.resolve()
    while folder != root and root in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent
