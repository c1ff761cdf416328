"""jobs are leased

A job being converted used to be only marked "processing", and every start of Vault put all such jobs back
in line. Now a job is leased to the worker converting it: the lease's owner, a secret token every write
about the job must show, and an expiry the worker keeps pushing back. A job whose lease lapsed is waiting
again; a live lease (a worker on another machine) survives a restart of the server.

Jobs left "processing" by an older version have no lease, which counts as lapsed: they go back in line.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 09:12:30.411207
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('processing_queue', schema=None) as batch_op:
        batch_op.add_column(sa.Column('lease_owner', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True))
        batch_op.add_column(sa.Column('lease_token', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        batch_op.add_column(sa.Column('lease_expires_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('processing_queue', schema=None) as batch_op:
        batch_op.drop_column('lease_expires_at')
        batch_op.drop_column('lease_token')
        batch_op.drop_column('lease_owner')
