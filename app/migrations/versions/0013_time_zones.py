"""time zones: the zone a tenant's pages show times in

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 06:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade():
    # Pages showed UTC until now: every tenant keeps it until an administrator chooses.
    with op.batch_alter_table('tenant', schema=None) as batch_op:
        batch_op.add_column(sa.Column('time_zone', sa.String(length=64), nullable=False,
                                      server_default='UTC'))


def downgrade():
    # In place (SQLite 3.35+), not by a batch's copy of the table: dropping the old
    # table would cascade to every row that refers to it.
    op.drop_column('tenant', 'time_zone')
