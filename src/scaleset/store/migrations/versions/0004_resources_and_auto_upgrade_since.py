"""generic resources and auto-upgrade start time

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26

Adds ``resources`` (galleries, their image definitions and versions, Service
Fabric clusters: ARM resources stored by id with their parent) and the
nullable ``scale_sets.auto_os_upgrade_since``. Existing scale sets with
automatic OS upgrade on get their ``updated_at`` there, so their first
rollout is not delayed again by an upgrade of the server.
"""
from alembic import op
import sqlalchemy as sa
import scaleset.store.tables


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('resources',
    sa.Column('id', sa.String(length=768), nullable=False),
    sa.Column('type', sa.String(length=128), nullable=False),
    sa.Column('parent_id', sa.String(length=768), nullable=True),
    sa.Column('subscription', sa.String(length=128), nullable=False),
    sa.Column('resource_group', sa.String(length=128), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('location', sa.String(length=64), nullable=False),
    sa.Column('body', sa.JSON(), nullable=False),
    sa.Column('state', sa.JSON(), nullable=False),
    sa.Column('created_at', scaleset.store.tables.UTCDateTime(), nullable=False),
    sa.Column('updated_at', scaleset.store.tables.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_resources'))
    )
    with op.batch_alter_table('resources', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_resources_parent_id'), ['parent_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_resources_type_subscription_resource_group'),
                              ['type', 'subscription', 'resource_group'], unique=False)

    with op.batch_alter_table('scale_sets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('auto_os_upgrade_since',
                                      scaleset.store.tables.UTCDateTime(), nullable=True))
    # Scale sets already configured keep their configuration time: the first-rollout
    # delay is one-time, and a server upgrade must not restart it.
    scale_sets = sa.table('scale_sets', sa.column('model', sa.JSON()),
                          sa.column('updated_at', scaleset.store.tables.UTCDateTime()),
                          sa.column('auto_os_upgrade_since', scaleset.store.tables.UTCDateTime()),
                          sa.column('id', sa.String()))
    conn = op.get_bind()
    for row in conn.execute(sa.select(scale_sets.c.id, scale_sets.c.model,
                                      scale_sets.c.updated_at)):
        policy = ((row.model or {}).get('properties') or {}).get('upgradePolicy') or {}
        auto = policy.get('automaticOSUpgradePolicy') or {}
        if auto.get('enableAutomaticOSUpgrade'):
            conn.execute(sa.update(scale_sets).where(scale_sets.c.id == row.id)
                         .values(auto_os_upgrade_since=row.updated_at))


def downgrade() -> None:
    with op.batch_alter_table('scale_sets', schema=None) as batch_op:
        batch_op.drop_column('auto_os_upgrade_since')

    with op.batch_alter_table('resources', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_resources_type_subscription_resource_group'))
        batch_op.drop_index(batch_op.f('ix_resources_parent_id'))

    op.drop_table('resources')
