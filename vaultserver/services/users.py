"""Accounts: the password policy, bcrypt hashing, sign-in checks with lockout, and account administration.

Wrong password and unknown user cost the same bcrypt work and give the same answer, so neither timing nor
wording tells an attacker which usernames exist.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import bcrypt
from sqlalchemy.exc import IntegrityError as DBIntegrityError
from sqlmodel import col, select

from vaultserver.db import Database
from vaultserver.db.models import DeviceSession, PlaybackPosition, User, utcnow
from vaultserver.errors import ValidationError, VaultError
from vaultserver.services.audit import AuditEvent, AuditService

log = logging.getLogger(__name__)

BCRYPT_ROUNDS = 12
MAX_FAILURES = 5
LOCKOUT = timedelta(minutes=15)
IP_WINDOW_SECONDS = 15 * 60
ROLES = ("admin", "viewer")
USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{1,63}$")
POLICY: tuple[tuple[str, Callable[[str], bool]], ...] = (
    ("at least 8 characters", lambda p: len(p) >= 8),
    ("an uppercase letter", lambda p: any(c.isupper() for c in p)),
    ("a lowercase letter", lambda p: any(c.islower() for c in p)),
    ("a digit", lambda p: any(c.isdigit() for c in p)),
    ("a special character", lambda p: any(not c.isalnum() for c in p)),
)


@functools.cache
def _dummy_hash(rounds: int) -> bytes:
    """A hash at the cost real ones have, made on first use: at import, every command would pay for it."""
    return bcrypt.hashpw(b"timing equaliser", bcrypt.gensalt(rounds))


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
    if problems := password_problems(password):
        raise ValidationError("The password needs " + ", ".join(problems), details={"unmet": problems})


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
        self, username: str, password: str, role: str = "viewer", actor: str | None = None
    ) -> UserView:
        if not USERNAME.match(username or ""):
            raise ValidationError(
                "Usernames are 2-64 letters, digits, '.', '_', '@' or '-'", details={"field": "username"}
            )
        if role not in ROLES:
            raise ValidationError("Role must be admin or viewer", details={"field": "role"})
        check_password_policy(password)
        hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(BCRYPT_ROUNDS)).decode()
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
        """Check a sign-in: AUTH_001 if wrong; 429 with retry_after when locked out or throttled."""
        if wait := self.throttle.retry_after(ip):
            self._deny(username, ip, "ip_rate_limited")
            raise TooManyAttempts("Too many failed sign-ins from this address. Try again later.", wait)
        with self._db.session() as session:
            row = session.exec(select(User).where(User.username == username)).first()
        now = utcnow()
        if row and row.locked_until and row.locked_until > now:
            bcrypt.checkpw(password.encode(), _dummy_hash(BCRYPT_ROUNDS))
            self._deny(username, ip, "locked")
            raise TooManyAttempts("This account is locked after repeated failed sign-ins.",
                                  int((row.locked_until - now).total_seconds()) + 1)
        stored = row.password_hash.encode() if row else _dummy_hash(BCRYPT_ROUNDS)
        valid = bcrypt.checkpw(password.encode(), stored)
        with self._db.session() as session:
            fresh = session.get(User, row.id) if row else None
            if fresh is not None and valid and fresh.is_active:
                fresh.failed_attempts, fresh.locked_until, fresh.last_login_at = 0, None, now
            elif fresh is not None and not valid:
                fresh.failed_attempts += 1
                if fresh.failed_attempts >= MAX_FAILURES:
                    fresh.locked_until, fresh.failed_attempts = now + LOCKOUT, 0
            if fresh is not None:
                session.add(fresh)
        if fresh is None or not valid or not fresh.is_active:
            self.throttle.failed(ip)
            locked = fresh is not None and fresh.locked_until is not None and fresh.locked_until > now
            self._audit.record(AuditEvent("login", "locked" if locked else "failed", username=username,
                                          ip_address=ip))
            raise InvalidCredentials("Wrong username or password")
        return UserView.from_row(fresh)

    def _deny(self, username: str, ip: str, reason: str) -> None:
        self._audit.record(AuditEvent("login", "denied", username=username, ip_address=ip,
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
                check_password_policy(password)
                row.password_hash = bcrypt.hashpw(password.encode(), bcrypt.gensalt(BCRYPT_ROUNDS)).decode()
                row.failed_attempts, row.locked_until = 0, None
            if role is not None:
                if role not in ROLES:
                    raise ValidationError("Role must be admin or viewer", details={"field": "role"})
                row.role = role
            if is_active is not None:
                row.is_active = is_active
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
            admins = session.exec(select(User.id).where(User.role == "admin", col(User.is_active))).all()
            if row.role == "admin" and len(admins) <= 1:
                raise ValidationError("The last administrator cannot be deleted")
            for table in (DeviceSession, PlaybackPosition):
                for owned in session.exec(select(table).where(table.user_id == user_id)).all():
                    session.delete(owned)
            session.delete(row)
        self._audit.record(AuditEvent("user_deleted", username=actor, resource=row.username))

    def count(self) -> int:
        with self._db.session() as session:
            return len(session.exec(select(User.id)).all())
