"""message parts: the part index of each message, found at ingest

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 11:50:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade():
    # Messages stored before this have no index: the portal parses them whole, as before.
    with op.batch_alter_table('message', schema=None) as batch_op:
        batch_op.add_column(sa.Column('parts', sa.JSON(), nullable=True))


def downgrade():
    # In place (SQLite 3.35+), not by a batch's copy of the table: dropping the old
    # table would cascade to every row that refers to it.
    op.drop_column('message', 'parts')
