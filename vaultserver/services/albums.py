"""Albums: named sets of items that a member makes and shares with chosen accounts.

Albums, their items and their shares are rows, never copies of media: deleting an album deletes no media, and
deleting an item or an account takes its album rows along (the schema's cascades). Members and admins make
albums; only the owner or an admin changes one. An album someone may not see (neither theirs, nor shared with
them, nor are they an admin) is answered like one that does not exist (404 MEDIA_001), so its id tells them
nothing. What a guest sees of the library follows from the shares (`access.shared_with`); this module only
keeps those rows. Every change is told to the open pages of the owner and of the accounts the album is
shared with, before and after the change; creating, deleting, sharing and unsharing are audited.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import desc
from sqlmodel import Session, col, func, select
from sqlmodel.sql.expression import SelectOfScalar

from vaultserver.db import Database
from vaultserver.db.models import Album, AlbumItem, AlbumShare, MediaFile, User, is_id, utcnow
from vaultserver.errors import NotFoundError, ValidationError, VaultError
from vaultserver.services.access import GUEST, visible
from vaultserver.services.audit import AuditEvent, AuditService
from vaultserver.services.events import ALBUM_CHANGED, Event, EventHub
from vaultserver.services.principal import Principal

NAME_LIMIT = 200
MAX_ITEMS_PER_CALL = 1000  # a multi-selection in the grid; more is a script, which can call again


@dataclass(frozen=True)
class AlbumView:
    """An album as the person asking sees it. `shared_with` is told only to those who may change it."""

    id: str
    name: str
    owner: str  # the owner's username
    is_owner: bool
    item_count: int
    cover_id: str | None  # the item shown first (newest by its date), or None when empty
    shared_with: tuple[str, ...]
    created_at: datetime
    updated_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "owner": self.owner, "is_owner": self.is_owner,
                "item_count": self.item_count, "cover_id": self.cover_id,
                "shared_with": list(self.shared_with),
                "created_at": self.created_at.isoformat(), "updated_at": self.updated_at.isoformat()}


def items_of(album_id: str) -> SelectOfScalar[str]:
    """The ids of one album's items (the primary key's prefix: one index range)."""
    return select(col(AlbumItem.media_id)).where(col(AlbumItem.album_id) == album_id)


def _no_album(album_id: str) -> NotFoundError:
    return NotFoundError("No such album", details={"id": album_id[:64]})


def _forbidden(message: str) -> VaultError:
    return VaultError(message, code="AUTH_004", status=403)


def _name(raw: object) -> str:
    name = raw.strip() if isinstance(raw, str) else ""
    if not name or len(name) > NAME_LIMIT:
        raise ValidationError(f"'name' must be a non-empty string of at most {NAME_LIMIT} characters",
                              details={"field": "name"})
    return name


def _may_change(who: Principal, album: Album) -> bool:
    return who.is_admin or (album.owner_id == who.user_id and who.role != GUEST)


class AlbumService:
    def __init__(self, db: Database, audit: AuditService, events: EventHub) -> None:
        self._db = db
        self._audit = audit
        self._events = events

    # --- reading -------------------------------------------------------------------------------------

    def list(self, who: Principal) -> list[AlbumView]:
        """The albums `who` owns or that are shared with them, most recently changed first."""
        shared = select(col(AlbumShare.album_id)).where(col(AlbumShare.user_id) == who.user_id)
        mine = (col(Album.owner_id) == who.user_id) | col(Album.id).in_(shared)
        return self._views(who, mine)

    def all(self) -> builtins.list[AlbumView]:  # `list` here is the method above
        """Every album (the owner's admin window), most recently changed first."""
        return self._views(None, None)

    def get(self, who: Principal, album_id: str) -> AlbumView:
        """One album `who` may see; 404 otherwise, like an album that does not exist."""
        with self._db.session() as session:
            self._visible(session, who, album_id)
        return self._views(who, col(Album.id) == album_id)[0]

    def check_visible(self, who: Principal, album_id: str) -> None:
        """404 unless `who` may see this album: the one look-up a filtered gallery page pays for."""
        with self._db.session() as session:
            self._visible(session, who, album_id)

    def _views(self, who: Principal | None, where: Any) -> builtins.list[AlbumView]:
        shown_date = func.coalesce(col(MediaFile.taken_at), col(MediaFile.created_at))
        cover = (select(col(AlbumItem.media_id)).join(MediaFile, col(MediaFile.id) == col(AlbumItem.media_id))
                 .where(col(AlbumItem.album_id) == col(Album.id))
                 .order_by(desc(shown_date), desc(col(MediaFile.id))).limit(1).scalar_subquery())
        count = (select(func.count()).select_from(AlbumItem).where(col(AlbumItem.album_id) == col(Album.id))
                 .scalar_subquery())
        query = (select(Album, col(User.username), count, cover)
                 .join(User, col(User.id) == col(Album.owner_id))
                 .order_by(desc(col(Album.updated_at)), col(Album.id)))
        if where is not None:
            query = query.where(where)
        with self._db.session() as session:
            rows = session.exec(query).all()
            shares = self._shares(session, [album.id for album, *_ in rows])
        return [AlbumView(album.id, album.name, owner, who is not None and album.owner_id == who.user_id,
                          int(items), cover_id,
                          tuple(shares.get(album.id, ())) if who is None or _may_change(who, album) else (),
                          album.created_at, album.updated_at)
                for album, owner, items, cover_id in rows]

    @staticmethod
    def _shares(session: Session, album_ids: Iterable[str]) -> dict[str, builtins.list[str]]:
        rows = session.exec(select(col(AlbumShare.album_id), col(User.username))
                            .join(User, col(User.id) == col(AlbumShare.user_id))
                            .where(col(AlbumShare.album_id).in_(list(album_ids)))
                            .order_by(func.lower(col(User.username)))).all()
        shares: dict[str, builtins.list[str]] = {}
        for album_id, username in rows:
            shares.setdefault(album_id, []).append(username)
        return shares

    def accounts_to_share_with(self, who: Principal) -> builtins.list[dict[str, str]]:
        """The active accounts other than `who`, for the share dialog; members and admins only."""
        if who.role == GUEST:
            raise _forbidden("Only members and administrators can share albums")
        with self._db.session() as session:
            rows = session.exec(select(col(User.username), col(User.role))
                                .where(col(User.is_active), col(User.id) != who.user_id)
                                .order_by(func.lower(col(User.username)))).all()
        return [{"username": username, "role": role} for username, role in rows]

    # --- the rule ------------------------------------------------------------------------------------

    @staticmethod
    def _visible(session: Session, who: Principal, album_id: str) -> Album:
        album = session.get(Album, album_id) if is_id(album_id) else None
        if album is None:
            raise _no_album(album_id)
        if who.is_admin or album.owner_id == who.user_id:
            return album
        if session.get(AlbumShare, (album_id, who.user_id)) is None:
            raise _no_album(album_id)
        return album

    def _changeable(self, session: Session, who: Principal, album_id: str) -> Album:
        album = self._visible(session, who, album_id)
        if not _may_change(who, album):
            raise _forbidden("Only the album's owner or an administrator can change it")
        return album

    @staticmethod
    def _concerned(session: Session, album: Album) -> set[str]:
        """The accounts whose pages show this album: its owner and those it is shared with."""
        shared = session.exec(select(col(AlbumShare.user_id)).where(col(AlbumShare.album_id) == album.id))
        return {album.owner_id, *shared.all()}

    def _tell(self, album_id: str, users: set[str]) -> None:
        self._events.publish(Event(ALBUM_CHANGED, {"id": album_id}, users=frozenset(users)))

    def _audit_in(self, session: Session, who: Principal, event: str, album: Album, **details: Any) -> None:
        self._audit.record_in(session, AuditEvent(event, user_id=who.user_id, username=who.username,
                                                  session_id=who.session_id, resource=album.id,
                                                  details={"name": album.name, **details}))

    # --- changing ------------------------------------------------------------------------------------

    def create(self, who: Principal, name: object) -> AlbumView:
        if who.role == GUEST:
            raise _forbidden("Only members and administrators can create albums")
        album = Album(name=_name(name), owner_id=who.user_id)
        with self._db.session() as session:
            session.add(album)
            session.flush()
            self._audit_in(session, who, "album_created", album)
        self._tell(album.id, {who.user_id})
        return self.get(who, album.id)

    def rename(self, who: Principal, album_id: str, name: object) -> AlbumView:
        new_name = _name(name)
        with self._db.session() as session:
            album = self._changeable(session, who, album_id)
            album.name, album.updated_at = new_name, utcnow()
            session.add(album)
            concerned = self._concerned(session, album)
        self._tell(album_id, concerned)
        return self.get(who, album_id)

    def delete(self, who: Principal, album_id: str) -> None:
        """The album and its item and share rows; every item stays in the library."""
        with self._db.session() as session:
            album = self._changeable(session, who, album_id)
            concerned = self._concerned(session, album)
            self._audit_in(session, who, "album_deleted", album)
            session.delete(album)
        self._tell(album_id, concerned)

    def add_items(self, who: Principal, album_id: str, media_ids: object) -> tuple[AlbumView, int]:
        """Add items `who` may see; any id unknown or hidden to them refuses the whole call (404, naming
        them), so nothing is half added. Items already in the album stay as they are. Returns how many
        were new."""
        if (not isinstance(media_ids, list) or not media_ids or len(media_ids) > MAX_ITEMS_PER_CALL
                or not all(isinstance(m, str) for m in media_ids)):
            raise ValidationError(f"'media_ids' must be a list of 1 to {MAX_ITEMS_PER_CALL} item ids",
                                  details={"field": "media_ids"})
        wanted = list(dict.fromkeys(media_ids))
        with self._db.session() as session:
            album = self._changeable(session, who, album_id)
            query = select(col(MediaFile.id)).where(col(MediaFile.id).in_([m for m in wanted if is_id(m)]))
            if (rule := visible(who)) is not None:
                query = query.where(rule)
            found = set(session.exec(query).all())
            if missing := [m[:64] for m in wanted if m not in found]:
                raise NotFoundError("No such media item", details={"ids": missing[:50]})
            present = set(session.exec(items_of(album_id).where(col(AlbumItem.media_id).in_(wanted))).all())
            new = [m for m in wanted if m not in present]
            session.add_all(AlbumItem(album_id=album_id, media_id=m) for m in new)
            album.updated_at = utcnow()
            session.add(album)
            concerned = self._concerned(session, album)
        self._tell(album_id, concerned)
        return self.get(who, album_id), len(new)

    def remove_item(self, who: Principal, album_id: str, media_id: str) -> AlbumView:
        """Take one item out of the album (the item stays in the library)."""
        with self._db.session() as session:
            album = self._changeable(session, who, album_id)
            row = session.get(AlbumItem, (album_id, media_id)) if is_id(media_id) else None
            if row is None:
                raise NotFoundError("No such media item in this album", details={"id": media_id[:64]})
            session.delete(row)
            album.updated_at = utcnow()
            session.add(album)
            concerned = self._concerned(session, album)
        self._tell(album_id, concerned)
        return self.get(who, album_id)

    @staticmethod
    def _account(session: Session, username: object) -> User:
        """An account by name, whatever its case."""
        name = username.strip() if isinstance(username, str) else ""
        row = session.exec(select(User).where(func.lower(col(User.username)) == name.lower())).first()
        if not name or row is None:
            raise VaultError(f"No user named {name[:64]!r}", code="VALIDATION_001", status=404,
                             details={"field": "username"})
        return row

    def share(self, who: Principal, album_id: str, username: object) -> AlbumView:
        """Let one more account see the album (and, for a guest, its items). Sharing twice is once."""
        with self._db.session() as session:
            album = self._changeable(session, who, album_id)
            account = self._account(session, username)
            if account.id == album.owner_id:
                raise ValidationError("This album already belongs to that account",
                                      details={"username": account.username})
            if session.get(AlbumShare, (album_id, account.id)) is None:
                session.add(AlbumShare(album_id=album_id, user_id=account.id))
                album.updated_at = utcnow()
                session.add(album)
                self._audit_in(session, who, "album_shared", album, shared_with=account.username)
            concerned = self._concerned(session, album) | {account.id}
        self._tell(album_id, concerned)
        return self.get(who, album_id)

    def unshare(self, who: Principal, album_id: str, username: object) -> AlbumView:
        """Stop sharing with one account: from now on a guest no longer sees its items."""
        with self._db.session() as session:
            album = self._changeable(session, who, album_id)
            account = self._account(session, username)
            concerned = self._concerned(session, album)
            share = session.get(AlbumShare, (album_id, account.id))
            if share is not None:
                session.delete(share)
                album.updated_at = utcnow()
                session.add(album)
                self._audit_in(session, who, "album_unshared", album, shared_with=account.username)
        self._tell(album_id, concerned)
        return self.get(who, album_id)
