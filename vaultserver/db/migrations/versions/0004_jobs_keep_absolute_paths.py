"""jobs keep absolute paths

A queued job used to store its file's path relative to the import folder and was re-rooted under whatever
the import folder setting said when a worker took it: change the folder, and every waiting job went "gone".
Now a job stores the absolute path it was found at (`path`, renamed from `source_path`) and the import
folder it was found under (`import_root`, for pruning emptied sub-folders and for showing the path).

Existing rows are rooted at the import folder in effect when this migration runs: the one Vault hands in
(`config.attributes["import_root"]`, from the settings of the data folder being opened); failing that (a
migration run by hand), the folder the settings file next to the SQLite database names. That is exactly
the folder those jobs would have been re-rooted under on their next run.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 08:07:14.646530
"""
from pathlib import Path, PurePath

from alembic import context, op
import sqlalchemy as sa
import sqlmodel


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

jobs = sa.table('processing_queue', sa.column('id', sa.String), sa.column('path', sa.String),
                sa.column('import_root', sa.String))


def _import_root_in_effect() -> Path:
    handed_in = context.config.attributes.get('import_root')
    if handed_in is not None:
        return Path(handed_in).absolute()
    url = op.get_bind().engine.url
    if url.get_backend_name() != 'sqlite' or not url.database or url.database == ':memory:':
        raise RuntimeError('Queued jobs need the import folder they were found in; open the database '
                           'through Vault (which knows it) to run this migration.')
    from vaultserver.config import AppPaths, load_settings  # the rule Vault itself used for these rows

    paths = AppPaths(Path(url.database).absolute().parent)
    return load_settings(paths).import_path(paths).absolute()


def upgrade() -> None:
    with op.batch_alter_table('processing_queue', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_processing_queue_source_path'))
        batch_op.alter_column('source_path', new_column_name='path',
                              existing_type=sa.String(length=4096), existing_nullable=False)
        batch_op.add_column(sa.Column('import_root', sqlmodel.sql.sqltypes.AutoString(length=4096), nullable=True))

    bind = op.get_bind()
    rows = bind.execute(sa.select(jobs.c.id, jobs.c.path)).all()
    if rows:
        root = _import_root_in_effect()
        for job_id, relative in rows:
            bind.execute(jobs.update().where(jobs.c.id == job_id)
                         .values(path=str(root / relative), import_root=str(root)))

    with op.batch_alter_table('processing_queue', schema=None) as batch_op:
        batch_op.alter_column('import_root', existing_type=sa.String(length=4096),
                              nullable=False)
        batch_op.create_index(batch_op.f('ix_processing_queue_path'), ['path'], unique=False)


def downgrade() -> None:
    # Back to paths relative to the folder each job was found in (old code joins an absolute one as is).
    bind = op.get_bind()
    for job_id, path, root in bind.execute(sa.select(jobs.c.id, jobs.c.path, jobs.c.import_root)).all():
        found = PurePath(path)
        if found.is_relative_to(root):
            bind.execute(jobs.update().where(jobs.c.id == job_id)
                         .values(path=found.relative_to(root).as_posix()))

    with op.batch_alter_table('processing_queue', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_processing_queue_path'))
        batch_op.drop_column('import_root')
        batch_op.alter_column('path', new_column_name='source_path',
                              existing_type=sa.String(length=4096), existing_nullable=False)
    with op.batch_alter_table('processing_queue', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_processing_queue_source_path'), ['source_path'], unique=False)
