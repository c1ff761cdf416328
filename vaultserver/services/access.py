"""Who may see which item: the one access rule, as SQL the library can filter by and as a yes/no for one item.

Admins and members see the whole library. A guest sees exactly the items of the albums shared with them, and
nothing at all once their account has expired (the session check ends them). Downloading what one may see
is a right of the account that an admin can take away (`may_download`). `MediaService` is the only
caller for media routes: an item a person may not see is answered like one that does not exist.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, exists
from sqlmodel import col, func, select
from sqlmodel.sql.expression import SelectOfScalar

from vaultserver.db import Database
from vaultserver.db.models import AlbumItem, AlbumShare, MediaFile, User
from vaultserver.services.principal import Principal

GUEST = "guest"


def shared_with(user_id: str) -> SelectOfScalar[str]:
    """The ids of the items in every album shared with this account (one indexed join)."""
    return (select(col(AlbumItem.media_id))
            .join(AlbumShare, col(AlbumShare.album_id) == col(AlbumItem.album_id))
            .where(col(AlbumShare.user_id) == user_id))


def visible(who: Principal) -> ColumnElement[bool] | None:
    """A filter on `MediaFile` rows for what `who` may see; None when they may see everything."""
    if who.role != GUEST:
        return None
    return col(MediaFile.id).in_(shared_with(who.user_id))


def visible_total(who: Principal) -> SelectOfScalar[int] | None:
    """How many items `visible(who)` lets through, counted from the shares alone (an item in two shared
    albums once): every album item is a library row (the schema's cascade), so this is the filtered
    library's count without looking up each row. None when `who` sees everything."""
    if who.role != GUEST:
        return None
    return (select(func.count(func.distinct(col(AlbumItem.media_id))))
            .join(AlbumShare, col(AlbumShare.album_id) == col(AlbumItem.album_id))
            .where(col(AlbumShare.user_id) == who.user_id))


class AccessRule:
    def __init__(self, db: Database) -> None:
        self._db = db

    def may_see(self, who: Principal, media_id: str) -> bool:
        if who.role != GUEST:
            return True
        shared = shared_with(who.user_id).where(col(AlbumItem.media_id) == media_id)
        with self._db.session() as session:
            return bool(session.exec(select(exists(shared))).one())

    def may_download(self, who: Principal) -> bool:
        """Whether this account keeps the right to download what it may see (an admin can take it away)."""
        with self._db.session() as session:
            return bool(session.exec(select(User.can_download).where(col(User.id) == who.user_id)).first())

    def guests_seeing(self, media_id: str) -> frozenset[str]:
        """The guest accounts that see this item through an album: told when it goes away."""
        rows = (select(col(AlbumShare.user_id))
                .join(AlbumItem, col(AlbumItem.album_id) == col(AlbumShare.album_id))
                .where(col(AlbumItem.media_id) == media_id))
        with self._db.session() as session:
            return frozenset(session.exec(rows).all())
