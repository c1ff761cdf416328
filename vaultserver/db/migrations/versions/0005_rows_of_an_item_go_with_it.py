"""rows of an item go with it

A saved playback position held on to its video through a plain foreign key, so deleting a watched video
failed and rolled back, and its keys were never shredded. The rows that belong to a media item (its
playback positions and its wrapped data keys) and a user's playback positions now carry ON DELETE CASCADE.

SQLite cannot alter a constraint in place, so each table is rebuilt (batch mode); its foreign keys there
have no names, which the naming convention below supplies for the rebuild. Other databases name them
themselves; the reflected name is used.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-10 09:12:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

NAMING = {"fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s"}
CASCADED = (  # (table, column, referred table)
    ('encryption_keys', 'media_id', 'media_files'),
    ('playback_positions', 'media_id', 'media_files'),
    ('playback_positions', 'user_id', 'users'),
)


def _set_ondelete(ondelete: str | None) -> None:
    inspector = sa.inspect(op.get_bind())
    for table in sorted({t for t, _, _ in CASCADED}):
        reflected = {tuple(fk['constrained_columns']): fk['name'] for fk in inspector.get_foreign_keys(table)}
        with op.batch_alter_table(table, naming_convention=NAMING) as batch_op:
            for _, column, referred in (c for c in CASCADED if c[0] == table):
                name = reflected.get((column,)) or NAMING['fk'] % {
                    'table_name': table, 'column_0_name': column, 'referred_table_name': referred}
                batch_op.drop_constraint(name, type_='foreignkey')
                batch_op.create_foreign_key(name, referred, [column], ['id'], ondelete=ondelete)


def upgrade() -> None:
    _set_ondelete('CASCADE')


def downgrade() -> None:
    _set_ondelete(None)
