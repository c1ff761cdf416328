"""`vaultserver …`: the headless front end over the same services the GUI uses.

Exit codes: 0 success; 1 Vault itself failed (bad configuration, broken ffmpeg, key store...); 2 usage.
A bad media file is not a failure of Vault: it is reported, moved to failed/, and the run still exits 0.
"""

from __future__ import annotations

import argparse
import json
import logging
import logging.handlers
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from vaultserver import __version__
from vaultserver.config import AppPaths, resolve_data_dir
from vaultserver.errors import VaultError
from vaultserver.services import Services, open_services

log = logging.getLogger("vaultserver")


def _setup_logging(paths: AppPaths, verbose: bool, quiet: bool = True) -> None:
    root = logging.getLogger()
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.DEBUG if verbose else (logging.WARNING if quiet else logging.INFO))
    console.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root.addHandler(console)
    paths.logs.mkdir(parents=True, exist_ok=True)
    file_handler = logging.handlers.RotatingFileHandler(paths.logs / "vault.log", maxBytes=5_000_000,
                                                        backupCount=3, encoding="utf-8")
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(file_handler)


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
        runtime.process_once()
        after = runtime.services.queue.counts()
        added, dup, failed = (getattr(after, f) - getattr(before, f) for f in ("done", "duplicate", "failed"))
        print(f"Processed {added + dup + failed} file(s): {added} added, {dup} duplicate(s) skipped, "
              f"{failed} failed" + (f" (moved to {paths.failed})" if failed else ""))
        print(f"Library: {len(runtime.services.library.all_items())} item(s)")
        return 0
    finally:
        runtime.close()


def _run_until_signal(runtime) -> int:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    runtime.start()
    print(f"Vault is watching {runtime.services.settings.current.import_path(runtime.paths)} "
          f"(data in {runtime.paths.root}). Press Ctrl-C to stop.", flush=True)
    while not stop.wait(1.0):
        pass
    runtime.stop()
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
    if status.master_keys_in_use > 1:
        print("Note: an interrupted rotation will be finished on the next start or `keys rotate`.")
    return 0


def cmd_doctor(args: argparse.Namespace, paths: AppPaths) -> int:
    from vaultserver.doctor import run_checks

    results = run_checks(paths)
    for check in results:
        print(f"[{'ok' if check.ok else 'FAIL'}] {check.name}: {check.message}")
    failed = [c for c in results if not c.ok]
    print("All checks passed." if not failed else f"{len(failed)} check(s) failed.")
    return 1 if failed else 0


def cmd_launch(args: argparse.Namespace, paths: AppPaths) -> int:
    """The menu-bar app where there is a display and it is installed, else the headless service."""
    try:
        import gui.app  # noqa: F401
        display = os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
        has_gui = sys.platform == "darwin" or bool(display)
    except ImportError:
        has_gui = False
    if has_gui:
        from gui.app import main as gui_main
        return gui_main(["--data-dir", str(paths.root)])
    args.once = False
    return cmd_process(args, paths)


# --- parser --------------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vaultserver", description="Vault, the private home media server.")
    parser.add_argument("--version", action="version", version=f"vaultserver {__version__}")
    parser.add_argument("--data-dir", help="data folder (default: $VAULT_HOME, else application support)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug output to the console")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    process = sub.add_parser("process", help="convert what is in the import folder")
    process.add_argument("--once", action="store_true", help="process everything now, wait, print a summary")
    sub.add_parser("serve", help="run headless: watch the import folder and serve the gallery")
    sub.add_parser("launch", help="the menu-bar app where there is a display, else `serve`")

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

    sub.add_parser("doctor", help="check ffmpeg, key store, permissions and database")
    return parser


SERVICE_COMMANDS: dict[str, Callable[[argparse.Namespace, Services], int]] = {
    "library": cmd_library, "keys": cmd_keys,
}
PATH_COMMANDS: dict[str, Callable[[argparse.Namespace, AppPaths], int]] = {
    "process": cmd_process, "doctor": cmd_doctor, "launch": cmd_launch,
    "serve": lambda args, paths: cmd_process(argparse.Namespace(**{**vars(args), "once": False}), paths),
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    paths = AppPaths(resolve_data_dir(args.data_dir))
    try:
        paths.ensure()
        _setup_logging(paths, args.verbose)
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
