"""SQLModel tables and the engine: SQLite (WAL) by default, any SQLAlchemy URL via VAULT_DATABASE_URL."""

from vaultserver.db.engine import Database, DatabaseDamaged, open_database

__all__ = ["Database", "DatabaseDamaged", "open_database"]
