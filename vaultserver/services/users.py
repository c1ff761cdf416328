"""Accounts: bcrypt hashing, sign-in checks with lockout, expiry, and account administration.

A wrong password, an unknown name, a disabled account and a locked one all cost the same bcrypt work and get
the same answer (401 AUTH_001 "Wrong username or password"), so neither timing nor wording tells an attacker
which usernames exist or which one is locked; the lock itself is enforced and audited (outcome "locked").
Only the per-address limit answers 429 with retry_after: it is about the address, not the account.

Each password check of a real account is claimed in the database before bcrypt runs (one conditional
UPDATE), so concurrent guesses cannot get more checks than the lockout allows. A person changing their own
password goes through the same check, so a stolen session cannot guess its way to the password.

Names are one person whatever their case: stored as typed, matched lowered (the database's unique index on
lower(username) makes "Alice" and "alice" one name). A non-admin account may expire (account_expiry.py).
"""

from __future__ import annotations

import functools
import logging
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any, Literal, NoReturn

import bcrypt
from sqlalchemy import func, or_, update
from sqlalchemy.exc import IntegrityError as DBIntegrityError
from sqlmodel import Session, col, select

from vaultserver.db import Database
from vaultserver.db.models import DeviceSession, PlaybackPosition, User, utcnow
from vaultserver.errors import ValidationError, VaultError
from vaultserver.services.account_expiry import ADMIN_EXPIRY, KEEP, Keep, checked_expiry, expiry_day
from vaultserver.services.audit import AuditEvent, AuditService
from vaultserver.services.password_policy import MAX_PASSWORD_BYTES as MAX_PASSWORD_BYTES
from vaultserver.services.password_policy import POLICY as POLICY
from vaultserver.services.password_policy import check_password_policy, password_bytes
from vaultserver.services.password_policy import password_problems as password_problems

log = logging.getLogger(__name__)

BCRYPT_ROUNDS = 12
MAX_FAILURES = 5
LOCKOUT = timedelta(minutes=15)
IP_WINDOW_SECONDS = 15 * 60
ROLES = ("admin", "member", "guest")
USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{1,63}$")
_DUMMY_PASSWORD = b"timing equaliser"
WRONG_CREDENTIALS = "Wrong username or password"
WRONG_CURRENT_PASSWORD = "The current password is wrong"


@functools.cache
def _dummy_hash(rounds: int) -> bytes:
    """A hash at the cost real ones have, made on first use: at import, every command would pay for it."""
    return bcrypt.hashpw(_DUMMY_PASSWORD, bcrypt.gensalt(rounds))


LAST_ADMIN = ("Vault needs at least one active administrator: make another account an administrator "
              "first")


def _named(username: str) -> Any:
    """Matches the account of this name whatever its case (through the index on lower(username))."""
    return func.lower(col(User.username)) == (username or "").lower()


def _active_admins(session: Session) -> list[str]:
    """Ids of the active administrators, as this transaction sees them (its own changes included)."""
    return list(session.exec(select(User.id).where(User.role == "admin", col(User.is_active))).all())


class InvalidCredentials(VaultError):
    code, status = "AUTH_001", 401


class TooManyAttempts(VaultError):
    code, status = "AUTH_005", 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message, details={"retry_after": retry_after})
        self.retry_after = retry_after


class UserExists(VaultError):
    code, status = "VALIDATION_001", 409


class AccountExpired(VaultError):
    """The right password for an account past its expiry (the wrong one stays AUTH_001: no oracle)."""

    code, status = "AUTH_006", 401


@dataclass(frozen=True)
class UserView:
    id: str
    username: str
    role: str
    is_active: bool
    created_at: datetime
    last_login_at: datetime | None
    locked_until: datetime | None
    expires_at: datetime | None = None  # the moment a non-admin account stops; None: never
    can_upload: bool = True  # rights an admin may take away from one account
    can_download: bool = True

    @classmethod
    def from_row(cls, row: User) -> UserView:
        return cls(row.id, row.username, row.role, row.is_active, row.created_at, row.last_login_at,
                   row.locked_until, row.expires_at, row.can_upload, row.can_download)

    @property
    def expires_on(self) -> date | None:
        """The expiry as the date the owner gave (this machine's time)."""
        return expiry_day(self.expires_at) if self.expires_at else None

    def expired(self, now: datetime | None = None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now or utcnow())

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "username": self.username,
            "role": self.role,
            "is_active": self.is_active,
            "created_at": self.created_at.isoformat(),
            "last_login_at": self.last_login_at.isoformat() if self.last_login_at else None,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "can_upload": self.can_upload,
            "can_download": self.can_download,
        }


