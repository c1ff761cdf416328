"""Writing files into a backup so that a kill, a power cut or an unplugged disk leaves whole files or none.

Every file is written under a temporary name, fsynced, and only then renamed to its final name; `settle()`
then fsyncs every folder that received a new name. A snapshot is renamed into place only after `settle()`
(writer.py), so nothing it names can be missing or half written, whatever stopped the run before.

Copying reads each source once: the bytes are hashed (SHA-256, for the manifest) on a second thread while
the first writes them, so hashing costs no extra read and little extra time.

Why fsyncs run on a pool of threads while copying goes on, rather than one after each file or a batch at a
time. Measured on ext4 (2 busy CPUs; a 303 MB library of 566 files, all in the page cache): `cp -r` 0.25 s
and `cp -r && sync` 0.8 s; this writer with no fsync at all (unsafe) 0.6-0.8 s, with one fsync after another
1.2-1.6 s, and writing a batch of files, then fsyncing them, then renaming them, no better than one by one
(each fsync still waits for its own journal commit); fsyncs from a pool of 8 threads 0.9-1.2 s: the file
system commits many files per journal flush and the disk writes while the next files are copied. Copying in
the kernel (copy_file_range, as `cp` does) gained nothing measurable: the disk's writes are what a durable
copy waits for, so `cp -r && sync` is its honest yardstick, not `cp -r`, whose copy is still in memory
when it returns. On macOS an fsync does not flush the drive's own cache; `barrier()` (F_FULLFSYNC) does,
once per snapshot, just before it is renamed into place.
"""

from __future__ import annotations

import fcntl
import hashlib
import itertools
import os
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

CHUNK = 1024 * 1024
SYNC_THREADS = 8
MAX_IN_FLIGHT = 32  # files written but not yet fsynced and renamed: bounds open descriptors (macOS: 256)
FILE_MODE = 0o600

BytesDone = Callable[[int], None]


def fsync_dir(path: str | Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def barrier(path: str | Path) -> None:
    """Everything fsynced so far is on the disk itself, not only in its cache (macOS: F_FULLFSYNC; elsewhere
    an fsync already asks the drive to flush)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        if hasattr(fcntl, "F_FULLFSYNC"):
            fcntl.fcntl(fd, fcntl.F_FULLFSYNC)
        else:
            os.fsync(fd)
    finally:
        os.close(fd)


def _nothing() -> None:
    pass


def _sync_and_rename(fd: int, temp: str, dest: str, after: Callable[[], None]) -> None:
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, dest)
    after()


class DurableWriter:
    """Copies and writes files into `root` (temporaries in `temp_dir`, on the same file system)."""

    def __init__(self, root: Path, temp_dir: Path) -> None:
        self.root = root
        self._temp = temp_dir
        temp_dir.mkdir(parents=True, exist_ok=True)
        self._names = itertools.count()
        self._hasher = ThreadPoolExecutor(1, thread_name_prefix="backup-hash")
        self._syncer = ThreadPoolExecutor(SYNC_THREADS, thread_name_prefix="backup-sync")
        self._in_flight: deque[Future[None]] = deque()
        self._folders: set[str] = set()
        self._buffers = [memoryview(bytearray(CHUNK)) for _ in range(3)]

    def __enter__(self) -> DurableWriter:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def copy(self, source: str, dest: str, done: BytesDone,
             after: Callable[[str], None] | None = None) -> str:
        """Copy `source` to `dest` (both absolute); returns the SHA-256 of what was written. `dest` appears
        once the bytes are on disk (then `after(sha256)` is called, on another thread); `settle()` waits
        for that."""
        temp = str(self._temp / f"{next(self._names)}.tmp")
        out = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        try:
            with open(source, "rb", buffering=0) as src:
                digest = self._copy_hashed(src.fileno(), out, done)
        except BaseException:
            os.close(out)
            os.unlink(temp)
            raise
        self._finish(out, temp, dest, (lambda: after(digest)) if after else _nothing)
        return digest

    def write(self, data: bytes, dest: str) -> str:
        """Write `data` as `dest`; returns its SHA-256."""
        temp = str(self._temp / f"{next(self._names)}.tmp")
        out = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        try:
            _write_all(out, memoryview(data))
        except BaseException:
            os.close(out)
            os.unlink(temp)
            raise
        self._finish(out, temp, dest, _nothing)
        return hashlib.sha256(data).hexdigest()

    def settle(self) -> None:
        """Every file given so far is at its final name, on disk, and so is the name itself."""
        while self._in_flight:
            self._in_flight.popleft().result()
        folders, self._folders = self._folders, set()
        for _ in self._syncer.map(fsync_dir, folders):
            pass

    def close(self) -> None:
        """Wait for what is under way (a failure surfaces in `settle()`, not here), then stop the threads."""
        for future in self._in_flight:
            future.exception()
        self._in_flight.clear()
        self._hasher.shutdown()
        self._syncer.shutdown()

    def _copy_hashed(self, src: int, out: int, done: BytesDone) -> str:
        digest = hashlib.sha256()
        first = self._buffers[0]
        n = os.readv(src, [first])
        if n < CHUNK:  # small files (most of a library): no second thread for a single chunk
            digest.update(first[:n])
            _write_all(out, first[:n])
            done(n)
            return digest.hexdigest()
        # One hashing thread takes chunks in order while this one writes them; a buffer is read into again
        # only once its chunk is hashed.
        hashed: list[Future[None] | None] = [None] * len(self._buffers)
        index = 0
        while n:
            buffer = self._buffers[index]
            hashed[index] = self._hasher.submit(digest.update, buffer[:n])
            _write_all(out, buffer[:n])
            done(n)
            index = (index + 1) % len(self._buffers)
            if (pending := hashed[index]) is not None:
                pending.result()
                hashed[index] = None
            n = os.readv(src, [self._buffers[index]])
        for pending in hashed:
            if pending is not None:
                pending.result()
        return digest.hexdigest()

    def _finish(self, fd: int, temp: str, dest: str, after: Callable[[], None]) -> None:
        folder = os.path.dirname(dest)
        if folder not in self._folders:
            self._make_folder(folder)
        self._in_flight.append(self._syncer.submit(_sync_and_rename, fd, temp, dest, after))
        while len(self._in_flight) > MAX_IN_FLIGHT:
            self._in_flight.popleft().result()

    def _make_folder(self, folder: str) -> None:
        """Create `folder` and note it and each new parent up to the root: their new entries need an fsync."""
        root = str(self.root)
        os.makedirs(folder, exist_ok=True)
        for parent in _up_to(folder, root):
            self._folders.add(parent)


def _up_to(folder: str, root: str) -> Iterable[str]:
    while folder.startswith(root) and folder != root:
        yield folder
        folder = os.path.dirname(folder)
    yield root


def _write_all(fd: int, data: memoryview) -> None:
    while data:
        written = os.write(fd, data)
        data = data[written:]
