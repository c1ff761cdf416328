"""family library: roles, expiring accounts, one name per person, albums, shares, favorites

Accounts become `admin`, `member` (what `viewer` was: the whole library) or `guest` (only albums shared with
them), and any non-admin may expire. Names match whatever their case, so two accounts that differ only in
case must be told apart by the owner first: the upgrade refuses, naming them, and changes nothing.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 18:40:00.000000
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel

from vaultserver.errors import ConfigurationError


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def _refuse_names_that_differ_only_in_case() -> None:
    clashes = op.get_bind().execute(sa.text(
        "SELECT group_concat(username, ', ') FROM users GROUP BY lower(username) HAVING count(*) > 1"
    )).scalars().all()
    if clashes:
        raise ConfigurationError(
            'Vault now treats user names the same whatever their case, and these accounts differ only in '
            'case: ' + '; '.join(clashes) + '. Start the previous version of Vault, rename or delete all but '
            'one of each (vaultserver user list), then start this version again. Nothing was changed.',
            details={'accounts': clashes})


def upgrade() -> None:
    _refuse_names_that_differ_only_in_case()
    op.add_column('users', sa.Column('expires_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
    op.execute("UPDATE users SET role = 'member' WHERE role = 'viewer'")
    op.create_index('ux_users_username_lower', 'users', [sa.text('lower(username)')], unique=True)
    op.create_table('albums',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('owner_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['owner_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_albums_owner_id'), 'albums', ['owner_id'], unique=False)
    op.create_table('favorites',
    sa.Column('user_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('media_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['media_id'], ['media_files.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', 'media_id')
    )
    op.create_index(op.f('ix_favorites_media_id'), 'favorites', ['media_id'], unique=False)
    op.create_table('album_items',
    sa.Column('album_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('media_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('added_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['album_id'], ['albums.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['media_id'], ['media_files.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('album_id', 'media_id')
    )
    op.create_index(op.f('ix_album_items_media_id'), 'album_items', ['media_id'], unique=False)
    op.create_table('album_shares',
    sa.Column('album_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('user_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('shared_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['album_id'], ['albums.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('album_id', 'user_id')
    )
    op.create_index(op.f('ix_album_shares_user_id'), 'album_shares', ['user_id'], unique=False)


def downgrade() -> None:
    op.drop_table('album_shares')
    op.drop_table('album_items')
    op.drop_table('favorites')
    op.drop_table('albums')
    op.drop_index('ux_users_username_lower', table_name='users')
    op.execute("UPDATE users SET role = 'viewer' WHERE role <> 'admin'")
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('expires_at')
