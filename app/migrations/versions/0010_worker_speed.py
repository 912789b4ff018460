"""worker speed: per-take lease tokens, and an index of the messages not purged yet

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 11:10:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('outbound_item', schema=None) as batch_op:
        batch_op.add_column(sa.Column('lease_token', sa.String(length=32), nullable=True))

    # The purge's candidate query: ix_message_expires_at held every message ever
    # received, so each batch walked past all the ones purged before it.
    with op.batch_alter_table('message', schema=None) as batch_op:
        batch_op.create_index('ix_message_unpurged_expires_at', ['expires_at', 'id'],
                              unique=False, sqlite_where=sa.text('purged_at IS NULL'),
                              postgresql_where=sa.text('purged_at IS NULL'))
        batch_op.drop_index('ix_message_expires_at')


def downgrade():
    with op.batch_alter_table('message', schema=None) as batch_op:
        batch_op.create_index('ix_message_expires_at', ['expires_at'], unique=False)
        batch_op.drop_index('ix_message_unpurged_expires_at',
                            sqlite_where=sa.text('purged_at IS NULL'),
                            postgresql_where=sa.text('purged_at IS NULL'))

    # In place (SQLite 3.35+), not by a batch's copy of the table: dropping the old
    # table would cascade to every row that refers to it.
    op.drop_column('outbound_item', 'lease_token')
