"""What a signed-in person may read from the library: the one door every media route goes through.

Each method answers one route in one call, on one worker thread: it checks the id once, finds the item,
then stats, opens and (for files up to a few MB) reads and decrypts the file it names. Every method takes
the `Principal` asking, and the access rule (`services/access.py`) is asked here and nowhere else: an id
that is malformed, unknown, hidden from the person asking or aims outside the library is the same 404
(MEDIA_001) as a file that is not there. Favorites are per person: every item this door hands out says
whether the person asking has marked it.

A video still converting is served from the folder its worker writes: a master playlist made from its
planned ladder once every rung has a first segment, growing EVENT playlists that start players at the
beginning, and each segment once whole; its pictures come with its commit.

A download is a file to keep (`download`): a photo's kept original, else its WebP; a video's best rung
remuxed on the fly into an MP4 (its segments decrypted in memory, piped through ffmpeg: no key and no
plaintext on disk). It needs the account's download right besides the access rule, and is audited.
"""

from __future__ import annotations

import mimetypes
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from vaultserver import hls
from vaultserver.config import AppPaths
from vaultserver.crypto.container import SealedFile, unseal
from vaultserver.db.models import is_id
from vaultserver.errors import NotFoundError, ValidationError, VaultError
from vaultserver.ffmpeg import RemuxedMp4, ffmpeg
from vaultserver.services.access import GUEST, AccessRule, visible, visible_total
from vaultserver.services.albums import AlbumService
from vaultserver.services.audit import AuditEvent, AuditService
from vaultserver.services.converting import CONVERTING, ConvertingItems
from vaultserver.services.events import Event
from vaultserver.services.favorites import FavoriteService
from vaultserver.services.items import (
    HLS_DIR,
    IMAGE_FILE,
    MASTER_PLAYLIST,
    ORIGINAL_FILE,
    POSTER_FILE,
    PREVIEW_FILE,
    THUMB_FILE,
    MediaItem,
    Page,
)
from vaultserver.services.keys import KeyService
from vaultserver.services.library import LibraryService
from vaultserver.services.principal import Principal
from vaultserver.services.saved_names import saved_name

_RUNG = re.compile(r"[0-9]{2,4}p")
_SEGMENT = re.compile(r"seg_[0-9]{5}\.ts")
LIVE_PLAYLIST = "index.m3u8"  # what ffmpeg rewrites after each segment while a video converts
START_TAG = "#EXT-X-START:TIME-OFFSET=0,PRECISE=YES"
PIECE = 256 * 1024
WHOLE_PICTURE = 1024 * 1024  # decrypted in the service's trip; larger pictures stream in pieces
WHOLE_SEGMENT = 8 * 1024 * 1024  # a 10 s segment of the top rung is ~2-8 MB: read in the service's trip
# Which stored file each picture route serves: (for a video, for a photo).
PICTURES = {"thumbnail": (THUMB_FILE, THUMB_FILE), "preview": (PREVIEW_FILE, THUMB_FILE),
            "poster": (POSTER_FILE, IMAGE_FILE)}


@dataclass(frozen=True)
class MediaBody:
    """One file as a route sends it: `data` holds the whole body, or `pieces(start, end)` streams it."""

    size: int
    etag: str
    content_type: str
    data: bytes | None = None
    pieces: Callable[[int, int], Iterator[bytes]] | None = None


@dataclass(frozen=True)
class Download:
    """A file to keep, named after the original: a photo's `body` (ranges work) or a video's MP4 `stream`."""

    filename: str
    content_type: str
    body: MediaBody | None = None
    stream: RemuxedMp4 | None = None


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


def _read_whole(fd: int, size: int) -> bytes:
    """A file's bytes through its open descriptor: usually one read() (a pipe or a short read: more)."""
    data = os.read(fd, size)
    if len(data) == size:
        return data
    pieces = [data]
    while piece := os.read(fd, PIECE):
        pieces.append(piece)
    return b"".join(pieces)


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return None


def _from_the_start(event_playlist: str) -> str:
    """A growing playlist that players start at its beginning, not at its live edge."""
    if START_TAG in event_playlist:
        return event_playlist
    return event_playlist.replace("#EXTM3U\n", f"#EXTM3U\n{START_TAG}\n", 1)


def _not_found(media_id: str) -> NotFoundError:
    return NotFoundError("No such media item", details={"id": media_id[:64]})


