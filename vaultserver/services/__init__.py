"""THE service layer. The API, the CLI and the GUI all call these; no business rule lives anywhere else."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from vaultserver.config import AppPaths
from vaultserver.crypto.keystore import KeyStore, choose_backend
from vaultserver.crypto.tls import ensure_certificate
from vaultserver.db import Database, open_database
from vaultserver.db.models import utcnow
from vaultserver.join_string import ca_pin
from vaultserver.services.access import AccessRule
from vaultserver.services.albums import AlbumService
from vaultserver.services.audit import AuditEvent, AuditService
from vaultserver.services.converting import ConvertingItems
from vaultserver.services.events import EventHub
from vaultserver.services.favorites import FavoriteService
from vaultserver.services.item_events import ItemEvents
from vaultserver.services.keys import KeyService
from vaultserver.services.library import LibraryService
from vaultserver.services.media import MediaService
from vaultserver.services.principal import Principal
from vaultserver.services.queue import REMOTE_OWNER_PREFIX, QueueService
from vaultserver.services.sessions import SessionService, load_signing_secret
from vaultserver.services.settings import SettingsService
from vaultserver.services.uploads import UploadService
from vaultserver.services.users import UserService, UserView
from vaultserver.services.workers import NewWorker, WorkerService, served_ca_pem, server_url


@dataclass
class Services:
    paths: AppPaths
    db: Database
    settings: SettingsService
    audit: AuditService
    keys: KeyService
    library: LibraryService
    queue: QueueService
    users: UserService
    sessions: SessionService
    media: MediaService  # what the media routes read: the one door, where the access rule will live
    converting: ConvertingItems  # videos listed and playable while they convert
    workers: WorkerService
    events: EventHub  # what changed, told to the open gallery pages
    albums: AlbumService  # albums, their items and who they are shared with
    uploads: UploadService  # resumable uploads from browsers, handed to the queue once whole

    def close(self) -> None:
        self.db.dispose()

    def change_user(self, user_id: str, *, actor: Principal | None = None, actor_name: str | None = None,
                    **changes: Any) -> UserView:
        """An admin's change to an account; a new password or a disabled account signs out its devices."""
        user = self.users.update(user_id, actor=actor.username if actor else actor_name, **changes)
        if changes.get("is_active") is False or changes.get("password") is not None:
            self.sessions.revoke_all_for_user(user_id, "account_changed_by_admin", None, actor)
        return user

    def change_own_password(self, who: Principal, current: str, new: str, ip: str = "") -> int:
        """A person's new password (the current one checked as at sign-in); every OTHER device of theirs is
        signed out, the one asking stays. Returns how many were signed out."""
        self.users.change_password(who.user_id, current, new, ip)
        return self.sessions.revoke_all_for_user(who.user_id, "password_changed", keep=who.session_id,
                                                 actor=who)

    def add_worker(self, name: str, *, actor: str | None) -> NewWorker:
        """A new worker token with its join string: this Mac's LAN URL on the configured port, and the pin of
        the CA the server presents (made first, as `serve` would, if this Vault has none yet)."""
        ensure_certificate(self.paths)
        pem = served_ca_pem(self.paths)
        return self.workers.create(name, actor=actor, server_url=server_url(self.settings.current.port),
                                   ca_pin=ca_pin(pem))

    def revoke_worker(self, name: str, *, actor: str | None) -> None:
        """Refuse the worker's token from now on, and put the jobs it holds back in line at once."""
        stored = self.workers.revoke(name, actor=actor)
        self.queue.release_owner(REMOTE_OWNER_PREFIX + stored)

    def prune_old_records(self) -> dict[str, int]:
        """Delete audit entries and ended sessions past their retention settings (the runtime does this
        daily); returns how many of each went."""
        settings, now = self.settings.current, utcnow()
        audit_before = now - timedelta(days=settings.audit_retention_days)
        sessions_before = now - timedelta(days=settings.session_retention_days)
        removed = {"audit": self.audit.prune(audit_before),
                   "sessions": self.sessions.prune_ended(sessions_before)}
        if any(removed.values()):
            self.audit.record(AuditEvent("records_pruned", details=removed))
        return removed


def open_services(paths: AppPaths, key_store: KeyStore | None = None) -> Services:
    """Everything the front ends need, on one data dir (created and migrated if new). `key_store`: other
    than the one the settings name (a backup's keys, opened in memory with the recovery key)."""
    paths.ensure()
    settings = SettingsService(paths)
    db = open_database(paths.database, import_root=settings.current.import_path(paths))
    audit = AuditService(db)
    store = key_store or KeyStore(choose_backend(paths, settings.current.keystore))
    keys = KeyService(paths, db, store, settings, audit)
    queue = QueueService(db)
    events, access = EventHub(), AccessRule(db)
    item_events = ItemEvents(events, access)
    library = LibraryService(paths, db, keys, audit, queue, item_events)
    sessions = SessionService(db, audit, settings, load_signing_secret(paths.private / "jwt.secret"), events)
    converting = ConvertingItems(paths, db, keys, queue, item_events)
    albums = AlbumService(db, audit, events)
    media = MediaService(paths, library, keys, audit, converting, access, albums, FavoriteService(db))
    return Services(paths=paths, db=db, settings=settings, audit=audit, keys=keys, library=library,
                    queue=queue, users=UserService(db, audit), sessions=sessions, media=media,
                    converting=converting, workers=WorkerService(db, audit), events=events, albums=albums,
                    uploads=UploadService(paths, db, settings, queue, audit))
