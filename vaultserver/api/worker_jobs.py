"""The routes a remote worker converts through: lease a job, read its original, get its keys, report progress,
upload the encrypted outputs, commit (or fail) it.

Thin on purpose: each route authenticates the worker (`current_worker()`, its token as a bearer), parses the
request, calls `RemoteJobs` (the server's side of remote conversion: leases, keys, checks, the commit) off
the event loop, and answers. Every call about a job shows its lease token in `X-Vault-Lease`; a stale one is
answered 409 MEDIA_003 by RemoteJobs, so a worker that lost its job learns it at its next call.

Uploads are the one place a body may be large (a video segment, a kept original): `UploadingRequest` lifts
the app's 64 KiB body limit for them alone, before the first byte arrives, and the route writes the body to
disk piece by piece under a temporary name, renamed into place only once whole, so a cut connection never
leaves a short file that looks finished. The limit per file is RemoteJobs' (413 beyond it).
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from quart import Blueprint, Request, Response, current_app, jsonify, request

from vaultserver.api.context import client_ip, json_body, run, services, text_field
from vaultserver.api.streaming import send_body
from vaultserver.api.workers import current_worker, require_worker
from vaultserver.errors import ValidationError, VaultError
from vaultserver.services.media import MediaBody

if TYPE_CHECKING:
    from vaultserver.pipeline.remote_jobs import RemoteJobs

bp = Blueprint("worker_jobs", __name__)

LEASE_HEADER = "X-Vault-Lease"
JOBS = "/api/workers/jobs"
UPLOAD_PATH = re.compile(r"^/api/workers/jobs/[^/]+/files/")
UPLOAD_BODY_LIMIT = 64 * 1024**3  # the transport's ceiling for an upload; RemoteJobs sets each file's own
READ_PIECE = 1024 * 1024
WRITE_BATCH = 1024 * 1024  # body pieces are gathered to this size before one write off the loop
MAX_ENCODERS = 32
STAGES = 64  # characters of a progress stage's name


class UploadingRequest(Request):
    """The app's request class: a worker's file upload may be as large as RemoteJobs allows, every other
    body stays within the app's MAX_CONTENT_LENGTH. Decided here, when the request is made, since the body
    starts to arrive (and is cut off at the limit) before any route runs."""

    def __init__(self, method: str, scheme: str, path: str, *args: Any, **kwargs: Any) -> None:
        if method == "PUT" and UPLOAD_PATH.match(path):
            kwargs["max_content_length"] = UPLOAD_BODY_LIMIT
        super().__init__(method, scheme, path, *args, **kwargs)


def remote_jobs() -> RemoteJobs:
    jobs: RemoteJobs | None = current_app.config.get("VAULT_REMOTE_JOBS")
    if jobs is None:
        raise VaultError("Conversion is not running on this Vault", code="SYSTEM_001", status=503)
    return jobs


def lease_token() -> str:
    token = request.headers.get(LEASE_HEADER, "").strip()
    if not token or len(token) > 256:
        raise ValidationError(f"Send the job's lease token in {LEASE_HEADER}",
                              details={"header": LEASE_HEADER})
    return token


def _encoders(body: dict[str, Any]) -> list[str]:
    value = body.get("encoders", [])
    if (not isinstance(value, list) or len(value) > MAX_ENCODERS
            or not all(isinstance(e, str) and 0 < len(e) <= 64 for e in value)):
        raise ValidationError("'encoders' must be a list of encoder names", details={"field": "encoders"})
    return [str(e) for e in value]


@bp.post("/api/workers/lease")
@require_worker
async def lease() -> Response | tuple[str, int]:
    """200 with the job (and where to read its original), or 204 when there is nothing this worker can do."""
    worker = await current_worker()
    encoders = _encoders(await json_body())
    jobs, s, address = remote_jobs(), services(), client_ip()

    def take() -> dict[str, Any] | None:
        s.workers.seen(worker.name, address=address, encoders=encoders)
        granted = jobs.lease(worker.name, encoders)
        if granted is None:
            return None
        s.workers.working(worker.name, granted.job_id, "leased", 0.0)
        return {**granted.to_dict(), "source": f"{JOBS}/{granted.job_id}/source"}

    answer = await run(take)
    return jsonify(answer) if answer is not None else ("", 204)


def _file_pieces(path: Path, start: int, end: int) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        fh.seek(start)
        remaining = end - start
        while remaining > 0 and (piece := fh.read(min(READ_PIECE, remaining))):
            remaining -= len(piece)
            yield piece


@bp.route(f"{JOBS}/<job_id>/source", methods=["GET", "HEAD"])
@require_worker
async def source(job_id: str) -> Response:
    """The original, streamed (single ranges too, so a cut download can resume)."""
    token, jobs = lease_token(), remote_jobs()

    def locate() -> tuple[Path, int]:
        path = jobs.source(job_id, token)
        return path, path.stat().st_size

    path, size = await run(locate)
    body = MediaBody(size=size, etag=f'"{job_id}-{size}"', content_type="application/octet-stream",
                     pieces=lambda start, end: _file_pieces(path, start, end))
    return send_body(body, cache="no-store")


@bp.post(f"{JOBS}/<job_id>/hash")
@require_worker
async def hashed(job_id: str) -> Response:
    """The original's SHA-256: a duplicate ends the job here; otherwise the job's data keys come back."""
    token, jobs = lease_token(), remote_jobs()
    sha256 = text_field(await json_body(), "sha256", limit=64).lower()
    if not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise ValidationError("'sha256' must be 64 hexadecimal digits", details={"field": "sha256"})
    assignment = await run(jobs.hashed, job_id, token, sha256)
    if assignment is None:
        return jsonify({"duplicate": True})
    return jsonify({"duplicate": False, "assignment": assignment.to_wire()})


@bp.post(f"{JOBS}/<job_id>/heartbeat")
@require_worker
async def heartbeat(job_id: str) -> Response:
    """Renew the lease; the worker's progress is shown in the Workers view."""
    worker = await current_worker()
    token, jobs, s = lease_token(), remote_jobs(), services()
    body = await json_body()
    stage = text_field(body, "stage", limit=STAGES)
    progress = body.get("progress")
    if not isinstance(progress, int | float) or isinstance(progress, bool) or not 0 <= progress <= 1:
        raise ValidationError("'progress' must be a number from 0 to 1", details={"field": "progress"})

    def beat() -> str:
        expires = jobs.heartbeat(job_id, token, stage, float(progress))
        s.workers.working(worker.name, job_id, stage, float(progress))
        return expires.isoformat()

    return jsonify({"expires_at": await run(beat)})


