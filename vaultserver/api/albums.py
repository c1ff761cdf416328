"""Album routes: make, rename and delete albums, put items in and take them out, share them with accounts,
and the list of accounts the share dialog offers.

Each route is one trip off the event loop that checks the session and makes one `AlbumService` call; the
service holds every rule (who may change what, which names and ids are good), so a body is read here without
judging it, and a signed-out caller hears 401 before anything about what it sent.
"""

from __future__ import annotations

from typing import Any

from quart import Blueprint, Response, jsonify, request

from vaultserver.api.context import services, signed_in
from vaultserver.services.albums import AlbumService

bp = Blueprint("albums", __name__, url_prefix="/api")


def _albums() -> AlbumService:
    return services().albums


async def _field(name: str) -> Any:
    """One field of a JSON object body, or None (the service says what it wanted)."""
    body = await request.get_json(silent=True)
    return body.get(name) if isinstance(body, dict) else None


@bp.get("/albums")
async def albums() -> Response:
    """The albums I own or that are shared with me."""
    found = await signed_in(_albums().list)
    return jsonify({"albums": [album.to_dict() for album in found]})


@bp.post("/albums")
async def create() -> tuple[Response, int]:
    album = await signed_in(_albums().create, await _field("name"))
    return jsonify(album.to_dict()), 201


@bp.get("/albums/<album_id>")
async def album(album_id: str) -> Response:
    return jsonify((await signed_in(_albums().get, album_id)).to_dict())


@bp.patch("/albums/<album_id>")
async def rename(album_id: str) -> Response:
    album = await signed_in(_albums().rename, album_id, await _field("name"))
    return jsonify(album.to_dict())


@bp.delete("/albums/<album_id>")
async def delete(album_id: str) -> Response:
    """The album goes; its items stay in the library."""
    await signed_in(_albums().delete, album_id)
    return jsonify({"ok": True})


@bp.post("/albums/<album_id>/items")
async def add_items(album_id: str) -> Response:
    album, added = await signed_in(_albums().add_items, album_id, await _field("media_ids"))
    return jsonify({**album.to_dict(), "added": added})


@bp.delete("/albums/<album_id>/items/<media_id>")
async def remove_item(album_id: str, media_id: str) -> Response:
    return jsonify((await signed_in(_albums().remove_item, album_id, media_id)).to_dict())


@bp.post("/albums/<album_id>/shares")
async def share(album_id: str) -> Response:
    album = await signed_in(_albums().share, album_id, await _field("username"))
    return jsonify(album.to_dict())


@bp.delete("/albums/<album_id>/shares/<username>")
async def unshare(album_id: str, username: str) -> Response:
    return jsonify((await signed_in(_albums().unshare, album_id, username)).to_dict())


@bp.get("/accounts")
async def accounts() -> Response:
    """Who an album can be shared with: every active account but mine (members and admins only)."""
    return jsonify({"accounts": await signed_in(_albums().accounts_to_share_with)})
