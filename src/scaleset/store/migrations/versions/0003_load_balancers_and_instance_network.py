"""load balancers and instance network

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26

Adds ``load_balancers`` (health probes that scale sets reference) and two
nullable columns on ``instances``: ``private_ip`` and ``extension_statuses``.
Existing instances get NULL in both, which reads as "not observed yet".
"""
from alembic import op
import sqlalchemy as sa
import scaleset.store.tables


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('load_balancers',
    sa.Column('id', sa.String(length=512), nullable=False),
    sa.Column('subscription', sa.String(length=128), nullable=False),
    sa.Column('resource_group', sa.String(length=128), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('location', sa.String(length=64), nullable=False),
    sa.Column('body', sa.JSON(), nullable=False),
    sa.Column('created_at', scaleset.store.tables.UTCDateTime(), nullable=False),
    sa.Column('updated_at', scaleset.store.tables.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_load_balancers'))
    )
    with op.batch_alter_table('load_balancers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_load_balancers_subscription_resource_group'),
                              ['subscription', 'resource_group'], unique=False)

    # SQLite adds nullable columns in place (no table rebuild under "auto" batch mode).
    with op.batch_alter_table('instances', schema=None) as batch_op:
        batch_op.add_column(sa.Column('private_ip', sa.String(length=45), nullable=True))
        batch_op.add_column(sa.Column('extension_statuses', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('instances', schema=None) as batch_op:
        batch_op.drop_column('extension_statuses')
        batch_op.drop_column('private_ip')

    with op.batch_alter_table('load_balancers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_load_balancers_subscription_resource_group'))

    op.drop_table('load_balancers')
