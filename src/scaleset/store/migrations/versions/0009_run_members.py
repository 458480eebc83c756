"""run members: pending steps are implicit

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07

A run used to insert one ``run_instances`` row per instance at its start, all
``Pending``, and update each as it moved: three row writes per instance before
it even finished. ``runs.members`` (the instance ids the run covers) and
``runs.member_count`` now say who is in the run; a ``run_instances`` row is
written when an instance leaves ``Pending`` (its batch starts, it is found on
the target already, or it is skipped). Runs stored before this migration keep
their instances as members, and their ``Pending`` rows are removed (the
migration converts them), so every run reads the same way.
"""
from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ALTER TABLE, not batch mode: recreating ``runs`` on SQLite would drop the
    # table its steps and batches reference, and ON DELETE CASCADE would empty them.
    op.add_column('runs', sa.Column('members', sa.JSON(), nullable=True))
    op.add_column('runs', sa.Column('member_count', sa.Integer(), nullable=True))
    conn = op.get_bind()
    runs = sa.table('runs', sa.column('run_id', sa.String), sa.column('members', sa.JSON),
                    sa.column('member_count', sa.Integer))
    steps = sa.table('run_instances', sa.column('run_id', sa.String),
                     sa.column('instance_id', sa.String), sa.column('step', sa.String))
    members: dict[str, list[str]] = {}
    for run_id, instance_id in conn.execute(
            sa.select(steps.c.run_id, steps.c.instance_id).order_by(steps.c.run_id)):
        members.setdefault(run_id, []).append(instance_id)
    for (run_id,) in conn.execute(sa.select(runs.c.run_id)):
        ids = members.get(run_id, [])
        conn.execute(runs.update().where(runs.c.run_id == run_id).values(
            members=ids, member_count=len(ids)))
    conn.execute(steps.delete().where(steps.c.step == 'Pending'))


def downgrade() -> None:
    conn = op.get_bind()
    runs = sa.table('runs', sa.column('run_id', sa.String), sa.column('members', sa.JSON))
    steps = sa.table('run_instances', sa.column('run_id', sa.String),
                     sa.column('instance_id', sa.String), sa.column('step', sa.String))
    for run_id, ids in conn.execute(sa.select(runs.c.run_id, runs.c.members)):
        stepped = {iid for (iid,) in conn.execute(
            sa.select(steps.c.instance_id).where(steps.c.run_id == run_id))}
        missing = [iid for iid in ids or () if iid not in stepped]
        if missing:
            conn.execute(steps.insert(), [{'run_id': run_id, 'instance_id': iid,
                                           'step': 'Pending'} for iid in missing])
    for column in ('member_count', 'members'):
        if conn.dialect.name == 'sqlite':  # ALTER TABLE DROP COLUMN: SQLite 3.35 and later
            op.execute(f'ALTER TABLE runs DROP COLUMN {column}')
        else:
            op.drop_column('runs', column)
