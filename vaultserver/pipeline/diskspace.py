"""Room on the library's disk: checked before every job, and what a job that ran out of it becomes.

A conversion needs room for its staged output (the HLS ladder can be a few times a low-bitrate source), the
encrypted copy of the original when originals are kept, and headroom so that the database and the system
can still write. A job without that room is not the file's fault: it waits (no attempt used) and the workers
take nothing new until space returns. A disk that fills up mid-job (ENOSPC from a write, SQLITE_FULL from
the database) is the same condition.
"""

from __future__ import annotations

import errno
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vaultserver.errors import VaultError

SPACE_FACTOR = 3  # bytes of free space needed per byte of source
SPACE_MARGIN = 512 * 1024 * 1024  # always left free, whatever the file
RECHECK_SECONDS = 30.0  # how often paused workers look again
_SQLITE_FULL = 13
WAITING_STAGE = "waiting for disk space"


def _size(n: int) -> str:
    value, unit = float(n), "bytes"
    for bigger in ("KB", "MB", "GB", "TB"):
        if value < 1000:
            break
        value, unit = value / 1000, bigger
    return f"{n} bytes" if unit == "bytes" else f"{value:.1f} {unit}"


@dataclass(frozen=True)
class SpaceShortage:
    need: int  # free bytes needed before work goes on
    have: int

    @property
    def message(self) -> str:
        return f"Waiting for free disk space: need {_size(self.need)}, have {_size(self.have)}"


class DiskSpaceError(VaultError):
    """The library's disk is too full to go on; raised where a caller would otherwise wait forever."""

    status = 507

    def __init__(self, shortage: SpaceShortage) -> None:
        super().__init__(shortage.message, details={"need_bytes": shortage.need, "free_bytes": shortage.have})
        self.shortage = shortage


def is_disk_full(exc: BaseException | None) -> bool:
    """ENOSPC/EDQUOT anywhere in the exception's chain, or SQLite's "database or disk is full"."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if getattr(exc, "sqlite_errorcode", None) == _SQLITE_FULL or "database or disk is full" in str(exc):
            return True
        exc = getattr(exc, "orig", None) or exc.__cause__ or exc.__context__
    return False


class DiskRoom:
    """Free space on the disk holding `folder`, read through `disk_usage` (shutil's unless given)."""

    def __init__(self, folder: Path, disk_usage: Callable[[Path], Any] | None = None,
                 factor: float = SPACE_FACTOR, margin: int = SPACE_MARGIN) -> None:
        self.folder, self._disk_usage = folder, disk_usage
        self.factor, self.margin = factor, margin

    def free(self) -> int:
        return int((self._disk_usage or shutil.disk_usage)(self.folder).free)

    def shortage_for(self, size: int) -> SpaceShortage | None:
        """What is missing to convert a `size`-byte file, or None if there is room."""
        need, have = int(size * self.factor) + self.margin, self.free()
        return SpaceShortage(need, have) if have < need else None

    def shortage_after_full(self, size: int) -> SpaceShortage:
        """The disk filled up mid-job, so the estimate was not enough: wait for it, and for the margin
        to be freed on top of what is free now."""
        have = self.free()
        return SpaceShortage(max(int(size * self.factor) + self.margin, have + self.margin), have)
