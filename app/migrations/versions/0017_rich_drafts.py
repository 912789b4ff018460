"""rich text: a draft keeps the editor's formatting beside its text

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06 07:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade():
    # Drafts saved before this were plain text: an empty column says so.
    with op.batch_alter_table('draft', schema=None) as batch_op:
        batch_op.add_column(sa.Column('body_html', sa.Text(), nullable=False,
                                      server_default=''))


def downgrade():
    op.drop_column('draft', 'body_html')
