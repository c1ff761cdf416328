"""The command-line bodies of backup, verify-backup and restore (cli.py holds only their parser entries).

`backup --progress-json` is how the app's runtime runs a backup as a background child: one JSON object per
line on stdout, `{"progress": {...}}` a few times a second at most and `{"result": {...}}` at the end; a
failure is the usual `error [CODE]: message` on stderr and exit 1. The recovery key is read from standard
input, one line, and never echoed, printed or logged.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import TextIO

from vaultserver.config import AppPaths
from vaultserver.errors import IntegrityError, ValidationError
from vaultserver.progress import Progress, TerminalProgress, Throttle

SHOWN_PROBLEMS = 5  # named in the error line; all of them are listed above it


class JsonProgress:
    """Progress as JSON lines for a parent process, throttled (`Throttle`)."""

    def __init__(self, stream: TextIO, interval: float = 0.2) -> None:
        self.stream = stream
        self._throttle = Throttle(interval)

    def __call__(self, progress: Progress) -> None:
        if not self._throttle.due(progress):
            return
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
    """The phrase, one line from standard input (asked for without echo when that is a terminal)."""
    phrase = getpass.getpass("Recovery key: ") if sys.stdin.isatty() else sys.stdin.readline()
    if not phrase.strip():
        raise ValidationError("Give the recovery key on standard input (--recovery-key-stdin)")
    return phrase


def cmd_restore(args: argparse.Namespace, paths: AppPaths) -> int:
    """`vaultserver --data-dir NEW restore TARGET --recovery-key-stdin [--snapshot STAMP]`."""
    from vaultserver.backup.restore import restore

    phrase = recovery_phrase_from_stdin()
    progress = TerminalProgress()
    try:
        result = restore(Path(args.target), paths, phrase, progress, args.snapshot)
    finally:
        progress.close()
    print(f"{result.summary()} into {paths.root}")
    print("Every device signed in before must sign in again. The certificate for this Mac's names is "
          "issued on first start by the restored certificate authority, so devices that trusted it still do.")
    return _report_items(result.items, list(result.problems))


def deep_check_command(target: Path, snapshot: str | None, phrase: str) -> int:
    """verify-backup's second half when --recovery-key-stdin is given: every item of the snapshot decrypts.
    Prints what it found; 0 when every item decrypts, else 1."""
    from vaultserver.backup.deep_check import check_backup_items

    started, terminal, last = time.monotonic(), TerminalProgress(), [Progress("")]

    def progress(now: Progress) -> None:
        last[0] = now
        terminal(now)
    try:
        problems = check_backup_items(Path(target), phrase, snapshot, progress)
    finally:
        terminal.close()
    print(f"Decrypted {last[0].total_files:,} item(s), {last[0].total_bytes / 1e6:,.1f} MB, "
          f"in {time.monotonic() - started:.1f} s")
    return _report_items(None, problems)


def _report_items(items: int | None, problems: list[str]) -> int:
    if not problems:
        print("Every item decrypts" + (f" ({items:,} item(s))." if items is not None else "."))
        return 0
    print(f"{len(problems)} file(s) do not decrypt:")
    for problem in problems:
        print(f"  {problem}")
    return 1
