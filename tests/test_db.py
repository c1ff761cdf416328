"""The schema comes from migrations, matches the models, and SQLite runs in WAL mode."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlmodel import SQLModel


def test_migrations_build_exactly_the_models_schema(services):
    with services.db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert diff == [], "models changed without a migration: run alembic revision --autogenerate"
    assert services.db.current_revision() == services.db.head_revision()


def test_sqlite_runs_in_wal_mode_with_foreign_keys(services):
    with services.db.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1


def test_required_tables_exist(services):
    with services.db.engine.connect() as conn:
        tables = {r[0] for r in conn.execute(text("SELECT name FROM sqlite_master WHERE type='table'"))}
    required = {"users", "sessions", "media_files", "encryption_keys", "access_logs", "processing_queue"}
    assert required <= tables
