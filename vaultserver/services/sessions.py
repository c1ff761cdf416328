"""Signed-in devices: access JWTs, rotating refresh tokens, the session checks every request goes through.

Access tokens are short JWTs (HS256, 15 min) naming their session; refresh tokens are opaque, stored only as
a SHA-256 hash, and replaced on every refresh. Every token a session rotated away is kept (as its hash) until
the session ends: presenting any of them again, or the current one twice at once, means it was copied, and
the whole session is revoked. Every authenticated request re-checks the session row (revoked,
expired, idle), so signing a device out takes effect on its very next request; last activity is written at
most once a minute per session, not on every segment. An open gallery page's event stream re-checks its
session with `check`, which is not activity (an open page must not keep a session alive), and every way a
session ends is told to that device's open pages (`session_ended`).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import jwt
from sqlalchemy import bindparam, delete, or_, update
from sqlalchemy import select as core_select
from sqlmodel import Session, col, select

from vaultserver.config import PRIVATE_FILE_MODE
from vaultserver.db import Database
from vaultserver.db.models import DeviceSession, RetiredRefreshToken, User, utcnow
from vaultserver.errors import VaultError
from vaultserver.services.audit import AuditEvent, AuditService
from vaultserver.services.events import SESSION_ENDED, Event, EventHub
from vaultserver.services.principal import Principal, SessionView, Tokens, auth_error
from vaultserver.services.settings import SettingsService
from vaultserver.services.users import UserView

log = logging.getLogger(__name__)

ACCESS_TTL = timedelta(minutes=15)
REFRESH_TTL = timedelta(days=7)
ACTIVITY_WRITE_INTERVAL = 60.0
VERIFIED_TOKENS = 4096  # access tokens whose signature was already checked (a player sends one repeatedly)
ALGORITHM = "HS256"


# Built once: constructing the statement cost more than running it (this runs for every request).
_LIVE_SESSION = (core_select(*(col(c) for c in (
                    DeviceSession.id, DeviceSession.user_id, DeviceSession.revoked_at,
                    DeviceSession.expires_at, DeviceSession.last_activity_at, User.username, User.role,
                    User.is_active)), col(User.expires_at).label("account_expires_at"))
                 .join(User, col(User.id) == col(DeviceSession.user_id))
                 .where(col(DeviceSession.id) == bindparam("sid"), col(User.id) == bindparam("sub")))


class _SessionTimes(Protocol):
    """What the liveness check reads: an ORM row or the per-request query's plain row."""

    id: str
    user_id: str
    revoked_at: datetime | None
    expires_at: datetime
    last_activity_at: datetime


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _forget_ended_chains(session: Session, now: datetime) -> None:
    """Drop the retired refresh-token hashes of sessions that are over: nothing can be reused there any more.
    Runs with every sign-in and refresh, so no other way of ending a session needs to remember it."""
    session.flush()
    ended = core_select(col(DeviceSession.id)).where(
        or_(col(DeviceSession.revoked_at).is_not(None), col(DeviceSession.expires_at) <= now))
    session.connection().execute(
        delete(RetiredRefreshToken).where(col(RetiredRefreshToken.session_id).in_(ended)))


def load_signing_secret(path: Path) -> bytes:
    """The HS256 secret, made once and kept owner-only in private/."""
    if not path.exists():
        path.write_bytes(b"")
        path.chmod(PRIVATE_FILE_MODE)
        path.write_bytes(secrets.token_bytes(64))
    return path.read_bytes()


