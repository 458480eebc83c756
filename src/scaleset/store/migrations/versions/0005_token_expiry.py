"""token expiry

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06

Adds the nullable ``tokens.expires_at``: a token past it is refused (401)
like an unknown one. Existing tokens get none, so they keep working.
"""
from alembic import op
import sqlalchemy as sa
import scaleset.store.tables


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('expires_at', scaleset.store.tables.UTCDateTime(),
                                      nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('tokens', schema=None) as batch_op:
        batch_op.drop_column('expires_at')
