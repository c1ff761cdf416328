"""The browser gallery's files (resources/web): the single page at `/`, its assets and its share worker.

Everything is vendored (no CDN); paths are resolved inside the web folder only, so no request can reach
another file. The page carries no inline script, which lets the CSP forbid it.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from quart import Blueprint, Response, request

from vaultserver.config import resource_path
from vaultserver.errors import NotFoundError

bp = Blueprint("web", __name__)
EXTRA_TYPES = {".webmanifest": "application/manifest+json", ".js": "text/javascript",
               ".mjs": "text/javascript"}


def web_root() -> Path:
    return resource_path("web")


def _file(relative: str, cache: str) -> Response:
    root = web_root().resolve()
    path = (root / relative).resolve()
    if root not in path.parents or not path.is_file():
        raise NotFoundError("Not found", details={"path": relative[:128]})
    guessed = mimetypes.guess_type(path.name)[0]
    content_type = EXTRA_TYPES.get(path.suffix) or guessed or "application/octet-stream"
    if content_type.startswith("text/") or content_type in ("application/javascript", "image/svg+xml"):
        content_type += "; charset=utf-8"
    stat = path.stat()
    # "no-cache" means "ask first": with an ETag the answer is a bodiless 304 until Vault is updated.
    headers = {"Content-Type": content_type, "Cache-Control": cache,
               "ETag": f'"{stat.st_mtime_ns:x}-{stat.st_size:x}"'}
    if request.headers.get("If-None-Match") == headers["ETag"]:
        return Response("", status=304, headers=headers)
    return Response(path.read_bytes(), headers=headers)


@bp.get("/")
async def index() -> Response:
    return _file("index.html", "no-cache")


@bp.get("/assets/<path:name>")
async def asset(name: str) -> Response:
    return _file(f"assets/{name}", "no-cache")


@bp.get("/manifest.webmanifest")
async def manifest() -> Response:
    return _file("manifest.webmanifest", "no-cache")


@bp.get("/share-worker.js")
async def share_worker() -> Response:
    # Served from the root so it may take the scope /share (a worker's scope can't be above its own path).
    return _file("share-worker.js", "no-cache")


@bp.post("/share")
async def share_without_worker() -> Response:
    """The phone's Share sheet posts the files to /share, where the page's share worker takes them in the
    browser. Arriving here means that worker isn't installed (yet): the body is not read (nothing is
    kept from a form any page could post) and the page says to share again."""
    # Connection: close, as the unread body can't be followed by another request.
    return Response("", status=303, headers={"Location": "/?shared=lost", "Connection": "close"})
