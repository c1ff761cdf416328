"""Media routes: the library listing, item details, pictures, HLS playlists/segments and segment keys.

Bytes only ever go out through these id-based routes (never file paths). At-rest files are decrypted as a
stream in 256 KiB pieces with Range and ETag support; HLS segments are sent as stored (already AES-128).
Playlists are rewritten to relative URLs, so they work through any host name or address.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from quart import Blueprint, Response, g, jsonify, request

from vaultserver import hls
from vaultserver.api.auth import client_ip, require_auth, run, services
from vaultserver.errors import NotFoundError, ValidationError, VaultError
from vaultserver.services.audit import AuditEvent
from vaultserver.services.library import (
    HLS_DIR,
    IMAGE_FILE,
    MASTER_PLAYLIST,
    POSTER_FILE,
    PREVIEW_FILE,
    THUMB_FILE,
)

bp = Blueprint("media", __name__, url_prefix="/api/media")
PIECE = 256 * 1024
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_ID = re.compile(r"^[0-9a-f]{32}$")
PRIVATE_CACHE = "private, max-age=3600"


def _check_id(value: str) -> str:
    if not _ID.match(value):
        raise NotFoundError("No such media item", details={"id": value[:64]})
    return value


def _int_arg(name: str, default: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValidationError(f"'{name}' must be a whole number", details={"field": name}) from None


@bp.get("/library")
@require_auth()
async def library() -> Response:
    page = await run(
        services().library.list,
        media_type=request.args.get("type") or None,
        q=(request.args.get("q") or "")[:200] or None,
        sort=request.args.get("sort", "created_at"),
        order=request.args.get("order", "desc"),
        page=_int_arg("page", 1),
        limit=_int_arg("limit", 50),
    )
    return jsonify(
        {
            "items": [item.to_dict() for item in page.items],
            "pagination": {"page": page.page, "limit": page.limit, "total": page.total, "pages": page.pages},
        }
    )


@bp.get("/<media_id>")
@require_auth()
async def item(media_id: str) -> Response:
    library = services().library
    found = await run(library.get, _check_id(media_id))
    position = await run(library.position, g.principal.user_id, media_id)
    return jsonify({**found.to_dict(), "position": position})


@bp.put("/<media_id>/position")
@require_auth()
async def save_position(media_id: str) -> Response:
    """Where this user stopped watching; the player resumes there on any of their devices."""
    body = await request.get_json(silent=True)
    seconds = body.get("position") if isinstance(body, dict) else None
    if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds != seconds:
        raise ValidationError("'position' must be a number of seconds", details={"field": "position"})
    saved = await run(services().library.save_position, g.principal.user_id, _check_id(media_id), seconds)
    return jsonify({"position": saved})


def _parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(start, end exclusive) for a single `bytes=` range; None for the whole file; 416 if unsatisfiable."""
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if not match or (not match[1] and not match[2]):
        return None  # malformed or multi-range: RFC 9110 allows answering with the whole body
    if match[1]:
        start, end = int(match[1]), int(match[2]) + 1 if match[2] else size
    else:
        start, end = max(size - int(match[2]), 0), size
    if start >= size or end <= start:
        raise VaultError(
            "Requested range not satisfiable", code="MEDIA_004", status=416, details={"size": size}
        )
    return start, min(end, size)


async def _aiter(pieces: Iterator[bytes]) -> AsyncIterator[bytes]:
    """Pull a blocking iterator (file reads, decryption) one piece at a time on a worker thread."""
    while True:
        piece = await asyncio.to_thread(next, pieces, None)
        if piece is None:
            return
        yield piece


def _file_pieces(path: Path, start: int, end: int) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        fh.seek(start)
        remaining = end - start
        while remaining > 0:
            piece = fh.read(min(PIECE, remaining))
            if not piece:
                return
            remaining -= len(piece)
            yield piece


def _stream(size: int, etag: str, content_type: str, pieces, cache: str = PRIVATE_CACHE) -> Response:
    """A 200 or 206 response with ETag; `pieces` is the whole body, or `pieces(start, end)` yields it."""
    headers = {"ETag": etag, "Accept-Ranges": "bytes", "Cache-Control": cache, "Content-Type": content_type}
    if request.headers.get("If-None-Match") == etag:
        return Response(b"", status=304, headers=headers)
    span = _parse_range(request.headers.get("Range"), size)
    start, end = span or (0, size)
    status = 206 if span else 200
    if span:
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    headers["Content-Length"] = str(end - start)
    if request.method == "HEAD":
        body = b""
    elif isinstance(pieces, bytes):
        body = pieces[start:end]
    else:
        body = _aiter(pieces(start, end))
    return Response(body, status=status, headers=headers)


