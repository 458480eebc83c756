"""scale set reference columns

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07

Questions about every scale set (how many instances do they ask for in total,
which use this load balancer's probes, which pin a gallery image version, which
are Service Fabric node types) used to load and validate every stored model.
Four columns kept with the model answer them in SQL: ``capacity``,
``health_probe_id`` and ``image_id`` (lower-cased), ``service_fabric``. They
are filled here from the models already stored. A ``catalog`` row in
``revisions``, bumped by every write to image versions and galleries, lets the
reconciler keep what ``latest`` can mean between passes.
"""
from typing import Any

from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def _refs(model: Any) -> dict[str, Any]:
    """The columns' values from a stored model (the JSON the API wrote)."""
    model = model or {}
    props = model.get('properties') or {}
    profile = props.get('virtualMachineProfile') or {}
    network = profile.get('networkProfile') or {}
    probe = (network.get('healthProbe') or {}).get('id')
    image = ((profile.get('storageProfile') or {}).get('imageReference') or {}).get('id')
    extensions = (profile.get('extensionProfile') or {}).get('extensions') or []
    fabric = any(str((e.get('properties') or {}).get('type') or '').lower()
                 in ('servicefabricnode', 'servicefabriclinuxnode')
                 and str((e.get('properties') or {}).get('publisher') or '').lower()
                 == 'microsoft.azure.servicefabric' for e in extensions)
    return {'capacity': int((model.get('sku') or {}).get('capacity') or 0),
            'health_probe_id': probe.strip().lower() if isinstance(probe, str) else None,
            'image_id': image.strip().lower() if isinstance(image, str) else None,
            'service_fabric': fabric}


def upgrade() -> None:
    # Plain ALTER TABLE (batch mode would recreate scale_sets, and ON DELETE CASCADE
    # would empty the tables that reference it on SQLite).
    op.add_column('scale_sets', sa.Column('capacity', sa.Integer(), nullable=False,
                                          server_default='0'))
    op.add_column('scale_sets', sa.Column('health_probe_id', sa.String(length=1024),
                                          nullable=True))
    op.add_column('scale_sets', sa.Column('image_id', sa.String(length=1024), nullable=True))
    op.add_column('scale_sets', sa.Column('service_fabric', sa.Boolean(), nullable=False,
                                          server_default=sa.false()))
    op.create_index('ix_scale_sets_health_probe_id', 'scale_sets', ['health_probe_id'])
    op.create_index('ix_scale_sets_image_id', 'scale_sets', ['image_id'])
    conn = op.get_bind()
    sets = sa.table('scale_sets', sa.column('id', sa.String), sa.column('model', sa.JSON),
                    sa.column('capacity', sa.Integer),
                    sa.column('health_probe_id', sa.String), sa.column('image_id', sa.String),
                    sa.column('service_fabric', sa.Boolean))
    for sid, model in conn.execute(sa.select(sets.c.id, sets.c.model)).all():
        conn.execute(sets.update().where(sets.c.id == sid).values(**_refs(model)))
    revisions = sa.table('revisions', sa.column('name', sa.String),
                         sa.column('revision', sa.Integer))
    if conn.execute(sa.select(revisions.c.name).where(revisions.c.name == 'catalog')).first() \
            is None:
        conn.execute(revisions.insert().values(name='catalog', revision=1))


def downgrade() -> None:
    revisions = sa.table('revisions', sa.column('name', sa.String))
    op.get_bind().execute(revisions.delete().where(revisions.c.name == 'catalog'))
    op.drop_index('ix_scale_sets_image_id', table_name='scale_sets')
    op.drop_index('ix_scale_sets_health_probe_id', table_name='scale_sets')
    for column in ('service_fabric', 'image_id', 'health_probe_id', 'capacity'):
        if op.get_bind().dialect.name == 'sqlite':  # SQLite 3.35 and later
            op.execute(f'ALTER TABLE scale_sets DROP COLUMN {column}')
        else:
            op.drop_column('scale_sets', column)
