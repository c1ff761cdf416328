"""Local worker processes: where this Mac's conversion runs, outside the server process.

The server's pool hands each job to a `Converter`. `ProcessConverter` (what the runtime uses) keeps one child,
`vaultserver worker --pipe`, started at the OS's background priority, so Pillow, ffmpeg's pipes, previews and
encryption all yield the CPU to the people watching, and a decoder that crashes takes only that child down.
The child gets one JSON request per line on stdin and answers with JSON lines on stdout: progress, then one
result. It reads and writes the data folder directly (same machine, same user); it never sees the master key
or the database, only the job's data keys. `InlineConverter` runs the same conversion in the calling
thread: inside the child, and in tests that need to reach into it.

A child that dies mid-job (kill -9, a crash, a memory ceiling) fails only that attempt (`WorkerDied`); the
next job starts a new child. A child whose parent went away (its stdin closed) stops its work and exits.
"""

from __future__ import annotations

import errno
import json
import logging
import queue
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any, Protocol

from vaultserver.background import lower_priority, own_command
from vaultserver.errors import ConfigurationError, MediaError, VaultError
from vaultserver.ffmpeg import DEFAULT_LIMITS, FfmpegLimits
from vaultserver.pipeline.convert import (
    Assignment,
    ConvertedItem,
    Planned,
    Progress,
    VideoPlanned,
    convert,
    sha256_of,
)
from vaultserver.pipeline.diskspace import is_disk_full
from vaultserver.services.items import StagedItem

log = logging.getLogger(__name__)

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
STOP_GRACE_SECONDS = 10.0  # a cancelled child has this long to stop its ffmpeg before it is killed


class WorkerDied(RuntimeError):
    """The worker process ended in the middle of a job."""


class ConversionFailed(RuntimeError):
    """The worker hit an error that is not the file's fault (it is retried)."""


class Converter(Protocol):
    def hash(self, source: Path, progress: Progress, cancel: threading.Event) -> str: ...

    def convert(self, source: Path, job: Assignment, stage: Path, progress: Progress,
                cancel: threading.Event, planned: Planned | None = None) -> StagedItem: ...

    def close(self) -> None: ...


class InlineConverter:
    """The conversion itself, in this thread."""

    def __init__(self, ffmpeg: Callable[[], str], key_dir: Path,
                 limits: FfmpegLimits = DEFAULT_LIMITS) -> None:
        self._ffmpeg, self._key_dir, self._limits = ffmpeg, key_dir, limits

    def hash(self, source: Path, progress: Progress, cancel: threading.Event) -> str:
        return hash_file(source, progress, cancel)

    def convert(self, source: Path, job: Assignment, stage: Path, progress: Progress,
                cancel: threading.Event, planned: Planned | None = None) -> StagedItem:
        return convert(source, job, stage, self._key_dir, self._ffmpeg, progress, cancel, self._limits,
                       planned)

    def close(self) -> None:
        pass


def hash_file(source: Path, progress: Progress, cancel: threading.Event) -> str:
    def hashing(fraction: float) -> None:
        if cancel.is_set():
            raise InterruptedError("Stopped while hashing")
        progress("hashing", fraction)
    return sha256_of(source, hashing)


