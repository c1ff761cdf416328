"""Worker tokens: which machines may convert for this Vault over HTTPS, and what each last reported.

The owner names a worker and gets a join string (`NewWorker.join_string`) to paste on that machine; Vault
keeps only the SHA-256 of its token (32 random bytes: nothing to guess, so no slow hash is needed). Every
call a worker makes presents the token (`authenticate`); a revoked one is refused on its very next call.
The routes that serve workers record where a worker called from and what it can encode (`seen`) and what
it works on (`working`), which is what the admin window's Workers tab and `worker-token list` show.

The join string names the server by `server_url` (a LAN address, so another machine can reach it) and pins
Vault's CA certificate (`served_ca_pem`), which stays the same when the server certificate is re-issued.
"""

from __future__ import annotations

import builtins
import hashlib
import ipaddress
import logging
import re
import secrets
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import func, update
from sqlalchemy.exc import IntegrityError as DBIntegrityError
from sqlmodel import Session, col, select

from vaultserver.config import AppPaths
from vaultserver.crypto.tls import VPN_GATEWAY, host_names, local_addresses, tls_files
from vaultserver.db import Database
from vaultserver.db.models import Worker, utcnow
from vaultserver.errors import NotFoundError, ValidationError
from vaultserver.join_string import JoinString
from vaultserver.services.audit import AuditEvent, AuditService
from vaultserver.services.principal import AuthError

log = logging.getLogger(__name__)

NAME = re.compile(r"[A-Za-z0-9._-]{1,40}")
NAME_RULE = "A worker's name is 1 to 40 letters, digits, dots, dashes or underscores"
MAX_TOKEN = 200  # longer than any token Vault makes: not worth hashing
SEEN_WRITE_INTERVAL = 30.0  # seconds; `last seen` is shown to the minute, workers call many times a second


@dataclass(frozen=True)
class WorkerView:
    """A worker as the admin sees it; also who `authenticate` found."""

    name: str
    created_at: datetime
    revoked: bool
    last_seen_at: datetime | None
    address: str | None
    encoders: list[str]
    job_id: str | None
    stage: str | None
    progress: float | None

    @classmethod
    def of(cls, row: Worker) -> WorkerView:
        return cls(row.name, row.created_at, row.revoked_at is not None, row.last_seen_at, row.address,
                   [str(e) for e in row.encoders or []], row.job_id, row.stage, row.progress)

    def to_dict(self) -> dict[str, Any]:
        return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class NewWorker:
    """What creating a worker gives the owner, once: the secret is not kept anywhere else."""

    name: str
    token: str
    join_string: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "join_string": self.join_string}


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _checked_name(name: str) -> str:
    name = name.strip() if isinstance(name, str) else ""
    if not NAME.fullmatch(name):
        raise ValidationError(NAME_RULE, details={"field": "name"})
    return name


def _taken(name: str) -> ValidationError:
    return ValidationError(f"There is already a worker named {name}: revoke it first, or choose another name",
                           details={"field": "name"})


def _named(session: Session, name: str) -> Worker | None:
    """The row of this name, whatever its case (there is at most one: `create` replaces, never adds)."""
    return session.exec(select(Worker).where(func.lower(col(Worker.name)) == name.lower())).first()


