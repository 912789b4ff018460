"""dkim next key: a new DKIM key waits for its DNS record before it signs

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-06 10:30:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None


def upgrade():
    # A key already generated goes on signing: its administrator was told to publish it.
    with op.batch_alter_table('tenant', schema=None) as batch_op:
        batch_op.add_column(sa.Column('dkim_next_selector', sa.String(length=63),
                                      nullable=True))
        batch_op.add_column(sa.Column('dkim_next_private_key', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('dkim_next_created_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('dkim_next_checked_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('dkim_domain', sa.String(length=253), nullable=True))


def downgrade():
    with op.batch_alter_table('tenant', schema=None) as batch_op:
        batch_op.drop_column('dkim_domain')
        batch_op.drop_column('dkim_next_checked_at')
        batch_op.drop_column('dkim_next_created_at')
        batch_op.drop_column('dkim_next_private_key')
        batch_op.drop_column('dkim_next_selector')
