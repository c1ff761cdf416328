"""The frozen app, built once per run by `packaging/build.py` while the rest of the suite runs.

PyInstaller spends about a minute analysing imports on one core, and the suite leaves the second core mostly
idle (its tests wait on servers, ffmpeg and Chromium). So when a selected test asks for the `frozen_app`
fixture, the build starts as soon as collection ends, a little below normal priority so timing-sensitive
tests keep the CPU they need, and that test only waits for what is left of it. It is the same build
`make app` makes (same spec, same script), minus the self-check, which the test runs and reads itself.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILD_SCRIPT = ROOT / "packaging" / "build.py"
NICENESS = 5  # below the tests, yet far from idle priority: a busy machine must not starve the build


def pyinstaller_installed() -> bool:
    return importlib.util.find_spec("PyInstaller") is not None


@dataclass(frozen=True)
class FrozenApp:
    """What one build left: where the app is, the script's exit code, and what it printed."""

    dist: Path
    returncode: int
    stdout: str
    stderr: str


def _lower_priority() -> None:
    os.nice(NICENESS)


class BackgroundBuild:
    """One `packaging/build.py` run into a private temp folder, removed again by `discard`."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="vault-frozen-"))
        self.dist = self.folder / "dist"
        # Files, not pipes: PyInstaller's warnings would fill a pipe nobody reads until the build ends.
        self._stdout = (self.folder / "build.out").open("w+")
        self._stderr = (self.folder / "build.err").open("w+")
        command = [sys.executable, str(BUILD_SCRIPT), "--distpath", str(self.dist),
                   "--workpath", str(self.folder / "work"), "--no-self-check"]
        self._process = subprocess.Popen(command, stdout=self._stdout, stderr=self._stderr,
                                         stdin=subprocess.DEVNULL,
                                         preexec_fn=_lower_priority if hasattr(os, "nice") else None)

    def result(self, timeout: float) -> FrozenApp:
        """Wait for the build (TimeoutExpired after `timeout` s) and return what it made."""
        returncode = self._process.wait(timeout=timeout)
        self._stdout.seek(0)
        self._stderr.seek(0)
        return FrozenApp(self.dist, returncode, self._stdout.read(), self._stderr.read())

    def discard(self) -> None:
        """Stop the build if it still runs (an interrupted or narrowed run) and delete everything it made."""
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._stdout.close()
        self._stderr.close()
        shutil.rmtree(self.folder, ignore_errors=True)
