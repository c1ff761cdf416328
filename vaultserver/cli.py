"""`vaultserver …`: the headless front end over the same services the GUI uses.

Exit codes: 0 success; 1 Vault itself failed (bad configuration, broken ffmpeg, key store...); 2 usage.
A bad media file is not a failure of Vault: it is reported, moved to failed/, and the run still exits 0.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from vaultserver import __version__, account_commands
from vaultserver.backup.commands import cmd_backup, cmd_restore, cmd_verify_backup
from vaultserver.config import AppPaths, resolve_data_dir
from vaultserver.errors import VaultError
from vaultserver.logs import setup_logging
from vaultserver.remote import token_commands, worker_command
from vaultserver.services import Services, open_services
from vaultserver.services.jobs import JobView

log = logging.getLogger("vaultserver")


def _program() -> str:
    """How the owner runs this: `vaultserver` from pip, or the packaged app's own executable."""
    return sys.executable if getattr(sys, "frozen", False) else "vaultserver"


def _print_json(data: object) -> None:
    print(json.dumps(data, indent=2, default=str))


# --- commands ------------------------------------------------------------------------------------------


def cmd_process(args: argparse.Namespace, paths: AppPaths) -> int:
    from vaultserver.ffmpeg import ffmpeg
    from vaultserver.runtime import VaultRuntime

    ffmpeg()  # a missing or broken ffmpeg is Vault's failure (exit 1), never blamed on the files
    runtime = VaultRuntime(paths)
    try:
        if not args.once:
            return _run_until_signal(runtime)
        before = runtime.services.queue.counts()
        runtime.on_job_event(_print_outcome)
        runtime.process_once()
        after = runtime.services.queue.counts()
        added, dup, failed = (getattr(after, f) - getattr(before, f) for f in ("done", "duplicate", "failed"))
        print(
            f"Processed {added + dup + failed} file(s): {added} added, {dup} duplicate(s) skipped, "
            f"{failed} failed" + (f" (moved to {paths.failed})" if failed else "")
        )
        print(f"Library: {len(runtime.services.library.all_items())} item(s)")
        return 0
    finally:
        runtime.close()


def _print_outcome(event: str, job: JobView) -> None:
    """One line per file as it finishes, so a long batch shows its progress."""
    label = {"done": "added", "duplicate": "duplicate, skipped", "failed": "FAILED"}.get(event, event)
    reason = f" ({job.error})" if event == "failed" and job.error else ""
    print(f"  {label}: {job.source_path}{reason}", flush=True)


def _run_until_signal(runtime, serve: bool = False, host: str | None = None, port: int | None = None) -> int:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    runtime.start(serve=serve, host=host, port=port)
    where = f"serving {runtime.endpoint.url} and " if runtime.endpoint else ""
    print(
        f"Vault is {where}watching {runtime.services.settings.current.import_path(runtime.paths)} "
        f"(data in {runtime.paths.root}). Press Ctrl-C to stop.",
        flush=True,
    )
    if serve:
        print("Open on a phone or laptop at home: " + "  ".join(runtime.urls()[:3]), flush=True)
    if serve and runtime.services.users.count() == 0:
        print(
            "No accounts yet. Create the owner's with:\n"
            f"  {_program()} --data-dir '{runtime.paths.root}' user add NAME --admin --password-stdin",
            flush=True,
        )
    while not stop.wait(0.5):
        pass
    runtime.stop()
    return 0


def cmd_serve(args: argparse.Namespace, paths: AppPaths) -> int:
    from vaultserver.ffmpeg import ffmpeg
    from vaultserver.runtime import VaultRuntime

    ffmpeg()
    if args.local_workers is not None and args.local_workers < 0:
        raise VaultError("--local-workers must be 0 or more", code="VALIDATION_001")
    runtime = VaultRuntime(paths, local_workers=args.local_workers)
    try:
        return _run_until_signal(runtime, serve=True, host=args.host, port=args.port)
    finally:
        runtime.close()


def cmd_sessions(args: argparse.Namespace, services: Services) -> int:
    sessions = services.sessions
    if args.sessions_command == "list":
        for s in sessions.list():
            print(
                f"{s.id}  {s.username:16} {s.device_name or s.device_type or '-':20} {s.ip_address:15} "
                f"last active {s.last_activity_at:%Y-%m-%d %H:%M}"
            )
        return 0
    if args.user:
        count = sessions.revoke_all_for_user(services.users.by_name(args.user).id, "signed_out_by_owner")
        print(f"Signed out {count} session(s) of {args.user}")
    elif args.id:
        sessions.revoke(args.id, "signed_out_by_owner")
        print(f"Signed out session {args.id}")
    else:
        raise VaultError("Name a session ID or --user NAME", code="VALIDATION_001")
    return 0


