"""retired refresh tokens

A session used to remember only the refresh token it rotated away last (`sessions.previous_token_hash`), so
replaying any older one was not recognised as reuse. Now every rotated-away token of a live session is kept,
as its SHA-256 only, in `retired_refresh_tokens`; the rows go when the session ends.

The one earlier hash each live session had is carried over, so upgrading loses no detection.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 08:44:42.768128
"""
from datetime import datetime, timezone

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

sessions = sa.table('sessions', sa.column('id', sa.String), sa.column('previous_token_hash', sa.String),
                    sa.column('revoked_at', sqlmodel.sql.sqltypes.UTCDateTime))
retired = sa.table('retired_refresh_tokens', sa.column('token_hash', sa.String),
                   sa.column('session_id', sa.String),
                   sa.column('retired_at', sqlmodel.sql.sqltypes.UTCDateTime))


def upgrade() -> None:
    bind = op.get_bind()
    carried = bind.execute(sa.select(sessions.c.previous_token_hash, sessions.c.id).where(
        sessions.c.previous_token_hash.is_not(None), sessions.c.revoked_at.is_(None))).all()

    # The sessions table is rebuilt first: on SQLite that drops it, which would cascade into a child table.
    with op.batch_alter_table('sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sessions_previous_token_hash'))
        batch_op.drop_column('previous_token_hash')

    op.create_table('retired_refresh_tokens',
    sa.Column('token_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('session_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('retired_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['session_id'], ['sessions.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('token_hash')
    )
    with op.batch_alter_table('retired_refresh_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_retired_refresh_tokens_session_id'), ['session_id'], unique=False)

    now = datetime.now(timezone.utc)
    if carried:
        op.bulk_insert(retired, [{'token_hash': token_hash, 'session_id': session_id, 'retired_at': now}
                                 for token_hash, session_id in carried])


def downgrade() -> None:
    # Back to one earlier hash per session: the most recently retired one.
    bind = op.get_bind()
    newest = bind.execute(sa.select(retired.c.session_id, retired.c.token_hash)
                          .order_by(retired.c.retired_at)).all()
    op.drop_table('retired_refresh_tokens')

    with op.batch_alter_table('sessions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('previous_token_hash', sqlmodel.sql.sqltypes.AutoString(length=128),
                                      nullable=True))
        batch_op.create_index(batch_op.f('ix_sessions_previous_token_hash'), ['previous_token_hash'], unique=False)

    for session_id, token_hash in dict(newest).items():
        bind.execute(sessions.update().where(sessions.c.id == session_id)
                     .values(previous_token_hash=token_hash))
