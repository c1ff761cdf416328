"""Engine creation, SQLite tuning and schema migration to the newest revision on open.

Opening is also where a damaged SQLite file is recognised and explained (`DatabaseDamaged`), and where the
file is made owner-only: it holds accounts, sessions and every item's wrapped keys.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import event, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine
from sqlmodel import Session, create_engine

from vaultserver.config import PRIVATE_FILE_MODE
from vaultserver.errors import VaultError

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# The newest migration's revision. Revisions are named by the number their file starts with; a test checks
# this against alembic's own idea of the head, so a new migration cannot forget it.
SCHEMA_HEAD = "0010"
# SQLite's primary result codes for a file that is not (or no longer) a sound database.
SQLITE_CORRUPT, SQLITE_NOTADB = 11, 26


class DatabaseDamaged(VaultError):
    """The library database cannot be read as a database: the owner restores it; Vault never rewrites it."""

    code = "SYSTEM_002"
    status = 500


def database_url(db_path: Path) -> str:
    return os.environ.get("VAULT_DATABASE_URL") or f"sqlite:///{db_path}"


def _tune_sqlite(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers (the API, the CLI) proceed while a worker commits.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    # Deleted rows (a shredded data key) are overwritten, not left in free pages.
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()


def alembic_config(url: str) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url)
    return cfg


class Database:
    """Owns the engine. Sessions are short-lived and never cross threads."""

    def __init__(self, url: str) -> None:
        self.url = url
        is_sqlite = url.startswith("sqlite")
        self.engine: Engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 10} if is_sqlite else {},
        )
        if is_sqlite:
            event.listen(self.engine, "connect", _tune_sqlite)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: committed on success, rolled back on any exception."""
        with Session(self.engine, expire_on_commit=False) as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def migrate(self, import_root: Path | None = None) -> None:
        """Upgrade to head. `import_root`: the import folder in effect, for migrations that need it.

        Alembic is loaded only when the schema is behind: most opens (every command, every backup child)
        find it current, and loading alembic is a fifth of a second of each command's start."""
        if self.stored_revision() == SCHEMA_HEAD:
            return
        from alembic import command

        with self.engine.begin() as connection:
            cfg = alembic_config(self.url)
            cfg.attributes["connection"] = connection
            cfg.attributes["import_root"] = import_root
            command.upgrade(cfg, "head")

    def stored_revision(self) -> str | None:
        """The schema revision the database says it has (None: new, or not yet under alembic)."""
        try:
            with self.engine.connect() as connection:
                rows = connection.execute(text("SELECT version_num FROM alembic_version")).all()
        except sa_exc.OperationalError:  # no alembic_version table yet
            return None
        return rows[0][0] if len(rows) == 1 else None

    def current_revision(self) -> str | None:
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    def head_revision(self) -> str | None:
        from alembic.script import ScriptDirectory

        return ScriptDirectory.from_config(alembic_config(self.url)).get_current_head()

    def dispose(self) -> None:
        self.engine.dispose()


def _owner_only(db_path: Path) -> None:
    """Create the file 0600 before SQLite does (it would use 0644 less the umask), or tighten an older one.

    SQLite gives the -wal and -shm files the database file's mode, so they follow."""
    fd = os.open(db_path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE_MODE)
    try:
        if stat.S_IMODE(os.fstat(fd).st_mode) != PRIVATE_FILE_MODE:
            os.fchmod(fd, PRIVATE_FILE_MODE)
    finally:
        os.close(fd)


def _damage(exc: sa_exc.DBAPIError) -> str | None:
    """SQLite's own words when the error says the file is damaged; None for any other failure."""
    orig = exc.orig
    code = getattr(orig, "sqlite_errorcode", None)
    if isinstance(orig, sqlite3.DatabaseError) and code is not None and code & 0xFF in (SQLITE_CORRUPT,
                                                                                         SQLITE_NOTADB):
        return str(orig)
    return None


def open_database(db_path: Path, import_root: Path | None = None) -> Database:
    """Open (creating if needed) and migrate to the newest schema.

    A file that is not a database, or is malformed (truncated, overwritten), raises `DatabaseDamaged` with
    what to do, instead of the driver's traceback; the file is left exactly as it was found.
    """
    url = database_url(db_path)
    if url == f"sqlite:///{db_path}":
        _owner_only(db_path)
    db = Database(url)
    try:
        db.migrate(import_root)
    except sa_exc.DBAPIError as exc:
        db.dispose()
        reason = _damage(exc)
        if reason is None:
            raise
        raise DatabaseDamaged(
            f"The library database ({db_path}) is damaged: {reason}. Your media files are safe; restore "
            f"vault.db from a backup (Time Machine or Vault's backup), or move it aside to start an empty "
            f"library.", details={"database": str(db_path), "sqlite": reason}) from exc
    return db