def cmd_library(args: argparse.Namespace, services: Services) -> int:
    library = services.library
    if args.library_command == "list":
        items = library.all_items()
        if args.json:
            _print_json([item.to_dict() for item in items])
        else:
            for item in items:
                size = f"{item.width}x{item.height}"
                extra = f" {item.duration:.1f}s" if item.duration else ""
                print(f"{item.id}  {item.type:5}  {size:>9}{extra}  {item.original_name}")
            print(f"{len(items)} item(s)")
    elif args.library_command == "export":
        dest = library.export(args.id, Path(args.outfile))
        print(f"Exported {args.id} to {dest}")
    elif args.library_command == "delete":
        library.delete(args.id, actor="owner (cli)")
        print(f"Deleted {args.id}")
    return 0


def cmd_keys(args: argparse.Namespace, services: Services) -> int:
    if args.keys_command == "recovery-key":
        phrase = services.keys.new_recovery_key(actor="owner (cli)")
        print("This is Vault's new recovery key. With a backup, it is all it takes to open the library on "
              "another Mac.\nWrite it down or print it and keep it somewhere safe, away from this Mac: "
              "Vault keeps no copy.\nIt replaces any recovery key made before; backups made from now on "
              "need this one.\n")
        print(phrase)
        return 0
    if args.keys_command == "rotate":
        result = services.keys.rotate()
        print(f"New master key {result.new_master_key_id}; {result.rewrapped} data key(s) re-wrapped")
        return 0
    status = services.keys.status()
    if args.json:
        _print_json(status.to_dict())
        return 0
    print(f"Key store:        {status.backend}")
    print(f"Master key:       {status.master_key_id} (created {status.created_at:%Y-%m-%d})")
    due = "OVERDUE since" if status.rotation_overdue else "due"
    print(f"Rotation:         {due} {status.rotation_due_at:%Y-%m-%d}")
    print(f"Data keys:        {status.data_keys}")
    made = status.recovery_created_at
    recovery = f"{status.recovery_fingerprint} (made {made:%Y-%m-%d})" if made else "none: keys recovery-key"
    print(f"Recovery key:     {recovery}")
    if status.master_keys_in_use > 1:
        print("Note: an interrupted rotation will be finished on the next start or `keys rotate`.")
    return 0


def cmd_cert(args: argparse.Namespace, paths: AppPaths) -> int:
    """Through the runtime, as the app's Network tab does it: a running Vault serves a new one at once."""
    from vaultserver.runtime import VaultRuntime

    runtime = VaultRuntime(paths)
    try:
        regenerate = args.cert_command == "regenerate"
        info = runtime.reissue_certificate() if regenerate else runtime.certificate()
    finally:
        runtime.close()
    print(f"Certificate: {info.cert_file}\nIssuer:      {info.issuer}")
    print(f"Valid until: {info.not_after:%Y-%m-%d}\nNames:       {', '.join(info.names)}")
    print(f"SHA-256:     {info.sha256}")
    print(f"To trust Vault on a device, install its CA certificate: {info.ca_file}")
    if info.ca_notice:
        print(f"Note: {info.ca_notice}")
    if regenerate and VaultRuntime.in_use(paths):
        print("The running Vault switches to the new certificate within a few seconds; no restart needed.")
    elif regenerate:
        print("Vault serves the new certificate from its next start.")
    return 0


def cmd_doctor(args: argparse.Namespace, paths: AppPaths) -> int:
    from vaultserver.doctor import run_checks

    results = run_checks(paths)
    for check in results:
        print(f"[{'ok' if check.ok else 'FAIL'}] {check.name}: {check.message}")
    failed = [c for c in results if not c.ok]
    print("All checks passed." if not failed else f"{len(failed)} check(s) failed.")
    return 1 if failed else 0


def cmd_self_check(args: argparse.Namespace) -> int:
    """Prove this install works, in a throwaway data folder: the owner's own one is never opened."""
    from vaultserver.selfcheck import run

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    return 0 if run(sys.stdout) else 1


