"""spent challenges: each passkey sign-in challenge is good for one answer

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-06 10:40:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0023'
down_revision = '0022'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'spent_challenge',
        sa.Column('digest', sa.String(length=64), nullable=False),
        sa.Column('expires_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('digest'))
    op.create_index('ix_spent_challenge_expires_at', 'spent_challenge', ['expires_at'])


def downgrade():
    op.drop_index('ix_spent_challenge_expires_at', table_name='spent_challenge')
    op.drop_table('spent_challenge')
