"""The database tables. Schema changes go through an alembic migration in `migrations/versions/`."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

from sqlalchemy import JSON, Column, Index, func, text
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return uuid.uuid4().hex


_ID = re.compile(r"[0-9a-f]{32}")


def is_id(value: str) -> bool:
    """Whether `value` has the form `new_id` makes: anything else (a path, a traversal) names no row."""
    return _ID.fullmatch(value) is not None


class User(SQLModel, table=True):
    __tablename__ = "users"
    # Names are one person whatever their case: "Alice" and "alice" cannot both exist.
    __table_args__ = (Index("ux_users_username_lower", func.lower(text("username")), unique=True),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    username: str = Field(index=True, unique=True, max_length=64)  # as typed at creation; matched lowered
    password_hash: str
    role: str = Field(default="member", max_length=16)  # "admin" | "member" | "guest"
    is_active: bool = True
    expires_at: datetime | None = None  # a non-admin account's last moment: no sign-in, no session after
    # What an admin may take away from one account (a guest never uploads, whatever these say).
    can_upload: bool = True
    can_download: bool = True
    failed_attempts: int = 0
    locked_until: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    last_login_at: datetime | None = None


class DeviceSession(SQLModel, table=True):
    """One signed-in device of one user."""

    __tablename__ = "sessions"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    user_id: str = Field(foreign_key="users.id", index=True, max_length=32)
    refresh_token_hash: str = Field(index=True, max_length=128)  # the current one; earlier ones below
    device_name: str = Field(default="", max_length=128)
    device_type: str = Field(default="", max_length=32)
    ip_address: str = Field(default="", max_length=64)
    user_agent: str = Field(default="", max_length=512)
    created_at: datetime = Field(default_factory=utcnow)
    last_activity_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    revoked_at: datetime | None = None
    revoked_reason: str | None = Field(default=None, max_length=64)


class RetiredRefreshToken(SQLModel, table=True):
    """A refresh token of a session's chain that was already rotated away, kept only as its SHA-256.

    Presenting any of them again means a copy is in someone else's hands, so the session ends. The rows of
    a session are dropped once it is over (and with it, should the session row itself be deleted).
    """

    __tablename__ = "retired_refresh_tokens"

    token_hash: str = Field(primary_key=True, max_length=64)
    session_id: str = Field(foreign_key="sessions.id", ondelete="CASCADE", index=True, max_length=32)
    retired_at: datetime = Field(default_factory=utcnow)


class MediaFile(SQLModel, table=True):
    __tablename__ = "media_files"
    # The gallery pages through these orders; each needs an index that ends in the id tie-breaker.
    __table_args__ = (
        Index("ix_media_files_created_id", "created_at", "id"),
        Index("ix_media_files_type_created_id", "media_type", "created_at", "id"),
        Index("ix_media_files_shown_date_id", func.coalesce(text("taken_at"), text("created_at")), "id"),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    media_type: str = Field(index=True, max_length=8)  # "image" | "video"
    original_name: str = Field(index=True, max_length=1024)
    sha256: str = Field(index=True, unique=True, max_length=64)
    size: int  # bytes of the original
    stored_size: int = 0  # bytes in library/, all derivatives
    mime_type: str = Field(default="", max_length=64)  # of what /stream serves
    source_format: str = Field(default="", max_length=64)
    width: int = 0
    height: int = 0
    duration: float | None = None
    animated: bool = False
    taken_at: datetime | None = Field(default=None, index=True)
    camera_make: str | None = Field(default=None, max_length=128)
    camera_model: str | None = Field(default=None, max_length=128)
    status: str = Field(default="ready", index=True, max_length=16)
    renditions: list = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    has_original: bool = False
    # The account that sent it from a browser (None: dropped into the import folder). Not a foreign key: the
    # record stays when the account goes, as the audit log keeps names.
    uploaded_by: str | None = Field(default=None, max_length=32)
    created_at: datetime = Field(default_factory=utcnow, index=True)
    updated_at: datetime = Field(default_factory=utcnow)


class EncryptionKey(SQLModel, table=True):
    """A media item's data key, stored only wrapped by a master key.

    purpose "hls" keys are the AES-128 keys HLS players fetch; "file" keys protect the at-rest container
    files and are never served.
    """

    __tablename__ = "encryption_keys"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    # CASCADE: a key never outlives its item, even if a row is removed outside LibraryService.delete().
    media_id: str = Field(foreign_key="media_files.id", ondelete="CASCADE", index=True, max_length=32)
    purpose: str = Field(max_length=8)
    wrapped_key: bytes
    master_key_id: str = Field(index=True, max_length=32)
    iv: str | None = Field(default=None, max_length=32)  # hex, HLS only
    created_at: datetime = Field(default_factory=utcnow)
    rotated_at: datetime | None = None


class AccessLog(SQLModel, table=True):
    """The audit log: one row per security-relevant event."""

    __tablename__ = "access_logs"

    id: int | None = Field(default=None, primary_key=True)
    timestamp: datetime = Field(default_factory=utcnow, index=True)
    event: str = Field(index=True, max_length=48)
    outcome: str = Field(default="ok", max_length=16)  # ok | denied | failed
    user_id: str | None = Field(default=None, index=True, max_length=32)
    username: str | None = Field(default=None, max_length=64)
    session_id: str | None = Field(default=None, max_length=32)
    ip_address: str | None = Field(default=None, max_length=64)
    user_agent: str | None = Field(default=None, max_length=512)
    resource: str | None = Field(default=None, max_length=1024)
    details: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class ProcessingJob(SQLModel, table=True):
    """One file found in the import folder, from discovery to commit. Persistent across crashes."""

    __tablename__ = "processing_queue"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    # Where the file was found, absolute, and the import folder it was found under: a job is never
    # re-rooted when the import folder setting changes while it waits.
    path: str = Field(index=True, max_length=4096)
    import_root: str = Field(max_length=4096)
    original_name: str = Field(max_length=1024)
    size: int = 0
    mtime: float = 0.0
    sha256: str | None = Field(default=None, max_length=64)
    media_type: str | None = Field(default=None, max_length=8)
    status: str = Field(default="queued", index=True, max_length=16)
    stage: str = Field(default="queued", max_length=32)
    progress: float = 0.0
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow, index=True)
    error: str | None = None
    media_id: str | None = Field(default=None, max_length=32)
    created_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    # The lease of a job being converted: who holds it, the secret its writes must show, and when it
    # lapses unless renewed. Empty while the job waits or once it ended.
    lease_owner: str | None = Field(default=None, max_length=128)
    lease_token: str | None = Field(default=None, max_length=64)
    lease_expires_at: datetime | None = None
    uploaded_by: str | None = Field(default=None, max_length=32)  # the account whose upload this file is


class PlaybackPosition(SQLModel, table=True):
    """Where each user stopped watching each video, so any of their devices can resume there."""

    __tablename__ = "playback_positions"

    # A position belongs to its user and its video: deleting either takes it along (a watched video used
    # to be undeletable because the position row held on to it).
    user_id: str = Field(foreign_key="users.id", ondelete="CASCADE", primary_key=True, max_length=32)
    media_id: str = Field(foreign_key="media_files.id", ondelete="CASCADE", primary_key=True, max_length=32)
    position: float = 0.0
    updated_at: datetime = Field(default_factory=utcnow)


class Worker(SQLModel, table=True):
    """A machine allowed to convert for this Vault over HTTPS, known by the token it was given.

    Only the token's SHA-256 is kept: the secret is 32 random bytes, so a fast hash cannot be guessed back.
    A revoked worker keeps its row (the admin window lists it) until its name is given out again.
    """

    __tablename__ = "worker"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    name: str = Field(unique=True, max_length=40)
    token_hash: str = Field(index=True, unique=True, max_length=64)
    created_at: datetime = Field(default_factory=utcnow)
    created_by: str | None = Field(default=None, max_length=64)
    revoked_at: datetime | None = None
    # What the worker last told the server: where it called from, what it can encode, what it works on.
    last_seen_at: datetime | None = None
    address: str | None = Field(default=None, max_length=64)
    encoders: list = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    job_id: str | None = Field(default=None, max_length=32)
    stage: str | None = Field(default=None, max_length=32)
    progress: float | None = None


class Album(SQLModel, table=True):
    """A named set of items, owned by the member who made it and shared with chosen accounts.

    Deleting an album deletes no media; deleting an item or an account takes its album rows along.
    """

    __tablename__ = "albums"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    name: str = Field(max_length=200)
    owner_id: str = Field(foreign_key="users.id", ondelete="CASCADE", index=True, max_length=32)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class AlbumItem(SQLModel, table=True):
    __tablename__ = "album_items"

    album_id: str = Field(foreign_key="albums.id", ondelete="CASCADE", primary_key=True, max_length=32)
    # Indexed on its own: a guest's access filter and an item's deletion look albums up by item.
    media_id: str = Field(foreign_key="media_files.id", ondelete="CASCADE", primary_key=True, index=True,
                          max_length=32)
    added_at: datetime = Field(default_factory=utcnow)


class AlbumShare(SQLModel, table=True):
    """An album shared with one account: what a guest sees at all."""

    __tablename__ = "album_shares"

    album_id: str = Field(foreign_key="albums.id", ondelete="CASCADE", primary_key=True, max_length=32)
    user_id: str = Field(foreign_key="users.id", ondelete="CASCADE", primary_key=True, index=True,
                         max_length=32)
    shared_at: datetime = Field(default_factory=utcnow)


class Favorite(SQLModel, table=True):
    """One person's heart on one item."""

    __tablename__ = "favorites"

    user_id: str = Field(foreign_key="users.id", ondelete="CASCADE", primary_key=True, max_length=32)
    media_id: str = Field(foreign_key="media_files.id", ondelete="CASCADE", primary_key=True, index=True,
                          max_length=32)
    created_at: datetime = Field(default_factory=utcnow)


class Upload(SQLModel, table=True):
    """A resumable upload (tus) from one account's browser: its bytes so far live in private/uploads/<id>.

    Once whole, the file is handed to the conversion queue like a dropped one (`job_id`); the row stays so
    the browser can ask how it ended. Silent for 24 h before that: swept with its bytes.
    """

    __tablename__ = "uploads"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    user_id: str = Field(foreign_key="users.id", ondelete="CASCADE", index=True, max_length=32)
    filename: str = Field(max_length=255)  # a display name only: path parts and control characters stripped
    length: int
    offset: int = 0
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow, index=True)  # the last byte received
    job_id: str | None = Field(default=None, max_length=32)