class WorkerService:
    def __init__(self, db: Database, audit: AuditService) -> None:
        self._db = db
        self._audit = audit
        self._lock = threading.Lock()
        # name -> (when written, address, encoders) as last written by `seen`, to skip needless writes
        self._seen: dict[str, tuple[float, str | None, list[str] | None]] = {}

    def create(self, name: str, *, actor: str | None, server_url: str, ca_pin: str) -> NewWorker:
        """A new worker and its token. Names are unique among live workers whatever their case; a revoked
        worker's name can be given out again (its row is replaced)."""
        name = _checked_name(name)
        token = secrets.token_urlsafe(32)
        join_string = JoinString(server_url, ca_pin, token).encode()
        try:
            with self._db.session() as session:
                existing = _named(session, name)
                if existing is not None and existing.revoked_at is None:
                    raise _taken(existing.name)
                if existing is not None:
                    session.delete(existing)
                    session.flush()
                session.add(Worker(name=name, token_hash=_hash(token), created_by=actor))
        except DBIntegrityError:  # the same name created twice at once
            raise _taken(name) from None
        with self._lock:
            self._seen.pop(name, None)
        self._audit.record(AuditEvent("worker_token_created", username=actor, resource=name))
        return NewWorker(name, token, join_string)

    def list(self) -> list[WorkerView]:
        """Every worker, revoked ones too, newest first."""
        with self._db.session() as session:
            rows = session.exec(select(Worker).order_by(col(Worker.created_at).desc())).all()
            return [WorkerView.of(row) for row in rows]

    def revoke(self, name: str, *, actor: str | None) -> str:
        """Refuse this worker's token from its next call on; its name as stored. (`Services.revoke_worker`
        also puts its jobs back in line.)"""
        with self._db.session() as session:
            row = _named(session, name)
            if row is None or row.revoked_at is not None:
                raise NotFoundError(f"No worker named {name} (see `vaultserver worker-token list`)",
                                    details={"name": name})
            row.revoked_at = utcnow()
            row.job_id, row.stage, row.progress = None, None, None
            session.add(row)
            name = row.name
        with self._lock:
            self._seen.pop(name, None)
        self._audit.record(AuditEvent("worker_token_revoked", username=actor, resource=name))
        return name

    def authenticate(self, token: str) -> WorkerView:
        """The worker this token belongs to; unknown or revoked: AuthError (401, AUTH_001)."""
        if not token or len(token) > MAX_TOKEN:
            raise AuthError("Not a worker token", code="AUTH_001")
        with self._db.session() as session:
            row = session.exec(select(Worker).where(col(Worker.token_hash) == _hash(token))).first()
            if row is None:
                raise AuthError("This worker token is not valid for this Vault", code="AUTH_001")
            if row.revoked_at is not None:
                raise AuthError(f"The owner revoked worker {row.name}'s token", code="AUTH_001")
            return WorkerView.of(row)

    def seen(self, name: str, *, address: str | None, encoders: builtins.list[str] | None = None) -> None:
        """The worker called, from `address`, able to use `encoders` (None: as it last said). Written at
        most every SEEN_WRITE_INTERVAL seconds unless the address or the encoders changed."""
        now = time.monotonic()
        with self._lock:
            last = self._seen.get(name)
            if (last is not None and now - last[0] < SEEN_WRITE_INTERVAL and last[1] == address
                    and (encoders is None or encoders == last[2])):
                return
            known = encoders if encoders is not None else (last[2] if last else None)
            self._seen[name] = (now, address, known)
        values: dict[str, Any] = {"last_seen_at": utcnow(), "address": address}
        if encoders is not None:
            values["encoders"] = [str(e) for e in encoders]
        self._update_live(name, values)

    def working(self, name: str, job_id: str | None, stage: str | None = None,
                progress: float | None = None) -> None:
        """What the worker converts now (job_id None: nothing), shown in the Workers tab. Written on every
        call: report at the pace progress is worth showing (a few times a second at most)."""
        self._update_live(name, {"job_id": job_id, "stage": stage if job_id else None,
                                 "progress": progress if job_id else None})

    def _update_live(self, name: str, values: dict[str, Any]) -> None:
        with self._db.session() as session:
            live = update(Worker).where(col(Worker.name) == name, col(Worker.revoked_at).is_(None))
            session.connection().execute(live.values(**values))


def server_url(port: int, addresses: Sequence[str] | None = None) -> str:
    """The URL a join string names: this Mac's LAN address (192.168.x.x first), else its `.local` name.

    `addresses`: the ones to choose from (default: `local_addresses()`, the certificate's own list).
    """
    found = local_addresses() if addresses is None else addresses
    lan = [a for a in found if _is_lan(a)]
    lan.sort(key=lambda a: not a.startswith("192.168."))
    host = lan[0] if lan else next(n for n in host_names() if n.endswith(".local"))
    return f"https://{host}:{port}/"


def _is_lan(address: str) -> bool:
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return False
    # The VPN gateway is listed whether or not this Mac runs the VPN: a machine at home reaches the LAN one.
    return (parsed.version == 4 and parsed.is_private and not parsed.is_loopback and not parsed.is_link_local
            and address != VPN_GATEWAY)


def served_ca_pem(paths: AppPaths) -> bytes:
    """The CA certificate a worker pins and trusts: Vault's own CA, or the top of the owner's own chain
    when the owner supplied the certificate. NotFoundError when Vault has made no certificate yet."""
    files = tls_files(paths)
    if files.ca.exists():
        return files.ca.read_bytes()
    try:
        chain = x509.load_pem_x509_certificates(files.cert.read_bytes())
    except (OSError, ValueError):
        raise NotFoundError("This Vault has no HTTPS certificate yet: start it once") from None
    return chain[-1].public_bytes(Encoding.PEM)
