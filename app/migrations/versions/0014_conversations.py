"""inbox: withdrawn and expired copies stay listed; messages know their conversation

The inbox now lists a user's CCM copies whatever became of them (held, withdrawn,
expired), so ix_recipient_inbox walks (user_id, received_at, id) without the state.

message.thread names a message's conversation: the first Message-ID of its References,
else its In-Reply-To, else its own Message-ID (app/mail/threads.py). Messages stored
before this keep "" and are shown without their conversation.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 06:00:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade():
    # Not in batch mode: on SQLite a batch may copy the table and DROP the old one,
    # which with foreign keys on would cascade to every row that refers to it.
    op.drop_index('ix_recipient_inbox', table_name='recipient')
    op.create_index('ix_recipient_inbox', 'recipient', ['user_id', 'received_at', 'id'],
                    unique=False)
    op.add_column('message', sa.Column('thread', sa.String(length=998), nullable=False,
                                       server_default=''))
    op.create_index('ix_message_thread', 'message', ['tenant_id', 'thread'], unique=False)


def downgrade():
    op.drop_index('ix_message_thread', table_name='message')
    op.drop_column('message', 'thread')
    op.drop_index('ix_recipient_inbox', table_name='recipient')
    op.create_index('ix_recipient_inbox', 'recipient', ['user_id', 'state', 'received_at', 'id'],
                    unique=False)
