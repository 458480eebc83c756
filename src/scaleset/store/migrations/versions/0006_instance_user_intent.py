"""instance user intent

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07

Adds the nullable ``instances.user_intent`` (JSON): the latest power verb asked of
an instance (start, powerOff, restart, deallocate, redeploy) with its outcome, and
the ``reimageall`` run that empties its data disks. Existing instances get NULL:
nothing asked.
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('instances', schema=None) as batch_op:
        batch_op.add_column(sa.Column('user_intent', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('instances', schema=None) as batch_op:
        batch_op.drop_column('user_intent')