def hash_password(password: str) -> str:
    """The bcrypt hash of a password that meets the policy."""
    check_password_policy(password)
    encoded = password_bytes(password)
    assert encoded is not None  # the policy refuses what bcrypt cannot take
    return bcrypt.hashpw(encoded, bcrypt.gensalt(BCRYPT_ROUNDS)).decode()


def _spend_a_check() -> bool:
    """Cost what a real password check costs, so refusing without one does not show in the timing."""
    bcrypt.checkpw(_DUMMY_PASSWORD, _dummy_hash(BCRYPT_ROUNDS))
    return False


class IpThrottle:
    """Failed sign-ins per source address in a sliding window (in memory: resets on restart, by design)."""

    def __init__(self, limit: int = MAX_FAILURES * 4, window: float = IP_WINDOW_SECONDS) -> None:
        self.limit, self.window = limit, window
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, ip: str) -> int:
        with self._lock:
            events = self._trim(ip)
            return int(events[0] + self.window - time.monotonic()) + 1 if len(events) >= self.limit else 0

    def failed(self, ip: str) -> None:
        with self._lock:
            self._trim(ip).append(time.monotonic())

    def _trim(self, ip: str) -> deque[float]:
        events = self._failures.setdefault(ip, deque())
        while events and events[0] < time.monotonic() - self.window:
            events.popleft()
        return events