class ProcessConverter:
    """One worker child, started on first use and again after it died; one job at a time."""

    def __init__(self, ffmpeg: Callable[[], str], key_dir: Path, limits: FfmpegLimits = DEFAULT_LIMITS,
                 command: list[str] | None = None) -> None:
        self._ffmpeg, self._key_dir, self._limits = ffmpeg, key_dir, limits
        self._command = command or own_command("worker", "--pipe")
        self._proc: subprocess.Popen[str] | None = None
        self._lock = threading.Lock()  # one request at a time; guards _proc

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc and self._proc.poll() is None else None

    def hash(self, source: Path, progress: Progress, cancel: threading.Event) -> str:
        answer = self._ask({"op": "hash", "source": str(source)}, progress, cancel, None)
        return str(answer["sha256"])

    def convert(self, source: Path, job: Assignment, stage: Path, progress: Progress,
                cancel: threading.Event, planned: Planned | None = None) -> StagedItem:
        try:
            answer = self._ask({"op": "convert", "source": str(source), "stage": str(stage),
                                "key_dir": str(self._key_dir), "ffmpeg": self._ffmpeg_or_why(),
                                "limits": asdict(self._limits), "job": job.to_wire()}, progress, cancel,
                               planned)
        except WorkerDied:
            # It could not remove the HLS key file it wrote for ffmpeg: no key outlives its job.
            for leftover in self._key_dir.glob(f"{job.media_id}.*"):
                leftover.unlink(missing_ok=True)
            raise
        return ConvertedItem.parse(answer["converted"]).staged(stage, job)

    def _ffmpeg_or_why(self) -> dict[str, str]:
        """The ffmpeg to use, or why there is none: a photo converts without it."""
        try:
            return {"path": self._ffmpeg()}
        except VaultError as exc:
            return {"missing": exc.message}

    def close(self) -> None:
        with self._lock:
            self._stop_child(kill=False)

    def _ask(self, request: dict[str, Any], progress: Progress, cancel: threading.Event,
             planned: Planned | None) -> dict[str, Any]:
        with self._lock:
            proc = self._child()
            assert proc.stdin is not None and proc.stdout is not None  # both pipes
            finished = threading.Event()
            watcher = threading.Thread(target=self._cancel_on, args=(cancel, proc, finished), daemon=True)
            try:
                proc.stdin.write(json.dumps(request) + "\n")
                proc.stdin.flush()
                watcher.start()
                for line in proc.stdout:
                    message = json.loads(line)
                    if "progress" in message:
                        stage, fraction = message["progress"]
                        progress(str(stage), float(fraction))
                    elif "planned" in message:
                        try:
                            if planned is not None:
                                planned(VideoPlanned.parse(message["planned"]))
                        except BaseException:  # the job cannot go on: stop the child mid-job
                            self._stop_child(kill=True)
                            raise
                    elif "error" in message:
                        raise _error_from(message["error"])
                    else:
                        return dict(message)
            except (BrokenPipeError, json.JSONDecodeError):
                pass
            finally:
                finished.set()
            if cancel.is_set():
                self._stop_child(kill=True)
                raise InterruptedError("Stopped")
            code = proc.wait()
            self._proc = None
            raise WorkerDied(f"The worker process stopped unexpectedly (exit status {code})")

    def _child(self) -> subprocess.Popen[str]:
        if self._proc is None or self._proc.poll() is not None:
            # Its own session: a terminal's Ctrl-C goes to the server, which stops its workers in order.
            self._proc = subprocess.Popen(self._command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True, bufsize=1,
                                          start_new_session=True, preexec_fn=lower_priority)
            threading.Thread(target=_relay_log, args=(self._proc,), daemon=True,
                             name=f"vault-log-of-worker-{self._proc.pid}").start()
            log.info("Started worker process %d", self._proc.pid)
        return self._proc

    def _cancel_on(self, cancel: threading.Event, proc: subprocess.Popen[str],
                   finished: threading.Event) -> None:
        """Ask the child to stop the job when `cancel` fires; kill it if it does not within the grace."""
        while not finished.is_set():
            if cancel.wait(0.2):
                break
        if finished.is_set():
            return
        try:
            assert proc.stdin is not None
            proc.stdin.write(json.dumps({"op": "cancel"}) + "\n")
            proc.stdin.flush()
        except (OSError, ValueError):
            pass
        if not finished.wait(STOP_GRACE_SECONDS) and proc.poll() is None:
            proc.kill()

    def _stop_child(self, kill: bool) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        if kill:
            proc.kill()
        else:
            try:
                assert proc.stdin is not None
                proc.stdin.close()  # the child's end of work: it exits on end of input
            except OSError:
                pass
        try:
            proc.wait(STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _relay_log(proc: subprocess.Popen[str]) -> None:
    """The child's log lines ("LEVEL name: message") into this process's log, at their own level."""
    assert proc.stderr is not None
    level = logging.WARNING
    for line in proc.stderr:
        first, _, rest = line.rstrip().partition(" ")
        if first in LEVELS:  # else a traceback's next line: at the level of the line it belongs to
            level, line = logging.getLevelName(first), rest
        log.log(level, "worker %d: %s", proc.pid, line.rstrip())


def _error_from(error: dict[str, Any]) -> Exception:
    message = str(error.get("message", "unknown error"))
    kind = error.get("kind")
    if kind == "media":
        return MediaError(message, details=dict(error.get("details") or {}))
    if kind == "disk_full":
        return OSError(errno.ENOSPC, message)
    if kind == "interrupted":
        return InterruptedError(message)
    return ConversionFailed(message)


def _error_to(exc: Exception) -> dict[str, Any]:
    if isinstance(exc, MediaError):
        return {"kind": "media", "message": exc.message, "details": exc.details}
    if is_disk_full(exc):
        return {"kind": "disk_full", "message": str(exc)}
    if isinstance(exc, InterruptedError):
        return {"kind": "interrupted", "message": str(exc) or "Stopped"}
    return {"kind": "error", "message": f"{type(exc).__name__}: {exc}"}


def run_pipe_worker(stdin: IO[str] | None = None, stdout: IO[str] | None = None) -> int:
    """The child's side (`vaultserver worker --pipe`): serve requests until stdin ends."""
    lower_priority()
    source, sink = stdin or sys.stdin, stdout or sys.stdout
    requests: queue.Queue[dict[str, Any] | None] = queue.Queue()
    cancel = threading.Event()

    def read() -> None:
        for line in source:
            request = json.loads(line)
            if request.get("op") == "cancel":
                cancel.set()
            else:
                requests.put(request)
        cancel.set()  # the server went away: stop what is under way, then exit
        requests.put(None)

    def say(message: dict[str, Any]) -> None:
        sink.write(json.dumps(message, default=str) + "\n")
        sink.flush()

    def progress(stage: str, fraction: float) -> None:
        say({"progress": [stage, round(fraction, 4)]})

    threading.Thread(target=read, name="vault-worker-stdin", daemon=True).start()
    while (request := requests.get()) is not None:
        cancel.clear()
        try:
            say(_serve(request, progress, cancel, say))
        except Exception as exc:  # every failure is an answer: the server decides what it means
            if not isinstance(exc, MediaError | InterruptedError):
                log.exception("Worker request failed")
            say({"error": _error_to(exc)})
    return 0


def _serve(request: dict[str, Any], progress: Progress, cancel: threading.Event,
           say: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    op = request.get("op")
    if op == "hash":
        return {"sha256": hash_file(Path(request["source"]), progress, cancel)}
    if op == "convert":
        located = dict(request["ffmpeg"])

        def ffmpeg() -> str:
            if "path" not in located:
                raise ConfigurationError(located.get("missing", "No ffmpeg"))
            return str(located["path"])
        converter = InlineConverter(ffmpeg, Path(request["key_dir"]),
                                    FfmpegLimits(**request.get("limits", {})))
        staged = converter.convert(Path(request["source"]), Assignment.from_wire(request["job"]),
                                   Path(request["stage"]), progress, cancel,
                                   lambda plan: say({"planned": plan.model_dump(mode="json")}))
        return {"converted": ConvertedItem.of(staged).model_dump(mode="json")}
    raise ValueError(f"Unknown request {op!r}")
