"""stored provisioning state and the tokens revision

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07

Two things a GET of a scale set used to derive with queries of their own:

* ``scale_sets.provisioning_state`` and ``scale_sets.provisioning_operation``:
  ``Creating`` / ``Updating`` and the id of the scale set's latest PUT or PATCH
  while that operation has not been seen finished (NULL otherwise). Filled from
  the operations still in progress, so a PUT running across the upgrade shows as
  it did.
* ``revisions``: named counters, one row ``tokens`` bumped by every token create
  and revoke, so a server that keeps tokens' roles in memory sees a change made
  by another process (``scaleset token revoke``) at the next request.
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

_COLUMNS = ('provisioning_state', 'provisioning_operation')


def upgrade() -> None:
    with op.batch_alter_table('scale_sets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('provisioning_state', sa.String(length=16),
                                      nullable=True))
        batch_op.add_column(sa.Column('provisioning_operation', sa.String(length=64),
                                      nullable=True))
    revisions = op.create_table(
        'revisions',
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('revision', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_revisions')))
    op.bulk_insert(revisions, [{'name': 'tokens', 'revision': 0}])
    _fill_provisioning_state()


def _fill_provisioning_state() -> None:
    """Each scale set's latest PUT/PATCH still in progress, as the GET derived it."""
    conn = op.get_bind()
    operations = sa.table('operations', sa.column('id'), sa.column('scale_set_id'),
                          sa.column('kind'), sa.column('status'), sa.column('start_time'),
                          sa.column('data', sa.JSON()))
    scale_sets = sa.table('scale_sets', sa.column('id'), *(sa.column(c) for c in _COLUMNS))
    rows = conn.execute(
        sa.select(operations.c.id, operations.c.scale_set_id, operations.c.data)
        .where(operations.c.kind == 'scaleSetPut', operations.c.status == 'InProgress',
               operations.c.scale_set_id.is_not(None))
        .order_by(operations.c.start_time)).all()
    latest = {row.scale_set_id: row for row in rows}  # the newest wins, as start_time sorts
    for scale_set_id, row in latest.items():
        state = 'Creating' if (row.data or {}).get('created') else 'Updating'
        conn.execute(sa.update(scale_sets).where(scale_sets.c.id == scale_set_id)
                     .values(provisioning_state=state, provisioning_operation=row.id))


def downgrade() -> None:
    op.drop_table('revisions')
    if op.get_bind().dialect.name == 'sqlite':
        # SQLite >= 3.35 drops a column in place; a batch copy would drop and recreate
        # scale_sets, and the instances' ON DELETE CASCADE would empty them.
        for column in _COLUMNS:
            op.execute(f'ALTER TABLE scale_sets DROP COLUMN {column}')
        return
    with op.batch_alter_table('scale_sets', schema=None) as batch_op:
        for column in _COLUMNS:
            batch_op.drop_column(column)