class UserService:
    def __init__(self, db: Database, audit: AuditService) -> None:
        self._db = db
        self._audit = audit
        self.throttle = IpThrottle()

    def create(self, username: str, password: str, role: str = "member", actor: str | None = None,
               expires_at: date | None = None) -> UserView:
        """A new account; `expires_at` (a non-admin's): see `account_expiry.expiry_moment`. A name that
        differs from an existing one only in case is taken (409)."""
        if not USERNAME.match(username or ""):
            raise ValidationError(
                "Usernames are 2-64 letters, digits, '.', '_', '@' or '-'", details={"field": "username"}
            )
        if role not in ROLES:
            raise ValidationError("Role must be admin, member or guest", details={"field": "role"})
        expiry = checked_expiry(role, expires_at)
        hashed = hash_password(password)
        try:
            with self._db.session() as session:
                row = User(username=username, password_hash=hashed, role=role, expires_at=expiry)
                session.add(row)
        except DBIntegrityError:
            raise UserExists(f"A user named {username!r} already exists (names match whatever their case)",
                             details={"field": "username"}) from None
        details: dict[str, Any] = {"role": role, **({"expires_at": expiry.isoformat()} if expiry else {})}
        self._audit.record(AuditEvent("user_created", username=actor, resource=username, details=details))
        return UserView.from_row(row)

    def authenticate(self, username: str, password: str, ip: str) -> UserView:
        """Check a sign-in: AUTH_001 if refused for any reason of the account; 429 only when throttled.
        The right password of an expired account is told so (AUTH_006), with whom to ask."""
        self._check_throttle(username, ip)
        with self._db.session() as session:
            row = session.exec(select(User).where(_named(username))).first()
        now = utcnow()
        if row is None:
            _spend_a_check()
            self._refuse(username, ip, "failed")
        self._check_password(row, password, ip, now)
        expired = row.expires_at if row.expires_at is not None and row.expires_at <= now else None
        # The right password clears the failures, even on a disabled account (which is still refused).
        signed_in = {"last_login_at": now} if row.is_active and expired is None else {}
        with self._db.engine.begin() as connection:
            connection.execute(update(User).where(col(User.id) == row.id).values(
                failed_attempts=0, locked_until=None, **signed_in))
        if not row.is_active:
            self._refuse(username, ip, "failed", {"reason": "disabled"})
        if expired is not None:
            self._audit.record(AuditEvent("login", "failed", user_id=row.id, username=row.username,
                                          ip_address=ip, details={"reason": "account_expired"}))
            raise AccountExpired(f"This account expired on {expiry_day(expired):%Y-%m-%d}; ask "
                                 f"{self._owner_name()} to extend it")
        return replace(UserView.from_row(row), last_login_at=now, locked_until=None)

    def change_password(self, user_id: str, current: str, new: str, ip: str = "") -> UserView:
        """A person's change of their own password. The new one must meet the policy (400 with the unmet
        rules); the current one is checked as a sign-in checks it: a wrong one is AUTH_001 and counts
        toward the account's lockout and the address's limit. Signing other devices out is the caller's."""
        with self._db.session() as session:
            row = session.get(User, user_id)
        if row is None:
            raise VaultError("No such user", code="VALIDATION_001", status=404)
        check_password_policy(new)
        self._check_throttle(row.username, ip, "password_change")
        now = utcnow()
        self._check_password(row, current, ip, now, "password_change")
        hashed = hash_password(new)
        with self._db.engine.begin() as connection:
            connection.execute(update(User).where(col(User.id) == row.id).values(
                password_hash=hashed, failed_attempts=0, locked_until=None, updated_at=now))
        self._audit.record(AuditEvent("password_changed", user_id=row.id, username=row.username,
                                      resource=row.username, ip_address=ip))
        return UserView.from_row(row)

    def _check_throttle(self, username: str, ip: str, event: str = "login") -> None:
        if wait := self.throttle.retry_after(ip):
            self._deny(username, ip, "ip_rate_limited", event)
            raise TooManyAttempts("Too many failed sign-ins from this address. Try again later.", wait)

    def _check_password(self, row: User, password: str, ip: str, now: datetime, event: str = "login") -> None:
        """Refuse (AUTH_001, audited as `event`) a wrong password or a locked account; each check is
        claimed first, and the last one the lockout allows locks the account."""
        message = WRONG_CREDENTIALS if event == "login" else WRONG_CURRENT_PASSWORD
        if not self._claim_check(row.id, now):
            _spend_a_check()
            self._refuse(row.username, ip, "locked", {"reason": "account_locked"}, event, message)
        candidate = password_bytes(password)  # too long for bcrypt: a wrong password, counted as one
        if candidate is None:
            valid = _spend_a_check()
        else:
            valid = bcrypt.checkpw(candidate, row.password_hash.encode())
        if not valid:
            if locked_until := self._lock_if_spent(row.id, now):
                self._refuse(row.username, ip, "locked",
                             {"reason": "too_many_failures", "locked_until": locked_until.isoformat()},
                             event, message)
            self._refuse(row.username, ip, "failed", None, event, message)

    def _owner_name(self) -> str:
        """Whom an expired account should ask: the first administrator."""
        with self._db.session() as session:
            name = session.exec(select(User.username).where(User.role == "admin", col(User.is_active))
                                .order_by(col(User.created_at))).first()
        return name or "the owner of this Vault"

    def _claim_check(self, user_id: str, now: datetime) -> bool:
        """Count this attempt as a failure before its password check runs, unless the account is locked or
        as many checks as the lockout allows are already under way. One UPDATE: atomic across threads."""
        claim = (update(User)
                 .where(col(User.id) == user_id, col(User.failed_attempts) < MAX_FAILURES,
                        or_(col(User.locked_until).is_(None), col(User.locked_until) <= now))
                 .values(failed_attempts=User.failed_attempts + 1))
        with self._db.engine.begin() as connection:
            return connection.execute(claim).rowcount == 1

    def _lock_if_spent(self, user_id: str, now: datetime) -> datetime | None:
        """After a wrong password: lock the account if its allowance of checks is used up (the failures were
        counted when claimed). Returns the end of the lock this call started, if any."""
        until = now + LOCKOUT
        lock = (update(User).where(col(User.id) == user_id, col(User.failed_attempts) >= MAX_FAILURES)
                .values(failed_attempts=0, locked_until=until))
        with self._db.engine.begin() as connection:
            return until if connection.execute(lock).rowcount == 1 else None

    def _refuse(self, username: str, ip: str, outcome: str, details: dict[str, Any] | None = None,
                event: str = "login", message: str = WRONG_CREDENTIALS) -> NoReturn:
        """The one answer to every refused name and password, whatever the reason (audited with it)."""
        self.throttle.failed(ip)
        self._audit.record(AuditEvent(event, outcome, username=username, ip_address=ip,
                                      details=details or {}))
        raise InvalidCredentials(message)

    def _deny(self, username: str, ip: str, reason: str, event: str = "login") -> None:
        self._audit.record_refusal(AuditEvent(event, "denied", username=username, ip_address=ip,
                                              details={"reason": reason}))

    def get(self, user_id: str) -> UserView | None:
        with self._db.session() as session:
            row = session.get(User, user_id)
        return UserView.from_row(row) if row else None

    def by_name(self, username: str) -> UserView:
        with self._db.session() as session:
            row = session.exec(select(User).where(_named(username))).first()
        if row is None:
            raise VaultError(f"No user named {username!r}", code="VALIDATION_001", status=404)
        return UserView.from_row(row)

    def list(self) -> list[UserView]:
        with self._db.session() as session:
            return [UserView.from_row(r) for r in session.exec(select(User).order_by(col(User.username)))]

    def update(
        self,
        user_id: str,
        *,
        password: str | None = None,
        role: str | None = None,
        is_active: bool | None = None,
        actor: str | None = None,
        expires_at: date | None | Literal[Keep.KEEP] = KEEP,
        can_upload: bool | None = None,
        can_download: bool | None = None,
    ) -> UserView:
        """Change what is given (None or KEEP: as it is; `expires_at=None`: never expires)."""
        with self._db.session() as session:
            row = session.get(User, user_id)
            if row is None:
                raise VaultError("No such user", code="VALIDATION_001", status=404)
            if password is not None:
                row.password_hash = hash_password(password)
                row.failed_attempts, row.locked_until = 0, None
            if role is not None:
                if role not in ROLES:
                    raise ValidationError("Role must be admin, member or guest", details={"field": "role"})
                row.role = role
            if expires_at is not KEEP:
                row.expires_at = checked_expiry(row.role, expires_at)
            elif row.role == "admin" and row.expires_at is not None:
                raise ValidationError(ADMIN_EXPIRY, details={"field": "expires_at"})
            if is_active is not None:
                row.is_active = is_active
            for right, allowed in (("can_upload", can_upload), ("can_download", can_download)):
                if allowed is not None:
                    setattr(row, right, allowed)
            if (role is not None or is_active is not None) and not _active_admins(session):
                raise ValidationError(LAST_ADMIN, details={"field": "is_active" if role is None else "role"})
            row.updated_at = utcnow()
            session.add(row)
        given = {"password": password is not None, "role": role is not None,
                 "is_active": is_active is not None, "expires_at": expires_at is not KEEP,
                 "can_upload": can_upload is not None, "can_download": can_download is not None}
        changed = [name for name, was_given in given.items() if was_given]
        self._audit.record(
            AuditEvent("user_updated", username=actor, resource=row.username, details={"changed": changed})
        )
        return UserView.from_row(row)

    def delete(self, user_id: str, actor: str | None = None) -> None:
        """Remove an account and its sessions; the audit log keeps its name. The last admin cannot go."""
        with self._db.session() as session:
            row = session.get(User, user_id)
            if row is None:
                raise VaultError("No such user", code="VALIDATION_001", status=404)
            if row.role == "admin" and row.is_active and _active_admins(session) == [row.id]:
                raise ValidationError(LAST_ADMIN)
            for table in (DeviceSession, PlaybackPosition):
                for owned in session.exec(select(table).where(table.user_id == user_id)).all():
                    session.delete(owned)
            session.delete(row)
        self._audit.record(AuditEvent("user_deleted", username=actor, resource=row.username))

    def count(self) -> int:
        with self._db.session() as session:
            return len(session.exec(select(User.id)).all())
