"""Alembic environment: runs on the connection Vault hands in, or on the configured URL."""

import warnings

from alembic import context
from sqlalchemy import engine_from_config, pool
from sqlalchemy.exc import SAWarning
from sqlmodel import SQLModel

import vaultserver.db.models  # noqa: F401  (registers the tables on SQLModel.metadata)

config = context.config
target_metadata = SQLModel.metadata


def run_migrations(connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=connection.dialect.name == "sqlite")
    # SQLite's batch mode reflects the tables a changed one refers to; reflection cannot read the gallery's
    # expression index (which the batch never touches) and would say so on every new data folder's console.
    with context.begin_transaction(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based index",
                                SAWarning)
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    run_migrations(connection)
else:
    engine = engine_from_config(config.get_section(config.config_ini_section, {}), prefix="sqlalchemy.",
                                poolclass=pool.NullPool)
    with engine.connect() as conn:
        run_migrations(conn)
