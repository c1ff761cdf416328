"""The schema comes from migrations, matches the models, migrations carry the data over, and SQLite runs in
WAL mode."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, text
from sqlmodel import SQLModel

from vaultserver.config import AppPaths, Settings, save_settings
from vaultserver.db import Database
from vaultserver.db.engine import SCHEMA_HEAD, alembic_config


def test_migrations_build_exactly_the_models_schema(services):
    with services.db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert diff == [], "models changed without a migration: run alembic revision --autogenerate"
    assert services.db.current_revision() == services.db.head_revision()


def test_the_schema_head_an_open_compares_with_is_alembics_head(services):
    """Opening skips alembic when the stored revision is SCHEMA_HEAD: a new migration must move it."""
    assert SCHEMA_HEAD == services.db.head_revision() == services.db.stored_revision()


def test_sqlite_runs_in_wal_mode_with_foreign_keys(services):
    with services.db.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1


def test_required_tables_exist(services):
    with services.db.engine.connect() as conn:
        tables = {r[0] for r in conn.execute(text("SELECT name FROM sqlite_master WHERE type='table'"))}
    required = {"users", "sessions", "media_files", "encryption_keys", "access_logs", "processing_queue"}
    assert required <= tables


def database_at_0003_with_a_job(url: str, relative: str) -> None:
    command.upgrade(alembic_config(url), "0003")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO processing_queue (id, source_path, original_name, size, mtime, status, stage,"
            " progress, attempts, next_attempt_at, created_at) VALUES ('j1', :rel, 'a.jpg', 1, 0, 'queued',"
            " 'queued', 0, 0, '2026-01-01 00:00:00', '2026-01-01 00:00:00')"), {"rel": relative})
    engine.dispose()


def job_paths(db: Database) -> tuple[str, str]:
    with db.engine.connect() as conn:
        return tuple(conn.execute(text("SELECT path, import_root FROM processing_queue")).one())


def test_upgrading_roots_waiting_jobs_at_the_import_folder_in_effect(tmp_path):
    url = f"sqlite:///{tmp_path / 'vault.db'}"
    database_at_0003_with_a_job(url, "trip/a.jpg")
    db = Database(url)
    db.migrate(import_root=tmp_path / "Drop")
    assert job_paths(db) == (str(tmp_path / "Drop" / "trip" / "a.jpg"), str(tmp_path / "Drop"))
    command.downgrade(alembic_config(url), "0003")
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT source_path FROM processing_queue")).scalar() == "trip/a.jpg"
    db.dispose()


def test_upgrading_by_hand_roots_jobs_where_the_settings_next_to_the_database_say(tmp_path):
    paths = AppPaths(tmp_path / "vault").ensure()
    save_settings(paths, Settings(import_dir=str(tmp_path / "Drop")))
    url = f"sqlite:///{paths.database}"
    database_at_0003_with_a_job(url, "a.jpg")
    command.upgrade(alembic_config(url), "head")
    db = Database(url)
    assert job_paths(db) == (str(tmp_path / "Drop" / "a.jpg"), str(tmp_path / "Drop"))
    db.dispose()
