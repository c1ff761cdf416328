"""The command-line bodies of backup and verify-backup (cli.py holds only their parser entries).

`backup --progress-json` is how the app's runtime runs a backup as a background child: one JSON object per
line on stdout, `{"progress": {...}}` a few times a second at most and `{"result": {...}}` at the end; a
failure is the usual `error [CODE]: message` on stderr and exit 1.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import TextIO

from vaultserver.backup.progress import Progress, TerminalProgress
from vaultserver.config import AppPaths
from vaultserver.errors import ConfigurationError, IntegrityError, ValidationError

SHOWN_PROBLEMS = 5  # named in the error line; all of them are listed above it


class JsonProgress:
    """Progress as JSON lines for a parent process: at most one every `interval` seconds, and one at each
    new phase."""

    def __init__(self, stream: TextIO, interval: float = 0.2) -> None:
        self.stream = stream
        self.interval = interval
        self._last = 0.0
        self._phase = ""

    def __call__(self, progress: Progress) -> None:
        now = time.monotonic()
        if progress.phase == self._phase and now - self._last < self.interval:
            return
        self._last, self._phase = now, progress.phase
        self.stream.write(json.dumps({"progress": asdict(progress)}) + "\n")
        self.stream.flush()

    def close(self) -> None:
        """Nothing to end: every line is whole."""


def cmd_backup(args: argparse.Namespace, paths: AppPaths) -> int:
    """`vaultserver --data-dir D backup TARGET [--progress-json]`."""
    from vaultserver.backup.writer import back_up
    from vaultserver.services import open_services

    services = open_services(paths)
    progress = JsonProgress(sys.stdout) if args.progress_json else TerminalProgress()
    try:
        result = back_up(services, Path(args.target), progress)
    finally:
        progress.close()
        services.close()
    if args.progress_json:
        print(json.dumps({"result": result.to_dict()}), flush=True)
    else:
        print(result.summary())
    return 0


def cmd_verify_backup(args: argparse.Namespace, paths: AppPaths) -> int:
    """`vaultserver verify-backup TARGET [--snapshot STAMP] [--recovery-key-stdin]`: reads only TARGET.
    Every file against the manifest; with the recovery key, then every item decrypts (the deep check)."""
    from vaultserver.backup.verify import verify_files

    progress = TerminalProgress()
    try:
        report = verify_files(Path(args.target), args.snapshot, progress)
    finally:
        progress.close()
    for path, problem in report.problems:
        print(f"  {problem}: {path}")
    print(report.summary())
    if not report.ok:
        named = ", ".join(f"{path} ({problem})" for path, problem in report.problems[:SHOWN_PROBLEMS])
        more = len(report.problems) - SHOWN_PROBLEMS
        raise IntegrityError(f"The backup in {args.target} is damaged: {named}"
                             + (f" and {more} more" if more > 0 else ""))
    if args.recovery_key_stdin:
        return deep_check_command(Path(args.target), report.snapshot, recovery_phrase_from_stdin())
    return 0


def recovery_phrase_from_stdin() -> str:
    phrase = sys.stdin.readline()
    if not phrase.strip():
        raise ValidationError("Give the recovery key on standard input (--recovery-key-stdin)")
    return phrase


def deep_check_command(target: Path, snapshot: str, phrase: str) -> int:
    """Decrypting every item of the snapshot with the recovery key: this version of Vault cannot, so asking
    for it fails rather than passing unchecked."""
    raise ConfigurationError("This version of Vault checks a backup's files only: run verify-backup without "
                             "--recovery-key-stdin")
