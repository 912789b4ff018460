"""queued notices: notifications rendered by the worker when sent

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30 11:40:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('outbound_item', schema=None) as batch_op:
        batch_op.add_column(sa.Column('notice', sa.JSON(), nullable=True))


def downgrade():
    # In place (SQLite 3.35+), not by a batch's copy of the table: dropping the old
    # table would cascade to every row that refers to it.
    op.drop_column('outbound_item', 'notice')
