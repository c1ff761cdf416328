"""Watching the import folder: watchdog events plus a periodic full rescan, and a stability check.

A file is queued only once it looks finished: not hidden, not a browser/Finder partial download, and its
size and modification time unchanged for `stable_seconds` (a copy in progress keeps changing both).
Nothing inside Vault's data folder is ever taken except from the import folder itself (`failed/` nested in
it, or a link into `library/`, is skipped), and a refused import folder is not read at all.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

from vaultserver.services.queue import QueueService
from vaultserver.services.settings import SettingsService, import_folder_refusal

log = logging.getLogger(__name__)

PARTIAL_SUFFIXES = (".part", ".partial", ".crdownload", ".download", ".tmp", ".temp", ".!qb", ".opdownload",
                    ".icloud", "~")
IGNORED_NAMES = {"thumbs.db", "desktop.ini", "icon\r"}
POLL_SECONDS = 0.5


def is_candidate(relative: Path) -> bool:
    """Hidden files and folders, partial downloads and OS litter are never imported."""
    if any(part.startswith(".") for part in relative.parts):
        return False
    name = relative.name.lower()
    return name not in IGNORED_NAMES and not name.endswith(PARTIAL_SUFFIXES)


class _Events(FileSystemEventHandler):
    def __init__(self, watcher: ImportWatcher) -> None:
        self._watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory:
            if event.event_type in ("created", "moved"):  # a whole folder dropped in
                self._watcher.request_rescan()
            return
        target = getattr(event, "dest_path", "") or event.src_path
        self._watcher.notice(Path(os.fsdecode(target)))


class ImportWatcher:
    def __init__(self, settings: SettingsService, queue: QueueService) -> None:
        self._settings = settings
        self._queue = queue
        self._pending: dict[Path, tuple[int, float]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._rescan = threading.Event()
        self._observer: BaseObserver | None = None
        self._thread: threading.Thread | None = None
        self.root: Path | None = None

    def _refused(self, root: Path) -> bool:
        if reason := import_folder_refusal(self._settings.paths, str(root.absolute())):
            log.error("Not reading the import folder %s: it %s", root, reason)
            return True
        return False

    def _fenced(self, path: Path, root: Path) -> bool:
        """Inside the data folder (links resolved) but not inside the import folder: never Vault's to take."""
        found, data = path.resolve(), self._settings.paths.root.resolve()
        return found.is_relative_to(data) and not found.is_relative_to(root.resolve())

    def start(self, root: Path) -> None:
        if self._refused(root):
            return
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self._stop.clear()
        self._observer = Observer()
        self._observer.schedule(_Events(self), str(root), recursive=True)
        self._observer.daemon = True
        self._observer.start()
        self._thread = threading.Thread(target=self._run, args=(root,), name="vault-watcher", daemon=True)
        self._thread.start()
        self.request_rescan()
        log.info("Watching %s", root)

    def stop(self) -> None:
        self._stop.set()
        if self._observer:
            self._observer.stop()
            self._observer.join(5)
        if self._thread:
            self._thread.join(5)
        self._observer = self._thread = None

    def request_rescan(self) -> None:
        self._rescan.set()

    def notice(self, path: Path) -> None:
        with self._lock:
            self._pending.setdefault(path, (-1, -1.0))

    def scan(self, root: Path) -> int:
        """Note every candidate file under root; returns how many were seen."""
        seen = 0
        if self._refused(root):
            return seen
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames
                           if not d.startswith(".") and not self._fenced(Path(dirpath) / d, root)]
            for name in filenames:
                self.notice(Path(dirpath) / name)
                seen += 1
        return seen

    def check_stable(self, root: Path, stable_seconds: float, now: float | None = None) -> int:
        """Queue the pending files that stopped changing; returns how many were queued."""
        now = time.time() if now is None else now
        queued = 0
        with self._lock:
            pending = list(self._pending.items())
        for path, last in pending:
            try:
                relative = path.relative_to(root)
                stat = path.stat()
            except (ValueError, OSError):
                self._forget(path)
                continue
            if not is_candidate(relative) or self._fenced(path, root) or not path.is_file():
                self._forget(path)
                continue
            current = (stat.st_size, stat.st_mtime)
            if current != last:
                with self._lock:
                    self._pending[path] = current
                continue
            if now - stat.st_mtime < stable_seconds:
                continue
            self._forget(path)
            if self._queue.enqueue(path, root, stat.st_size, stat.st_mtime):
                queued += 1
        return queued

    def _forget(self, path: Path) -> None:
        with self._lock:
            self._pending.pop(path, None)

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def _run(self, root: Path) -> None:
        next_rescan = 0.0
        while not self._stop.is_set():
            settings = self._settings.current
            if self._rescan.is_set() or time.monotonic() >= next_rescan:
                self._rescan.clear()
                self.scan(root)
                next_rescan = time.monotonic() + settings.rescan_seconds
            try:
                self.check_stable(root, settings.stable_seconds)
            except Exception:  # a transient DB or FS error must not stop watching
                log.exception("Checking the import folder failed")
            self._stop.wait(POLL_SECONDS)


def copy_into(sources: list[Path], folder: Path) -> list[Path]:
    """Copy files into the import folder, each under a hidden name until complete (never taken half-copied).

    The owner's files stay where they were: only the copies in the import folder are consumed. A name already
    taken gets a numbered suffix rather than overwriting a file still waiting to be imported.
    """
    folder.mkdir(parents=True, exist_ok=True)
    copied = []
    for source in sources:
        target = folder / source.name
        n = 1
        while target.exists():
            target = folder / f"{source.stem} ({n}){source.suffix}"
            n += 1
        partial = folder / f".{target.name}.part"
        shutil.copy2(source, partial)
        os.replace(partial, target)
        copied.append(target)
    log.info("Copied %d file(s) into %s", len(copied), folder)
    return copied
