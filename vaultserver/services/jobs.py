"""What a conversion job looks like to everyone but the queue: its view, its lease, the counts, and the
error a worker gets when its lease is gone. The queue service (`queue.py`) is the only writer of jobs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePath
from typing import Any

from vaultserver.db.models import ProcessingJob
from vaultserver.errors import VaultError


def aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class LeaseLost(VaultError):
    """The job's lease lapsed or went to another worker: this worker's writes and result are refused."""

    code, status = "MEDIA_003", 409


@dataclass(frozen=True)
class Lease:
    """A worker's hold on one job; `token` is the secret every write about the job must show."""

    job_id: str
    owner: str
    token: str
    expires_at: datetime


@dataclass(frozen=True)
class JobView:
    id: str
    path: str  # absolute: where the file was found
    import_root: str  # the import folder it was found under
    original_name: str
    status: str
    stage: str
    progress: float
    attempts: int
    error: str | None
    media_id: str | None
    next_attempt_at: datetime
    created_at: datetime
    finished_at: datetime | None
    lease: Lease | None = None  # while being converted; never part of `to_dict()` (the token is secret)

    @classmethod
    def from_row(cls, row: ProcessingJob, live: tuple[str, float] | None = None) -> JobView:
        stage, progress = live if live and row.status == "processing" else (row.stage, row.progress)
        lease = None
        if row.status == "processing" and row.lease_token and row.lease_owner and row.lease_expires_at:
            lease = Lease(row.id, row.lease_owner, row.lease_token, aware(row.lease_expires_at))
        return cls(row.id, row.path, row.import_root, row.original_name, row.status, stage, progress,
                   row.attempts, row.error, row.media_id, row.next_attempt_at, row.created_at,
                   row.finished_at, lease)

    @property
    def source(self) -> Path:
        return Path(self.path)

    @property
    def source_path(self) -> str:
        """The file's place inside the import folder it was found in: what people are shown."""
        found = PurePath(self.path)
        if not found.is_relative_to(self.import_root):
            return self.path
        return found.relative_to(self.import_root).as_posix()

    def to_dict(self) -> dict[str, Any]:
        """The admin API's shape: `source_path` relative to the import folder, as it always was."""
        data: dict[str, Any] = {"id": self.id, "source_path": self.source_path}
        hidden = ("id", "path", "import_root", "lease")
        data.update((k, v) for k, v in self.__dict__.items() if k not in hidden)
        for name in ("next_attempt_at", "created_at", "finished_at"):
            moment = data[name]
            data[name] = moment.isoformat() if moment else None
        return data


@dataclass(frozen=True)
class QueueCounts:
    queued: int = 0
    processing: int = 0
    done: int = 0
    duplicate: int = 0
    failed: int = 0
    gone: int = 0

    @property
    def active(self) -> int:
        return self.queued + self.processing
