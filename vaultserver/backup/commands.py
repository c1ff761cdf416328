"""The command-line bodies of backup, verify-backup and restore (cli.py holds only their parser entries).

The recovery key is read from standard input, one line, and never echoed, printed or logged.
"""

from __future__ import annotations

import argparse
import getpass
import sys
import time
from pathlib import Path

from vaultserver.backup.progress import Progress, TerminalProgress
from vaultserver.config import AppPaths
from vaultserver.errors import ValidationError


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