SMALL_FILE = 1024 * 1024
WHOLE_SEGMENT = 8 * 1024 * 1024  # a 10 s segment of the top rung is ~2-8 MB


def _open_sealed(media_id: str, pick) -> tuple:
    """In one trip off the event loop: the item, its file, and (if small) the decrypted bytes."""
    library = services().library
    item = library.get(_check_id(media_id))
    name = pick(item)
    sealed = library.sealed(media_id, name)
    whole = b"".join(sealed.iter_range()) if sealed.size <= SMALL_FILE else None
    etag = f'"{media_id}-{name.replace("/", "-")}-{int(sealed.path.stat().st_mtime)}"'
    return sealed, whole, etag


async def _sealed(media_id: str, pick, content_type: str = "image/webp") -> Response:
    sealed, whole, etag = await run(_open_sealed, media_id, pick)
    return _stream(sealed.size, etag, content_type, whole if whole is not None else sealed.iter_range)


def _picture(video_file: str, image_file: str):
    return lambda item: video_file if item.type == "video" else image_file


@bp.get("/thumbnail/<media_id>")
@require_auth()
async def thumbnail(media_id: str) -> Response:
    return await _sealed(media_id, _picture(THUMB_FILE, THUMB_FILE))


@bp.get("/preview/<media_id>")
@require_auth()
async def preview(media_id: str) -> Response:
    return await _sealed(media_id, _picture(PREVIEW_FILE, THUMB_FILE))


@bp.get("/poster/<media_id>")
@require_auth()
async def poster(media_id: str) -> Response:
    return await _sealed(media_id, _picture(POSTER_FILE, IMAGE_FILE))


def _playlist(text: str) -> Response:
    return Response(
        text, headers={"Content-Type": "application/vnd.apple.mpegurl", "Cache-Control": "private, no-cache"}
    )


@bp.get("/stream/<media_id>")
@require_auth()
async def stream(media_id: str) -> Response:
    """A photo's WebP, or a video's master playlist (variant URIs relative to this URL)."""
    found = await run(services().library.get, _check_id(media_id))
    if found.type == "image":
        return await _sealed(media_id, lambda _item: IMAGE_FILE)
    master = (await run(services().library.read, media_id, MASTER_PLAYLIST)).decode()
    return _playlist(re.sub(r"^(\d{2,4}p/index\.m3u8)$", rf"../hls/{media_id}/\1", master, flags=re.M))


@bp.get("/hls/<media_id>/<rung>/index.m3u8")
@require_auth()
async def variant(media_id: str, rung: str) -> Response:
    if not re.fullmatch(r"\d{2,4}p", rung):
        raise NotFoundError("No such rendition", details={"rendition": rung[:16]})
    text = (
        await run(services().library.read, _check_id(media_id), f"{HLS_DIR}/{rung}/index.m3u8.vlt")
    ).decode()
    return _playlist(hls.with_key_url(text, "../../../keys/"))


@bp.get("/hls/<media_id>/<rung>/<segment>")
@require_auth()
async def segment(media_id: str, rung: str, segment: str) -> Response:
    path = await run(services().library.segment_path, _check_id(media_id), f"{rung}/{segment}")
    stat = path.stat()
    etag = f'"{media_id}-{rung}-{segment}-{int(stat.st_mtime)}"'
    if stat.st_size <= WHOLE_SEGMENT and request.method != "HEAD":  # 10 s segments: read in one hop
        return _stream(stat.st_size, etag, "video/mp2t", await run(path.read_bytes))
    return _stream(stat.st_size, etag, "video/mp2t", lambda start, end: _file_pieces(path, start, end))


@bp.get("/keys/<key_id>")
@require_auth()
async def key(key_id: str) -> Response:
    """The 16-byte AES-128 key of one video, to an authorised session only; never cached; audited."""
    s = services()
    data = await run(s.keys.hls_key, _check_id(key_id))
    who = g.principal
    await run(
        s.audit.record,
        AuditEvent(
            "key_fetch",
            user_id=who.user_id,
            username=who.username,
            session_id=who.session_id,
            ip_address=client_ip(),
            resource=key_id,
        ),
    )
    return Response(
        data,
        headers={
            "Content-Type": "application/octet-stream",
            "Cache-Control": "no-store",
            "Pragma": "no-cache",
        },
    )
