"""event ids never reused

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07

SQLite hands a deleted row's id out again when it was the largest (a scale set's
events go with it): a client resuming an event stream with ``Last-Event-ID`` would
then skip the new events of a scale set created again under the same name. The
events table becomes ``AUTOINCREMENT`` on SQLite, whose ids only grow; PostgreSQL's
sequence never reuses an id, so nothing changes there.
"""
from alembic import op


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != 'sqlite':
        return
    with op.batch_alter_table('events', recreate='always',
                              table_kwargs={'sqlite_autoincrement': True}):
        pass


def downgrade() -> None:
    if op.get_bind().dialect.name != 'sqlite':
        return
    with op.batch_alter_table('events', recreate='always',
                              table_kwargs={'sqlite_autoincrement': False}):
        pass
