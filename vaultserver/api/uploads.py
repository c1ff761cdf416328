"""Resumable uploads over tus 1.0.0 (core, creation, termination, expiration) at `/api/uploads`, and the
upload's status in the pipeline's words.

The protocol lives here; the rules (who may, how large, where the bytes go, the hand-off to the queue) are
`UploadService`'s. Every answer carries `Tus-Resumable`; a request that speaks another version is refused
with 412 before anything else, as the protocol asks. A PATCH body is read piece by piece as it arrives and
written to disk off the event loop, one write in flight while the next batch gathers, so memory stays flat
whatever the file's size. Bytes count only once they are on disk: a body cut off mid-way records what was
written, and a client that resumes asks HEAD for that offset.

A phone that loses its Wi-Fi often leaves a connection the server never hears close. Its PATCH would hold
the upload for ever, so a new PATCH of the same upload takes over: the earlier one is cancelled, records
what it wrote, and only then is the new one's offset compared (409 if it differs, and the client asks HEAD
again, as tus clients do).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import os
import re
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager, suppress
from email.utils import format_datetime
from typing import IO, Any, TypeVar

from quart import Blueprint, Response, current_app, g, jsonify, request

from vaultserver.api.context import run, services, signed_in
from vaultserver.api.worker_jobs import UploadingRequest
from vaultserver.errors import ValidationError, VaultError
from vaultserver.services.uploads import UploadView

bp = Blueprint("uploads", __name__)

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,termination,expiration"
OFFSET_TYPE = "application/offset+octet-stream"
UPLOADS = "/api/uploads"
PATCH_PATH = re.compile(r"^/api/uploads/[^/]+$")
PATCH_BODY_LIMIT = 64 * 1024**3  # the transport's ceiling; each upload's own length is checked before it
WRITE_BATCH = 4 * 1024 * 1024  # body pieces are gathered to this size for one write off the loop
METADATA_LIMIT = 4096
T = TypeVar("T")


class TusRequest(UploadingRequest):
    """The app's request class: also lets a tus PATCH body past the app's small MAX_CONTENT_LENGTH (decided
    before the first byte arrives; the upload's own length is what limits it)."""

    def __init__(self, method: str, scheme: str, path: str, *args: Any, **kwargs: Any) -> None:
        if method == "PATCH" and PATCH_PATH.match(path):
            kwargs["max_content_length"] = PATCH_BODY_LIMIT
        super().__init__(method, scheme, path, *args, **kwargs)


@bp.after_request
async def tus_headers(response: Response) -> Response:
    response.headers["Tus-Resumable"] = TUS_VERSION
    if response.status_code == 412:
        response.headers["Tus-Version"] = TUS_VERSION
    return response


def _speaks_tus() -> None:
    if request.headers.get("Tus-Resumable") != TUS_VERSION:
        raise VaultError(f"This server speaks tus {TUS_VERSION}", code="VALIDATION_001", status=412,
                         details={"Tus-Version": TUS_VERSION})


def _whole_number(name: str) -> int:
    value = request.headers.get(name, "")
    if not value.isdigit() or len(value) > 19:
        raise ValidationError(f"'{name}' must be a whole number of bytes", details={"header": name})
    return int(value)


def parse_metadata(header: str) -> dict[str, str]:
    """`Upload-Metadata`: comma-separated `key base64(value)` pairs (a key alone has an empty value)."""
    if len(header) > METADATA_LIMIT:
        raise ValidationError("'Upload-Metadata' is too long", details={"header": "Upload-Metadata"})
    found: dict[str, str] = {}
    for pair in filter(None, (p.strip() for p in header.split(","))):
        key, _, encoded = pair.partition(" ")
        try:
            value = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise ValidationError("'Upload-Metadata' values must be base64 of UTF-8 text",
                                  details={"header": "Upload-Metadata", "key": key[:64]}) from None
        if not key or key in found:
            raise ValidationError("'Upload-Metadata' keys must be present and unique",
                                  details={"header": "Upload-Metadata"})
        found[key] = value
    return found


def _expires(view: UploadView) -> dict[str, str]:
    return {} if view.complete else {"Upload-Expires": format_datetime(view.expires_at, usegmt=True)}


@bp.route(UPLOADS, methods=["OPTIONS"])
@bp.route(f"{UPLOADS}/<upload_id>", methods=["OPTIONS"])
async def discover(upload_id: str | None = None) -> Response:
    """What this server speaks; no sign-in needed (it says nothing about anyone)."""
    headers = {"Tus-Version": TUS_VERSION, "Tus-Extension": TUS_EXTENSIONS,
               "Tus-Max-Size": str(services().uploads.max_size)}
    return Response("", 204, headers)


@bp.post(UPLOADS)
async def create() -> Response:
    """Creation: 201 with `Location`; 413 (before any byte) when the file is too large to take."""
    _speaks_tus()
    if "Upload-Defer-Length" in request.headers:
        raise ValidationError("Send 'Upload-Length': uploads of unknown length are not supported",
                              details={"header": "Upload-Defer-Length"})
    length = _whole_number("Upload-Length")
    metadata = parse_metadata(request.headers.get("Upload-Metadata", ""))
    view = await signed_in(services().uploads.create, length, metadata)
    headers = {"Location": f"{UPLOADS}/{view.id}", "Upload-Offset": str(view.offset), **_expires(view)}
    return Response("", 201, headers)


@bp.route(f"{UPLOADS}/<upload_id>", methods=["GET", "HEAD"])
async def state(upload_id: str) -> Response:
    """HEAD: the offset to resume from (tus). GET: how it went, in the pipeline's words (Vault's own)."""
    if request.method == "HEAD":
        _speaks_tus()
        view = await signed_in(services().uploads.get, upload_id)
        return Response("", 200, {"Upload-Offset": str(view.offset), "Upload-Length": str(view.length),
                                  "Cache-Control": "no-store", **_expires(view)})
    response = jsonify(await signed_in(services().uploads.status, upload_id))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.delete(f"{UPLOADS}/<upload_id>")
async def terminate(upload_id: str) -> tuple[str, int]:
    """Termination: 204, then the upload is gone (404)."""
    _speaks_tus()
    await signed_in(services().uploads.delete, upload_id)
    return "", 204


@bp.patch(f"{UPLOADS}/<upload_id>")
async def append(upload_id: str) -> Response:
    """Core: the body's bytes at `Upload-Offset`; 204 with the new offset. 409 when the offset is not the
    upload's, 415 for another Content-Type, 413 for a body past the upload's length."""
    _speaks_tus()
    if request.mimetype != OFFSET_TYPE:
        raise VaultError(f"Send the bytes as {OFFSET_TYPE}", code="VALIDATION_001", status=415)
    offset = _whole_number("Upload-Offset")
    uploads = services().uploads
    async with _writers().take(upload_id):
        view = await signed_in(uploads.begin_write, upload_id, offset, request.content_length)
        who = g.principal
        sink = await run(_Sink.open, uploads.file_of(upload_id), offset)
        overflow = False
        try:
            async for piece in request.body:
                room = view.length - sink.received
                overflow = len(piece) > room
                await sink.add(piece[:room])
                if overflow:
                    break
            await sink.flush()
        except OSError as exc:  # a full disk, most likely: the client may resume once there is room
            raise VaultError("The upload could not be written to disk", code="SYSTEM_002", status=507,
                             details={"reason": exc.strerror or str(exc)}) from exc
        finally:  # a cut connection or a takeover too: what reached the disk counts, nothing more
            view = await _to_the_end(_settle(sink, lambda end: uploads.record_offset(who, upload_id, end)))
    if overflow:
        raise VaultError("The body goes past the upload's length", code="VALIDATION_001", status=413,
                         details={"length": view.length, "offset": view.offset})
    return Response("", 204, {"Upload-Offset": str(view.offset), **_expires(view)})


async def _to_the_end(work: Awaitable[T]) -> T:
    """Run `work` to its end even if this task is cancelled meanwhile (even twice: a dropped connection and
    a takeover); the cancellation is raised afterwards. A takeover waits for this task to end, so the
    offset is recorded before the next PATCH reads it."""
    task, cancelled = asyncio.ensure_future(work), False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError
    return task.result()


async def _settle(sink: _Sink, record: Any) -> UploadView:
    end = await sink.close()
    view: UploadView = await run(record, end)
    return view


class _Sink:
    """The upload's file from `offset` on: batches written off the loop, one in flight at a time."""

    def __init__(self, fh: IO[bytes], offset: int) -> None:
        self._fh, self.received, self._written = fh, offset, offset
        self._batch = bytearray()
        self._pending: asyncio.Future[int] | None = None

    @classmethod
    def open(cls, path: os.PathLike[str], offset: int) -> _Sink:
        return cls(open(path, "ab", buffering=0), offset)  # noqa: SIM115 - closed by close()

    async def add(self, piece: bytes) -> None:
        self._batch += piece
        self.received += len(piece)
        if len(self._batch) >= WRITE_BATCH:
            await self.flush(wait=False)

    async def flush(self, wait: bool = True) -> None:
        await self._drain()
        if self._batch:
            data, self._batch = bytes(self._batch), bytearray()
            self._pending = asyncio.ensure_future(asyncio.to_thread(self._write, data))
        if wait:
            await self._drain()

    def _write(self, data: bytes) -> int:
        view = memoryview(data)
        while view:
            view = view[self._fh.write(view) or 0:]
        return len(data)

    async def _drain(self) -> None:
        if self._pending is not None:  # cleared only once done: close() waits for a write cut short here
            self._written += await asyncio.shield(self._pending)
            self._pending = None

    async def close(self) -> int:
        """Write what has arrived, fsync, close; returns the offset that is on disk (a phone on a poor link
        may never get a whole batch through before it drops, and must still make progress)."""
        try:
            with suppress(OSError):
                await self.flush()
            await run(os.fsync, self._fh.fileno())
        finally:
            self._fh.close()
        return self._written


class _Writers:
    """One PATCH at a time per upload; a new one cancels the one before and waits for it to settle."""

    def __init__(self) -> None:
        self._current: dict[str, asyncio.Task[Any]] = {}

    @asynccontextmanager
    async def take(self, upload_id: str) -> AsyncIterator[None]:
        me = asyncio.current_task()
        assert me is not None
        while (earlier := self._current.get(upload_id)) is not None and earlier is not me:
            earlier.cancel()
            await asyncio.wait({earlier})
        self._current[upload_id] = me
        try:
            yield
        finally:
            if self._current.get(upload_id) is me:
                del self._current[upload_id]


def _writers() -> _Writers:
    writers: _Writers = current_app.extensions.setdefault("vault_upload_writers", _Writers())
    return writers