def _open_part(path: Path) -> tuple[Path, IO[bytes]]:
    """A new temporary file beside `path` (same folder, so the rename is atomic)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(f".{path.name}.{secrets.token_hex(6)}.part")
    return part, open(part, "xb")  # noqa: SIM115 - closed by the route, whatever happens


def _finish_part(fh: IO[bytes], part: Path, path: Path) -> None:
    fh.close()
    os.replace(part, path)


def _drop_part(fh: IO[bytes], part: Path) -> None:
    fh.close()
    part.unlink(missing_ok=True)


@bp.put(f"{JOBS}/<job_id>/files/<path:relative>")
@require_worker
async def upload(job_id: str, relative: str) -> tuple[str, int]:
    """One output file of the job's staging folder, as raw bytes; 413 beyond the size RemoteJobs allows."""
    token, jobs = lease_token(), remote_jobs()
    if relative.startswith("/") or any(part in ("", ".", "..") for part in relative.split("/")):
        raise ValidationError("Not a file name inside the job's folder", details={"path": relative[:256]})
    path, limit = await run(jobs.upload_path, job_id, token, relative)
    declared = request.content_length
    if declared is not None and declared > limit:
        raise VaultError("The file is larger than this job's output can be", code="VALIDATION_001",
                         status=413, details={"limit": limit})
    part, fh = await run(_open_part, path)
    written, batch = 0, bytearray()
    try:
        async for piece in request.body:
            written += len(piece)
            if written > limit:
                raise VaultError("The file is larger than this job's output can be", code="VALIDATION_001",
                                 status=413, details={"limit": limit})
            batch += piece
            if len(batch) >= WRITE_BATCH:
                await run(fh.write, bytes(batch))
                batch.clear()
        if batch:
            await run(fh.write, bytes(batch))
        await run(_finish_part, fh, part, path)
    except BaseException:  # a refusal, a cut connection, a cancelled request: no partial file stays
        await asyncio.shield(run(_drop_part, fh, part))
        raise
    return "", 204


@bp.post(f"{JOBS}/<job_id>/commit")
@require_worker
async def commit(job_id: str) -> tuple[Response, int]:
    """201 with the new item's id, once the server has checked what was uploaded."""
    worker = await current_worker()
    token, jobs, s = lease_token(), remote_jobs(), services()
    result = (await json_body()).get("result")
    if not isinstance(result, dict):
        raise ValidationError("'result' must be the converted item", details={"field": "result"})

    def finish() -> str:
        media_id = jobs.commit(job_id, token, result)
        s.workers.working(worker.name, None)
        return media_id

    return jsonify({"media_id": await run(finish)}), 201


@bp.post(f"{JOBS}/<job_id>/fail")
@require_worker
async def fail(job_id: str) -> tuple[str, int]:
    """The worker could not convert it: kind "media" (the file's fault: quarantined) or "error" (retried)."""
    worker = await current_worker()
    token, jobs, s = lease_token(), remote_jobs(), services()
    body = await json_body()
    kind = body.get("kind")
    if kind not in ("media", "error"):
        raise ValidationError("'kind' must be \"media\" or \"error\"", details={"field": "kind"})
    message = text_field(body, "message", limit=2000)
    details = body.get("details") or {}
    if not isinstance(details, dict):
        raise ValidationError("'details' must be an object", details={"field": "details"})

    def record() -> None:
        jobs.fail(job_id, token, str(kind), message, details)
        s.workers.working(worker.name, None)

    await run(record)
    return "", 204