class MediaService:
    def __init__(self, paths: AppPaths, library: LibraryService, keys: KeyService, audit: AuditService,
                 converting: ConvertingItems, access: AccessRule, albums: AlbumService,
                 favorites: FavoriteService) -> None:
        self._library_root = paths.library
        self._library = library
        self._keys = keys
        self._audit = audit
        self._converting = converting
        self.access = access
        self._albums = albums
        self._favorites = favorites

    def _item(self, who: Principal, media_id: str) -> MediaItem:
        """The one id check: hex ids only (nothing else can name a path), the access rule, then the item."""
        if not is_id(media_id) or not self.access.may_see(who, media_id):
            raise _not_found(media_id)
        return self._library.get(media_id)

    @staticmethod
    def may_see_event(who: Principal, event: Event) -> bool:
        """Whether an open page of `who` is told of this change: decided from the event alone (no database
        read), so that one change told to many pages costs nothing per page."""
        if event.session_id is not None:
            return event.session_id == who.session_id
        if event.users is not None:
            return who.user_id in event.users
        if event.media_id is not None:
            return who.role != GUEST or who.user_id in event.guests
        return True

    # --- listing and details -------------------------------------------------------------------------

    def listing(self, who: Principal, *, media_type: str | None = None, q: str | None = None,
                sort: str = "created_at", order: str = "desc", page: int = 1, limit: int = 50,
                album: str | None = None, favorite: bool = False) -> Page:
        """A page of the library: filtered by type, name, album (one `who` may see; else 404) and their
        favorites, sorted, paged; converting ones with progress, each saying whether `who` marked it."""
        if album is not None:
            self._albums.check_visible(who, album)
        found = self._library.list(media_type=media_type, q=q, sort=sort, order=order, page=page, limit=limit,
                                   album=album, favorite_of=who.user_id if favorite else None,
                                   visible=visible(who), visible_total=visible_total(who))
        return replace(found, items=self._personal(who, found.items, all_marked=favorite))

    def details(self, who: Principal, media_id: str) -> tuple[MediaItem, float]:
        """An item and where this person stopped watching it."""
        item = self._personal(who, [self._item(who, media_id)])[0]
        return item, self._library.position(who.user_id, media_id)

    def _personal(self, who: Principal, items: list[MediaItem], all_marked: bool = False) -> list[MediaItem]:
        """Items as `who` sees them: converting ones with their progress, and `who`'s hearts (one query)."""
        converting = [item.id for item in items if item.status == CONVERTING]
        progress = self._converting.progress(converting)
        marked = {item.id for item in items} if all_marked else self._favorites.among(
            who.user_id, [item.id for item in items])
        changed = progress.keys() | marked  # a copy each costs more than the query: only where it differs
        return [replace(item, progress=progress.get(item.id, item.progress), favorite=item.id in marked)
                if item.id in changed else item for item in items]

    def mark_favorite(self, who: Principal, media_id: str, favorite: bool) -> bool:
        """Set or clear `who`'s heart on an item they may see; returns the state now."""
        self._item(who, media_id)
        return self._favorites.mark(who.user_id, media_id, favorite)

    def save_position(self, who: Principal, media_id: str, seconds: float) -> float:
        self._item(who, media_id)
        return self._library.save_position(who.user_id, media_id, seconds)

    # --- files ---------------------------------------------------------------------------------------

    def _sealed(self, media_id: str, name: str, content_type: str = "image/webp") -> MediaBody:
        """An at-rest file: small ones read and decrypted here in one read, larger ones streamed later."""
        path = self._library_root / media_id / name
        data_key = self._keys.data_key(self._keys.key_id(media_id, "file"))
        try:
            fd = os.open(path, os.O_RDONLY)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise NotFoundError("No such rendition", details={"id": media_id, "name": name}) from None
        try:
            stat = os.fstat(fd)
            etag = f'"{media_id}-{name.replace("/", "-")}-{int(stat.st_mtime)}"'
            if stat.st_size <= WHOLE_PICTURE:
                data = unseal(_read_whole(fd, stat.st_size), data_key, name)
                return MediaBody(len(data), etag, content_type, data=data)
        finally:
            os.close(fd)
        sealed = SealedFile(path, data_key)
        return MediaBody(sealed.size, etag, content_type, pieces=sealed.iter_range)

    def picture(self, who: Principal, media_id: str, kind: str) -> MediaBody:
        """`kind` is thumbnail, preview or poster: a video's own picture, or the photo's stand-in."""
        item = self._item(who, media_id)
        for_video, for_photo = PICTURES[kind]
        return self._sealed(media_id, for_video if item.type == "video" else for_photo)

    def stream(self, who: Principal, media_id: str) -> MediaBody | str:
        """A photo's WebP, or a video's master playlist as stored (variant URIs relative to it)."""
        item = self._item(who, media_id)
        if item.type == "image":
            return self._sealed(media_id, IMAGE_FILE)
        if item.status == CONVERTING:
            return self._growing_master(item)
        return self._library.read(media_id, MASTER_PLAYLIST).decode()

    def _growing_master(self, item: MediaItem) -> str:
        """The planned ladder, once every rung has its first segment (before that: 404, try again soon)."""
        folder = self._converting.folder(item.id) / HLS_DIR
        for rendition in item.renditions:
            text = _read_text(folder / rendition["name"] / LIVE_PLAYLIST)
            if not text or not hls.segments(text):
                raise NotFoundError("This video starts playing in a few seconds",
                                    details={"id": item.id, "converting": True})
        return hls.master_playlist([hls.Variant(f"{r['name']}/index.m3u8", int(r["bandwidth"]),
                                                (int(r["width"]), int(r["height"])), r["codecs"])
                                    for r in item.renditions])

    def variant(self, who: Principal, media_id: str, rung: str) -> str:
        """One rendition's playlist as stored (its key URI still `vault-key:<id>`)."""
        if not _RUNG.fullmatch(rung):
            raise NotFoundError("No such rendition", details={"rendition": rung[:16]})
        item = self._item(who, media_id)
        sealed = f"{HLS_DIR}/{rung}/index.m3u8.vlt"
        if item.status == CONVERTING:
            folder = self._converting.folder(media_id)
            if (text := _read_text(folder / HLS_DIR / rung / LIVE_PLAYLIST)) is not None:
                return _from_the_start(text)
            try:  # finished and sealed, about to be committed
                file_key = self._keys.data_key(self._keys.key_id(media_id, "file"))
                return SealedFile(folder / sealed, file_key).read_all().decode()
            except FileNotFoundError:
                pass  # committed in the meantime: the sealed one is in the library
        return self._library.read(media_id, sealed).decode()

    def segment(self, who: Principal, media_id: str, rung: str, segment: str) -> MediaBody:
        """An HLS segment as stored (already AES-128): stat and read on one open file."""
        item = self._item(who, media_id)
        if not (_RUNG.fullmatch(rung) and _SEGMENT.fullmatch(segment)):
            raise NotFoundError("No such segment", details={"id": media_id, "name": f"{rung}/{segment}"})
        path = self._library_root / media_id / HLS_DIR / rung / segment
        if item.status == CONVERTING and (growing := self._converting.folder(media_id) / HLS_DIR / rung
                                          / segment).is_file():
            path = growing  # else committed in the meantime: the library has it
        try:
            fd = os.open(path, os.O_RDONLY)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise NotFoundError("No such segment", details={"id": media_id, "name": f"{rung}/{segment}"}
                                ) from None
        try:
            stat = os.fstat(fd)
            etag = f'"{media_id}-{rung}-{segment}-{int(stat.st_mtime)}"'
            if stat.st_size <= WHOLE_SEGMENT:
                data = _read_whole(fd, stat.st_size)
                return MediaBody(len(data), etag, "video/mp2t", data=data)
        finally:
            os.close(fd)
        return MediaBody(stat.st_size, etag, "video/mp2t",
                         pieces=lambda start, end: _file_pieces(path, start, end))

    def hls_key(self, who: Principal, key_id: str, ip: str) -> bytes:
        """A video's 16-byte HLS key, and the audit entry saying who fetched it from where."""
        if not is_id(key_id):
            raise _not_found(key_id)
        media_id, data = self._keys.hls_key(key_id)
        if not self.access.may_see(who, media_id):  # answered word for word as an unknown key is
            raise NotFoundError("Unknown key", details={"key_id": key_id})
        self._audit.record(AuditEvent("key_fetch", user_id=who.user_id, username=who.username,
                                      session_id=who.session_id, ip_address=ip, resource=key_id))
        return data

    # --- downloads -----------------------------------------------------------------------------------

    def download(self, who: Principal, media_id: str, ip: str = "") -> Download:
        """The item as a file to keep (see the module's docstring); 403 if the account's download right is
        off, a clear refusal while a video converts. Audited as `media_downloaded`."""
        item = self._item(who, media_id)
        if not self.access.may_download(who):
            raise VaultError("Downloads are turned off for this account", code="AUTH_004", status=403)
        if item.status != "ready":
            raise ValidationError("This video is still converting; download it once it is ready",
                                  details={"id": media_id, "status": item.status})
        if item.type == "video":
            chunks, seconds = self._library.top_rung_stream(media_id)
            found = Download(saved_name(item.original_name, ".mp4"), "video/mp4",
                             stream=RemuxedMp4(ffmpeg(), chunks, seconds))
        elif item.has_original:
            kind = mimetypes.guess_type(item.original_name)[0] or "application/octet-stream"
            found = Download(saved_name(item.original_name), kind,
                             body=self._sealed(media_id, ORIGINAL_FILE, kind))
        else:
            found = Download(saved_name(item.original_name, ".webp"), "image/webp",
                             body=self._sealed(media_id, IMAGE_FILE))
        self._audit.record(AuditEvent("media_downloaded", user_id=who.user_id, username=who.username,
                                      session_id=who.session_id, ip_address=ip, resource=media_id,
                                      details={"filename": found.filename}))
        return found
