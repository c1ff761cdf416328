"""Favorites: one person's hearts on items, kept as rows (never copies) and read a page at a time.

Only `MediaService` calls this, after the access rule has said the person may see the item: a heart on an
item someone may not see is answered like one on an item that does not exist.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import bindparam
from sqlalchemy.exc import IntegrityError as DBIntegrityError
from sqlmodel import col, select
from sqlmodel.sql.expression import SelectOfScalar

from vaultserver.db import Database
from vaultserver.db.models import Favorite


def favorites_of(user_id: str) -> SelectOfScalar[str]:
    """The ids of the items this person has marked (the primary key's prefix: one index range)."""
    return select(col(Favorite.media_id)).where(col(Favorite.user_id) == user_id)


# Built once: asked for every page the library hands out, with the page's ids as one expanding parameter.
_MARKED_AMONG = (select(col(Favorite.media_id))
                 .where(col(Favorite.user_id) == bindparam("user_id"),
                        col(Favorite.media_id).in_(bindparam("media_ids", expanding=True))))


class FavoriteService:
    def __init__(self, db: Database) -> None:
        self._db = db

    def among(self, user_id: str, media_ids: Collection[str]) -> set[str]:
        """Which of these items (a page of them) this person has marked: one query for the page."""
        if not media_ids:
            return set()
        with self._db.engine.connect() as connection:  # only reads: no unit of work to set up
            found = connection.execute(_MARKED_AMONG, {"user_id": user_id, "media_ids": list(media_ids)})
            return set(found.scalars())

    def mark(self, user_id: str, media_id: str, favorite: bool) -> bool:
        """Set or clear the heart; doing it twice is the same as once. Returns the state now."""
        try:
            with self._db.session() as session:
                row = session.get(Favorite, (user_id, media_id))
                if favorite and row is None:
                    session.add(Favorite(user_id=user_id, media_id=media_id))
                elif not favorite and row is not None:
                    session.delete(row)
        except DBIntegrityError:  # marked at the same moment from another of their devices
            pass
        return favorite
