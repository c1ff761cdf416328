"""The command-line body of `vaultserver worker`: `--join STRING [--scratch DIR]` on a worker machine, or
`--pipe`, one of this Mac's own workers, started by the server (cli.py holds the dispatch).

A worker machine stops cleanly on Ctrl-C or SIGTERM: the job under way is reported back as failed (so it is
tried again), and its folder wiped. Without `--scratch` the work happens in a new owner-only temporary
folder, removed on exit.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path

from vaultserver.errors import VaultError

log = logging.getLogger(__name__)


def add_arguments(worker: argparse.ArgumentParser) -> None:
    worker.add_argument("--join", metavar="STRING",
                        help="convert for the Vault this join string names (from `vaultserver worker-token "
                             "create` on that Vault)")
    worker.add_argument("--scratch", metavar="DIR",
                        help="folder for the job under way, wiped after each (default: a private temporary "
                             "folder)")
    worker.add_argument("--pipe", action="store_true", help=argparse.SUPPRESS)


def cmd_worker(args: argparse.Namespace) -> int:
    """A conversion worker. `--pipe`: one of this Mac's own, started by the server, which talks to it over
    stdin/stdout; it logs to stderr, which the server keeps in its log."""
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    if args.pipe:
        from vaultserver.pipeline.local_worker import run_pipe_worker

        return run_pipe_worker()
    if not args.join:
        print("error: give the join string: vaultserver worker --join STRING", file=sys.stderr)
        return 2
    return _join(args.join, args.scratch)


def _join(join_text: str, scratch: str | None) -> int:
    from vaultserver.join_string import JoinString
    from vaultserver.remote.worker import RemoteWorker

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    folder = Path(scratch) if scratch else Path(tempfile.mkdtemp(prefix="vault-worker-"))
    try:
        RemoteWorker(JoinString.decode(join_text), folder).run(stop)
    except VaultError as exc:
        print(f"error [{exc.code}]: {exc.message}", file=sys.stderr)
        return 1
    finally:
        if not scratch:
            shutil.rmtree(folder, ignore_errors=True)
    log.info("Worker stopped")
    return 0
