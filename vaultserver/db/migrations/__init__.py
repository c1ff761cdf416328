"""Alembic migrations: every schema change is a numbered revision in versions/."""
