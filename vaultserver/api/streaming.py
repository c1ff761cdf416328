"""Turning a `MediaBody` into an HTTP answer: ETag and 304, single-range requests (206, 416), HEAD.

A body read whole by the service is sliced in memory; a streamed one is pulled piece by piece, each piece
read (and decrypted) on a worker thread, so a large file never sits in memory and never blocks the loop.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator

from quart import Response, request

from vaultserver.errors import VaultError
from vaultserver.services.media import MediaBody

PRIVATE_CACHE = "private, max-age=3600"
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
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


async def pieces_off_loop(pieces: Iterator[bytes]) -> AsyncIterator[bytes]:
    """Pull a blocking iterator (file reads, decryption) one piece at a time on a worker thread."""
    try:
        while True:
            piece = await asyncio.to_thread(next, pieces, None)
            if piece is None:
                return
            yield piece
    finally:
        close = getattr(pieces, "close", None)
        if close:  # a client that went away: close the file now, not whenever the generator is collected
            close()


def send_body(body: MediaBody, cache: str = PRIVATE_CACHE) -> Response:
    """A 200 or 206 answer with ETag and Accept-Ranges; 304 when the client already has this version."""
    headers = {"ETag": body.etag, "Accept-Ranges": "bytes", "Cache-Control": cache,
               "Content-Type": body.content_type}
    if request.headers.get("If-None-Match") == body.etag:
        return Response(b"", status=304, headers=headers)
    span = parse_range(request.headers.get("Range"), body.size)
    start, end = span or (0, body.size)
    if span:
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{body.size}"
    headers["Content-Length"] = str(end - start)
    if request.method == "HEAD":
        content: bytes | AsyncIterator[bytes] = b""
    elif body.data is not None:
        content = body.data[start:end] if span else body.data
    else:
        assert body.pieces is not None
        content = pieces_off_loop(body.pieces(start, end))
    return Response(content, status=206 if span else 200, headers=headers)
