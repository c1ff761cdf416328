"""How long work reports where it is (backups, restores, checks): one value for the app's progress bars
and the terminal's line."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO


@dataclass(frozen=True)
class Progress:
    phase: str  # what is happening, for people: "Copying library files", "Checking files", ...
    done_bytes: int = 0
    total_bytes: int = 0
    done_files: int = 0
    total_files: int = 0

    @property
    def fraction(self) -> float:
        if self.total_bytes:
            return min(1.0, self.done_bytes / self.total_bytes)
        return min(1.0, self.done_files / self.total_files) if self.total_files else 0.0


ProgressListener = Callable[[Progress], None]


def ignore_progress(_progress: Progress) -> None:
    """For callers that do not show progress."""


class Throttle:
    """Which reports are worth passing on: the first of each phase, the last (done), and otherwise at most
    one every `interval` seconds, so ten thousand files do not make ten thousand redraws or messages."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._last = 0.0
        self._phase: str | None = None

    def due(self, progress: Progress) -> bool:
        now = time.monotonic()
        if (progress.phase == self._phase and progress.fraction < 1.0
                and now - self._last < self.interval):
            return False
        self._last, self._phase = now, progress.phase
        return True


class TerminalProgress:
    """A progress line redrawn in place on a terminal (a few times a second at most); silent when the
    output is a file or a pipe, where the command's summary lines are what matter."""

    def __init__(self, stream: TextIO | None = None, interval: float = 0.2) -> None:
        self.stream = stream or sys.stdout
        self.enabled = self.stream.isatty()
        self._throttle = Throttle(interval)
        self._drawn = False

    def __call__(self, progress: Progress) -> None:
        if not self.enabled or not self._throttle.due(progress):
            return
        size = (f" {progress.done_bytes / 1e6:,.1f} of {progress.total_bytes / 1e6:,.1f} MB"
                if progress.total_bytes else "")
        files = f" {progress.done_files:,}/{progress.total_files:,} files" if progress.total_files else ""
        self.stream.write(f"\r\x1b[K{progress.phase}: {progress.fraction:4.0%}{size}{files}")
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        """End the progress line so the summary starts on a fresh one."""
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False
