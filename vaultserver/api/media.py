"""Media routes: the library listing, item details, favorites, pictures, HLS playlists/segments, segment keys,
downloads.

Every route is the same three steps: read the request, one trip to a worker thread that checks the session
and makes one `MediaService` call (which checks the id, finds the item and reads the file), one response.
Bytes only ever go out through these id-based routes (never file paths). At-rest files are decrypted; HLS
segments are sent as stored (already AES-128). Playlists are rewritten to relative URLs, so they work
through any host name or address.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from quart import Blueprint, Response, jsonify, request

from vaultserver import hls
from vaultserver.api.context import client_ip, principal, services, signed_in
from vaultserver.api.streaming import pieces_off_loop, send_body
from vaultserver.errors import ValidationError
from vaultserver.services.media import Download, MediaService

bp = Blueprint("media", __name__, url_prefix="/api/media")
_VARIANT_LINE = re.compile(r"^(\d{2,4}p/index\.m3u8)$", re.M)


def _media() -> MediaService:
    return services().media


def _int_arg(name: str, default: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValidationError(f"'{name}' must be a whole number", details={"field": name}) from None


def _bool_arg(name: str) -> bool:
    raw = request.args.get(name, "").lower()
    if raw not in ("", "true", "false", "1", "0"):
        raise ValidationError(f"'{name}' must be true or false", details={"field": name})
    return raw in ("true", "1")


@bp.get("/library")
async def library() -> Response:
    """`?album=ID` one album's items, `?favorite=true` the asker's favorites, with the usual paging/sort."""
    try:
        page_number, limit, favorite = _int_arg("page", 1), _int_arg("limit", 50), _bool_arg("favorite")
    except ValidationError:
        await principal()  # someone signed out hears that first, whatever they asked
        raise
    page = await signed_in(
        _media().listing,
        media_type=request.args.get("type") or None,
        q=(request.args.get("q") or "")[:200] or None,
        sort=request.args.get("sort", "created_at"),
        order=request.args.get("order", "desc"),
        page=page_number,
        limit=limit,
        album=request.args.get("album") or None,
        favorite=favorite,
    )
    return jsonify(
        {
            "items": [item.to_dict() for item in page.items],
            "pagination": {"page": page.page, "limit": page.limit, "total": page.total, "pages": page.pages},
        }
    )


@bp.get("/<media_id>")
async def item(media_id: str) -> Response:
    found, position = await signed_in(_media().details, media_id)
    return jsonify({**found.to_dict(), "position": position})


@bp.put("/<media_id>/position")
async def save_position(media_id: str) -> Response:
    """Where this user stopped watching; the player resumes there on any of their devices."""
    body = await request.get_json(silent=True)
    seconds = body.get("position") if isinstance(body, dict) else None
    if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds != seconds:
        await principal()
        raise ValidationError("'position' must be a number of seconds", details={"field": "position"})
    saved = await signed_in(_media().save_position, media_id, seconds)
    return jsonify({"position": saved})


@bp.put("/<media_id>/favorite")
async def favorite(media_id: str) -> Response:
    """This person's heart on an item (per person; an item they may not see is a 404)."""
    return jsonify({"favorite": await signed_in(_media().mark_favorite, media_id, True)})


@bp.delete("/<media_id>/favorite")
async def unfavorite(media_id: str) -> Response:
    return jsonify({"favorite": await signed_in(_media().mark_favorite, media_id, False)})


@bp.get("/<media_id>/download")
async def download(media_id: str) -> Response:
    """The item as a file to keep (`Content-Disposition: attachment`): a photo's original or WebP (ranges
    work), or a video as an MP4 made while it is sent (no ranges: it has no size until it is made)."""
    found: Download = await signed_in(_media().download, media_id, client_ip())
    if found.body is not None:
        response = send_body(found.body)
    else:
        assert found.stream is not None
        content = b"" if request.method == "HEAD" else pieces_off_loop(found.stream)
        response = Response(content, headers={"Content-Type": found.content_type, "Accept-Ranges": "none",
                                              "Cache-Control": "private, no-store"})
    response.headers["Content-Disposition"] = attachment(found.filename)
    response.timeout = None  # a large file over a slow line takes as long as it takes
    return response


def attachment(filename: str) -> str:
    """RFC 6266: the UTF-8 name for every current browser, an ASCII stand-in for the rest."""
    plain = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in filename)
    return f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(filename, safe='')}"


@bp.get("/thumbnail/<media_id>")
async def thumbnail(media_id: str) -> Response:
    return send_body(await signed_in(_media().picture, media_id, "thumbnail"))


@bp.get("/preview/<media_id>")
async def preview(media_id: str) -> Response:
    return send_body(await signed_in(_media().picture, media_id, "preview"))


@bp.get("/poster/<media_id>")
async def poster(media_id: str) -> Response:
    return send_body(await signed_in(_media().picture, media_id, "poster"))


def _playlist(text: str) -> Response:
    return Response(
        text, headers={"Content-Type": "application/vnd.apple.mpegurl", "Cache-Control": "private, no-cache"}
    )


@bp.get("/stream/<media_id>")
async def stream(media_id: str) -> Response:
    """A photo's WebP, or a video's master playlist (variant URIs relative to this URL)."""
    found = await signed_in(_media().stream, media_id)
    if not isinstance(found, str):
        return send_body(found)
    return _playlist(_VARIANT_LINE.sub(rf"../hls/{media_id}/\1", found))


@bp.get("/hls/<media_id>/<rung>/index.m3u8")
async def variant(media_id: str, rung: str) -> Response:
    text = await signed_in(_media().variant, media_id, rung)
    return _playlist(hls.with_key_url(text, "../../../keys/"))


@bp.get("/hls/<media_id>/<rung>/<segment>")
async def segment(media_id: str, rung: str, segment: str) -> Response:
    return send_body(await signed_in(_media().segment, media_id, rung, segment))


@bp.get("/keys/<key_id>")
async def key(key_id: str) -> Response:
    """The 16-byte AES-128 key of one video, to an authorised session only; never cached; audited."""
    data = await signed_in(_media().hls_key, key_id, client_ip())
    return Response(
        data,
        headers={
            "Content-Type": "application/octet-stream",
            "Cache-Control": "no-store",
            "Pragma": "no-cache",
        },
    )
