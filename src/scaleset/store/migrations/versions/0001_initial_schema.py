"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""
import sqlalchemy as sa
from alembic import op

import scaleset.store.tables

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('events',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('at', scaleset.store.tables.UTCDateTime(), nullable=False),
    sa.Column('scale_set_id', sa.String(length=512), nullable=False),
    sa.Column('run_id', sa.String(length=64), nullable=True),
    sa.Column('kind', sa.String(length=64), nullable=False),
    sa.Column('instance_id', sa.String(length=32), nullable=True),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_events'))
    )
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_events_scale_set_id_id'), ['scale_set_id', 'id'], unique=False)

    op.create_table('image_versions',
    sa.Column('location', sa.String(length=64), nullable=False),
    sa.Column('publisher', sa.String(length=128), nullable=False),
    sa.Column('offer', sa.String(length=128), nullable=False),
    sa.Column('sku', sa.String(length=128), nullable=False),
    sa.Column('version', sa.String(length=64), nullable=False),
    sa.Column('os_type', sa.String(length=16), nullable=False),
    sa.Column('properties', sa.JSON(), nullable=False),
    sa.Column('published_at', scaleset.store.tables.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('location', 'publisher', 'offer', 'sku', 'version', name=op.f('pk_image_versions'))
    )
    op.create_table('scale_sets',
    sa.Column('id', sa.String(length=512), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('location', sa.String(length=64), nullable=False),
    sa.Column('model', sa.JSON(), nullable=False),
    sa.Column('generation', sa.Integer(), nullable=False),
    sa.Column('image_version', sa.String(length=64), nullable=True),
    sa.Column('next_instance_id', sa.Integer(), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('etag', sa.String(length=64), nullable=False),
    sa.Column('created_at', scaleset.store.tables.UTCDateTime(), nullable=False),
    sa.Column('updated_at', scaleset.store.tables.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_scale_sets'))
    )
    op.create_table('instances',
    sa.Column('scale_set_id', sa.String(length=512), nullable=False),
    sa.Column('instance_id', sa.String(length=32), nullable=False),
    sa.Column('zone', sa.String(length=16), nullable=True),
    sa.Column('fault_domain', sa.Integer(), nullable=False),
    sa.Column('update_domain', sa.Integer(), nullable=False),
    sa.Column('model_generation', sa.Integer(), nullable=False),
    sa.Column('image_version', sa.String(length=64), nullable=True),
    sa.Column('os_disk_id', sa.String(length=256), nullable=False),
    sa.Column('previous_os_disk_id', sa.String(length=256), nullable=True),
    sa.Column('previous_image_version', sa.String(length=64), nullable=True),
    sa.Column('previous_model_generation', sa.Integer(), nullable=True),
    sa.Column('data_disks', sa.JSON(), nullable=False),
    sa.Column('power_state', sa.String(length=16), nullable=False),
    sa.Column('provisioning_state', sa.String(length=16), nullable=False),
    sa.Column('health_state', sa.String(length=16), nullable=False),
    sa.Column('protect_from_scale_in', sa.Boolean(), nullable=False),
    sa.Column('protect_from_scale_set_actions', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['scale_set_id'], ['scale_sets.id'], name=op.f('fk_instances_scale_set_id_scale_sets'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('scale_set_id', 'instance_id', name=op.f('pk_instances'))
    )
    op.create_table('runs',
    sa.Column('run_id', sa.String(length=64), nullable=False),
    sa.Column('scale_set_id', sa.String(length=512), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('started_by', sa.String(length=16), nullable=False),
    sa.Column('target_image_version', sa.String(length=64), nullable=True),
    sa.Column('target_generation', sa.Integer(), nullable=False),
    sa.Column('target_image_reference', sa.JSON(), nullable=True),
    sa.Column('policy', sa.JSON(), nullable=False),
    sa.Column('rollback_on_failure', sa.Boolean(), nullable=False),
    sa.Column('rollback_on_breach', sa.Boolean(), nullable=False),
    sa.Column('all_at_once', sa.Boolean(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('start_time', scaleset.store.tables.UTCDateTime(), nullable=False),
    sa.Column('end_time', scaleset.store.tables.UTCDateTime(), nullable=True),
    sa.Column('error_code', sa.String(length=128), nullable=True),
    sa.Column('error_message', sa.Text(), nullable=True),
    sa.Column('error_target', sa.String(length=256), nullable=True),
    sa.Column('cancel_requested', sa.Boolean(), nullable=False),
    sa.Column('cancel_time', scaleset.store.tables.UTCDateTime(), nullable=True),
    sa.Column('next_batch_at', scaleset.store.tables.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['scale_set_id'], ['scale_sets.id'], name=op.f('fk_runs_scale_set_id_scale_sets'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_id', name=op.f('pk_runs'))
    )
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_runs_scale_set_id_start_time'), ['scale_set_id', 'start_time'], unique=False)

    op.create_table('run_batches',
    sa.Column('run_id', sa.String(length=64), nullable=False),
    sa.Column('batch_index', sa.Integer(), nullable=False),
    sa.Column('instance_ids', sa.JSON(), nullable=False),
    sa.Column('start_time', scaleset.store.tables.UTCDateTime(), nullable=False),
    sa.Column('end_time', scaleset.store.tables.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['run_id'], ['runs.run_id'], name=op.f('fk_run_batches_run_id_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_id', 'batch_index', name=op.f('pk_run_batches'))
    )
    op.create_table('run_instances',
    sa.Column('run_id', sa.String(length=64), nullable=False),
    sa.Column('instance_id', sa.String(length=32), nullable=False),
    sa.Column('step', sa.String(length=16), nullable=False),
    sa.Column('batch_index', sa.Integer(), nullable=True),
    sa.Column('health_deadline', scaleset.store.tables.UTCDateTime(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['run_id'], ['runs.run_id'], name=op.f('fk_run_instances_run_id_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_id', 'instance_id', name=op.f('pk_run_instances'))
    )


def downgrade() -> None:
    op.drop_table('run_instances')
    op.drop_table('run_batches')
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_runs_scale_set_id_start_time'))

    op.drop_table('runs')
    op.drop_table('instances')
    op.drop_table('scale_sets')
    op.drop_table('image_versions')
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_events_scale_set_id_id'))

    op.drop_table('events')
