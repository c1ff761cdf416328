"""When an account stops: the expiry a non-admin account may have, from the date the owner gives to the
moment stored, and back.

A date means midnight at its start, this machine's time (as `useradd --expiredate`: the account cannot be
used on that day), so "expires 2026-12-06" reads the same in the Users tab, the command line and the error
the person sees. Administrators never expire: Vault must always keep a way in for its owner.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from enum import Enum

from vaultserver.db.models import utcnow
from vaultserver.errors import ValidationError

ADMIN_EXPIRY = "An administrator's account cannot expire: clear the expiry date, or choose member or guest"


class Keep(Enum):
    """An update's "leave it as it is", where None means "none" (an account that never expires)."""

    KEEP = "keep"


KEEP = Keep.KEEP


def expiry_date(text: str) -> date:
    """An expiry date as the owner types it, YYYY-MM-DD; anything else is refused with an example."""
    try:
        return datetime.strptime(text, "%Y-%m-%d").date()
    except (TypeError, ValueError):
        raise ValidationError(f"{text!r} is not a date: give it as YYYY-MM-DD, like 2026-12-06",
                              details={"field": "expires_at"}) from None


def expiry_moment(expires: date) -> datetime:
    """When an account given this expiry stops: a date's first moment, this machine's time; a datetime (with
    its time zone) is the moment itself."""
    if isinstance(expires, datetime):
        if expires.utcoffset() is None:
            raise ValidationError("An expiry time needs its time zone", details={"field": "expires_at"})
        return expires.astimezone(UTC)
    return datetime.combine(expires, time()).astimezone().astimezone(UTC)


def expiry_day(moment: datetime) -> date:
    """The date an expiry moment falls on, this machine's time: the date the owner gave."""
    return moment.astimezone().date()


def checked_expiry(role: str, expires: date | None) -> datetime | None:
    """The moment to store for an expiry given with `role`: none for an admin, and never one already past."""
    if expires is None:
        return None
    if role == "admin":
        raise ValidationError(ADMIN_EXPIRY, details={"field": "expires_at"})
    moment = expiry_moment(expires)
    if moment <= utcnow():
        raise ValidationError(f"That expiry date has passed ({expiry_day(moment):%Y-%m-%d}): choose a later "
                              "one, or disable the account", details={"field": "expires_at"})
    return moment