# --- parser --------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vaultserver", description="Vault, the private home media server.")
    parser.add_argument("--version", action="version", version=f"vaultserver {__version__}")
    parser.add_argument("--data-dir", help="data folder (default: $VAULT_HOME, else application support)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug output to the console")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    process = sub.add_parser("process", help="convert what is in the import folder")
    process.add_argument("--once", action="store_true", help="process everything now, wait, print a summary")
    serve = sub.add_parser(
        "serve", help="run headless: serve the gallery over HTTPS, watch the import folder"
    )
    serve.add_argument("--host", help="listen address (default from settings: 0.0.0.0)")
    serve.add_argument(
        "--port", type=int, help="HTTPS port (default from settings: 1027; 0 picks a free one)"
    )
    serve.add_argument("--local-workers", type=int, metavar="N",
                       help="conversion processes on this Mac (default from settings: half its cores; "
                            "0: only worker machines convert)")
    worker = sub.add_parser("worker", help="convert for a Vault (run by the server, or on a worker machine)")
    worker_command.add_arguments(worker)

    account_commands.add_parser(sub)

    sessions = sub.add_parser("sessions", help="list or end signed-in devices")
    sessions_sub = sessions.add_subparsers(dest="sessions_command", required=True)
    sessions_sub.add_parser("list", help="active sessions of every user")
    revoke = sessions_sub.add_parser("revoke", help="sign out one session, or every session of a user")
    revoke.add_argument("id", nargs="?")
    revoke.add_argument("--user")

    library = sub.add_parser("library", help="list, export or delete library items")
    lib_sub = library.add_subparsers(dest="library_command", required=True)
    lib_list = lib_sub.add_parser("list", help="list items")
    lib_list.add_argument("--json", action="store_true", help="one JSON array")
    export = lib_sub.add_parser("export", help="decrypt an item: photo as WebP, video as MP4")
    export.add_argument("id")
    export.add_argument("outfile")
    delete = lib_sub.add_parser("delete", help="delete an item and shred its keys")
    delete.add_argument("id")

    keys = sub.add_parser("keys", help="master key status and rotation")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    status = keys_sub.add_parser("status", help="where the key lives and when rotation is due")
    status.add_argument("--json", action="store_true")
    keys_sub.add_parser("rotate", help="new master key; re-wrap every data key")
    keys_sub.add_parser("recovery-key", help="make a new recovery key (replaces the old); printed once, last")

    cert = sub.add_parser("cert", help="the HTTPS certificate: show it, or issue a new one")
    cert.add_argument("cert_command", choices=["show", "regenerate"])
    backup = sub.add_parser("backup", help="make or update the backup in a folder (needs a recovery key)")
    backup.add_argument("target", help="the backup folder (created if its parent exists)")
    backup.add_argument("--progress-json", action="store_true", help="progress and result as JSON lines")
    verify = sub.add_parser("verify-backup", help="check every file of a backup against its manifest")
    verify.add_argument("target", help="the backup folder")
    verify.add_argument("--snapshot", help="the snapshot's stamp (default: the newest)")
    verify.add_argument("--recovery-key-stdin", action="store_true",
                        help="also decrypt every item, with the recovery key read from stdin")
    restore = sub.add_parser("restore", help="rebuild this (new, empty) data folder from a backup")
    restore.add_argument("target", help="the backup folder")
    restore.add_argument("--recovery-key-stdin", action="store_true", required=True,
                         help="read the recovery key from standard input (one line)")
    restore.add_argument("--snapshot", help="restore this snapshot (its time stamp) instead of the newest")
    token_commands.add_parser(sub)
    sub.add_parser("doctor", help="check ffmpeg, key store, permissions and database")
    sub.add_parser("self-check", help="prove this install works end to end, in a temporary data folder")
    return parser


SERVICE_COMMANDS: dict[str, Callable[[argparse.Namespace, Services], int]] = {
    "library": cmd_library,
    "keys": cmd_keys,
    "user": account_commands.cmd_user,
    "sessions": cmd_sessions,
    "worker-token": token_commands.cmd_worker_token,
}
PATH_COMMANDS: dict[str, Callable[[argparse.Namespace, AppPaths], int]] = {
    "backup": cmd_backup,
    "verify-backup": cmd_verify_backup,
    "cert": cmd_cert,
    "process": cmd_process,
    "doctor": cmd_doctor,
    "serve": cmd_serve,
    "restore": cmd_restore,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "self-check":
        return cmd_self_check(args)
    if args.command == "worker":
        return worker_command.cmd_worker(args)
    paths = AppPaths(resolve_data_dir(args.data_dir))
    try:
        # The doctor looks at the data folder as it was found; verify-backup reads only the backup.
        if args.command not in ("doctor", "verify-backup"):
            paths.ensure()
            setup_logging(paths, args.verbose)
        if args.command in PATH_COMMANDS:
            return PATH_COMMANDS[args.command](args, paths)
        services = open_services(paths)
        try:
            return SERVICE_COMMANDS[args.command](args, services)
        finally:
            services.close()
    except VaultError as exc:
        print(f"error [{exc.code}]: {exc.message}", file=sys.stderr)
        if exc.details:
            print(json.dumps(exc.details, indent=2, default=str), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