class SessionService:
    def __init__(
        self,
        db: Database,
        audit: AuditService,
        settings: SettingsService,
        secret: bytes,
        events: EventHub,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._db = db
        self._events = events
        self._audit = audit
        self._settings = settings
        self._secret = secret
        self.clock = clock
        self._activity_written: dict[str, float] = {}
        self._verified: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    # --- tokens --------------------------------------------------------------------------------------

    def _access_token(self, user: UserView | User, session_id: str) -> str:
        now = self.clock()
        claims = {
            "sub": user.id,
            "sid": session_id,
            "role": user.role,
            "jti": uuid.uuid4().hex,
            "iat": int(now.timestamp()),
            "exp": int((now + ACCESS_TTL).timestamp()),
        }
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def decode(self, token: str) -> dict[str, Any]:
        """The token's claims. A signature is checked once per token; expiry is checked on every call."""
        claims = self._verified.get(token)
        if claims is not None and claims["exp"] > time.time():
            return claims
        claims = self._verify(token)
        with self._lock:
            if len(self._verified) >= VERIFIED_TOKENS:
                self._verified.clear()
            self._verified[token] = claims
        return claims

    def _verify(self, token: str) -> dict[str, Any]:
        try:
            return jwt.decode(token, self._secret, algorithms=[ALGORITHM],
                              options={"require": ["exp", "sid", "sub"]}, leeway=0, verify=True)
        except jwt.ExpiredSignatureError:
            raise auth_error("AUTH_003", "The access token has expired") from None
        except jwt.PyJWTError:
            raise auth_error("AUTH_002", "The access token is invalid") from None

    # --- life cycle ----------------------------------------------------------------------------------

    def create(self, user: UserView, *, device_name: str = "", device_type: str = "", ip: str = "",
               user_agent: str = "") -> Tokens:
        """Sign a device in; past the device limit, the least recently active session is signed out."""
        refresh = secrets.token_urlsafe(48)
        now = self.clock()
        with self._db.session() as session:
            row = DeviceSession(
                user_id=user.id,
                refresh_token_hash=_hash(refresh),
                device_name=device_name[:128],
                device_type=device_type[:32],
                ip_address=ip,
                user_agent=user_agent[:512],
                created_at=now,
                last_activity_at=now,
                expires_at=now + REFRESH_TTL,
            )
            session.add(row)
            session.flush()
            _forget_ended_chains(session, now)
            active = session.exec(
                select(DeviceSession)
                .where(
                    DeviceSession.user_id == user.id,
                    col(DeviceSession.revoked_at).is_(None),
                    col(DeviceSession.expires_at) > now,
                )
                .order_by(col(DeviceSession.last_activity_at).desc())
            ).all()
            evicted = active[self._settings.current.max_devices :]
            for old in evicted:
                old.revoked_at, old.revoked_reason = now, "device_limit"
                session.add(old)
        for old in evicted:
            self._audit.record(
                AuditEvent("session_revoked", user_id=user.id, username=user.username, session_id=old.id,
                           details={"reason": "device_limit"}))
            self._ended(old.id, "device_limit")
        self._audit.record(
            AuditEvent("login", user_id=user.id, username=user.username, session_id=row.id, ip_address=ip,
                       user_agent=user_agent, details={"device": device_name}))
        return Tokens(self._access_token(user, row.id), refresh, int(ACCESS_TTL.total_seconds()), row.id)

    def refresh(self, refresh_token: str, ip: str = "") -> Tokens:
        """Rotate: new access and refresh tokens. A rotated-away token presented again revokes the session."""
        digest = _hash(refresh_token or "")
        now = self.clock()
        with self._db.session() as session:
            row = session.exec(
                select(DeviceSession).where(DeviceSession.refresh_token_hash == digest)
            ).first()
            retired = None if row else session.exec(
                select(RetiredRefreshToken.session_id).where(RetiredRefreshToken.token_hash == digest)
            ).first()
            account_expires = (session.exec(select(User.expires_at).where(User.id == row.user_id)).first()
                               if row else None)
        if retired is not None:
            self._end_for_reuse(retired, ip)
        if row is None:
            raise auth_error("AUTH_002", "The refresh token is not valid")
        self._check_live(row, now, account_expires)
        refresh = secrets.token_urlsafe(48)
        with self._db.session() as session:
            # Swap first, before any read in this transaction: of two requests presenting the same token,
            # exactly one rotates it, and the other is reuse.
            swap = (update(DeviceSession)
                    .where(col(DeviceSession.id) == row.id, col(DeviceSession.refresh_token_hash) == digest)
                    .values(refresh_token_hash=_hash(refresh), last_activity_at=now,
                            ip_address=ip or row.ip_address))
            rotated = session.connection().execute(swap).rowcount == 1
            if rotated:
                user = session.get(User, row.user_id)
                if user is None or not user.is_active:
                    raise auth_error("AUTH_004", "This account is disabled")  # and the swap rolls back
                session.add(RetiredRefreshToken(token_hash=digest, session_id=row.id, retired_at=now))
                _forget_ended_chains(session, now)
                access = self._access_token(user, row.id)
        if not rotated:
            self._end_for_reuse(row.id, ip)
            raise auth_error("AUTH_002", "The refresh token is not valid")
        self._audit.record(AuditEvent("refresh", user_id=row.user_id, session_id=row.id, ip_address=ip))
        return Tokens(access, refresh, int(ACCESS_TTL.total_seconds()), row.id)

    def _end_for_reuse(self, session_id: str, ip: str) -> None:
        """A rotated-away refresh token came back: a copy is in someone else's hands. End the session."""
        end = (update(DeviceSession)
               .where(col(DeviceSession.id) == session_id, col(DeviceSession.revoked_at).is_(None))
               .values(revoked_at=self.clock(), revoked_reason="refresh_token_reuse"))
        with self._db.engine.begin() as connection:
            ended = connection.execute(end).rowcount == 1
            user_id = connection.execute(
                core_select(col(DeviceSession.user_id)).where(col(DeviceSession.id) == session_id)).scalar()
        self._audit.record(AuditEvent("refresh", "denied", user_id=user_id, session_id=session_id,
                                      ip_address=ip, details={"reason": "refresh_token_reuse"}))
        if ended:
            self._ended(session_id, "refresh_token_reuse")

    def _check_live(self, row: _SessionTimes, now: datetime, account_expires: datetime | None = None) -> None:
        """Raise AUTH_004 if the session is over; one that timed out (expired, idle, or its account's expiry
        passed) is marked ended, with the reason."""
        over = self._why_over(row, now, account_expires)
        if over is None:
            return
        reason, message = over
        if row.revoked_at is None:
            with self._db.session() as session:
                ended = session.get(DeviceSession, row.id)
                if ended is not None:
                    ended.revoked_at, ended.revoked_reason = now, reason
                    session.add(ended)
            self._audit.record(AuditEvent("session_ended", user_id=row.user_id, session_id=row.id,
                                          details={"reason": reason}))
            self._ended(row.id, reason)
        raise auth_error("AUTH_004", message)

    def _why_over(self, row: _SessionTimes, now: datetime,
                  account_expires: datetime | None) -> tuple[str, str] | None:
        """Why the session is over (the reason recorded, the message), or None while it is live."""
        if row.revoked_at is not None:
            return "revoked", "This session was signed out"
        if row.expires_at <= now:
            return "expired", "This session has expired; please sign in again"
        if account_expires is not None and account_expires <= now:
            return "account_expired", "This account has expired"
        if now - row.last_activity_at > timedelta(minutes=self._settings.current.idle_timeout_minutes):
            return "idle_timeout", "Signed out after a period of inactivity"
        return None

    def authenticate(self, access_token: str) -> Principal:
        """The per-request check: a valid token AND a live session row. Touches last activity cheaply.

        One indexed Core query (no ORM objects): this runs for every segment a player fetches.
        """
        claims = self.decode(access_token)
        return self.check(claims["sid"], claims["sub"], touch=True)

    def check(self, session_id: str, user_id: str, *, touch: bool = False) -> Principal:
        """Whether this session is still live, and who it is now (role changes show). Unless `touch`, it
        is not activity: an open page's event stream asks this and must not defeat the idle timeout."""
        now = self.clock()
        with self._db.engine.connect() as connection:
            row = connection.execute(_LIVE_SESSION, {"sid": session_id, "sub": user_id}).first()
        if row is None:
            raise auth_error("AUTH_004", "This session no longer exists")
        self._check_live(row, now, row.account_expires_at)
        if not row.is_active:
            raise auth_error("AUTH_004", "This account is disabled")
        if touch and self._due_activity_write(row.id):
            with self._db.session() as session:
                live = session.get(DeviceSession, row.id)
                if live is not None:
                    live.last_activity_at = now
                    session.add(live)
        return Principal(row.user_id, row.username, row.role, row.id)

    def _due_activity_write(self, session_id: str) -> bool:
        tick = time.monotonic()
        with self._lock:
            last = self._activity_written.get(session_id)
            if last is not None and tick - last < ACTIVITY_WRITE_INTERVAL:
                return False
            self._activity_written[session_id] = tick
            return True

    def revoke(
        self, session_id: str, reason: str, actor: Principal | None = None, owner_only: str | None = None
    ) -> None:
        """End one session. `owner_only` (a user id) restricts it to that user's own sessions."""
        with self._db.session() as session:
            row = session.get(DeviceSession, session_id) if session_id.isalnum() else None
            if row is None or (owner_only and row.user_id != owner_only):
                raise VaultError("No such session", code="VALIDATION_001", status=404)
            ending = row.revoked_at is None
            if ending:
                row.revoked_at, row.revoked_reason = self.clock(), reason
                session.add(row)
        self._record_by(actor, "session_revoked", session_id=session_id,
                        details={"reason": reason, "owner": row.user_id})
        if ending:
            self._ended(session_id, reason)

    def _ended(self, session_id: str, reason: str) -> None:
        """Tell the device's open pages to leave now. After the change, and never raising into it."""
        try:
            self._events.publish(Event(SESSION_ENDED, {"reason": reason}, session_id=session_id))
        except Exception:
            log.exception("Could not tell the open pages of session %s that it ended", session_id)

    def _record_by(self, actor: Principal | None, event: str, **fields: Any) -> None:
        self._audit.record(AuditEvent(event, user_id=actor.user_id if actor else None,
                                      username=actor.username if actor else None, **fields))

    def revoke_all_for_user(
        self, user_id: str, reason: str, keep: str | None = None, actor: Principal | None = None
    ) -> int:
        with self._db.session() as session:
            rows = session.exec(
                select(DeviceSession).where(
                    DeviceSession.user_id == user_id, col(DeviceSession.revoked_at).is_(None)
                )
            ).all()
            ended = [r for r in rows if r.id != keep]
            for row in ended:
                row.revoked_at, row.revoked_reason = self.clock(), reason
                session.add(row)
        self._record_by(actor, "sessions_revoked", details={"owner": user_id, "count": len(ended),
                                                             "reason": reason})
        for row in ended:
            self._ended(row.id, reason)
        return len(ended)

    def prune_ended(self, older_than: datetime) -> int:
        """Delete the records of sessions that ended (signed out, or expired) before `older_than`."""
        ended = or_(col(DeviceSession.revoked_at) < older_than, col(DeviceSession.expires_at) < older_than)
        with self._db.session() as session:
            return int(session.exec(delete(DeviceSession).where(ended)).rowcount or 0)

    def list(self, user_id: str | None = None, active_only: bool = True) -> list[SessionView]:
        now = self.clock()
        idle = timedelta(minutes=self._settings.current.idle_timeout_minutes)
        query = select(DeviceSession, User.username).join(User, col(User.id) == col(DeviceSession.user_id))
        if user_id:
            query = query.where(DeviceSession.user_id == user_id)
        if active_only:
            query = query.where(
                col(DeviceSession.revoked_at).is_(None),
                col(DeviceSession.expires_at) > now,
                col(DeviceSession.last_activity_at) > now - idle,
                or_(col(User.expires_at).is_(None), col(User.expires_at) > now),  # nor has the account
            )
        with self._db.session() as session:
            rows = session.exec(query.order_by(col(DeviceSession.last_activity_at).desc())).all()
        return [
            SessionView(r.id, r.user_id, name, r.device_name, r.device_type, r.ip_address, r.user_agent,
                        r.created_at, r.last_activity_at, r.expires_at, r.revoked_at, r.revoked_reason)
            for r, name in rows
        ]
