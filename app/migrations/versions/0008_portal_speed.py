"""portal speed: the inbox is one index walk

Each recipient keeps a copy of its message's received_at, so the inbox (a user's held
copies, newest first) reads the first page from the index ix_recipient_inbox instead
of sorting every copy the user has. That index starts with user_id, so it replaces
ix_recipient_user_id.

The column is filled here for the rows that exist; new rows get it when inserted
(app/models/message.py). It stays nullable: on SQLite a NOT NULL column could only be
added by rebuilding the table, whose DROP would cascade to the delivery events.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 11:30:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('recipient', schema=None) as batch_op:
        batch_op.add_column(sa.Column('received_at', sa.DateTime(), nullable=True))
    op.execute(
        "UPDATE recipient SET received_at = "
        "(SELECT message.received_at FROM message WHERE message.id = recipient.message_id)"
    )
    with op.batch_alter_table('recipient', schema=None) as batch_op:
        batch_op.create_index('ix_recipient_inbox', ['user_id', 'state', 'received_at', 'id'],
                              unique=False)
        batch_op.drop_index('ix_recipient_user_id')


def downgrade():
    with op.batch_alter_table('recipient', schema=None) as batch_op:
        batch_op.create_index('ix_recipient_user_id', ['user_id'], unique=False)
        batch_op.drop_index('ix_recipient_inbox')
    # Not in batch mode: SQLite (3.35 and later) drops the column in place, where a batch
    # would copy the table and DROP the old one, which with foreign keys on deletes
    # every delivery event and queue item of every recipient (ON DELETE CASCADE).
    op.drop_column('recipient', 'received_at')
