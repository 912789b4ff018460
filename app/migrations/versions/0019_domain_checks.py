"""domain checks: when a pending domain was added and last looked for in DNS

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06 10:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('domain', schema=None) as batch_op:
        batch_op.add_column(sa.Column('added_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('checked_at', sa.DateTime(), nullable=True))
    # Domains pending at the upgrade get their week of automatic checks from now.
    op.execute(sa.text("UPDATE domain SET added_at = CURRENT_TIMESTAMP WHERE NOT verified"))


def downgrade():
    with op.batch_alter_table('domain', schema=None) as batch_op:
        batch_op.drop_column('checked_at')
        batch_op.drop_column('added_at')
