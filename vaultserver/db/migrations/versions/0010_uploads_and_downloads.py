"""uploads and downloads: resumable browser uploads, who sent an item, per-account upload/download rights

Every account keeps the rights it had (uploading and downloading on); an admin may take either away from
one account. Items already in the library were dropped into the import folder: no uploader.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 19:50:00.000000
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('uploads',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('user_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('filename', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('length', sa.Integer(), nullable=False),
    sa.Column('offset', sa.Integer(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('job_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_uploads_updated_at'), 'uploads', ['updated_at'], unique=False)
    op.create_index(op.f('ix_uploads_user_id'), 'uploads', ['user_id'], unique=False)
    # Plain ADD COLUMNs: rebuilding these tables (alembic's batch mode) would drop their expression indexes,
    # and dropping media_files would cascade to every item's keys.
    op.add_column('media_files',
                  sa.Column('uploaded_by', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True))
    op.add_column('processing_queue',
                  sa.Column('uploaded_by', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True))
    op.add_column('users', sa.Column('can_upload', sa.Boolean(), nullable=False, server_default=sa.true()))
    op.add_column('users', sa.Column('can_download', sa.Boolean(), nullable=False, server_default=sa.true()))


def downgrade() -> None:
    op.drop_column('users', 'can_download')
    op.drop_column('users', 'can_upload')
    op.drop_column('processing_queue', 'uploaded_by')
    op.drop_column('media_files', 'uploaded_by')
    op.drop_table('uploads')
