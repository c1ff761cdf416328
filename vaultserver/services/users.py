"""Accounts: the password policy, bcrypt hashing, sign-in checks with lockout, and account administration.

A wrong password, an unknown name, a disabled account and a locked one all cost the same bcrypt work and get
the same answer (401 AUTH_001 "Wrong username or password"), so neither timing nor wording tells an attacker
which usernames exist or which one is locked; the lock itself is enforced and audited (outcome "locked").
Only the per-address limit answers 429 with retry_after: it is about the address, not the account.

Each password check of a real account is claimed in the database before bcrypt runs (one conditional
UPDATE), so concurrent guesses cannot get more checks than the lockout allows.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, NoReturn

import bcrypt
from sqlalchemy import or_, update
from sqlalchemy.exc import IntegrityError as DBIntegrityError
from sqlmodel import Session, col, select

from vaultserver.db import Database
from vaultserver.db.models import DeviceSession, PlaybackPosition, User, utcnow
from vaultserver.errors import ValidationError, VaultError
from vaultserver.services.audit import AuditEvent, AuditService

log = logging.getLogger(__name__)

BCRYPT_ROUNDS = 12
MAX_FAILURES = 5
LOCKOUT = timedelta(minutes=15)
IP_WINDOW_SECONDS = 15 * 60
ROLES = ("admin", "member", "guest")
USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{1,63}$")
# bcrypt reads no further than 72 bytes, and bcrypt 5 refuses longer passwords outright.
MAX_PASSWORD_BYTES = 72


def password_bytes(password: str) -> bytes | None:
    """What bcrypt is given for `password`: its UTF-8, or None when bcrypt cannot take it (too long, or text
    with a lone surrogate, which JSON can carry but UTF-8 cannot)."""
    try:
        encoded = password.encode()
    except UnicodeEncodeError:
        return None
    return encoded if len(encoded) <= MAX_PASSWORD_BYTES else None


POLICY: tuple[tuple[str, Callable[[str], bool]], ...] = (
    ("at least 8 characters", lambda p: len(p) >= 8),
    ("an uppercase letter", lambda p: any(c.isupper() for c in p)),
    ("a lowercase letter", lambda p: any(c.islower() for c in p)),
    ("a digit", lambda p: any(c.isdigit() for c in p)),
    ("a special character", lambda p: any(not c.isalnum() for c in p)),
    (f"at most {MAX_PASSWORD_BYTES} bytes (an accented letter counts 2, an emoji 4)",
     lambda p: password_bytes(p) is not None),
)
_DUMMY_PASSWORD = b"timing equaliser"
WRONG_CREDENTIALS = "Wrong username or password"


@functools.cache
def _dummy_hash(rounds: int) -> bytes:
    """A hash at the cost real ones have, made on first use: at import, every command would pay for it."""
    return bcrypt.hashpw(_DUMMY_PASSWORD, bcrypt.gensalt(rounds))


LAST_ADMIN = ("Vault needs at least one active administrator: make another account an administrator "
              "first")


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


@dataclass(frozen=True)
class UserView:
    id: str
    username: str
    role: str
    is_active: bool
    created_at: datetime
    last_login_at: datetime | None
    locked_until: datetime | None

    @classmethod
    def from_row(cls, row: User) -> UserView:
        return cls(
            row.id, row.username, row.role, row.is_active, row.created_at, row.last_login_at, row.locked_until
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "username": self.username,
            "role": self.role,
            "is_active": self.is_active,
            "created_at": self.created_at.isoformat(),
            "last_login_at": self.last_login_at.isoformat() if self.last_login_at else None,
        }


def password_problems(password: str) -> list[str]:
    """The unmet rules, in words; empty when the password is acceptable."""
    return [rule for rule, ok in POLICY if not ok(password)]


def check_password_policy(password: str) -> None:
    if not isinstance(password, str):
        raise ValidationError("The password must be text", details={"field": "password"})
    if problems := password_problems(password):
        raise ValidationError("The password needs " + ", ".join(problems), details={"unmet": problems})


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

    def create(
        self, username: str, password: str, role: str = "member", actor: str | None = None
    ) -> UserView:
        if not USERNAME.match(username or ""):
            raise ValidationError(
                "Usernames are 2-64 letters, digits, '.', '_', '@' or '-'", details={"field": "username"}
            )
        if role not in ROLES:
            raise ValidationError("Role must be admin, member or guest", details={"field": "role"})
        hashed = hash_password(password)
        try:
            with self._db.session() as session:
                row = User(username=username, password_hash=hashed, role=role)
                session.add(row)
        except DBIntegrityError:
            raise UserExists(
                f"A user named {username!r} already exists", details={"field": "username"}
            ) from None
        self._audit.record(
            AuditEvent("user_created", username=actor, resource=username, details={"role": role})
        )
        return UserView.from_row(row)

    def authenticate(self, username: str, password: str, ip: str) -> UserView:
        """Check a sign-in: AUTH_001 if refused for any reason of the account; 429 only when throttled."""
        if wait := self.throttle.retry_after(ip):
            self._deny(username, ip, "ip_rate_limited")
            raise TooManyAttempts("Too many failed sign-ins from this address. Try again later.", wait)
        with self._db.session() as session:
            row = session.exec(select(User).where(User.username == username)).first()
        now = utcnow()
        if row is None:
            _spend_a_check()
            self._refuse(username, ip, "failed")
        if not self._claim_check(row.id, now):
            _spend_a_check()
            self._refuse(username, ip, "locked", {"reason": "account_locked"})
        candidate = password_bytes(password)  # too long for bcrypt: a wrong password, counted as one
        if candidate is None:
            valid = _spend_a_check()
        else:
            valid = bcrypt.checkpw(candidate, row.password_hash.encode())
        if not valid:
            if locked_until := self._lock_if_spent(row.id, now):
                self._refuse(username, ip, "locked",
                             {"reason": "too_many_failures", "locked_until": locked_until.isoformat()})
            self._refuse(username, ip, "failed")
        # The right password clears the failures, even on a disabled account (which is still refused).
        with self._db.engine.begin() as connection:
            connection.execute(update(User).where(col(User.id) == row.id).values(
                failed_attempts=0, locked_until=None, **({"last_login_at": now} if row.is_active else {})))
        if not row.is_active:
            self._refuse(username, ip, "failed", {"reason": "disabled"})
        return replace(UserView.from_row(row), last_login_at=now, locked_until=None)

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

    def _refuse(self, username: str, ip: str, outcome: str,
                details: dict[str, Any] | None = None) -> NoReturn:
        """The one answer to every refused name and password, whatever the reason (audited with it)."""
        self.throttle.failed(ip)
        self._audit.record(AuditEvent("login", outcome, username=username, ip_address=ip,
                                      details=details or {}))
        raise InvalidCredentials(WRONG_CREDENTIALS)

    def _deny(self, username: str, ip: str, reason: str) -> None:
        self._audit.record_refusal(AuditEvent("login", "denied", username=username, ip_address=ip,
                                      details={"reason": reason}))

    def get(self, user_id: str) -> UserView | None:
        with self._db.session() as session:
            row = session.get(User, user_id)
        return UserView.from_row(row) if row else None

    def by_name(self, username: str) -> UserView:
        with self._db.session() as session:
            row = session.exec(select(User).where(User.username == username)).first()
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
    ) -> UserView:
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
            if is_active is not None:
                row.is_active = is_active
            if (role is not None or is_active is not None) and not _active_admins(session):
                raise ValidationError(LAST_ADMIN, details={"field": "is_active" if role is None else "role"})
            row.updated_at = utcnow()
            session.add(row)
        changed = [
            k for k, v in (("password", password), ("role", role), ("is_active", is_active)) if v is not None
        ]
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
