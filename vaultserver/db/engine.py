"""Engine creation, SQLite tuning and schema migration to the newest revision on open."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session, create_engine

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


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
        """Upgrade to head. `import_root`: the import folder in effect, for migrations that need it."""
        with self.engine.begin() as connection:
            cfg = alembic_config(self.url)
            cfg.attributes["connection"] = connection
            cfg.attributes["import_root"] = import_root
            command.upgrade(cfg, "head")

    def current_revision(self) -> str | None:
        with self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    def head_revision(self) -> str | None:
        return ScriptDirectory.from_config(alembic_config(self.url)).get_current_head()

    def dispose(self) -> None:
        self.engine.dispose()


def open_database(db_path: Path, import_root: Path | None = None) -> Database:
    """Open (creating if needed) and migrate to the newest schema."""
    db = Database(database_url(db_path))
    db.migrate(import_root)
    return db
