"""trusted relays: whether the platform administrator set a tenant's internal relay

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 09:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade():
    # Relays saved before this are not trusted: whoever set them, the gateway now
    # connects to them only where a tenant administrator may aim it.
    with op.batch_alter_table('tenant', schema=None) as batch_op:
        batch_op.add_column(sa.Column('internal_relay_trusted', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))


def downgrade():
    # In place (SQLite 3.35+), not by a batch's copy of the table: dropping the old
    # table would cascade to every row that refers to it.
    op.drop_column('tenant', 'internal_relay_trusted')
